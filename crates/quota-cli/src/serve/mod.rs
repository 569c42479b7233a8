//! `quota serve`: the gateway.
//!
//! One listener; each request goes to the first route that matches:
//!
//! 1. `GET /healthz`: liveness and the store's state;
//! 2. `GET /metrics`: Prometheus text;
//! 3. `/admin/...`: the admin API ([`admin`]), behind the admin token;
//! 4. everything else: the enforcement layer of `quota-transport` (identity,
//!    endpoint, upload precheck, credit, rate limits), then either
//!    `/v1/limits` (unmetered; [`limits`]) or the reverse proxy ([`proxy`]).
//!
//! Shutdown on SIGINT or SIGTERM stops accepting, lets requests in flight
//! finish (up to `--shutdown-timeout`), then makes the accounts database
//! durable.

mod account_index;
pub(crate) mod accounts;
pub(crate) mod admin;
mod app;
mod backend;
mod demo;
pub(crate) mod limits;
pub(crate) mod metrics;
mod observe;
pub(crate) mod proxy;
mod reload;
pub(crate) mod respond;
mod upstream;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use quota_core::{MemoryStore, Timestamp};
use quota_transport::enforce::{Enforce, EnforceLayer, PolicyHandle};
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};

use crate::config::{Settings, StoreSetting};
use crate::policy_file;
use app::App;
use backend::{GatewayAccounts, GatewayStore};
use metrics::Metrics;
use respond::{json, text, Body, ClientAddr};

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
}

/// The whole gateway: shared state and the enforced service.
struct Gateway {
    shared: Arc<Shared>,
    enforced: Enforce<App, GatewayStore, GatewayAccounts>,
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
    });
    let proxy = proxy::Proxy::new(&upstream, settings.upstream_timeout, Arc::clone(&metrics))?;
    let app = App::new(proxy, Arc::clone(&shared));
    let layer = EnforceLayer::new(
        policy_handle.clone(),
        Arc::clone(&store),
        Arc::clone(&accounts),
    )
    .shadow(settings.shadow)
    .ietf_headers(settings.ietf_headers)
    .observer(observe::MetricsObserver::new(Arc::clone(&metrics)))
    .unmetered(["limits"]);
    let gateway = Arc::new(Gateway {
        shared: Arc::clone(&shared),
        enforced: layer.layer(app),
    });

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
    serve(listener, gateway, settings.shutdown_timeout).await;
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
                GatewayStore::Redis(store),
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

/// Accepts connections until a shutdown signal, then drains them.
async fn serve(listener: TcpListener, gateway: Arc<Gateway>, drain: Duration) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut signal = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let gw = Arc::clone(&gateway);
                let client = ClientAddr::new(peer);
                let svc = service_fn(move |req| route(Arc::clone(&gw), req, client.clone()));
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                let watched = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = watched.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut signal => break,
        }
    }
    drop(listener);
    tracing::info!(
        in_flight_connections = graceful.count(),
        "shutting down: no new connections, draining"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(drain) => tracing::warn!(timeout_s = drain.as_secs_f64(), "shutdown timeout: closing connections still open"),
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

/// Routes one request.
async fn route(
    gw: Arc<Gateway>,
    mut req: Request<Incoming>,
    client: ClientAddr,
) -> Result<Response<Body>, Infallible> {
    req.extensions_mut().insert(client);
    let path = req.uri().path();
    let res = if path == "/healthz" && req.method() == Method::GET {
        health(&gw.shared)
    } else if path == "/metrics" && req.method() == Method::GET {
        let s = &gw.shared;
        let body = s
            .metrics
            .render(s.store.backend(), s.store.mode(), s.store.redis_health());
        text(StatusCode::OK, "text/plain; version=0.0.4", body)
    } else if path == "/admin" || path.starts_with("/admin/") {
        admin::handle(&gw.shared, req).await
    } else {
        let res = gw.enforced.clone().oneshot(req).await?;
        res.map(BodyExt::boxed_unsync)
    };
    Ok(res)
}

fn health(shared: &Shared) -> Response<Body> {
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
