//! `/healthz` shows the store as it is now: a gateway on a Redis of the
//! test's own answers 503 while that Redis is down and 200 again within
//! about two seconds of its return, with no other request sent (a load
//! balancer that took the node out must be able to take it back).

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../quota-redis/tests/common/private_redis.rs"]
mod private_redis;
mod support;

use std::time::{Duration, Instant};

use private_redis::PrivateRedis;
use quota_redis::FailurePolicy;
use support::{setup, Gw, Http};

/// Polls `/healthz` until it answers `status`; how long that took.
async fn until_health(http: &Http, gw: &Gw, status: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let a = http.get(&gw.url("/healthz"), None).await;
        if a.status == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "/healthz still {} after {within:?}, expected {status}: {:?}",
            a.status,
            a.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_follows_redis_down_and_back_without_other_requests() {
    let mut redis = tokio::task::block_in_place(PrivateRedis::start);
    let store = format!("redis://127.0.0.1:{}", redis.port());
    let gw = setup("http://127.0.0.1:9")
        .redis(&store, Some("quota-e2e-health:"), FailurePolicy::default())
        .start()
        .await;
    let http = Http::default();
    until_health(&http, &gw, 200, Duration::from_secs(5)).await;

    tokio::task::block_in_place(|| redis.kill());
    let down = until_health(&http, &gw, 503, Duration::from_secs(5)).await;
    let a = http.get(&gw.url("/healthz"), None).await;
    assert_eq!(a.json()["status"], "unavailable");

    tokio::task::block_in_place(|| redis.restart());
    // About two seconds (a ping a second at most, and the reconnection),
    // with room for a busy machine.
    let back = until_health(&http, &gw, 200, Duration::from_secs(3)).await;
    let a = http.get(&gw.url("/healthz"), None).await;
    assert_eq!(a.json()["status"], "ok");
    assert_eq!(a.json()["store"]["redis_ok"], true);
    eprintln!("503 after {down:?} down, 200 after {back:?} back");
}
