//! The responses the enforcement layer answers with instead of the service.
//!
//! Every refusal is JSON with a `message` (`{"message":"unknown API key"}`),
//! except a rate-limit refusal, which is exactly the seed's 429: body
//! `{"message":"Too Many Attempts."}` ([`TOO_MANY_ATTEMPTS_BODY`]) and the
//! six `X-RateLimit-*`/`Retry-After` headers of [`Decision::headers`]. With
//! [`ResponseStyle::problem_json`] the 429 carries the IETF draft's
//! `application/problem+json` body instead.
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
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use quota_core::{Decision, TOO_MANY_ATTEMPTS_BODY};

/// `application/json`.
pub const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
/// `application/problem+json`.
pub const APPLICATION_PROBLEM_JSON: HeaderValue =
    HeaderValue::from_static("application/problem+json");

/// How rate-limit information is rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseStyle {
    /// Also send the IETF draft's `RateLimit-Policy` and `RateLimit` fields
    /// ([`Decision::ietf_headers`]) beside the seed's headers.
    pub ietf_headers: bool,
    /// Answer a 429 with the IETF draft's `application/problem+json` body
    /// ([`Decision::problem_body`]) instead of the seed's `message` body.
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

/// The 429 for a refused decision: the seed's body (or the problem details
/// body, by `style`), `Content-Type`, and the headers of
/// [`Decision::headers`] (plus the IETF fields when asked).
pub fn too_many_attempts(decision: &Decision<'_>, style: ResponseStyle) -> Response<Bytes> {
    let mut res = match decision.problem_body().filter(|_| style.problem_json) {
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
    let headers = res.headers_mut();
    for (name, value) in decision.headers() {
        append(headers, name, value);
    }
    if style.ietf_headers {
        for (name, value) in decision.ietf_headers() {
            append(headers, name, value);
        }
    }
    res
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

fn append(headers: &mut http::HeaderMap, name: &'static str, value: String) {
    // The core renders header names, integers and policy names (lowercase
    // letters, digits, `-`, `_`, quotes): always valid header text.
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::try_from(value),
    ) {
        headers.append(name, value);
    }
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
        let res = too_many_attempts(&refused, ResponseStyle::default());
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
}
