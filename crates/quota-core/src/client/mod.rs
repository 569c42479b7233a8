//! Client side: the seed's retry strategy and a pacer, as sans-IO state
//! machines.
//!
//! ```
//! use quota_core::client::{Retry, RetryAction, RetryPolicy};
//! use quota_core::Timestamp;
//! use std::time::Duration;
//!
//! let mut retry = Retry::new(RetryPolicy::default()); // the seed's: 5 attempts
//! let now = Timestamp::from_secs(1_000);
//!
//! // Attempt 0 is refused by the minute limit.
//! let refused = [
//!     ("X-RateLimit-Type", "minute".as_bytes()),
//!     ("Retry-After", b"20"),
//!     ("X-RateLimit-Remaining", b"0"),
//! ];
//! let action = retry.handle_response(429, refused, now, 0.5 /* random sample */);
//! let RetryAction::RetryAt { at, wait, attempt, .. } = action else { panic!("{action:?}") };
//! assert_eq!(wait, Duration::from_secs(20)); // max(Retry-After, 2^0 + 0.5)
//! assert_eq!(at, now + wait);
//! assert_eq!(attempt, 0);
//!
//! // Sleep until `at`, send again; attempt 1 succeeds.
//! let ok = [("X-RateLimit-Remaining", "2".as_bytes())];
//! assert_eq!(retry.handle_response(200, ok, at, 0.1), RetryAction::Done);
//! assert_eq!(retry.attempts(), 2);
//! ```
//!
//! The library never reads a clock and never draws a random number: every
//! call takes `now` (a [`Timestamp`](crate::Timestamp)) and, where jitter is
//! needed, a sample in `[0, 1)`. A driver (such as `quota-transport`'s client
//! layer) runs the loop:
//!
//! 1. Before sending, ask the [`Pacer`] how long to wait
//!    ([`Pacer::poll_delay`]); sleep that long, then [`Pacer::on_send`].
//! 2. When the response arrives, feed it to [`Retry::handle_response`] (and
//!    [`Pacer::observe`]).
//! 3. On [`RetryAction::RetryAt`], sleep until `at` and go to 1; on
//!    [`RetryAction::Done`] or [`RetryAction::GiveUp`], the response is final.
//!
//! Header names match case-insensitively; header values are taken as bytes
//! and malformed ones are ignored ([`RateLimitHeaders`]). None of the parsing
//! panics, whatever the input; [`parse_retry_after`], [`RateLimitHeaders::parse`],
//! [`Pacer::observe`] and [`Retry::handle_response`] are the fuzzing entry
//! points.

pub mod form;
pub mod headers;
pub mod pace_limit;
pub mod pacer;
pub mod retry;
pub mod retry_after;

pub use form::Form;
pub use headers::{LimitType, RateLimitEntry, RateLimitHeaders, MAX_RATELIMIT_ENTRIES};
pub use pace_limit::{PaceError, PaceMode, PacedLimit};
pub use pacer::Pacer;
pub use retry::{GiveUp, Retry, RetryAction, RetryPolicy};
pub use retry_after::{parse_retry_after, RetryAfter};
