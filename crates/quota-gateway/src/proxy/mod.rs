//! The reverse proxy: forwards admitted requests to the upstream.
//!
//! Method, path, query, headers and the body (streamed, never buffered) go
//! to `upstream base path + request path`. Hop-by-hop headers (`Connection`
//! and every header it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`) are removed in both directions; `Host`
//! becomes the upstream's, and `X-Forwarded-For`, `X-Real-IP`,
//! `X-Forwarded-Host` and `X-Forwarded-Proto` tell the upstream who asked
//! (the client's own are believed only from a trusted proxy; see
//! [`Proxy::edits`]). An upstream that cannot be reached answers 502, one
//! that sends no response headers in time 504, both with a JSON `message`
//! and a request id (`X-Request-Id`) that the log line with the detail
//! carries too, and marked with an [`UpstreamFailure`] in its extensions:
//! the enforcement layer refunds the request by it.

use std::sync::Arc;
use std::time::Duration;

use std::borrow::Cow;
use std::future::Future;
use std::pin::{pin, Pin};

use tokio::time::{Instant, Sleep};

use crate::error::Error;
use crate::forwarded::TrustedProxies;
use crate::metrics::{Metrics, UpstreamError};
use crate::respond::{message, server_error, Body, BoxError, ClientAddr};
mod upstream;

use crate::http1::hop::HeaderEdits;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use quota_transport::enforce::UpstreamFailure;
use quota_transport::fields::{text, HeaderFields};
use quota_transport::identity::{is_bearer, KeyHeaders};
use quota_transport::response::RequestId;
use rustls::pki_types::ServerName;
use smallvec::SmallVec;
use upstream::{is_client_stall, ForwardError, Head, Pool, UpstreamBody, UpstreamTls};

/// Forwards requests to one upstream. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub(crate) struct Proxy(Arc<Inner>);

struct Inner {
    pool: Arc<Pool>,
    upstream: Upstream,
    timeout: Duration,
    metrics: Arc<Metrics>,
    forwarding: Forwarding,
}

/// What the proxy tells the upstream about the client, besides the request.
#[derive(Clone, Debug)]
pub(crate) struct Forwarding {
    /// The headers that may carry the API key, removed before forwarding
    /// (`X-API-Key`, and `Authorization` when it is a `Bearer` one);
    /// `None` forwards them (`--forward-credentials`).
    pub(crate) hide_credentials: Option<KeyHeaders>,
    /// The proxies whose `X-Forwarded-*` headers are believed.
    pub(crate) trusted: Arc<TrustedProxies>,
    /// How an `https://` upstream's certificate is verified (its roots);
    /// `None` for an `http://` upstream.
    pub(crate) upstream_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for Forwarding {
    /// Credentials hidden from the upstream; no proxy trusted.
    fn default() -> Self {
        Forwarding {
            hide_credentials: Some(KeyHeaders::default()),
            trusted: Arc::default(),
            upstream_tls: None,
        }
    }
}

#[derive(Clone)]
struct Upstream {
    host: HeaderValue,
    /// The base path without a trailing `/` (empty for the root).
    base: String,
    /// How many bytes of a request's path are not forwarded (a stripped
    /// route's prefix but its last `/`; see [`Proxy::stripping`]).
    strip: usize,
}

impl Upstream {
    /// The upstream request target (origin-form: the connection is to the
    /// upstream already) of a request for `path_and_query` (`None`: `/`).
    fn uri(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, http::Error> {
        let pq = match (self.base.is_empty() && self.strip == 0, path_and_query) {
            (true, Some(pq)) => pq.clone(),
            (true, None) => PathAndQuery::from_static("/"),
            (false, pq) => {
                let pq = self.stripped(pq.map_or("/", PathAndQuery::as_str));
                PathAndQuery::try_from(format!("{}{pq}", self.base))?
            }
        };
        Ok(Uri::from(pq))
    }

    /// `target` without the stripped prefix (the whole of it when it is
    /// not under one: the router only hands on paths under their route).
    fn stripped<'t>(&self, target: &'t str) -> &'t str {
        match target.get(self.strip..) {
            Some(rest) if rest.starts_with('/') => rest,
            _ => target,
        }
    }
}

impl Proxy {
    /// A proxy to `upstream` (`http[s]://host[:port][/base]`), which gets
    /// `timeout` to answer once a request has been sent; a client's body
    /// may stall for `client_timeout`.
    pub(crate) fn new(
        upstream: &Uri,
        timeout: Duration,
        client_timeout: Duration,
        metrics: Arc<Metrics>,
        forwarding: Forwarding,
    ) -> Result<Self, Error> {
        let (authority, host) = Self::check_upstream(upstream)?;
        let base = upstream.path().trim_end_matches('/').to_owned();
        let https = upstream.scheme_str() == Some("https");
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(if https { 443 } else { 80 })
        );
        let tls = match (https, &forwarding.upstream_tls) {
            (false, _) => None,
            (true, config) => {
                let config = match config {
                    Some(config) => Arc::clone(config),
                    None => crate::tls::upstream_client(None)?,
                };
                Some(UpstreamTls {
                    connector: tokio_rustls::TlsConnector::from(config),
                    name: Self::server_name(upstream, &authority)?,
                })
            }
        };
        Ok(Proxy(Arc::new(Inner {
            pool: Pool::with_tls(addr, timeout, client_timeout, tls),
            upstream: Upstream {
                host,
                base,
                strip: 0,
            },
            timeout,
            metrics,
            forwarding,
        })))
    }

    /// Checks that `upstream` is a URL the proxy can forward to
    /// (`http://` or `https://host[:port][/base]`), and gives its authority
    /// and `Host`.
    pub(crate) fn check_upstream(upstream: &Uri) -> Result<(Authority, HeaderValue), Error> {
        let bad = |reason: &str| Error::Upstream {
            url: upstream.to_string(),
            reason: reason.to_owned(),
        };
        match upstream.scheme_str() {
            Some("http" | "https") => {}
            Some(_) => return Err(bad("only http:// and https:// upstreams are supported")),
            None => return Err(bad("no scheme: write http://host[:port]")),
        }
        let authority = upstream
            .authority()
            .cloned()
            .ok_or_else(|| bad("no host"))?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| bad("bad host"))?;
        Ok((authority, host))
    }

    /// The name an `https://` upstream's certificate must be valid for:
    /// its host (a DNS name, sent as SNI, or an IP address).
    pub(crate) fn server_name(
        upstream: &Uri,
        authority: &Authority,
    ) -> Result<ServerName<'static>, Error> {
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        ServerName::try_from(host.to_owned()).map_err(|_| Error::Upstream {
            url: upstream.to_string(),
            reason: format!("{host:?} is neither a DNS name nor an IP address"),
        })
    }

    /// The same upstream (its connections shared) for a route that strips
    /// `strip` bytes, its prefix but the last `/`, off every path.
    pub(crate) fn stripping(&self, strip: usize) -> Proxy {
        let this = &*self.0;
        Proxy(Arc::new(Inner {
            pool: Arc::clone(&this.pool),
            upstream: Upstream {
                strip,
                ..this.upstream.clone()
            },
            timeout: this.timeout,
            metrics: Arc::clone(&this.metrics),
            forwarding: this.forwarding.clone(),
        }))
    }

    /// What the upstream gets instead of the client's own headers (see
    /// [`HeaderEdits`]): `Host` its own; `caller`'s account and tier in
    /// `X-Quota-Account` and `X-Quota-Tier` (any such headers the client
    /// sent are dropped, also when there is no caller); and who asked:
    ///
    /// - from a peer that is not a trusted proxy (the usual case), whatever
    ///   the request says about forwarding is its own claim and is
    ///   replaced: `X-Forwarded-For` and `X-Real-IP` are `client`'s
    ///   address, `X-Forwarded-Host` the request's `Host` (or its target's
    ///   `authority`), `X-Forwarded-Proto` `https` on a TLS connection,
    ///   `http` otherwise;
    /// - from a trusted proxy, `client`'s address is appended to the
    ///   request's `X-Forwarded-For` chain, `X-Real-IP` is the client that
    ///   chain names ([`TrustedProxies::client`]), and the proxy's
    ///   `X-Forwarded-Host` and `X-Forwarded-Proto` are kept (set as above
    ///   when it sent none).
    ///
    /// `Forwarded` is always removed (the gateway speaks `X-Forwarded-*`).
    /// Unless [`Forwarding::hide_credentials`] is `None`, the API key goes
    /// no further: `X-API-Key`, and `Authorization` when it is a `Bearer`
    /// one (another scheme carried no key of ours).
    ///
    /// Written into `edits` (empty) rather than returned: a request's
    /// future keeps them, and a returned value would be copied there.
    fn edits<'a, H: HeaderFields + ?Sized>(
        &'a self,
        edits: &mut HeaderEdits<'a>,
        headers: &'a H,
        authority: Option<&'a str>,
        client: Option<&'a ClientAddr>,
        caller: Option<(&'a str, &'a str)>,
    ) {
        match caller.filter(|(a, t)| is_value(a.as_bytes()) && is_value(t.as_bytes())) {
            Some((account, tier)) => {
                edits
                    .set
                    .push(("x-quota-account", Cow::Borrowed(account.as_bytes())));
                edits
                    .set
                    .push(("x-quota-tier", Cow::Borrowed(tier.as_bytes())));
            }
            None => edits.dropped.extend(["x-quota-account", "x-quota-tier"]),
        }
        let forwarding = &self.0.forwarding;
        if let Some(accepted) = forwarding.hide_credentials {
            if accepted.accepts_x_api_key() {
                edits.dropped.push("x-api-key");
            }
            if accepted.accepts_bearer() && headers.values_of(&header::AUTHORIZATION).any(is_bearer)
            {
                edits.dropped.push("authorization");
            }
        }
        let host = self.0.upstream.host.as_bytes();
        edits.set.push(("host", Cow::Borrowed(host)));
        edits.dropped.push("forwarded");
        let from_proxy = client.is_some_and(|c| forwarding.trusted.contains(c.peer));
        match client {
            Some(c) if from_proxy => {
                let xff = forwarded_for(headers.values_of(&X_FORWARDED_FOR), c.ip.as_bytes());
                let ip = forwarding
                    .trusted
                    .client(c.peer, headers.values_of(&X_FORWARDED_FOR));
                edits.set.push((
                    "x-forwarded-for",
                    xff.unwrap_or(Cow::Borrowed(c.ip.as_bytes())),
                ));
                edits
                    .set
                    .push(("x-real-ip", Cow::Owned(ip.to_string().into_bytes())));
            }
            Some(c) => {
                edits
                    .set
                    .push(("x-forwarded-for", Cow::Borrowed(c.ip.as_bytes())));
                edits
                    .set
                    .push(("x-real-ip", Cow::Borrowed(c.ip.as_bytes())));
            }
            None => edits.dropped.extend(["x-forwarded-for", "x-real-ip"]),
        }
        let theirs = |name: &HeaderName| from_proxy && headers.value_of(name).is_some();
        if !theirs(&X_FORWARDED_HOST) {
            let original_host = headers
                .value_of(&header::HOST)
                .or(authority.map(str::as_bytes));
            match original_host {
                Some(h) => edits.set.push(("x-forwarded-host", Cow::Borrowed(h))),
                None => edits.dropped.push("x-forwarded-host"),
            }
        }
        if !theirs(&X_FORWARDED_PROTO) {
            let proto: &[u8] = match client {
                Some(c) if c.https => b"https",
                _ => b"http",
            };
            edits.set.push(("x-forwarded-proto", Cow::Borrowed(proto)));
        }
    }

    /// Forwards one request from `client` made by `caller` (account and
    /// tier), its headers edited as [`Proxy::edits`] says.
    pub(crate) async fn forward<B>(
        &self,
        req: Request<B>,
        client: Option<&ClientAddr>,
        caller: Option<(&str, &str)>,
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
        let authority = parts.uri.authority().map(|a| a.as_str());
        // Owned: the request the edits were read from goes to the pool.
        let mut edits = HeaderEdits::default();
        self.edits(&mut edits, &parts.headers, authority, client, caller);
        let edits = edits.into_owned();
        let http1 = parts.version != Version::HTTP_2;
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        let out = Request::from_parts(parts, body);

        // The response comes back without its hop-by-hop headers. The
        // upstream timeout starts once the body has been sent (the pool
        // times it); a body that stalls is the client's timeout.
        match this.pool.send(out, &edits).await {
            Ok(res) => res,
            Err(ForwardError::RequestBody(e)) if is_client_stall(&*e) => {
                tracing::debug!(error = %error_chain(&*e), "request body stalled");
                let mut res = message(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive within the client timeout",
                );
                if http1 {
                    // The rest of the body is not read.
                    res.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                res
            }
            Err(e) => self.failed(e),
        }
    }

    /// Forwards a request without a body, given as the parts of its head
    /// (`target` as the client sent it, origin-form; `fields` every one, in
    /// order), with the same edits as [`Proxy::forward`]. The response's
    /// head and body, or the gateway's answer when there is none.
    /// `timer` is the connection's upstream timer (see [`within`]).
    pub(crate) async fn forward_head(
        &self,
        method: &Method,
        target: &str,
        fields: &[(&[u8], &[u8])],
        client: &ClientAddr,
        caller: Option<(&str, &str)>,
        timer: Pin<&mut Sleep>,
    ) -> Result<(Head, UpstreamBody), Response<Body>> {
        let this = &*self.0;
        let base = &this.upstream.base;
        let target = this.upstream.stripped(target);
        let joined;
        let target = if base.is_empty() {
            target
        } else {
            joined = format!("{base}{target}");
            &joined
        };
        let mut edits = HeaderEdits::default();
        self.edits(&mut edits, fields, None, Some(client), caller);
        // Pinned here and lent: moving the exchange's future (large) into
        // `within`'s would copy it twice per request.
        let send = pin!(this.pool.send_head(method, target, fields, &edits));
        match within(this.timeout, timer, send).await {
            Some(Ok(answer)) => Ok(answer),
            Some(Err(e)) => Err(self.failed(e)),
            None => Err(self.failed(ForwardError::Timeout)),
        }
    }

    /// The answer when the upstream gave none.
    fn failed(&self, error: ForwardError) -> Response<Body> {
        let this = &*self.0;
        match error {
            ForwardError::RequestBody(e) => {
                // The client's body failed (cut off, or stopped by an upload
                // rule, whose answer the enforcement layer puts in place of this).
                tracing::debug!(error = %error_chain(&*e), "request body failed while forwarding");
                message(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                )
            }
            ForwardError::Timeout => {
                this.metrics.record_upstream_error(UpstreamError::Timeout);
                let id = RequestId::new();
                crate::access_log::request_id(id);
                tracing::warn!(
                    request_id = %id,
                    timeout_s = this.timeout.as_secs_f64(),
                    "upstream timed out"
                );
                let mut res = server_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the upstream service did not answer in time",
                    id,
                );
                res.extensions_mut().insert(UpstreamFailure::TimedOut);
                res
            }
            e => {
                this.metrics
                    .record_upstream_error(UpstreamError::Unreachable);
                let id = RequestId::new();
                crate::access_log::request_id(id);
                tracing::warn!(request_id = %id, error = %error_chain(&e), "upstream unreachable");
                let mut res = server_error(
                    StatusCode::BAD_GATEWAY,
                    "the upstream service cannot be reached",
                    id,
                );
                res.extensions_mut().insert(UpstreamFailure::Unreachable);
                res
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

/// `future`'s output, or `None` after `timeout`, timed by `timer`: one
/// timer kept for a connection's requests, due no later than this request's
/// deadline. It is moved (a timer-wheel update) only when it fires before
/// the deadline, about once per `timeout`, instead of a timer set and
/// cancelled per request as `tokio::time::timeout` does.
pub(crate) async fn within<F: Future>(
    timeout: Duration,
    mut timer: Pin<&mut Sleep>,
    mut future: Pin<&mut F>,
) -> Option<F::Output> {
    let deadline = Instant::now() + timeout;
    loop {
        tokio::select! {
            biased;
            out = &mut future => return Some(out),
            () = timer.as_mut() => {
                if Instant::now() >= deadline {
                    return None;
                }
                timer.as_mut().reset(deadline);
            }
        }
    }
}

/// `X-Forwarded-For`: the client's `ip` appended to the `prior` chain (the
/// values of the request's own, but those that are not text); `ip` alone
/// (borrowed) when there is none, and `None` when the chain cannot be a
/// header value (the request's own is then forwarded as it is).
fn forwarded_for<'a>(prior: impl Iterator<Item = &'a [u8]>, ip: &'a [u8]) -> Option<Cow<'a, [u8]>> {
    let prior: SmallVec<[&[u8]; 2]> = prior.filter(|v| text(v).is_some()).collect();
    if prior.is_empty() {
        return Some(Cow::Borrowed(ip));
    }
    let mut chain = prior.join(&b", "[..]);
    chain.extend_from_slice(b", ");
    chain.extend_from_slice(ip);
    is_value(&chain).then_some(Cow::Owned(chain))
}

/// Whether `value` can be a header value (no control characters but tab).
fn is_value(value: &[u8]) -> bool {
    value.iter().all(|&b| b == b'\t' || (b >= 32 && b != 127))
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn forwarded_for_appends_to_an_existing_chain() {
        let mut h = http::HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        let ip = b"127.0.0.1";
        assert_eq!(
            forwarded_for(h.values_of(&X_FORWARDED_FOR), ip).unwrap(),
            &b"10.0.0.1, 10.0.0.2, 127.0.0.1"[..]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn within_times_out_at_the_deadline_whatever_the_timer_was_set_to() {
        let timeout = Duration::from_secs(10);
        // A timer due long before this request's deadline fires early and is
        // moved on; the request then gets its whole timeout.
        let mut timer = pin!(tokio::time::sleep(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(5)).await;
        let start = Instant::now();
        let never = std::future::pending::<()>();
        assert_eq!(within(timeout, timer.as_mut(), pin!(never)).await, None);
        assert_eq!(start.elapsed(), timeout);
        // A quick answer comes back as it is, and the timer stays due.
        assert_eq!(
            within(timeout, timer.as_mut(), pin!(async { 7 })).await,
            Some(7)
        );
        let slow = tokio::time::sleep(Duration::from_secs(3));
        assert_eq!(within(timeout, timer.as_mut(), pin!(slow)).await, Some(()));
    }

    #[test]
    fn forwarded_for_reads_a_heads_raw_values_alike() {
        let ip = b"127.0.0.1";
        let none: [&[u8]; 0] = [];
        assert_eq!(forwarded_for(none.into_iter(), ip).unwrap(), &ip[..]);
        let two: [&[u8]; 2] = [b"10.0.0.1", b"10.0.0.2"];
        assert_eq!(
            forwarded_for(two.into_iter(), ip).unwrap(),
            &b"10.0.0.1, 10.0.0.2, 127.0.0.1"[..]
        );
        // Values `to_str` would refuse are left out.
        let odd: [&[u8]; 2] = [b"10.0.0.1", b"caf\xc3\xa9"];
        assert_eq!(
            forwarded_for(odd.into_iter(), ip).unwrap(),
            &b"10.0.0.1, 127.0.0.1"[..]
        );
    }

    #[test]
    fn forwarded_for_starts_a_chain_when_there_is_none() {
        let ip = b"127.0.0.1";
        let none = http::HeaderMap::new();
        assert_eq!(
            forwarded_for(none.values_of(&X_FORWARDED_FOR), ip).unwrap(),
            &b"127.0.0.1"[..]
        );
    }

    #[test]
    fn upstream_uri_keeps_the_query_and_adds_the_base_path() {
        let up = |base: &str| Upstream {
            host: HeaderValue::from_static("127.0.0.1:9"),
            base: base.into(),
            strip: 0,
        };
        let pq: PathAndQuery = "/v1/a?b=c".parse().unwrap();
        assert_eq!(up("").uri(Some(&pq)).unwrap(), "/v1/a?b=c");
        assert_eq!(up("/api").uri(Some(&pq)).unwrap(), "/api/v1/a?b=c");
        assert_eq!(up("").uri(None).unwrap(), "/");
        // A stripped route's prefix (`/v1/`: 3 bytes) goes no further.
        let stripped = |base: &str| Upstream {
            strip: 3,
            ..up(base)
        };
        assert_eq!(stripped("").uri(Some(&pq)).unwrap(), "/a?b=c");
        assert_eq!(stripped("/api").uri(Some(&pq)).unwrap(), "/api/a?b=c");
        let root: PathAndQuery = "/v1/?x".parse().unwrap();
        assert_eq!(stripped("").uri(Some(&root)).unwrap(), "/?x");
    }
}
