//! [`Enforce`]: the service that runs the checks, then the inner service.

use core::fmt;
use core::task::{Context, Poll};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use quota_core::account::Accounts;
use quota_core::Store;
use tower_service::Service;

use super::body::{RequestBody, ResponseBody};
use super::check::{check, check_at_once};
use super::future::ResponseFuture;
use super::layer::EnforceLayer;
use super::policy::PolicyHandle;

/// Enforces a policy in front of `Inner`; built by [`EnforceLayer`].
///
/// Refusals are responses (401, 402, 404, 413, 429, 503 with a JSON body),
/// answered without calling `Inner`; the error type is `Inner`'s. `Inner`
/// must be `Clone`: the ready instance is moved into the response future,
/// which calls it once the checks pass.
pub struct Enforce<Inner, S, A> {
    inner: Inner,
    layer: EnforceLayer<S, A>,
}

impl<Inner, S, A> Enforce<Inner, S, A> {
    /// Wraps `inner` with the configuration of `layer`.
    pub fn new(inner: Inner, layer: EnforceLayer<S, A>) -> Self {
        Enforce { inner, layer }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &Inner {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> Inner {
        self.inner
    }

    /// The policy slot, to reload the policy while serving.
    pub fn policy(&self) -> &PolicyHandle {
        self.layer.policy()
    }
}

impl<S: Store, A: Accounts> Enforce<(), S, A> {
    /// The layer: the same as [`EnforceLayer::new`].
    pub fn layer(
        policy: impl Into<PolicyHandle>,
        store: Arc<S>,
        accounts: Arc<A>,
    ) -> EnforceLayer<S, A> {
        EnforceLayer::new(policy, store, accounts)
    }
}

impl<Inner: Clone, S, A> Clone for Enforce<Inner, S, A> {
    fn clone(&self) -> Self {
        Enforce {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<Inner: fmt::Debug, S, A> fmt::Debug for Enforce<Inner, S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enforce")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<Inner, S, A, ReqBody, ResBody> Service<Request<ReqBody>> for Enforce<Inner, S, A>
where
    Inner: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Clone,
    S: Store + 'static,
    A: Accounts + 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = Inner::Error;
    type Future = ResponseFuture<Inner, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The instance polled ready goes with this request; a fresh clone
        // stays for the next one.
        let clone = self.inner.clone();
        let ready = core::mem::replace(&mut self.inner, clone);
        let config = &self.layer.config;
        if config.answers_at_once() {
            // Nothing to wait for: the checks run now, and the service is
            // called now (or never), with no future of the layer's own.
            ResponseFuture::checked(check_at_once(config, req), ready)
        } else {
            ResponseFuture::new(Box::pin(check(Arc::clone(config), req)), ready)
        }
    }
}
