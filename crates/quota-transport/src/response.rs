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
use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use quota_core::report::{FieldName, FieldValue, RateReport};
use quota_core::TOO_MANY_ATTEMPTS_BODY;

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
/// replacing any of the same names; the other fields keep their values and
/// their order among themselves (the report's may come first). Counts up to 9999 and the usual limit
/// names are taken from static text: nothing is formatted or allocated for
/// them; larger counts share one buffer (one allocation for all of them).
pub fn write_rate_headers(report: &RateReport, headers: &mut HeaderMap) {
    RateHeaders::new(report).write(headers, true);
}

/// A report's fields as an `http` header map, rendered once: numbers up to
/// 9999 from the static table, larger ones slices of one shared buffer,
/// limit names without a copy.
///
/// The map is a copy of a template with the same names (one per set of
/// fields a report can render, built on first use): copying it hashes no
/// name, where inserting the names would hash each of them byte by byte
/// (`http` hashes a custom name on every insert).
#[derive(Debug)]
pub(crate) struct RateHeaders {
    map: HeaderMap,
}

/// The most numeric fields a report renders: the four counts and
/// `Retry-After`.
const NUMBERS: usize = 5;

/// One template per set of fields (bit `i` for `FieldName::ALL[i]`).
const SETS: usize = 1 << FieldName::ALL.len();

/// The templates, each built on first use.
static TEMPLATES: [OnceLock<HeaderMap>; SETS] = [const { OnceLock::new() }; SETS];

/// The placeholder value of field `i` in a template: its index, so a copy's
/// values are told apart without comparing names.
const PLACEHOLDERS: [HeaderValue; FieldName::ALL.len()] = [
    HeaderValue::from_static("0"),
    HeaderValue::from_static("1"),
    HeaderValue::from_static("2"),
    HeaderValue::from_static("3"),
    HeaderValue::from_static("4"),
    HeaderValue::from_static("5"),
    HeaderValue::from_static("6"),
    HeaderValue::from_static("7"),
];

/// The template for the fields of `set`: each name once, its value the
/// field's placeholder.
fn template(set: usize) -> &'static HeaderMap {
    TEMPLATES[set % SETS].get_or_init(|| {
        let mut map = HeaderMap::with_capacity(FieldName::ALL.len());
        for (i, (name, placeholder)) in FieldName::ALL.iter().zip(PLACEHOLDERS).enumerate() {
            if set & (1 << i) != 0 {
                map.insert(header_name(*name), placeholder);
            }
        }
        map
    })
}

impl RateHeaders {
    /// The fields of `report` (see [`RateReport::fields`]).
    pub(crate) fn new(report: &RateReport) -> Self {
        let mut set = 0;
        for (i, name) in FieldName::ALL.iter().enumerate() {
            if report.has(*name) {
                set |= 1 << i;
            }
        }
        // Numbers over the table: their digits, and where each goes.
        let mut digits = [0u8; NUMBERS * 20];
        let mut used = 0;
        let mut spans = [(0u8, 0u8); FieldName::ALL.len()];
        for (i, name) in FieldName::ALL.iter().enumerate() {
            let Some(n) = report.number(*name).filter(|&n| n > TABLE_MAX) else {
                continue;
            };
            let mut buf = itoa::Buffer::new();
            let text = buf.format(n).as_bytes();
            let end = used + text.len();
            if let (Some(to), Some(span)) = (digits.get_mut(used..end), spans.get_mut(i)) {
                to.copy_from_slice(text);
                // Both are at most NUMBERS * 20 = 100.
                *span = (used as u8, end as u8);
                used = end;
            }
        }
        let shared = (used > 0).then(|| Bytes::from_owner(digits));
        let mut map = template(set).clone();
        for value in map.values_mut() {
            let i = value.as_bytes().first().and_then(|b| b.checked_sub(b'0'));
            let i = i.map_or(usize::MAX, usize::from);
            let Some(&name) = FieldName::ALL.get(i) else {
                continue;
            };
            let (start, end) = spans.get(i).copied().unwrap_or_default();
            let rendered = match (&shared, report.number(name)) {
                (Some(shared), Some(_)) if end > start => HeaderValue::from_maybe_shared(
                    shared.slice(usize::from(start)..usize::from(end)),
                )
                .ok(),
                (_, Some(n)) => table_value(n),
                (_, None) => report.value(name).and_then(header_value),
            };
            // A value no header may carry (a report renders none) is sent
            // empty rather than dropped: the template has its name.
            *value = rendered.unwrap_or_else(|| HeaderValue::from_static(""));
        }
        RateHeaders { map }
    }

    /// Sets the fields in `headers`, replacing any of the same names; the
    /// IETF fields only when `ietf`.
    pub(crate) fn write(self, headers: &mut HeaderMap, ietf: bool) {
        let mut map = self.map;
        if !ietf {
            for name in FieldName::ALL.into_iter().filter(|f| f.is_ietf()) {
                map.remove(header_name(name));
            }
        }
        if headers.len() > MERGE_MAX {
            // Many fields of the service's: each of the report's is set
            // among them (hashing the report's names).
            // (The report's map has one value per name: every item is named.)
            for (name, value) in map {
                if let Some(name) = name {
                    headers.insert(name, value);
                }
            }
            return;
        }
        // A few, or none: they move into the report's map, which then takes
        // the place of theirs (their names are hashed, a standard one at
        // next to no cost; the report's are not).
        let theirs = core::mem::replace(headers, map);
        let mut current: Option<(HeaderName, bool)> = None;
        for (name, value) in theirs {
            if let Some(name) = name {
                let replaced = may_be_rate_field(&name) && headers.contains_key(&name);
                current = Some((name, replaced));
            }
            if let Some((name, false)) = &current {
                headers.append(name.clone(), value);
            }
        }
    }
}

/// The most fields of the service's answer that [`RateHeaders::write`]
/// moves into the report's map rather than setting the report's fields
/// among them: past about this many, moving them costs more (callgrind,
/// docs/performance.md).
const MERGE_MAX: usize = 4;

/// Whether `name` may be one of a report's fields (the report's map is
/// asked only then): a test keeps it in step with [`FieldName::lowercase`].
/// (Comparing the name with each field's instead cost about 340 more
/// instructions a request with four service fields, callgrind.)
fn may_be_rate_field(name: &HeaderName) -> bool {
    let name = name.as_str();
    name == "retry-after" || name.starts_with("x-ratelimit-") || name.starts_with("ratelimit")
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

/// The largest number in the static table.
const TABLE_MAX: u64 = 9999;

/// `n` as a header value from the static table, if it is in it (up to 9999).
fn table_value(n: u64) -> Option<HeaderValue> {
    let (start, width) = match n {
        0..=9 => (n, 1),
        10..=99 => (10 + (n - 10) * 2, 2),
        100..=999 => (190 + (n - 100) * 3, 3),
        1000..=TABLE_MAX => (2890 + (n - 1000) * 4, 4),
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
        let (refused, _) = reports(false);
        let res = too_many_attempts(&refused, false);
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

    /// The seed's refused report (every seed field) and an admitted one
    /// (the counts only), with the IETF fields when `ietf`.
    fn reports(ietf: bool) -> (RateReport, RateReport) {
        let policy = Policy::seed();
        let store = MemoryStore::new();
        let req = Request {
            account: "a",
            tier: "basic",
            endpoint: "txt2video",
            cost: 1,
        };
        let now = Timestamp::from_secs(1_700_000_000);
        let admitted = RateReport::new(&store.check(&policy, &req, now).unwrap()).with_ietf(ietf);
        let refused = RateReport::new(&store.check(&policy, &req, now).unwrap()).with_ietf(ietf);
        (refused, admitted)
    }

    /// Every field's values, in order, by name.
    fn by_name(h: &HeaderMap) -> std::collections::BTreeMap<String, Vec<String>> {
        h.keys()
            .map(|n| {
                let values = h.get_all(n).iter();
                let values = values.map(|v| v.to_str().unwrap().to_owned());
                (n.to_string(), values.collect())
            })
            .collect()
    }

    /// The service's fields stay, in their order and with every value,
    /// except those of a name the report sets: the report's replace them.
    /// The same whether the service's fields move into the report's map (a
    /// few) or the report's are set among them (many): every prefix of a
    /// list of fields is tried, against each field set one by one.
    #[test]
    fn the_report_joins_the_services_fields_and_replaces_its_own() {
        let (refused, admitted) = reports(true);
        let theirs: [(&str, &str); 10] = [
            ("x-ratelimit-limit", "999"),
            ("content-type", "application/json"),
            ("set-cookie", "a=1"),
            ("retry-after", "7"),
            ("set-cookie", "b=2"),
            ("x-ratelimit-scope", "user"),
            ("x-ratelimit-limit", "998"),
            ("ratelimit", "theirs"),
            ("x-request-id", "r1"),
            ("ratelimit-policy", "theirs"),
        ];
        for report in [&refused, &admitted] {
            for ietf in [true, false] {
                for k in 0..=theirs.len() {
                    let mut service = HeaderMap::new();
                    for (name, value) in &theirs[..k] {
                        service.append(
                            HeaderName::from_static(name),
                            HeaderValue::from_static(value),
                        );
                    }
                    let mut expected = service.clone();
                    for (name, value) in report.fields() {
                        if ietf || !name.is_ietf() {
                            let value = HeaderValue::from_str(value.as_str()).unwrap();
                            expected.insert(header_name(name), value);
                        }
                    }
                    let mut written = service;
                    RateHeaders::new(report).write(&mut written, ietf);
                    assert_eq!(
                        by_name(&written),
                        by_name(&expected),
                        "{k} fields, ietf {ietf}"
                    );
                }
            }
        }
        // One case spelled out: admitted, every field of the service's.
        let mut service = HeaderMap::new();
        for (name, value) in theirs {
            service.append(name, HeaderValue::from_static(value));
        }
        RateHeaders::new(&admitted).write(&mut service, true);
        let all = |name: &str| by_name(&service).remove(name).unwrap_or_default();
        assert_eq!(all("set-cookie"), ["a=1", "b=2"]);
        assert_eq!(all("x-ratelimit-limit"), ["1"]);
        assert_eq!(all("x-ratelimit-daily-remaining"), ["14"]);
        assert_eq!(all("x-ratelimit-scope"), ["user"]);
        assert_eq!(all("retry-after"), ["7"]); // the report has none: the service's stays
        assert_eq!(all("x-ratelimit-type"), Vec::<String>::new());
    }

    /// Counts over the static table come from one shared buffer, each its
    /// own digits.
    #[test]
    fn large_counts_are_their_digits() {
        let policy = Policy::from_toml(
            r#"
            [[endpoints]]
            path = "e"

            [[tiers]]
            name = "basic"
            limits = [
              { endpoint = "e", window = "1m", count = 123456 },
              { endpoint = "e", window = "1d", count = 9876543 },
            ]
            "#,
        )
        .unwrap();
        let store = MemoryStore::new();
        let req = Request {
            account: "a",
            tier: "basic",
            endpoint: "e",
            cost: 1,
        };
        let now = Timestamp::from_secs(1_700_000_000);
        let report = RateReport::new(&store.check(&policy, &req, now).unwrap());
        let mut headers = HeaderMap::new();
        RateHeaders::new(&report).write(&mut headers, true);
        assert_eq!(headers["x-ratelimit-limit"], "123456");
        assert_eq!(headers["x-ratelimit-remaining"], "123455");
        assert_eq!(headers["x-ratelimit-daily-limit"], "9876543");
        assert_eq!(headers["x-ratelimit-daily-remaining"], "9876542");
    }

    #[test]
    fn header_names_are_the_fields_names() {
        for f in FieldName::ALL {
            assert_eq!(header_name(f).as_str(), f.lowercase());
            assert!(may_be_rate_field(&header_name(f)), "{f:?}");
        }
        for other in ["content-type", "x-request-id", "retry", "x-ratelimi"] {
            assert!(!may_be_rate_field(&HeaderName::from_static(other)));
        }
    }
}
