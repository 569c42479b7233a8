//! Envoy's rate limit service (RLS v3) over gRPC:
//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`, for a
//! fleet that already runs Envoy and points its `rate_limit_service` here.
//!
//! It decides with the gateway's own enforcement layer: the same policy
//! (reloaded with it), store, accounts, order of checks, answers and
//! metrics as the HTTP gateway. An account's budget is one budget whether
//! its requests come through Envoy or through the gateway's own proxy.
//!
//! ```no_run
//! use quota_core::policy::Policy;
//! use quota_gateway::Gateway;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let gateway = Gateway::builder(Policy::seed())
//!         .upstream("http://127.0.0.1:9000".parse()?)
//!         .build()?;
//!     let rls = gateway.rls("quota");
//!     let grpc = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//!     let http = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     let (stop, stopped) = tokio::sync::watch::channel(());
//!     let mut stopped2 = stopped.clone();
//!     let grpc = tokio::spawn(rls.serve(grpc, async move { let _ = stopped2.changed().await; }));
//!     quota_gateway::shutdown_signal().await;
//!     drop(stop);
//!     grpc.await??;
//!     # drop((gateway, http, stopped));
//!     Ok(())
//! }
//! ```
//!
//! # From descriptors to the policy
//! - `domain` must be the one the service was made with
//!   ([`Gateway::rls`](crate::Gateway::rls)); another is
//!   `INVALID_ARGUMENT`.
//! - Each descriptor (its entries: `api_key`, or
//!   `account` with `tier`; `endpoint` or `path`) is one check, costing its
//!   `hits_addend` (or the request's; 0 means 1). The descriptors of one
//!   request are decided all or nothing: in turn, and when one is refused,
//!   what the ones before it took is given back
//!   ([`EnforceLayer::withdraw`](quota_transport::enforce::EnforceLayer::withdraw));
//!   the refusal consumes nothing.
//! - A descriptor that cannot be read (an entry quota does not know, no
//!   caller, two endpoints, a `limit` override, negative hits) or a tier the
//!   policy does not have is `INVALID_ARGUMENT` with the reason: Envoy's
//!   configuration is wrong, and Envoy's `failure_mode_deny` decides what
//!   the client sees.
//! - Everything the gateway refuses (an unknown key, an unknown endpoint,
//!   no credit, a path climbing above the prefix, the limits, a store that
//!   cannot answer under `--redis-failure fail-closed`) is `OVER_LIMIT` with
//!   the gateway's exact answer: a refusal consumes
//!   nothing, as everywhere else.

mod answer;
mod descriptor;

use std::future::Future;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use quota_transport::enforce::{Admitted, CallerCheck, EnforceLayer, PolicyHandle};
use smallvec::SmallVec;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::backend::{GatewayAccounts, GatewayStore};
use crate::error::Error;
use crate::routes;

pub use answer::QUOTA_STATUS_HEADER;
pub use descriptor::MAX_DESCRIPTORS;
use descriptor::{Ask, DescriptorError, Extras, Who};

/// Envoy's rate limit service, deciding with a gateway's policy, store and
/// accounts. Made by [`Gateway::rls`](crate::Gateway::rls); cheap to clone.
#[derive(Clone)]
pub struct RlsService {
    layer: EnforceLayer<GatewayStore, GatewayAccounts>,
    policy: PolicyHandle,
    domain: std::sync::Arc<str>,
}

impl std::fmt::Debug for RlsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RlsService")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl RlsService {
    pub(crate) fn new(
        layer: EnforceLayer<GatewayStore, GatewayAccounts>,
        policy: PolicyHandle,
        domain: &str,
    ) -> Self {
        RlsService {
            layer,
            policy,
            domain: domain.into(),
        }
    }

    /// The domain requests must name.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Decides one `ShouldRateLimit` request (what the gRPC method runs).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a request Envoy should not have sent: another
    /// domain, no descriptor (or more than [`MAX_DESCRIPTORS`]), a
    /// descriptor quota cannot read, a tier the policy does not have.
    pub async fn decide(&self, req: &RateLimitRequest) -> Result<RateLimitResponse, tonic::Status> {
        if req.domain != *self.domain {
            return Err(invalid(&format!(
                "domain {:?}: this service decides domain {:?}",
                req.domain, self.domain
            )));
        }
        if req.descriptors.is_empty() {
            return Err(invalid(&DescriptorError::NoDescriptor.to_string()));
        }
        if req.descriptors.len() > MAX_DESCRIPTORS {
            let e = DescriptorError::TooManyDescriptors(req.descriptors.len());
            return Err(invalid(&e.to_string()));
        }
        let asks = self.read(req)?;
        // All or nothing: each descriptor is decided in turn; when one is
        // refused, what the ones before it took is given back.
        let total = asks.len();
        let mut admitted: SmallVec<[Admitted; 1]> = SmallVec::new();
        for (at, ask) in asks.iter().enumerate() {
            let check = match ask.caller {
                Who::ApiKey(key) => self.layer.check_api_key(&ask.path, key, ask.cost).await,
                who => {
                    self.layer
                        .check_caller(&ask.path, who.to_caller(), ask.cost)
                        .await
                }
            };
            match check {
                CallerCheck::Admitted(ok) => admitted.push(ok),
                CallerCheck::Refused { response, report } => {
                    for (ok, ask) in admitted.iter_mut().zip(&asks) {
                        self.layer.withdraw(ok, &ask.path).await;
                    }
                    return Ok(answer::refused(at, total, &response, report.as_ref()));
                }
            }
        }
        Ok(answer::admitted(&admitted))
    }

    /// Reads every descriptor of `req` (before any is decided: a request
    /// Envoy should not send decides nothing).
    fn read<'r>(&self, req: &'r RateLimitRequest) -> Result<SmallVec<[Ask<'r>; 2]>, tonic::Status> {
        let policy = self.policy.load();
        let mut asks = SmallVec::with_capacity(req.descriptors.len());
        for (i, d) in req.descriptors.iter().enumerate() {
            let extras = Extras {
                limit_override: d.limit.is_some(),
                hits_addend: d.hits_addend.map(|h| h.value),
                negative: d.is_negative_hits,
            };
            let entries = d.entries.iter().map(|e| (e.key.as_str(), e.value.as_str()));
            let ask = descriptor::read(entries, &extras, req.hits_addend, routes::API_PREFIX)
                .map_err(|e| invalid(&format!("descriptor {i}: {e}")))?;
            if let Who::Identity { tier, .. } = ask.caller {
                if policy.tier(tier).is_none() {
                    return Err(invalid(&format!(
                        "descriptor {i}: tier {tier:?} is not in the policy"
                    )));
                }
            }
            asks.push(ask);
        }
        Ok(asks)
    }

    /// Serves the service on `listener` (gRPC over HTTP/2, plain TCP) until
    /// `shutdown` completes, then lets calls in flight finish.
    ///
    /// # Errors
    /// [`Error::Setup`] when the gRPC server fails.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(RateLimitServiceServer::new(self))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| Error::Setup(format!("the rate limit service: {e}")))
    }
}

#[tonic::async_trait]
impl RateLimitService for RlsService {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        self.decide(request.get_ref())
            .await
            .map(tonic::Response::new)
    }
}

fn invalid(message: &str) -> tonic::Status {
    tracing::warn!(
        error = message,
        "rate limit service: a request Envoy should not send"
    );
    tonic::Status::invalid_argument(message)
}
