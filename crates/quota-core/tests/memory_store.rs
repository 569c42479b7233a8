//! The in-memory store from many threads.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quota_core::policy::{Policy, Request};
use quota_core::{MemoryStore, Timestamp};

#[test]
fn many_threads_on_one_key_admit_exactly_the_limit() {
    let policy = Arc::new(Policy::seed());
    let store = Arc::new(MemoryStore::new());
    let admitted = Arc::new(AtomicU64::new(0));
    let now = Timestamp::from_secs(1_795_860_000);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (policy, store, admitted) = (policy.clone(), store.clone(), admitted.clone());
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let req = Request { account: "shared", tier: "premium", endpoint: "txt2img", cost: 1 };
                    if store.check(&policy, &req, now).unwrap().is_admitted() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 300);
}

#[test]
fn many_threads_on_many_keys_keep_each_budget_apart() {
    let policy = Arc::new(Policy::seed());
    let store = Arc::new(MemoryStore::with_shards(4));
    let now = Timestamp::from_secs(1_795_860_000);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (policy, store) = (policy.clone(), store.clone());
            std::thread::spawn(move || {
                let mut admitted = 0;
                for i in 0..400 {
                    let account = format!("acct-{}", (i + t) % 100);
                    let req = Request { account: &account, tier: "basic", endpoint: "txt2img", cost: 1 };
                    admitted += u64::from(store.check(&policy, &req, now).unwrap().is_admitted());
                }
                admitted
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 100 * 3, "each of 100 accounts gets exactly its 3 per minute");
}
