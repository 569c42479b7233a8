//! [`Prefix`]: a Redis key prefix that no other test of any run uses, and
//! its keys deleted when it drops.
//!
//! Unique by the process id, the time and a counter of the process: two
//! tests of one binary start at once, and a prefix shared by two tests
//! would let the first to finish delete the other's accounts and keys
//! while it runs.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The prefixes made by this process so far.
static MADE: AtomicU64 = AtomicU64::new(0);

/// A key prefix of one test; its keys are deleted on drop (best effort:
/// limit keys expire on their own, accounts do not).
pub struct Prefix {
    /// The prefix, ending in `:`.
    pub name: String,
    /// Redis at 127.0.0.1:`port`, or a cluster whose node listens there.
    port: u16,
    cluster: bool,
}

impl Prefix {
    /// A prefix on the Redis at 127.0.0.1:6379, named `quota-{label}-…:`.
    pub fn new(label: &str) -> Self {
        Self::make(label, 6379, false)
    }

    /// A prefix on the Redis Cluster one of whose nodes listens on
    /// 127.0.0.1:`port`: its keys are deleted from every master.
    pub fn on_cluster(label: &str, port: u16) -> Self {
        Self::make(label, port, true)
    }

    fn make(label: &str, port: u16, cluster: bool) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        Prefix {
            name: format!("quota-{label}-{}-{nanos}-{n}:", std::process::id()),
            port,
            cluster,
        }
    }

    /// The prefix as a `&str`.
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let script = if self.cluster {
            format!(
                "for node in $(redis-cli -h 127.0.0.1 -p {port} cluster nodes | awk '$3 ~ /master/ {{ split($2, a, \"@\"); print a[1] }}'); do \
                   h=${{node%:*}}; p=${{node##*:}}; \
                   redis-cli -h $h -p $p --scan --pattern '{name}*' | xargs -r -n 1 redis-cli -h $h -p $p del >/dev/null; \
                 done",
                port = self.port,
                name = self.name
            )
        } else {
            format!(
                "redis-cli -h 127.0.0.1 -p {port} --scan --pattern '{name}*' | xargs -r redis-cli -h 127.0.0.1 -p {port} del >/dev/null",
                port = self.port,
                name = self.name
            )
        };
        let _ = Command::new("sh").args(["-c", &script]).status();
    }
}
