//! Time as a plain value: the engine never reads a clock.
//!
//! Every call that needs the current time takes a [`Timestamp`]: milliseconds
//! since the UNIX epoch (1970-01-01T00:00:00Z). Windows align to multiples of
//! their length since the epoch, so a one-minute window is the UTC minute and a
//! one-day window the UTC day. Milliseconds keep every value well inside the
//! 2^53 range that the Redis store's Lua arithmetic computes exactly.

use core::fmt;
use core::time::Duration;

/// A point in time: milliseconds since the UNIX epoch.
///
/// ```
/// use quota_core::Timestamp;
/// let t = Timestamp::from_millis(90_500);
/// assert_eq!(t.as_millis(), 90_500);
/// assert_eq!(t + std::time::Duration::from_millis(500), Timestamp::from_secs(91));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Timestamp(u64);

impl Timestamp {
    /// The UNIX epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// A timestamp `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// A timestamp from a duration since the epoch (as `SystemTime` gives it),
    /// truncated to the millisecond.
    pub fn from_unix_duration(since_epoch: Duration) -> Self {
        Timestamp(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at the end of time.
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

impl core::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// Whole seconds, rounded up, of a wait in milliseconds; never 0 for a
/// non-zero wait. This is how `Retry-After` is computed: rounding down would
/// send clients back before the limit lets them through.
///
/// ```
/// use quota_core::time::ceil_secs;
/// assert_eq!(ceil_secs(0), 0);
/// assert_eq!(ceil_secs(1), 1);
/// assert_eq!(ceil_secs(1000), 1);
/// assert_eq!(ceil_secs(1001), 2);
/// ```
pub const fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}
