//! What a decision said, owned: put in request extensions and rendered as
//! headers on the inner service's response without formatting strings.

use std::borrow::Cow;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use quota_core::{Decision, LimitStatus};
use smallvec::SmallVec;

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_DAILY_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-daily-limit");
const X_RATELIMIT_DAILY_REMAINING: HeaderName =
    HeaderName::from_static("x-ratelimit-daily-remaining");
const X_RATELIMIT_TYPE: HeaderName = HeaderName::from_static("x-ratelimit-type");
const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");

/// One limit of a decision, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitSummary {
    /// The limit's name (`minute`, `daily`).
    pub name: Cow<'static, str>,
    /// Units per window.
    pub count: u64,
    /// Units left (after this request when it was admitted).
    pub remaining: u64,
    /// Time until the limit is fully replenished.
    pub reset_after: Duration,
    /// Whether this limit admitted the request.
    pub admits: bool,
    /// Whether it is reported in the `X-RateLimit-Daily-*` headers.
    pub daily: bool,
}

/// The rate-limit decision on a request, as the enforcement layer inserts it
/// into the request's extensions (beside the resolved
/// [`Identity`](quota_core::account::Identity)) for the inner service.
///
/// ```
/// # use quota_transport::enforce::DecisionSummary;
/// fn handler(req: http::Request<()>) -> String {
///     match req.extensions().get::<DecisionSummary>().and_then(|d| d.minute()) {
///         Some(m) => format!("{} of {} left this minute", m.remaining, m.count),
///         None => "no minute limit".into(),
///     }
/// }
/// # assert_eq!(handler(http::Request::new(())), "no minute limit");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecisionSummary {
    limits: SmallVec<[LimitSummary; 3]>,
    minute: Option<u8>,
    daily: Option<u8>,
    refused_by: Option<u8>,
    retry_after_secs: Option<u64>,
}

impl DecisionSummary {
    /// Summarises a decision.
    pub fn new(decision: &Decision<'_>) -> Self {
        let statuses = decision.statuses();
        let index = |s: Option<&LimitStatus<'_>>| {
            s.and_then(|s| statuses.iter().position(|t| core::ptr::eq(t, s)))
                .and_then(|i| u8::try_from(i).ok())
        };
        DecisionSummary {
            limits: statuses.iter().map(limit_summary).collect(),
            minute: index(decision.minute()),
            daily: index(decision.daily()),
            refused_by: index(decision.refused_by()),
            retry_after_secs: decision.retry_after_secs(),
        }
    }

    /// Whether every limit admitted the request (in shadow mode a refused
    /// request reaches the service with `false` here).
    pub fn is_admitted(&self) -> bool {
        self.refused_by.is_none()
    }

    /// Every limit that applied, in plan order.
    pub fn limits(&self) -> &[LimitSummary] {
        &self.limits
    }

    /// The limit reported in `X-RateLimit-Limit`/`-Remaining`.
    pub fn minute(&self) -> Option<&LimitSummary> {
        self.get(self.minute)
    }

    /// The limit reported in `X-RateLimit-Daily-*`.
    pub fn daily(&self) -> Option<&LimitSummary> {
        self.get(self.daily)
    }

    /// The limit reported in `X-RateLimit-Type`, if refused.
    pub fn refused_by(&self) -> Option<&LimitSummary> {
        self.get(self.refused_by)
    }

    /// `Retry-After` in whole seconds (never 0), if refused.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    fn get(&self, i: Option<u8>) -> Option<&LimitSummary> {
        i.and_then(|i| self.limits.get(usize::from(i)))
    }

    /// Sets the seed's headers, the same names and values as
    /// [`Decision::headers`], without allocating for values up to 9999.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        RateHeaders::new(self).write(headers);
    }
}

/// Just what the seed's headers need: what the layer keeps for the response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    minute: Option<(u64, u64)>,
    daily: Option<(u64, u64)>,
    refused: Option<(Cow<'static, str>, u64)>,
}

impl RateHeaders {
    pub(crate) fn new(summary: &DecisionSummary) -> Self {
        RateHeaders {
            minute: summary.minute().map(|m| (m.count, m.remaining)),
            daily: summary.daily().map(|d| (d.count, d.remaining)),
            refused: summary
                .refused_by()
                .zip(summary.retry_after_secs)
                .map(|(r, secs)| (r.name.clone(), secs)),
        }
    }

    /// The same as `RateHeaders::new(&DecisionSummary::new(decision))`,
    /// without the summary.
    pub(crate) fn from_decision(decision: &Decision<'_>) -> Self {
        RateHeaders {
            minute: decision.minute().map(|m| (m.count(), m.remaining())),
            daily: decision.daily().map(|d| (d.count(), d.remaining())),
            refused: decision
                .refused_by()
                .zip(decision.retry_after_secs())
                .map(|(r, secs)| (static_name(r.name()), secs)),
        }
    }

    pub(crate) fn is_refused(&self) -> bool {
        self.refused.is_some()
    }

    pub(crate) fn refused_name(&self) -> Option<Cow<'static, str>> {
        self.refused.as_ref().map(|(name, _)| name.clone())
    }

    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        if let Some((count, remaining)) = self.minute {
            headers.insert(X_RATELIMIT_LIMIT, int_value(count));
            headers.insert(X_RATELIMIT_REMAINING, int_value(remaining));
        }
        if let Some((count, remaining)) = self.daily {
            headers.insert(X_RATELIMIT_DAILY_LIMIT, int_value(count));
            headers.insert(X_RATELIMIT_DAILY_REMAINING, int_value(remaining));
        }
        if let Some((name, secs)) = &self.refused {
            let name = match name {
                Cow::Borrowed(s) => Ok(HeaderValue::from_static(s)),
                Cow::Owned(s) => HeaderValue::try_from(s.as_str()),
            };
            if let Ok(name) = name {
                headers.insert(X_RATELIMIT_TYPE, name);
            }
            headers.insert(RETRY_AFTER, int_value(*secs));
        }
    }
}

/// Every header a decision puts on the answer: the seed's rate-limit
/// headers and, when configured, the IETF fields.
#[derive(Clone, Debug, Default)]
pub(crate) struct AnswerHeaders {
    pub(crate) rate: Option<RateHeaders>,
    pub(crate) ietf: Vec<(HeaderName, HeaderValue)>,
}

impl AnswerHeaders {
    /// Sets them in `headers`, replacing any of the same names.
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        if let Some(rate) = &self.rate {
            rate.write(headers);
        }
        for (name, value) in &self.ietf {
            headers.insert(name.clone(), value.clone());
        }
    }

    /// The same as `name: value` lines of an HTTP/1.1 head.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        if let Some(rate) = &self.rate {
            rate.encode(out);
        }
        for (name, value) in &self.ietf {
            field_line(out, name, value.as_bytes());
        }
    }

    /// Whether [`AnswerHeaders::write`] sets a header named `name` (any case).
    pub(crate) fn sets(&self, name: &[u8]) -> bool {
        self.rate.as_ref().is_some_and(|r| r.sets(name))
            || self
                .ietf
                .iter()
                .any(|(n, _)| name.eq_ignore_ascii_case(n.as_str().as_bytes()))
    }

    /// Whether the decision refused the request (shadow mode lets it pass).
    pub(crate) fn is_refused(&self) -> bool {
        self.rate.as_ref().is_some_and(RateHeaders::is_refused)
    }
}

/// One `name: value` line of an HTTP/1.1 head.
#[inline]
fn field_line(out: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

impl RateHeaders {
    /// The headers [`RateHeaders::write`] sets, as `name: value` lines of
    /// an HTTP/1.1 head (names in lower case, as `http` spells them).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let mut digits = itoa::Buffer::new();
        let mut line = |name: &HeaderName, value: &[u8]| field_line(out, name, value);
        if let Some((count, remaining)) = self.minute {
            line(&X_RATELIMIT_LIMIT, digits.format(count).as_bytes());
            line(&X_RATELIMIT_REMAINING, digits.format(remaining).as_bytes());
        }
        if let Some((count, remaining)) = self.daily {
            line(&X_RATELIMIT_DAILY_LIMIT, digits.format(count).as_bytes());
            line(
                &X_RATELIMIT_DAILY_REMAINING,
                digits.format(remaining).as_bytes(),
            );
        }
        if let Some((name, secs)) = &self.refused {
            // The same test as `write`'s `HeaderValue::try_from`.
            if HeaderValue::try_from(name.as_ref()).is_ok() {
                line(&X_RATELIMIT_TYPE, name.as_bytes());
            }
            line(&RETRY_AFTER, digits.format(*secs).as_bytes());
        }
    }

    /// Whether [`RateHeaders::write`] sets a header named `name` (any
    /// case), replacing one of that name.
    pub(crate) fn sets(&self, name: &[u8]) -> bool {
        let is = |n: &HeaderName| name.eq_ignore_ascii_case(n.as_str().as_bytes());
        (self.minute.is_some() && (is(&X_RATELIMIT_LIMIT) || is(&X_RATELIMIT_REMAINING)))
            || (self.daily.is_some()
                && (is(&X_RATELIMIT_DAILY_LIMIT) || is(&X_RATELIMIT_DAILY_REMAINING)))
            || (self.refused.is_some() && (is(&X_RATELIMIT_TYPE) || is(&RETRY_AFTER)))
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

fn limit_summary(s: &LimitStatus<'_>) -> LimitSummary {
    LimitSummary {
        name: static_name(s.name()),
        count: s.count(),
        remaining: s.remaining(),
        reset_after: s.reset_after(),
        admits: s.admits(),
        daily: s.limit().is_daily(),
    }
}

/// The decimal digits of 0..=9999, concatenated: small header values are
/// slices of this table, so rendering them allocates nothing.
static DIGITS: [u8; DIGITS_LEN] = digits();
const DIGITS_LEN: usize = 10 + 90 * 2 + 900 * 3 + 9000 * 4;

const fn digits() -> [u8; DIGITS_LEN] {
    let mut out = [0u8; DIGITS_LEN];
    let mut n = 0usize;
    let mut at = 0usize;
    while n < 10_000 {
        let width = if n < 10 {
            1
        } else if n < 100 {
            2
        } else if n < 1000 {
            3
        } else {
            4
        };
        let mut v = n;
        let mut i = width;
        while i > 0 {
            i -= 1;
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        at += width;
        n += 1;
    }
    out
}

/// `n` as a header value; from the static table up to 9999.
pub(crate) fn int_value(n: u64) -> HeaderValue {
    let (start, width) = match n {
        0..=9 => (n, 1),
        10..=99 => (10 + (n - 10) * 2, 2),
        100..=999 => (190 + (n - 100) * 3, 3),
        1000..=9999 => (2890 + (n - 1000) * 4, 4),
        _ => return HeaderValue::from(n),
    };
    // Both are below DIGITS_LEN, which fits any usize.
    let (start, width) = (start as usize, width as usize);
    match core::str::from_utf8(&DIGITS[start..start + width]) {
        Ok(s) => HeaderValue::from_static(s),
        Err(_) => HeaderValue::from(n),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;
    use quota_core::policy::{Policy, Request};
    use quota_core::{MemoryStore, Timestamp};

    #[test]
    fn table_values_are_the_decimal_numbers() {
        for n in (0..10_100).chain([u64::MAX]) {
            assert_eq!(int_value(n), n.to_string().as_str(), "{n}");
        }
    }

    fn rendered(summary: &DecisionSummary) -> Vec<(String, String)> {
        let mut h = HeaderMap::new();
        summary.write_headers(&mut h);
        h.iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect()
    }

    fn expected(decision: &Decision<'_>) -> Vec<(String, String)> {
        decision
            .headers()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect()
    }

    /// The old renderers of this module against the new model and its
    /// adapter (`response::write_rate_headers`, `RateReport::encode`).
    #[test]
    fn the_report_renders_what_rate_headers_and_answer_headers_did() {
        use quota_core::report::RateReport;
        let policy = Policy::seed();
        let store = MemoryStore::new();
        let mut compared = 0;
        for (i, (tier, endpoint)) in [
            ("basic", "txt2img"),
            ("premium", "txt2img"),
            ("basic", "prompt/x"),
            ("basic", "txt2video"),
            ("basic", "img2txt"),
        ]
        .into_iter()
        .enumerate()
        {
            for step in 0..40u64 {
                let req = Request {
                    account: "a",
                    tier,
                    endpoint,
                    cost: 1,
                };
                let now = Timestamp::from_millis(1_700_000_000_000 + step * 7_919 + i as u64);
                let d = store.check(&policy, &req, now).unwrap();
                for ietf in [false, true] {
                    let old = AnswerHeaders {
                        rate: Some(RateHeaders::from_decision(&d)),
                        ietf: if ietf {
                            super::super::check::ietf_headers_for_test(&d)
                        } else {
                            Vec::new()
                        },
                    };
                    let report = RateReport::new(&d).with_ietf(ietf);
                    let mut old_map = HeaderMap::new();
                    old.write(&mut old_map);
                    let mut new_map = HeaderMap::new();
                    crate::response::write_rate_headers(&report, &mut new_map);
                    assert_eq!(old_map, new_map);
                    let old_pairs: Vec<_> = old_map.iter().collect();
                    let new_pairs: Vec<_> = new_map.iter().collect();
                    assert_eq!(old_pairs, new_pairs, "order");
                    let (mut old_head, mut new_head) = (Vec::new(), Vec::new());
                    old.encode(&mut old_head);
                    report.encode(&mut new_head);
                    assert_eq!(
                        String::from_utf8(old_head).unwrap(),
                        String::from_utf8(new_head).unwrap()
                    );
                    for name in [
                        "x-ratelimit-limit",
                        "X-RateLimit-Daily-Remaining",
                        "RETRY-AFTER",
                        "x-ratelimit-type",
                        "RateLimit",
                        "ratelimit-policy",
                        "content-type",
                    ] {
                        assert_eq!(
                            old.sets(name.as_bytes()),
                            report.sets(name.as_bytes()),
                            "{name}"
                        );
                    }
                    assert_eq!(old.is_refused(), !report.is_admitted());
                    let old_429 = crate::response::too_many_attempts_old_for_test(
                        &d,
                        crate::response::ResponseStyle {
                            ietf_headers: ietf,
                            problem_json: ietf,
                        },
                    );
                    let new_429 = crate::response::too_many_attempts(&report, ietf);
                    assert_eq!(old_429.headers(), new_429.headers());
                    assert_eq!(old_429.body(), new_429.body());
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 400);
    }

    #[test]
    fn written_headers_equal_the_core_headers_admitted_and_refused() {
        let policy = Policy::seed();
        let store = MemoryStore::new();
        let now = Timestamp::from_secs(1_700_000_000);
        for (tier, endpoint, calls) in [
            ("basic", "txt2img", 5),
            ("premium", "txt2img", 2),
            ("basic", "prompt/x", 12),
        ] {
            let req = Request {
                account: "a",
                tier,
                endpoint,
                cost: 1,
            };
            for _ in 0..calls {
                let d = store.check(&policy, &req, now).unwrap();
                let s = DecisionSummary::new(&d);
                assert_eq!(RateHeaders::from_decision(&d), RateHeaders::new(&s));
                assert_eq!(rendered(&s), expected(&d));
                assert_eq!(s.is_admitted(), d.is_admitted());
            }
        }
    }
}
