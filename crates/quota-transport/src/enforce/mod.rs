//! Server-side enforcement: a tower layer that puts the policy in front of a
//! service.
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use quota_core::account::{AccountAdmin, MemoryAccounts, NewAccount};
//! use quota_core::policy::{Money, Policy};
//! use quota_core::{MemoryStore, Timestamp};
//! use quota_transport::enforce::EnforceLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let accounts = MemoryAccounts::new();
//! let new = NewAccount { id: "acct-1".into(), api_key: "k-1".into(), tier: "basic".into(), credit: Money::from_dollars(5) };
//! accounts.create(new, Timestamp::EPOCH).await?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(EnforceLayer::new(Policy::seed(), Arc::new(MemoryStore::new()), Arc::new(accounts)))
//!     .service(service_fn(|_req: Request<_>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("a picture"))))
//!     }));
//!
//! let req = || Request::post("/v1/txt2img").header("x-api-key", "k-1").body(Full::new(Bytes::new()));
//! let ok = service.clone().oneshot(req()?).await?;
//! assert_eq!(ok.status(), 200);
//! assert_eq!(ok.headers()["x-ratelimit-remaining"], "2"); // 3 a minute on Basic
//! assert_eq!(ok.into_body().collect().await?.to_bytes(), "a picture");
//!
//! let denied = service.oneshot(Request::post("/v1/txt2img").body(Full::new(Bytes::new()))?).await?;
//! assert_eq!(denied.status(), 401); // no key
//! # Ok(()) }
//! ```
//!
//! Served by hyper, the same stack goes through
//! [`TowerToHyperService`](https://docs.rs/hyper-util/0.1/hyper_util/service/struct.TowerToHyperService.html); the
//! request body is then hyper's `Incoming`.
//!
//! # The checks, in order
//! Each request is checked in this order; the first that fails answers, and
//! the inner service is never called for a refused request. The order and
//! the answers are those of the core's sans-IO state machine,
//! [`quota_core::admission`]: this layer reads the request's facts from its
//! headers, answers the machine's steps through the store and the account
//! source, and turns its verdict into the inner service's request or a
//! refusal's response (the same driver serves [`EnforceLayer::check_head`]).
//!
//! 0. **Path**: the request's path is made canonical once
//!    ([`quota_core::path`]): escapes of unreserved characters decoded, and
//!    dot-segments, encoded `/` or `\`, `//`, NUL, raw `\` and bytes no
//!    path may hold refused with **400** `{"message": ...}` (or, with
//!    [`EnforceLayer::path_action`]`(Normalize)`, resolved). The endpoint is
//!    chosen from that path, charged under it, and the service gets it in
//!    the request's URI: what is charged is what is served. A refused path
//!    stays refused in shadow mode.
//! 1. **Identity**: the API key from `Authorization: Bearer KEY` or
//!    `X-API-Key: KEY` ([`KeyHeaders`](crate::identity::KeyHeaders)),
//!    resolved through [`Accounts`](quota_core::account::Accounts). Missing,
//!    malformed or unknown: **401** `{"message": ...}`.
//! 2. **Endpoint**: the path after the prefix (default `/v1/`) must be an
//!    endpoint of the policy: else **404**.
//! 3. **Upload precheck** (the rules of [`upload::precheck`](crate::upload::precheck)):
//!    a `Content-Length` over the endpoint's largest body
//!    ([`UploadRules::max_body`](quota_core::upload::UploadRules::max_body))
//!    is **413** before a byte is read; an unreadable `Content-Length` or a
//!    multipart type without a boundary is **400**.
//! 4. **Credit**: a priced endpoint charges the account
//!    ([`Accounts::charge`](quota_core::account::Accounts::charge)); credit
//!    that cannot pay is **402**.
//! 5. **Rate limits**: the [`Plan`](quota_core::policy::Plan) is decided by the
//!    [`Store`](quota_core::Store). Refused: the charge is refunded and the
//!    answer is **429**, `Content-Type: application/json`, body
//!    `{"message":"Too Many Attempts."}` and `X-RateLimit-Limit`,
//!    `X-RateLimit-Remaining`, `X-RateLimit-Daily-Limit`,
//!    `X-RateLimit-Daily-Remaining`, `X-RateLimit-Type`, `Retry-After`
//!    (the decision's [`RateReport`]). A store error is **503**
//!    (whether it reaches the layer is the store's failure policy).
//! 6. **Admitted**: the service is called with the resolved
//!    [`Identity`](quota_core::account::Identity) and the decision's
//!    [`RateReport`] in the request's extensions, and its response gets the
//!    `X-RateLimit-*` headers of the limits that apply (none for an
//!    unlimited quantity: Premium has no daily pair).
//! 7. **While the body streams**: the service reads a [`RequestBody`], the
//!    client's frames under the upload rules
//!    ([`upload::guard_body`](crate::upload::guard_body)): a body that grows
//!    past its limit is cut there, each multipart file is classified by its
//!    bytes and checked for size and duration. If a rule broke, the answer
//!    is **413**/**422**/**400** with a JSON `message` naming the limit
//!    (whatever the service made of the failed read), still with the
//!    rate-limit headers (the request was counted), and a charge is given
//!    back. A service that answers before reading its body (a streaming
//!    proxy) keeps its answer: the body still ends in the error there.
//! 8. **After the answer**: when the inner service's upstream failed (the
//!    response carries an [`UpstreamFailure`]: the `quota` gateway's proxy
//!    sets it on its 502 and 504) or, with
//!    [`RefundOn::ServerErrors`], when it answered a 5xx, what the request
//!    took is given back before the answer goes: its units on every limit
//!    ([`Store::refund`](quota_core::Store::refund)) and its credit; the
//!    answer then carries no rate-limit headers. See
//!    [`EnforceLayer::refund_on`] and, for a server without tower,
//!    [`EnforceLayer::settle`].
//!
//! # Options
//! [`EnforceLayer`]'s builder methods: the prefix, the accepted key headers,
//! the IETF `RateLimit-Policy`/`RateLimit` fields and problem+json 429s,
//! shadow mode (decide and report, refuse nothing), refunds, the clock (virtual in
//! tests), an [`Observer`] for metrics, and unmetered endpoints. The policy
//! is held in a [`PolicyHandle`] and loaded once per request, so it can be
//! replaced while serving.
//!
//! # Types
//! `Enforce<Inner, S, A>` implements `Service<Request<B>>` for any body `B:
//! Body<Data = Bytes>` (hyper's `Incoming`, axum's `Body`) and any `Inner:
//! Service<Request<RequestBody<B>>, Response = Response<R>> + Clone`. The
//! error type is `Inner::Error`. The inner service reads a
//! [`RequestBody<B>`] (`Data = Bytes`, `Error =`
//! [`UploadError`](crate::upload::UploadError)). The response body is
//! [`ResponseBody<R>`]: `R` untouched on success, the refusal's JSON
//! otherwise (it needs `R::Data: From<Bytes>`, true of hyper's and axum's
//! bodies).
//!
//! # Cost
//! With a store and an account source that answer at once
//! ([`Store::answers_at_once`](quota_core::Store::answers_at_once) and
//! [`Accounts::answers_at_once`](quota_core::account::Accounts::answers_at_once):
//! the memory ones, the gateway's on memory) the checks run inside
//! `call`, and the inner service is called there: the layer keeps no
//! future of its own across them. Otherwise (Redis, redb, your own
//! backend) one boxed future per request runs the checks as one `async`
//! block over the store's and the account source's futures. Either way:
//! the identity and the report inserted into the extensions, the upload
//! guard for a non-empty body, and header values taken from a static table
//! for counts up to 9999 (larger counts share one buffer), so no string is
//! formatted for an admitted request unless the IETF fields are on. The
//! report goes to the service by move, its headers rendered before the call
//! into a copy of a template map (no field name is hashed), which an answer
//! with no fields of its own takes as it is. docs/performance.md has the
//! figures, and what each of these parts costs alone.

mod answer;
mod body;
mod check;
mod drive;
mod future;
mod guard;
mod head;
mod layer;
mod observe;
mod policy;
mod refund;
mod service;

pub use body::{RequestBody, ResponseBody};
pub use future::ResponseFuture;
pub use head::{Admitted, CallerCheck, HeadCheck};
pub use layer::{system_clock, Clock, EnforceLayer};
pub use observe::{Observation, Observer, Outcome, Refunded};
pub use policy::PolicyHandle;
pub use quota_core::admission::{RefundOn, RefundReason, UpstreamResult};
pub use quota_core::report::{LimitReport, RateReport};
pub use refund::UpstreamFailure;
pub use service::Enforce;
