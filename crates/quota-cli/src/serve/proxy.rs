//! The reverse proxy: forwards admitted requests to the upstream.
//!
//! Method, path, query, headers and the body (streamed, never buffered) go
//! to `upstream base path + request path`. Hop-by-hop headers (`Connection`
//! and every header it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`) are removed in both directions; `Host`
//! becomes the upstream's, and `X-Forwarded-For`, `X-Forwarded-Host` and
//! `X-Forwarded-Proto` tell the upstream who asked. An upstream that cannot
//! be reached answers 502, one that sends no response headers in time 504,
//! both with a JSON `message`.

use std::sync::Arc;
use std::time::Duration;

use super::metrics::{Metrics, UpstreamError};
use super::respond::{message, Body, BoxError, ClientAddr};
use super::upstream::{ForwardError, Pool};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};

/// Forwards requests to one upstream. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub(crate) struct Proxy(Arc<Inner>);

struct Inner {
    pool: Arc<Pool>,
    upstream: Upstream,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

struct Upstream {
    host: HeaderValue,
    /// The base path without a trailing `/` (empty for the root).
    base: String,
}

impl Upstream {
    /// The upstream request target (origin-form: the connection is to the
    /// upstream already) of a request for `path_and_query` (`None`: `/`).
    fn uri(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, http::Error> {
        let pq = match (self.base.is_empty(), path_and_query) {
            (true, Some(pq)) => pq.clone(),
            (true, None) => PathAndQuery::from_static("/"),
            (false, pq) => {
                let pq = pq.map_or("/", PathAndQuery::as_str);
                PathAndQuery::try_from(format!("{}{pq}", self.base))?
            }
        };
        Ok(Uri::from(pq))
    }
}

impl Proxy {
    /// A proxy to `upstream` (`http://host:port[/base]`).
    pub(crate) fn new(
        upstream: &Uri,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let authority = upstream
            .authority()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("upstream URL {upstream} has no host"))?;
        let host = HeaderValue::from_str(authority.as_str())?;
        let base = upstream.path().trim_end_matches('/').to_owned();
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        Ok(Proxy(Arc::new(Inner {
            pool: Pool::new(addr, timeout),
            upstream: Upstream { host, base },
            timeout,
            metrics,
        })))
    }

    /// Forwards one request from `client` (its address goes into
    /// `X-Forwarded-For`).
    pub(crate) async fn forward<B>(
        &self,
        req: Request<B>,
        client: Option<&ClientAddr>,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let this = &*self.0;
        let (mut parts, body) = req.into_parts();
        let Ok(uri) = this.upstream.uri(parts.uri.path_and_query()) else {
            return message(
                StatusCode::BAD_REQUEST,
                "the request path cannot be forwarded",
            );
        };
        strip_hop_by_hop(&mut parts.headers);
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        parts
            .headers
            .insert(header::HOST, this.upstream.host.clone());
        if let Some(client) = client {
            append_forwarded_for(&mut parts.headers, client.ip.clone());
        }
        if let Some(h) = original_host {
            parts.headers.insert(X_FORWARDED_HOST, h);
        }
        parts
            .headers
            .insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        let out = Request::from_parts(parts, body);

        match tokio::time::timeout(this.timeout, this.pool.send(out)).await {
            Ok(Ok(mut res)) => {
                strip_hop_by_hop(res.headers_mut());
                res
            }
            Ok(Err(ForwardError::RequestBody(e))) => {
                // The client's body failed (cut off, or stopped by an upload
                // rule, whose answer the enforcement layer puts in place of this).
                tracing::debug!(error = %error_chain(&*e), "request body failed while forwarding");
                message(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                )
            }
            Ok(Err(e)) => {
                this.metrics
                    .record_upstream_error(UpstreamError::Unreachable);
                tracing::warn!(error = %error_chain(&e), "upstream unreachable");
                message(
                    StatusCode::BAD_GATEWAY,
                    "the upstream service cannot be reached",
                )
            }
            Err(_) => {
                this.metrics.record_upstream_error(UpstreamError::Timeout);
                tracing::warn!(timeout_s = this.timeout.as_secs_f64(), "upstream timed out");
                message(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "the upstream service did not answer within {} s",
                        this.timeout.as_secs_f64()
                    ),
                )
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Headers that concern one connection only, never forwarded.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers, and every header `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds which hop-by-hop headers are there:
    // usually none in a request, and only `Connection: keep-alive` in a
    // response. Each removal below is then a hash lookup that finds something.
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // `Connection` (the first in the table) names more: remove those that
    // are there (its usual `keep-alive` or `close` names nothing else).
    if present & 1 != 0 {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| {
                !t.is_empty()
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| h.as_str().eq_ignore_ascii_case(t))
                    && headers.contains_key(*t)
            })
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Adds the client's IP (a header value made once per connection) to
/// `X-Forwarded-For`.
fn append_forwarded_for(headers: &mut HeaderMap, ip: HeaderValue) {
    if !headers.contains_key(X_FORWARDED_FOR) {
        headers.insert(X_FORWARDED_FOR, ip);
        return;
    }
    let prior: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let value = if prior.is_empty() {
        ip
    } else {
        let ip = ip.to_str().unwrap_or_default();
        match HeaderValue::from_str(&format!("{}, {ip}", prior.join(", "))) {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    headers.insert(X_FORWARDED_FOR, value);
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("close, X-Secret-Hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("proxy-authorization", HeaderValue::from_static("x"));
        h.insert("x-end-to-end", HeaderValue::from_static("kept"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-end-to-end"]);
    }

    #[test]
    fn a_usual_response_loses_only_its_connection_header() {
        let mut h = HeaderMap::new();
        h.insert("server", HeaderValue::from_static("nginx"));
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        h.insert("content-length", HeaderValue::from_static("11"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["server", "content-length"]);

        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Keep-Alive, X-HOP"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn forwarded_for_appends_to_an_existing_chain() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        append_forwarded_for(&mut h, HeaderValue::from_static("127.0.0.1"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    }

    #[test]
    fn forwarded_for_starts_a_chain_when_there_is_none() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, HeaderValue::from_static("127.0.0.1"));
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn upstream_uri_keeps_the_query_and_adds_the_base_path() {
        let up = |base: &str| Upstream {
            host: HeaderValue::from_static("127.0.0.1:9"),
            base: base.into(),
        };
        let pq: PathAndQuery = "/v1/a?b=c".parse().unwrap();
        assert_eq!(up("").uri(Some(&pq)).unwrap(), "/v1/a?b=c");
        assert_eq!(up("/api").uri(Some(&pq)).unwrap(), "/api/v1/a?b=c");
        assert_eq!(up("").uri(None).unwrap(), "/");
    }
}
