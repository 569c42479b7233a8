//! What the store has been doing: whether Redis answers, how many decisions
//! the failure policy made, and the probe schedule while Redis is away.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use quota_core::StoreError;

use crate::FailurePolicy;

/// A snapshot of a store's health, for `/metrics` and logs.
///
/// ```
/// # async fn run() -> Result<(), quota_redis::Error> {
/// # let store = quota_redis::RedisStore::connect("redis://127.0.0.1:6379", Default::default()).await?;
/// let h = store.health();
/// println!("redis_ok={} fallback={} errors={}", h.redis_ok, h.fallback_decisions, h.errors);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreHealth {
    /// Whether the last call to Redis succeeded.
    pub redis_ok: bool,
    /// Decisions Redis answered.
    pub redis_decisions: u64,
    /// Decisions the failure policy answered (`Open` or `Local`) because
    /// Redis could not.
    pub fallback_decisions: u64,
    /// Calls that failed (connection trouble, timeouts, protocol errors),
    /// plus decisions refused without trying while Redis was known down.
    pub errors: u64,
    /// Of `errors`, the timeouts.
    pub timeouts: u64,
    /// The configured failure policy.
    pub failure_policy: FailurePolicy,
    /// Whether the store is on a Redis Cluster (`redis+cluster://`); then
    /// `redis_ok` after a [`ping`](crate::RedisStore::ping) means every
    /// master answered.
    pub cluster: bool,
}

/// The shared counters behind [`StoreHealth`].
#[derive(Debug)]
pub(crate) struct Health {
    redis_ok: AtomicBool,
    redis_decisions: AtomicU64,
    fallback_decisions: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    /// Milliseconds since `epoch` before which no request tries Redis.
    next_probe_ms: AtomicU64,
    probe_interval_ms: u64,
    epoch: Instant,
    policy: FailurePolicy,
}

impl Health {
    pub(crate) fn new(policy: FailurePolicy, probe_interval_ms: u64) -> Self {
        Health {
            redis_ok: AtomicBool::new(true),
            redis_decisions: AtomicU64::new(0),
            fallback_decisions: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            next_probe_ms: AtomicU64::new(0),
            probe_interval_ms,
            epoch: Instant::now(),
            policy,
        }
    }

    pub(crate) fn snapshot(&self) -> StoreHealth {
        StoreHealth {
            redis_ok: self.redis_ok.load(Relaxed),
            redis_decisions: self.redis_decisions.load(Relaxed),
            fallback_decisions: self.fallback_decisions.load(Relaxed),
            errors: self.errors.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            failure_policy: self.policy,
            cluster: false,
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this request should try Redis: always while it is up; while
    /// it is down, one request per probe interval.
    pub(crate) fn should_try(&self) -> bool {
        if self.redis_ok.load(Relaxed) {
            return true;
        }
        let now = self.elapsed_ms();
        let next = self.next_probe_ms.load(Relaxed);
        now >= next
            && self
                .next_probe_ms
                .compare_exchange(
                    next,
                    now.saturating_add(self.probe_interval_ms),
                    Relaxed,
                    Relaxed,
                )
                .is_ok()
    }

    /// Redis answered.
    pub(crate) fn record_ok(&self, decision: bool) {
        if decision {
            self.redis_decisions.fetch_add(1, Relaxed);
        }
        if !self.redis_ok.swap(true, Relaxed) {
            tracing::info!(target: "quota_redis", "redis answers again; decisions are shared again");
        }
    }

    /// Redis failed. Connection trouble marks it down (and logs the
    /// transition); other errors are only counted and logged.
    pub(crate) fn record_error(&self, error: &StoreError) {
        self.errors.fetch_add(1, Relaxed);
        if matches!(error, StoreError::Timeout { .. }) {
            self.timeouts.fetch_add(1, Relaxed);
        }
        // Connection trouble is transient; anything else Redis said is not.
        if !error.is_transient() {
            tracing::error!(target: "quota_redis", %error, "redis refused the decision");
            return;
        }
        let next = self.elapsed_ms().saturating_add(self.probe_interval_ms);
        self.next_probe_ms.fetch_max(next, Relaxed);
        if self.redis_ok.swap(false, Relaxed) {
            match self.policy {
                FailurePolicy::Closed => {
                    tracing::warn!(target: "quota_redis", %error, "redis unreachable; failing closed (requests get 503)");
                }
                FailurePolicy::Open => {
                    tracing::warn!(target: "quota_redis", %error, "redis unreachable; failing open (limits not enforced)");
                }
                FailurePolicy::Local { nodes } => tracing::warn!(
                    target: "quota_redis",
                    %error,
                    nodes,
                    "redis unreachable; falling back to local limits (each budget divided by {nodes})"
                ),
            }
        }
    }

    /// A decision skipped Redis because it is known down (Closed policy).
    pub(crate) fn record_skipped(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    /// The failure policy answered a decision.
    pub(crate) fn record_fallback(&self) {
        self.fallback_decisions.fetch_add(1, Relaxed);
    }
}
