//! The store conformance suite against `RedisStore` on the shared Redis,
//! with the caller's clock (the suite runs in virtual time).
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod conformance;

use quota_redis::RedisStore;

struct Redis {
    store: RedisStore,
    _keys: common::TestKeys,
}

impl conformance::Harness for Redis {
    type S = RedisStore;
    fn store(&self) -> &RedisStore {
        &self.store
    }
}

async fn redis() -> Redis {
    let keys = common::TestKeys::new("conformance");
    let store = RedisStore::connect(&keys.url, keys.virtual_time_config())
        .await
        .unwrap();
    assert!(store.health().redis_ok, "the shared Redis answers");
    Redis { store, _keys: keys }
}

conformance::store_conformance!(redis);
