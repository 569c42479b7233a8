//! Kept-alive HTTP/1.1 connections to the upstream, and a pool of them.
//!
//! A request whose body is known and small (none, or at most
//! [`MAX_BUFFERED`] bytes with a `Content-Length`: most API calls) is read
//! whole and sent on the gateway's own client connection ([`conn`]), in
//! one write, its response read on the task serving the client. Any other
//! body (an upload, or one of unknown length) is streamed to the upstream
//! through `hyper`'s client ([`streaming`]), which writes it while it
//! watches for an early answer. nginx does the same split with its
//! request buffering.
//!
//! Either way a request takes an idle connection or opens one, and the
//! response body puts the connection back once it has been read to its end.
//! A connection whose body is dropped unread, whose request is abandoned
//! (upstream timeout), that the upstream closed or that sent more than it
//! was asked for is not reused. Idle connections are closed after
//! [`IDLE_TIMEOUT`]; at most [`MAX_IDLE`] of each kind are kept.

mod body;
mod conn;
#[cfg(test)]
mod differential;
mod streaming;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use tokio::net::TcpStream;

use crate::http1::client as wire;
use crate::http1::hop::{connection_named, pairs, HeaderEdits};
use crate::respond::{Body, BoxError};
pub(crate) use body::is_client_stall;
use body::ClientBody;
pub(crate) use conn::UpstreamBody;
use conn::{Conn, ExchangeError};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use quota_transport::fields::HeaderFields;
use tokio::sync::Notify;

/// Which client carries the requests to the upstream.
///
/// A measurement switch, read once per pool from the environment variable
/// `QUOTA_UPSTREAM_CLIENT` (`own`, the default, or `hyper`): `own` sends
/// requests without a body or with a small one of known length on the own
/// client and streams the others through hyper's; `hyper` sends them all
/// through hyper's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Client {
    /// The own client for whole requests, hyper's for streamed bodies.
    #[default]
    Own,
    /// hyper's client for every request.
    Hyper,
}

impl Client {
    /// What `QUOTA_UPSTREAM_CLIENT` says (the default when unset or not
    /// one of the two names).
    fn from_env() -> Self {
        match std::env::var("QUOTA_UPSTREAM_CLIENT").as_deref() {
            Ok("hyper") => Client::Hyper,
            _ => Client::Own,
        }
    }
}

/// A response head as the gateway's own server path writes it: its status
/// and its end-to-end fields.
pub(crate) struct Head {
    /// The status (never 1xx).
    pub(crate) status: StatusCode,
    fields: HeadFields,
}

enum HeadFields {
    Wire(wire::Head),
    Map(HeaderMap),
}

impl Head {
    /// The fields but the hop-by-hop ones, in order.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let (wire, map) = match &self.fields {
            HeadFields::Wire(h) => (Some(h.fields()), None),
            HeadFields::Map(m) => (None, Some(pairs(m))),
        };
        wire.into_iter().flatten().chain(map.into_iter().flatten())
    }
}

/// How long an unused connection is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The most idle connections kept, of each kind.
pub(crate) const MAX_IDLE: usize = 256;

/// The largest request body read whole before it is sent (bytes).
pub(crate) const MAX_BUFFERED: u64 = 64 * 1024;

/// Why a request could not get a response.
#[derive(Debug)]
pub(crate) enum ForwardError {
    /// The connection could not be opened.
    Connect(io::Error),
    /// The connection could not be opened in time.
    ConnectTimeout,
    /// The client's request body failed while it was read (cut off, or
    /// stopped by an upload rule).
    RequestBody(BoxError),
    /// The exchange with the upstream failed.
    Exchange(ExchangeError),
    /// The exchange through `hyper`'s client failed (a streamed body).
    Http(hyper::Error),
    /// The upstream did not answer within its timeout, counted from when
    /// the request had been sent (its body included).
    Timeout,
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardError::Connect(_) => f.write_str("cannot connect to the upstream"),
            ForwardError::ConnectTimeout => f.write_str("connecting to the upstream timed out"),
            ForwardError::RequestBody(_) => f.write_str("the request body could not be read"),
            ForwardError::Exchange(_) | ForwardError::Http(_) => {
                f.write_str("the upstream exchange failed")
            }
            ForwardError::Timeout => f.write_str("the upstream did not answer in time"),
        }
    }
}

impl std::error::Error for ForwardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ForwardError::Connect(e) => Some(e),
            ForwardError::ConnectTimeout | ForwardError::Timeout => None,
            ForwardError::RequestBody(e) => Some(&**e),
            ForwardError::Exchange(e) => Some(e),
            ForwardError::Http(e) => Some(e),
        }
    }
}

/// Idle connections of one kind, newest last.
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
    streaming: Idle<streaming::Sender>,
    client: Client,
}

impl Pool {
    /// A pool of connections to `addr` (`host:port`), whose upstream gets
    /// `timeout` to accept a connection and to answer once a request has
    /// been sent, and whose clients may let their bodies stall for
    /// `client_timeout`. Closes idle connections in the background while
    /// it lives. Call inside a tokio runtime.
    pub(crate) fn new(addr: String, timeout: Duration, client_timeout: Duration) -> Arc<Self> {
        let pool = Arc::new(Pool {
            addr,
            timeout,
            client_timeout,
            conns: Idle::new(),
            streaming: Idle::new(),
            client: Client::from_env(),
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
        if self.client == Client::Hyper {
            let streaming = Box::pin(self.send_hyper(req, edits));
            return streaming.await;
        }
        // No body: nothing of the client's to time (and no timer, box or
        // notifier to make for it).
        if req.body().is_end_stream() {
            return self.send_whole(req, edits, 0).await;
        }
        let (mut parts, body) = req.into_parts();
        let body = ClientBody::new(body, self.client_timeout);
        let whole = body.size_hint().exact().filter(|&n| n <= MAX_BUFFERED);
        match whole {
            Some(len) => {
                let req = Request::from_parts(parts, body);
                self.send_whole(req, edits, len).await
            }
            None => {
                edits.apply(&mut parts.headers);
                // Unknown length: chunked, said outright. hyper's client
                // chooses it itself for a POST, but sends a GET's or HEAD's
                // request without a length, that is without its body.
                if body.size_hint().exact().is_none() {
                    parts.headers.insert(
                        http::header::TRANSFER_ENCODING,
                        http::HeaderValue::from_static("chunked"),
                    );
                }
                let sent = body.sent();
                let req = Request::from_parts(parts, body.boxed_unsync());
                // Boxed: hyper's client futures would make every request's
                // future (moved into a box per request) kilobytes larger.
                // (In a statement of its own: a temporary of the `await`'s
                // statement would be kept in this future.)
                let streaming = Box::pin(self.send_streaming(req, sent));
                streaming.await
            }
        }
    }

    /// Sends `req` through hyper's client, whatever its body.
    async fn send_hyper<B>(
        self: &Arc<Self>,
        req: Request<B>,
        edits: &HeaderEdits<'_>,
    ) -> Result<Response<Body>, ForwardError>
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = req.into_parts();
        edits.apply(&mut parts.headers);
        if body.is_end_stream() {
            let sent = Arc::new(Notify::new());
            sent.notify_one();
            let body = http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed_unsync();
            return self
                .send_streaming(Request::from_parts(parts, body), sent)
                .await;
        }
        let body = ClientBody::new(body, self.client_timeout);
        if body.size_hint().exact().is_none() {
            parts.headers.insert(
                http::header::TRANSFER_ENCODING,
                http::HeaderValue::from_static("chunked"),
            );
        }
        let sent = body.sent();
        let req = Request::from_parts(parts, body.boxed_unsync());
        self.send_streaming(req, sent).await
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
        if self.client == Client::Hyper {
            let named = connection_named(fields);
            let mut headers = HeaderMap::with_capacity(fields.len() + 8);
            for (name, value) in edits.edited(fields.iter().copied(), &named) {
                if let (Ok(name), Ok(value)) =
                    (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
                {
                    headers.append(name, value);
                }
            }
            let body = http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed_unsync();
            let mut req = Request::new(body);
            *req.method_mut() = method.clone();
            *req.uri_mut() = target
                .parse()
                .map_err(|e: http::uri::InvalidUri| ForwardError::RequestBody(e.into()))?;
            *req.headers_mut() = headers;
            let sent = Arc::new(Notify::new());
            sent.notify_one();
            let res = Box::pin(self.send_streaming(req, sent)).await?;
            let (parts, body) = res.into_parts();
            let head = Head {
                status: parts.status,
                fields: HeadFields::Map(parts.headers),
            };
            return Ok((head, UpstreamBody::Other(body)));
        }
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
        let head = Head {
            status: head.status,
            fields: HeadFields::Wire(head),
        };
        Ok((head, body))
    }

    /// Sends the request `encode` writes (head and body, whole) on an idle
    /// connection or a new one: the response's head, and the connection
    /// its body comes on.
    async fn send_encoded(
        self: &Arc<Self>,
        method: &Method,
        encode: impl Fn(&mut Vec<u8>),
    ) -> Result<(Conn, wire::Head), ForwardError> {
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

    /// A new TCP connection to the upstream, opened within the connect
    /// timeout (for either kind of connection).
    async fn open(&self) -> Result<TcpStream, ForwardError> {
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| ForwardError::ConnectTimeout)?
            .map_err(ForwardError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    fn response(
        self: &Arc<Self>,
        conn: Conn,
        head: wire::Head,
    ) -> Result<Response<Body>, ForwardError> {
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
        pool.streaming.reap(|s| !s.is_closed());
    }
}
