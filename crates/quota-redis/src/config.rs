//! How a [`RedisStore`](crate::RedisStore) behaves: key prefix, timeouts,
//! which clock windows follow, and what happens when Redis cannot answer.

use core::fmt;
use core::str::FromStr;
use core::time::Duration;

/// Whose clock decides which window a request falls in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Clock {
    /// Redis `TIME`, read inside the decision script (the default). Every
    /// gateway node uses the same clock, so nodes whose clocks disagree still
    /// agree on windows; the `now` passed to `decide` is ignored (it is still
    /// used by the local fallback while Redis is unreachable).
    #[default]
    Redis,
    /// The `now` passed to `decide`. For simulations in virtual time, the
    /// differential tests, and deployments that trust their node clocks.
    Caller,
}

/// What a decision does when Redis cannot answer (unreachable, or slower
/// than [`RedisConfig::timeout`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FailurePolicy {
    /// Return the error ([`StoreError::Unavailable`] or
    /// [`StoreError::Timeout`]); the gateway answers 503 with a JSON message.
    /// The default: never admits more than the budget.
    ///
    /// [`StoreError::Unavailable`]: quota_core::StoreError::Unavailable
    /// [`StoreError::Timeout`]: quota_core::StoreError::Timeout
    #[default]
    Closed,
    /// Admit every request, reporting each limit's full count as remaining.
    /// Availability first: limits are not enforced while Redis is away.
    Open,
    /// Decide with a local in-memory engine in which every limit's count is
    /// divided by `nodes` (at least 1 per window): a fleet of `nodes` gateways
    /// cut off from Redis still stays near its limits instead of multiplying
    /// them. Local counts are not merged back into Redis when it returns.
    Local {
        /// How many gateway nodes share the budget.
        nodes: u32,
    },
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Clock::Redis => "redis",
            Clock::Caller => "caller",
        })
    }
}

impl FromStr for Clock {
    type Err = String;
    /// `redis` or `caller`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "redis" => Ok(Clock::Redis),
            "caller" => Ok(Clock::Caller),
            other => Err(format!(
                "invalid clock {other:?}: expected \"redis\" or \"caller\""
            )),
        }
    }
}

impl fmt::Display for FailurePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailurePolicy::Closed => f.write_str("closed"),
            FailurePolicy::Open => f.write_str("open"),
            FailurePolicy::Local { nodes } => write!(f, "local:{nodes}"),
        }
    }
}

impl FromStr for FailurePolicy {
    type Err = String;
    /// `closed`, `open`, `local` (one node) or `local:N`.
    ///
    /// ```
    /// use quota_redis::FailurePolicy;
    /// assert_eq!("local:3".parse(), Ok(FailurePolicy::Local { nodes: 3 }));
    /// assert_eq!("closed".parse(), Ok(FailurePolicy::Closed));
    /// assert!("local:0".parse::<FailurePolicy>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || {
            format!("invalid failure policy {s:?}: expected \"closed\", \"open\" or \"local:N\" (N gateway nodes, N >= 1)")
        };
        match s {
            "closed" => Ok(FailurePolicy::Closed),
            "open" => Ok(FailurePolicy::Open),
            "local" => Ok(FailurePolicy::Local { nodes: 1 }),
            _ => {
                let n = s.strip_prefix("local:").ok_or_else(bad)?;
                match n.trim().parse::<u32>() {
                    Ok(nodes) if nodes >= 1 => Ok(FailurePolicy::Local { nodes }),
                    _ => Err(bad()),
                }
            }
        }
    }
}

/// Settings of a [`RedisStore`](crate::RedisStore) and
/// [`RedisAccounts`](crate::RedisAccounts).
///
/// ```
/// use quota_redis::{Clock, FailurePolicy, RedisConfig};
/// use std::time::Duration;
///
/// let config = RedisConfig::default()
///     .with_prefix("myapi:")
///     .with_timeout(Duration::from_millis(100))
///     .with_failure_policy(FailurePolicy::Local { nodes: 4 });
/// assert_eq!(config.clock, Clock::Redis);
/// assert_eq!(config.prefix, "myapi:");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Prepended to every key (default `quota:`). May not contain `{` or `}`
    /// (they would break the per-account hash tag).
    pub prefix: String,
    /// Bound on every Redis call (default 250 ms). A call that takes longer
    /// fails with [`StoreError::Timeout`](quota_core::StoreError::Timeout)
    /// and the failure policy applies.
    pub timeout: Duration,
    /// Bound on each attempt to (re)connect (default 1 s).
    pub connect_timeout: Duration,
    /// Whose clock windows follow (default [`Clock::Redis`]).
    pub clock: Clock,
    /// What happens when Redis cannot answer (default [`FailurePolicy::Closed`]).
    pub failure: FailurePolicy,
    /// Added to every key's TTL beyond the moment its state stops counting
    /// (default 1 s): covers the distance between the caller's and Redis's
    /// clocks with [`Clock::Caller`]. Tests in virtual time raise it.
    pub ttl_grace: Duration,
    /// After Redis failed, decisions skip Redis (and go straight to the
    /// failure policy) for this long before one request probes it again
    /// (default 100 ms; zero: every request tries Redis).
    pub probe_interval: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            prefix: "quota:".to_owned(),
            timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            clock: Clock::Redis,
            failure: FailurePolicy::Closed,
            ttl_grace: Duration::from_secs(1),
            probe_interval: Duration::from_millis(100),
        }
    }
}

impl RedisConfig {
    /// Sets [`RedisConfig::prefix`].
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
    /// Sets [`RedisConfig::timeout`].
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Sets [`RedisConfig::connect_timeout`].
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// Sets [`RedisConfig::clock`].
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
    /// Sets [`RedisConfig::failure`].
    #[must_use]
    pub fn with_failure_policy(mut self, failure: FailurePolicy) -> Self {
        self.failure = failure;
        self
    }
    /// Sets [`RedisConfig::ttl_grace`].
    #[must_use]
    pub fn with_ttl_grace(mut self, grace: Duration) -> Self {
        self.ttl_grace = grace;
        self
    }
    /// Sets [`RedisConfig::probe_interval`].
    #[must_use]
    pub fn with_probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }
}
