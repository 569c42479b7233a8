//! Faults: a private redis-server is killed under load and started again on
//! the same port. For each failure policy: it does what it says during the
//! outage, no call hangs (each returns within the timeout), nothing panics,
//! decisions come from Redis again within 2 s of its return, and no count is
//! lost or doubled for the requests Redis answered.
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quota_core::algorithm::Algorithm;
use quota_core::policy::{
    Count, EndpointSpec, LimitSpec, Policy, PolicySpec, Request, TierSpec, WindowLength,
};
use quota_core::{StoreError, Timestamp};
use quota_redis::{Clock, FailurePolicy, RedisConfig, RedisStore, Source};

const TIMEOUT: Duration = Duration::from_millis(250);
/// Scheduling noise allowed on a shared machine.
const SLACK: Duration = Duration::from_millis(250);
/// Virtual time: every request falls in one daily window, so the count in
/// Redis is exactly what was admitted there.
const NOW: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const BIG: u64 = 1_000_000;
const NODES: u32 = 3;

fn policy() -> Policy {
    let limit = |endpoint: &str, count| LimitSpec {
        endpoint: Some(endpoint.to_owned()),
        per_match: false,
        name: Some("daily".to_owned()),
        window: WindowLength::from_secs(86_400),
        count: Count::Limited(count),
        algorithm: Algorithm::FixedWindow,
    };
    let spec = PolicySpec {
        endpoints: ["load", "small"]
            .map(|p| EndpointSpec {
                path: p.into(),
                price: None,
                priority: None,
            })
            .to_vec(),
        tiers: vec![TierSpec {
            name: "t".into(),
            granted: None,
            limits: vec![limit("load", BIG), limit("small", 6)],
        }],
        uploads: None,
    };
    Policy::new(spec).unwrap()
}

/// One call made under load.
struct Call {
    start: Instant,
    end: Instant,
    result: Result<Source, StoreError>,
}

/// Remaining units of the `load` limit, as Redis has it.
async fn redis_remaining(store: &RedisStore, policy: &Policy) -> u64 {
    let plan = policy
        .plan(&Request {
            account: "a",
            tier: "t",
            endpoint: "load",
            cost: 1,
        })
        .unwrap();
    let answer = store.peek_detailed(&plan, NOW).await.unwrap();
    assert_eq!(answer.source, Source::Redis);
    answer.outcomes[0].remaining
}

async fn kill_and_restart(failure: FailurePolicy) {
    let mut server = common::PrivateRedis::start();
    let config = RedisConfig::default()
        .with_timeout(TIMEOUT)
        .with_clock(Clock::Caller)
        .with_ttl_grace(Duration::from_secs(3600))
        .with_failure_policy(failure);
    let store = RedisStore::connect(&server.url(), config).await.unwrap();
    let policy = Arc::new(policy());
    assert!(store.health().redis_ok);

    // Load: 8 tasks deciding in a loop until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, policy, stop) = (store.clone(), Arc::clone(&policy), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let plan = policy
                .plan(&Request {
                    account: "a",
                    tier: "t",
                    endpoint: "load",
                    cost: 1,
                })
                .unwrap();
            let mut calls = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let result = store.decide_detailed(&plan, NOW).await.map(|a| {
                    assert!(a.outcomes[0].admits, "the load limit is never reached");
                    a.source
                });
                calls.push(Call {
                    start,
                    end: Instant::now(),
                    result,
                });
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            calls
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| server.kill());
    let killed = Instant::now();

    // During the outage, a node with the local policy keeps its share.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let small = policy
        .plan(&Request {
            account: "a",
            tier: "t",
            endpoint: "small",
            cost: 1,
        })
        .unwrap();
    let mut small_admitted = 0;
    for _ in 0..5 {
        if let Ok(a) = store.decide_detailed(&small, NOW).await {
            if a.outcomes[0].admits {
                small_admitted += 1;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;

    tokio::task::block_in_place(|| server.restart());
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut calls = Vec::new();
    for t in tasks {
        calls.extend(t.await.expect("no load task panicked"));
    }

    // No call hung.
    let slowest = calls.iter().map(|c| c.end - c.start).max().unwrap();
    assert!(slowest <= TIMEOUT + SLACK, "slowest call took {slowest:?}");

    // During the outage, the policy answered.
    let outage: Vec<&Call> = calls
        .iter()
        .filter(|c| c.start > killed + Duration::from_millis(50) && c.end < restarted)
        .collect();
    assert!(
        outage.len() > 20,
        "{} calls during the outage",
        outage.len()
    );
    for c in &outage {
        match (failure, &c.result) {
            (
                FailurePolicy::Closed,
                Err(StoreError::Unavailable { .. } | StoreError::Timeout { .. }),
            ) => {}
            (FailurePolicy::Open, Ok(Source::Open))
            | (FailurePolicy::Local { .. }, Ok(Source::Local)) => {}
            (policy, result) => panic!("{policy}: a call during the outage gave {result:?}"),
        }
    }
    let expected_small = match failure {
        FailurePolicy::Closed => 0,
        FailurePolicy::Open => 5,
        FailurePolicy::Local { nodes } => 6 / u64::from(nodes),
    };
    assert_eq!(
        small_admitted, expected_small,
        "{failure}: admitted on a limit of 6 while Redis was down"
    );

    // Redis answered again within 2 s of its return.
    let back = calls
        .iter()
        .filter(|c| c.start >= restarted && matches!(c.result, Ok(Source::Redis)))
        .map(|c| c.end)
        .min()
        .expect("Redis answered again");
    assert!(
        back - restarted <= Duration::from_secs(2),
        "{failure}: back after {:?}",
        back - restarted
    );
    assert!(store.health().redis_ok);

    // The restarted (empty) Redis counted every request it answered, and
    // nothing twice: at least the admissions it answered to calls made after
    // it returned, at most the calls that were still in flight or started
    // after it returned.
    let used = BIG - redis_remaining(&store, &policy).await;
    let answered = calls
        .iter()
        .filter(|c| c.start >= restarted && matches!(c.result, Ok(Source::Redis)))
        .count() as u64;
    let possible = calls.iter().filter(|c| c.end >= restarted).count() as u64;
    assert!(
        answered <= used && used <= possible,
        "{failure}: {answered} answered <= {used} counted <= {possible} possible"
    );
    eprintln!(
        "{failure}: {} calls ({} during the outage), slowest {slowest:?}, Redis back {:?} after its restart, counted {used} in [{answered}, {possible}]",
        calls.len(),
        outage.len(),
        back - restarted
    );

    // Now quiet: every decision is counted exactly once.
    let plan = policy
        .plan(&Request {
            account: "a",
            tier: "t",
            endpoint: "load",
            cost: 1,
        })
        .unwrap();
    for _ in 0..20 {
        assert_eq!(
            store.decide_detailed(&plan, NOW).await.unwrap().source,
            Source::Redis
        );
    }
    assert_eq!(BIG - redis_remaining(&store, &policy).await, used + 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_errors_during_the_outage_and_recovers() {
    kill_and_restart(FailurePolicy::Closed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_admits_during_the_outage_and_recovers() {
    kill_and_restart(FailurePolicy::Open).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_fallback_keeps_each_nodes_share_and_recovers() {
    kill_and_restart(FailurePolicy::Local { nodes: NODES }).await;
}
