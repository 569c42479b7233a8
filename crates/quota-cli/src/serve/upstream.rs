//! Kept-alive HTTP/1.1 connections to the upstream, and a pool of them.
//!
//! What `hyper-util`'s pooled client does for many hosts, for one: a
//! request takes an idle connection (or opens one), and its response body
//! puts the connection back once it has been read to the end. No pool key,
//! no task per request. A connection whose response body is dropped unread,
//! whose request is abandoned (upstream timeout), or that the upstream
//! closed is not reused. Idle connections are closed after
//! [`IDLE_TIMEOUT`]; at most [`MAX_IDLE`] are kept.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::respond::Body;

/// How long an unused connection is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The most idle connections kept.
pub(crate) const MAX_IDLE: usize = 256;

/// Why a request could not get a response.
#[derive(Debug)]
pub(crate) enum ForwardError {
    /// The connection could not be opened.
    Connect(std::io::Error),
    /// The connection could not be opened in time.
    ConnectTimeout,
    /// The exchange failed (the upstream, or the request body).
    Http(hyper::Error),
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardError::Connect(_) => f.write_str("cannot connect to the upstream"),
            ForwardError::ConnectTimeout => f.write_str("connecting to the upstream timed out"),
            ForwardError::Http(_) => f.write_str("the upstream exchange failed"),
        }
    }
}

impl std::error::Error for ForwardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ForwardError::Connect(e) => Some(e),
            ForwardError::ConnectTimeout => None,
            ForwardError::Http(e) => Some(e),
        }
    }
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

/// Connections to one `host:port`.
pub(crate) struct Pool {
    addr: String,
    connect_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
}

impl Pool {
    /// A pool of connections to `addr` (`host:port`); closes idle ones
    /// in the background while it lives. Call inside a tokio runtime.
    pub(crate) fn new(addr: String, connect_timeout: Duration) -> Arc<Self> {
        let pool = Arc::new(Pool {
            addr,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&pool);
        tokio::spawn(reap(weak));
        pool
    }

    /// Sends `req` (origin-form URI, `Host` set) on an idle connection,
    /// or on a new one.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<Body>,
    ) -> Result<Response<PooledBody>, ForwardError> {
        while let Some(mut sender) = self.checkout() {
            if !sender.is_ready() && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(res) => return Ok(self.body(res, sender)),
                Err(mut e) => match e.take_message() {
                    // Never sent (the connection closed meanwhile): try another.
                    Some(back) => req = back,
                    None => return Err(ForwardError::Http(e.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        let res = sender.send_request(req).await.map_err(ForwardError::Http)?;
        Ok(self.body(res, sender))
    }

    /// An idle connection that is still open.
    fn checkout(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(conn) = idle.pop() {
            if !conn.sender.is_closed() && conn.since.elapsed() < IDLE_TIMEOUT {
                return Some(conn.sender);
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<SendRequest<Body>, ForwardError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| ForwardError::ConnectTimeout)?
            .map_err(ForwardError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ForwardError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn body(
        self: &Arc<Self>,
        res: Response<Incoming>,
        sender: SendRequest<Body>,
    ) -> Response<PooledBody> {
        let done = res.body().is_end_stream();
        let mut back = Some((Arc::clone(self), sender));
        if done {
            give_back(&mut back);
        }
        res.map(|inner| PooledBody { inner, back })
    }
}

fn give_back(back: &mut Option<(Arc<Pool>, SendRequest<Body>)>) {
    if let Some((pool, sender)) = back.take() {
        pool.checkin(sender);
    }
}

/// Closes connections idle for longer than [`IDLE_TIMEOUT`], until the
/// pool is dropped.
async fn reap(pool: Weak<Pool>) {
    let mut tick = tokio::time::interval(IDLE_TIMEOUT);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let mut idle = pool.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|c| !c.sender.is_closed() && c.since.elapsed() < IDLE_TIMEOUT);
    }
}

/// An upstream response body; read to its end, it puts its connection back
/// in the pool.
pub(crate) struct PooledBody {
    inner: Incoming,
    back: Option<(Arc<Pool>, SendRequest<Body>)>,
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            None => give_back(&mut this.back),
            Some(Ok(_)) if this.inner.is_end_stream() => give_back(&mut this.back),
            // An error: the connection is not reused.
            Some(Err(_)) => this.back = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Empty, Full};
    use hyper::service::service_fn;

    use super::*;

    /// An upstream answering `ok` on loopback; counts its connections.
    async fn upstream() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            "ok",
                        ))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (addr, accepted)
    }

    fn get(addr: &str) -> Request<Body> {
        Request::get("/x")
            .header(http::header::HOST, addr)
            .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_read_to_the_end_is_reused() {
        let (addr, accepted) = upstream().await;
        let pool = Pool::new(addr.clone(), Duration::from_secs(5));
        for _ in 0..3 {
            let res = pool.send(get(&addr)).await.unwrap();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_unread_does_not_give_its_connection_back() {
        let (addr, accepted) = upstream().await;
        let pool = Pool::new(addr.clone(), Duration::from_secs(5));
        drop(pool.send(get(&addr)).await.unwrap());
        let res = pool.send(get(&addr)).await.unwrap();
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_upstream_nobody_listens_on_is_a_connect_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let pool = Pool::new(addr.clone(), Duration::from_secs(5));
        assert!(matches!(
            pool.send(get(&addr)).await,
            Err(ForwardError::Connect(_))
        ));
    }
}
