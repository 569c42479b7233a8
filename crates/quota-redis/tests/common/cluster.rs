//! The Redis Cluster the cluster tests run on: three masters and three
//! replicas on 127.0.0.1:7101..7106, started by `scripts/test.sh`
//! (`scripts/ensure-redis-cluster.sh`), which sets `QUOTA_REDIS_CLUSTER`.
//! With the variable set, a missing or unhealthy cluster fails the test;
//! without it, the cluster tests say that they skip and pass (a plain
//! `cargo test` on a machine without the cluster).

use std::time::Duration;

/// The cluster `scripts/test.sh` starts.
pub(crate) const DEFAULT_CLUSTER_URL: &str =
    "redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103";

/// The cluster's URL from `QUOTA_REDIS_CLUSTER` (`1` or empty: the default
/// one), after checking that it is healthy (panics if not); `None`, with a
/// note on stderr, when the variable is not set.
pub(crate) fn cluster_url(test: &str) -> Option<String> {
    let Ok(v) = std::env::var("QUOTA_REDIS_CLUSTER") else {
        eprintln!(
            "{test}: skipped: QUOTA_REDIS_CLUSTER is not set (scripts/test.sh starts the cluster and sets it)"
        );
        return None;
    };
    let url = match v.trim() {
        "" | "1" => DEFAULT_CLUSTER_URL.to_owned(),
        v => v.to_owned(),
    };
    require_cluster(&url);
    Some(url)
}

/// `redis://host:port` of each node a `redis+cluster://` URL names.
pub(crate) fn seed_urls(url: &str) -> Vec<String> {
    let hosts = url
        .strip_prefix("redis+cluster://")
        .unwrap_or_else(|| panic!("not a cluster URL: {url}"));
    hosts
        .trim_end_matches('/')
        .split(',')
        .map(|h| format!("redis://{}", h.trim()))
        .collect()
}

fn connection(node: &str) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(node)?.get_connection_with_timeout(Duration::from_secs(2))
}

/// Panics with a clear message unless some node of the cluster says
/// `cluster_state:ok`.
pub(crate) fn require_cluster(url: &str) {
    let mut seen = Vec::new();
    for node in seed_urls(url) {
        match connection(&node)
            .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
        {
            Ok(info) if info.lines().any(|l| l.trim() == "cluster_state:ok") => return,
            Ok(info) => seen.push(format!("{node}: {}", info.lines().next().unwrap_or(""))),
            Err(e) => seen.push(format!("{node}: {e}")),
        }
    }
    panic!(
        "QUOTA_REDIS_CLUSTER is set but the Redis Cluster at {url} is not ok ({}). \
         Start it with scripts/ensure-redis-cluster.sh (scripts/test.sh does).",
        seen.join("; ")
    );
}

/// A plain connection to the first seed node that answers.
pub(crate) fn any_node(url: &str) -> redis::Connection {
    seed_urls(url)
        .iter()
        .find_map(|n| connection(n).ok())
        .unwrap_or_else(|| panic!("no node of {url} answers"))
}

/// `(address, role, master id or "-", id)` of every node, from `CLUSTER NODES`.
pub(crate) fn nodes(url: &str) -> Vec<Node> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut any_node(url))
        .unwrap();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let addr = f.get(1)?.split('@').next()?.to_owned();
            Some(Node {
                id: f.first()?.to_string(),
                addr,
                master: f.get(2)?.contains("master"),
                failed: f.get(2)?.contains("fail"),
                master_id: f.get(3)?.to_string(),
            })
        })
        .collect()
}

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) id: String,
    /// `host:port`.
    pub(crate) addr: String,
    pub(crate) master: bool,
    pub(crate) failed: bool,
    /// The master's id for a replica, `-` for a master.
    pub(crate) master_id: String,
}

/// `redis://host:port` of every master that is not failed.
pub(crate) fn master_urls(url: &str) -> Vec<String> {
    nodes(url)
        .into_iter()
        .filter(|n| n.master && !n.failed)
        .map(|n| format!("redis://{}", n.addr))
        .collect()
}

/// The slot Redis Cluster puts `key` in (`CLUSTER KEYSLOT`, asked of the cluster).
pub(crate) fn keyslot(url: &str, key: &str) -> i64 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(&mut any_node(url))
        .unwrap()
}

/// A connection that follows the cluster's slots (for reading keys back).
pub(crate) fn cluster_connection(url: &str) -> redis::cluster::ClusterConnection {
    redis::cluster::ClusterClient::builder(seed_urls(url))
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(2))
        .build()
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("cluster connection to {url}: {e}"))
}
