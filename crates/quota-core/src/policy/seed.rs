//! The seed policy: the source page's tiers (see `docs/contract.md`,
//! sections 1.1, 1.2 and 5).
//!
//! The same policy ships as `policies/seed.toml` in this crate; a test checks
//! that the file and this constructor agree, and every row against the table.

use super::spec::{EndpointSpec, Granted, LimitSpec, PolicySpec, TierSpec};
use super::units::{Count, WindowLength};
use super::Policy;

/// The Basic tier's table: endpoint, requests per minute, requests per day.
pub(crate) const BASIC: [(&str, u64, u64); 18] = [
    ("txt2img", 3, 100),
    ("img2img", 3, 100),
    ("txt2audio", 3, 50),
    ("txt2video", 1, 15),
    ("img2video", 1, 15),
    ("aud2video", 1, 15),
    ("txt2music", 1, 15),
    ("transcribe", 3, 50),
    ("vid2txt", 3, 50),
    ("aud2txt", 3, 50),
    ("videofile2txt", 3, 50),
    ("audiofile2txt", 3, 50),
    ("img2txt", 5, 100),
    ("txt2embedding", 10, 100),
    ("img-rmbg", 5, 100),
    ("img-upscale", 5, 100),
    ("videos/replace", 1, 15),
    ("prompt/*", 10, 100),
];

/// Premium: requests per minute across all endpoints together.
pub(crate) const PREMIUM_PER_MINUTE: u64 = 300;

pub(crate) fn seed_spec() -> PolicySpec {
    let minute = WindowLength::from_secs(60);
    let day = WindowLength::from_secs(86_400);
    let endpoints = BASIC
        .iter()
        .map(|(path, _, _)| EndpointSpec {
            path: (*path).to_owned(),
            price: None,
            priority: None,
        })
        .collect();
    let basic_limits = BASIC
        .iter()
        .flat_map(|&(path, per_minute, per_day)| {
            [
                LimitSpec::new(Some(path), minute, per_minute),
                LimitSpec::new(Some(path), day, per_day),
            ]
        })
        .collect();
    PolicySpec {
        endpoints,
        tiers: vec![
            TierSpec {
                name: "basic".into(),
                granted: Some(Granted::Signup),
                limits: basic_limits,
            },
            TierSpec {
                name: "premium".into(),
                granted: Some(Granted::Payment),
                limits: vec![
                    LimitSpec::new(None, minute, PREMIUM_PER_MINUTE),
                    LimitSpec {
                        count: Count::Unlimited,
                        ..LimitSpec::new(None, day, 1)
                    },
                ],
            },
        ],
        uploads: Some(crate::upload::UploadRules::seed()),
    }
}

pub(super) fn seed_policy() -> Policy {
    match Policy::new(seed_spec()) {
        Ok(p) => p,
        // The seed is a constant checked by tests; failing here is a bug in this file.
        Err(e) => unreachable!("the seed policy is invalid: {e}"),
    }
}
