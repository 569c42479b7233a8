//! The gateway's own HTTP/1.1 client connection to the upstream.
//!
//! A request sent whole (no body, or a small one of known length: most
//! API calls) goes out in one write; a streamed body is written as the
//! client sends it (with its length, or chunked) while the connection is
//! watched for an early answer. Either way the response is read on the
//! task that serves the client, with no connection task and no channel in
//! between (what `hyper`'s client needs for its generality). The wire
//! format is [`super::wire`]'s; this module does the I/O.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Method;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ForwardError, Pool};
use crate::http1::client::{self as wire, Decoded, Decoder, Head, WireError};
use crate::respond::BoxError;

/// Bytes read from the socket at a time (at least).
const READ_SIZE: usize = 8 * 1024;

/// The largest request buffer an idle connection keeps for its next
/// request (one that carried a bigger body lets its buffer go).
const KEPT_OUT: usize = 8 * 1024;

/// A connection to the upstream: TCP, or TLS over it (an `https://`
/// upstream).
pub(crate) enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP (boxed: the TLS state is large).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether nothing has arrived on an idle connection (neither a close
    /// nor stray bytes). TCP: no system call unless the event loop saw
    /// something arrive. TLS: the socket is peeked, never read (a read
    /// would take bytes from under the TLS session); whatever arrives on an
    /// idle TLS connection (a close notification) retires it.
    fn is_idle(&self) -> bool {
        match self {
            Stream::Tcp(tcp) => {
                let mut probe = [0u8; 1];
                matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            Stream::Tls(tls) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut probe = [0u8; 1];
                let mut probe = tokio::io::ReadBuf::new(&mut probe);
                tls.get_ref().0.poll_peek(&mut cx, &mut probe).is_pending()
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// An open connection to the upstream, with its buffers.
pub(crate) struct Conn {
    stream: Stream,
    /// What has been read and not taken yet.
    buf: BytesMut,
    /// The encoded request, kept for its allocation between requests.
    pub(super) out: Vec<u8>,
}

/// How an exchange failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// Not a byte of a response came back: the connection failed while the
    /// request was written (`written` false), or closed after it was.
    NoResponse { written: bool, error: io::Error },
    /// The connection failed while the response head was read.
    Io(io::Error),
    /// The response head cannot be read.
    Wire(WireError),
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::NoResponse {
                written: false,
                error,
            } => {
                write!(f, "writing the request failed: {error}")
            }
            ExchangeError::NoResponse {
                written: true,
                error,
            } => {
                write!(f, "no response: {error}")
            }
            ExchangeError::Io(e) => write!(f, "reading the response failed: {e}"),
            ExchangeError::Wire(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ExchangeError {}

impl Conn {
    /// A connection over `stream` (open, to the upstream).
    pub(crate) fn new(stream: Stream) -> Conn {
        Conn {
            stream,
            buf: BytesMut::with_capacity(READ_SIZE),
            out: Vec::with_capacity(1024),
        }
    }

    /// Keeps `out` (an encoded request, sent) for the next request's
    /// encoding, unless it grew large.
    pub(crate) fn keep_out(&mut self, mut out: Vec<u8>) {
        if out.capacity() <= KEPT_OUT {
            out.clear();
            self.out = out;
        }
    }

    /// Whether an idle connection can carry another request: nothing has
    /// arrived on it since its last response (neither a close nor stray
    /// bytes). No system call unless the event loop saw something arrive.
    pub(crate) fn is_reusable(&self) -> bool {
        self.stream.is_idle()
    }

    /// Writes `bytes` (a request head), flushed.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        send(&mut self.stream, bytes).await
    }

    /// Writes `request` (head and body, encoded) and reads the head of the
    /// response to a request made with `method`.
    pub(crate) async fn exchange(
        &mut self,
        request: &[u8],
        method: &Method,
    ) -> Result<Head, ExchangeError> {
        if let Err(error) = send(&mut self.stream, request).await {
            return Err(ExchangeError::NoResponse {
                written: false,
                error,
            });
        }
        read_head(&mut self.stream, &mut self.buf, method).await
    }

    /// Writes `body` after a request head already written (framed as
    /// `framing` says, as it comes from the client) while it reads the head
    /// of the response to a request made with `method`: an upstream may
    /// answer before the body's end (refusing an upload), and that answer
    /// is taken at once, the rest of the body left unsent. The upstream
    /// gets `timeout` to answer from when the body has been written whole.
    ///
    /// The response's head, and whether the body was written whole (when
    /// not, the connection carries no other request).
    pub(crate) async fn exchange_streaming<B>(
        &mut self,
        body: Pin<&mut B>,
        framing: BodyFraming,
        method: &Method,
        timeout: Duration,
    ) -> Result<(Head, bool), ForwardError>
    where
        B: HttpBody<Data = Bytes, Error = BoxError>,
    {
        // TCP splits into borrowed halves for free; a TLS session is
        // shared by its halves (behind a lock).
        match &mut self.stream {
            Stream::Tcp(tcp) => {
                let (rd, wr) = tcp.split();
                exchange_streaming(rd, wr, &mut self.buf, body, framing, method, timeout).await
            }
            Stream::Tls(tls) => {
                let (rd, wr) = tokio::io::split(&mut **tls);
                exchange_streaming(rd, wr, &mut self.buf, body, framing, method, timeout).await
            }
        }
    }

    /// The response body that follows `head` on this connection. The
    /// connection goes back to `pool` once the body has been read to its
    /// end, if it can carry another request; at once when the whole body
    /// is already here (the usual small answer).
    pub(crate) fn body(mut self, head: &Head, pool: &Arc<Pool>) -> UpstreamBody {
        let mut decoder = Decoder::new(head.framing);
        let keep_alive = head.keep_alive;
        let first = match decoder.decode(&mut self.buf) {
            Ok(Decoded::Data(b)) => Some(b),
            Ok(Decoded::End | Decoded::NeedMore) => None,
            // A broken chunked body: its error is the body's one frame.
            Err(e) => return UpstreamBody::failed(e),
        };
        if decoder.is_done() {
            if keep_alive && self.buf.is_empty() {
                pool.checkin_conn(self);
            }
            return UpstreamBody::Whole(first);
        }
        UpstreamBody::Streaming(Box::new(Streaming {
            conn: Some(self),
            decoder,
            pending: first,
            keep_alive,
            pool: Arc::clone(pool),
        }))
    }
}

/// [`Conn::exchange_streaming`] over the connection's halves: `body`
/// written to `wr` while the response head is read from `rd` into `buf`.
async fn exchange_streaming<R, W, B>(
    mut rd: R,
    mut wr: W,
    buf: &mut BytesMut,
    body: Pin<&mut B>,
    framing: BodyFraming,
    method: &Method,
    timeout: Duration,
) -> Result<(Head, bool), ForwardError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    B: HttpBody<Data = Bytes, Error = BoxError>,
{
    let mut read = pin!(read_head(&mut rd, buf, method));
    let mut write = pin!(write_body(&mut wr, body, framing));
    let written = tokio::select! {
        biased;
        head = &mut read => return Ok((head.map_err(ForwardError::Exchange)?, false)),
        written = &mut write => written,
    };
    let whole = match written {
        Ok(()) => true,
        Err(BodyError::Client(e)) => return Err(ForwardError::RequestBody(e)),
        // The upstream stopped taking the body: its answer may be on
        // the way (read below), or it closed without one.
        Err(BodyError::Io(e)) => {
            tracing::debug!(error = %e, "the upstream stopped taking the request body");
            false
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(head) => Ok((head.map_err(ForwardError::Exchange)?, whole)),
        Err(_) => Err(ForwardError::Timeout),
    }
}

/// Writes `bytes` and flushes them (a TLS stream may hold written bytes
/// until flushed; a TCP one has nothing to flush).
async fn send<W: AsyncWrite + Unpin>(stream: &mut W, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// How a streamed request body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// With a `Content-Length` of this many bytes.
    Length(u64),
    /// Chunked (its length is not known ahead).
    Chunked,
}

/// Why a body could not be written whole.
enum BodyError {
    /// The client's body failed.
    Client(BoxError),
    /// Writing to the upstream failed.
    Io(io::Error),
}

/// Reads the head of the response to a request made with `method` from
/// `stream`, into `buf`.
async fn read_head<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Head, ExchangeError> {
    loop {
        match wire::parse_head(buf, method) {
            Ok(Some(head)) => return Ok(head),
            Ok(None) => {}
            Err(e) => return Err(ExchangeError::Wire(e)),
        }
        buf.reserve(READ_SIZE);
        let nothing_yet = buf.is_empty();
        match stream.read_buf(buf).await {
            Ok(0) if nothing_yet => {
                let error = io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed");
                return Err(ExchangeError::NoResponse {
                    written: true,
                    error,
                });
            }
            Ok(0) => {
                return Err(ExchangeError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed within the response head",
                )))
            }
            Ok(_) => {}
            Err(error) if nothing_yet => {
                return Err(ExchangeError::NoResponse {
                    written: true,
                    error,
                })
            }
            Err(e) => return Err(ExchangeError::Io(e)),
        }
    }
}

/// Writes `body` to `stream` as it comes, framed as `framing` says (a
/// chunked body ends with its last chunk; trailers are not sent).
async fn write_body<W, B>(
    stream: &mut W,
    mut body: Pin<&mut B>,
    framing: BodyFraming,
) -> Result<(), BodyError>
where
    W: AsyncWrite + Unpin,
    B: HttpBody<Data = Bytes, Error = BoxError>,
{
    let mut sent = 0u64;
    let mut chunk = Vec::new();
    while let Some(frame) = body.as_mut().frame().await {
        let frame = frame.map_err(BodyError::Client)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        match framing {
            BodyFraming::Length(len) if sent > len => {
                let e = format!("the request body has more than {len} bytes");
                return Err(BodyError::Client(e.into()));
            }
            BodyFraming::Length(_) => send(stream, &data).await,
            BodyFraming::Chunked => {
                // Size line, data and CRLF in one write.
                chunk.clear();
                chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                chunk.extend_from_slice(&data);
                chunk.extend_from_slice(b"\r\n");
                send(stream, &chunk).await
            }
        }
        .map_err(BodyError::Io)?;
    }
    match framing {
        BodyFraming::Length(len) if sent != len => {
            let e = format!("the request body has {sent} bytes, not {len}");
            Err(BodyError::Client(e.into()))
        }
        BodyFraming::Length(_) => Ok(()),
        BodyFraming::Chunked => send(stream, b"0\r\n\r\n").await.map_err(BodyError::Io),
    }
}

/// A response body from a [`Conn`].
pub(crate) enum UpstreamBody {
    /// All of it (or nothing), already read.
    Whole(Option<Bytes>),
    /// Read from the connection as the client takes it.
    Streaming(Box<Streaming>),
    /// Broken from the start.
    Failed(Option<WireError>),
}

impl UpstreamBody {
    fn failed(e: WireError) -> Self {
        UpstreamBody::Failed(Some(e))
    }
}

/// The state of a body read from its connection.
pub(crate) struct Streaming {
    /// `None` once the body has ended or failed.
    conn: Option<Conn>,
    decoder: Decoder,
    /// Bytes read with the head, not given out yet.
    pending: Option<Bytes>,
    keep_alive: bool,
    pool: Arc<Pool>,
}

impl Streaming {
    /// The body is complete: the connection goes back to the pool if it can
    /// carry another request (nothing beyond the body arrived).
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                self.pool.checkin_conn(conn);
            }
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        if let Some(b) = self.pending.take() {
            return Poll::Ready(Some(Ok(b)));
        }
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.decoder.decode(&mut conn.buf) {
                Ok(Decoded::Data(b)) => {
                    if self.decoder.is_done() {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(b)));
                }
                Ok(Decoded::End) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
            conn.buf.reserve(READ_SIZE);
            let read = ready!(pin!(conn.stream.read_buf(&mut conn.buf)).poll(cx));
            match read {
                Ok(0) => {
                    // Closed: the end of a close-delimited body, or too soon.
                    self.conn = None;
                    return match self.decoder.eof() {
                        Ok(_) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(e.into()))),
                    };
                }
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let next = match self.get_mut() {
            UpstreamBody::Whole(data) => Poll::Ready(data.take().map(Ok)),
            UpstreamBody::Streaming(s) => s.poll_next(cx),
            UpstreamBody::Failed(e) => Poll::Ready(e.take().map(|e| Err(e.into()))),
        };
        next.map(|n| n.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Whole(data) => data.is_none(),
            UpstreamBody::Streaming(s) => s.pending.is_none() && s.conn.is_none(),
            UpstreamBody::Failed(e) => e.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Whole(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            _ => SizeHint::default(),
        }
    }
}
