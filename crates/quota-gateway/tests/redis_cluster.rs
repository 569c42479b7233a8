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

use quota_redis::FailurePolicy;
use support::redis_prefix::Prefix;
use support::{setup, Gw, Http, Upstream};

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
    support::two_nodes_share_accounts_and_one_budget(&http, &a, &b).await;

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
