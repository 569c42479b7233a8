//! Client side: retry requests refused with 429, the seed's way.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use quota_transport::retry::{RetryLayer, RetryOutcome, RetryPolicy};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An API that refuses the first two attempts with a minute 429.
//! let calls = Arc::new(AtomicU32::new(0));
//! let api = service_fn(move |_req: Request<Full<Bytes>>| {
//!     let n = calls.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         let response = if n < 2 {
//!             Response::builder()
//!                 .status(429)
//!                 .header("X-RateLimit-Type", "minute")
//!                 .header("Retry-After", "0")
//!                 .body(Full::new(Bytes::from(r#"{"message":"Too Many Attempts."}"#)))
//!         } else {
//!             Response::builder().body(Full::new(Bytes::from("a picture")))
//!         };
//!         Ok::<_, Infallible>(response.expect("a valid response"))
//!     }
//! });
//!
//! // The seed's strategy with a 1 ms backoff unit, so the example is quick.
//! let policy = RetryPolicy { base: Duration::from_millis(1), ..RetryPolicy::SEED };
//! let client = ServiceBuilder::new()
//!     .layer(RetryLayer::new(policy).on_wait(|wait| eprintln!("{wait}")))
//!     .service(api);
//!
//! let response = client.oneshot(Request::post("/v1/txt2img").body(Full::new(Bytes::new()))?).await?;
//! assert_eq!(response.status(), 200);
//! let outcome = response.extensions().get::<RetryOutcome>().expect("set by the layer");
//! assert_eq!(outcome.attempts, 3);
//! assert_eq!(outcome.gave_up, None);
//! # Ok(()) }
//! ```
//!
//! # The strategy
//! [`Retry`] is tower's own retry middleware (`tower::retry::Retry`)
//! following a [`RetryStrategy`], a `tower::retry::Policy` that drives
//! [`quota_core::client::Retry`], the seed's strategy as a state machine,
//! with tokio's timer. For each response:
//!
//! 1. Below 400 (not 429): the response is returned.
//! 2. A 429 whose `X-RateLimit-Type` is `daily`: **returned at once**, not
//!    retried ([`GiveUp::DailyLimit`]): the limit lasts until tomorrow.
//! 3. Any other 429 (`minute`, missing or unknown type): the layer sleeps
//!    `max(Retry-After, base * (2^a + jitter))`, where `a` is the 0-based
//!    attempt just refused and `jitter` is drawn from `[0, 1)`, then sends
//!    the request again. After [`RetryPolicy::max_attempts`] attempts (5 in
//!    the seed) the last 429 is returned ([`GiveUp::AttemptsExhausted`]).
//! 4. Any other status of 400 or more is returned as it is, not retried.
//! 5. An error of the inner service (connection refused, timeout...) is
//!    returned as it is, not retried: `type Error = S::Error`.
//!
//! Refusals are **responses, not errors**: the caller gets the last 429
//! with its headers and body, the way it would without the layer, so it can
//! show the server's message and `Retry-After`. The layer adds a
//! [`RetryOutcome`] to the response's extensions saying how many attempts
//! were made, why it stopped and how long it waited in all.
//!
//! # Replaying the request body
//! Before each attempt tower asks the policy for a copy of the request to
//! send next (`Policy::clone_request`), and a request it holds no copy of is
//! never sent again. [`RetryStrategy`] copies the request (`Request<B>:
//! Clone` when `B: Clone`, extensions included), so the body type must be
//! `Clone`: `Full<Bytes>`, `Empty<Bytes>`, `String`, `Vec<u8>`. Cloning
//! `Full<Bytes>` copies no bytes. A streaming body (hyper's `Incoming`, a
//! file stream) is not `Clone`, so a half-sent stream can never be replayed:
//! such a service does not compile. Collect the body first
//! (`http_body_util::BodyExt::collect`, bounded with
//! `http_body_util::Limited` if it comes from outside) into `Full<Bytes>`.
//!
//! ```compile_fail
//! use std::convert::Infallible;
//!
//! use http::{Request, Response};
//! use quota_transport::retry::RetryLayer;
//! use tower::{service_fn, Service, ServiceBuilder};
//!
//! /// A body that can be read only once.
//! struct Stream;
//!
//! fn is_a_service<S: Service<Request<Stream>>>(_: &S) {}
//!
//! let api = service_fn(|_req: Request<Stream>| async { Ok::<_, Infallible>(Response::new(())) });
//! let client = ServiceBuilder::new().layer(RetryLayer::default()).service(api);
//! is_a_service(&client); // error: `Stream` is not `Clone`
//! ```
//!
//! # With hyper-util's client
//! Put the layer over `hyper_util::client::legacy::Client`, built for a
//! `Clone` body such as `Full<Bytes>`. With a [`PaceLayer`](crate::pace::PaceLayer)
//! too, put the retry layer **outside** it so that every retry is paced and
//! every 429 teaches the pacer:
//!
//! ```no_run
//! use bytes::Bytes;
//! use http::Request;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use quota_transport::pace::PaceLayer;
//! use quota_transport::retry::{RetryLayer, RetryPolicy};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let api = ServiceBuilder::new()
//!     .layer(RetryLayer::new(RetryPolicy::SEED).on_wait(|wait| eprintln!("{wait}")))
//!     .layer(PaceLayer::new())
//!     .service(client);
//!
//! let request = Request::post("http://127.0.0.1:8080/v1/txt2img")
//!     .header("X-API-Key", "k-1")
//!     .body(Full::new(Bytes::from(r#"{"prompt":"a cat"}"#)))?;
//! let response = api.oneshot(request).await?;
//! println!("{}", response.status());
//! # Ok(()) }
//! ```
//!
//! # Time and randomness
//! Waits are slept with `tokio::time::sleep`, so the layer needs a tokio
//! runtime with the timer, and tests may pause time
//! (`tokio::time::pause`). The time a response is received at is read from
//! the wall clock (an HTTP-date `Retry-After` needs it), or from
//! [`RetryLayer::clock`]. Jitter comes from `rand::thread_rng()`, or from
//! [`RetryLayer::rng`] / [`RetryLayer::jitter_seed`] for reproducible waits.
//!
//! # Observing waits
//! Each wait is a `tracing` event (`info`, target `quota_transport::retry`,
//! fields `attempt`, `max_attempts`, `limit_type`, `wait_ms`) and is passed
//! to the [`RetryLayer::on_wait`] hook as a [`RetryWait`], whose `Display`
//! is one line for a terminal.
//!
//! [`GiveUp::DailyLimit`]: quota_core::client::GiveUp::DailyLimit
//! [`GiveUp::AttemptsExhausted`]: quota_core::client::GiveUp::AttemptsExhausted

mod event;
mod layer;
mod strategy;

pub use event::{RetryOutcome, RetryWait};
pub use layer::RetryLayer;
pub use quota_core::client::{GiveUp, LimitType, RetryPolicy};
pub use strategy::RetryStrategy;

/// Retries requests that draw a 429 under the seed's strategy: tower's
/// retry middleware with a [`RetryStrategy`]; see the [module docs](self).
///
/// Made by [`RetryLayer`] (or `Retry::new(RetryStrategy::new(policy),
/// inner)`); `get_ref`, `get_mut` and `into_inner` reach the inner service.
/// The request body must be `Clone` (each attempt sends a copy of the
/// request), and so must the inner service: a retry waits and then drives a
/// clone of it to readiness (hyper-util's client is cheap to clone).
///
/// ```
/// use quota_transport::retry::{Retry, RetryLayer};
/// use tower::{service_fn, Layer};
///
/// let api = service_fn(|req: http::Request<String>| async move {
///     Ok::<_, std::convert::Infallible>(http::Response::new(req.into_body()))
/// });
/// let client: Retry<_> = RetryLayer::default().layer(api);
/// let _api = client.into_inner();
/// ```
pub type Retry<S> = tower::retry::Retry<RetryStrategy, S>;

/// The response future of [`Retry`] for requests with a body `B`: sends
/// the request, and while the answer is a minute 429 (and attempts are
/// left) sleeps and sends a copy of it again.
///
/// Resolves to the final response with a [`RetryOutcome`] in its
/// extensions, or to the inner service's first error (not retried).
pub type ResponseFuture<S, B> =
    tower::retry::future::ResponseFuture<RetryStrategy, S, http::Request<B>>;
