//! One worker's handler: the enforced service, the proxy, and the route
//! every request takes ([`route`]: the one table of routes).

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use quota_transport::enforce::{Enforce, EnforceLayer, ResponseBody};
use quota_transport::fields::HeaderFields as _;
use tower::{Layer, ServiceExt};

use crate::access_log::{self, CountedBody, LoggedBody, Pending, Record, Tally, Where};
use crate::admin;
use crate::app::App;
use crate::backend::{GatewayAccounts, GatewayStore};
use crate::error::Error;
use crate::http1::edge;
use crate::options::{Http1, Serving};
use crate::proxy;
use crate::respond::{self, json, text, Body};
use crate::routes::Route;
use crate::shared::Shared;

/// What each worker builds its own [`Handler`] from.
#[derive(Clone)]
pub(crate) struct HandlerFactory {
    pub(crate) shared: Arc<Shared>,
    pub(crate) layer: EnforceLayer<GatewayStore, GatewayAccounts>,
    pub(crate) upstream: Uri,
    pub(crate) serving: Serving,
    pub(crate) forwarding: proxy::Forwarding,
}

impl HandlerFactory {
    /// A handler with its own upstream connections. Call inside the runtime
    /// that serves it (the upstream pool's reaper is spawned there).
    pub(crate) fn build(&self) -> Result<Handler, Error> {
        let proxy = proxy::Proxy::new(
            &self.upstream,
            self.serving.upstream_timeout,
            self.serving.client_timeout,
            Arc::clone(&self.shared.metrics),
            self.forwarding.clone(),
        )?;
        let app = App::new(proxy.clone(), Arc::clone(&self.shared));
        Ok(Handler {
            shared: Arc::clone(&self.shared),
            enforced: self.layer.layer(app),
            layer: self.layer.clone(),
            proxy,
            client_timeout: self.serving.client_timeout,
            http1: self.serving.http1,
        })
    }
}

/// One worker's view of the gateway: shared state, the enforced service,
/// and its own upstream connections.
pub(crate) struct Handler {
    pub(crate) shared: Arc<Shared>,
    pub(crate) enforced: Enforced,
    /// The enforcement layer and the proxy, for the own HTTP/1.1 path.
    pub(crate) layer: EnforceLayer<GatewayStore, GatewayAccounts>,
    pub(crate) proxy: proxy::Proxy,
    /// How long a client connection may take to send a request head.
    pub(crate) client_timeout: Duration,
    /// Which code serves HTTP/1.1.
    pub(crate) http1: Http1,
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

/// Routes one request from the connection's `peer` ([`Route`]: the one
/// table of routes), and with an access log records it once its answer's
/// body is done.
pub(crate) async fn route(
    gw: Arc<Handler>,
    enforced: Enforced,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Result<Response<RouteBody>, Infallible> {
    let Some(log) = gw.shared.access_log.as_ref() else {
        let req = req.map(|body| CountedBody::new(body, None));
        let (_, res) = route_one(&gw, enforced, peer, req).await;
        return Ok(res.map(LoggedBody::plain));
    };
    let client = gw
        .shared
        .trusted
        .client(peer, req.headers().values_of(&X_FORWARDED_FOR));
    let record = Record::new(client, Some(req.method().clone()), Where::Edge);
    let tally = Arc::new(Tally::default());
    let req = req.map(|body| CountedBody::new(body, Some(Arc::clone(&tally))));
    let mut pending = Pending::new(log, record, Arc::clone(&tally));
    let (place, res) = access_log::scope(tally, route_one(&gw, enforced, peer, req)).await;
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
    enforced: Enforced,
    peer: IpAddr,
    req: Request<RequestBody>,
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
        Route::Admin => {
            // The client, as a trusted proxy may name it.
            let client = gw
                .shared
                .trusted
                .client(peer, req.headers().values_of(&X_FORWARDED_FOR));
            // Boxed, so that the proxied requests' futures stay small.
            let admin = Box::pin(admin::handle(&gw.shared, req, client));
            admin.await
        }
        Route::Limits | Route::Proxy => {
            let res = match enforced.oneshot(req).await {
                Ok(res) => res,
                Err(never) => match never {},
            };
            return (place, res);
        }
    };
    (place, res.map(ResponseBody::inner))
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
