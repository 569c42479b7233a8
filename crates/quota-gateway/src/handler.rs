//! One worker's handler: the enforced services, the proxies, and the route
//! every request takes ([`route`]: the gateway's own routes, then the
//! routes to upstreams).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use std::borrow::Cow;

use http::header::HeaderName;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use quota_core::path::PathAction;
use quota_transport::enforce::{Enforce, EnforceLayer, ResponseBody};
use quota_transport::fields::HeaderFields as _;
use quota_transport::response::json_message;
use tower::{Layer, ServiceExt};

use crate::access_log::{self, CountedBody, LoggedBody, Pending, Record, Tally, Where};
use crate::admin;
use crate::anonymous;
use crate::app::App;
use crate::backend::{GatewayAccounts, GatewayStore};
use crate::error::Error;
use crate::http1::edge;
use crate::options::{Http1, Serving};
use crate::proxy;
use crate::respond::{self, json, text, Body, ClientAddr};
use crate::route_table::RouteTable;
use crate::routes::Route;
use crate::shared::Shared;

/// What each worker builds its own [`Handler`] from.
#[derive(Clone)]
pub(crate) struct HandlerFactory {
    pub(crate) shared: Arc<Shared>,
    /// `/v1/limits`'s enforcement layer (prefix `/v1/`, `limits` unmetered).
    pub(crate) layer: EnforceLayer<GatewayStore, GatewayAccounts>,
    /// Envoy's rate limit service's layer (prefix `/v1/`, nothing unmetered).
    #[cfg(feature = "grpc")]
    pub(crate) rls: EnforceLayer<GatewayStore, GatewayAccounts>,
    /// The routes to upstreams, and each metered one's layer (its prefix
    /// the route's), in the table's order.
    pub(crate) table: Arc<RouteTable>,
    pub(crate) layers: Arc<[Option<EnforceLayer<GatewayStore, GatewayAccounts>>]>,
    pub(crate) serving: Serving,
    pub(crate) forwarding: proxy::Forwarding,
    /// What is done with paths that are not canonical.
    pub(crate) path_action: PathAction,
}

impl HandlerFactory {
    /// A handler with its own upstream connections (one pool per upstream,
    /// shared by the routes to it). Call inside the runtime that serves it
    /// (the upstream pools' reapers are spawned there).
    pub(crate) fn build(&self) -> Result<Handler, Error> {
        let mut pools: Vec<(&Uri, proxy::Proxy)> = Vec::new();
        let mut routes = Vec::with_capacity(self.table.routes().len());
        for (route, layer) in self.table.routes().iter().zip(self.layers.iter()) {
            let upstream = route.upstream();
            let proxy = match pools.iter().find(|(u, _)| *u == upstream) {
                Some((_, p)) => p.clone(),
                None => {
                    let p = proxy::Proxy::new(
                        upstream,
                        self.serving.upstream_timeout,
                        self.serving.client_timeout,
                        Arc::clone(&self.shared.metrics),
                        self.forwarding.clone(),
                    )?;
                    pools.push((upstream, p.clone()));
                    p
                }
            };
            let proxy = match route.stripped_len() {
                0 => proxy,
                n => proxy.stripping(n),
            };
            let enforced = layer
                .as_ref()
                .map(|l| l.layer(App::new(proxy.clone(), Arc::clone(&self.shared))));
            routes.push(Upstream {
                layer: layer.clone(),
                enforced,
                proxy,
            });
        }
        // `/v1/limits` forwards nothing: any route's proxy will do.
        let any = routes
            .first()
            .map(|r| r.proxy.clone())
            .ok_or(Error::NoUpstream)?;
        let app = App::new(any, Arc::clone(&self.shared));
        Ok(Handler {
            shared: Arc::clone(&self.shared),
            limits: self.layer.layer(app),
            table: Arc::clone(&self.table),
            routes: routes.into_boxed_slice(),
            path_action: self.path_action,
            upstream_timeout: self.serving.upstream_timeout,
            client_timeout: self.serving.client_timeout,
            http1: self.serving.http1,
        })
    }
}

/// One worker's view of the gateway: shared state, the enforced services,
/// and its own upstream connections.
pub(crate) struct Handler {
    pub(crate) shared: Arc<Shared>,
    /// `/v1/limits`, behind its layer.
    pub(crate) limits: Enforced,
    /// The routes to upstreams ([`RouteTable`]), and what serves each.
    pub(crate) table: Arc<RouteTable>,
    pub(crate) routes: Box<[Upstream]>,
    /// What is done with paths that are not canonical.
    pub(crate) path_action: PathAction,
    /// How long an upstream gets to answer.
    pub(crate) upstream_timeout: Duration,
    /// How long a client connection may take to send a request head.
    pub(crate) client_timeout: Duration,
    /// Which code serves HTTP/1.1.
    pub(crate) http1: Http1,
}

/// What serves one route of the table.
pub(crate) struct Upstream {
    /// A metered route's layer (for the own HTTP/1.1 path); `None`:
    /// passthrough.
    pub(crate) layer: Option<EnforceLayer<GatewayStore, GatewayAccounts>>,
    /// A metered route's enforced service; `None`: passthrough.
    pub(crate) enforced: Option<Enforced>,
    /// Its upstream (the prefix stripped, if the route says so).
    pub(crate) proxy: proxy::Proxy,
}

/// Where the route table sends a request that is not the gateway's own.
pub(crate) enum Routed {
    /// To this route (its index), the request's path canonical.
    Route(usize),
    /// To `/v1/limits` (a path that became it once made canonical).
    Limits,
    /// Nowhere: answer this (400, 404), never forwarded.
    Refused(Response<Body>),
}

impl Handler {
    /// Where a request for `path` (as the client sent it, the target's path)
    /// goes, and the canonical path to serve when it is not `path`.
    ///
    /// A path that cannot be made canonical, or that climbs out of the
    /// route it names (`/v1/../admin`), goes to that route when it is
    /// metered (its layer refuses it, observed as every refusal is) and is
    /// 400 otherwise; a canonical path no route takes is 404.
    pub(crate) fn route_of(&self, path: &str) -> (Routed, Option<String>) {
        let named = self.table.find(path);
        let prefix = |i: usize| self.table.routes()[i].prefix();
        let to_layer_or = |i: Option<usize>, problem: String| match i {
            Some(i) if self.routes[i].layer.is_some() => Routed::Route(i),
            _ => Routed::Refused(bad_path(&problem)),
        };
        let canonical = match quota_core::path::canonicalize(path, self.path_action) {
            Err(e) => return (to_layer_or(named, e.to_string()), None),
            Ok(c) => c,
        };
        if let Some(i) = named.filter(|&i| !canonical.starts_with(prefix(i))) {
            let problem = format!("it climbs above {:?}", prefix(i));
            return (to_layer_or(Some(i), problem), None);
        }
        let rewritten = match canonical {
            Cow::Borrowed(_) => None,
            Cow::Owned(c) => Some(c),
        };
        let path = rewritten.as_deref().unwrap_or(path);
        let routed = match (Route::of(path), self.table.find(path)) {
            // Made canonical, the path is the gateway's own.
            (Route::Limits, _) => Routed::Limits,
            (own, _) if own.is_own() => {
                Routed::Refused(bad_path("it resolves to one of the gateway's own routes"))
            }
            (_, Some(i)) => Routed::Route(i),
            (_, None) => Routed::Refused(no_route(path)),
        };
        (routed, rewritten)
    }
}

/// The 400 for a path that cannot be served, in the words of the
/// enforcement layer's.
fn bad_path(problem: &str) -> Response<Body> {
    json_message(
        StatusCode::BAD_REQUEST,
        &format!("invalid request path: {problem}"),
    )
    .map(respond::full)
}

/// The 404 for a path no route takes.
fn no_route(path: &str) -> Response<Body> {
    json_message(
        StatusCode::NOT_FOUND,
        &format!("no route for path {path:?}"),
    )
    .map(respond::full)
}

/// The enforced service, as each connection holds it.
pub(crate) type Enforced = Enforce<App, GatewayStore, GatewayAccounts>;

/// The body of every answer: the enforced service's, or the gateway's own
/// routes' (boxed once either way), counted for the access log when there
/// is one.
pub(crate) type RouteBody = LoggedBody<ResponseBody<Body>>;

/// The body of every request: the client's, counted for the access log
/// when there is one.
type RequestBody = CountedBody<Incoming>;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Routes one request from the connection's `client` ([`Route`]: the
/// gateway's own routes; [`RouteTable`]: the routes to upstreams), and with
/// an access log records it once its answer's body is done.
pub(crate) async fn route(
    gw: Arc<Handler>,
    client: ClientAddr,
    req: Request<Incoming>,
) -> Result<Response<RouteBody>, Infallible> {
    let Some(log) = gw.shared.access_log.as_ref() else {
        let req = req.map(|body| CountedBody::new(body, None));
        let (_, res) = route_one(&gw, client, req).await;
        return Ok(res.map(LoggedBody::plain));
    };
    let peer = client.peer;
    let client_ip = gw
        .shared
        .trusted
        .client(peer, req.headers().values_of(&X_FORWARDED_FOR));
    let record = Record::new(client_ip, Some(req.method().clone()), Where::Edge);
    let tally = Arc::new(Tally::default());
    let req = req.map(|body| CountedBody::new(body, Some(Arc::clone(&tally))));
    let mut pending = Pending::new(log, record, Arc::clone(&tally));
    let (place, res) = access_log::scope(tally, route_one(&gw, client, req)).await;
    let refusal = res.body().is_refusal();
    pending.record().set_route(place);
    pending.answered(res.status().as_u16(), refusal);
    // An answer the gateway made itself carries its request id, if any
    // (the proxy's 502 and 504 told the record already).
    if place != Where::Route(Route::Proxy) || refusal {
        pending.id_from(res.headers());
    }
    Ok(res.map(|body| LoggedBody::logged(body, pending)))
}

/// Routes one request: where it went, and the answer.
async fn route_one(
    gw: &Handler,
    client: ClientAddr,
    mut req: Request<RequestBody>,
) -> (Where, Response<ResponseBody<Body>>) {
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
        let res = respond::refusal(refusal, close).map(ResponseBody::inner);
        return (Where::Edge, res);
    }
    let route = Route::of(req.uri().path());
    let place = Where::Route(route);
    if let Some(allow) = route.methods() {
        if !allow.split(", ").any(|m| m == req.method().as_str()) {
            let res = respond::method_not_allowed("method not allowed", allow);
            return (place, res.map(ResponseBody::inner));
        }
    }
    let res = match route {
        Route::Health => health(&gw.shared).await,
        Route::Metrics => {
            let s = &gw.shared;
            let body = s
                .metrics
                .render(s.store.backend(), s.store.mode(), s.store.redis_health());
            text(StatusCode::OK, crate::metrics::CONTENT_TYPE, body)
        }
        Route::Ui => {
            let ip = gw
                .shared
                .trusted
                .client(client.peer, req.headers().values_of(&X_FORWARDED_FOR));
            let ui = Box::pin(crate::ui::handle(&gw.shared, req, ip, client.https));
            ui.await
        }
        Route::Admin => {
            // The client, as a trusted proxy may name it.
            let client = gw
                .shared
                .trusted
                .client(client.peer, req.headers().values_of(&X_FORWARDED_FOR));
            // Boxed, so that the proxied requests' futures stay small.
            let admin = Box::pin(admin::handle(&gw.shared, req, client));
            admin.await
        }
        Route::Limits => return (place, enforce(gw, gw.limits.clone(), client, req).await),
        Route::Proxy => {
            let (routed, canonical) = gw.route_of(req.uri().path());
            if let Some(path) = canonical {
                match with_path(req.uri(), &path) {
                    Some(uri) => *req.uri_mut() = uri,
                    None => {
                        return (
                            place,
                            bad_path("it cannot be forwarded").map(ResponseBody::inner),
                        )
                    }
                }
            }
            match routed {
                Routed::Limits => {
                    let place = Where::Route(Route::Limits);
                    return (place, enforce(gw, gw.limits.clone(), client, req).await);
                }
                Routed::Refused(res) => res,
                Routed::Route(i) => {
                    let upstream = &gw.routes[i];
                    match &upstream.enforced {
                        Some(enforced) => {
                            let res = enforce(gw, enforced.clone(), client, req).await;
                            return (place, res);
                        }
                        // Passthrough: no key, nothing counted.
                        None => upstream.proxy.forward(req, Some(&client), None).await,
                    }
                }
            }
        }
    };
    (place, res.map(ResponseBody::inner))
}

/// Serves `req` from `client` through a metered route's `enforced` service
/// (or `/v1/limits`'s). A request without a key carries the client's
/// address, for the policy's anonymous tier ([`crate::anonymous`]).
async fn enforce(
    gw: &Handler,
    mut enforced: Enforced,
    client: ClientAddr,
    mut req: Request<RequestBody>,
) -> Response<ResponseBody<Body>> {
    if anonymous::has_no_key(req.headers()) {
        let ip = gw
            .shared
            .trusted
            .client(client.peer, req.headers().values_of(&X_FORWARDED_FOR));
        req.extensions_mut().insert(anonymous::Client(ip));
    }
    enforced.get_mut().set_client(client);
    match enforced.oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

/// `uri` with its path replaced by `path` (the query kept); `None` when
/// that is no URI.
fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq).ok()?);
    Uri::from_parts(parts).ok()
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
        store["redis_cluster"] = h.cluster.into();
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
