//! [`Pace`]: the service that holds requests until the pacer lets them go.

use std::fmt;
use std::mem;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Request, Response};
use quota_core::client::Pacer;
use tower_layer::Layer;
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{PaceLayer, Shared};

/// Delays each request until the shared [`Pacer`] lets it go, and feeds it
/// every response; see the [module docs](super).
///
/// Clones share the pacer. The inner service must be `Clone`: a held
/// request keeps the service that `poll_ready` made ready and calls it when
/// the wait is over, while a clone serves the next call.
pub struct Pace<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Pace<S> {
    /// Wraps `inner` with `pacer`, on the wall clock.
    pub fn new(inner: S, pacer: Pacer) -> Self {
        PaceLayer::from_pacer(pacer).layer(inner)
    }

    /// A [`PaceLayer`] around `pacer`.
    pub fn layer(pacer: Pacer) -> PaceLayer {
        PaceLayer::from_pacer(pacer)
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Pace { inner, shared }
    }

    /// The shared pacer.
    pub fn pacer(&self) -> &Arc<Mutex<Pacer>> {
        &self.shared.pacer
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

impl<S: Clone> Clone for Pace<S> {
    fn clone(&self) -> Self {
        Pace {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Pace<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pace")
            .field("inner", &self.inner)
            .field("pacer", &self.shared.pacer)
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for Pace<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let delay = shared.try_release();
        if delay.is_zero() {
            return ResponseFuture::sent(self.inner.call(request), shared);
        }
        // Held: the ready service waits with the request; a clone stays here.
        let clone = self.inner.clone();
        let ready = mem::replace(&mut self.inner, clone);
        ResponseFuture::held(ready, request, delay, shared)
    }
}
