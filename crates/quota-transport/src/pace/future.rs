//! [`ResponseFuture`]: a request held by the pacer, then sent and observed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::layer::Shared;

pin_project! {
    /// The response future of [`Pace`](super::Pace): sleeps while the pacer
    /// holds the request, sends it, and feeds the response to the pacer.
    ///
    /// Resolves to the inner service's response or error, unchanged.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future>,
        // The ready service and the request while held.
        held: Option<(S, Request<B>)>,
        shared: Arc<Shared>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // Held by the pacer.
        Holding { #[pin] sleep: Sleep },
        // Sent; waiting for the response.
        Sent { #[pin] future: F },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// A request the pacer released at once.
    pub(crate) fn sent(future: S::Future, shared: Arc<Shared>) -> Self {
        ResponseFuture {
            state: State::Sent { future },
            held: None,
            shared,
        }
    }

    /// A request held for `delay` (at least) on the ready `service`.
    pub(crate) fn held(
        service: S,
        request: Request<B>,
        delay: Duration,
        shared: Arc<Shared>,
    ) -> Self {
        ResponseFuture {
            state: State::Holding {
                sleep: tokio::time::sleep(delay),
            },
            held: Some((service, request)),
            shared,
        }
    }
}

/// `delay` from now; a delay past what `Instant` can hold (a hostile
/// `Retry-After`) is about 30 years, as in `tokio::time::sleep`.
fn deadline(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Holding { mut sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    // Another request may have taken the slot meanwhile.
                    let delay = this.shared.try_release();
                    if !delay.is_zero() {
                        sleep.reset(deadline(delay));
                        continue;
                    }
                    let Some((mut service, request)) = this.held.take() else {
                        // `Holding` is entered only with a held request.
                        unreachable!("paced request without a service to send it");
                    };
                    let future = service.call(request);
                    this.state.set(State::Sent { future });
                }
                StateProj::Sent { future } => {
                    let response = ready!(future.poll(cx))?;
                    this.shared
                        .observe(response.status().as_u16(), response.headers());
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("held", &self.held.is_some())
            .finish_non_exhaustive()
    }
}
