//! The gateway as a value: what it is built from ([`GatewayBuilder`]) and
//! what it does once built ([`Gateway::serve`]).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use quota_core::account::MemoryAccounts;
use quota_core::admission::RefundOn;
use quota_core::path::PathAction;
use quota_core::policy::Policy;
use quota_core::MemoryStore;
use quota_transport::enforce::{EnforceLayer, PolicyHandle};
use quota_transport::identity::KeyHeaders;
use tokio::net::TcpListener;

use crate::access_log::AccessLog;
use crate::activity::Activity;
use crate::admin::guard::{self, AdminGuard};
use crate::admin::tokens::AdminTokens;
use crate::anonymous::Anonymous;
use crate::backend::{GatewayAccounts, GatewayStore};
use crate::error::Error;
use crate::forwarded::TrustedProxies;
use crate::handler::HandlerFactory;
use crate::metrics::Metrics;
use crate::options::{Http1, Serving};
use crate::route_table::{Route, RouteTable};
use crate::routes;
use crate::shared::Shared;
use crate::tls::TlsConfig;
use crate::{observe, proxy, server};

/// Builds a [`Gateway`]: the policy, then what differs from the defaults.
///
/// Defaults: the in-memory store and accounts, no admin API, enforcing (not
/// shadow), canonical paths only ([`PathAction::Refuse`]), credentials not
/// forwarded, no trusted proxies, a 30 s upstream timeout, a 60 s client
/// timeout, 30 s to drain on shutdown, 10,000 connections, one worker per
/// CPU, the own HTTP/1.1 path, plain TCP (no TLS), refunds when the upstream
/// cannot be reached or times out ([`RefundOn::Unreachable`]).
#[must_use = "a builder does nothing until built"]
pub struct GatewayBuilder {
    policy: Policy,
    store: GatewayStore,
    accounts: GatewayAccounts,
    upstream: Option<Uri>,
    routes: Vec<Route>,
    admin_tokens: Vec<String>,
    shadow: bool,
    refund_on: RefundOn,
    ietf_headers: bool,
    path_action: PathAction,
    forward_credentials: bool,
    trusted_proxies: TrustedProxies,
    upstream_ca: Option<PathBuf>,
    serving: Serving,
    access_log: Option<AccessLog>,
}

impl GatewayBuilder {
    /// Where limit counters live: a [`MemoryStore`] (the default) or a
    /// Redis store (`quota_redis::RedisStore`, shared by a fleet).
    pub fn store(mut self, store: impl Into<GatewayStore>) -> Self {
        self.store = store.into();
        self
    }

    /// Where accounts live: [`MemoryAccounts`] (the default), the Redis
    /// store's accounts, or (feature `redb`) a database on disk.
    pub fn accounts(mut self, accounts: impl Into<GatewayAccounts>) -> Self {
        self.accounts = accounts.into();
        self
    }

    /// The API the gateway forwards admitted requests to:
    /// `http://host[:port][/base]`, or `https://host[:port][/base]` (its
    /// certificate verified, for its host; see [`upstream_ca`](Self::upstream_ca)).
    /// It is the one route, metered, `/v1/`, unless [`route`](Self::route)
    /// gives the routes.
    pub fn upstream(mut self, upstream: Uri) -> Self {
        self.upstream = Some(upstream);
        self
    }

    /// Adds a route to an upstream (see [`crate::route_table`]): the
    /// longest prefix that starts a request's canonical path takes it, and
    /// a path no route takes is 404. With routes, [`upstream`](Self::upstream)
    /// is not used (giving both is an error).
    ///
    /// ```
    /// use quota_core::policy::Policy;
    /// use quota_gateway::{Gateway, Route};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let gateway = Gateway::builder(Policy::seed())
    ///     .route(Route::metered("/v1/", "http://127.0.0.1:9000".parse()?))
    ///     .route(Route::passthrough("/static/", "http://127.0.0.1:9001".parse()?).strip(true))
    ///     .build()?;
    /// assert_eq!(gateway.routes().len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Also trusts the CA certificates of this PEM file for an `https://`
    /// upstream (a private CA), besides the Web PKI's roots
    /// (`webpki-roots`), which are always trusted.
    pub fn upstream_ca(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.upstream_ca = Some(pem_file.into());
        self
    }

    /// Turns the admin API (`/admin/...`) on, behind this bearer token:
    /// `NAME=SECRET` (the name is what the audit lines call whoever uses it)
    /// or a plain `SECRET`, named `admin`. May be called again to add
    /// tokens; see the `admin::tokens` module for how a name is read.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_tokens.push(token.into());
        self
    }

    /// Shadow mode: decide and report, never refuse.
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// When an admitted request's units and credit are given back: when the
    /// gateway itself answers 502 or 504 because the upstream could not be
    /// reached or timed out ([`RefundOn::Unreachable`], the default), also
    /// when the upstream answers a 5xx ([`RefundOn::ServerErrors`]), or
    /// never ([`RefundOn::Never`]). A refunded answer carries no rate-limit
    /// headers; `docs/gateway.md` ("Refunds") has the rules.
    pub fn refund_on(mut self, on: RefundOn) -> Self {
        self.refund_on = on;
        self
    }

    /// Also send the IETF `RateLimit-Policy` / `RateLimit` fields.
    pub fn ietf_headers(mut self, on: bool) -> Self {
        self.ietf_headers = on;
        self
    }

    /// What to do with request paths that are not canonical.
    pub fn path_action(mut self, action: PathAction) -> Self {
        self.path_action = action;
        self
    }

    /// Forward the API key headers to the upstream (removed by default).
    pub fn forward_credentials(mut self, on: bool) -> Self {
        self.forward_credentials = on;
        self
    }

    /// The proxies whose `X-Forwarded-For` names the client.
    pub fn trusted_proxies(mut self, trusted: TrustedProxies) -> Self {
        self.trusted_proxies = trusted;
        self
    }

    /// How long the upstream gets to answer, from when the request was sent.
    pub fn upstream_timeout(mut self, timeout: Duration) -> Self {
        self.serving.upstream_timeout = timeout;
        self
    }

    /// How long a client gets to send a request head (and a body's next bytes).
    pub fn client_timeout(mut self, timeout: Duration) -> Self {
        self.serving.client_timeout = timeout;
        self
    }

    /// How long requests in flight get to finish on shutdown.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.serving.shutdown_timeout = timeout;
        self
    }

    /// Client connections open at once (at least 1); more wait in the
    /// listen queue.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.serving.max_connections = n.max(1);
        self
    }

    /// Threads serving connections (at least 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.serving.workers = n.max(1);
        self
    }

    /// Which code serves HTTP/1.1.
    pub fn http1(mut self, http1: Http1) -> Self {
        self.serving.http1 = http1;
        self
    }

    /// Terminates TLS on the client side with this certificate (HTTP/2 or
    /// HTTP/1.1 chosen by ALPN). Keep a clone of `tls` to
    /// [reload](TlsConfig::reload) it while the gateway serves.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.serving.tls = Some(tls);
        self
    }

    /// Writes one JSON line per request to `log` (see [`crate::access_log`]);
    /// none by default. Its writer is flushed and stopped when
    /// [`Gateway::serve`] returns.
    pub fn access_log(mut self, log: AccessLog) -> Self {
        self.access_log = Some(log);
        self
    }

    /// Checks the settings and builds the gateway.
    ///
    /// # Errors
    /// [`Error::NoUpstream`] without an upstream or a route,
    /// [`Error::Upstream`] when one is not a URL the gateway can forward to
    /// (or an upstream CA is given without an `https://` one, or both an
    /// upstream and routes are), [`Error::Route`] for a route that cannot
    /// be served, [`Error::Tls`] when the upstream CA file cannot be used.
    pub fn build(self) -> Result<Gateway, Error> {
        let routes = match (self.upstream, self.routes.is_empty()) {
            (Some(upstream), true) => vec![Route::metered(routes::API_PREFIX, upstream)],
            (None, true) => return Err(Error::NoUpstream),
            (None, false) => self.routes,
            (Some(upstream), false) => {
                return Err(Error::Upstream {
                    url: upstream.to_string(),
                    reason:
                        "the routes name their upstreams: give routes or one upstream, not both"
                            .to_owned(),
                })
            }
        };
        let table = RouteTable::new(routes)?;
        let mut upstream_tls = None;
        for route in table.routes() {
            let upstream = route.upstream();
            let (authority, _) = proxy::Proxy::check_upstream(upstream)?;
            if upstream.scheme_str() == Some("https") {
                proxy::Proxy::server_name(upstream, &authority)?;
                if upstream_tls.is_none() {
                    upstream_tls = Some(crate::tls::upstream_client(self.upstream_ca.as_deref())?);
                }
            }
        }
        if let (None, Some(_)) = (&upstream_tls, &self.upstream_ca) {
            return Err(Error::Upstream {
                url: table.routes()[0].upstream().to_string(),
                reason: "an upstream CA is for an https:// upstream".to_owned(),
            });
        }
        let policy = PolicyHandle::new(self.policy);
        let mut metrics = Metrics::new(policy.clone());
        if let Some(log) = &self.access_log {
            metrics.register_access_log(log.dropped_counter());
        }
        let metrics = Arc::new(metrics);
        let store = Arc::new(self.store);
        let accounts = Arc::new(self.accounts);
        let activity = Arc::new(Activity::new(crate::shared::now()));
        let shared = Arc::new(Shared {
            policy: policy.clone(),
            store: Arc::clone(&store),
            accounts: Arc::clone(&accounts),
            metrics: Arc::clone(&metrics),
            admin_tokens: (!self.admin_tokens.is_empty())
                .then(|| AdminTokens::new(self.admin_tokens.iter().map(String::as_str))),
            trusted: Arc::new(self.trusted_proxies),
            admin_guard: AdminGuard::new(guard::MAX_FAILURES, guard::WINDOW)
                .map_err(|e| Error::Setup(e.to_string()))?,
            access_log: self.access_log,
            activity: Arc::clone(&activity),
            ui_sessions: crate::ui::session::Sessions::default(),
        });
        let base = EnforceLayer::new(policy.clone(), store, accounts)
            .shadow(self.shadow)
            .refund_on(self.refund_on)
            .ietf_headers(self.ietf_headers)
            .path_action(self.path_action)
            .observer(observe::MetricsObserver::new(
                metrics,
                shared.access_log.is_some(),
                activity,
                policy.clone(),
            ))
            .anonymous(Anonymous { policy });
        // Each metered route's layer has its prefix; `/v1/limits`'s is
        // `/v1/`, its one endpoint unmetered.
        let layers: Arc<[_]> = table
            .routes()
            .iter()
            .map(|r| r.is_metered().then(|| base.clone().prefix(r.prefix())))
            .collect();
        #[cfg(feature = "grpc")]
        let rls = base.clone().prefix(routes::API_PREFIX);
        let layer = base
            .prefix(routes::API_PREFIX)
            .unmetered(routes::Route::UNMETERED);
        let forwarding = proxy::Forwarding {
            hide_credentials: (!self.forward_credentials).then(KeyHeaders::default),
            trusted: Arc::clone(&shared.trusted),
            upstream_tls,
        };
        Ok(Gateway {
            factory: HandlerFactory {
                shared,
                layer,
                #[cfg(feature = "grpc")]
                rls,
                table: Arc::new(table),
                layers,
                serving: self.serving.clone(),
                forwarding,
                path_action: self.path_action,
            },
        })
    }
}

/// The gateway: the routes, the enforcement layer and the proxy, ready to
/// serve a listener.
///
/// ```no_run
/// use quota_core::policy::Policy;
/// use quota_gateway::Gateway;
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let gateway = Gateway::builder(Policy::seed())
///         .upstream("http://127.0.0.1:9000".parse()?)
///         .build()?;
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
///     gateway.serve(listener, quota_gateway::shutdown_signal()).await?;
///     Ok(())
/// }
/// ```
pub struct Gateway {
    factory: HandlerFactory,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.factory.table.routes())
            .field("store", &self.factory.shared.store.backend())
            .field("accounts", &self.factory.shared.accounts.backend())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A builder for a gateway enforcing `policy`.
    pub fn builder(policy: Policy) -> GatewayBuilder {
        GatewayBuilder {
            policy,
            store: GatewayStore::Memory(MemoryStore::new()),
            accounts: MemoryAccounts::new().into(),
            upstream: None,
            routes: Vec::new(),
            admin_tokens: Vec::new(),
            shadow: false,
            refund_on: RefundOn::default(),
            ietf_headers: false,
            path_action: PathAction::Refuse,
            forward_credentials: false,
            trusted_proxies: TrustedProxies::default(),
            upstream_ca: None,
            access_log: None,
            serving: Serving {
                upstream_timeout: Duration::from_secs(30),
                client_timeout: Duration::from_secs(60),
                shutdown_timeout: Duration::from_secs(30),
                max_connections: 10_000,
                workers: std::thread::available_parallelism().map_or(1, usize::from),
                http1: Http1::Own,
                tls: None,
            },
        }
    }

    /// Where the policy in force can be replaced while the gateway serves
    /// (a reload counted in `/metrics`).
    pub fn reloader(&self) -> PolicyReloader {
        PolicyReloader {
            handle: self.factory.shared.policy.clone(),
            metrics: Arc::clone(&self.factory.shared.metrics),
            activity: Arc::clone(&self.factory.shared.activity),
        }
    }

    /// The gateway's accounts (to create some before serving, say).
    pub fn accounts(&self) -> &Arc<GatewayAccounts> {
        &self.factory.shared.accounts
    }

    /// The gateway's limit store.
    pub fn store(&self) -> &Arc<GatewayStore> {
        &self.factory.shared.store
    }

    /// The upstream of the first route (the builder's
    /// [`upstream`](GatewayBuilder::upstream) without routes).
    pub fn upstream(&self) -> &Uri {
        self.factory.table.routes()[0].upstream()
    }

    /// The routes to upstreams, in the order given (the builder's
    /// [`upstream`](GatewayBuilder::upstream) without routes: one metered
    /// `/v1/` route).
    pub fn routes(&self) -> &[Route] {
        self.factory.table.routes()
    }

    /// The certificate the gateway terminates TLS with, if it does
    /// (reload it with [`TlsConfig::reload`]).
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.factory.serving.tls.as_ref()
    }

    /// Envoy's rate limit service for `domain`, deciding with this
    /// gateway's policy, store, accounts and metrics (feature `grpc`):
    /// serve it beside [`serve`](Self::serve), or alone.
    #[cfg(feature = "grpc")]
    pub fn rls(&self, domain: &str) -> crate::rls::RlsService {
        crate::rls::RlsService::new(
            self.factory.rls.clone(),
            self.factory.shared.policy.clone(),
            domain,
        )
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.factory.shared
    }

    /// Serves `listener` until `shutdown` completes, then stops accepting,
    /// lets requests in flight finish (up to the shutdown timeout), makes
    /// the accounts durable and flushes the access log. Call it inside a tokio runtime: the first
    /// worker runs on it, the others on threads of their own.
    ///
    /// # Errors
    /// [`Error::Setup`] when a worker thread cannot start.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let accounts = Arc::clone(&self.factory.shared.accounts);
        let flusher = spawn_flusher(Arc::clone(&accounts));
        let served = server::serve(listener, &self.factory, shutdown).await;
        flusher.abort();
        if let Some(log) = &self.factory.shared.access_log {
            log.close().await;
        }
        match tokio::task::spawn_blocking(move || accounts.flush()).await {
            Ok(Ok(())) => tracing::info!("accounts flushed"),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot flush the accounts database"),
            Err(e) => tracing::error!(error = %e, "cannot flush the accounts database"),
        }
        served
    }
}

/// Replaces the policy of a running [`Gateway`].
#[derive(Clone)]
pub struct PolicyReloader {
    handle: PolicyHandle,
    metrics: Arc<Metrics>,
    activity: Arc<Activity>,
}

impl std::fmt::Debug for PolicyReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyReloader").finish_non_exhaustive()
    }
}

impl PolicyReloader {
    /// Puts `policy` in force for every request that starts from now on.
    /// Counts are kept for every limit whose definition did not change
    /// (stores key them by the limit's fingerprint).
    pub fn reload(&self, policy: Policy) {
        self.handle.replace(policy);
        self.metrics.record_reload(true);
        self.activity.record_reload(crate::shared::now());
    }

    /// Counts a reload that was refused (a bad file): the policy stays.
    pub fn refused(&self) {
        self.metrics.record_reload(false);
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<Policy> {
        self.handle.load()
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
