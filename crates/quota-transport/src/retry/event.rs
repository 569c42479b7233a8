//! What the retry layer reports: each wait, and how a request ended.

use std::fmt;
use std::time::Duration;

use quota_core::client::{GiveUp, LimitType};

/// One wait before a retry, reported to [`RetryLayer::on_wait`] and as a
/// `tracing` event.
///
/// ```
/// use quota_transport::retry::RetryWait;
/// # fn show(wait: &RetryWait) {
/// eprintln!("{wait}"); // rate limited (minute) on attempt 1 of 5; retrying in 1.50 s
/// # }
/// ```
///
/// [`RetryLayer::on_wait`]: super::RetryLayer::on_wait
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryWait {
    /// The attempt that drew the 429, counted from 1.
    pub attempt: u32,
    /// Attempts allowed in all ([`RetryPolicy::max_attempts`]).
    ///
    /// [`RetryPolicy::max_attempts`]: quota_core::client::RetryPolicy::max_attempts
    pub max_attempts: u32,
    /// The limit that refused it (`X-RateLimit-Type`; missing counts as minute).
    pub limit_type: LimitType,
    /// How long the layer sleeps before the next attempt:
    /// `max(Retry-After, base * (2^(attempt-1) + jitter))`.
    pub wait: Duration,
}

impl fmt::Display for RetryWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = match self.limit_type {
            LimitType::Minute => "minute",
            LimitType::Daily => "daily",
            _ => "unknown",
        };
        write!(
            f,
            "rate limited ({limit}) on attempt {} of {}; retrying in {:.2} s",
            self.attempt,
            self.max_attempts,
            self.wait.as_secs_f64()
        )
    }
}

/// How a request went through the retry layer, in the extensions of the
/// response it returns.
///
/// ```
/// use quota_transport::retry::RetryOutcome;
/// # fn inspect(response: &http::Response<()>) {
/// if let Some(outcome) = response.extensions().get::<RetryOutcome>() {
///     println!("{} attempt(s), gave up: {:?}", outcome.attempts, outcome.gave_up);
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryOutcome {
    /// Attempts made, the last one included.
    pub attempts: u32,
    /// Why the response is final although it is an error: a daily 429, the
    /// last allowed attempt refused, or another error status. `None` for a
    /// success (below 400).
    pub gave_up: Option<GiveUp>,
    /// The time slept between attempts, in all.
    pub waited: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_reads_as_one_line_for_a_terminal() {
        let wait = RetryWait {
            attempt: 2,
            max_attempts: 5,
            limit_type: LimitType::Minute,
            wait: Duration::from_millis(2_250),
        };
        assert_eq!(
            wait.to_string(),
            "rate limited (minute) on attempt 2 of 5; retrying in 2.25 s"
        );
    }
}
