//! quota-gateway: the `quota` gateway as a library.
//!
//! A reverse proxy that enforces a rate-limit policy in front of an HTTP
//! API: the edge checks, the enforcement layer of `quota-transport`, the
//! routes (`/healthz`, `/metrics`, the admin API, `/v1/limits`), the
//! proxy and its upstream pool, over the in-memory store or Redis. The
//! `quota` binary only configures it.
//!
//! ```no_run
//! use quota_gateway::{Gateway, shutdown_signal};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let gateway = quota_gateway::Gateway::builder(quota_core::policy::Policy::seed())
//!         .upstream("http://127.0.0.1:9000".parse()?)
//!         .build()?;
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     gateway.serve(listener, shutdown_signal()).await?;
//!     Ok(())
//! }
//! ```
//!
//! Modules by concern:
//! - [`http1`]: the HTTP/1.1 codec (request heads, answer heads, the
//!   upstream client's wire format, hop-by-hop rules, the edge checks),
//!   sans-IO, fuzzed and held to hyper by differential tests;
//! - `server`: the accept loop, the workers, HTTP/1.1 (own path or hyper)
//!   and HTTP/2;
//! - `routes`: the gateway's own routes, which every path consults first;
//!   [`route_table`]: the routes to upstreams (metered or passthrough);
//!   `anonymous`: callers without a key, by address;
//! - `proxy`: the upstream client and its pool;
//! - [`access_log`]: one JSON line per request, written off the hot path;
//! - `admin`: the admin API; `ui`: the operator's page (`/admin/ui/`),
//!   fed by `activity` (what this node saw in the last hour); `limits`: `/v1/limits`; `metrics`: `/metrics`;
//! - [`backend`]: the store and accounts chosen at start-up;
//!   `accounts` (feature `redb`): accounts in a database on disk;
//! - [`settings`]: the config file and its overrides, resolved into a
//!   [`GatewayBuilder`] (what `quota serve` runs on);
//! - [`demo`]: a mock upstream and demo accounts for `quota serve --demo`;
//! - [`tls`]: the certificate the gateway terminates TLS with, reloadable;
//! - [`reload`]: the policy and the certificate read again on SIGHUP and
//!   when their files change.

pub mod access_log;
#[cfg(feature = "redb")]
pub mod accounts;
mod activity;
mod admin;
mod anonymous;
mod app;
pub mod backend;
pub mod demo;
mod error;
pub mod forwarded;
mod gateway;
mod handler;
pub mod http1;
pub mod ids;
mod limits;
mod metrics;
mod observe;
mod options;
mod percent;
pub mod policy_file;
mod proxy;
pub mod reload;
mod respond;
#[cfg(feature = "grpc")]
pub mod rls;
pub mod route_file;
pub mod route_table;
mod routes;
mod server;
pub mod settings;
mod shared;
pub mod tls;
mod ui;

pub use access_log::{AccessLog, AccessLogError};
pub use admin::OPENAPI;
pub use error::Error;
pub use gateway::{Gateway, GatewayBuilder, PolicyReloader};
pub use options::Http1;
pub use quota_core::admission::RefundOn;
pub use route_table::{Route, RouteError};
pub use server::shutdown_signal;
pub use settings::{Overrides, Settings, SettingsError};
pub use tls::{TlsConfig, TlsError};

/// This crate's README, its examples compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
