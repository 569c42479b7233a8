//! The header model ([`RateReport`]) renders exactly what the renderers it
//! replaced did, byte for byte, for random decisions: the seed's six
//! headers and the IETF fields as `Decision::headers`/`ietf_headers` built
//! them, the problem details body, and the HTTP/1.1 head lines and
//! `sets` answers of the transport's former `RateHeaders`/`AnswerHeaders`.
//!
//! The former renderers are kept below, verbatim, as the reference.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use proptest::prelude::*;
use quota_core::algorithm::{Algorithm, LimitOutcome};
use quota_core::policy::{
    Count, EndpointSpec, LimitSpec, Policy, PolicySpec, Request, TierSpec, WindowLength,
};
use quota_core::report::{FieldName, RateReport};
use quota_core::time::ceil_secs;
use quota_core::Decision;

/// Names the model keeps without allocating, and others.
const NAMES: [&str; 5] = ["minute", "daily", "second", "hour", "week"];
const PATHS: [&str; 4] = ["a", "b", "p/x", "p/y"];

fn limit_spec() -> impl Strategy<Value = (LimitSpec, bool)> {
    let window = prop_oneof![
        1u64..5_000,
        Just(60_000u64),
        Just(86_400_000u64),
        86_000_000u64..300_000_000,
    ];
    let count = prop_oneof![1u64..20, 1u64..100_000, Just(9_999u64), Just(10_000u64)];
    (0usize..4, window, count, 0usize..4, any::<bool>()).prop_map(
        |(scope, window, count, alg, usual_name)| {
            let (endpoint, per_match) = match scope {
                0 => (None, false),
                1 => (Some("a".to_owned()), false),
                2 => (Some("p/*".to_owned()), false),
                _ => (Some("p/*".to_owned()), true),
            };
            let spec = LimitSpec {
                endpoint,
                per_match,
                name: None,
                window: WindowLength::from_millis(window),
                count: Count::Limited(count),
                algorithm: [
                    Algorithm::FixedWindow,
                    Algorithm::SlidingLog,
                    Algorithm::SlidingWindow,
                    Algorithm::Gcra,
                ][alg],
            };
            (spec, usual_name)
        },
    )
}

fn policy_spec() -> impl Strategy<Value = PolicySpec> {
    prop::collection::vec(limit_spec(), 1..6).prop_map(|limits| {
        let limits = limits
            .into_iter()
            .enumerate()
            .map(|(i, (mut l, usual))| {
                l.name = Some(match NAMES.get(i) {
                    Some(name) if usual => (*name).to_owned(),
                    _ => format!("l-{i}_x"),
                });
                l
            })
            .collect();
        PolicySpec {
            endpoints: ["a", "b", "p/*"]
                .iter()
                .map(|p| EndpointSpec {
                    path: (*p).to_owned(),
                    price: None,
                    priority: None,
                })
                .collect(),
            tiers: vec![TierSpec {
                name: "t".into(),
                granted: None,
                limits,
            }],
            uploads: None,
        }
    })
}

fn outcome() -> impl Strategy<Value = LimitOutcome> {
    let number = prop_oneof![0u64..30, 0u64..20_000, any::<u64>()];
    let millis = prop_oneof![0u64..2_000, 0u64..200_000_000, any::<u64>()];
    (any::<bool>(), number, millis.clone(), millis).prop_map(
        |(admits, remaining, reset_after_ms, retry_after_ms)| LimitOutcome {
            admits,
            remaining,
            reset_after_ms,
            retry_after_ms: if admits { 0 } else { retry_after_ms },
        },
    )
}

// The former renderers, as they were.

/// `Decision::headers` before the model.
fn old_headers(d: &Decision<'_>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(m) = d.minute() {
        out.push(("X-RateLimit-Limit", m.count().to_string()));
        out.push(("X-RateLimit-Remaining", m.remaining().to_string()));
    }
    if let Some(dl) = d.daily() {
        out.push(("X-RateLimit-Daily-Limit", dl.count().to_string()));
        out.push(("X-RateLimit-Daily-Remaining", dl.remaining().to_string()));
    }
    if let (Some(r), Some(secs)) = (d.refused_by(), d.retry_after_secs()) {
        out.push(("X-RateLimit-Type", r.name().to_owned()));
        out.push(("Retry-After", secs.to_string()));
    }
    out
}

/// `Decision::ietf_headers` before the model.
fn old_ietf_headers(d: &Decision<'_>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if d.statuses().is_empty() {
        return out;
    }
    let mut policy = String::new();
    let mut current = String::new();
    for (i, s) in d.statuses().iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let w = ceil_secs(s.limit().limit().window_ms()).max(1);
        policy.push_str(&format!("{sep}\"{}\";q={};w={w}", s.name(), s.count()));
        current.push_str(&format!(
            "{sep}\"{}\";r={};t={}",
            s.name(),
            s.remaining(),
            ceil_secs(s.outcome().reset_after_ms)
        ));
    }
    out.push(("RateLimit-Policy", policy));
    out.push(("RateLimit", current));
    out
}

/// `Decision::problem_body` before the model.
fn old_problem_body(d: &Decision<'_>) -> Option<String> {
    d.refused_by()?;
    let violated: Vec<String> = d
        .statuses()
        .iter()
        .filter(|s| !s.admits())
        .map(|s| format!("\"{}\"", s.name()))
        .collect();
    Some(format!(
        "{{\"type\":\"https://iana.org/assignments/http-problem-types#quota-exceeded\",\
         \"title\":\"Request cannot be satisfied as assigned quota has been exceeded\",\
         \"status\":429,\"violated-policies\":[{}]}}",
        violated.join(",")
    ))
}

/// The transport's `AnswerHeaders::encode` before the model: the same
/// pairs as `name: value` lines, names in lower case (as `http` spells
/// them).
fn old_encode(pairs: &[(&'static str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        out.extend_from_slice(name.to_ascii_lowercase().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn rendered(report: &RateReport) -> Vec<(&'static str, String)> {
    report
        .fields()
        .map(|(name, value)| (name.as_str(), value.into_string()))
        .collect()
}

/// Checks every rendering of `decision`'s report against the former ones.
fn renders_as_before(decision: &Decision<'_>) -> Result<(), TestCaseError> {
    let seed = old_headers(decision);
    let mut with_ietf = seed.clone();
    with_ietf.extend(old_ietf_headers(decision));

    for (ietf, expected) in [(false, &seed), (true, &with_ietf)] {
        let report = RateReport::new(decision).with_ietf(ietf);
        prop_assert_eq!(&rendered(&report), expected, "ietf {}", ietf);
        let mut head = Vec::new();
        report.encode(&mut head);
        prop_assert_eq!(head, old_encode(expected));
        for field in FieldName::ALL {
            let present = expected.iter().any(|(n, _)| *n == field.as_str());
            for spelling in [
                field.as_str().to_owned(),
                field.lowercase().to_owned(),
                field.as_str().to_ascii_uppercase(),
            ] {
                prop_assert_eq!(report.sets(spelling.as_bytes()), present, "{}", spelling);
            }
            prop_assert_eq!(report.value(field).is_some(), present);
        }
        prop_assert!(!report.sets(b"content-type"));
        prop_assert_eq!(report.problem_body(), old_problem_body(decision));
        prop_assert_eq!(report.is_admitted(), decision.is_admitted());
        prop_assert_eq!(report.retry_after_secs(), decision.retry_after_secs());
        prop_assert_eq!(
            report
                .minute()
                .map(|m| (m.name.as_ref(), m.count, m.remaining)),
            decision
                .minute()
                .map(|m| (m.name(), m.count(), m.remaining()))
        );
        prop_assert_eq!(
            report
                .daily()
                .map(|m| (m.name.as_ref(), m.count, m.remaining)),
            decision
                .daily()
                .map(|m| (m.name(), m.count(), m.remaining()))
        );
        prop_assert_eq!(
            report.refused_by().map(|m| m.name.as_ref()),
            decision.refused_by().map(|m| m.name())
        );
        let limits: Vec<_> = report
            .limits()
            .iter()
            .map(|l| {
                (
                    l.name.as_ref(),
                    l.count,
                    l.remaining,
                    l.admits,
                    l.daily,
                    l.reset_after,
                )
            })
            .collect();
        let statuses: Vec<_> = decision
            .statuses()
            .iter()
            .map(|s| {
                (
                    s.name(),
                    s.count(),
                    s.remaining(),
                    s.admits(),
                    s.limit().is_daily(),
                    s.reset_after(),
                )
            })
            .collect();
        prop_assert_eq!(limits, statuses);
    }
    // The decision's own renderers.
    let pairs: Vec<(&str, String)> = decision.headers().into_iter().collect();
    prop_assert_eq!(pairs, seed);
    let ietf: Vec<(&str, String)> = decision.ietf_headers().into_iter().collect();
    prop_assert_eq!(ietf, old_ietf_headers(decision));
    prop_assert_eq!(decision.problem_body(), old_problem_body(decision));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Random outcomes for random plans: every number the store could
    /// answer, admitted and refused, one limit or many, daily or not.
    #[test]
    fn the_report_renders_what_the_former_renderers_did(
        spec in policy_spec(),
        path in 0usize..4,
        cost in prop_oneof![Just(1u64), 1u64..4],
        outcomes in prop::collection::vec(outcome(), 8),
    ) {
        let policy = Policy::new(spec).unwrap();
        let req = Request { account: "acct", tier: "t", endpoint: PATHS[path], cost };
        let Ok(plan) = policy.plan(&req) else { return Ok(()) };
        let decision = Decision::from_outcomes(&plan, &outcomes[..plan.len()]).unwrap();
        renders_as_before(&decision)?;
    }

    /// Decisions of the memory store under the seed policy, as traffic
    /// spends the budgets.
    #[test]
    fn seed_decisions_render_as_before(
        calls in prop::collection::vec((0usize..2, 0usize..6, 0u64..30_000), 1..60),
    ) {
        let policy = Policy::seed();
        let store = quota_core::MemoryStore::new();
        let mut now = 1_700_000_000_000u64;
        for (tier, endpoint, gap) in calls {
            now += gap;
            let req = Request {
                account: "acct",
                tier: ["basic", "premium"][tier],
                endpoint: ["txt2img", "txt2video", "prompt/enhance", "img2txt", "transcribe", "videos/replace"][endpoint],
                cost: 1,
            };
            let decision = store.check(&policy, &req, quota_core::Timestamp::from_millis(now)).unwrap();
            renders_as_before(&decision)?;
        }
    }
}
