//! quota-transport: the quota engine over tower and hyper 1.x.
//!
//! Server side, [`enforce::EnforceLayer`] puts a policy in front of any
//! `Service<http::Request<B>>` (a hyper service, an axum router, a proxy):
//! API keys, endpoints, upload limits, credit and rate limits, answered with
//! the seed's statuses and headers. Client side, [`retry`] and [`pace`]
//! make a hyper client polite towards such a server.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use hyper_util::rt::{TokioExecutor, TokioIo};
//! use hyper_util::service::TowerToHyperService;
//! use quota_core::account::{AccountAdmin, MemoryAccounts, NewAccount};
//! use quota_core::policy::{Money, Policy};
//! use quota_core::{MemoryStore, Timestamp};
//! use quota_transport::enforce::EnforceLayer;
//! use tower::{service_fn, ServiceBuilder};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // An account, the policy of the seed document, in-memory state.
//! let accounts = MemoryAccounts::new();
//! let new = NewAccount { id: "acct-1".into(), api_key: "k-1".into(), tier: "basic".into(), credit: Money::from_dollars(5) };
//! accounts.create(new, Timestamp::EPOCH).await?;
//! let layer = EnforceLayer::new(Policy::seed(), Arc::new(MemoryStore::new()), Arc::new(accounts));
//!
//! // The layer in front of a service, served by hyper.
//! let service = ServiceBuilder::new().layer(layer).service(service_fn(|_req| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("a picture"))))
//! }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((stream, _)) = listener.accept().await {
//!         let service = TowerToHyperService::new(service.clone());
//!         tokio::spawn(async move {
//!             let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
//!             builder.serve_connection(TokioIo::new(stream), service).await
//!         });
//!     }
//! });
//!
//! // A client: txt2video takes one request a minute on Basic, then 429.
//! let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
//! let req = || Request::post(format!("http://{addr}/v1/txt2video")).header("x-api-key", "k-1").body(Full::new(Bytes::new()));
//! let ok = client.request(req()?).await?;
//! assert_eq!(ok.status(), 200);
//! assert_eq!(ok.headers()["x-ratelimit-limit"], "1"); // txt2video: 1 a minute, 15 a day
//! assert_eq!(ok.headers()["x-ratelimit-daily-remaining"], "14");
//! let refused = client.request(req()?).await?;
//! assert_eq!(refused.status(), 429);
//! assert_eq!(refused.headers()["x-ratelimit-type"], "minute");
//! assert_eq!(refused.into_body().collect().await?.to_bytes(), r#"{"message":"Too Many Attempts."}"#);
//! # Ok(()) }
//! ```
//!
//! # Modules
//! - [`enforce`]: the server layer: the order of its checks, its options
//!   (prefix, key headers, IETF fields, shadow mode, clock, observer), its
//!   types.
//! - [`upload`]: upload limits applied while a body streams (used by
//!   [`enforce`]; usable alone).
//! - [`identity`]: reading the API key from `Authorization: Bearer` or
//!   `X-API-Key`.
//! - [`fields`]: the header fields the checks read, from a header map or
//!   from a head a server parsed itself.
//! - [`response`]: the JSON refusals, public so a gateway answers its own
//!   errors the same way.
//! - [`retry`] and [`pace`]: the client side.
//!
//! The engine itself (policies, windows, decisions) is `quota-core`, which
//! never reads a clock: this crate supplies the time ([`enforce::system_clock`]
//! by default, a virtual clock in tests).

pub mod enforce;
pub mod fields;
pub mod identity;
pub mod pace;
pub mod response;
pub mod retry;
pub mod upload;

/// This crate's README, its examples compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
