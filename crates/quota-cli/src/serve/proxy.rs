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

use super::hop::HeaderEdits;
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
    /// `X-Forwarded-For`) made by `caller` (its account and tier, named to
    /// the upstream in `X-Quota-Account` and `X-Quota-Tier`; any such
    /// headers the client sent are dropped).
    pub(crate) async fn forward<B>(
        &self,
        req: Request<B>,
        client: Option<&ClientAddr>,
        caller: Option<(HeaderValue, HeaderValue)>,
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
        let headers = &parts.headers;
        let mut edits = HeaderEdits::default();
        match caller {
            Some((account, tier)) => {
                edits.set.push((X_QUOTA_ACCOUNT, account));
                edits.set.push((X_QUOTA_TIER, tier));
            }
            None => edits.dropped.extend([X_QUOTA_ACCOUNT, X_QUOTA_TIER]),
        }
        let original_host = headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        edits.set.push((header::HOST, this.upstream.host.clone()));
        if let Some(xff) = client.and_then(|c| forwarded_for(headers, c.ip.clone())) {
            edits.set.push((X_FORWARDED_FOR, xff));
        }
        if let Some(h) = original_host {
            edits.set.push((X_FORWARDED_HOST, h));
        }
        edits
            .set
            .push((X_FORWARDED_PROTO, HeaderValue::from_static("http")));
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        let out = Request::from_parts(parts, body);

        // The response comes back without its hop-by-hop headers.
        match tokio::time::timeout(this.timeout, this.pool.send(out, &edits)).await {
            Ok(Ok(res)) => res,
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

const X_QUOTA_ACCOUNT: HeaderName = HeaderName::from_static("x-quota-account");
const X_QUOTA_TIER: HeaderName = HeaderName::from_static("x-quota-tier");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// `X-Forwarded-For` with the client's IP (a header value made once per
/// connection) appended to any chain the request carries; `None` when the
/// chain cannot be extended (the request's own is then forwarded as it is).
fn forwarded_for(headers: &HeaderMap, ip: HeaderValue) -> Option<HeaderValue> {
    let mut prior = headers.get_all(X_FORWARDED_FOR).iter().peekable();
    if prior.peek().is_none() {
        return Some(ip);
    }
    let prior: Vec<&str> = prior.filter_map(|v| v.to_str().ok()).collect();
    if prior.is_empty() {
        return Some(ip);
    }
    let ip = ip.to_str().unwrap_or_default();
    HeaderValue::from_str(&format!("{}, {ip}", prior.join(", "))).ok()
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn forwarded_for_appends_to_an_existing_chain() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        let ip = HeaderValue::from_static("127.0.0.1");
        assert_eq!(
            forwarded_for(&h, ip).unwrap(),
            "10.0.0.1, 10.0.0.2, 127.0.0.1"
        );
    }

    #[test]
    fn forwarded_for_starts_a_chain_when_there_is_none() {
        let ip = HeaderValue::from_static("127.0.0.1");
        assert_eq!(forwarded_for(&HeaderMap::new(), ip).unwrap(), "127.0.0.1");
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
