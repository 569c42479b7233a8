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

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::metrics::{Metrics, UpstreamError};
use super::respond::{message, Body, BoxError, ClientAddr};

/// Forwards requests to one upstream. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Proxy {
    client: Client<HttpConnector, Body>,
    upstream: Arc<Upstream>,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

struct Upstream {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    host: HeaderValue,
    /// The base path without a trailing `/` (empty for the root).
    base: String,
}

impl Proxy {
    /// A proxy to `upstream` (`http://host:port[/base]`).
    pub(crate) fn new(
        upstream: &Uri,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let scheme = upstream
            .scheme()
            .cloned()
            .unwrap_or(http::uri::Scheme::HTTP);
        let authority = upstream
            .authority()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("upstream URL {upstream} has no host"))?;
        let host = HeaderValue::from_str(authority.as_str())?;
        let base = upstream.path().trim_end_matches('/').to_owned();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Proxy {
            client,
            upstream: Arc::new(Upstream {
                scheme,
                authority,
                host,
                base,
            }),
            timeout,
            metrics,
        })
    }

    /// Forwards one request.
    pub(crate) async fn forward<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = req.into_parts();
        let client_ip = parts.extensions.get::<ClientAddr>().map(|a| a.0.ip());
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let uri = Uri::builder()
            .scheme(self.upstream.scheme.clone())
            .authority(self.upstream.authority.clone())
            .path_and_query(format!("{}{}", self.upstream.base, path_and_query))
            .build();
        let Ok(uri) = uri else {
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
            .insert(header::HOST, self.upstream.host.clone());
        if let Some(ip) = client_ip {
            append_forwarded_for(&mut parts.headers, ip);
        }
        if let Some(h) = original_host {
            parts
                .headers
                .insert(HeaderName::from_static("x-forwarded-host"), h);
        }
        parts.headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("http"),
        );
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        let out = Request::from_parts(parts, body.map_err(Into::into).boxed_unsync());

        match tokio::time::timeout(self.timeout, self.client.request(out)).await {
            Ok(Ok(res)) => {
                let (mut parts, body) = res.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync())
            }
            Ok(Err(e)) if caused_by_request_body(&e) => {
                // The client's body failed (cut off, or stopped by an upload
                // rule, whose answer the enforcement layer puts in place of this).
                tracing::debug!(error = %error_chain(&e), "request body failed while forwarding");
                message(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                )
            }
            Ok(Err(e)) => {
                self.metrics
                    .record_upstream_error(UpstreamError::Unreachable);
                tracing::warn!(error = %error_chain(&e), "upstream unreachable");
                message(
                    StatusCode::BAD_GATEWAY,
                    "the upstream service cannot be reached",
                )
            }
            Err(_) => {
                self.metrics.record_upstream_error(UpstreamError::Timeout);
                tracing::warn!(timeout_s = self.timeout.as_secs_f64(), "upstream timed out");
                message(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "the upstream service did not answer within {} s",
                        self.timeout.as_secs_f64()
                    ),
                )
            }
        }
    }
}

/// The proxy as a tower service (what the enforcement layer wraps).
impl<B> tower::Service<Request<B>> for Proxy
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.forward(req).await) })
    }
}

/// Whether a client error came from the request body rather than the upstream.
fn caused_by_request_body(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user)
        {
            return true;
        }
        cur = err.source();
    }
    false
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

/// Headers that concern one connection only, never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop headers, and every header `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, ip: std::net::IpAddr) {
    let name = HeaderName::from_static("x-forwarded-for");
    let prior: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let value = if prior.is_empty() {
        ip.to_string()
    } else {
        format!("{}, {ip}", prior.join(", "))
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
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
    fn forwarded_for_appends_to_an_existing_chain() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        append_forwarded_for(&mut h, "127.0.0.1".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    }
}
