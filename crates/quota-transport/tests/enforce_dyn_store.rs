//! The layer over a store chosen at run time, a trait object
//! (`Arc<dyn DynStore>`) over memory or over the shared Redis at
//! 127.0.0.1:6379 (`QUOTA_TEST_REDIS_URL` overrides it; the test fails,
//! never skips, when Redis is away), with accounts behind an
//! `Arc<dyn DynAccountAdmin>`. (Accounts stay in memory: they have no TTL,
//! and this test could not remove them from the shared Redis; quota-redis
//! tests Redis accounts behind the trait object.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod enforce_support;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use enforce_support::{serve, VirtualClock, SEED_HEADERS, T0};
use quota_core::account::{AccountAdmin, MemoryAccounts, NewAccount};
use quota_core::dynamic::{DynAccountAdmin, DynStore};
use quota_core::policy::{Money, Policy};
use quota_core::{MemoryStore, Timestamp};
use quota_redis::{Clock, RedisConfig, RedisStore};
use quota_transport::enforce::EnforceLayer;

/// Redis when given a URL, memory otherwise: the choice a service makes
/// from its configuration, with no enum of its own.
async fn pick(redis_url: Option<&str>) -> Arc<dyn DynStore> {
    let Some(url) = redis_url else {
        return Arc::new(MemoryStore::new());
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("quota-test:transport-dyn:{}-{nanos}:", std::process::id());
    // Virtual time: the layer's clock decides, not Redis `TIME`. The limit
    // keys expire a little after their windows end.
    let config = RedisConfig::default()
        .with_prefix(prefix)
        .with_clock(Clock::Caller);
    let store = RedisStore::connect(url, config).await.unwrap();
    assert!(store.health().redis_ok, "Redis answers at {url}");
    Arc::new(store)
}

async fn spend_a_budget_through(redis_url: Option<&str>) {
    let store = pick(redis_url).await;
    let accounts: Arc<dyn DynAccountAdmin> = Arc::new(MemoryAccounts::new());
    let new = NewAccount {
        id: "acct-dyn".into(),
        api_key: "k-dyn".into(),
        tier: "basic".into(),
        credit: Money::from_dollars(5),
    };
    accounts.create(new, Timestamp::EPOCH).await.unwrap();
    let clock = VirtualClock::at(T0);
    let layer =
        EnforceLayer::new(Policy::seed(), Arc::new(store), Arc::new(accounts)).clock(clock.func());
    let server = serve(layer).await;
    // txt2video: one a minute on Basic.
    let ok = server.call("/v1/txt2video", "k-dyn").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(ok.header("x-ratelimit-daily-remaining"), Some("14"));
    let refused = server.call("/v1/txt2video", "k-dyn").await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.body, r#"{"message":"Too Many Attempts."}"#);
    for name in SEED_HEADERS {
        assert!(
            refused.header(name).is_some(),
            "{name} missing: {refused:?}"
        );
    }
    assert_eq!(
        refused.header("retry-after"),
        Some("40"),
        "T0 is 20 s into its minute"
    );
    assert_eq!(server.call("/v1/txt2video", "k-nobody").await.status, 401);
    assert_eq!(server.seen.calls(), 1);
}

#[tokio::test]
async fn memory_chosen_at_run_time() {
    spend_a_budget_through(None).await;
}

#[tokio::test]
async fn redis_chosen_at_run_time() {
    let url = std::env::var("QUOTA_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    spend_a_budget_through(Some(&url)).await;
}
