//! Kept-alive HTTP/1.1 connections to the upstream, and a pool of them.
//!
//! One client, the gateway's own ([`conn`]), carries every request. A
//! request whose body is known and small (none, or at most
//! [`MAX_BUFFERED`] bytes with a `Content-Length`: most API calls) is read
//! whole and sent in one write. Any other body (an upload, or one of
//! unknown length) is streamed: the head is sent, then the body as the
//! client sends it (with its length, or chunked), while the connection is
//! watched for an early answer. nginx makes the same split with its
//! request buffering. Either way the response is read on the task serving
//! the client. (`hyper`'s `client::conn::http1` was measured against it
//! and let go: see docs/performance.md, "One upstream client".)
//!
//! A request takes an idle connection or opens one, and the
//! response body puts the connection back once it has been read to its end.
//! A connection whose body is dropped unread, whose request is abandoned
//! (upstream timeout), that the upstream closed or that sent more than it
//! was asked for is not reused. Idle connections are closed after
//! [`IDLE_TIMEOUT`]; at most [`MAX_IDLE`] are kept.

mod body;
mod conn;
#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use tokio::net::TcpStream;

use crate::http1::client as wire;
use crate::http1::hop::{connection_named, pairs, write_field, HeaderEdits};
use crate::respond::{Body, BoxError};
pub(crate) use body::is_client_stall;
use body::ClientBody;
pub(crate) use conn::UpstreamBody;
use conn::{BodyFraming, Conn, ExchangeError, Stream};
use quota_transport::fields::HeaderFields;
pub(crate) use wire::Head;

/// How long an unused connection is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The most idle connections kept.
pub(crate) const MAX_IDLE: usize = 256;

/// The largest request body read whole before it is sent (bytes).
pub(crate) const MAX_BUFFERED: u64 = 64 * 1024;

/// Why a request could not get a response.
#[derive(Debug)]
pub(crate) enum ForwardError {
    /// The connection could not be opened.
    Connect(io::Error),
    /// The connection could not be opened in time (its TLS handshake
    /// included).
    ConnectTimeout,
    /// The TLS handshake with an `https://` upstream failed: why, in words
    /// (an unknown issuer, a name mismatch, an expired certificate, ...).
    Tls(String),
    /// The client's request body failed while it was read (cut off, or
    /// stopped by an upload rule).
    RequestBody(BoxError),
    /// The exchange with the upstream failed.
    Exchange(ExchangeError),
    /// The upstream did not answer within its timeout, counted from when
    /// the request had been sent (its body included).
    Timeout,
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardError::Connect(_) => f.write_str("cannot connect to the upstream"),
            ForwardError::ConnectTimeout => f.write_str("connecting to the upstream timed out"),
            ForwardError::Tls(why) => write!(f, "TLS handshake with the upstream failed: {why}"),
            ForwardError::RequestBody(_) => f.write_str("the request body could not be read"),
            ForwardError::Exchange(_) => f.write_str("the upstream exchange failed"),
            ForwardError::Timeout => f.write_str("the upstream did not answer in time"),
        }
    }
}

impl std::error::Error for ForwardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ForwardError::Connect(e) => Some(e),
            ForwardError::ConnectTimeout | ForwardError::Timeout | ForwardError::Tls(_) => None,
            ForwardError::RequestBody(e) => Some(&**e),
            ForwardError::Exchange(e) => Some(e),
        }
    }
}

/// Idle connections, newest last.
struct Idle<C>(Mutex<Vec<(C, Instant)>>);

impl<C> Idle<C> {
    fn new() -> Self {
        Idle(Mutex::new(Vec::new()))
    }

    /// The newest idle connection that `usable` accepts (others are closed).
    fn take(&self, usable: impl Fn(&C) -> bool) -> Option<C> {
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < IDLE_TIMEOUT && usable(&conn) {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, conn: C) {
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }

    /// Closes connections idle for too long, or that `usable` refuses.
    fn reap(&self, usable: impl Fn(&C) -> bool) {
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|(c, since)| since.elapsed() < IDLE_TIMEOUT && usable(c));
    }
}

/// Connections to one `host:port`.
pub(crate) struct Pool {
    addr: String,
    /// How long the upstream gets to accept a connection, and to answer a
    /// request sent whole (body included).
    timeout: Duration,
    /// How long a client's request body may stall (see [`ClientBody`]).
    client_timeout: Duration,
    conns: Idle<Conn>,
    /// TLS to an `https://` upstream.
    tls: Option<UpstreamTls>,
}

/// How connections to an `https://` upstream are made: the client
/// configuration, and the name its certificate must have (sent as SNI
/// when it is a DNS name).
#[derive(Clone)]
pub(crate) struct UpstreamTls {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) name: rustls::pki_types::ServerName<'static>,
}

impl Pool {
    /// A pool of connections to `addr` (`host:port`), whose upstream gets
    /// `timeout` to accept a connection and to answer once a request has
    /// been sent, and whose clients may let their bodies stall for
    /// `client_timeout`. Closes idle connections in the background while
    /// it lives. Call inside a tokio runtime.
    #[cfg(test)]
    pub(crate) fn new(addr: String, timeout: Duration, client_timeout: Duration) -> Arc<Self> {
        Self::with_tls(addr, timeout, client_timeout, None)
    }

    /// [`Pool::new`], its connections over TLS when `tls` is given.
    pub(crate) fn with_tls(
        addr: String,
        timeout: Duration,
        client_timeout: Duration,
        tls: Option<UpstreamTls>,
    ) -> Arc<Self> {
        let pool = Arc::new(Pool {
            addr,
            timeout,
            client_timeout,
            conns: Idle::new(),
            tls,
        });
        let weak = Arc::downgrade(&pool);
        tokio::spawn(reap(weak));
        pool
    }

    /// Sends `req` (origin-form URI) with its headers edited by `edits`
    /// (which set `Host`) on an idle connection, or on a new one. The
    /// response comes back without its hop-by-hop headers.
    ///
    /// The client's body may stall for the client timeout at most
    /// ([`ForwardError::RequestBody`] with [`body::ClientStalled`]); the
    /// upstream gets its timeout from when the body has been sent
    /// ([`ForwardError::Timeout`]).
    pub(crate) async fn send<B>(
        self: &Arc<Self>,
        req: Request<B>,
        edits: &HeaderEdits<'_>,
    ) -> Result<Response<Body>, ForwardError>
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // No body: nothing of the client's to time (and no timer, box or
        // notifier to make for it).
        if req.body().is_end_stream() {
            return self.send_whole(req, edits, 0).await;
        }
        let (parts, body) = req.into_parts();
        let body = ClientBody::new(body, self.client_timeout);
        let whole = body.size_hint().exact().filter(|&n| n <= MAX_BUFFERED);
        match whole {
            Some(len) => {
                let req = Request::from_parts(parts, body);
                self.send_whole(req, edits, len).await
            }
            None => {
                // Boxed: the streamed exchange's future would make every
                // request's future (moved into a box per request) larger.
                // (In a statement of its own: a temporary of the `await`'s
                // statement would be kept in this future.)
                let streamed = Box::pin(self.send_streamed(parts, body, edits));
                streamed.await
            }
        }
    }

    /// Sends a request whose body is streamed (over [`MAX_BUFFERED`], or
    /// of unknown length: chunked): the head first, on an idle connection
    /// or a new one, then the body as the client sends it, while the
    /// connection is watched for an early answer. The upstream's timeout
    /// starts once the body has been written whole.
    async fn send_streamed<B>(
        self: &Arc<Self>,
        parts: http::request::Parts,
        body: ClientBody<B>,
        edits: &HeaderEdits<'_>,
    ) -> Result<Response<Body>, ForwardError>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let framing = match body.size_hint().exact() {
            Some(len) => BodyFraming::Length(len),
            None => BodyFraming::Chunked,
        };
        let method = &parts.method;
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let named = connection_named(&parts.headers);
        let headers = edits.edited(pairs(&parts.headers), &named);
        let mut head = Vec::new();
        match framing {
            BodyFraming::Length(len) => {
                wire::encode_request(&mut head, method, target, headers, Some(len));
            }
            BodyFraming::Chunked => {
                // Unknown length: chunked, said outright (also for a GET or
                // HEAD). `encode_request` writes no framing field but a
                // length: `Transfer-Encoding` goes before the final CRLF.
                wire::encode_request(&mut head, method, target, headers, None);
                head.truncate(head.len().saturating_sub(2));
                write_field(&mut head, b"transfer-encoding", b"chunked");
                head.extend_from_slice(b"\r\n");
            }
        }
        // The head goes again on another connection when an idle one
        // fails to take it: none of the body has been taken yet.
        let mut conn = loop {
            let (mut conn, pooled) = match self.conns.take(Conn::is_reusable) {
                Some(conn) => (conn, true),
                None => (Conn::new(self.open().await?), false),
            };
            match conn.write(&head).await {
                Ok(()) => break conn,
                Err(_) if pooled => {}
                Err(error) => {
                    let e = ExchangeError::NoResponse {
                        written: false,
                        error,
                    };
                    return Err(ForwardError::Exchange(e));
                }
            }
        };
        let body = pin!(body);
        let (mut head, whole) = conn
            .exchange_streaming(body, framing, method, self.timeout)
            .await?;
        // A body left unsent (an early answer) leaves the connection
        // in the middle of a request.
        head.keep_alive &= whole;
        self.response(conn, head)
    }

    /// Reads the body (`len` bytes), then sends the request in one write.
    async fn send_whole<B>(
        self: &Arc<Self>,
        req: Request<B>,
        edits: &HeaderEdits<'_>,
        len: u64,
    ) -> Result<Response<Body>, ForwardError>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        let mut data = BytesMut::new();
        if len > 0 {
            let mut body = std::pin::pin!(body);
            data.reserve(usize::try_from(len).unwrap_or(0));
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| ForwardError::RequestBody(e.into()))?;
                if let Some(chunk) = frame.data_ref() {
                    data.extend_from_slice(chunk);
                }
            }
            if data.len() as u64 != len {
                let e = format!("the request body has {} bytes, not {len}", data.len());
                return Err(ForwardError::RequestBody(e.into()));
            }
        }
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let body_len = body_len(
            &parts.method,
            len,
            parts.headers.contains_key(http::header::CONTENT_LENGTH),
        );
        let named = connection_named(&parts.headers);
        let method = &parts.method;
        // The body is here: the upstream's time starts.
        let send = self.send_encoded(method, |out| {
            let headers = edits.edited(pairs(&parts.headers), &named);
            wire::encode_request(out, method, target, headers, body_len);
            out.extend_from_slice(&data);
        });
        let (conn, head) = tokio::time::timeout(self.timeout, send)
            .await
            .map_err(|_| ForwardError::Timeout)??;
        self.response(conn, head)
    }

    /// Sends a request without a body, its `fields` (every one, in order,
    /// as the client sent them) edited by `edits`. The response's head
    /// (without its hop-by-hop headers) and its body.
    pub(crate) async fn send_head(
        self: &Arc<Self>,
        method: &Method,
        target: &str,
        fields: &[(&[u8], &[u8])],
        edits: &HeaderEdits<'_>,
    ) -> Result<(Head, UpstreamBody), ForwardError> {
        let has_length = fields.value_of(&http::header::CONTENT_LENGTH).is_some();
        let body_len = body_len(method, 0, has_length);
        let named = connection_named(fields);
        let (conn, head) = self
            .send_encoded(method, |out| {
                let headers = edits.edited(fields.iter().copied(), &named);
                wire::encode_request(out, method, target, headers, body_len);
            })
            .await?;
        let body = conn.body(&head, self);
        Ok((head, body))
    }

    /// Sends the request `encode` writes (head and body, whole) on an idle
    /// connection or a new one: the response's head, and the connection
    /// its body comes on.
    async fn send_encoded(
        self: &Arc<Self>,
        method: &Method,
        encode: impl Fn(&mut Vec<u8>),
    ) -> Result<(Conn, Head), ForwardError> {
        let mut request = Vec::new();
        // An idle connection the upstream closed meanwhile fails before a
        // response starts: the request goes again on the next one, when
        // that is safe (it was not written whole, or its method is
        // idempotent). A new connection's failure is the answer.
        loop {
            let (mut conn, pooled) = match self.conns.take(Conn::is_reusable) {
                Some(conn) => (conn, true),
                None => (Conn::new(self.open().await?), false),
            };
            if request.is_empty() {
                request = std::mem::take(&mut conn.out);
                request.clear();
                encode(&mut request);
            }
            match conn.exchange(&request, method).await {
                Ok(head) => {
                    conn.keep_out(request);
                    return Ok((conn, head));
                }
                Err(ExchangeError::NoResponse { written, .. })
                    if pooled && (!written || method.is_idempotent()) => {}
                Err(e) => return Err(ForwardError::Exchange(e)),
            }
        }
    }

    /// A new connection to the upstream (TCP, and TLS over it for an
    /// `https://` upstream), opened within the connect timeout.
    async fn open(&self) -> Result<Stream, ForwardError> {
        let open = async {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(ForwardError::Connect)?;
            let _ = stream.set_nodelay(true);
            let Some(tls) = &self.tls else {
                return Ok(Stream::Tcp(stream));
            };
            match tls.connector.connect(tls.name.clone(), stream).await {
                Ok(stream) => Ok(Stream::Tls(Box::new(stream))),
                Err(e) => Err(ForwardError::Tls(crate::tls::handshake_failure(&e))),
            }
        };
        tokio::time::timeout(self.timeout, open)
            .await
            .map_err(|_| ForwardError::ConnectTimeout)?
    }

    fn response(self: &Arc<Self>, conn: Conn, head: Head) -> Result<Response<Body>, ForwardError> {
        let headers = head
            .header_map()
            .map_err(|e| ForwardError::Exchange(ExchangeError::Wire(e)))?;
        let body = conn.body(&head, self);
        let mut res = Response::new(body.boxed_unsync());
        *res.status_mut() = head.status;
        *res.headers_mut() = headers;
        Ok(res)
    }

    fn checkin_conn(&self, conn: Conn) {
        self.conns.put(conn);
    }
}

/// The `Content-Length` a request with a `len`-byte body is sent with:
/// one when there is a body, when the client sent one, and for methods
/// whose requests are meant to carry one.
fn body_len(method: &Method, len: u64, has_length: bool) -> Option<u64> {
    let expects_body = !matches!(
        *method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    (len > 0 || expects_body || has_length).then_some(len)
}

/// Closes connections idle for longer than [`IDLE_TIMEOUT`], until the
/// pool is dropped.
async fn reap(pool: Weak<Pool>) {
    let mut tick = tokio::time::interval(IDLE_TIMEOUT);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        pool.conns.reap(Conn::is_reusable);
    }
}
