//! The service behind the enforcement layer: `/v1/limits` or the proxy.
//!
//! The layer has already resolved the caller ([`Identity`] in the request's
//! extensions). The proxy tells the upstream who the caller is with
//! `X-Quota-Account` and `X-Quota-Tier` (any such headers the client sent are
//! replaced, so they can be trusted).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use quota_core::account::{AccountAdmin, Identity};
use quota_transport::response::RequestId;

use crate::limits;
use crate::proxy::Proxy;
use crate::respond::{json, message, server_error, Body, BoxError, ClientAddr};
use crate::routes::Route;
use crate::shared::{now, Shared};
use quota_transport::response::TEMPORARILY_UNAVAILABLE;

/// The inner service. Cheap to clone.
#[derive(Clone)]
pub(crate) struct App {
    proxy: Proxy,
    shared: Arc<Shared>,
    /// The peer of the connection this copy serves (for `X-Forwarded-For`).
    client: Option<ClientAddr>,
}

impl App {
    /// The service over `proxy`.
    pub(crate) fn new(proxy: Proxy, shared: Arc<Shared>) -> Self {
        App {
            proxy,
            shared,
            client: None,
        }
    }

    /// The peer of the connection this copy serves.
    pub(crate) fn set_client(&mut self, client: ClientAddr) {
        self.client = Some(client);
    }

    async fn handle<B>(self, mut req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let who = req.extensions_mut().remove::<Identity>();
        if Route::of(req.uri().path()) == Route::Limits {
            return match who {
                Some(who) => {
                    // Boxed, so that the proxied requests' futures stay small.
                    let only = limits::asked_endpoint(req.uri().query());
                    let limits = Box::pin(self.limits(&who, only.as_deref()));
                    limits.await
                }
                None => message(StatusCode::UNAUTHORIZED, "missing API key"),
            };
        }
        // The caller, named to the upstream (any such headers the client
        // sent are dropped).
        let caller = who.as_ref().map(|w| (w.account.as_str(), w.tier.as_str()));
        // The upstream's time, for the access log.
        let sent = self
            .shared
            .access_log
            .is_some()
            .then(std::time::Instant::now);
        let res = self.proxy.forward(req, self.client.as_ref(), caller).await;
        if let Some(sent) = sent {
            crate::access_log::upstream_took(sent.elapsed());
        }
        res
    }

    async fn limits(&self, who: &Identity, only: Option<&str>) -> Response<Body> {
        let s = &self.shared;
        let account = s.accounts.get(&who.account).await.ok().flatten();
        let policy = s.policy.load();
        match limits::report_of(&policy, &*s.store, who, account.as_ref(), now(), only).await {
            Ok(Ok(report)) => json(StatusCode::OK, &report),
            Ok(Err(unknown)) => message(StatusCode::NOT_FOUND, unknown.to_string()),
            Err(e) => {
                s.metrics.record_store_error();
                let id = RequestId::new();
                tracing::error!(request_id = %id, error = %e, "cannot read the limits");
                server_error(StatusCode::SERVICE_UNAVAILABLE, TEMPORARILY_UNAVAILABLE, id)
            }
        }
    }
}

impl<B> tower::Service<Request<B>> for App
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}
