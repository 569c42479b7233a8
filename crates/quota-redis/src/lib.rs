//! quota-redis: one budget shared by a fleet of gateways, through Redis.
//!
//! [`RedisStore`] implements [`quota_core::Store`]: every decision is one
//! round trip, a Lua script (EVALSHA, reloaded on NOSCRIPT) that runs the
//! same arithmetic as `quota_core::algorithm`, for all four algorithms, over
//! every limit of the plan, all-or-nothing and atomically. A differential
//! test checks that it answers exactly as [`quota_core::MemoryStore`] does.
//!
//! ```no_run
//! use quota_core::policy::{Policy, Request};
//! use quota_core::{Decision, Timestamp};
//! use quota_redis::{FailurePolicy, RedisConfig, RedisStore, Source};
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // 1. Connect (lazily: an unreachable Redis is not an error here).
//! let config = RedisConfig::default().with_failure_policy(FailurePolicy::Local { nodes: 2 });
//! let store = RedisStore::connect("redis://127.0.0.1:6379", config).await?;
//!
//! // 2. Plan the request, 3. decide it (one script call), 4. render it.
//! let policy = Policy::seed();
//! let plan = policy.plan(&Request { account: "acct-42", tier: "basic", endpoint: "txt2img", cost: 1 })?;
//! let now = Timestamp::from_unix_duration(SystemTime::now().duration_since(UNIX_EPOCH)?);
//! let answer = store.decide_detailed(&plan, now).await?; // or through `quota_core::Store`
//! assert_eq!(answer.source, Source::Redis); // Source::Local while Redis is away
//! let decision = Decision::from_outcomes(&plan, &answer.outcomes)?;
//! for (name, value) in decision.headers() {
//!     println!("{name}: {value}");
//! }
//!
//! // What the store has been doing, for /metrics.
//! let health = store.health();
//! println!("redis_ok={} fallback_decisions={}", health.redis_ok, health.fallback_decisions);
//! # Ok(()) }
//! ```
//!
//! # Picking the store at run time
//! A service that runs on Redis in production and in memory on a laptop
//! holds an `Arc<dyn DynStore>` ([`quota_core::dynamic`]): it is a
//! [`quota_core::Store`] itself, so it goes wherever a store does (the
//! enforcement layer of `quota-transport`, [`quota_core::store::decide`]),
//! with no enum of the service's own.
//!
//! ```
//! use std::sync::Arc;
//! use quota_core::{DynStore, MemoryStore};
//! use quota_redis::{RedisConfig, RedisStore};
//!
//! /// Redis when a URL is configured, memory otherwise.
//! async fn pick_store(redis_url: Option<&str>) -> Result<Arc<dyn DynStore>, quota_redis::Error> {
//!     Ok(match redis_url {
//!         Some(url) => Arc::new(RedisStore::connect(url, RedisConfig::default()).await?),
//!         None => Arc::new(MemoryStore::new()),
//!     })
//! }
//! # use quota_core::policy::{Policy, Request};
//! # use quota_core::Timestamp;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let account = format!("doc-pick-store-{}", std::process::id());
//! # let policy = Policy::seed();
//! # let plan = policy.plan(&Request { account: &account, tier: "premium", endpoint: "txt2img", cost: 1 })?;
//! # for url in [None, Some("redis://127.0.0.1:6379")] {
//! let store = pick_store(url).await?;
//! let decision = quota_core::store::decide(&store, &plan, Timestamp::from_secs(1_700_000_000)).await?;
//! assert!(decision.is_admitted());
//! # }
//! # Ok(()) }
//! ```
//!
//! # The clock
//! By default ([`Clock::Redis`]) the script reads Redis `TIME`
//! (`seconds * 1000 + microseconds / 1000`): every gateway node decides with
//! the same clock, so nodes whose clocks disagree still agree on which UTC
//! minute or day a request falls in. The `now` passed to `decide` is then
//! only used by the local fallback. [`Clock::Caller`] uses the caller's
//! `now` instead (virtual time, simulations, the differential test).
//! Redis (5 and later) replicates scripts by their effects, so a script that
//! reads `TIME` and then writes is allowed (and replicas get the written
//! values); this was checked against Redis 7.0.
//!
//! # Keys and TTLs
//! Every key of an account carries the hash tag `{<account>}`, so all the
//! keys one decision touches live in one Redis Cluster slot ([`KeySpace`]
//! has the layout), and the store runs on Redis Cluster: connect with
//! `redis+cluster://host:port[,host:port...]`; `MOVED` and `ASK` are
//! followed, scripts loaded on every node (`docs/redis.md`, [`guide`], tells
//! what a failover does). Limit state is small: a string `window:used` (fixed
//! window), `window:previous:current` (sliding window counter) or `tat`
//! (GCRA), and a sorted set with one member per admitted unit (sliding log).
//! Each key's TTL ends when its state stops counting anything
//! ([`Limit::expires_at`](quota_core::algorithm::Limit::expires_at)) plus a
//! small grace ([`RedisConfig::ttl_grace`]), so idle accounts cost no memory.
//!
//! # When Redis cannot answer
//! Every call is bounded by [`RedisConfig::timeout`] (250 ms by default);
//! the connection reconnects by itself. Connection trouble and timeouts then
//! follow the [`FailurePolicy`]:
//! - [`FailurePolicy::Closed`] (default): the error is returned; the gateway
//!   answers 503 with a JSON message.
//! - [`FailurePolicy::Open`]: admitted, limits not enforced.
//! - [`FailurePolicy::Local`]: decided in memory on this node, with each
//!   limit's count divided by the number of nodes.
//!
//! While Redis is down, one request per [`RedisConfig::probe_interval`] tries
//! it again; the others go straight to the policy. Transitions are logged
//! (`warn` when falling back, `info` when Redis answers again) and
//! [`RedisStore::health`] counts what happened. Errors Redis itself returns
//! (say an ACL that forbids scripts) are returned as
//! [`StoreError::Protocol`](quota_core::StoreError::Protocol) whatever the policy.
//!
//! A decision whose call timed out may still have been counted by Redis
//! (the script ran, the answer came late): a request that got no answer can
//! cost budget, but an answered request is never counted twice, because the
//! store never retries a decision.
//!
//! # Accounts
//! [`RedisAccounts`] keeps accounts, tiers and credit in the same Redis, so a
//! payment recorded on one node upgrades the account on every node at once.
//!
//! The guide in `docs/redis.md` ([`guide`]) shows how to run two gateways on
//! one Redis.

mod accounts;
mod config;
mod conn;
mod error;
mod health;
mod keys;
mod local;
mod reset;
mod script;
mod store;

pub use accounts::RedisAccounts;
pub use config::{Clock, FailurePolicy, RedisConfig};
pub use error::Error;
pub use health::StoreHealth;
pub use keys::KeySpace;
pub use store::{Answer, RedisStore, Source};

#[doc = include_str!("../../../docs/redis.md")]
pub mod guide {}

/// This crate's README, its examples compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
