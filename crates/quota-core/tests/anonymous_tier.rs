//! `granted = "anonymous"`: the tier callers without a key are limited on,
//! declared once, and never charged (a priced endpoint needs a key).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use quota_core::account::Identity;
use quota_core::admission::{Admission, AdmissionConfig, Reason, RequestFacts, Step, Verdict};
use quota_core::policy::{Policy, PolicyError};
use quota_core::{MemoryStore, Receipt, Timestamp};

const POLICY: &str = r#"
[[endpoints]]
path = "free"

[[endpoints]]
path = "paid"
price = "0.50"

[[tiers]]
name = "basic"
granted = "signup"
limits = [ { window = "1m", count = 100 } ]

[[tiers]]
name = "anon"
granted = "anonymous"
limits = [ { endpoint = "free", window = "1m", count = 1 } ]
"#;

fn anonymous() -> Identity {
    Identity {
        account: "anonymous:203.0.113.7".into(),
        tier: "anon".into(),
    }
}

/// Drives an admission for `path` by `who` to its verdict (no charge is
/// expected: the test fails if one is asked for).
fn run(policy: &Policy, config: &AdmissionConfig, path: &str, who: Identity) -> Verdict {
    let store = MemoryStore::new();
    let mut admission = Admission::new(config, policy, RequestFacts::new(path, Ok("")));
    loop {
        match admission.step() {
            Step::Resolve(_) => admission.resolved(Ok(Some(who.clone()))),
            Step::Decide(plan) => {
                let now = Timestamp::from_secs(1_700_000_000);
                let outcomes = store.decide_now(&plan, now);
                admission.decided(Ok(Receipt::new(outcomes, now)));
            }
            Step::Done(verdict) => return verdict,
            other => panic!("an anonymous caller is never charged: {other:?}"),
        }
    }
}

#[test]
fn the_anonymous_tier_is_declared_once() {
    let policy = Policy::parse(POLICY).unwrap();
    assert_eq!(policy.anonymous_tier().map(|t| t.name()), Some("anon"));
    assert_eq!(policy.signup_tier().map(|t| t.name()), Some("basic"));
    assert!(Policy::seed().anonymous_tier().is_none());
    let twice = POLICY.replace("granted = \"signup\"", "granted = \"anonymous\"");
    let e = Policy::parse(&twice).unwrap_err();
    assert!(
        matches!(
            e,
            PolicyError::DuplicateGrant {
                event: "anonymous",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn an_anonymous_caller_is_limited_but_a_priced_endpoint_needs_a_key() {
    let policy = Policy::parse(POLICY).unwrap();
    let config = AdmissionConfig::default();
    let Verdict::Admit(admit) = run(&policy, &config, "/v1/free", anonymous()) else {
        panic!("refused");
    };
    assert_eq!(admit.report.unwrap().minute().unwrap().remaining, 0);
    let Verdict::Refuse(refusal) = run(&policy, &config, "/v1/paid", anonymous()) else {
        panic!("admitted");
    };
    assert!(matches!(refusal.reason, Reason::KeyRequired { .. }));
    assert_eq!(refusal.status(), 401);
    assert_eq!(
        refusal.reason.to_string(),
        "endpoint \"paid\" is priced: it needs an API key"
    );
    // In shadow mode it is told, not refused.
    let shadow = AdmissionConfig::default().shadow(true);
    let Verdict::Admit(admit) = run(&policy, &shadow, "/v1/paid", anonymous()) else {
        panic!("shadow mode refused");
    };
    assert!(matches!(admit.shadowed, Some(Reason::KeyRequired { .. })));
}
