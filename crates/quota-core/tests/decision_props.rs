//! Multi-limit decisions over random policies and traffic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use proptest::prelude::*;
use quota_core::algorithm::Algorithm;
use quota_core::policy::{
    Count, EndpointSpec, LimitSpec, Policy, PolicySpec, Request, TierSpec, WindowLength,
};
use quota_core::{Decision, MemoryStore, Timestamp};

const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::FixedWindow,
    Algorithm::SlidingLog,
    Algorithm::SlidingWindow,
    Algorithm::Gcra,
];
const PATHS: [&str; 4] = ["a", "b", "p/x", "p/y"];

fn limit_spec() -> impl Strategy<Value = LimitSpec> {
    (0usize..4, 50u64..4000, 1u64..6, 0usize..4).prop_map(|(scope, window, count, alg)| {
        let (endpoint, per_match) = match scope {
            0 => (None, false),
            1 => (Some("a".to_owned()), false),
            2 => (Some("p/*".to_owned()), false),
            _ => (Some("p/*".to_owned()), true),
        };
        LimitSpec {
            endpoint,
            per_match,
            name: None,
            window: WindowLength::from_millis(window),
            count: Count::Limited(count),
            algorithm: ALGORITHMS[alg],
        }
    })
}

fn policy_spec() -> impl Strategy<Value = PolicySpec> {
    policy_of(prop::collection::vec(limit_spec(), 1..5))
}

/// Five to eight limits on one endpoint: one bucket with more cells than
/// the store's single-pass decision keeps what it read for (four).
fn wide_policy_spec() -> impl Strategy<Value = PolicySpec> {
    let on_a = limit_spec().prop_map(|l| LimitSpec {
        endpoint: Some("a".to_owned()),
        per_match: false,
        ..l
    });
    policy_of(prop::collection::vec(on_a, 5..9))
}

fn policy_of(limits: impl Strategy<Value = Vec<LimitSpec>>) -> impl Strategy<Value = PolicySpec> {
    limits.prop_map(|mut limits| {
        for (i, l) in limits.iter_mut().enumerate() {
            l.name = Some(format!("l{i}"));
        }
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

fn traffic() -> impl Strategy<Value = Vec<(usize, usize, u64, u64)>> {
    prop::collection::vec((0usize..2, 0usize..4, 0u64..1500, 1u64..3), 1..120)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn decisions_are_all_or_nothing_and_retry_after_is_enough(spec in policy_spec(), events in traffic()) {
        let policy = Policy::new(spec).unwrap();
        let store = MemoryStore::new();
        let mut now = 1_795_860_000_000u64;
        for (account, path, gap, cost) in events {
            now += gap;
            let account = format!("acct-{account}");
            let req = Request { account: &account, tier: "t", endpoint: PATHS[path], cost };
            let Ok(plan) = policy.plan(&req) else { continue };
            let t = Timestamp::from_millis(now);
            let before = store.peek_now(&plan, t);
            let outcomes = store.decide_now(&plan, t);
            prop_assert_eq!(&before, &outcomes, "peek predicts decide");
            let decision = Decision::from_outcomes(&plan, &outcomes).unwrap();
            prop_assert_eq!(decision.is_admitted(), outcomes.iter().all(|o| o.admits));
            if !decision.is_admitted() {
                prop_assert_eq!(store.peek_now(&plan, t), before, "a refusal changed some limit");
                let secs = decision.retry_after_secs().unwrap();
                prop_assert!(secs >= 1);
                let later = store.peek_now(&plan, Timestamp::from_millis(now + secs * 1000));
                prop_assert!(later.iter().all(|o| o.admits), "refused again after Retry-After: {:?}", later);
            }
        }
    }

    #[test]
    fn policies_survive_a_serialize_parse_round_trip(spec in policy_spec()) {
        let policy = Policy::new(spec.clone()).unwrap();
        let from_toml = Policy::from_toml(&policy.to_toml()).unwrap();
        let from_json = Policy::from_json(&policy.to_json()).unwrap();
        prop_assert_eq!(from_toml.spec(), &spec);
        prop_assert_eq!(from_json.spec(), &spec);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// A client pacing itself from the policy never meets a refusal.
    #[test]
    fn the_pacers_schedule_never_draws_a_429(spec in policy_spec(), path in 0usize..4, arrivals in prop::collection::vec(0u64..800, 1..150)) {
        let policy = Policy::new(spec).unwrap();
        let store = MemoryStore::new();
        let req = Request { account: "client", tier: "t", endpoint: PATHS[path], cost: 1 };
        let plan = policy.plan(&req).unwrap();
        let mut pacer = quota_core::client::Pacer::for_plan(&plan);
        let mut now = 1_795_860_000_123u64;
        for gap in arrivals {
            now += gap;
            let send_at = pacer.ready_at(Timestamp::from_millis(now));
            now = send_at.as_millis();
            let outcomes = store.decide_now(&plan, send_at);
            prop_assert!(outcomes.iter().all(|o| o.admits), "refused at {}: {:?}", now, outcomes);
            pacer.on_send(send_at);
        }
    }
}

/// The reference for the memory store: one [`State`] per (account, scope,
/// limit fingerprint) in a plain map, never dropped, decided with the pure
/// algorithm functions.
#[derive(Default)]
struct Model {
    states: std::collections::HashMap<(String, String, u64), quota_core::algorithm::State>,
}

impl Model {
    fn decide(
        &mut self,
        plan: &quota_core::policy::Plan<'_>,
        now: Timestamp,
    ) -> Vec<quota_core::algorithm::LimitOutcome> {
        let key = |b: &quota_core::policy::Bucket<'_>, fp: u64| {
            (plan.account().to_owned(), b.scope().to_owned(), fp)
        };
        let mut outcomes = Vec::new();
        for b in plan.buckets() {
            for l in b.limits() {
                let state = self
                    .states
                    .get(&key(&b, l.fingerprint()))
                    .cloned()
                    .unwrap_or_default();
                outcomes.push(l.limit().evaluate(&state, now, plan.cost()));
            }
        }
        if outcomes.iter().all(|o| o.admits) {
            for b in plan.buckets() {
                for l in b.limits() {
                    let state = self.states.entry(key(&b, l.fingerprint())).or_default();
                    l.limit().commit(state, now, plan.cost());
                }
            }
        }
        outcomes
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    /// The memory store answers exactly as the plain model, across many
    /// accounts (table growth, sweeps that compact the arenas), time jumps
    /// (expiry), and two policies used in turn (a reload: buckets gain and
    /// lose limits, states of unchanged limits carry over).
    #[test]
    fn the_memory_store_answers_as_a_plain_map_of_states(
        a in policy_spec(),
        b in policy_spec(),
        events in prop::collection::vec((0usize..60, 0usize..4, 0u64..400, 1u64..3, any::<bool>(), 0u8..20), 1..300),
    ) {
        agrees_with_the_model(a, b, events)?;
    }

    /// The same with one bucket of five to eight limits.
    #[test]
    fn a_bucket_of_many_limits_answers_as_a_plain_map_of_states(
        a in wide_policy_spec(),
        b in wide_policy_spec(),
        events in prop::collection::vec((0usize..60, 0usize..1, 0u64..400, 1u64..3, any::<bool>(), 0u8..20), 1..300),
    ) {
        agrees_with_the_model(a, b, events)?;
    }
}

/// Drives the store and the [`Model`] with the same events under two
/// policies used in turn; every decision and peek must agree.
fn agrees_with_the_model(
    a: PolicySpec,
    b: PolicySpec,
    events: Vec<(usize, usize, u64, u64, bool, u8)>,
) -> Result<(), TestCaseError> {
    let policies = [Policy::new(a).unwrap(), Policy::new(b).unwrap()];
    let store = MemoryStore::with_shards(2);
    let mut model = Model::default();
    let mut now = 1_795_860_000_000u64;
    for (account, path, gap, cost, second, action) in events {
        now += if action == 0 { gap * 40 } else { gap };
        let t = Timestamp::from_millis(now);
        if (1..6).contains(&action) {
            store.sweep(t);
        }
        let policy = &policies[usize::from(second)];
        // Mostly three busy accounts, some of many others.
        let account = format!(
            "account-number-{}",
            if account < 45 { account % 3 } else { account }
        );
        let req = Request {
            account: &account,
            tier: "t",
            endpoint: PATHS[path],
            cost,
        };
        let Ok(plan) = policy.plan(&req) else {
            continue;
        };
        if action == 2 {
            let expected: Vec<_> = {
                let mut m = Model {
                    states: model.states.clone(),
                };
                m.decide(&plan, t)
            };
            prop_assert_eq!(
                store.peek_now(&plan, t).to_vec(),
                expected,
                "peek at {}",
                now
            );
            continue;
        }
        let got = store.decide_now(&plan, t);
        let expected = model.decide(&plan, t);
        prop_assert_eq!(
            got.to_vec(),
            expected,
            "decision at {} for {}",
            now,
            account
        );
    }
    Ok(())
}
