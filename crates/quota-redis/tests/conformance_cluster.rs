//! The store conformance suite against `RedisStore` on the Redis Cluster of
//! `QUOTA_REDIS_CLUSTER` (`scripts/test.sh` starts it on 127.0.0.1:7101..7106
//! and sets the variable), with the caller's clock (the suite runs in
//! virtual time). Without the variable each scenario says that it skips the
//! cluster and runs on the memory store instead.
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod conformance;

use std::sync::Arc;

use quota_core::{DynStore, MemoryStore};
use quota_redis::RedisStore;

struct Cluster {
    store: Arc<dyn DynStore>,
    _keys: Option<common::TestKeys>,
}

impl conformance::Harness for Cluster {
    type S = Arc<dyn DynStore>;
    fn store(&self) -> &Arc<dyn DynStore> {
        &self.store
    }
}

async fn cluster() -> Cluster {
    let Some(keys) = common::TestKeys::cluster("conformance-cluster") else {
        return Cluster {
            store: Arc::new(MemoryStore::new()),
            _keys: None,
        };
    };
    let store = RedisStore::connect(&keys.url, keys.virtual_time_config())
        .await
        .unwrap();
    assert!(store.health().redis_ok, "the cluster answers");
    Cluster {
        store: Arc::new(store),
        _keys: Some(keys),
    }
}

conformance::store_conformance!(cluster);
