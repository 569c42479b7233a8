//! [`ResponseFuture`]: one logical request, driven through its attempts.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use pin_project_lite::pin_project;
use quota_core::client::{GiveUp, Retry as RetryState, RetryAction};
use tokio::time::Sleep;
use tower_service::Service;

use super::event::{RetryOutcome, RetryWait};
use super::layer::Config;

pin_project! {
    /// The response future of [`Retry`](super::Retry): sends the request,
    /// and while the answer is a minute 429 (and attempts are left) sleeps
    /// and sends a clone of it again.
    ///
    /// Resolves to the final response with a [`RetryOutcome`] in its
    /// extensions, or to the inner service's first error (not retried).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future>,
        service: S,
        // A copy of the request for the next attempt; kept only while one may follow.
        next: Option<Request<B>>,
        retry: RetryState,
        config: Arc<Config>,
        waited: Duration,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // An attempt is in flight.
        Calling { #[pin] future: F },
        // Waiting to retry.
        Sleeping { #[pin] sleep: Sleep },
        // Driving the service to readiness for the retry.
        Readying,
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
    B: Clone,
{
    /// Sends the first attempt on `service`, which `poll_ready` made ready.
    pub(crate) fn new(mut service: S, request: Request<B>, config: Arc<Config>) -> Self {
        let retry = RetryState::new(config.policy);
        let next = keep_copy(&retry, &request);
        let future = service.call(request);
        ResponseFuture {
            state: State::Calling { future },
            service,
            next,
            retry,
            config,
            waited: Duration::ZERO,
        }
    }
}

/// A copy of `request` if the attempt about to be sent may be followed by
/// another one.
fn keep_copy<B: Clone>(retry: &RetryState, request: &Request<B>) -> Option<Request<B>> {
    let after_this = retry.attempts().saturating_add(1);
    (after_this < retry.policy().max_attempts).then(|| request.clone())
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    B: Clone,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let mut response = ready!(future.poll(cx))?;
                    let status = response.status().as_u16();
                    // Jitter is drawn only when a backoff may need it.
                    let random = if status == 429 {
                        this.config.sample()
                    } else {
                        0.0
                    };
                    let now = this.config.now();
                    let action =
                        this.retry
                            .handle_response(status, response.headers().iter(), now, random);
                    let gave_up = match action {
                        RetryAction::RetryAt {
                            wait,
                            attempt,
                            limit_type,
                            ..
                        } if this.next.is_some() => {
                            this.config.report(&RetryWait {
                                attempt: attempt.saturating_add(1),
                                max_attempts: this.retry.policy().max_attempts,
                                limit_type,
                                wait,
                            });
                            *this.waited = this.waited.saturating_add(wait);
                            // The refused response is dropped unread: hyper
                            // closes its connection rather than pool it.
                            drop(response);
                            this.state.set(State::Sleeping {
                                sleep: tokio::time::sleep(wait),
                            });
                            continue;
                        }
                        // Unreachable: a copy is kept whenever a retry may follow.
                        RetryAction::RetryAt { .. } => Some(GiveUp::AttemptsExhausted {
                            attempts: this.retry.attempts(),
                        }),
                        RetryAction::Done => None,
                        RetryAction::GiveUp(why) => Some(why),
                    };
                    response.extensions_mut().insert(RetryOutcome {
                        attempts: this.retry.attempts(),
                        gave_up,
                        waited: *this.waited,
                    });
                    return Poll::Ready(Ok(response));
                }
                StateProj::Sleeping { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    ready!(this.service.poll_ready(cx))?;
                    let Some(request) = this.next.take() else {
                        // `Sleeping` is entered only with a copy in `next`.
                        unreachable!("retry without a request to send");
                    };
                    *this.next = keep_copy(this.retry, &request);
                    let future = this.service.call(request);
                    this.state.set(State::Calling { future });
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
            .field("retry", &self.retry)
            .field("waited", &self.waited)
            .finish_non_exhaustive()
    }
}
