//! Response bodies and small JSON answers shared by the gateway's routes.

use std::net::{IpAddr, SocketAddr};

use crate::http1::edge::Refusal;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use quota_transport::response::RequestId;

/// Any error a body can fail with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the gateway sends.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The peer of a request's connection, put in its extensions.
#[derive(Clone, Debug)]
pub(crate) struct ClientAddr {
    /// Its IP (an IPv4-mapped IPv6 address as its IPv4 address).
    pub(crate) peer: IpAddr,
    /// The same, as a header value (for `X-Forwarded-For`).
    pub(crate) ip: HeaderValue,
    /// Whether the connection is TLS (`X-Forwarded-Proto: https`).
    pub(crate) https: bool,
}

impl ClientAddr {
    /// The peer at `addr` (made once per connection).
    pub(crate) fn new(addr: SocketAddr) -> Self {
        let peer = addr.ip().to_canonical();
        let ip = HeaderValue::from_str(&peer.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ClientAddr {
            peer,
            ip,
            https: false,
        }
    }
}

/// A body of these bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON response (pretty, its fields in the order `value` writes them).
pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// A JSON `{"message": ...}` response.
pub(crate) fn message(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    json(status, &serde_json::json!({ "message": msg.into() }))
}

/// The gateway's answer for its own failure: `status`, `{"message":
/// MESSAGE, "request_id": ID}` and `X-Request-Id: ID`
/// ([`quota_transport::response::server_error`]); log the detail with `id`.
pub(crate) fn server_error(status: StatusCode, message: &str, id: RequestId) -> Response<Body> {
    quota_transport::response::server_error(status, message, id).map(full)
}

/// A 405 with `msg` and the methods that are allowed, in `Allow`.
pub(crate) fn method_not_allowed(msg: impl Into<String>, allow: &'static str) -> Response<Body> {
    let mut res = message(StatusCode::METHOD_NOT_ALLOWED, msg);
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// The answer to a request refused at the edge: a JSON `message`, `Allow`
/// for a 405, and (`close`: over HTTP/1.x) `Connection: close`.
pub(crate) fn refusal(refusal: Refusal, close: bool) -> Response<Body> {
    let mut res = match refusal.allow() {
        Some(allow) => method_not_allowed(refusal.message(), allow),
        None => message(refusal.status(), refusal.message()),
    };
    if close {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// A plain text response.
pub(crate) fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}
