//! Exactness under concurrency: 64 tasks hammer one account's limit through
//! two `RedisStore`s (two connections, like two gateways) with the Redis
//! clock, over several 1 s windows. Windows are those of Redis `TIME`, which
//! the script reports with each answer.
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quota_core::algorithm::Algorithm;
use quota_core::policy::{
    Count, EndpointSpec, LimitSpec, Policy, PolicySpec, Request, TierSpec, WindowLength,
};
use quota_core::Timestamp;
use quota_redis::{RedisStore, Source};

const N: u64 = 25;
const WINDOW_MS: u64 = 1000;
const TASKS: usize = 64;
const RUN: Duration = Duration::from_millis(3300);

fn policy(alg: Algorithm) -> Policy {
    let spec = PolicySpec {
        endpoints: vec![EndpointSpec {
            path: "e".into(),
            price: None,
            priority: None,
        }],
        tiers: vec![TierSpec {
            name: "t".into(),
            granted: None,
            limits: vec![LimitSpec {
                endpoint: Some("e".into()),
                per_match: false,
                name: Some("second".into()),
                window: WindowLength::from_millis(WINDOW_MS),
                count: Count::Limited(N),
                algorithm: alg,
            }],
        }],
        uploads: None,
    };
    Policy::new(spec).unwrap()
}

struct Run {
    /// Redis time of every admitted request, sorted.
    admitted: Vec<u64>,
    refused: usize,
    errors: usize,
}

/// Hammers one key from `TASKS` tasks split over two stores.
async fn hammer(alg: Algorithm, test: &str) -> Run {
    let keys = common::TestKeys::new(test);
    // A generous timeout: this test is about counting, not latency.
    let config = keys.config().with_timeout(Duration::from_secs(2));
    let gateways = [
        RedisStore::connect(&keys.url, config.clone())
            .await
            .unwrap(),
        RedisStore::connect(&keys.url, config).await.unwrap(),
    ];
    let policy = Arc::new(policy(alg));
    let deadline = Instant::now() + RUN;
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let store = gateways[i % 2].clone();
        let policy = Arc::clone(&policy);
        tasks.push(tokio::spawn(async move {
            let plan = policy
                .plan(&Request {
                    account: "hot",
                    tier: "t",
                    endpoint: "e",
                    cost: 1,
                })
                .unwrap();
            let (mut admitted, mut refused, mut errors) = (Vec::new(), 0, 0);
            while Instant::now() < deadline {
                // The caller's clock is deliberately wrong: Redis TIME decides.
                match store.decide_detailed(&plan, Timestamp::EPOCH).await {
                    Ok(a) if a.outcomes[0].admits => {
                        assert_eq!(a.source, Source::Redis);
                        admitted.push(a.now.as_millis());
                    }
                    Ok(_) => refused += 1,
                    Err(_) => errors += 1,
                }
            }
            (admitted, refused, errors)
        }));
    }
    let mut run = Run {
        admitted: Vec::new(),
        refused: 0,
        errors: 0,
    };
    for t in tasks {
        let (a, r, e) = t.await.unwrap();
        run.admitted.extend(a);
        run.refused += r;
        run.errors += e;
    }
    run.admitted.sort_unstable();
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_admit_exactly_n_per_fixed_window() {
    let run = hammer(Algorithm::FixedWindow, "exact-fixed").await;
    let mut per_window: BTreeMap<u64, u64> = BTreeMap::new();
    for t in &run.admitted {
        *per_window.entry(t / WINDOW_MS).or_default() += 1;
    }
    assert!(
        per_window.len() >= 3,
        "the run spans several windows: {per_window:?}"
    );
    assert!(
        run.refused > 1000,
        "the limit was under pressure: {} refused",
        run.refused
    );
    for (w, n) in &per_window {
        assert!(*n <= N, "window {w} admitted {n} > {N}: {per_window:?}");
    }
    // Windows fully inside the run were saturated: exactly N each.
    let windows: Vec<_> = per_window.values().copied().collect();
    if run.errors == 0 {
        assert!(
            windows[1..windows.len() - 1].iter().all(|&n| n == N),
            "{per_window:?}"
        );
    }
    assert_eq!(run.errors, 0, "no call failed or timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_never_exceed_n_in_any_sliding_interval() {
    let run = hammer(Algorithm::SlidingLog, "exact-log").await;
    assert!(
        run.admitted.len() as u64 >= 3 * N,
        "{} admitted",
        run.admitted.len()
    );
    for pair in run.admitted.windows(N as usize + 1) {
        let span = pair[N as usize] - pair[0];
        assert!(span >= WINDOW_MS, "{} admitted within {span} ms", N + 1);
    }
    assert_eq!(run.errors, 0, "no call failed or timed out");
}
