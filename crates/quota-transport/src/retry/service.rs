//! [`Retry`]: the service that resends refused requests.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use quota_core::client::RetryPolicy;
use tower_layer::Layer;
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{Config, RetryLayer};

/// Retries requests that draw a 429 under the seed's strategy; see the
/// [module docs](super).
///
/// The request body must be `Clone` (`Full<Bytes>`, `Empty<Bytes>`,
/// `String`...): each attempt sends a clone of the request, extensions
/// included. The inner service must be `Clone` too: a retry waits and then
/// drives a clone of it to readiness (hyper-util's client is cheap to clone).
pub struct Retry<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Retry<S> {
    /// Wraps `inner` with the default clock and jitter.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        RetryLayer::new(policy).layer(inner)
    }

    /// A [`RetryLayer`] for `policy`.
    pub fn layer(policy: RetryPolicy) -> RetryLayer {
        RetryLayer::new(policy)
    }

    pub(crate) fn from_config(inner: S, config: Arc<Config>) -> Self {
        Retry { inner, config }
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.config.policy
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the wrapper.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for Retry<S> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &self.config.policy)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for Retry<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    B: Clone,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service made ready by `poll_ready` goes into the future and
        // sends the first attempt; a fresh clone stays here for the next call.
        let clone = self.inner.clone();
        let ready = mem::replace(&mut self.inner, clone);
        ResponseFuture::new(ready, request, Arc::clone(&self.config))
    }
}
