//! The store conformance suite through `Arc<dyn DynStore>`, the trait
//! object a service holds when it picks its store at run time: once over
//! `quota_core::MemoryStore` and once over `RedisStore` on the shared Redis
//! (caller's clock: the suite runs in virtual time).
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod conformance;

use std::sync::Arc;

use quota_core::{DynStore, MemoryStore};
use quota_redis::RedisStore;

/// A store behind the trait object, and whatever must live as long.
struct Dyn {
    store: Arc<dyn DynStore>,
    _keys: Option<common::TestKeys>,
}

impl conformance::Harness for Dyn {
    type S = Arc<dyn DynStore>;
    fn store(&self) -> &Arc<dyn DynStore> {
        &self.store
    }
}

async fn memory() -> Dyn {
    Dyn {
        store: Arc::new(MemoryStore::new()),
        _keys: None,
    }
}

async fn redis() -> Dyn {
    let keys = common::TestKeys::new("conformance-dyn");
    let store = RedisStore::connect(&keys.url, keys.virtual_time_config())
        .await
        .unwrap();
    assert!(store.health().redis_ok, "the shared Redis answers");
    Dyn {
        store: Arc::new(store),
        _keys: Some(keys),
    }
}

mod memory {
    use super::*;
    conformance::store_conformance!(memory);
}

mod redis {
    use super::*;
    conformance::store_conformance!(redis);
}
