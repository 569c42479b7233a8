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
                    let req = Request {
                        account: "shared",
                        tier: "premium",
                        endpoint: "txt2img",
                        cost: 1,
                    };
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
                    let req = Request {
                        account: &account,
                        tier: "basic",
                        endpoint: "txt2img",
                        cost: 1,
                    };
                    admitted += u64::from(store.check(&policy, &req, now).unwrap().is_admitted());
                }
                admitted
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(
        total,
        100 * 3,
        "each of 100 accounts gets exactly its 3 per minute"
    );
}

/// Polls a future that is ready at once (the memory store's are).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the memory store's futures are ready at once"),
    }
}

#[test]
fn the_store_trait_takes_a_locally_owned_plan() {
    let policy = Policy::seed();
    let store = MemoryStore::new();
    let now = Timestamp::from_secs(1_795_860_000);
    let decision = {
        let req = Request {
            account: "a",
            tier: "basic",
            endpoint: "txt2img",
            cost: 1,
        };
        let plan = policy.plan(&req).unwrap();
        let d = ready(quota_core::store::decide(&store, &plan, now)).unwrap();
        d.minute().unwrap().remaining()
    };
    assert_eq!(decision, 2);
    let req = Request {
        account: "a",
        tier: "basic",
        endpoint: "txt2img",
        cost: 1,
    };
    let plan = policy.plan(&req).unwrap();
    let peeked = ready(quota_core::Store::peek(&store, &plan, now)).unwrap();
    assert_eq!(peeked[0].remaining, 1);
}

#[test]
fn a_share_of_the_limits_admits_count_over_parts() {
    let policy = Policy::seed();
    let store = MemoryStore::new();
    let now = Timestamp::from_secs(1_795_860_000);
    let req = Request {
        account: "a",
        tier: "premium",
        endpoint: "txt2img",
        cost: 1,
    };
    let plan = policy.plan(&req).unwrap();
    let admitted = (0..150)
        .filter(|_| store.decide_share(&plan, now, 3).iter().all(|o| o.admits))
        .count();
    assert_eq!(admitted, 100, "a third of 300 per minute");
    // A cost above the share is refused here, consuming nothing.
    let big = Request {
        account: "b",
        tier: "basic",
        endpoint: "txt2img",
        cost: 2,
    };
    let plan = policy.plan(&big).unwrap();
    let outcomes = store.decide_share(&plan, now, 3); // minute share: max(3 / 3, 1) = 1
    assert!(!outcomes[0].admits);
    assert_eq!(outcomes[0].retry_after_ms, 60_000);
    assert_eq!(
        store.peek_share(&plan, now, 3)[1].remaining,
        31,
        "the daily share (100 / 3) is untouched"
    );
}
