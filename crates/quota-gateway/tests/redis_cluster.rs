//! Two gateways (in one process, each on its own thread and runtime) on one
//! Redis Cluster (`--store redis+cluster://...`: three masters and three
//! replicas on 127.0.0.1:7101..7106, started by `scripts/test.sh`, which
//! sets `QUOTA_REDIS_CLUSTER`; without it this test says that it skips):
//! one budget, exactly, and one set of accounts for both; `/healthz` and
//! `/metrics` show the cluster's health.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use quota_redis::FailurePolicy;
use support::redis_prefix::Prefix;
use support::{early_in_window, setup, Gw, Http, Upstream};

/// The cluster `scripts/test.sh` starts.
const CLUSTER: &str = "redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103";

/// The cluster's URL, checked healthy; `None` (the test skips) when
/// `QUOTA_REDIS_CLUSTER` is not set.
fn cluster_url() -> Option<String> {
    let v = std::env::var("QUOTA_REDIS_CLUSTER").ok()?;
    let url = match v.trim() {
        "" | "1" => CLUSTER.to_owned(),
        v => v.to_owned(),
    };
    let first = url
        .trim_start_matches("redis+cluster://")
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let (host, port) = first.rsplit_once(':').unwrap();
    let out = Command::new("redis-cli")
        .args(["-h", host, "-p", port, "cluster", "info"])
        .output()
        .expect("redis-cli");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok"),
        "QUOTA_REDIS_CLUSTER is set but the cluster at {url} is not ok: start it with \
         scripts/ensure-redis-cluster.sh (scripts/test.sh does)"
    );
    Some(url)
}

async fn node(up: &Upstream, url: &str, prefix: &Prefix) -> Gw {
    setup(&up.url())
        .redis(url, Some(prefix.as_str()), FailurePolicy::default())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_a_cluster_share_accounts_and_exactly_one_budget() {
    let Some(url) = tokio::task::block_in_place(cluster_url) else {
        eprintln!("skipped: QUOTA_REDIS_CLUSTER is not set (scripts/test.sh starts the cluster and sets it)");
        return;
    };
    let up = Upstream::start().await;
    let prefix = Prefix::on_cluster("e2e-cluster", 7101);
    let (a, b) = (
        node(&up, &url, &prefix).await,
        node(&up, &url, &prefix).await,
    );
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
    let (mut admitted, mut refused) = (0, 0);
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

    // The cluster's health: every master answers PING.
    let health = http.get(&a.url("/healthz"), None).await;
    assert_eq!(health.status, 200);
    let store = &health.json()["store"];
    assert_eq!(store["backend"], "redis");
    assert_eq!(store["redis_ok"], true);
    assert_eq!(store["redis_cluster"], true);
    let metrics =
        String::from_utf8_lossy(&http.get(&b.url("/metrics"), None).await.body).into_owned();
    assert!(
        metrics.contains("quota_redis_up{failure_policy=\"closed\"} 1"),
        "{metrics}"
    );
}
