//! The gateway's own HTTP/1.1 client connection to the upstream.
//!
//! For requests sent whole (no body, or a small one of known length: most
//! API calls): the request goes out in one write and the response is read
//! on the task that serves the client, with no connection task and no
//! channel in between (what `hyper`'s client needs for its generality).
//! The wire format is [`super::wire`]'s; this module does the I/O.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::Method;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Pool;
use crate::http1::client::{self as wire, Decoded, Decoder, Head, WireError};
use crate::respond::{Body, BoxError};

/// Bytes read from the socket at a time (at least).
const READ_SIZE: usize = 8 * 1024;

/// The largest request buffer an idle connection keeps for its next
/// request (one that carried a bigger body lets its buffer go).
const KEPT_OUT: usize = 8 * 1024;

/// An open connection to the upstream, with its buffers.
pub(crate) struct Conn {
    stream: TcpStream,
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
    pub(crate) fn new(stream: TcpStream) -> Conn {
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
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Writes `request` (head and body, encoded) and reads the head of the
    /// response to a request made with `method`.
    pub(crate) async fn exchange(
        &mut self,
        request: &[u8],
        method: &Method,
    ) -> Result<Head, ExchangeError> {
        if let Err(error) = self.stream.write_all(request).await {
            return Err(ExchangeError::NoResponse {
                written: false,
                error,
            });
        }
        loop {
            match wire::parse_head(&mut self.buf, method) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(e) => return Err(ExchangeError::Wire(e)),
            }
            self.buf.reserve(READ_SIZE);
            let nothing_yet = self.buf.is_empty();
            match self.stream.read_buf(&mut self.buf).await {
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

/// A response body from a [`Conn`].
pub(crate) enum UpstreamBody {
    /// All of it (or nothing), already read.
    Whole(Option<Bytes>),
    /// Read from the connection as the client takes it.
    Streaming(Box<Streaming>),
    /// Broken from the start.
    Failed(Option<WireError>),
    /// From hyper's client.
    Other(Body),
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
            UpstreamBody::Other(b) => return Pin::new(b).poll_frame(cx),
        };
        next.map(|n| n.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Whole(data) => data.is_none(),
            UpstreamBody::Streaming(s) => s.pending.is_none() && s.conn.is_none(),
            UpstreamBody::Failed(e) => e.is_none(),
            UpstreamBody::Other(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Whole(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            UpstreamBody::Other(b) => b.size_hint(),
            _ => SizeHint::default(),
        }
    }
}
