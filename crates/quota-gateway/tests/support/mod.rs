//! Harness of the gateway's end-to-end tests, in process: a [`Gateway`]
//! built from a builder the test customises, serving a loopback listener
//! (`127.0.0.1:0`) on a thread and runtime of its own (as the binary's
//! `main` runs it), with its log lines captured for the test; real
//! upstreams (a small hyper server, a scripted one over raw TCP) and a
//! hyper client ([`shared`], which the binary's suite includes too). The
//! gateway stops when its guard ([`Gw`]) drops, and the drop waits
//! (bounded) for `serve` to return. Every wait is bounded.
//!
//! `QUOTA_TEST_HTTP1` (`own`, the default, or `hyper`) chooses the code
//! that serves HTTP/1.1 ([`Http1`]), so that the whole suite can run on
//! either path.

// tests may panic; each test binary uses a different part of the harness
// (dead_code), and `pub` items here are only reachable from the test crate.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

pub mod process;
pub mod redis_prefix;
pub mod shared;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use quota_core::policy::Policy;
use quota_gateway::{Gateway, GatewayBuilder, Http1};
use quota_redis::{FailurePolicy, RedisConfig, RedisStore};
use tokio::net::TcpListener;
use tracing::Dispatch;

pub use shared::*;

/// How long the gateway gets to start (Redis warm-up included).
const START_WITHIN: Duration = Duration::from_secs(20);

/// How long the gateway gets to drain on shutdown: short, so that a test
/// that leaves a request hanging does not hold the next one back.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// How long dropping a [`Gw`] waits for `serve` to return.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// The HTTP/1.1 path the suite runs on: `QUOTA_TEST_HTTP1` (`own`, the
/// default, or `hyper`).
pub fn http1_from_env() -> Http1 {
    match std::env::var("QUOTA_TEST_HTTP1") {
        Ok(v) if !v.is_empty() => v
            .parse()
            .unwrap_or_else(|e| panic!("QUOTA_TEST_HTTP1={v:?}: {e}")),
        _ => Http1::Own,
    }
}

/// A change to the gateway's builder, made by a test.
type Configure = Box<dyn FnOnce(GatewayBuilder) -> GatewayBuilder + Send>;

/// Where the gateway keeps counters and accounts.
enum Store {
    /// `MemoryStore` and `MemoryAccounts` (the builder's defaults).
    Memory,
    /// A `RedisStore` on `url` and its accounts, as `quota serve --store`.
    Redis {
        url: String,
        prefix: Option<String>,
        failure: FailurePolicy,
    },
}

/// What a test's gateway is made of. Defaults: the test policy
/// ([`TEST_POLICY`]), the memory store and accounts, the admin API behind
/// [`ADMIN_TOKEN`], the HTTP/1.1 path of `QUOTA_TEST_HTTP1`, a short drain
/// on shutdown; the rest as [`Gateway::builder`] has it.
#[must_use = "a setup does nothing until started"]
pub struct Setup {
    upstream: String,
    policy: Policy,
    store: Store,
    configure: Vec<Configure>,
    /// Envoy's rate limit service beside the gateway, for this domain.
    grpc: Option<String>,
}

/// A gateway with no upstream of its own: the test gives it routes
/// (`.with(|b| b.route(...))`).
pub fn setup_routes() -> Setup {
    setup("")
}

/// A gateway in front of `upstream` (a URL), to customise and start.
pub fn setup(upstream: &str) -> Setup {
    Setup {
        upstream: upstream.to_owned(),
        policy: Policy::parse(TEST_POLICY).unwrap(),
        store: Store::Memory,
        configure: Vec::new(),
        grpc: None,
    }
}

impl Setup {
    /// The policy, from TOML (or JSON) text.
    pub fn policy(mut self, text: &str) -> Self {
        self.policy = Policy::parse(text).unwrap_or_else(|e| panic!("bad test policy: {e}"));
        self
    }

    /// The built-in seed policy (what `quota serve` runs without `--policy`).
    pub fn seed_policy(mut self) -> Self {
        self.policy = Policy::seed();
        self
    }

    /// Counters and accounts in the Redis at `url` (`--store URL
    /// --redis-prefix PREFIX --redis-failure FAILURE`).
    pub fn redis(mut self, url: &str, prefix: Option<&str>, failure: FailurePolicy) -> Self {
        self.store = Store::Redis {
            url: url.to_owned(),
            prefix: prefix.map(str::to_owned),
            failure,
        };
        self
    }

    /// Also serves Envoy's rate limit service for `domain` on a port of
    /// its own ([`Gw::grpc_addr`]), stopped with the gateway.
    #[allow(dead_code)] // used by the tests of the grpc feature only
    pub fn grpc(mut self, domain: &str) -> Self {
        self.grpc = Some(domain.to_owned());
        self
    }

    /// Changes the builder (after the harness's defaults, so that a test
    /// can override them).
    pub fn with(
        mut self,
        configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder + Send + 'static,
    ) -> Self {
        self.configure.push(Box::new(configure));
        self
    }

    /// Starts the gateway on its own thread and runtime, and waits until it
    /// listens.
    pub async fn start(self) -> Gw {
        let n = GATEWAYS.fetch_add(1, Ordering::Relaxed);
        let logs = Logs::default();
        let dispatch = logs.dispatch();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("test-gateway-{n}"))
            .spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    run(self, &dispatch, ready_tx, stop_rx, done_tx);
                });
            })
            .unwrap();
        let started = tokio::time::timeout(START_WITHIN, ready_rx)
            .await
            .unwrap_or_else(|_| panic!("the gateway did not start within {START_WITHIN:?}"));
        let (addr, grpc_addr) = match started {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(e)) => panic!("the gateway did not start: {e}; log:\n{}", logs.text()),
            Err(_) => panic!("the gateway's thread ended; log:\n{}", logs.text()),
        };
        Gw {
            addr,
            grpc_addr,
            logs,
            stop: Some(stop_tx),
            done: done_rx,
            thread: Some(thread),
        }
    }
}

static GATEWAYS: AtomicU64 = AtomicU64::new(0);

/// The gateway's thread: builds it, reports where it listens, serves until
/// told to stop (or until its [`Gw`] is gone), and reports how `serve` ended.
fn run(
    setup: Setup,
    dispatch: &Dispatch,
    ready: tokio::sync::oneshot::Sender<Result<(SocketAddr, Option<SocketAddr>), String>>,
    stop: tokio::sync::oneshot::Receiver<()>,
    done: std::sync::mpsc::Sender<Result<(), String>>,
) {
    // The first worker runs here, on a single-threaded runtime, as in
    // `quota serve`; its blocking pool logs to the same capture.
    let for_threads = dispatch.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || hold_default(&for_threads))
        .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot build a runtime: {e}")));
            return;
        }
    };
    rt.block_on(async move {
        let grpc = setup.grpc.clone();
        let (gateway, listener) = match build(setup).await {
            Ok(built) => built,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let (grpc_stop, grpc_addr) = match grpc {
            Some(domain) => match serve_grpc(&gateway, &domain).await {
                Ok((stop, addr)) => (Some(stop), Some(addr)),
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            },
            None => (None, None),
        };
        let addr = listener.local_addr().map_err(|e| e.to_string());
        let _ = ready.send(addr.map(|a| (a, grpc_addr)));
        let served = gateway
            .serve(listener, async {
                // Told to stop, or the guard is gone: either way, stop.
                let _ = stop.await;
            })
            .await;
        drop(grpc_stop);
        let _ = done.send(served.map_err(|e| e.to_string()));
    });
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// Serves the gateway's rate limit service on a free port, until the
/// returned sender is dropped.
#[cfg(feature = "grpc")]
async fn serve_grpc(
    gateway: &Gateway,
    domain: &str,
) -> Result<(tokio::sync::watch::Sender<()>, SocketAddr), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:0: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, mut stopped) = tokio::sync::watch::channel(());
    let rls = gateway.rls(domain);
    tokio::spawn(rls.serve(listener, async move {
        let _ = stopped.changed().await;
    }));
    Ok((stop, addr))
}

#[cfg(not(feature = "grpc"))]
async fn serve_grpc(
    _: &Gateway,
    _: &str,
) -> Result<(tokio::sync::watch::Sender<()>, SocketAddr), String> {
    Err("the rate limit service needs the grpc feature".to_owned())
}

/// Builds the gateway (on its own runtime: a Redis store's connection
/// lives there) and binds its listener.
async fn build(setup: Setup) -> Result<(Gateway, TcpListener), String> {
    let mut builder = Gateway::builder(setup.policy);
    if !setup.upstream.is_empty() {
        let upstream = setup
            .upstream
            .parse()
            .map_err(|e| format!("upstream {:?}: {e}", setup.upstream))?;
        builder = builder.upstream(upstream);
    }
    let mut builder = builder
        .admin_token(ADMIN_TOKEN)
        .http1(http1_from_env())
        .shutdown_timeout(SHUTDOWN_TIMEOUT);
    if let Store::Redis {
        url,
        prefix,
        failure,
    } = setup.store
    {
        let mut config = RedisConfig::default().with_failure_policy(failure);
        if let Some(prefix) = prefix {
            config = config.with_prefix(prefix);
        }
        let store = RedisStore::connect(&url, config)
            .await
            .map_err(|e| format!("redis store {url}: {e}"))?;
        builder = builder.accounts(store.accounts()).store(store);
    }
    for configure in setup.configure {
        builder = configure(builder);
    }
    let gateway = builder.build().map_err(|e| e.to_string())?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:0: {e}"))?;
    Ok((gateway, listener))
}

thread_local! {
    /// The capture this runtime thread logs to, for the thread's life.
    static DEFAULT: std::cell::RefCell<Option<tracing::dispatcher::DefaultGuard>> =
        const { std::cell::RefCell::new(None) };
}

fn hold_default(dispatch: &Dispatch) {
    let guard = tracing::dispatcher::set_default(dispatch);
    DEFAULT.with(|d| *d.borrow_mut() = Some(guard));
}

/// The log lines of one gateway, as `quota serve` writes them (text, `info`
/// and up), captured in memory.
///
/// What is captured: whatever the gateway logs, on its own thread and on
/// its other workers' threads (they take the caller's subscriber). Tests
/// that read the log of requests run two workers, so that the first
/// connection is served by a worker the library started.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn dispatch(&self) -> Dispatch {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(self.clone())
            .finish();
        Dispatch::new(subscriber)
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// One event's line, written to the capture.
pub struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter(Arc::clone(&self.0))
    }
}

/// A gateway serving in this process; dropping it shuts the gateway down
/// and waits (bounded) for `serve` to return.
pub struct Gw {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    /// Where its rate limit service listens, if it serves one
    /// ([`Setup::grpc`]).
    #[allow(dead_code)] // used by the tests of the grpc feature only
    pub grpc_addr: Option<SocketAddr>,
    logs: Logs,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: std::sync::mpsc::Receiver<Result<(), String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served for Gw {
    fn url(&self, path: &str) -> String {
        Gw::url(self, path)
    }
}

impl Gw {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything the gateway logged so far.
    pub fn logs(&self) -> String {
        self.logs.text()
    }

    /// Waits (bounded) until the log contains `needle`.
    pub async fn wait_log(&self, needle: &str, within: Duration) {
        self.wait_log_count(needle, 1, within).await;
    }

    /// Waits (bounded) until the log contains `needle` at least `n` times.
    pub async fn wait_log_count(&self, needle: &str, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.logs().matches(needle).count() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "log line {needle:?} did not appear {n} times within {within:?}; log:\n{}",
            self.logs()
        );
    }

    /// Completes the shutdown future given to `serve`.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts the gateway down (if not begun yet) and waits, for at most
    /// `within`, until `serve` returns: what it returned. Its log stays
    /// readable.
    pub async fn stopped(&mut self, within: Duration) -> Result<(), String> {
        self.begin_shutdown();
        let deadline = Instant::now() + within;
        loop {
            match self.done.try_recv() {
                Ok(served) => {
                    self.join();
                    return served;
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.join();
                    return Err("the gateway's thread ended without a word".to_owned());
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            assert!(
                Instant::now() < deadline,
                "serve did not return within {within:?}; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// The blocking part of the drop.
    fn stop_and_wait(&mut self) {
        self.begin_shutdown();
        if self.thread.is_none() {
            return;
        }
        match self.done.recv_timeout(STOP_WITHIN) {
            Ok(served) => {
                self.join();
                if let Err(e) = served {
                    if !std::thread::panicking() {
                        panic!("serve failed: {e}");
                    }
                }
            }
            // The thread ended without a word: it reported already why
            // (the gateway did not start).
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => self.join(),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // Left running: it would block the test for ever.
                if !std::thread::panicking() {
                    panic!(
                        "serve did not return within {STOP_WITHIN:?} of the shutdown; log:\n{}",
                        self.logs()
                    );
                }
            }
        }
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        // Waiting blocks this thread: on a multi-threaded runtime, let the
        // runtime's other tasks (the upstream, say) go on meanwhile.
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi {
            tokio::task::block_in_place(|| self.stop_and_wait());
        } else {
            self.stop_and_wait();
        }
    }
}

/// Starts an upstream and a gateway with the test policy in front of it,
/// its builder changed by `configure` (`|b| b` for none).
pub async fn gateway(
    configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder + Send + 'static,
) -> (Upstream, Gw) {
    let up = Upstream::start().await;
    let gw = gateway_to(&up.url(), configure).await;
    (up, gw)
}

/// Starts a gateway with the test policy in front of `upstream` (a URL),
/// its builder changed by `configure`.
pub async fn gateway_to(
    upstream: &str,
    configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder + Send + 'static,
) -> Gw {
    setup(upstream).with(configure).start().await
}

/// A scripted upstream over raw TCP: reads each request (its head, and
/// a body framed by `Content-Length` or chunked), answers it with the
/// same bytes every time, and closes the connection. For answers a real
/// HTTP server would not send (both `Content-Length` and
/// `Transfer-Encoding`, a `101` nobody asked for).
pub struct RawUpstream {
    pub addr: SocketAddr,
    /// The heads received (up to their blank line), in order.
    pub heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawUpstream {
    pub async fn start(answer: &'static [u8]) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = Arc::clone(&heads);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let h = Arc::clone(&h);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 16 * 1024];
                    let read = async {
                        loop {
                            if let Some(end) = request_end(&buf) {
                                return Some(end);
                            }
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return None,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                    };
                    let Ok(Some(head_len)) =
                        tokio::time::timeout(Duration::from_secs(10), read).await
                    else {
                        return;
                    };
                    h.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..head_len]).into_owned());
                    let _ = stream.write_all(answer).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        RawUpstream { addr, heads, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where the head of the request in `buf` ends, once the request (head
/// and body) is all there.
fn request_end(buf: &[u8]) -> Option<usize> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
    let body = &buf[head..];
    if text.contains("transfer-encoding:") {
        return body.ends_with(b"0\r\n\r\n").then_some(head);
    }
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (body.len() >= len).then_some(head)
}

/// An HTTP/2 client with prior knowledge (no upgrade, no TLS).
pub fn h2_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>()
}

/// Writes `request` on a new connection to `addr` and reads until the
/// gateway closes it (ask for `Connection: close`), within 10 s.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    // A reset after the answer (the gateway closed with unread bytes)
    // ends the answer too.
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the gateway did not close the connection in time");
    String::from_utf8_lossy(&out).into_owned()
}

/// The id of a key in `listed` (the admin API's `GET .../keys` answer)
/// other than `not`. Keys are listed oldest first, then by id, so two made
/// in the same millisecond come in the order of their random ids: a test
/// must not take "the first key" by its place in the list.
pub fn key_id_other_than(listed: &serde_json::Value, not: &str) -> String {
    listed["keys"]
        .as_array()
        .expect("a key list")
        .iter()
        .filter_map(|k| k["id"].as_str())
        .find(|k| *k != not)
        .expect("another key")
        .to_owned()
}

/// The status code of a raw answer (`HTTP/1.1 200 OK...`).
pub fn status_of(answer: &str) -> u16 {
    answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an answer: {answer:?}"))
}

/// Two gateways `a` and `b` on one store share accounts and exactly one
/// budget: an account created on A is known to B; 160 concurrent requests
/// on its key through both admit exactly the 100 a minute of `slow`; a
/// payment recorded on A makes it Premium on B at once. Used by the Redis
/// and the Redis Cluster suites.
pub async fn two_nodes_share_accounts_and_one_budget(http: &Http, a: &Gw, b: &Gw) {
    let (id, key) = http.create_account(a).await;
    let on_b = http.get(&b.url("/v1/limits"), Some(&key)).await;
    assert_eq!(on_b.status, 200, "{:?}", on_b.body);
    assert_eq!(on_b.json()["tier"], "basic");

    early_in_window(60_000, Duration::from_secs(10)).await;
    let tasks: Vec<_> = (0..160)
        .map(|i| {
            let url = if i % 2 == 0 {
                a.url("/v1/slow")
            } else {
                b.url("/v1/slow")
            };
            let (http, key) = (http.clone(), key.clone());
            tokio::spawn(async move { http.post(&url, Some(&key)).await.status.as_u16() })
        })
        .collect();
    let (mut admitted, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            200 => admitted += 1,
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((admitted, refused), (100, 60));

    assert_eq!(http.pay(a, &id, "10.00").await.status, 200);
    let res = http.post(&b.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-ratelimit-limit"), Some("300"));
}
