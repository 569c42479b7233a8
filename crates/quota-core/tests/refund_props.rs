//! Refunds (`quota_core::admission::refund`), driven synchronously with the
//! memory store and accounts: for any sequence of requests and upstream
//! results, what the counters and the credit hold is exactly what the
//! requests that were not refunded took, under every `RefundOn`, with
//! shadow mode, unmetered endpoints, priced endpoints and every algorithm
//! in the mix (`docs/contract.md`, refunds).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use proptest::prelude::*;
use quota_core::account::{AccountAdmin, Accounts, Identity, MemoryAccounts, NewAccount};
use quota_core::admission::{
    Admission, AdmissionConfig, RefundOn, RequestFacts, Step, Taken, UpstreamResult, Verdict,
};
use quota_core::algorithm::Algorithm;
use quota_core::policy::{EndpointSpec, LimitSpec, Money, Policy, Request, WindowLength};
use quota_core::{MemoryStore, Outcomes, Store, Timestamp};

const PRICE: Money = Money::from_dollars(2);
const CREDIT: Money = Money::from_dollars(1_000);
const T0: u64 = 1_700_000_000_000;

/// The memory store and accounts answer at once: their futures are ready.
fn now<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a memory future was not ready"),
    }
}

/// `free` and `paid` ($2), each with a minute of fixed window and ten
/// seconds of sliding window counter; one tier-wide GCRA and one tier-wide
/// sliding log; `limits` unmetered.
fn policy() -> Policy {
    let mut spec = Policy::seed().spec().clone();
    spec.endpoints.push(EndpointSpec {
        path: "paid".into(),
        price: Some(PRICE),
        priority: None,
    });
    spec.endpoints.push(EndpointSpec {
        path: "free".into(),
        price: None,
        priority: None,
    });
    let basic = spec.tiers.iter_mut().find(|t| t.name == "basic").unwrap();
    basic.limits.clear();
    let limit = |endpoint: Option<&str>, name: &str, window_ms: u64, count, algorithm| {
        let mut l = LimitSpec::new(endpoint, WindowLength::from_millis(window_ms), count);
        l.name = Some(name.into());
        l.algorithm = algorithm;
        l
    };
    for e in ["free", "paid"] {
        basic
            .limits
            .push(limit(Some(e), "minute", 60_000, 6, Algorithm::FixedWindow));
        basic
            .limits
            .push(limit(Some(e), "ten", 10_000, 4, Algorithm::SlidingWindow));
    }
    basic
        .limits
        .push(limit(None, "smooth", 8_000, 5, Algorithm::Gcra));
    basic
        .limits
        .push(limit(None, "log", 5_000, 7, Algorithm::SlidingLog));
    Policy::new(spec).unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Free,
    Paid,
    Unmetered,
}

impl Path {
    fn as_str(self) -> &'static str {
        match self {
            Path::Free => "/v1/free",
            Path::Paid => "/v1/paid",
            Path::Unmetered => "/v1/limits",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Req {
    path: Path,
    /// Milliseconds after the previous request.
    gap_ms: u64,
    /// Milliseconds after the decision that the upstream's result is known.
    answer_ms: u64,
    result: UpstreamResult,
}

fn req() -> impl Strategy<Value = Req> {
    let path =
        prop_oneof![4 => Just(Path::Free), 3 => Just(Path::Paid), 1 => Just(Path::Unmetered)];
    let result = prop_oneof![
        4 => Just(UpstreamResult::Answered(200)),
        1 => Just(UpstreamResult::Answered(404)),
        2 => Just(UpstreamResult::Unreachable),
        2 => Just(UpstreamResult::TimedOut),
        2 => Just(UpstreamResult::Answered(500)),
        1 => Just(UpstreamResult::Answered(503)),
    ];
    // Gaps from none to past every window; answers from at once to past
    // the GCRA's interval and the sliding windows' edges.
    let gap = prop_oneof![2 => Just(0u64), 4 => 0u64..3_000, 1 => 0u64..70_000];
    (path, gap, 0u64..4_000, result).prop_map(|(path, gap_ms, answer_ms, result)| Req {
        path,
        gap_ms,
        answer_ms,
        result,
    })
}

fn refund_on() -> impl Strategy<Value = RefundOn> {
    prop_oneof![
        Just(RefundOn::Never),
        Just(RefundOn::Unreachable),
        Just(RefundOn::ServerErrors)
    ]
}

/// Every metered endpoint's outcomes at `at`, as the store would decide them.
fn peek_all(store: &MemoryStore, policy: &Policy, at: Timestamp) -> Vec<Outcomes> {
    ["free", "paid"]
        .into_iter()
        .map(|endpoint| {
            let plan = policy
                .plan(&Request {
                    account: "acct-1",
                    tier: "basic",
                    endpoint,
                    cost: 1,
                })
                .unwrap();
            store.peek_now(&plan, at)
        })
        .collect()
}

/// One admission, run on the memory store and accounts at `at`: the
/// verdict, the caller, and what it took.
fn admit(
    config: &AdmissionConfig,
    policy: &Policy,
    store: &MemoryStore,
    accounts: &MemoryAccounts,
    path: Path,
    at: Timestamp,
) -> (Verdict, Option<Identity>) {
    let mut admission = Admission::new(config, policy, RequestFacts::new(path.as_str(), Ok("k-1")));
    loop {
        match admission.step() {
            Step::Resolve(key) => {
                let answer = now(accounts.resolve(key));
                admission.resolved(answer);
            }
            Step::Charge { account, price } => {
                let answer = now(accounts.charge(account, price));
                admission.charged(answer);
            }
            Step::Decide(plan) => {
                let answer = now(store.decide_with_receipt(&plan, at));
                admission.decided(answer);
            }
            Step::Refund { account, amount } => {
                now(accounts.refund(account, amount)).unwrap();
                admission.refunded();
            }
            Step::Done(verdict) => return (verdict, admission.take_identity()),
        }
    }
}

fn accounts() -> MemoryAccounts {
    let accounts = MemoryAccounts::new();
    let new = NewAccount {
        id: "acct-1".into(),
        api_key: "k-1".into(),
        tier: "basic".into(),
        credit: CREDIT,
    };
    now(accounts.create(new, Timestamp::EPOCH)).unwrap();
    accounts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// A store that gives back what the refunded requests took answers
    /// every later request exactly as a store that never counted them, and
    /// the account holds the credit of the requests kept.
    #[test]
    fn the_counters_hold_exactly_the_requests_not_refunded(
        reqs in prop::collection::vec(req(), 1..40),
        on in refund_on(),
        shadow in prop::bool::weighted(0.25),
    ) {
        let policy = policy();
        let config = AdmissionConfig::default()
            .unmetered(["limits"])
            .shadow(shadow)
            .refund_on(on);
        let (store, accounts) = (MemoryStore::new(), accounts());
        // The reference: counts only the requests that are kept.
        let kept_store = MemoryStore::new();
        let mut spent = Money::ZERO;
        let mut t = T0;
        for (i, r) in reqs.iter().enumerate() {
            t += r.gap_ms;
            // The answer comes before the next request.
            let next_gap = reqs.get(i + 1).map_or(u64::MAX, |n| n.gap_ms);
            let at = Timestamp::from_millis(t);
            // Both stores see the same budget before each request.
            prop_assert_eq!(peek_all(&store, &policy, at), peek_all(&kept_store, &policy, at));
            let (verdict, who) = admit(&config, &policy, &store, &accounts, r.path, at);
            let Verdict::Admit(mut admit) = verdict else {
                // Refused: nothing taken, the credit given back already.
                continue;
            };
            let taken: Taken = admit.take();
            prop_assert_eq!(taken.credit.is_some(), r.path == Path::Paid && !shadow);
            prop_assert_eq!(
                taken.receipt.is_some(),
                r.path != Path::Unmetered && admit.shadowed.is_none()
            );
            let refunded = taken.refund_for(on, r.result);
            prop_assert_eq!(refunded.is_some(), !taken.is_empty() && on.reason(r.result).is_some());
            let later = Timestamp::from_millis(t + r.answer_ms.min(next_gap));
            match refunded {
                Some(_) => {
                    if let Some(receipt) = &taken.receipt {
                        let who = who.as_ref().unwrap();
                        let endpoint = &r.path.as_str()[4..];
                        let plan = taken.plan(&policy, who, endpoint).unwrap();
                        now(store.refund(&plan, receipt, later)).unwrap();
                    }
                    if let Some(credit) = taken.credit {
                        now(accounts.refund("acct-1", credit)).unwrap();
                    }
                }
                None => {
                    if let Some(receipt) = &taken.receipt {
                        let endpoint = &r.path.as_str()[4..];
                        let plan = policy
                            .plan(&Request { account: "acct-1", tier: "basic", endpoint, cost: 1 })
                            .unwrap();
                        let kept = kept_store.decide_now(&plan, at);
                        prop_assert_eq!(&kept, &receipt.outcomes, "the reference decided otherwise");
                    }
                    if let Some(credit) = taken.credit {
                        spent = Money::from_micros(spent.micros() + credit.micros());
                    }
                }
            }
            let account = now(accounts.get("acct-1")).unwrap().unwrap();
            prop_assert_eq!(account.credit, Money::from_micros(CREDIT.micros() - spent.micros()));
        }
        let end = Timestamp::from_millis(t + 4_000);
        prop_assert_eq!(peek_all(&store, &policy, end), peek_all(&kept_store, &policy, end));
    }
}

/// The refund comes before the next request; a refund answered later than
/// the decision (the upstream timed out) still gives back exactly.
#[test]
fn a_refund_after_a_timeout_gives_back_the_whole_request() {
    let policy = policy();
    let config = AdmissionConfig::default();
    let (store, accounts) = (MemoryStore::new(), accounts());
    let at = Timestamp::from_millis(T0);
    let before = peek_all(&store, &policy, at);
    let (verdict, who) = admit(&config, &policy, &store, &accounts, Path::Paid, at);
    let Verdict::Admit(mut admit) = verdict else {
        panic!("refused")
    };
    let taken = admit.take();
    assert_eq!(taken.credit, Some(PRICE));
    let reason = taken.refund_for(config.refunds(), UpstreamResult::TimedOut);
    assert_eq!(reason.map(|r| r.as_str()), Some("timeout"));
    let plan = taken.plan(&policy, who.as_ref().unwrap(), "paid").unwrap();
    let later = Timestamp::from_millis(T0 + 3_000);
    now(store.refund(&plan, taken.receipt.as_ref().unwrap(), later)).unwrap();
    now(accounts.refund("acct-1", PRICE)).unwrap();
    // As if it never came: what a store that never saw it says then.
    assert_eq!(
        peek_all(&store, &policy, later),
        peek_all(&MemoryStore::new(), &policy, later)
    );
    assert_eq!(peek_all(&MemoryStore::new(), &policy, at), before);
    let account = now(accounts.get("acct-1")).unwrap().unwrap();
    assert_eq!((account.credit, account.requests), (CREDIT, 0));
}
