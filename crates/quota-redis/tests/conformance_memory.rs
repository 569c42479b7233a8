//! The store conformance suite against `quota_core::MemoryStore`.
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;

use quota_core::MemoryStore;

struct Memory(MemoryStore);

impl conformance::Harness for Memory {
    type S = MemoryStore;
    fn store(&self) -> &MemoryStore {
        &self.0
    }
}

async fn memory() -> Memory {
    Memory(MemoryStore::new())
}

conformance::store_conformance!(memory);
