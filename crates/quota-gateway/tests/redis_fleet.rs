//! Two gateways (in one process, each on its own thread and runtime) on one
//! Redis (127.0.0.1:6379, started by `scripts/test.sh`): one budget and one
//! set of accounts for both; and a gateway whose Redis goes away.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../quota-redis/tests/common/private_redis.rs"]
mod private_redis;
mod support;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use private_redis::PrivateRedis;
use quota_redis::FailurePolicy;
use support::{early_in_window, setup, Gw, Http, Upstream};

const REDIS: &str = "redis://127.0.0.1:6379";

/// A key prefix no other test uses; its keys are deleted on drop.
struct Prefix(String);

impl Prefix {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Prefix(format!("quota-e2e-{}-{nanos}:", std::process::id()))
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        // Best effort: limit keys expire on their own; accounts do not.
        let script = format!(
            "redis-cli -h 127.0.0.1 -p 6379 --scan --pattern '{}*' | xargs -r redis-cli -h 127.0.0.1 -p 6379 del >/dev/null",
            self.0
        );
        let _ = Command::new("sh").args(["-c", &script]).status();
    }
}

/// A gateway in front of `up`, its counters and accounts in the shared
/// Redis under `prefix`.
async fn node(up: &Upstream, prefix: &Prefix) -> Gw {
    setup(&up.url())
        .redis(REDIS, Some(&prefix.0), FailurePolicy::default())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_accounts_and_exactly_one_budget() {
    let up = Upstream::start().await;
    let prefix = Prefix::new();
    let (a, b) = (node(&up, &prefix).await, node(&up, &prefix).await);
    let http = Http::default();

    // An account created on A is known to B.
    let (id, key) = http.create_account(&a).await;
    let on_b = http.get(&b.url("/v1/limits"), Some(&key)).await;
    assert_eq!(on_b.status, 200, "{:?}", on_b.body);
    assert_eq!(on_b.json()["tier"], "basic");

    // 160 concurrent requests on one key through both nodes: exactly the
    // 100 a minute of `slow` are admitted.
    early_in_window(60_000, Duration::from_secs(10)).await;
    let tasks: Vec<_> = (0..160)
        .map(|i| {
            let url = if i % 2 == 0 {
                a.url("/v1/slow")
            } else {
                b.url("/v1/slow")
            };
            let (http, key) = (http.clone(), key.clone());
            tokio::spawn(async move { http.post(&url, Some(&key)).await.status.as_u16() })
        })
        .collect();
    let mut admitted = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => admitted += 1,
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((admitted, refused), (100, 60));

    // A payment recorded on A makes the account Premium on B at once.
    assert_eq!(http.pay(&a, &id, "10.00").await.status, 200);
    let res = http.post(&b.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-ratelimit-limit"), Some("300"));

    let metrics =
        String::from_utf8_lossy(&http.get(&b.url("/metrics"), None).await.body).into_owned();
    assert!(
        metrics.contains("quota_store_info{backend=\"redis\",mode=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("quota_redis_up{failure_policy=\"closed\"} 1"),
        "{metrics}"
    );
    let health = http.get(&a.url("/healthz"), None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["store"]["backend"], "redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_switches_to_the_local_fallback_and_shows_it() {
    let up = Upstream::start().await;
    let mut redis = tokio::task::block_in_place(PrivateRedis::start);
    let failure: FailurePolicy = "local:2".parse().unwrap();
    let gw = setup(&up.url())
        .redis(&redis.url(), None, failure)
        .start()
        .await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let (_, unseen) = http.create_account(&gw).await;
    let res = http.post(&gw.url("/v1/slow"), Some(&key)).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-ratelimit-limit"), Some("100"));

    tokio::task::block_in_place(|| redis.kill());
    // A caller seen before is still decided, by the local fallback.
    let res = http.post(&gw.url("/v1/slow"), Some(&key)).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    // A key never seen cannot be resolved without Redis.
    let res = http.post(&gw.url("/v1/slow"), Some(&unseen)).await;
    assert_eq!(res.status, 503, "{:?}", res.body);
    assert!(res.json()["message"].is_string());

    let metrics =
        String::from_utf8_lossy(&http.get(&gw.url("/metrics"), None).await.body).into_owned();
    assert!(
        metrics.contains("quota_redis_up{failure_policy=\"local:2\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("mode=\"fallback\""), "{metrics}");
    assert!(
        metrics.contains("quota_redis_fallback_decisions_total{failure_policy=\"local:2\"} 1"),
        "{metrics}"
    );
    let health = http.get(&gw.url("/healthz"), None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "degraded");
}
