//! [`RetryStrategy`]: the seed's strategy as a `tower::retry::Policy`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use quota_core::client::{Retry as RetryState, RetryAction, RetryPolicy};
use tokio::time::Sleep;
use tower::retry::Policy;

use super::event::{RetryOutcome, RetryWait};
use super::layer::Config;

/// The retry policy that tower's [`Retry`](super::Retry) follows: one
/// [`quota_core::client::Retry`] per request, slept out on tokio's timer.
///
/// A [`RetryLayer`](super::RetryLayer) makes one for each service (with its
/// clock, jitter and wait hook); tower clones it for each request, so each
/// request counts its own attempts. For each response it:
///
/// 1. feeds the status and headers to the core's `Retry`, with the layer's
///    time and (for a 429) a jitter sample;
/// 2. on a retry, reports the [`RetryWait`] and returns the sleep after
///    which tower sends a copy of the request again;
/// 3. otherwise leaves the response to the caller with a [`RetryOutcome`]
///    in its extensions. An error of the inner service is never retried.
///
/// ```
/// use std::convert::Infallible;
///
/// use http::{Request, Response};
/// use quota_transport::retry::{Retry, RetryOutcome, RetryPolicy, RetryStrategy};
/// use tower::{service_fn, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Infallible> {
/// let api = service_fn(|_req: Request<String>| async { Ok::<_, Infallible>(Response::new("ok")) });
/// let client = Retry::new(RetryStrategy::new(RetryPolicy::SEED), api);
///
/// let response = client.oneshot(Request::new(String::new())).await?;
/// let outcome = response.extensions().get::<RetryOutcome>();
/// assert_eq!(outcome.map(|o| (o.attempts, o.gave_up)), Some((1, None)));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RetryStrategy {
    config: Arc<Config>,
    // The request in flight; fresh in the copy a service keeps.
    state: RetryState,
    waited: Duration,
}

impl RetryStrategy {
    /// The strategy of `policy`, on the wall clock, with jitter from
    /// `rand::thread_rng()` and no wait hook (see [`RetryLayer`](super::RetryLayer)
    /// for the others).
    pub fn new(policy: RetryPolicy) -> Self {
        RetryStrategy::from_config(Arc::new(Config::new(policy)))
    }

    pub(crate) fn from_config(config: Arc<Config>) -> Self {
        RetryStrategy {
            state: RetryState::new(config.policy),
            config,
            waited: Duration::ZERO,
        }
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.config.policy
    }
}

impl<B, ResBody, E> Policy<Request<B>, Response<ResBody>, E> for RetryStrategy
where
    B: Clone,
{
    type Future = Sleep;

    fn retry(
        &mut self,
        _request: &mut Request<B>,
        result: &mut Result<Response<ResBody>, E>,
    ) -> Option<Sleep> {
        // An error of the inner service is returned as it is.
        let response = result.as_mut().ok()?;
        let status = response.status().as_u16();
        // Jitter is drawn only when a backoff may need it.
        let random = if status == 429 {
            self.config.sample()
        } else {
            0.0
        };
        let now = self.config.now();
        let action = self
            .state
            .handle_response(status, response.headers().iter(), now, random);
        let gave_up = match action {
            RetryAction::RetryAt {
                wait,
                attempt,
                limit_type,
                ..
            } => {
                self.config.report(&RetryWait {
                    attempt: attempt.saturating_add(1),
                    max_attempts: self.state.policy().max_attempts,
                    limit_type,
                    wait,
                });
                self.waited = self.waited.saturating_add(wait);
                // Tower drops the refused response unread before the sleep:
                // hyper closes its connection rather than pool it.
                return Some(tokio::time::sleep(wait));
            }
            RetryAction::Done => None,
            RetryAction::GiveUp(why) => Some(why),
        };
        response.extensions_mut().insert(RetryOutcome {
            attempts: self.state.attempts(),
            gave_up,
            waited: self.waited,
        });
        None
    }

    /// A copy for every attempt, the last one included: tower hands the
    /// policy only the responses of attempts it holds a copy for, and the
    /// last response needs its [`RetryOutcome`] too.
    fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
        Some(request.clone())
    }
}

impl fmt::Debug for RetryStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryStrategy")
            .field("policy", &self.config.policy)
            .field("attempts", &self.state.attempts())
            .field("waited", &self.waited)
            .finish_non_exhaustive()
    }
}
