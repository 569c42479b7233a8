//! Differential test: the same random event sequence through
//! `quota_core::MemoryStore` and `RedisStore` (caller's clock, on the shared
//! Redis) gives identical outcomes at every step: admits, remaining,
//! reset_after and retry_after of every limit, for decisions and peeks.
//!
//! The policy has short windows (1 s and 5 s), all four algorithms,
//! tier-wide limits, a shared pattern budget and a per-match pattern budget;
//! events pick among a few accounts and endpoints, costs of 1 or 2, and time
//! gaps from 0 to more than a 5 s window.
//!
//! The first property runs again on the Redis Cluster of
//! `QUOTA_REDIS_CLUSTER` (`scripts/test.sh` starts it), where the accounts'
//! keys live on different masters.
//!
//! A second property lets the clock step back now and then (another node's
//! clock with `Clock::Caller`, or an adjustment) and compares Redis with a
//! reference model that applies `Limit::evaluate`/`Limit::commit` to states
//! it never drops: the memory store is left out there, because it rightly
//! sweeps states that have expired at a later time, which a clock going
//! back would still see.
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::OnceLock;

use proptest::prelude::*;
use std::collections::HashMap;

use quota_core::algorithm::{Algorithm, State};
use quota_core::policy::Plan;
use quota_core::policy::{
    Count, EndpointSpec, LimitSpec, Policy, PolicySpec, Request, TierSpec, WindowLength,
};
use quota_core::{MemoryStore, Outcomes, Timestamp};
use quota_redis::RedisStore;

const ACCOUNTS: [&str; 3] = ["alice", "bob", "c}{:%"];
const ENDPOINTS: [&str; 4] = ["a", "b", "p/x", "p/y"];

fn limit(
    endpoint: Option<&str>,
    per_match: bool,
    name: &str,
    window_ms: u64,
    count: u64,
    alg: Algorithm,
) -> LimitSpec {
    LimitSpec {
        endpoint: endpoint.map(str::to_owned),
        per_match,
        name: Some(name.to_owned()),
        window: WindowLength::from_millis(window_ms),
        count: Count::Limited(count),
        algorithm: alg,
    }
}

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        use Algorithm::*;
        let endpoints = ["a", "b", "p/*"]
            .into_iter()
            .map(|p| EndpointSpec {
                path: p.to_owned(),
                price: None,
                priority: None,
            })
            .collect();
        let limits = vec![
            limit(Some("a"), false, "a-fixed", 1000, 3, FixedWindow),
            limit(Some("a"), false, "a-log", 5000, 7, SlidingLog),
            limit(Some("b"), false, "b-gcra", 1000, 4, Gcra),
            limit(Some("b"), false, "b-counter", 5000, 9, SlidingWindow),
            limit(Some("p/*"), true, "each-counter", 1000, 2, SlidingWindow),
            limit(Some("p/*"), true, "each-gcra", 5000, 5, Gcra),
            limit(Some("p/*"), false, "shared-log", 5000, 6, SlidingLog),
            limit(None, false, "tier-fixed", 1000, 8, FixedWindow),
            limit(None, false, "tier-log", 5000, 20, SlidingLog),
        ];
        let spec = PolicySpec {
            endpoints,
            tiers: vec![TierSpec {
                name: "t".into(),
                granted: None,
                limits,
            }],
            uploads: None,
        };
        Policy::new(spec).unwrap()
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

#[derive(Clone, Debug)]
struct Event {
    gap_ms: i64,
    account: usize,
    endpoint: usize,
    cost: u64,
    peek: bool,
}

fn event() -> impl Strategy<Value = Event> {
    forward_or_back(0)
}

/// Gaps mostly forward; with weight `back`, a step back by up to 2 s.
fn forward_or_back(back: u32) -> impl Strategy<Value = Event> {
    let gap = prop_oneof![
        6 => Just(0i64),
        8 => 0i64..100,
        6 => 0i64..1500,
        2 => 0i64..7000,
        back => -2000i64..0,
    ];
    (
        gap,
        0..ACCOUNTS.len(),
        0..ENDPOINTS.len(),
        1u64..=2,
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(gap_ms, account, endpoint, cost, peek)| Event {
            gap_ms,
            account,
            endpoint,
            cost,
            peek,
        })
}

/// Runs `events` through the memory store and a `RedisStore` under `keys`
/// (on one Redis or a cluster) and compares every answer.
fn memory_and_redis_agree(
    keys: &common::TestKeys,
    start: u64,
    events: &[Event],
) -> Result<(), TestCaseError> {
    runtime().block_on(async {
        let redis = RedisStore::connect(&keys.url, keys.virtual_time_config())
            .await
            .unwrap();
        let memory = MemoryStore::new();
        let policy = policy();
        let mut now = 1_700_000_000_000 + start;
        for (step, e) in events.iter().enumerate() {
            now = now.saturating_add_signed(e.gap_ms);
            let req = Request {
                account: ACCOUNTS[e.account],
                tier: "t",
                endpoint: ENDPOINTS[e.endpoint],
                cost: e.cost,
            };
            let plan = policy.plan(&req).unwrap();
            let at = Timestamp::from_millis(now);
            let (expected, answer) = if e.peek {
                (
                    memory.peek_now(&plan, at),
                    redis.peek_detailed(&plan, at).await,
                )
            } else {
                (
                    memory.decide_now(&plan, at),
                    redis.decide_detailed(&plan, at).await,
                )
            };
            let answer = answer.unwrap();
            prop_assert_eq!(answer.now, at);
            prop_assert_eq!(answer.source, quota_redis::Source::Redis);
            prop_assert_eq!(
                &answer.outcomes,
                &expected,
                "step {} ({:?}) at {}",
                step,
                e,
                now
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn memory_and_redis_stores_decide_identically(start in 0u64..86_400_000, events in proptest::collection::vec(event(), 1..120)) {
        common::require_redis();
        let keys = common::TestKeys::new("differential");
        memory_and_redis_agree(&keys, start, &events)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The same on the Redis Cluster of `QUOTA_REDIS_CLUSTER` (skipped
    /// without it): the accounts' keys spread over three masters.
    #[test]
    fn memory_and_redis_cluster_stores_decide_identically(start in 0u64..86_400_000, events in proptest::collection::vec(event(), 1..120)) {
        let Some(keys) = common::TestKeys::cluster("differential-cluster") else {
            return Ok(());
        };
        memory_and_redis_agree(&keys, start, &events)?;
    }
}

/// The core arithmetic over states that are never dropped.
#[derive(Default)]
struct Reference {
    states: HashMap<String, State>,
}

impl Reference {
    fn run(&mut self, plan: &Plan<'_>, keys: &[String], now: Timestamp, commit: bool) -> Outcomes {
        let outcomes: Outcomes = plan
            .limits()
            .zip(keys)
            .map(|(l, k)| {
                l.limit().evaluate(
                    self.states.get(k).unwrap_or(&State::Empty),
                    now,
                    plan.cost(),
                )
            })
            .collect();
        if commit && outcomes.iter().all(|o| o.admits) {
            for (l, k) in plan.limits().zip(keys) {
                l.limit()
                    .commit(self.states.entry(k.clone()).or_default(), now, plan.cost());
            }
        }
        outcomes
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn redis_store_follows_the_core_arithmetic_when_the_clock_steps_back(
        start in 0u64..86_400_000,
        events in proptest::collection::vec(forward_or_back(2), 1..120),
    ) {
        common::require_redis();
        let keys = common::TestKeys::new("differential-back");
        let result: Result<(), TestCaseError> = runtime().block_on(async {
            let redis = RedisStore::connect(&keys.url, keys.virtual_time_config()).await.unwrap();
            let mut reference = Reference::default();
            let policy = policy();
            let mut now = 1_700_000_000_000 + start;
            for (step, e) in events.iter().enumerate() {
                now = now.saturating_add_signed(e.gap_ms);
                let req = Request { account: ACCOUNTS[e.account], tier: "t", endpoint: ENDPOINTS[e.endpoint], cost: e.cost };
                let plan = policy.plan(&req).unwrap();
                let at = Timestamp::from_millis(now);
                let expected = reference.run(&plan, &redis.plan_keys(&plan), at, !e.peek);
                let answer = if e.peek { redis.peek_detailed(&plan, at).await } else { redis.decide_detailed(&plan, at).await };
                prop_assert_eq!(&answer.unwrap().outcomes, &expected, "step {} ({:?}) at {}", step, e, now);
            }
            Ok(())
        });
        result?;
    }
}
