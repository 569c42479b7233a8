//! The `Retry-After` header (RFC 9110, section 10.2.3).
//!
//! ```
//! use quota_core::client::parse_retry_after;
//! use quota_core::Timestamp;
//! use std::time::Duration;
//!
//! let now = Timestamp::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
//! assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
//! assert_eq!(
//!     parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
//!     Some(Duration::from_secs(30)),
//! );
//! assert_eq!(parse_retry_after("-1", now), None);
//! ```
//!
//! The value is either `delay-seconds` (one or more ASCII digits) or an
//! `HTTP-date` (IMF-fixdate, or the obsolete RFC 850 and asctime forms, which a
//! recipient must accept). Surrounding whitespace is tolerated. Anything else
//! (a sign, a fraction, a number too large for `u64`, a malformed date, bytes
//! that are not ASCII) is malformed and parses to `None`; nothing here panics.

use core::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Timestamp;

/// A parsed `Retry-After` value: a delay, or a point in time.
///
/// ```
/// use quota_core::client::RetryAfter;
/// use quota_core::Timestamp;
/// use std::time::Duration;
///
/// let ra = RetryAfter::parse("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
/// assert_eq!(ra, RetryAfter::Date(Timestamp::from_secs(784_111_777)));
/// // A date in the past means "now".
/// assert_eq!(ra.wait_from(Timestamp::from_secs(784_111_900)), Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryAfter {
    /// `delay-seconds`: wait this long after the response was received.
    Delay(Duration),
    /// `HTTP-date`: wait until this time.
    Date(Timestamp),
}

impl RetryAfter {
    /// Parses a header value; `None` when it is malformed.
    ///
    /// Takes bytes (or a `&str`) because a header value need not be UTF-8.
    pub fn parse(value: impl AsRef<[u8]>) -> Option<Self> {
        let value = trim_ows(value.as_ref());
        if value.is_empty() {
            return None;
        }
        if value.iter().all(u8::is_ascii_digit) {
            return parse_digits(value).map(|secs| RetryAfter::Delay(Duration::from_secs(secs)));
        }
        // httpdate accepts IMF-fixdate, RFC 850 and asctime; it rejects
        // non-ASCII input and years outside 1970..=9999 without panicking.
        let text = core::str::from_utf8(value).ok()?;
        let date: SystemTime = httpdate::parse_http_date(text).ok()?;
        let since_epoch = date.duration_since(UNIX_EPOCH).ok()?;
        Some(RetryAfter::Date(Timestamp::from_unix_duration(since_epoch)))
    }

    /// How long to wait from `now`: the delay itself, or the time left until
    /// the date (zero for a date that has passed).
    #[must_use]
    pub fn wait_from(self, now: Timestamp) -> Duration {
        match self {
            RetryAfter::Delay(d) => d,
            RetryAfter::Date(at) => at.saturating_since(now),
        }
    }
}

/// Parses a `Retry-After` value and returns the wait it asks for, counted from
/// `now`; `None` when the value is malformed.
///
/// This is the fuzzing entry point for the header: it never panics, whatever
/// the bytes.
///
/// ```
/// use quota_core::client::parse_retry_after;
/// use quota_core::Timestamp;
/// use std::time::Duration;
///
/// let now = Timestamp::EPOCH;
/// assert_eq!(parse_retry_after(b"5", now), Some(Duration::from_secs(5)));
/// assert_eq!(parse_retry_after(b"5.5", now), None);
/// assert_eq!(parse_retry_after(b"\xff\xfe", now), None);
/// ```
#[must_use]
pub fn parse_retry_after(value: impl AsRef<[u8]>, now: Timestamp) -> Option<Duration> {
    RetryAfter::parse(value).map(|ra| ra.wait_from(now))
}

/// Strips optional whitespace (RFC 9110 OWS, plus the other ASCII whitespace
/// a sloppy server may add) from both ends.
pub(crate) fn trim_ows(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// A non-empty run of ASCII digits as a `u64`; `None` on overflow or on any
/// other byte (no sign, no fraction).
pub(crate) fn parse_digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Sun, 06 Nov 1994 08:49:37 GMT, the example date of RFC 9110.
    const RFC_EXAMPLE: Timestamp = Timestamp::from_secs(784_111_777);

    #[test]
    fn delay_seconds_is_a_plain_wait() {
        assert_eq!(parse_retry_after("0", RFC_EXAMPLE), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("120", RFC_EXAMPLE),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("007", RFC_EXAMPLE),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn surrounding_whitespace_is_tolerated() {
        assert_eq!(
            parse_retry_after(" \t5 \r\n", RFC_EXAMPLE),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("  Sun, 06 Nov 1994 08:49:47 GMT ", RFC_EXAMPLE),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn largest_u64_is_accepted_and_one_more_is_malformed() {
        let max = u64::MAX.to_string();
        assert_eq!(
            parse_retry_after(&max, RFC_EXAMPLE),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_retry_after("18446744073709551616", RFC_EXAMPLE), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999999999", RFC_EXAMPLE),
            None
        );
    }

    #[test]
    fn signs_fractions_and_garbage_are_malformed() {
        for bad in [
            "", "   ", "-1", "+5", "1.5", "5s", "5 5", "0x10", "1e3", "five", "∞", "５",
        ] {
            assert_eq!(parse_retry_after(bad, RFC_EXAMPLE), None, "{bad:?}");
        }
    }

    #[test]
    fn non_utf8_bytes_are_malformed() {
        assert_eq!(parse_retry_after(b"\xff", RFC_EXAMPLE), None);
        assert_eq!(parse_retry_after(b"12\x80", RFC_EXAMPLE), None);
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:49:37 GM\xc3", RFC_EXAMPLE),
            None
        );
    }

    #[test]
    fn imf_fixdate_gives_the_time_left() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", RFC_EXAMPLE),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn obsolete_rfc850_date_is_accepted() {
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:39 GMT", RFC_EXAMPLE),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn obsolete_asctime_date_is_accepted() {
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:40 1994", RFC_EXAMPLE),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn date_in_the_past_means_no_wait() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:36 GMT", RFC_EXAMPLE),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", RFC_EXAMPLE),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn wait_until_a_date_counts_milliseconds_of_now() {
        let now = Timestamp::from_millis(RFC_EXAMPLE.as_millis() + 250);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:38 GMT", now),
            Some(Duration::from_millis(750))
        );
    }

    #[test]
    fn malformed_dates_are_malformed() {
        for bad in [
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Mon, 06 Nov 1994 08:49:37 GMT", // wrong weekday
            "Wed, 31 Dec 1969 23:59:59 GMT", // before the epoch
            "Sun, 06 Nov 1994",
            "2024-01-01T00:00:00Z",
        ] {
            assert_eq!(RetryAfter::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn delay_and_date_forms_are_told_apart() {
        assert_eq!(
            RetryAfter::parse("3"),
            Some(RetryAfter::Delay(Duration::from_secs(3)))
        );
        assert_eq!(
            RetryAfter::parse("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(RetryAfter::Date(RFC_EXAMPLE))
        );
    }

    #[test]
    fn digits_overflow_to_none() {
        assert_eq!(parse_digits(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_digits(b"18446744073709551616"), None);
        assert_eq!(parse_digits(b""), None);
        assert_eq!(parse_digits(b"1-"), None);
    }
}
