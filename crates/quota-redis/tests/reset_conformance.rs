//! Resetting one account's counters (the admin API's `DELETE
//! /admin/accounts/{id}/usage`), the same on both stores:
//! `MemoryStore::forget_account` and `RedisStore::forget_account`. Every
//! algorithm's state of the account goes, another account's stays.
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[allow(unused_macros, unused_imports)]
mod conformance;

use conformance::{decide, policy, ALGORITHMS, L, T0};
use quota_core::{MemoryStore, Store};
use quota_redis::RedisStore;

/// Spends `victim`'s and `bystander`'s budgets, forgets `victim` with
/// `forget`, and checks what is left.
async fn forgetting_resets_only_that_account<S: Store>(s: &S, forget: impl AsyncFnOnce(&str)) {
    let limits: Vec<L> = ALGORITHMS
        .iter()
        .enumerate()
        .map(|(i, &alg)| L {
            endpoint: Some(["e", "x", "y", "e"][i]),
            count: 2,
            window_ms: 60_000,
            alg,
            name: alg.as_str(),
        })
        .collect();
    let p = policy(&limits);
    // `victim}:x` and `{victim` share no key with `victim`.
    let accounts = ["victim", "bystander", "victim}:x", "{victim"];
    for acct in accounts {
        for endpoint in ["e", "x", "y"] {
            for _ in 0..2 {
                let o = decide(s, &p, acct, endpoint, 1, T0).await;
                assert!(o.iter().all(|(_, o)| o.admits), "{acct} {endpoint}");
            }
            let o = decide(s, &p, acct, endpoint, 1, T0).await;
            assert!(!o.iter().all(|(_, o)| o.admits), "{acct} {endpoint} spent");
        }
    }
    forget("victim").await;
    for endpoint in ["e", "x", "y"] {
        let o = decide(s, &p, "victim", endpoint, 1, T0 + 1).await;
        assert!(
            o.iter().all(|(_, o)| o.admits),
            "victim {endpoint} reset: {o:?}"
        );
        for (name, o) in &o {
            assert_eq!(
                o.remaining, 1,
                "victim {endpoint} {name}: counts from nothing"
            );
        }
        for other in &accounts[1..] {
            let o = decide(s, &p, other, endpoint, 1, T0 + 1).await;
            assert!(
                !o.iter().all(|(_, o)| o.admits),
                "{other} {endpoint} untouched"
            );
        }
    }
}

#[tokio::test]
async fn the_memory_store_forgets_one_account() {
    let s = MemoryStore::new();
    forgetting_resets_only_that_account(&s, async |a| s.forget_account(a)).await;
}

#[tokio::test]
async fn the_redis_store_forgets_one_account() {
    let keys = common::TestKeys::new("reset");
    let s = RedisStore::connect(&keys.url, keys.virtual_time_config())
        .await
        .unwrap();
    // The account's hashes under its hash tag are not counters: kept.
    let accounts = s.accounts();
    quota_core::account::AccountAdmin::create(
        &accounts,
        quota_core::account::NewAccount {
            id: "victim".into(),
            api_key: "k-victim".into(),
            tier: "t".into(),
            credit: quota_core::policy::Money::ZERO,
        },
        quota_core::Timestamp::EPOCH,
    )
    .await
    .unwrap();
    forgetting_resets_only_that_account(&s, async |a| {
        assert!(s.forget_account(a).await.unwrap() > 0);
    })
    .await;
    let who = quota_core::account::Accounts::resolve(&accounts, "k-victim")
        .await
        .unwrap();
    assert_eq!(who.map(|w| w.account).as_deref(), Some("victim"));
}
