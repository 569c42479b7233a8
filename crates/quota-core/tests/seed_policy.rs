//! The seed policy matches `docs/contract.md` section 1, row by row.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use quota_core::policy::{Granted, Policy, Request};

/// The Basic table of `docs/contract.md` section 1.1, copied by hand (not
/// from the crate).
const CONTRACT_TABLE: &str = "\
txt2img 3 100
img2img 3 100
txt2audio 3 50
txt2video 1 15
img2video 1 15
aud2video 1 15
txt2music 1 15
transcribe 3 50
vid2txt 3 50
aud2txt 3 50
videofile2txt 3 50
audiofile2txt 3 50
img2txt 5 100
txt2embedding 10 100
img-rmbg 5 100
img-upscale 5 100
videos/replace 1 15
prompt/* 10 100";

fn request<'a>(tier: &'a str, endpoint: &'a str) -> Request<'a> {
    Request {
        account: "acct",
        tier,
        endpoint,
        cost: 1,
    }
}

#[test]
fn every_basic_row_of_the_contract_table_is_in_the_seed() {
    let policy = Policy::seed();
    for row in CONTRACT_TABLE.lines() {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let (endpoint, per_minute, per_day) = (
            cols[0],
            cols[1].parse::<u64>().unwrap(),
            cols[2].parse::<u64>().unwrap(),
        );
        let concrete = if endpoint == "prompt/*" {
            "prompt/enhance"
        } else {
            endpoint
        };
        let plan = policy.plan(&request("basic", concrete)).unwrap();
        let limits: Vec<(String, u64, u64)> = plan
            .limits()
            .map(|l| {
                (
                    l.name().to_owned(),
                    l.limit().count(),
                    l.limit().window_ms(),
                )
            })
            .collect();
        assert_eq!(
            limits,
            vec![
                ("minute".to_owned(), per_minute, 60_000),
                ("daily".to_owned(), per_day, 86_400_000)
            ],
            "row {row}"
        );
    }
    assert_eq!(policy.endpoints().len(), CONTRACT_TABLE.lines().count());
}

#[test]
fn premium_is_300_per_minute_across_all_endpoints_with_no_daily_limit() {
    let policy = Policy::seed();
    for row in CONTRACT_TABLE.lines() {
        let endpoint = row.split_whitespace().next().unwrap().replace('*', "x");
        let plan = policy.plan(&request("premium", &endpoint)).unwrap();
        let limits: Vec<_> = plan
            .limits()
            .map(|l| (l.name(), l.limit().count(), l.scope_key()))
            .collect();
        assert_eq!(limits, [("minute", 300, "*")], "{endpoint}");
        assert_eq!(
            plan.buckets().next().unwrap().scope(),
            "*",
            "one budget shared by every endpoint"
        );
    }
}

#[test]
fn basic_is_granted_at_signup_and_premium_after_payment() {
    let policy = Policy::seed();
    assert_eq!(policy.signup_tier().unwrap().name(), "basic");
    assert_eq!(policy.payment_tier().unwrap().name(), "premium");
    assert_eq!(policy.spec().tiers[0].granted, Some(Granted::Signup));
}

#[test]
fn the_seed_file_and_the_constructor_agree() {
    let file = include_str!("../policies/seed.toml");
    let from_file = Policy::from_toml(file).unwrap();
    assert_eq!(from_file.spec(), Policy::seed().spec());
}

#[test]
fn the_seed_survives_toml_and_json_round_trips() {
    let seed = Policy::seed();
    assert_eq!(
        Policy::from_toml(&seed.to_toml()).unwrap().spec(),
        seed.spec()
    );
    assert_eq!(
        Policy::from_json(&seed.to_json()).unwrap().spec(),
        seed.spec()
    );
}

#[test]
fn unknown_paths_are_not_endpoints() {
    let policy = Policy::seed();
    assert!(policy.endpoint("txt2imgx").is_none());
    assert!(policy.endpoint("prompt").is_none());
    assert!(policy.endpoint("prompt/a/b").is_none());
    assert!(policy.endpoint("videos").is_none());
    assert_eq!(
        policy.endpoint("videos/replace").unwrap().path(),
        "videos/replace"
    );
}
