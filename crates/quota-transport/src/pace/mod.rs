//! Client side: pace requests so that a well-behaved client meets no 429.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::{Duration, Instant};
//!
//! use http::{Request, Response};
//! use quota_core::client::PacedLimit;
//! use quota_transport::pace::PaceLayer;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let api = service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
//! // At most 2 requests in any 200 ms.
//! let limit = PacedLimit::sliding(2, Duration::from_millis(200));
//! let mut client = ServiceBuilder::new().layer(PaceLayer::from_limits(&[limit])?).service(api);
//!
//! let start = Instant::now();
//! for _ in 0..3 {
//!     client.ready().await?.call(Request::new(())).await?;
//! }
//! // The first two went at once; the third waited for the first to be 200 ms old.
//! assert!(start.elapsed() >= Duration::from_millis(195));
//! # Ok(()) }
//! ```
//!
//! # What the layer does
//! [`Pace`] drives a [`quota_core::client::Pacer`], shared by every clone of
//! the service (an `Arc<Mutex<Pacer>>`, locked only for each short step).
//! For each request:
//!
//! 1. Ask the pacer how long to wait; if it says wait, sleep that long
//!    (`tokio::time::sleep`) and ask again (another request may have taken
//!    the slot). Asking and recording the send happen under one lock.
//! 2. Record the send ([`Pacer::on_send`]) and call the inner service.
//! 3. Feed the response's status and headers to the pacer
//!    ([`Pacer::observe`]): `X-RateLimit-Remaining` and `-Daily-Remaining`,
//!    the IETF `RateLimit` field, and `Retry-After` on a 429 or 503.
//!
//! Responses and errors pass through unchanged (`type Error = S::Error`);
//! the request body is sent once, so any body type works.
//!
//! # Known limits or learned ones
//! - [`PaceLayer::new`] learns from headers only. The first requests go out
//!   at once; after that the pacer keeps to what the server said is left. A
//!   server that sends only the seed's `X-RateLimit-*` headers is assumed to
//!   count in UTC minutes and days (the pacer waits for the next boundary
//!   when the budget is spent); the IETF `RateLimit` field (`t=` seconds to
//!   reset) takes precedence when present.
//! - [`PaceLayer::from_limits`] and [`PaceLayer::for_plan`] keep to known
//!   limits from the very first request (the gateway publishes its policy),
//!   and learn from headers as well: the pacer waits for the later of the
//!   two.
//!
//! Requests still in flight when a response was made are not counted in
//! its headers, so many concurrent clients sharing one key may still meet a
//! 429; put a [`RetryLayer`](crate::retry::RetryLayer) outside the pacing
//! layer for those, and its retries are paced too.
//!
//! # Time
//! The pacer counts windows on the wall clock (servers align fixed windows
//! to UTC), or on [`PaceLayer::clock`]; delays are slept on tokio's timer.
//!
//! [`Pacer::on_send`]: quota_core::client::Pacer::on_send
//! [`Pacer::observe`]: quota_core::client::Pacer::observe

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::PaceLayer;
pub use quota_core::client::{PacedLimit, Pacer};
pub use service::Pace;
