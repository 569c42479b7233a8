//! Serving connections: the accept loop, the workers, and which code
//! serves each connection.
//!
//! Connections are served by a number of workers (default: one per CPU),
//! each a thread with a single-threaded tokio runtime and its own
//! kept-alive upstream connections, so a request, its upstream exchange and
//! its answer run on one thread without cross-thread wake-ups. The first
//! worker runs on the caller's runtime, which also accepts and hands
//! connections out round-robin; counters, accounts, the policy and metrics
//! are shared by all. A connection that starts with HTTP/2's preface (prior
//! knowledge) is served as HTTP/2, any other as HTTP/1.1: by the own path
//! ([`h1`]) or by hyper, as [`Http1`] says. With TLS ([`TlsConfig`]), the
//! handshake comes first (within the client timeout) and ALPN chooses:
//! `h2` is HTTP/2, anything else HTTP/1.1, served the same way.
//!
//! On shutdown the loop stops accepting and lets requests in flight finish
//! on every worker (up to the shutdown timeout).

mod h1;
mod h2;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::{service_fn, Service as _};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

use crate::error::Error;
use crate::handler::{route, Handler, HandlerFactory};
use crate::options::Http1;
use crate::respond::{BoxError, ClientAddr};
use crate::tls::TlsConfig;

/// The connections of one worker: its gateway, the HTTP settings, and the
/// graceful-shutdown watch over what it serves.
struct Connections {
    gateway: Arc<Handler>,
    http: Arc<Protocols>,
    graceful: GracefulShutdown,
    /// Set when shutting down: connections that have not sent a byte yet close.
    closing: watch::Sender<bool>,
    /// TLS termination, if on.
    tls: Option<TlsConfig>,
}

/// How connections are served: HTTP/1.1 directly, or (for a client that
/// starts with the HTTP/2 preface) hyper-util's version detection.
struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    auto: auto::Builder<TokioExecutor>,
}

/// What a connection starts with.
enum Sniffed {
    /// Not HTTP/2's preface: HTTP/1.x.
    Http1,
    /// HTTP/2's preface, or a prefix of it: left to version detection.
    MaybeHttp2,
}

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Peeks at the first bytes of a connection (without consuming them);
/// `None` when it closes before sending any.
async fn sniff(stream: &TcpStream) -> Option<Sniffed> {
    let mut first = [0u8; H2_PREFACE.len()];
    match stream.peek(&mut first).await {
        Ok(0) | Err(_) => None,
        Ok(n) if H2_PREFACE.starts_with(&first[..n]) => Some(Sniffed::MaybeHttp2),
        Ok(_) => Some(Sniffed::Http1),
    }
}

impl Connections {
    fn new(gateway: Arc<Handler>, tls: Option<TlsConfig>) -> Self {
        // A client gets `client_timeout` to send each request head: on a new
        // connection, and between requests on a kept-alive one (hyper starts
        // the timer when the connection goes idle), so neither a slow client
        // nor an idle one holds a connection open for ever.
        let timeout = gateway.client_timeout;
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1.timer(TokioTimer::new()).header_read_timeout(timeout);
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(timeout);
        Connections {
            gateway,
            http: Arc::new(Protocols { http1, auto }),
            graceful: GracefulShutdown::new(),
            closing: watch::channel(false).0,
            tls,
        }
    }

    /// Serves one accepted connection on this worker's runtime; `slot` is
    /// given back when the connection closes.
    fn serve(&self, stream: TcpStream, peer: SocketAddr, slot: OwnedSemaphorePermit) {
        // The client timeout for the first request head runs from here
        // (about when the connection was accepted), whatever path serves it
        // (a TLS handshake included).
        let accepted = tokio::time::Instant::now();
        let client_timeout = self.gateway.client_timeout;
        let mut conn = Conn {
            gw: Arc::clone(&self.gateway),
            client: ClientAddr::new(peer),
            accepted,
            http: Arc::clone(&self.http),
            watcher: self.graceful.watcher(),
            closing: self.closing.subscribe(),
        };
        // The certificate in force now: a reload after this does not
        // change this connection's.
        let tls = self.tls.as_ref().map(TlsConfig::acceptor);
        tokio::spawn(async move {
            let _slot = slot;
            let mut closing = conn.closing.clone();
            let ended = match tls {
                None => {
                    // HTTP/1.1 is served by hyper's HTTP/1 connection
                    // directly; hyper-util's version detection (which wraps
                    // the socket for the whole connection) only for what
                    // may be HTTP/2.
                    let sniffed = tokio::select! {
                        s = tokio::time::timeout_at(accepted + client_timeout, sniff(&stream)) => s.ok().flatten(),
                        _ = closing.wait_for(|c| *c) => None,
                    };
                    match sniffed {
                        None => return,
                        Some(sniffed) => conn.run(stream, sniffed).await,
                    }
                }
                // The handshake first (within the client timeout), then
                // the protocol ALPN chose: `h2`, or HTTP/1.1 (`http/1.1`,
                // or a client that offered none).
                Some(acceptor) => {
                    let handshake = tokio::select! {
                        s = tokio::time::timeout_at(accepted + client_timeout, acceptor.accept(stream)) => s,
                        _ = closing.wait_for(|c| *c) => return,
                    };
                    let stream = match handshake {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake not done within the client timeout");
                            return;
                        }
                    };
                    let sniffed = match stream.get_ref().1.alpn_protocol() {
                        Some(b"h2") => Sniffed::MaybeHttp2,
                        _ => Sniffed::Http1,
                    };
                    conn.client.https = true;
                    conn.run(stream, sniffed).await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }

    /// Lets the connections finish, for at most `drain`; false if some
    /// were still open then.
    async fn drain(self, drain: Duration) -> bool {
        self.closing.send_replace(true);
        tokio::select! {
            () = self.graceful.shutdown() => true,
            () = tokio::time::sleep(drain) => false,
        }
    }
}

/// One accepted connection, about to be served once its protocol is known.
struct Conn {
    gw: Arc<Handler>,
    client: ClientAddr,
    /// When it was accepted: the first request head is due within the
    /// client timeout from then.
    accepted: tokio::time::Instant,
    http: Arc<Protocols>,
    /// Held while the connection is served: the drain waits for it.
    watcher: Watcher,
    /// Turns true when the gateway shuts down.
    closing: watch::Receiver<bool>,
}

impl Conn {
    /// Serves `stream` (TCP, or TLS over it) as `sniffed` says until it
    /// closes.
    async fn run<S: Io>(self, stream: S, sniffed: Sniffed) -> Result<(), BoxError> {
        let Conn {
            gw,
            client,
            accepted,
            http,
            watcher,
            mut closing,
        } = self;
        let own = Arc::clone(&gw);
        let client_timeout = gw.client_timeout;
        // The client's address goes with each request to its route's
        // service (no per-request extension to carry it).
        let peer = client.clone();
        let svc = service_fn(move |req| route(Arc::clone(&gw), peer.clone(), req));
        match sniffed {
            // Served by hyper alone (`Http1::Hyper`). Its header timer
            // starts when it starts reading, after the sniff: the first
            // head gets the client timeout once from the accept here,
            // as on the own path; later heads get hyper's timer.
            Sniffed::Http1 if own.http1 == Http1::Hyper => {
                let started = Arc::new(AtomicBool::new(false));
                let seen = Arc::clone(&started);
                let svc = service_fn(move |req| {
                    seen.store(true, Ordering::Relaxed);
                    svc.call(req)
                });
                let conn = watcher.watch(http.http1.serve_connection(TokioIo::new(stream), svc));
                let mut conn = pin!(conn);
                tokio::select! {
                    ended = conn.as_mut() => ended.map_err(Into::into),
                    () = tokio::time::sleep_until(accepted + client_timeout) => {
                        if started.load(Ordering::Relaxed) {
                            conn.await.map_err(Into::into)
                        } else {
                            // No head in time: the connection closes.
                            Ok(())
                        }
                    }
                }
            }
            // Served by the own path until a request it leaves to
            // hyper (the watcher, held meanwhile, keeps the drain waiting).
            Sniffed::Http1 => {
                match h1::serve(stream, &own, &client, accepted, &mut closing).await {
                    h1::Ended::Closed => Ok(()),
                    h1::Ended::Handover(io) => watcher
                        .watch(http.http1.serve_connection(TokioIo::new(io), svc))
                        .await
                        .map_err(Into::into),
                }
            }
            // Served by hyper, and shut down gracefully once idle for the
            // client timeout or when the gateway shuts down (the
            // watcher, held meanwhile, keeps the drain waiting).
            Sniffed::MaybeHttp2 => {
                let busy = h2::Busy::since(accepted);
                let svc = h2::counted(svc, Arc::clone(&busy));
                let mut conn = pin!(http.auto.serve_connection(TokioIo::new(stream), svc));
                let ended = tokio::select! {
                    ended = conn.as_mut() => ended,
                    () = h2::idle_or_closing(&busy, client_timeout, &mut closing) => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                drop(watcher);
                ended
            }
        }
    }
}

/// What a connection can be: a TCP stream, or a TLS one over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// An accepted connection handed to another worker, with its slot.
type Handoff = (std::net::TcpStream, SocketAddr, OwnedSemaphorePermit);

/// A worker on its own thread: where to hand it connections, and its
/// answer once drained (true: every connection finished in time).
struct Remote {
    handoff: mpsc::UnboundedSender<Handoff>,
    done: oneshot::Receiver<bool>,
}

/// Starts worker `index` on a thread of its own, with a single-threaded
/// runtime: the connections it is handed, their requests and their
/// upstream connections all run there, without crossing threads.
fn spawn_worker(index: usize, factory: HandlerFactory, drain: Duration) -> Result<Remote, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Setup(format!("cannot start worker {index}: {e}")))?;
    let (handoff, mut rx) = mpsc::unbounded_channel::<Handoff>();
    let (done_tx, done) = oneshot::channel();
    // The caller's log subscriber (an embedder's, or a test's) also hears
    // this worker's requests: a new thread would start with the global one.
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    std::thread::Builder::new()
        .name(format!("quota-worker-{index}"))
        .spawn(move || {
            let _logs = tracing::dispatcher::set_default(&dispatch);
            let drained = rt.block_on(async move {
                let gateway = match factory.build() {
                    Ok(g) => Arc::new(g),
                    Err(e) => {
                        tracing::error!(worker = index, error = %e, "cannot start a worker");
                        return true;
                    }
                };
                let conns = Connections::new(gateway, factory.serving.tls.clone());
                while let Some((stream, peer, slot)) = rx.recv().await {
                    match TcpStream::from_std(stream) {
                        Ok(stream) => conns.serve(stream, peer, slot),
                        Err(e) => tracing::warn!(error = %e, "cannot serve an accepted connection"),
                    }
                }
                // The acceptor is gone: shutting down.
                conns.drain(drain).await
            });
            let _ = done_tx.send(drained);
        })
        .map_err(|e| Error::Setup(format!("cannot start worker {index}: {e}")))?;
    Ok(Remote { handoff, done })
}

/// Accepts connections until a shutdown signal, handing them round-robin
/// to `workers` workers (the first one on this runtime), then drains them.
/// At most `max_connections` are open at once: at the limit, new clients
/// wait in the listen queue until one closes.
pub(crate) async fn serve(
    listener: TcpListener,
    factory: &HandlerFactory,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let workers = factory.serving.workers;
    let max_connections = factory.serving.max_connections;
    let drain = factory.serving.shutdown_timeout;
    let first = Arc::new(factory.build()?);
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut remotes = Vec::with_capacity(workers.saturating_sub(1));
    for index in 1..workers {
        remotes.push(spawn_worker(index, factory.clone(), drain)?);
    }
    let local = Connections::new(first, factory.serving.tls.clone());
    let mut next = 0;
    let mut signal = pin!(shutdown);
    // When the limit was last reported (at most once a minute).
    let mut reported_full: Option<std::time::Instant> = None;
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if reported_full.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    reported_full = Some(std::time::Instant::now());
                    tracing::warn!(
                        max_connections,
                        "connection limit reached: new clients wait until one closes"
                    );
                }
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut signal => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        next = (next + 1) % (remotes.len() + 1);
        match next.checked_sub(1).and_then(|i| remotes.get(i)) {
            None => local.serve(stream, peer, slot),
            Some(remote) => hand_off(remote, &local, (stream, peer, slot)),
        }
    }
    drop(listener);
    tracing::info!(workers, "shutting down: no new connections, draining");
    // Closing the hand-off channels tells the other workers to drain.
    let done: Vec<_> = remotes.into_iter().map(|r| r.done).collect();
    let mut drained = local.drain(drain).await;
    for d in done {
        drained &= d.await.unwrap_or(true);
    }
    if drained {
        tracing::info!("all connections drained");
    } else {
        tracing::warn!(
            timeout_s = drain.as_secs_f64(),
            "shutdown timeout: closing connections still open"
        );
    }
    Ok(())
}

/// Hands a connection to a worker on another thread (served here if that
/// worker is gone).
fn hand_off(
    remote: &Remote,
    local: &Connections,
    (stream, peer, slot): (TcpStream, SocketAddr, OwnedSemaphorePermit),
) {
    let stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot hand a connection to a worker");
            return;
        }
    };
    if let Err(mpsc::error::SendError((stream, peer, slot))) =
        remote.handoff.send((stream, peer, slot))
    {
        match TcpStream::from_std(stream) {
            Ok(stream) => local.serve(stream, peer, slot),
            Err(e) => tracing::warn!(error = %e, "cannot serve an accepted connection"),
        }
    }
}

/// Completes on SIGINT or SIGTERM (Ctrl-C elsewhere): the shutdown signal
/// of the `quota` binary, for [`Gateway::serve`](crate::Gateway::serve).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
