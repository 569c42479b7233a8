//! What a decision reports to the client, as one owned value: the seed's
//! rate-limit headers and, when enabled, the IETF draft's fields.
//!
//! A [`RateReport`] is built once from a [`Decision`] (admitted, refused, or
//! refused but let through in shadow mode) and borrows nothing from it, so it
//! can travel with the request (a gateway puts it in the request's
//! extensions) and be rendered by any transport without re-deriving
//! anything:
//!
//! - [`RateReport::fields`]: the `(name, value)` pairs, in the contract's
//!   order; numbers are formatted into a stack buffer, never on the heap;
//! - [`RateReport::encode`]: the same as `name: value` lines of an HTTP/1.1
//!   head (names in lower case);
//! - [`RateReport::sets`]: whether a field of a given name is among them.
//!
//! The fields (see `docs/contract.md`, section 4):
//!
//! | field | when |
//! |---|---|
//! | `X-RateLimit-Limit`, `X-RateLimit-Remaining` | a non-daily limit applies ([`Decision::minute`]) |
//! | `X-RateLimit-Daily-Limit`, `X-RateLimit-Daily-Remaining` | a daily limit applies ([`Decision::daily`]) |
//! | `X-RateLimit-Type`, `Retry-After` | the decision refused the request |
//! | `RateLimit-Policy`, `RateLimit` | [`RateReport::with_ietf`], and any limit applies |
//!
//! ```
//! use quota_core::policy::{Policy, Request};
//! use quota_core::report::{FieldName, RateReport};
//! use quota_core::{MemoryStore, Timestamp};
//!
//! let policy = Policy::seed();
//! let store = MemoryStore::new();
//! let req = Request { account: "acct-1", tier: "basic", endpoint: "txt2video", cost: 1 };
//! let now = Timestamp::from_secs(1_700_000_000); // 20 s into its minute
//! store.check(&policy, &req, now).unwrap();
//! let refused = RateReport::new(&store.check(&policy, &req, now).unwrap());
//!
//! let fields: Vec<(FieldName, String)> =
//!     refused.fields().map(|(name, value)| (name, value.to_string())).collect();
//! assert_eq!(fields[4], (FieldName::Type, "minute".to_owned()));
//! assert_eq!(fields[5], (FieldName::RetryAfter, "40".to_owned()));
//!
//! let mut head = Vec::new();
//! refused.encode(&mut head);
//! assert!(head.starts_with(b"x-ratelimit-limit: 1\r\nx-ratelimit-remaining: 0\r\n"));
//! assert!(refused.sets(b"Retry-After"));
//! assert!(!refused.sets(b"RateLimit")); // the IETF fields are off
//! ```

use core::fmt;
use core::time::Duration;
use std::borrow::Cow;

use smallvec::SmallVec;

use crate::decision::{Decision, LimitStatus};
use crate::time::ceil_secs;

/// The name of a field a [`RateReport`] renders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldName {
    /// `X-RateLimit-Limit`: the size of the reported non-daily budget.
    Limit,
    /// `X-RateLimit-Remaining`: what is left of it.
    Remaining,
    /// `X-RateLimit-Daily-Limit`: the size of the reported daily budget.
    DailyLimit,
    /// `X-RateLimit-Daily-Remaining`: what is left of it today (UTC).
    DailyRemaining,
    /// `X-RateLimit-Type`: the limit that refused the request.
    Type,
    /// `Retry-After`: whole seconds until that limit admits again.
    RetryAfter,
    /// `RateLimit-Policy` (IETF draft): every limit, its quota and window.
    RateLimitPolicy,
    /// `RateLimit` (IETF draft): every limit's remaining units and reset.
    RateLimit,
}

impl FieldName {
    /// Every field, in the order a report renders them.
    pub const ALL: [FieldName; 8] = [
        FieldName::Limit,
        FieldName::Remaining,
        FieldName::DailyLimit,
        FieldName::DailyRemaining,
        FieldName::Type,
        FieldName::RetryAfter,
        FieldName::RateLimitPolicy,
        FieldName::RateLimit,
    ];

    /// The name as the contract spells it (`X-RateLimit-Limit`).
    pub const fn as_str(self) -> &'static str {
        match self {
            FieldName::Limit => "X-RateLimit-Limit",
            FieldName::Remaining => "X-RateLimit-Remaining",
            FieldName::DailyLimit => "X-RateLimit-Daily-Limit",
            FieldName::DailyRemaining => "X-RateLimit-Daily-Remaining",
            FieldName::Type => "X-RateLimit-Type",
            FieldName::RetryAfter => "Retry-After",
            FieldName::RateLimitPolicy => "RateLimit-Policy",
            FieldName::RateLimit => "RateLimit",
        }
    }

    /// The name in lower case (`x-ratelimit-limit`), as HTTP/2 requires
    /// and as [`RateReport::encode`] writes it.
    pub const fn lowercase(self) -> &'static str {
        match self {
            FieldName::Limit => "x-ratelimit-limit",
            FieldName::Remaining => "x-ratelimit-remaining",
            FieldName::DailyLimit => "x-ratelimit-daily-limit",
            FieldName::DailyRemaining => "x-ratelimit-daily-remaining",
            FieldName::Type => "x-ratelimit-type",
            FieldName::RetryAfter => "retry-after",
            FieldName::RateLimitPolicy => "ratelimit-policy",
            FieldName::RateLimit => "ratelimit",
        }
    }

    /// Whether this is one of the IETF draft's fields (`RateLimit-Policy`,
    /// `RateLimit`) rather than one of the seed's.
    pub const fn is_ietf(self) -> bool {
        matches!(self, FieldName::RateLimitPolicy | FieldName::RateLimit)
    }

    /// Whether `name` is this field's name, in any case.
    pub fn matches(self, name: &[u8]) -> bool {
        name.eq_ignore_ascii_case(self.lowercase().as_bytes())
    }
}

impl AsRef<str> for FieldName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for FieldName {
    fn as_ref(&self) -> &[u8] {
        self.as_str().as_bytes()
    }
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field's value, rendered: a number in decimal (formatted into a buffer
/// on the stack), a limit name (borrowed), or an IETF field's list.
///
/// Always valid field text: digits, limit names (lower-case letters,
/// digits, `-` and `_`, as the policy checks), quotes, `;`, `=`, `,` and
/// spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldValue<'r>(Repr<'r>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr<'r> {
    Number(Digits),
    Static(&'static str),
    Borrowed(&'r str),
    Owned(String),
}

impl<'r> FieldValue<'r> {
    fn number(n: u64) -> Self {
        FieldValue(Repr::Number(Digits::new(n)))
    }

    #[allow(clippy::ptr_arg)] // the `Cow` says whether the text is static
    fn name(name: &'r Cow<'static, str>) -> Self {
        FieldValue(match name {
            Cow::Borrowed(s) => Repr::Static(s),
            Cow::Owned(s) => Repr::Borrowed(s),
        })
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Number(d) => d.as_str(),
            Repr::Static(s) => s,
            Repr::Borrowed(s) => s,
            Repr::Owned(s) => s,
        }
    }

    /// The value as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }

    /// The number, when the value is one (the counts and `Retry-After`): a
    /// transport may take its bytes from a table of its own.
    pub fn as_number(&self) -> Option<u64> {
        match &self.0 {
            Repr::Number(d) => Some(d.value),
            _ => None,
        }
    }

    /// The text, when it lives as long as the program (the usual limit
    /// names): a transport may use it without copying.
    pub fn as_static(&self) -> Option<&'static str> {
        match self.0 {
            Repr::Static(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an owned string.
    pub fn into_string(self) -> String {
        match self.0 {
            Repr::Owned(s) => s,
            other => FieldValue(other).as_str().to_owned(),
        }
    }
}

impl AsRef<str> for FieldValue<'_> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for FieldValue<'_> {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Display for FieldValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `u64` in decimal, in a buffer on the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Digits {
    value: u64,
    buf: [u8; 20],
    start: u8,
}

impl Digits {
    fn new(value: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut at = buf.len();
        let mut n = value;
        loop {
            at -= 1;
            // n % 10 < 10: the cast keeps it whole.
            buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        // at < 20: the cast keeps it whole.
        Digits {
            value,
            buf,
            start: at as u8,
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits were written from `start` on.
        core::str::from_utf8(&self.buf[usize::from(self.start)..]).unwrap_or_default()
    }
}

/// One limit of a decision, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitReport {
    /// The limit's name (`minute`, `daily`).
    pub name: Cow<'static, str>,
    /// Units per window.
    pub count: u64,
    /// Units left: after this request when the decision admitted it, before
    /// it when the decision refused it (a refusal consumes nothing).
    pub remaining: u64,
    /// Time until the limit is fully replenished.
    pub reset_after: Duration,
    /// The limit's window.
    pub window: Duration,
    /// Whether this limit admitted the request.
    pub admits: bool,
    /// Whether it is reported in the `X-RateLimit-Daily-*` fields.
    pub daily: bool,
}

impl LimitReport {
    fn new(s: &LimitStatus<'_>) -> Self {
        LimitReport {
            name: static_name(s.name()),
            count: s.count(),
            remaining: s.remaining(),
            reset_after: s.reset_after(),
            window: Duration::from_millis(s.limit().limit().window_ms()),
            admits: s.admits(),
            daily: s.limit().is_daily(),
        }
    }
}

/// A limit name without allocating for the usual ones.
fn static_name(name: &str) -> Cow<'static, str> {
    match name {
        "minute" => Cow::Borrowed("minute"),
        "daily" => Cow::Borrowed("daily"),
        "second" => Cow::Borrowed("second"),
        "hour" => Cow::Borrowed("hour"),
        "week" => Cow::Borrowed("week"),
        other => Cow::Owned(other.to_owned()),
    }
}

/// What a decision reports, owned: every limit in plan order, which of them
/// the headers report, and whether the IETF fields are rendered. See the
/// [module docs](self).
///
/// It is what the enforcement layer hands the service it protects (in the
/// request's extensions), and what every transport renders the answer's
/// headers from.
///
/// ```
/// # use quota_core::report::RateReport;
/// fn handler(report: Option<&RateReport>) -> String {
///     match report.and_then(RateReport::minute) {
///         Some(m) => format!("{} of {} left this minute", m.remaining, m.count),
///         None => "no minute limit".into(),
///     }
/// }
/// # assert_eq!(handler(None), "no minute limit");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateReport {
    limits: SmallVec<[LimitReport; 3]>,
    // Indices into `limits` (a plan of more than 65,535 limits reports
    // none of those beyond).
    minute: Option<u16>,
    daily: Option<u16>,
    refused_by: Option<u16>,
    retry_after_secs: Option<u64>,
    ietf: bool,
}

impl RateReport {
    /// The report of `decision`, with the seed's fields only.
    pub fn new(decision: &Decision<'_>) -> Self {
        let statuses = decision.statuses();
        let index = |s: Option<&LimitStatus<'_>>| {
            s.and_then(|s| statuses.iter().position(|t| core::ptr::eq(t, s)))
                .and_then(|i| u16::try_from(i).ok())
        };
        RateReport {
            limits: statuses.iter().map(LimitReport::new).collect(),
            minute: index(decision.minute()),
            daily: index(decision.daily()),
            refused_by: index(decision.refused_by()),
            retry_after_secs: decision.retry_after_secs(),
            ietf: false,
        }
    }

    /// The same report, with the IETF draft's `RateLimit-Policy` and
    /// `RateLimit` fields rendered after the seed's when `on`.
    #[must_use]
    pub fn with_ietf(mut self, on: bool) -> Self {
        self.ietf = on;
        self
    }

    /// Whether the IETF fields are rendered.
    pub fn ietf(&self) -> bool {
        self.ietf
    }

    /// Whether every limit admitted the request (in shadow mode a refused
    /// request reaches the service with `false` here).
    pub fn is_admitted(&self) -> bool {
        self.refused_by.is_none()
    }

    /// Every limit that applied, in plan order.
    pub fn limits(&self) -> &[LimitReport] {
        &self.limits
    }

    /// The limit reported in `X-RateLimit-Limit`/`-Remaining`.
    pub fn minute(&self) -> Option<&LimitReport> {
        self.get(self.minute)
    }

    /// The limit reported in `X-RateLimit-Daily-*`.
    pub fn daily(&self) -> Option<&LimitReport> {
        self.get(self.daily)
    }

    /// The limit reported in `X-RateLimit-Type`, if refused.
    pub fn refused_by(&self) -> Option<&LimitReport> {
        self.get(self.refused_by)
    }

    /// `Retry-After` in whole seconds (never 0), if refused.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    fn get(&self, i: Option<u16>) -> Option<&LimitReport> {
        i.and_then(|i| self.limits.get(usize::from(i)))
    }

    /// The fields, in the order of [`FieldName::ALL`], each only where it
    /// applies (see the [module docs](self)).
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            report: self,
            next: 0,
        }
    }

    /// The fields as `name: value` lines of an HTTP/1.1 head, each ended by
    /// CRLF, appended to `out`; names in lower case.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for (name, value) in self.fields() {
            out.extend_from_slice(name.lowercase().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Whether the report has a field named `name` (any case): a transport
    /// replaces a field of that name by the report's.
    pub fn sets(&self, name: &[u8]) -> bool {
        FieldName::ALL
            .iter()
            .any(|&field| self.has(field) && field.matches(name))
    }

    /// Whether the report renders `field`.
    pub fn has(&self, field: FieldName) -> bool {
        match field {
            FieldName::Limit | FieldName::Remaining => self.minute().is_some(),
            FieldName::DailyLimit | FieldName::DailyRemaining => self.daily().is_some(),
            FieldName::Type | FieldName::RetryAfter => {
                self.refused_by().is_some() && self.retry_after_secs.is_some()
            }
            FieldName::RateLimitPolicy | FieldName::RateLimit => {
                self.ietf && !self.limits.is_empty()
            }
        }
    }

    /// The number `field` renders, for the numeric fields (the four
    /// counts and `Retry-After`) where the report renders them; `None`
    /// for any other. What [`RateReport::value`] formats, for a transport
    /// that takes the digits from a table of its own.
    pub fn number(&self, field: FieldName) -> Option<u64> {
        match field {
            FieldName::Limit => self.minute().map(|m| m.count),
            FieldName::Remaining => self.minute().map(|m| m.remaining),
            FieldName::DailyLimit => self.daily().map(|d| d.count),
            FieldName::DailyRemaining => self.daily().map(|d| d.remaining),
            FieldName::RetryAfter => self.refused_by().and(self.retry_after_secs),
            FieldName::Type | FieldName::RateLimitPolicy | FieldName::RateLimit => None,
        }
    }

    /// The value of `field`, where the report renders it.
    pub fn value(&self, field: FieldName) -> Option<FieldValue<'_>> {
        if !self.has(field) {
            return None;
        }
        let number = |n: Option<u64>| n.map(FieldValue::number);
        match field {
            FieldName::Limit => number(self.minute().map(|m| m.count)),
            FieldName::Remaining => number(self.minute().map(|m| m.remaining)),
            FieldName::DailyLimit => number(self.daily().map(|d| d.count)),
            FieldName::DailyRemaining => number(self.daily().map(|d| d.remaining)),
            FieldName::Type => self.refused_by().map(|r| FieldValue::name(&r.name)),
            FieldName::RetryAfter => number(self.retry_after_secs),
            FieldName::RateLimitPolicy => Some(self.ietf_list(|out, l| {
                let w = ceil_secs(millis(l.window)).max(1);
                push_quoted(out, &l.name);
                out.push_str(";q=");
                out.push_str(Digits::new(l.count).as_str());
                out.push_str(";w=");
                out.push_str(Digits::new(w).as_str());
            })),
            FieldName::RateLimit => Some(self.ietf_list(|out, l| {
                push_quoted(out, &l.name);
                out.push_str(";r=");
                out.push_str(Digits::new(l.remaining).as_str());
                out.push_str(";t=");
                out.push_str(Digits::new(ceil_secs(millis(l.reset_after))).as_str());
            })),
        }
    }

    /// An IETF field: one item per limit, in plan order, `, ` between.
    fn ietf_list(&self, item: impl Fn(&mut String, &LimitReport)) -> FieldValue<'static> {
        let mut out = String::with_capacity(32 * self.limits.len());
        for (i, l) in self.limits.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            item(&mut out, l);
        }
        FieldValue(Repr::Owned(out))
    }

    /// The IETF draft's `quota-exceeded` problem details body
    /// (`application/problem+json`) for a refusal, naming every limit that
    /// refused; `None` when admitted.
    pub fn problem_body(&self) -> Option<String> {
        self.refused_by()?;
        let mut violated = String::new();
        for (i, l) in self.limits.iter().filter(|l| !l.admits).enumerate() {
            if i > 0 {
                violated.push(',');
            }
            push_quoted(&mut violated, &l.name);
        }
        Some(format!(
            "{{\"type\":\"https://iana.org/assignments/http-problem-types#quota-exceeded\",\
             \"title\":\"Request cannot be satisfied as assigned quota has been exceeded\",\
             \"status\":429,\"violated-policies\":[{violated}]}}"
        ))
    }
}

/// A duration in whole milliseconds (a report's durations are built from
/// milliseconds, so nothing is lost), saturated at `u64::MAX`.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn push_quoted(out: &mut String, name: &str) {
    out.push('"');
    out.push_str(name);
    out.push('"');
}

impl From<&Decision<'_>> for RateReport {
    fn from(decision: &Decision<'_>) -> Self {
        RateReport::new(decision)
    }
}

/// The fields of a [`RateReport`]: `(name, value)` pairs, from
/// [`RateReport::fields`].
#[derive(Clone, Debug)]
pub struct Fields<'r> {
    report: &'r RateReport,
    next: usize,
}

impl<'r> Iterator for Fields<'r> {
    type Item = (FieldName, FieldValue<'r>);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(&field) = FieldName::ALL.get(self.next) {
            self.next += 1;
            if let Some(value) = self.report.value(field) {
                return Some((field, value));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;

    #[test]
    fn digits_are_the_decimal_numbers() {
        for n in (0..10_100).chain([u64::MAX, u64::MAX / 7, 1 << 40]) {
            assert_eq!(Digits::new(n).as_str(), n.to_string(), "{n}");
        }
    }

    #[test]
    fn an_empty_report_renders_nothing() {
        let report = RateReport::default().with_ietf(true);
        assert_eq!(report.fields().count(), 0);
        let mut out = Vec::new();
        report.encode(&mut out);
        assert!(out.is_empty());
        assert!(FieldName::ALL
            .iter()
            .all(|f| !report.sets(f.as_str().as_bytes())));
        assert!(report.is_admitted());
        assert_eq!(report.problem_body(), None);
    }

    #[test]
    fn names_match_in_any_case() {
        for f in FieldName::ALL {
            assert_eq!(f.as_str().to_ascii_lowercase(), f.lowercase());
            assert!(f.matches(f.as_str().as_bytes()));
            assert!(f.matches(f.as_str().to_ascii_uppercase().as_bytes()));
        }
        assert!(!FieldName::RateLimit.matches(b"ratelimit-policy"));
    }
}
