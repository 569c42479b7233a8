//! The store conformance suite: what every [`Store`] must do, written once
//! as generic scenarios and instantiated per store by [`store_conformance!`]
//! (the memory store in `conformance_memory.rs`, Redis in
//! `conformance_redis.rs`). All scenarios run in virtual time: the store
//! must decide with the caller's `now`.
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]
// each test binary uses the whole suite, but not every helper
#![allow(dead_code)]

use std::mem::ManuallyDrop;

use quota_core::algorithm::{Algorithm, LimitOutcome};
use quota_core::policy::{
    Count, EndpointSpec, LimitSpec, Policy, PolicySpec, Request, TierSpec, WindowLength,
};
use quota_core::{Receipt, Store, Timestamp};

/// Every algorithm.
pub(crate) const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::FixedWindow,
    Algorithm::SlidingLog,
    Algorithm::SlidingWindow,
    Algorithm::Gcra,
];

/// A virtual epoch aligned to 1 s and 5 s windows.
pub(crate) const T0: u64 = 1_700_000_000_000;

/// Something that holds a store under test (and whatever must live with it).
pub(crate) trait Harness {
    type S: Store;
    fn store(&self) -> &Self::S;
}

/// One limit of a test policy: `endpoint` (`None`: tier-wide), `count` per
/// `window_ms`, named `name`.
#[derive(Clone, Copy)]
pub(crate) struct L {
    pub(crate) endpoint: Option<&'static str>,
    pub(crate) count: u64,
    pub(crate) window_ms: u64,
    pub(crate) alg: Algorithm,
    pub(crate) name: &'static str,
}

/// A policy with endpoints `e`, `x` and `y` and one tier `t` holding `limits`.
pub(crate) fn policy(limits: &[L]) -> Policy {
    let endpoints = ["e", "x", "y"]
        .into_iter()
        .map(|p| EndpointSpec {
            path: p.to_owned(),
            price: None,
            priority: None,
        })
        .collect();
    let limits = limits
        .iter()
        .map(|l| LimitSpec {
            endpoint: l.endpoint.map(str::to_owned),
            per_match: false,
            name: Some(l.name.to_owned()),
            window: WindowLength::from_millis(l.window_ms),
            count: Count::Limited(l.count),
            algorithm: l.alg,
        })
        .collect();
    let spec = PolicySpec {
        endpoints,
        tiers: vec![TierSpec {
            name: "t".to_owned(),
            granted: None,
            limits,
        }],
        uploads: None,
    };
    Policy::new(spec).unwrap()
}

/// One limit on endpoint `e`.
pub(crate) fn single(alg: Algorithm, count: u64, window_ms: u64) -> Policy {
    policy(&[L {
        endpoint: Some("e"),
        count,
        window_ms,
        alg,
        name: "only",
    }])
}

/// Decides a request; the outcomes by limit name.
pub(crate) async fn decide<S: Store>(
    s: &S,
    p: &Policy,
    account: &str,
    endpoint: &str,
    cost: u64,
    now: u64,
) -> Vec<(String, LimitOutcome)> {
    run(s, p, account, endpoint, cost, now, true).await
}

/// Peeks at a request; the outcomes by limit name.
pub(crate) async fn peek<S: Store>(
    s: &S,
    p: &Policy,
    account: &str,
    endpoint: &str,
    cost: u64,
    now: u64,
) -> Vec<(String, LimitOutcome)> {
    run(s, p, account, endpoint, cost, now, false).await
}

async fn run<S: Store>(
    s: &S,
    p: &Policy,
    account: &str,
    endpoint: &str,
    cost: u64,
    now: u64,
    commit: bool,
) -> Vec<(String, LimitOutcome)> {
    // `Store::decide` takes `&'a Plan<'a>` and `Plan` is invariant with drop
    // glue, so a plan owned here cannot be dropped after the call (E0597):
    // it is kept undropped (its buckets are inline: nothing leaks).
    let plan = ManuallyDrop::new(
        p.plan(&Request {
            account,
            tier: "t",
            endpoint,
            cost,
        })
        .unwrap(),
    );
    let now = Timestamp::from_millis(now);
    let outcomes = if commit {
        s.decide(&plan, now).await
    } else {
        s.peek(&plan, now).await
    }
    .unwrap();
    assert_eq!(outcomes.len(), plan.len(), "one outcome per limit");
    plan.limits()
        .map(|l| l.name().to_owned())
        .zip(outcomes)
        .collect()
}

fn only(o: &[(String, LimitOutcome)]) -> LimitOutcome {
    assert_eq!(o.len(), 1);
    o[0].1
}

fn named(o: &[(String, LimitOutcome)], name: &str) -> LimitOutcome {
    o.iter().find(|(n, _)| n == name).map(|(_, o)| *o).unwrap()
}

fn admitted(o: &[(String, LimitOutcome)]) -> bool {
    o.iter().all(|(_, o)| o.admits)
}

pub(crate) async fn admits_count_then_refuses_within_a_window<S: Store>(s: &S) {
    for alg in ALGORITHMS {
        let p = single(alg, 3, 1000);
        let acct = format!("count-{}", alg.as_str());
        for left in [2, 1, 0] {
            let o = only(&decide(s, &p, &acct, "e", 1, T0 + 100).await);
            assert!(o.admits, "{alg:?}");
            assert_eq!((o.remaining, o.retry_after_ms), (left, 0), "{alg:?}");
        }
        let refused = only(&decide(s, &p, &acct, "e", 1, T0 + 100).await);
        assert!(
            !refused.admits,
            "{alg:?}: the fourth request in the window is refused"
        );
        assert_eq!(refused.remaining, 0, "{alg:?}");
        assert!(
            (1..=2000).contains(&refused.retry_after_ms),
            "{alg:?}: {refused:?}"
        );
    }
}

pub(crate) async fn fixed_window_refills_at_the_next_window<S: Store>(s: &S) {
    let p = single(Algorithm::FixedWindow, 3, 1000);
    for _ in 0..3 {
        assert!(only(&decide(s, &p, "refill", "e", 1, T0 + 999).await).admits);
    }
    let refused = only(&decide(s, &p, "refill", "e", 1, T0 + 999).await);
    assert_eq!(
        (
            refused.admits,
            refused.retry_after_ms,
            refused.reset_after_ms
        ),
        (false, 1, 1)
    );
    let next = only(&decide(s, &p, "refill", "e", 1, T0 + 1000).await);
    assert_eq!(
        (next.admits, next.remaining, next.reset_after_ms),
        (true, 2, 1000)
    );
}

pub(crate) async fn refused_request_consumes_nothing<S: Store>(s: &S) {
    for alg in ALGORITHMS {
        let p = policy(&[
            L {
                endpoint: Some("e"),
                count: 2,
                window_ms: 1000,
                alg,
                name: "endpoint",
            },
            L {
                endpoint: None,
                count: 10,
                window_ms: 1000,
                alg,
                name: "tier",
            },
        ]);
        let acct = format!("refused-{}", alg.as_str());
        let now = T0 + 200;
        for _ in 0..2 {
            assert!(
                admitted(&decide(s, &p, &acct, "e", 1, now).await),
                "{alg:?}"
            );
        }
        let before = named(&peek(s, &p, &acct, "y", 1, now).await, "tier");
        assert_eq!(before.remaining, 7, "{alg:?}");
        for _ in 0..5 {
            let refused = decide(s, &p, &acct, "e", 1, now).await;
            assert!(
                !named(&refused, "endpoint").admits && named(&refused, "tier").admits,
                "{alg:?}"
            );
        }
        let after = named(&peek(s, &p, &acct, "y", 1, now).await, "tier");
        assert_eq!(
            after, before,
            "{alg:?}: refused requests left the tier-wide limit untouched"
        );
    }
}

pub(crate) async fn multi_limit_decision_is_all_or_nothing<S: Store>(s: &S) {
    for alg in ALGORITHMS {
        let p = policy(&[
            L {
                endpoint: Some("x"),
                count: 3,
                window_ms: 1000,
                alg,
                name: "x",
            },
            L {
                endpoint: None,
                count: 4,
                window_ms: 1000,
                alg,
                name: "tier",
            },
        ]);
        let acct = format!("all-or-nothing-{}", alg.as_str());
        let now = T0 + 10;
        for _ in 0..3 {
            assert!(
                admitted(&decide(s, &p, &acct, "x", 1, now).await),
                "{alg:?}"
            );
        }
        let x = decide(s, &p, &acct, "x", 1, now).await;
        assert!(!named(&x, "x").admits, "{alg:?}");
        assert_eq!(
            named(&x, "tier").remaining,
            0,
            "{alg:?}: the tier would admit this one, its last"
        );
        let y = decide(s, &p, &acct, "y", 1, now).await;
        assert!(
            admitted(&y),
            "{alg:?}: the refused x request did not take the tier's last unit"
        );
        assert_eq!(named(&y, "tier").remaining, 0, "{alg:?}");
        assert!(
            !admitted(&decide(s, &p, &acct, "y", 1, now).await),
            "{alg:?}"
        );
        let both = decide(s, &p, &acct, "x", 1, now).await;
        assert!(
            !named(&both, "x").admits && !named(&both, "tier").admits,
            "{alg:?}"
        );
    }
}

pub(crate) async fn retry_after_is_exactly_when_the_request_passes<S: Store>(s: &S) {
    for alg in ALGORITHMS {
        let p = single(alg, 2, 1000);
        let acct = format!("retry-{}", alg.as_str());
        let now = T0 + 137;
        for _ in 0..2 {
            assert!(only(&decide(s, &p, &acct, "e", 1, now).await).admits);
        }
        let refused = only(&decide(s, &p, &acct, "e", 1, now).await);
        assert!(!refused.admits, "{alg:?}");
        let r = refused.retry_after_ms;
        assert!(r >= 1, "{alg:?}");
        if r > 1 {
            assert!(
                !only(&peek(s, &p, &acct, "e", 1, now + r - 1).await).admits,
                "{alg:?}: 1 ms early is still refused"
            );
        }
        assert!(
            only(&decide(s, &p, &acct, "e", 1, now + r).await).admits,
            "{alg:?}: admitted after Retry-After ({r} ms)"
        );
    }
}

pub(crate) async fn peek_changes_nothing<S: Store>(s: &S) {
    for alg in ALGORITHMS {
        let p = single(alg, 3, 1000);
        let acct = format!("peek-{}", alg.as_str());
        for _ in 0..10 {
            let o = only(&peek(s, &p, &acct, "e", 1, T0 + 5).await);
            assert_eq!((o.admits, o.remaining), (true, 2), "{alg:?}");
        }
        for left in [2, 1, 0] {
            assert_eq!(
                only(&decide(s, &p, &acct, "e", 1, T0 + 5).await).remaining,
                left,
                "{alg:?}"
            );
        }
    }
}

pub(crate) async fn cost_counts_units<S: Store>(s: &S) {
    for alg in ALGORITHMS {
        let p = single(alg, 5, 1000);
        let acct = format!("cost-{}", alg.as_str());
        let now = T0 + 100;
        assert_eq!(
            only(&decide(s, &p, &acct, "e", 2, now).await).remaining,
            3,
            "{alg:?}"
        );
        assert_eq!(
            only(&decide(s, &p, &acct, "e", 2, now).await).remaining,
            1,
            "{alg:?}"
        );
        let refused = only(&decide(s, &p, &acct, "e", 2, now).await);
        assert_eq!((refused.admits, refused.remaining), (false, 1), "{alg:?}");
        let last = only(&decide(s, &p, &acct, "e", 1, now).await);
        assert_eq!((last.admits, last.remaining), (true, 0), "{alg:?}");
    }
}

pub(crate) async fn accounts_have_separate_budgets<S: Store>(s: &S) {
    for alg in ALGORITHMS {
        let p = single(alg, 1, 1000);
        let a = format!("sep-a-{}", alg.as_str());
        let b = format!("sep-b-{}", alg.as_str());
        assert!(only(&decide(s, &p, &a, "e", 1, T0).await).admits);
        assert!(!only(&decide(s, &p, &a, "e", 1, T0).await).admits);
        assert!(only(&decide(s, &p, &b, "e", 1, T0).await).admits, "{alg:?}");
    }
}

pub(crate) async fn old_state_counts_nothing_after_its_windows<S: Store>(s: &S) {
    for alg in ALGORITHMS {
        let p = single(alg, 3, 1000);
        let acct = format!("old-{}", alg.as_str());
        for _ in 0..3 {
            assert!(only(&decide(s, &p, &acct, "e", 1, T0 + 400).await).admits);
        }
        let later = only(&decide(s, &p, &acct, "e", 1, T0 + 10_400).await);
        assert_eq!((later.admits, later.remaining), (true, 2), "{alg:?}");
    }
}

/// Decides a request and keeps its receipt; `refund` gives one back.
pub(crate) async fn decide_kept<S: Store>(
    s: &S,
    p: &Policy,
    account: &str,
    endpoint: &str,
    now: u64,
) -> Receipt {
    let plan = ManuallyDrop::new(
        p.plan(&Request {
            account,
            tier: "t",
            endpoint,
            cost: 1,
        })
        .unwrap(),
    );
    s.decide_with_receipt(&plan, Timestamp::from_millis(now))
        .await
        .unwrap()
}

/// Gives back what `receipt` counted, at `now`.
pub(crate) async fn refund<S: Store>(
    s: &S,
    p: &Policy,
    account: &str,
    endpoint: &str,
    receipt: &Receipt,
    now: u64,
) {
    let plan = ManuallyDrop::new(
        p.plan(&Request {
            account,
            tier: "t",
            endpoint,
            cost: 1,
        })
        .unwrap(),
    );
    s.refund(&plan, receipt, Timestamp::from_millis(now))
        .await
        .unwrap();
}

/// An endpoint limit of 3 and a tier-wide one of 5 per second.
fn two_limits(alg: Algorithm) -> Policy {
    policy(&[
        L {
            endpoint: Some("e"),
            count: 3,
            window_ms: 1000,
            alg,
            name: "endpoint",
        },
        L {
            endpoint: None,
            count: 5,
            window_ms: 1000,
            alg,
            name: "tier",
        },
    ])
}

pub(crate) async fn a_refund_gives_back_every_limit_it_took<S: Store>(s: &S) {
    for alg in ALGORITHMS {
        let p = two_limits(alg);
        let acct = format!("refund-{}", alg.as_str());
        let now = T0 + 100;
        let kept = decide_kept(s, &p, &acct, "e", now).await;
        assert!(kept.admitted(), "{alg:?}");
        let given = decide_kept(s, &p, &acct, "e", now).await;
        assert!(given.admitted(), "{alg:?}");
        refund(s, &p, &acct, "e", &given, now + 20).await;
        // As if only the first had come: 2 left on the endpoint, 4 on the tier.
        let o = peek(s, &p, &acct, "e", 1, now + 20).await;
        assert_eq!(named(&o, "endpoint").remaining, 1, "{alg:?}: {o:?}");
        assert_eq!(named(&o, "tier").remaining, 3, "{alg:?}: {o:?}");
        for left in [1, 0] {
            let o = decide(s, &p, &acct, "e", 1, now + 20).await;
            assert!(admitted(&o), "{alg:?}");
            assert_eq!(named(&o, "endpoint").remaining, left, "{alg:?}");
        }
        assert!(
            !admitted(&decide(s, &p, &acct, "e", 1, now + 20).await),
            "{alg:?}"
        );
        // The tier-wide limit counted 3: 2 left for another endpoint (1
        // after that one).
        assert_eq!(
            named(&peek(s, &p, &acct, "y", 1, now + 20).await, "tier").remaining,
            1,
            "{alg:?}"
        );
    }
}

pub(crate) async fn a_refused_decision_gives_nothing_back<S: Store>(s: &S) {
    for alg in ALGORITHMS {
        let p = single(alg, 2, 1000);
        let acct = format!("refund-refused-{}", alg.as_str());
        let now = T0 + 300;
        let first = decide_kept(s, &p, &acct, "e", now).await;
        let second = decide_kept(s, &p, &acct, "e", now).await;
        let refused = decide_kept(s, &p, &acct, "e", now).await;
        assert!(
            first.admitted() && second.admitted() && !refused.admitted(),
            "{alg:?}"
        );
        refund(s, &p, &acct, "e", &refused, now).await;
        assert!(
            !only(&peek(s, &p, &acct, "e", 1, now).await).admits,
            "{alg:?}: a refusal took nothing"
        );
        refund(s, &p, &acct, "e", &second, now).await;
        let o = only(&peek(s, &p, &acct, "e", 1, now).await);
        assert_eq!((o.admits, o.remaining), (true, 0), "{alg:?}: one unit back");
    }
}

/// A unit counted in a window that has ended is not given back to the next
/// one: the next window's budget stays what its own requests left.
pub(crate) async fn a_refund_after_the_window_rolled_over_makes_no_budget<S: Store>(s: &S) {
    for alg in ALGORITHMS {
        let p = single(alg, 2, 1000);
        let acct = format!("refund-late-{}", alg.as_str());
        let early = decide_kept(s, &p, &acct, "e", T0 + 900).await;
        assert!(early.admitted(), "{alg:?}");
        // The next window: what it admits with the early unit still counted.
        let mut admitted_then = 0;
        for _ in 0..3 {
            admitted_then += u64::from(decide_kept(s, &p, &acct, "e", T0 + 1100).await.admitted());
        }
        refund(s, &p, &acct, "e", &early, T0 + 1200).await;
        let o = only(&peek(s, &p, &acct, "e", 1, T0 + 1200).await);
        let expected = match alg {
            // The early unit counted nothing in the new window: the new
            // window holds its own 2, and nothing is given back.
            Algorithm::FixedWindow => (2, false),
            // It weighed on the new window as the previous count: taken
            // from there, the one admitted then leaves room for one more.
            Algorithm::SlidingWindow => (1, true),
            // Its own entry is removed: room for one more.
            Algorithm::SlidingLog => (1, true),
            // T = 500 ms: the schedule (T0 + 1900) moves back by what the
            // early unit still held at the refund (1400 - 1200 = 200 ms),
            // not by its whole 500 ms (the request at T0 + 1100 found the
            // schedule at 1400 and took the rest): room for one more.
            Algorithm::Gcra => (1, true),
        };
        assert_eq!((admitted_then, o.admits), expected, "{alg:?}: {o:?}");
        assert_eq!(o.remaining, 0, "{alg:?}: never more than the limit");
    }
}

/// Instantiates every scenario as a `#[tokio::test]` over the harness that
/// `$make` (an async fn) returns.
macro_rules! store_conformance {
    ($make:path) => {
        mod store_conformance {
            use super::*;
            use $crate::conformance as suite;
            use $crate::conformance::Harness as _;

            #[tokio::test]
            async fn admits_count_then_refuses_within_a_window() {
                let h = $make().await;
                suite::admits_count_then_refuses_within_a_window(h.store()).await;
            }
            #[tokio::test]
            async fn fixed_window_refills_at_the_next_window() {
                let h = $make().await;
                suite::fixed_window_refills_at_the_next_window(h.store()).await;
            }
            #[tokio::test]
            async fn refused_request_consumes_nothing() {
                let h = $make().await;
                suite::refused_request_consumes_nothing(h.store()).await;
            }
            #[tokio::test]
            async fn multi_limit_decision_is_all_or_nothing() {
                let h = $make().await;
                suite::multi_limit_decision_is_all_or_nothing(h.store()).await;
            }
            #[tokio::test]
            async fn retry_after_is_exactly_when_the_request_passes() {
                let h = $make().await;
                suite::retry_after_is_exactly_when_the_request_passes(h.store()).await;
            }
            #[tokio::test]
            async fn peek_changes_nothing() {
                let h = $make().await;
                suite::peek_changes_nothing(h.store()).await;
            }
            #[tokio::test]
            async fn cost_counts_units() {
                let h = $make().await;
                suite::cost_counts_units(h.store()).await;
            }
            #[tokio::test]
            async fn accounts_have_separate_budgets() {
                let h = $make().await;
                suite::accounts_have_separate_budgets(h.store()).await;
            }
            #[tokio::test]
            async fn a_refund_gives_back_every_limit_it_took() {
                let h = $make().await;
                suite::a_refund_gives_back_every_limit_it_took(h.store()).await;
            }
            #[tokio::test]
            async fn a_refused_decision_gives_nothing_back() {
                let h = $make().await;
                suite::a_refused_decision_gives_nothing_back(h.store()).await;
            }
            #[tokio::test]
            async fn a_refund_after_the_window_rolled_over_makes_no_budget() {
                let h = $make().await;
                suite::a_refund_after_the_window_rolled_over_makes_no_budget(h.store()).await;
            }
            #[tokio::test]
            async fn old_state_counts_nothing_after_its_windows() {
                let h = $make().await;
                suite::old_state_counts_nothing_after_its_windows(h.store()).await;
            }
        }
    };
}
pub(crate) use store_conformance;
