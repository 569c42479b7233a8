//! The seed's client retry strategy as a state machine.
//!
//! ```
//! use quota_core::client::{GiveUp, Retry, RetryAction, RetryPolicy};
//! use quota_core::Timestamp;
//! use std::time::Duration;
//!
//! let mut retry = Retry::new(RetryPolicy::default());
//! let daily = [("X-RateLimit-Type", "daily".as_bytes()), ("Retry-After", b"3600")];
//! let action = retry.handle_response(429, daily, Timestamp::EPOCH, 0.5);
//! assert_eq!(
//!     action,
//!     RetryAction::GiveUp(GiveUp::DailyLimit { retry_after: Some(Duration::from_secs(3600)) })
//! );
//! ```
//!
//! One [`Retry`] follows one logical request. After each attempt, feed its
//! response to [`Retry::handle_response`]; the returned [`RetryAction`] says
//! what to do. The rules are the seed's (`docs/contract.md`, section 7):
//!
//! 1. A status below 400 other than 429 is [`RetryAction::Done`].
//! 2. Any other status of 400 or more except 429 is
//!    [`GiveUp::Status`] (the seed raises it).
//! 3. A 429 whose `X-RateLimit-Type` is `daily` gives up at once
//!    ([`GiveUp::DailyLimit`], "try again tomorrow").
//! 4. Any other 429 (type `minute`, missing or unknown) waits
//!    `max(Retry-After, base * (2^a + random))` where `a` is the 0-based index
//!    of the attempt that just failed; `Retry-After` is
//!    [`RetryPolicy::default_retry_after`] when missing or malformed.
//! 5. After [`RetryPolicy::max_attempts`] attempts a 429 is
//!    [`GiveUp::AttemptsExhausted`]. (The seed sleeps once more before
//!    raising; there is no point, so this machine gives up at once.)

use core::time::Duration;

use super::headers::{LimitType, RateLimitHeaders};
use crate::Timestamp;

/// How a client retries refused requests. The default is the seed's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (the seed: 5).
    pub max_attempts: u32,
    /// The wait assumed when a 429 has no well-formed `Retry-After` (the
    /// seed: 5 seconds).
    pub default_retry_after: Duration,
    /// The unit of the exponential backoff: after failed attempt `a` the
    /// backoff is `base * (2^a + random)` (the seed: 1 second).
    pub base: Duration,
}

impl RetryPolicy {
    /// The seed's strategy: 5 attempts, 5 s default `Retry-After`, 1 s base.
    pub const SEED: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        default_retry_after: Duration::from_secs(5),
        base: Duration::from_secs(1),
    };

    /// The exponential backoff after failed attempt `attempt` (0-based), for a
    /// random sample in `[0, 1)`: `base * (2^attempt + random)`, rounded up to
    /// whole milliseconds (timestamps are milliseconds) and saturating on
    /// overflow. A sample outside `[0, 1]` is clamped into it, NaN counts as 0.
    ///
    /// ```
    /// use quota_core::client::RetryPolicy;
    /// use std::time::Duration;
    /// let p = RetryPolicy::SEED;
    /// assert_eq!(p.backoff(0, 0.0), Duration::from_secs(1));
    /// assert_eq!(p.backoff(3, 0.25), Duration::from_millis(8_250));
    /// assert_eq!(p.backoff(3, f64::NAN), Duration::from_secs(8));
    /// ```
    #[must_use]
    pub fn backoff(&self, attempt: u32, random: f64) -> Duration {
        let random = if random.is_nan() {
            0.0
        } else {
            random.clamp(0.0, 1.0)
        };
        let base_ns = self.base.as_nanos();
        // `as` from f64 saturates; the product is in [0, base_ns].
        let jitter_ns = (base_ns as f64 * random).ceil() as u128;
        let total_ns = 1u128
            .checked_shl(attempt)
            .and_then(|pow| base_ns.checked_mul(pow))
            .and_then(|exp| exp.checked_add(jitter_ns))
            .unwrap_or(u128::MAX);
        let ms = total_ns.div_ceil(1_000_000);
        Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::SEED
    }
}

/// What to do after an attempt.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryAction {
    /// The response is final and not an error: hand it to the caller.
    Done,
    /// Send the request again at `at` (`now + wait`).
    RetryAt {
        /// When to send the next attempt.
        at: Timestamp,
        /// How long that is after the `now` of the response.
        wait: Duration,
        /// The 0-based index of the attempt that just failed (the `a` of
        /// `2^a`); the retry is attempt `attempt + 1`.
        attempt: u32,
        /// The limit that refused the attempt.
        limit_type: LimitType,
    },
    /// Stop: the response is final and an error.
    GiveUp(GiveUp),
}

/// Why a request is not retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum GiveUp {
    /// A 429 from the daily limit: try again tomorrow.
    #[error("daily rate limit reached, try again tomorrow")]
    DailyLimit {
        /// The response's `Retry-After`, when it had a well-formed one.
        retry_after: Option<Duration>,
    },
    /// Every allowed attempt drew a 429.
    #[error("rate limited on all {attempts} attempts")]
    AttemptsExhausted {
        /// Attempts made.
        attempts: u32,
    },
    /// A non-429 error status (400 or more).
    #[error("request failed with status {0}")]
    Status(u16),
}

/// The retry state of one logical request.
///
/// ```
/// use quota_core::client::{Retry, RetryAction, RetryPolicy};
/// use quota_core::Timestamp;
///
/// let mut retry = Retry::new(RetryPolicy::SEED);
/// let no_headers: [(&str, &[u8]); 0] = [];
/// assert_eq!(retry.handle_response(201, no_headers, Timestamp::EPOCH, 0.0), RetryAction::Done);
/// assert_eq!(retry.attempts(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    policy: RetryPolicy,
    attempts: u32,
}

impl Retry {
    /// A request about to make its first attempt.
    pub const fn new(policy: RetryPolicy) -> Self {
        Retry {
            policy,
            attempts: 0,
        }
    }

    /// Feeds the response of the attempt just made, received at `now`;
    /// `random` is a sample in `[0, 1)` for the backoff's jitter.
    ///
    /// `headers` are `(name, value)` pairs of bytes (`(&str, &[u8])`, or
    /// `http::HeaderMap::iter()`); names match case-insensitively and
    /// malformed values are ignored.
    pub fn handle_response<H, N, V>(
        &mut self,
        status: u16,
        headers: H,
        now: Timestamp,
        random: f64,
    ) -> RetryAction
    where
        H: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        self.handle_parsed(status, &RateLimitHeaders::parse(headers), now, random)
    }

    /// [`Retry::handle_response`] for headers already parsed (a client that
    /// also feeds a [`Pacer`](super::Pacer) parses them once).
    pub fn handle_parsed(
        &mut self,
        status: u16,
        headers: &RateLimitHeaders,
        now: Timestamp,
        random: f64,
    ) -> RetryAction {
        let attempt = self.attempts;
        self.attempts = self.attempts.saturating_add(1);
        if status != 429 {
            return if status >= 400 {
                RetryAction::GiveUp(GiveUp::Status(status))
            } else {
                RetryAction::Done
            };
        }
        let limit_type = headers.limit_type.unwrap_or(LimitType::Minute);
        let retry_after = headers.retry_after.map(|ra| ra.wait_from(now));
        if limit_type == LimitType::Daily {
            return RetryAction::GiveUp(GiveUp::DailyLimit { retry_after });
        }
        if self.attempts >= self.policy.max_attempts {
            return RetryAction::GiveUp(GiveUp::AttemptsExhausted {
                attempts: self.attempts,
            });
        }
        let retry_after = retry_after.unwrap_or(self.policy.default_retry_after);
        let wait = retry_after.max(self.policy.backoff(attempt, random));
        RetryAction::RetryAt {
            at: now + wait,
            wait,
            attempt,
            limit_type,
        }
    }

    /// Attempts fed so far.
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The policy this request follows.
    pub const fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const NOW: Timestamp = Timestamp::from_secs(1_000);

    fn minute(retry_after: &str) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("X-RateLimit-Type", b"minute".to_vec()),
            ("Retry-After", retry_after.as_bytes().to_vec()),
        ]
    }

    fn wait_of(action: RetryAction) -> Duration {
        match action {
            RetryAction::RetryAt { wait, .. } => wait,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn success_and_redirect_statuses_are_done() {
        for status in [100, 200, 204, 304, 399] {
            let mut r = Retry::new(RetryPolicy::SEED);
            assert_eq!(
                r.handle_response(status, minute("5"), NOW, 0.0),
                RetryAction::Done
            );
        }
    }

    #[test]
    fn other_error_statuses_give_up_without_retrying() {
        for status in [400, 401, 402, 404, 413, 500, 503] {
            let mut r = Retry::new(RetryPolicy::SEED);
            assert_eq!(
                r.handle_response(status, minute("5"), NOW, 0.0),
                RetryAction::GiveUp(GiveUp::Status(status))
            );
        }
    }

    #[test]
    fn daily_refusal_gives_up_at_once_whatever_the_case() {
        let mut r = Retry::new(RetryPolicy::SEED);
        let action = r.handle_response(429, [("x-ratelimit-type", &b"DAILY"[..])], NOW, 0.0);
        assert_eq!(
            action,
            RetryAction::GiveUp(GiveUp::DailyLimit { retry_after: None })
        );
        assert_eq!(r.attempts(), 1);
    }

    #[test]
    fn minute_refusal_waits_for_retry_after_when_it_is_longer() {
        let mut r = Retry::new(RetryPolicy::SEED);
        assert_eq!(
            r.handle_response(429, minute("30"), NOW, 0.9),
            RetryAction::RetryAt {
                at: Timestamp::from_secs(1_030),
                wait: Duration::from_secs(30),
                attempt: 0,
                limit_type: LimitType::Minute,
            }
        );
    }

    #[test]
    fn minute_refusal_waits_for_the_backoff_when_it_is_longer() {
        let mut r = Retry::new(RetryPolicy::SEED);
        let waits: Vec<Duration> = (0..4)
            .map(|_| wait_of(r.handle_response(429, minute("1"), NOW, 0.5)))
            .collect();
        let ms = |ms| Duration::from_millis(ms);
        assert_eq!(waits, [ms(1_500), ms(2_500), ms(4_500), ms(8_500)]);
    }

    #[test]
    fn missing_or_malformed_retry_after_counts_as_five_seconds() {
        let mut r = Retry::new(RetryPolicy::SEED);
        let none: [(&str, &[u8]); 0] = [];
        assert_eq!(
            wait_of(r.handle_response(429, none, NOW, 0.0)),
            Duration::from_secs(5)
        );
        let mut r = Retry::new(RetryPolicy::SEED);
        assert_eq!(
            wait_of(r.handle_response(429, minute("-3"), NOW, 0.0)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn missing_or_unknown_type_is_treated_as_a_minute_limit() {
        let mut r = Retry::new(RetryPolicy::SEED);
        let none: [(&str, &[u8]); 0] = [];
        assert!(matches!(
            r.handle_response(429, none, NOW, 0.0),
            RetryAction::RetryAt {
                limit_type: LimitType::Minute,
                ..
            }
        ));
        assert!(matches!(
            r.handle_response(429, [("X-RateLimit-Type", &b"hourly"[..])], NOW, 0.0),
            RetryAction::RetryAt {
                limit_type: LimitType::Other,
                ..
            }
        ));
    }

    #[test]
    fn fifth_refusal_gives_up_without_a_sixth_attempt() {
        let mut r = Retry::new(RetryPolicy::SEED);
        for attempt in 0..4 {
            let action = r.handle_response(429, minute("1"), NOW, 0.0);
            assert!(matches!(action, RetryAction::RetryAt { attempt: a, .. } if a == attempt));
        }
        assert_eq!(
            r.handle_response(429, minute("1"), NOW, 0.0),
            RetryAction::GiveUp(GiveUp::AttemptsExhausted { attempts: 5 })
        );
        assert_eq!(r.attempts(), 5);
    }

    #[test]
    fn success_after_a_retry_is_done() {
        let mut r = Retry::new(RetryPolicy::SEED);
        let _ = wait_of(r.handle_response(429, minute("2"), NOW, 0.0));
        assert_eq!(
            r.handle_response(200, minute("2"), NOW, 0.0),
            RetryAction::Done
        );
        assert_eq!(r.attempts(), 2);
    }

    #[test]
    fn retry_after_date_is_counted_from_now() {
        let mut r = Retry::new(RetryPolicy::SEED);
        let now = Timestamp::from_secs(784_111_777);
        let headers = [("Retry-After", &b"Sun, 06 Nov 1994 08:50:07 GMT"[..])];
        assert_eq!(
            wait_of(r.handle_response(429, headers, now, 0.0)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn out_of_range_random_samples_are_clamped() {
        let p = RetryPolicy::SEED;
        assert_eq!(p.backoff(1, -3.0), Duration::from_secs(2));
        assert_eq!(p.backoff(1, 7.0), Duration::from_secs(3));
        assert_eq!(p.backoff(1, f64::INFINITY), Duration::from_secs(3));
        assert_eq!(p.backoff(1, f64::NEG_INFINITY), Duration::from_secs(2));
        assert_eq!(p.backoff(1, f64::NAN), Duration::from_secs(2));
    }

    #[test]
    fn huge_attempt_counts_saturate_instead_of_overflowing() {
        let p = RetryPolicy {
            max_attempts: u32::MAX,
            ..RetryPolicy::SEED
        };
        assert_eq!(p.backoff(200, 0.5), Duration::from_millis(u64::MAX));
        let mut r = Retry {
            policy: p,
            attempts: u32::MAX - 1,
        };
        let action = r.handle_response(429, minute("1"), NOW, 0.5);
        assert!(matches!(
            action,
            RetryAction::GiveUp(GiveUp::AttemptsExhausted { .. })
        ));
    }

    #[test]
    fn zero_max_attempts_gives_up_on_the_first_refusal() {
        let mut r = Retry::new(RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::SEED
        });
        assert_eq!(
            r.handle_response(429, minute("1"), NOW, 0.0),
            RetryAction::GiveUp(GiveUp::AttemptsExhausted { attempts: 1 })
        );
    }
}
