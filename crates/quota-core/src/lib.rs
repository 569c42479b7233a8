//! quota-core: a sans-IO rate-limit and quota engine.
//!
//! The engine never reads a clock and never draws a random number: time is a
//! [`Timestamp`] (milliseconds since the UNIX epoch) passed to every call,
//! and randomness is a sample passed in. That makes every decision
//! reproducible, testable in virtual time, and identical on every node.
//!
//! # Use
//! 1. Load a [`Policy`](policy::Policy) (TOML/JSON, or [`Policy::seed`](policy::Policy::seed)).
//! 2. Turn each request into a [`Plan`](policy::Plan) with [`Policy::plan`](policy::Policy::plan).
//! 3. Let a [`Store`] decide it at `now` ([`MemoryStore`] here; the Redis store
//!    in `quota-redis`), and build the [`Decision`].
//! 4. Report the decision: [`Decision::report`] gives the owned
//!    [`RateReport`] every transport renders the answer's headers from.
//!
//! ```
//! use quota_core::{policy::{Policy, Request}, MemoryStore, Timestamp};
//!
//! let policy = Policy::seed();
//! let store = MemoryStore::new();
//! let now = Timestamp::from_secs(1_700_000_020); // 40 s into a UTC minute
//! let req = Request { account: "acct-42", tier: "basic", endpoint: "txt2img", cost: 1 };
//!
//! for _ in 0..3 {
//!     assert!(store.check(&policy, &req, now).unwrap().is_admitted());
//! }
//! let refused = store.check(&policy, &req, now).unwrap();
//! assert!(!refused.is_admitted());
//! assert_eq!(refused.retry_after_secs(), Some(20)); // the next UTC minute
//! for (name, value) in refused.report().fields() {
//!     println!("{name}: {value}");
//! }
//! ```
//!
//! Modules: [`policy`] (the model, validation, the seed), [`algorithm`] (the
//! four window algorithms as pure steps), [`decision`] (the multi-limit
//! answer), [`report`] (what it reports: the headers, owned), [`store`] and
//! [`memory`] (state), [`dynamic`] (stores and accounts chosen at run time,
//! as trait objects), [`replay`] (a trace through a policy), [`upload`] (file
//! rules), [`client`] (retry and pacing state machines), [`path`] (the one
//! canonical spelling of a request path), [`admission`] (the checks of one
//! request, in order, as a state machine a gateway drives), [`limiter`]
//! (one limit over any keys, without a policy).

pub mod account;
pub mod admission;
pub mod algorithm;
mod bytes;
pub mod client;
pub mod decision;
pub mod dynamic;
pub mod limiter;
pub mod memory;
pub mod path;
pub mod policy;
pub mod replay;
pub mod report;
pub mod store;
pub mod time;
pub mod upload;

pub use decision::{Decision, LimitStatus, TOO_MANY_ATTEMPTS_BODY};
pub use dynamic::DynStore;
pub use memory::MemoryStore;
pub use report::RateReport;
pub use store::{Counted, Outcomes, Receipt, Store, StoreError};
pub use time::Timestamp;

/// The workspace README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// This crate's README, its examples compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct CrateReadmeDoctests;
