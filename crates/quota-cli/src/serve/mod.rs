//! `quota serve`: the gateway.
//!
//! One listener; after the edge checks, each request goes to its route in
//! the one table of routes ([`routes`]):
//!
//! 1. `GET /healthz`: liveness and the store's state;
//! 2. `GET /metrics`: Prometheus text;
//! 3. `/admin/...`: the admin API ([`admin`]), behind the admin token;
//! 4. everything else: the enforcement layer of `quota-transport` (path,
//!    identity, endpoint, upload precheck, credit, rate limits), then either
//!    `/v1/limits` (unmetered; [`limits`]) or the reverse proxy ([`proxy`]).
//!
//! Connections are served by `--workers` threads (default: one per CPU),
//! each with a single-threaded tokio runtime and its own kept-alive upstream
//! connections, so a request, its upstream exchange and its answer run on
//! one thread without cross-thread wake-ups. The first worker runs on the
//! main thread, which also accepts and hands connections out round-robin;
//! counters, accounts, the policy and metrics are shared by all.
//! A connection that starts with HTTP/2's preface (prior knowledge) is
//! served as HTTP/2, any other as HTTP/1.1.
//!
//! Shutdown on SIGINT or SIGTERM stops accepting, lets requests in flight
//! finish on every worker (up to `--shutdown-timeout`), then makes the
//! accounts database durable.

mod account_index;
pub(crate) mod accounts;
pub(crate) mod admin;
mod admin_guard;
mod app;
mod backend;
mod demo;
pub(crate) mod forwarded;
mod h1;
mod h2;
pub(crate) mod limits;
pub(crate) mod metrics;
mod observe;
pub(crate) mod proxy;
mod reload;
pub(crate) mod respond;
mod routes;
mod upstream;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use quota_core::{MemoryStore, Timestamp};
use quota_transport::enforce::{Enforce, EnforceLayer, PolicyHandle, ResponseBody};
use quota_transport::fields::HeaderFields as _;
use quota_transport::identity::KeyHeaders;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tower::{Layer, ServiceExt};

use crate::config::{Settings, StoreSetting};
use crate::policy_file;
use app::App;
use backend::{GatewayAccounts, GatewayStore};
use metrics::Metrics;
use quota_gateway::http1::edge;
use respond::{json, text, Body, ClientAddr};
use routes::Route;

/// The time now, as the engine counts it.
pub(crate) fn now() -> Timestamp {
    quota_transport::enforce::system_clock()
}

/// What every route shares.
pub(crate) struct Shared {
    /// The policy in force (replaced on reload).
    pub(crate) policy: PolicyHandle,
    /// Limit counters.
    pub(crate) store: Arc<GatewayStore>,
    /// Accounts.
    pub(crate) accounts: Arc<GatewayAccounts>,
    /// Counters for `/metrics`.
    pub(crate) metrics: Arc<Metrics>,
    /// The admin token, if the admin API is on.
    pub(crate) admin_token: Option<String>,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub(crate) trusted: Arc<forwarded::TrustedProxies>,
    /// Failed admin authentications per client address.
    pub(crate) admin_guard: admin_guard::AdminGuard,
}

/// The whole gateway: shared state and the enforced service.
struct Gateway {
    shared: Arc<Shared>,
    enforced: Enforced,
    /// The enforcement layer and the proxy, for the own HTTP/1.1 path.
    layer: EnforceLayer<GatewayStore, GatewayAccounts>,
    proxy: proxy::Proxy,
    /// How long a client connection may take to send a request head.
    client_timeout: Duration,
}

/// Runs `quota serve` until SIGINT or SIGTERM.
pub(crate) async fn run(mut settings: Settings) -> anyhow::Result<()> {
    let policy = policy_file::load_or_seed(settings.policy.as_deref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let metrics = Arc::new(Metrics::default());

    let mut demo_dir = None;
    if settings.demo && !settings.data_dir_given {
        let dir = std::env::temp_dir().join(format!("quota-demo-{}", std::process::id()));
        demo_dir = Some(dir.clone());
        settings.data_dir = dir;
    }
    let (store, accounts) = open_backends(&settings).await?;
    let store = Arc::new(store);
    let accounts = Arc::new(accounts);

    let mut demo_upstream = None;
    if settings.demo {
        let addr = demo::start_mock_upstream().await?;
        demo_upstream = Some(addr);
        if settings.upstream.is_none() {
            settings.upstream = Some(format!("http://{addr}").parse()?);
        }
        if settings.admin_token.is_none() {
            settings.admin_token = Some(accounts::new_api_key().replacen("qk_", "admin_", 1));
        }
    }
    let Some(upstream) = settings.upstream.clone() else {
        anyhow::bail!("no upstream: pass --upstream URL")
    };

    let policy_handle = PolicyHandle::new(policy);
    let shared = Arc::new(Shared {
        policy: policy_handle.clone(),
        store: Arc::clone(&store),
        accounts: Arc::clone(&accounts),
        metrics: Arc::clone(&metrics),
        admin_token: settings.admin_token.clone(),
        trusted: Arc::new(settings.trusted_proxies.clone()),
        admin_guard: admin_guard::AdminGuard::new(admin_guard::MAX_FAILURES, admin_guard::WINDOW)?,
    });
    let layer = EnforceLayer::new(
        policy_handle.clone(),
        Arc::clone(&store),
        Arc::clone(&accounts),
    )
    .shadow(settings.shadow)
    .ietf_headers(settings.ietf_headers)
    .path_action(settings.path_action)
    .observer(observe::MetricsObserver::new(Arc::clone(&metrics)))
    .prefix(routes::API_PREFIX)
    .unmetered(Route::UNMETERED);
    let factory = GatewayFactory {
        shared: Arc::clone(&shared),
        layer,
        upstream: upstream.clone(),
        upstream_timeout: settings.upstream_timeout,
        client_timeout: settings.client_timeout,
        forwarding: proxy::Forwarding {
            hide_credentials: (!settings.forward_credentials).then(KeyHeaders::default),
            trusted: Arc::clone(&shared.trusted),
        },
    };
    // The first worker's gateway, built here so that a bad upstream fails
    // the start; the other workers build theirs on their own threads.
    let first = Arc::new(factory.build()?);

    let _watcher = match &settings.policy {
        Some(path) => Some(reload::spawn(
            path.clone(),
            policy_handle.clone(),
            Arc::clone(&metrics),
        )?),
        None => None,
    };

    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    let local = listener.local_addr()?;
    tracing::info!(
        listen = %local,
        upstream = %upstream,
        policy = %settings.policy.as_ref().map_or("built-in seed".to_owned(), |p| p.display().to_string()),
        store = store.backend(),
        accounts = accounts.backend(),
        shadow = settings.shadow,
        admin_api = settings.admin_token.is_some(),
        trusted_proxies = %settings.trusted_proxies,
        "quota gateway started"
    );
    if let (Some(up), true) = (demo_upstream, settings.demo) {
        let demo_accounts = demo::create_accounts(&shared).await?;
        print!(
            "{}",
            demo::banner(
                local,
                up,
                settings.admin_token.as_deref().unwrap_or(""),
                &demo_accounts
            )
        );
    }
    println!("quota: listening on http://{local}");
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }

    let flusher = spawn_flusher(Arc::clone(&accounts));
    serve(
        listener,
        first,
        &factory,
        settings.workers,
        settings.max_connections,
        settings.shutdown_timeout,
    )
    .await?;
    flusher.abort();
    let acc = Arc::clone(&accounts);
    match tokio::task::spawn_blocking(move || acc.flush()).await {
        Ok(Ok(())) => tracing::info!("accounts flushed"),
        Ok(Err(e)) => tracing::error!(error = %e, "cannot flush the accounts database"),
        Err(e) => tracing::error!(error = %e, "cannot flush the accounts database"),
    }
    drop(shared);
    drop(accounts);
    if let Some(dir) = demo_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    tracing::info!("quota gateway stopped");
    Ok(())
}

async fn open_backends(settings: &Settings) -> anyhow::Result<(GatewayStore, GatewayAccounts)> {
    match &settings.store {
        StoreSetting::Memory => {
            let accounts = accounts::RedbAccounts::open(&settings.data_dir)?;
            tracing::info!(db = %accounts.path().display(), accounts = accounts.count().unwrap_or(0), "accounts database open");
            Ok((
                GatewayStore::Memory(MemoryStore::new()),
                GatewayAccounts::Redb(accounts),
            ))
        }
        StoreSetting::Redis(url) => {
            let mut config =
                quota_redis::RedisConfig::default().with_failure_policy(settings.redis_failure);
            if let Some(prefix) = &settings.redis_prefix {
                config = config.with_prefix(prefix.clone());
            }
            let store = quota_redis::RedisStore::connect(url, config)
                .await
                .map_err(|e| anyhow::anyhow!("--store {}: {e}", redacted(url)))?;
            let health = store.health();
            tracing::info!(
                redis = %redacted(url),
                prefix = store.keys().prefix(),
                failure_policy = %health.failure_policy,
                redis_ok = health.redis_ok,
                "redis store connected"
            );
            let accounts = store.accounts();
            Ok((
                GatewayStore::Redis(store, backend::Probe::default()),
                GatewayAccounts::Redis(accounts, backend::LastKnown::default()),
            ))
        }
    }
}

/// A Redis URL without its password, for logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Makes cheap (non-fsync) account writes durable every second.
fn spawn_flusher(accounts: Arc<GatewayAccounts>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let a = Arc::clone(&accounts);
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || a.flush()).await {
                tracing::error!(error = %e, "cannot flush the accounts database");
            }
        }
    })
}

/// What each worker builds its own [`Gateway`] from.
#[derive(Clone)]
struct GatewayFactory {
    shared: Arc<Shared>,
    layer: EnforceLayer<GatewayStore, GatewayAccounts>,
    upstream: Uri,
    upstream_timeout: Duration,
    client_timeout: Duration,
    forwarding: proxy::Forwarding,
}

impl GatewayFactory {
    /// A gateway with its own upstream connections. Call inside the runtime
    /// that serves it (the upstream pool's reaper is spawned there).
    fn build(&self) -> anyhow::Result<Gateway> {
        let proxy = proxy::Proxy::new(
            &self.upstream,
            self.upstream_timeout,
            self.client_timeout,
            Arc::clone(&self.shared.metrics),
            self.forwarding.clone(),
        )?;
        let app = App::new(proxy.clone(), Arc::clone(&self.shared));
        Ok(Gateway {
            shared: Arc::clone(&self.shared),
            enforced: self.layer.layer(app),
            layer: self.layer.clone(),
            proxy,
            client_timeout: self.client_timeout,
        })
    }
}

/// The connections of one worker: its gateway, the HTTP settings, and the
/// graceful-shutdown watch over what it serves.
struct Connections {
    gateway: Arc<Gateway>,
    http: Arc<Protocols>,
    graceful: GracefulShutdown,
    /// Set when shutting down: connections that have not sent a byte yet close.
    closing: watch::Sender<bool>,
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
    fn new(gateway: Arc<Gateway>) -> Self {
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
        }
    }

    /// Serves one accepted connection on this worker's runtime; `slot` is
    /// given back when the connection closes.
    fn serve(&self, stream: TcpStream, peer: SocketAddr, slot: OwnedSemaphorePermit) {
        // The client timeout for the first request head runs from here
        // (about when the connection was accepted), whatever path serves it.
        let accepted = tokio::time::Instant::now();
        let gw = Arc::clone(&self.gateway);
        // The client's address goes with the connection's copy of the
        // service (no per-request extension to carry it).
        let mut enforced = gw.enforced.clone();
        let client = ClientAddr::new(peer);
        enforced.get_mut().set_client(client.clone());
        let own = Arc::clone(&gw);
        let client_timeout = gw.client_timeout;
        let peer = client.peer;
        let svc = service_fn(move |req| route(Arc::clone(&gw), enforced.clone(), peer, req));
        let http = Arc::clone(&self.http);
        let watcher = self.graceful.watcher();
        let mut closing = self.closing.subscribe();
        tokio::spawn(async move {
            let _slot = slot;
            // HTTP/1.1 is served by hyper's HTTP/1 connection directly;
            // hyper-util's version detection (which wraps the socket for
            // the whole connection) only for what may be HTTP/2.
            let sniffed = tokio::select! {
                s = tokio::time::timeout_at(accepted + client_timeout, sniff(&stream)) => s.ok().flatten(),
                _ = closing.wait_for(|c| *c) => None,
            };
            let ended = match sniffed {
                None => return,
                // Served by the own path until a request it leaves to
                // hyper (the watcher, held meanwhile, keeps the drain waiting).
                Some(Sniffed::Http1) => {
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
                Some(Sniffed::MaybeHttp2) => {
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
fn spawn_worker(index: usize, factory: GatewayFactory, drain: Duration) -> anyhow::Result<Remote> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (handoff, mut rx) = mpsc::unbounded_channel::<Handoff>();
    let (done_tx, done) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("quota-worker-{index}"))
        .spawn(move || {
            let drained = rt.block_on(async move {
                let gateway = match factory.build() {
                    Ok(g) => Arc::new(g),
                    Err(e) => {
                        tracing::error!(worker = index, error = %e, "cannot start a worker");
                        return true;
                    }
                };
                let conns = Connections::new(gateway);
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
        })?;
    Ok(Remote { handoff, done })
}

/// Accepts connections until a shutdown signal, handing them round-robin
/// to `workers` workers (the first one on this runtime), then drains them.
/// At most `max_connections` are open at once: at the limit, new clients
/// wait in the listen queue until one closes.
async fn serve(
    listener: TcpListener,
    first: Arc<Gateway>,
    factory: &GatewayFactory,
    workers: usize,
    max_connections: usize,
    drain: Duration,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut remotes = Vec::with_capacity(workers.saturating_sub(1));
    for index in 1..workers {
        remotes.push(spawn_worker(index, factory.clone(), drain)?);
    }
    let local = Connections::new(first);
    let mut next = 0;
    let mut signal = std::pin::pin!(shutdown_signal());
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

async fn shutdown_signal() {
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

/// The enforced service, as each connection holds it.
type Enforced = Enforce<App, GatewayStore, GatewayAccounts>;

/// The body of every answer: the enforced service's, or the gateway's own
/// routes' (boxed once either way).
type RouteBody = ResponseBody<Body>;

/// Routes one request from the connection's `peer` ([`Route`]: the one
/// table of routes).
async fn route(
    gw: Arc<Gateway>,
    enforced: Enforced,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Result<Response<RouteBody>, Infallible> {
    // The edge's refusals first, as the own path makes them (it sees
    // every HTTP/1.1 connection's first head; these are the rest, and
    // HTTP/2's).
    let target = req.uri().path_and_query().map_or("", |pq| pq.as_str());
    let version = req.version();
    if let Err(refusal) = edge::check(
        req.method().as_str().as_bytes(),
        target.as_bytes(),
        version,
        req.headers(),
    ) {
        gw.shared.metrics.record_edge_refusal(refusal);
        let close = version != Version::HTTP_2;
        return Ok(respond::refusal(refusal, close).map(ResponseBody::inner));
    }
    let route = Route::of(req.uri().path());
    if let Some(allow) = route.methods() {
        if !allow.split(", ").any(|m| m == req.method().as_str()) {
            let res = respond::method_not_allowed("method not allowed", allow);
            return Ok(res.map(ResponseBody::inner));
        }
    }
    let res = match route {
        Route::Health => health(&gw.shared).await,
        Route::Metrics => {
            let s = &gw.shared;
            let body = s
                .metrics
                .render(s.store.backend(), s.store.mode(), s.store.redis_health());
            text(StatusCode::OK, "text/plain; version=0.0.4", body)
        }
        Route::Admin => {
            // The client, as a trusted proxy may name it.
            let forwarded_for = HeaderName::from_static("x-forwarded-for");
            let client = gw
                .shared
                .trusted
                .client(peer, req.headers().values_of(&forwarded_for));
            // Boxed, so that the proxied requests' futures stay small.
            let admin = Box::pin(admin::handle(&gw.shared, req, client));
            admin.await
        }
        Route::Limits | Route::Proxy => return enforced.oneshot(req).await,
    };
    Ok(res.map(ResponseBody::inner))
}

/// `/healthz`: the store as it is now (on Redis, asked at most once a
/// second), the accounts' backend and the policy's size.
async fn health(shared: &Shared) -> Response<Body> {
    shared.store.probe().await;
    let policy = shared.policy.load();
    let mode = shared.store.mode();
    // Unavailable: every decision would be a 503; tell the load balancer.
    let (status, word) = match mode {
        "ok" => (StatusCode::OK, "ok"),
        "fallback" => (StatusCode::OK, "degraded"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let mut store = serde_json::json!({ "backend": shared.store.backend(), "mode": mode });
    if let Some(h) = shared.store.redis_health() {
        store["redis_ok"] = h.redis_ok.into();
        store["failure_policy"] = h.failure_policy.to_string().into();
    }
    json(
        status,
        &serde_json::json!({
            "status": word,
            "store": store,
            "accounts": { "backend": shared.accounts.backend() },
            "policy": { "endpoints": policy.endpoints().len(), "tiers": policy.tiers().len() },
        }),
    )
}
