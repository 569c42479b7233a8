//! The responses the enforcement layer answers with instead of the service.
//!
//! Every refusal is JSON with a `message` (`{"message":"unknown API key"}`),
//! except a rate-limit refusal, which is exactly the seed's 429: body
//! `{"message":"Too Many Attempts."}` ([`TOO_MANY_ATTEMPTS_BODY`]) and the
//! six `X-RateLimit-*`/`Retry-After` fields of the decision's
//! [`RateReport`]. With [`ResponseStyle::problem_json`] the 429 carries the
//! IETF draft's `application/problem+json` body instead.
//!
//! [`write_rate_headers`] is the one place a [`RateReport`] becomes
//! `http` header fields: the 429 here, and the rate-limit headers the
//! enforcement layer adds to the service's answer.
//!
//! Upload refusals (413, 422, 400) are rendered by
//! [`UploadError::to_response`](crate::upload::UploadError::to_response).
//! The builders are public so a gateway answers its own errors the same way.
//!
//! A failure of the gateway itself (a store that cannot answer, an upstream
//! out of reach) is answered by [`server_error`]: a short message for the
//! client and a [`RequestId`], in the body and in `X-Request-Id`, while the
//! detail (addresses, OS errors, error chains) goes only to the log line
//! that carries the same id.
//!
//! ```
//! use http::StatusCode;
//! use quota_transport::response::json_message;
//!
//! let res = json_message(StatusCode::PAYMENT_REQUIRED, "insufficient credit: \"$0.50\" needed");
//! assert_eq!(res.status(), 402);
//! assert_eq!(res.headers()["content-type"], "application/json");
//! assert_eq!(res.body().as_ref(), br#"{"message":"insufficient credit: \"$0.50\" needed"}"#);
//! ```

use core::fmt;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use quota_core::report::{FieldName, FieldValue, RateReport};
use quota_core::TOO_MANY_ATTEMPTS_BODY;
use smallvec::SmallVec;

/// `application/json`.
pub const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
/// `application/problem+json`.
pub const APPLICATION_PROBLEM_JSON: HeaderValue =
    HeaderValue::from_static("application/problem+json");

/// How rate-limit information is rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseStyle {
    /// Also send the IETF draft's `RateLimit-Policy` and `RateLimit` fields
    /// beside the seed's headers ([`RateReport::with_ietf`]).
    pub ietf_headers: bool,
    /// Answer a 429 with the IETF draft's `application/problem+json` body
    /// ([`RateReport::problem_body`]) instead of the seed's `message` body.
    pub problem_json: bool,
}

/// A JSON body `{"message": MESSAGE}`, escaped.
pub fn message_body(message: &str) -> Bytes {
    serde_json::to_vec(&serde_json::json!({ "message": message })).map_or_else(
        // Serialising a string into a map cannot fail; keep a valid body anyway.
        |_| Bytes::from_static(br#"{"message":"error"}"#),
        Bytes::from,
    )
}

/// A response with `status` and the JSON body `{"message": MESSAGE}`.
pub fn json_message(status: StatusCode, message: &str) -> Response<Bytes> {
    with_body(status, APPLICATION_JSON, message_body(message))
}

/// The 429 for a refused decision: the seed's body (or, with
/// `problem_json`, the IETF problem details body), `Content-Type`, and the
/// report's fields ([`write_rate_headers`]: the IETF fields too when the
/// report has them).
///
/// ```
/// use quota_core::policy::{Policy, Request};
/// use quota_core::{MemoryStore, RateReport, Timestamp};
/// use quota_transport::response::too_many_attempts;
///
/// let (policy, store) = (Policy::seed(), MemoryStore::new());
/// let req = Request { account: "a", tier: "basic", endpoint: "txt2video", cost: 1 };
/// let now = Timestamp::from_secs(1_700_000_000);
/// store.check(&policy, &req, now)?;
/// let refused = RateReport::new(&store.check(&policy, &req, now)?);
/// let res = too_many_attempts(&refused, false);
/// assert_eq!(res.status(), 429);
/// assert_eq!(res.headers()["retry-after"], "40");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn too_many_attempts(report: &RateReport, problem_json: bool) -> Response<Bytes> {
    let mut res = match report.problem_body().filter(|_| problem_json) {
        Some(problem) => with_body(
            StatusCode::TOO_MANY_REQUESTS,
            APPLICATION_PROBLEM_JSON,
            Bytes::from(problem),
        ),
        None => with_body(
            StatusCode::TOO_MANY_REQUESTS,
            APPLICATION_JSON,
            Bytes::from_static(TOO_MANY_ATTEMPTS_BODY.as_bytes()),
        ),
    };
    write_rate_headers(report, res.headers_mut());
    res
}

/// Sets `report`'s fields in `headers` (see [`RateReport::fields`]),
/// replacing any of the same names. Counts up to 9999 and the usual limit
/// names are taken from static text: nothing is formatted or allocated for
/// them; larger counts share one buffer (one allocation for all of them).
pub fn write_rate_headers(report: &RateReport, headers: &mut HeaderMap) {
    RateHeaders::new(report).write(headers, true);
}

/// A report's fields as `http` header values, rendered once: numbers up to
/// 9999 from the static table, larger ones slices of one shared buffer,
/// limit names without a copy.
#[derive(Debug, Default)]
pub(crate) struct RateHeaders {
    fields: SmallVec<[(FieldName, HeaderValue); 6]>,
}

/// The most numeric fields a report renders: the four counts and
/// `Retry-After`.
const NUMBERS: usize = 5;

impl RateHeaders {
    /// The fields of `report`, in the order of [`FieldName::ALL`].
    pub(crate) fn new(report: &RateReport) -> Self {
        let mut fields: SmallVec<[(FieldName, HeaderValue); 6]> = SmallVec::new();
        // Numbers over the table: their digits, and where each goes.
        let mut digits = [0u8; NUMBERS * 20];
        let mut used = 0;
        let mut large: [(usize, usize, usize); NUMBERS] = [(0, 0, 0); NUMBERS];
        let mut n_large = 0;
        for name in FieldName::ALL {
            if let Some(n) = report.number(name) {
                if let Some(value) = table_value(n) {
                    fields.push((name, value));
                } else if let Some(slot) = large.get_mut(n_large) {
                    let mut buf = itoa::Buffer::new();
                    let text = buf.format(n).as_bytes();
                    let end = used + text.len();
                    if let Some(to) = digits.get_mut(used..end) {
                        to.copy_from_slice(text);
                        *slot = (fields.len(), used, end);
                        n_large += 1;
                        used = end;
                        // A placeholder, replaced below.
                        fields.push((name, HeaderValue::from_static("")));
                    }
                }
            } else if let Some(value) = report.value(name).and_then(header_value) {
                fields.push((name, value));
            }
        }
        if n_large > 0 {
            let shared = Bytes::from_owner(digits);
            for &(at, start, end) in &large[..n_large] {
                let value = HeaderValue::from_maybe_shared(shared.slice(start..end));
                if let (Some(field), Ok(value)) = (fields.get_mut(at), value) {
                    field.1 = value;
                }
            }
        }
        RateHeaders { fields }
    }

    /// Sets the fields in `headers`, replacing any of the same names; the
    /// IETF fields only when `ietf`.
    pub(crate) fn write(self, headers: &mut HeaderMap, ietf: bool) {
        for (name, value) in self.fields {
            if ietf || !name.is_ietf() {
                headers.insert(header_name(name), value);
            }
        }
    }
}

/// The `http` name of a report's field (lower case).
pub const fn header_name(name: FieldName) -> HeaderName {
    match name {
        FieldName::Limit => X_RATELIMIT_LIMIT,
        FieldName::Remaining => X_RATELIMIT_REMAINING,
        FieldName::DailyLimit => X_RATELIMIT_DAILY_LIMIT,
        FieldName::DailyRemaining => X_RATELIMIT_DAILY_REMAINING,
        FieldName::Type => X_RATELIMIT_TYPE,
        FieldName::RetryAfter => RETRY_AFTER,
        FieldName::RateLimitPolicy => RATELIMIT_POLICY,
        FieldName::RateLimit => RATELIMIT,
    }
}

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_DAILY_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-daily-limit");
const X_RATELIMIT_DAILY_REMAINING: HeaderName =
    HeaderName::from_static("x-ratelimit-daily-remaining");
const X_RATELIMIT_TYPE: HeaderName = HeaderName::from_static("x-ratelimit-type");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// A field value as an `http` one: numbers from a static table, static
/// names without a copy; `None` for text no header may carry (a report
/// renders none).
fn header_value(value: FieldValue<'_>) -> Option<HeaderValue> {
    if let Some(n) = value.as_number() {
        return Some(int_value(n));
    }
    if let Some(s) = value.as_static() {
        return Some(HeaderValue::from_static(s));
    }
    HeaderValue::try_from(value.into_string()).ok()
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
fn int_value(n: u64) -> HeaderValue {
    table_value(n).unwrap_or_else(|| HeaderValue::from(n))
}

/// `n` as a header value from the static table, if it is in it (up to 9999).
fn table_value(n: u64) -> Option<HeaderValue> {
    let (start, width) = match n {
        0..=9 => (n, 1),
        10..=99 => (10 + (n - 10) * 2, 2),
        100..=999 => (190 + (n - 100) * 3, 3),
        1000..=9999 => (2890 + (n - 1000) * 4, 4),
        _ => return None,
    };
    // Both are below DIGITS_LEN, which fits any usize.
    let (start, width) = (start as usize, width as usize);
    let digits = DIGITS.get(start..start + width)?;
    core::str::from_utf8(digits)
        .ok()
        .map(HeaderValue::from_static)
}

/// What a client is told when a store cannot answer: it says what kind of
/// failure it is and nothing of its cause, which goes to the log.
pub const TEMPORARILY_UNAVAILABLE: &str = "the service is temporarily unavailable; try again later";

/// The `X-Request-Id` header of [`server_error`].
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of one failed request, shown to the client and logged beside the
/// detail, so that an operator can find the one from the other: 16 hex
/// digits, random.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(u64);

impl RequestId {
    /// A new random id.
    pub fn new() -> Self {
        RequestId(rand::random())
    }
}

impl Default for RequestId {
    /// A new random id.
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A response the gateway answers for its own failure: `status`, the JSON
/// body `{"message": MESSAGE, "request_id": ID}` and `X-Request-Id: ID`.
/// `message` is for the client (say what failed, never why in detail); log
/// the detail with the same `id`.
///
/// ```
/// use http::StatusCode;
/// use quota_transport::response::{server_error, RequestId};
///
/// let id = RequestId::new();
/// // tracing::warn!(request_id = %id, error = %e, "store unavailable");
/// let res = server_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable", id);
/// assert_eq!(res.headers()["x-request-id"], id.to_string().as_str());
/// let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
/// assert_eq!(body["request_id"], id.to_string());
/// ```
pub fn server_error(status: StatusCode, message: &str, id: RequestId) -> Response<Bytes> {
    let id = id.to_string();
    let body = serde_json::to_vec(&serde_json::json!({ "message": message, "request_id": id }))
        .map_or_else(|_| message_body(message), Bytes::from);
    let mut res = with_body(status, APPLICATION_JSON, body);
    if let Ok(value) = HeaderValue::try_from(id) {
        res.headers_mut().insert(X_REQUEST_ID, value);
    }
    res
}

fn with_body(status: StatusCode, content_type: HeaderValue, body: Bytes) -> Response<Bytes> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, content_type);
    res
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;
    use quota_core::policy::{Policy, Request};
    use quota_core::{MemoryStore, Timestamp};

    #[test]
    fn refusal_has_the_seed_body_and_six_headers() {
        let policy = Policy::seed();
        let store = MemoryStore::new();
        let req = Request {
            account: "a",
            tier: "basic",
            endpoint: "txt2video",
            cost: 1,
        };
        let now = Timestamp::from_secs(1_700_000_000);
        store.check(&policy, &req, now).unwrap();
        let refused = store.check(&policy, &req, now).unwrap();
        let res = too_many_attempts(&RateReport::new(&refused), false);
        assert_eq!(res.status(), 429);
        assert_eq!(res.body().as_ref(), TOO_MANY_ATTEMPTS_BODY.as_bytes());
        let h = res.headers();
        assert_eq!(h["x-ratelimit-limit"], "1");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        assert_eq!(h["x-ratelimit-daily-limit"], "15");
        assert_eq!(h["x-ratelimit-daily-remaining"], "14");
        assert_eq!(h["x-ratelimit-type"], "minute");
        assert_eq!(h["retry-after"], "40");
        assert_eq!(h.len(), 7); // the six and Content-Type
    }

    #[test]
    fn table_values_are_the_decimal_numbers() {
        for n in (0..10_100).chain([u64::MAX]) {
            assert_eq!(int_value(n), n.to_string().as_str(), "{n}");
        }
    }

    #[test]
    fn header_names_are_the_fields_names() {
        for f in FieldName::ALL {
            assert_eq!(header_name(f).as_str(), f.lowercase());
        }
    }
}
