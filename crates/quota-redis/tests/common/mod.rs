//! Helpers shared by the integration tests: the shared Redis at
//! 127.0.0.1:6379, a unique key prefix per test (its keys are deleted when
//! the test ends, even when it fails), private `redis-server` processes that
//! a test may kill, and a server that accepts connections but never answers.
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]
// each test binary uses a part of these helpers
#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quota_redis::{Clock, RedisConfig};

pub(crate) mod cluster;
mod private_redis;
#[allow(unused_imports)] // the fault tests use it, the others do not
pub(crate) use private_redis::PrivateRedis;

/// The shared Redis (override with `QUOTA_TEST_REDIS_URL`).
pub(crate) fn redis_url() -> String {
    std::env::var("QUOTA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn sync_connection(url: &str, wait: Duration) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(url)?.get_connection_with_timeout(wait)
}

/// Fails the test with a clear message when the shared Redis is down: the
/// Redis tests never skip.
pub(crate) fn require_redis() {
    let url = redis_url();
    let pong = sync_connection(&url, Duration::from_secs(2))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
    if let Err(e) = pong {
        panic!(
            "Redis is not reachable at {url}: {e}. These tests need a real Redis and do not skip: \
             start one (`redis-server --daemonize yes`, or `.ci/run` which starts it)."
        );
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A key prefix no other test (or run) uses.
pub(crate) fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("quota-test:{test}:{}-{nanos}-{n}:", std::process::id())
}

/// A unique prefix on a Redis; every key under it is deleted on drop.
pub(crate) struct TestKeys {
    pub(crate) prefix: String,
    pub(crate) url: String,
}

impl TestKeys {
    /// A fresh prefix on the shared Redis.
    pub(crate) fn new(test: &str) -> Self {
        require_redis();
        TestKeys {
            prefix: unique_prefix(test),
            url: redis_url(),
        }
    }

    /// A fresh prefix on another server.
    pub(crate) fn on(url: &str, test: &str) -> Self {
        TestKeys {
            prefix: unique_prefix(test),
            url: url.to_owned(),
        }
    }

    /// A config with this prefix.
    pub(crate) fn config(&self) -> RedisConfig {
        RedisConfig::default().with_prefix(self.prefix.clone())
    }

    /// A config for tests in virtual time: the caller's clock, and keys that
    /// outlive the virtual windows (real time passes while virtual time
    /// stands still).
    pub(crate) fn virtual_time_config(&self) -> RedisConfig {
        // A generous timeout: these tests check the arithmetic, and a
        // loaded machine can hold a round trip past the default 250 ms.
        self.config()
            .with_clock(Clock::Caller)
            .with_ttl_grace(Duration::from_secs(120))
            .with_timeout(Duration::from_secs(5))
    }

    /// A fresh prefix on the Redis Cluster of `QUOTA_REDIS_CLUSTER`, or
    /// `None` (the test skips) when that is not set.
    pub(crate) fn cluster(test: &str) -> Option<Self> {
        let url = cluster::cluster_url(test)?;
        Some(TestKeys::on(&url, test))
    }

    /// A plain connection to the same Redis (not for a cluster).
    pub(crate) fn connection(&self) -> redis::Connection {
        sync_connection(&self.url, Duration::from_secs(2)).expect("connect to redis")
    }

    /// The servers holding keys: the Redis, or every master of a cluster.
    fn servers(&self) -> Vec<String> {
        if self.url.starts_with("redis+cluster://") {
            cluster::master_urls(&self.url)
        } else {
            vec![self.url.clone()]
        }
    }

    /// Every key under the prefix (on every master of a cluster).
    pub(crate) fn keys(&self) -> Vec<String> {
        let pattern = quota_redis::KeySpace::new(&self.prefix).unwrap().pattern();
        let mut keys = Vec::new();
        for server in self.servers() {
            let mut c = sync_connection(&server, Duration::from_secs(2)).expect("connect to redis");
            keys.extend(scan(&mut c, &pattern).unwrap());
        }
        keys.sort();
        keys
    }
}

fn scan(c: &mut redis::Connection, pattern: &str) -> redis::RedisResult<Vec<String>> {
    Ok(redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter(c)?
        .filter_map(Result::ok)
        .collect())
}

impl Drop for TestKeys {
    fn drop(&mut self) {
        let Ok(space) = quota_redis::KeySpace::new(&self.prefix) else {
            return;
        };
        let on_cluster = self.url.starts_with("redis+cluster://");
        let servers = if on_cluster {
            // A test that panicked over a broken cluster must not panic again here.
            std::panic::catch_unwind(|| cluster::master_urls(&self.url)).unwrap_or_default()
        } else {
            vec![self.url.clone()]
        };
        for server in servers {
            let Ok(mut c) = sync_connection(&server, Duration::from_secs(1)) else {
                continue;
            };
            let Ok(keys) = scan(&mut c, &space.pattern()) else {
                continue;
            };
            // On a cluster one key at a time: keys of one master may still
            // hash to different slots.
            let chunk = if on_cluster { 1 } else { 500 };
            for keys in keys.chunks(chunk) {
                let _ = redis::cmd("DEL").arg(keys).query::<i64>(&mut c);
            }
        }
    }
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A server that accepts TCP connections (the kernel completes them) but
/// never reads or answers: every call to it can only time out.
pub(crate) struct Blackhole {
    listener: TcpListener,
}

impl Blackhole {
    pub(crate) fn start() -> Self {
        Blackhole {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://{}", self.listener.local_addr().unwrap())
    }
}
