//! Reading the rate-limit headers of a response.
//!
//! ```
//! use quota_core::client::{LimitType, RateLimitHeaders};
//! use std::time::Duration;
//!
//! let h = RateLimitHeaders::parse([
//!     ("X-RateLimit-Limit", "3".as_bytes()),
//!     ("x-ratelimit-remaining", b"0"),
//!     ("X-RateLimit-Type", b"Minute"),
//!     ("Retry-After", b"41"),
//!     ("RateLimit", br#""minute";r=0;t=41"#),
//!     ("X-RateLimit-Daily-Limit", b"lots"), // malformed: ignored
//! ]);
//! assert_eq!(h.limit, Some(3));
//! assert_eq!(h.remaining, Some(0));
//! assert_eq!(h.daily_limit, None);
//! assert_eq!(h.limit_type, Some(LimitType::Minute));
//! assert_eq!(h.ratelimit()[0].remaining, Some(0));
//! assert_eq!(h.ratelimit()[0].reset, Some(Duration::from_secs(41)));
//! ```
//!
//! Header names match case-insensitively. Values are bytes (a header value
//! need not be UTF-8). A malformed value is ignored as if the header were
//! absent; when a header appears several times, the first well-formed value
//! counts. Nothing here panics, whatever the bytes: this is the fuzzing entry
//! point for the client's header parsing.

use core::time::Duration;

use smallvec::SmallVec;

use super::retry_after::{parse_digits, trim_ows, RetryAfter};

/// At most this many members of a `RateLimit` field are kept; the rest are
/// ignored, so a hostile header costs bounded memory.
pub const MAX_RATELIMIT_ENTRIES: usize = 8;

/// Which limit refused a request, from the `X-RateLimit-Type` header.
///
/// ```
/// use quota_core::client::LimitType;
/// assert_eq!(LimitType::parse(b" DAILY "), LimitType::Daily);
/// assert_eq!(LimitType::parse(b"minute"), LimitType::Minute);
/// assert_eq!(LimitType::parse(b"hourly"), LimitType::Other);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitType {
    /// The per-minute limit (`minute`): it lets requests through again soon.
    Minute,
    /// The daily limit (`daily`): try again tomorrow.
    Daily,
    /// Any other value. The retry strategy treats it like a minute limit, as
    /// the seed's client does.
    Other,
}

impl LimitType {
    /// Parses a header value: `minute` or `daily`, ignoring ASCII case and
    /// surrounding whitespace; anything else is [`LimitType::Other`].
    pub fn parse(value: impl AsRef<[u8]>) -> LimitType {
        let v = trim_ows(value.as_ref());
        if v.eq_ignore_ascii_case(b"minute") {
            LimitType::Minute
        } else if v.eq_ignore_ascii_case(b"daily") {
            LimitType::Daily
        } else {
            LimitType::Other
        }
    }

    /// The limit's name, for messages: `minute`, `daily` or `unnamed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LimitType::Minute => "minute",
            LimitType::Daily => "daily",
            LimitType::Other => "unnamed",
        }
    }
}

/// One member of an IETF `RateLimit` field (draft-ietf-httpapi-ratelimit-headers),
/// e.g. `"minute";r=2;t=41`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RateLimitEntry {
    /// `r`: requests left in the policy's current window.
    pub remaining: Option<u64>,
    /// `t`: time until the window resets (whole seconds on the wire).
    pub reset: Option<Duration>,
}

/// The rate-limit headers of one response, parsed leniently.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitHeaders {
    /// `X-RateLimit-Limit`: requests allowed per minute.
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`: requests left in the current minute.
    pub remaining: Option<u64>,
    /// `X-RateLimit-Daily-Limit`: requests allowed per day.
    pub daily_limit: Option<u64>,
    /// `X-RateLimit-Daily-Remaining`: requests left today.
    pub daily_remaining: Option<u64>,
    /// `X-RateLimit-Type`: which limit refused the request.
    pub limit_type: Option<LimitType>,
    /// `Retry-After`.
    pub retry_after: Option<RetryAfter>,
    ratelimit: SmallVec<[RateLimitEntry; 2]>,
}

impl RateLimitHeaders {
    /// Parses the headers of a response.
    ///
    /// Takes any `(name, value)` pairs of bytes: `(&str, &[u8])`, `(&[u8],
    /// &[u8])`, or `http::HeaderMap::iter()` directly.
    pub fn parse<H, N, V>(headers: H) -> Self
    where
        H: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut out = RateLimitHeaders::default();
        for (name, value) in headers {
            out.add(name.as_ref(), value.as_ref());
        }
        out
    }

    /// The members of the `RateLimit` field that carried `r` or `t`, in order
    /// (at most [`MAX_RATELIMIT_ENTRIES`]; further fields add to the list).
    pub fn ratelimit(&self) -> &[RateLimitEntry] {
        &self.ratelimit
    }

    fn add(&mut self, name: &[u8], value: &[u8]) {
        let first_count = |slot: &mut Option<u64>| {
            if slot.is_none() {
                *slot = parse_digits(trim_ows(value));
            }
        };
        if name.eq_ignore_ascii_case(b"x-ratelimit-limit") {
            first_count(&mut self.limit);
        } else if name.eq_ignore_ascii_case(b"x-ratelimit-remaining") {
            first_count(&mut self.remaining);
        } else if name.eq_ignore_ascii_case(b"x-ratelimit-daily-limit") {
            first_count(&mut self.daily_limit);
        } else if name.eq_ignore_ascii_case(b"x-ratelimit-daily-remaining") {
            first_count(&mut self.daily_remaining);
        } else if name.eq_ignore_ascii_case(b"x-ratelimit-type") {
            self.limit_type.get_or_insert(LimitType::parse(value));
        } else if name.eq_ignore_ascii_case(b"retry-after") {
            if self.retry_after.is_none() {
                self.retry_after = RetryAfter::parse(value);
            }
        } else if name.eq_ignore_ascii_case(b"ratelimit") {
            parse_ratelimit_field(value, &mut self.ratelimit);
        }
    }
}

/// Parses a `RateLimit` field into `out`.
///
/// Two shapes are understood, leniently:
/// - the current drafts' structured-field List, `"name";r=2;t=41, "day";r=50;t=3600`:
///   each member gives one entry;
/// - the older drafts' Dictionary, `limit=10, remaining=2, reset=41`: the
///   members together give one entry.
///
/// Unknown parameters, malformed numbers and negative values are ignored.
fn parse_ratelimit_field(value: &[u8], out: &mut SmallVec<[RateLimitEntry; 2]>) {
    let mut legacy = RateLimitEntry::default();
    for member in split_unquoted(value, b',') {
        let member = trim_ows(member);
        let mut parts = split_unquoted(member, b';');
        let item = trim_ows(parts.next().unwrap_or_default());
        let dictionary_member = if item.starts_with(b"\"") {
            None
        } else {
            split_key_value(item)
        };
        if let Some((key, val)) = dictionary_member {
            // Older draft: `remaining=2` / `reset=41` as dictionary members.
            if key.eq_ignore_ascii_case(b"remaining") {
                legacy.remaining = legacy.remaining.or(parse_digits(val));
            } else if key.eq_ignore_ascii_case(b"reset") {
                legacy.reset = legacy.reset.or(parse_digits(val).map(Duration::from_secs));
            }
            continue;
        }
        let mut entry = RateLimitEntry::default();
        for param in parts {
            let Some((key, val)) = split_key_value(trim_ows(param)) else {
                continue;
            };
            if key.eq_ignore_ascii_case(b"r") {
                entry.remaining = entry.remaining.or(parse_digits(val));
            } else if key.eq_ignore_ascii_case(b"t") {
                entry.reset = entry.reset.or(parse_digits(val).map(Duration::from_secs));
            }
        }
        push_entry(out, entry);
    }
    push_entry(out, legacy);
}

fn push_entry(out: &mut SmallVec<[RateLimitEntry; 2]>, entry: RateLimitEntry) {
    let useful = entry.remaining.is_some() || entry.reset.is_some();
    if useful && out.len() < MAX_RATELIMIT_ENTRIES {
        out.push(entry);
    }
}

/// `key=value` with whitespace trimmed around both; `None` without `=`.
fn split_key_value(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = s.iter().position(|&b| b == b'=')?;
    let (key, val) = s.split_at(eq);
    Some((trim_ows(key), trim_ows(val.get(1..).unwrap_or_default())))
}

/// Splits on `sep` outside double-quoted strings (with `\` escapes inside
/// them). An unterminated quote runs to the end of the input.
fn split_unquoted(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(s);
    core::iter::from_fn(move || {
        let s = rest?;
        let mut in_quote = false;
        let mut escaped = false;
        for (i, &b) in s.iter().enumerate() {
            if in_quote {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_quote = false;
                }
            } else if b == b'"' {
                in_quote = true;
            } else if b == sep {
                rest = s.get(i + 1..);
                return s.get(..i);
            }
        }
        rest = None;
        Some(s)
    })
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> RateLimitHeaders {
        RateLimitHeaders::parse(pairs.iter().map(|(n, v)| (*n, v.as_bytes())))
    }

    #[test]
    fn seed_headers_are_read_whatever_the_case_of_the_name() {
        let h = parse(&[
            ("X-RATELIMIT-LIMIT", "3"),
            ("x-ratelimit-remaining", "1"),
            ("X-RateLimit-Daily-Limit", "100"),
            ("x-RateLimit-daily-remaining", " 42 "),
            ("x-ratelimit-type", "daily"),
            ("retry-after", "3600"),
        ]);
        assert_eq!(h.limit, Some(3));
        assert_eq!(h.remaining, Some(1));
        assert_eq!(h.daily_limit, Some(100));
        assert_eq!(h.daily_remaining, Some(42));
        assert_eq!(h.limit_type, Some(LimitType::Daily));
        assert_eq!(
            h.retry_after,
            Some(RetryAfter::Delay(Duration::from_secs(3600)))
        );
    }

    #[test]
    fn malformed_values_are_ignored_and_the_first_good_one_counts() {
        let h = parse(&[
            ("X-RateLimit-Remaining", "-1"),
            ("X-RateLimit-Remaining", "2"),
            ("X-RateLimit-Remaining", "7"),
            ("X-RateLimit-Limit", "3.0"),
            ("Retry-After", "soon"),
            ("Retry-After", "9"),
        ]);
        assert_eq!(h.remaining, Some(2));
        assert_eq!(h.limit, None);
        assert_eq!(
            h.retry_after,
            Some(RetryAfter::Delay(Duration::from_secs(9)))
        );
    }

    #[test]
    fn unrelated_headers_leave_everything_unset() {
        let h = parse(&[("Content-Type", "application/json"), ("X-RateLimit", "5")]);
        assert_eq!(h, RateLimitHeaders::default());
    }

    #[test]
    fn limit_type_ignores_case_and_treats_unknown_values_as_other() {
        assert_eq!(LimitType::parse("DAILY"), LimitType::Daily);
        assert_eq!(LimitType::parse("\tMinute "), LimitType::Minute);
        assert_eq!(LimitType::parse(""), LimitType::Other);
        assert_eq!(LimitType::parse(b"\xffdaily"), LimitType::Other);
    }

    #[test]
    fn structured_ratelimit_field_gives_one_entry_per_member() {
        let h = parse(&[(
            "RateLimit",
            r#""minute";r=2;t=41, "day";r=0;t=3600;x="a;b,c""#,
        )]);
        let e = h.ratelimit();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].remaining, Some(2));
        assert_eq!(e[0].reset, Some(Duration::from_secs(41)));
        assert_eq!(e[1].remaining, Some(0));
        assert_eq!(e[1].reset, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn quoted_names_may_hold_separators() {
        let h = parse(&[("ratelimit", r#""a,\"b;c=d";r=1;t=2"#)]);
        assert_eq!(h.ratelimit().len(), 1);
        assert_eq!(h.ratelimit()[0].remaining, Some(1));
    }

    #[test]
    fn older_draft_dictionary_gives_one_entry() {
        let h = parse(&[("RateLimit", "limit=10, remaining=0, reset=7")]);
        assert_eq!(
            h.ratelimit(),
            &[RateLimitEntry {
                remaining: Some(0),
                reset: Some(Duration::from_secs(7))
            }]
        );
    }

    #[test]
    fn malformed_ratelimit_parameters_are_ignored() {
        let h = parse(&[("RateLimit", r#""m";r=-1;t=1.5, "n";r=x, "o", "#)]);
        assert!(h.ratelimit().is_empty());
        let h = parse(&[("RateLimit", r#""unterminated;r=1;t=2"#)]);
        assert!(h.ratelimit().is_empty());
    }

    #[test]
    fn ratelimit_entries_are_capped() {
        let many = vec![r#""p";r=1;t=1"#; 100].join(", ");
        let h = parse(&[("RateLimit", &many)]);
        assert_eq!(h.ratelimit().len(), MAX_RATELIMIT_ENTRIES);
    }

    #[test]
    fn split_unquoted_keeps_quoted_separators() {
        let parts: Vec<&[u8]> = split_unquoted(br#"a,"b,c",d"#, b',').collect();
        assert_eq!(parts, [&b"a"[..], &br#""b,c""#[..], &b"d"[..]]);
        let parts: Vec<&[u8]> = split_unquoted(b"", b',').collect();
        assert_eq!(parts, [&b""[..]]);
        let parts: Vec<&[u8]> = split_unquoted(b"a,", b',').collect();
        assert_eq!(parts, [&b"a"[..], &b""[..]]);
    }
}
