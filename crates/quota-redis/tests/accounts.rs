//! Accounts in Redis: identities, atomic charges, payments that every
//! gateway node sees at once.
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use quota_core::account::{AccountAdmin, AccountError, Accounts, Charge, Identity, NewAccount};
use quota_core::policy::Money;
use quota_core::Timestamp;
use quota_redis::{RedisAccounts, RedisStore};

fn new(id: &str, key: &str, credit: Money) -> NewAccount {
    NewAccount {
        id: id.into(),
        api_key: key.into(),
        tier: "basic".into(),
        credit,
    }
}

fn accounts(keys: &common::TestKeys) -> RedisAccounts {
    RedisAccounts::lazy(&keys.url, &keys.config()).unwrap()
}

#[tokio::test]
async fn a_created_account_resolves_from_its_api_key() {
    let keys = common::TestKeys::new("acct-resolve");
    let a = accounts(&keys);
    let created = a
        .create(
            new("acct-1", "k-secret", Money::from_dollars(5)),
            Timestamp::from_millis(42),
        )
        .await
        .unwrap();
    assert_eq!(
        (created.credit, created.requests, created.created_at),
        (Money::from_dollars(5), 0, Timestamp::from_millis(42))
    );
    assert_eq!(
        a.resolve("k-secret").await.unwrap(),
        Some(Identity {
            account: "acct-1".into(),
            tier: "basic".into()
        })
    );
    assert_eq!(a.resolve("k-other").await.unwrap(), None);
    assert_eq!(a.get("acct-1").await.unwrap(), Some(created));
    assert_eq!(a.get("nobody").await.unwrap(), None);
}

#[tokio::test]
async fn creating_a_taken_id_or_key_fails_and_changes_nothing() {
    let keys = common::TestKeys::new("acct-exists");
    let a = accounts(&keys);
    a.create(
        new("acct-1", "k-1", Money::from_dollars(5)),
        Timestamp::EPOCH,
    )
    .await
    .unwrap();
    let same_id = a
        .create(
            new("acct-1", "k-2", Money::from_dollars(9)),
            Timestamp::EPOCH,
        )
        .await;
    assert_eq!(same_id, Err(AccountError::Exists("acct-1".into())));
    assert_eq!(
        a.resolve("k-2").await.unwrap(),
        None,
        "the failed create left no key behind"
    );
    let same_key = a
        .create(
            new("acct-2", "k-1", Money::from_dollars(9)),
            Timestamp::EPOCH,
        )
        .await;
    assert_eq!(same_key, Err(AccountError::Exists("acct-2".into())));
    assert_eq!(a.get("acct-2").await.unwrap(), None);
    assert_eq!(
        a.get("acct-1").await.unwrap().unwrap().credit,
        Money::from_dollars(5)
    );
}

#[tokio::test]
async fn concurrent_charges_never_overdraw_the_credit() {
    let keys = common::TestKeys::new("acct-charge");
    let a = accounts(&keys);
    let price = Money::from_micros(250_000);
    a.create(
        new("acct-1", "k-1", Money::from_micros(10 * 250_000)),
        Timestamp::EPOCH,
    )
    .await
    .unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move { a.charge("acct-1", price).await.unwrap() })
        })
        .collect();
    let mut charged = 0;
    for t in tasks {
        match t.await.unwrap() {
            Charge::Charged { .. } => charged += 1,
            Charge::Insufficient { credit, price: p } => assert!(credit < p),
        }
    }
    assert_eq!(charged, 10);
    let acct = a.get("acct-1").await.unwrap().unwrap();
    assert_eq!(
        (acct.credit, acct.spent, acct.requests),
        (Money::ZERO, Money::from_micros(2_500_000), 10)
    );
}

#[tokio::test]
async fn a_refund_gives_the_charge_back() {
    let keys = common::TestKeys::new("acct-refund");
    let a = accounts(&keys);
    a.create(
        new("acct-1", "k-1", Money::from_dollars(1)),
        Timestamp::EPOCH,
    )
    .await
    .unwrap();
    let price = Money::from_micros(10_000);
    assert_eq!(
        a.charge("acct-1", price).await.unwrap(),
        Charge::Charged {
            remaining: Money::from_micros(990_000)
        }
    );
    a.refund("acct-1", price).await.unwrap();
    let acct = a.get("acct-1").await.unwrap().unwrap();
    assert_eq!(
        (acct.credit, acct.spent, acct.requests),
        (Money::from_dollars(1), Money::ZERO, 0)
    );
    assert_eq!(
        a.refund("nobody", price).await,
        Err(AccountError::NotFound("nobody".into()))
    );
    assert_eq!(
        a.charge("nobody", price).await,
        Err(AccountError::NotFound("nobody".into()))
    );
}

#[tokio::test]
async fn insufficient_credit_debits_nothing() {
    let keys = common::TestKeys::new("acct-short");
    let a = accounts(&keys);
    a.create(
        new("acct-1", "k-1", Money::from_micros(5)),
        Timestamp::EPOCH,
    )
    .await
    .unwrap();
    let r = a.charge("acct-1", Money::from_micros(6)).await.unwrap();
    assert_eq!(
        r,
        Charge::Insufficient {
            credit: Money::from_micros(5),
            price: Money::from_micros(6)
        }
    );
    assert_eq!(a.get("acct-1").await.unwrap().unwrap().requests, 0);
}

#[tokio::test]
async fn a_payment_on_one_node_upgrades_the_account_on_every_node() {
    let keys = common::TestKeys::new("acct-pay");
    let node_a = accounts(&keys);
    let store_b = RedisStore::connect(&keys.url, keys.config()).await.unwrap();
    let node_b = store_b.accounts();
    node_a
        .create(
            new("acct-1", "k-1", Money::from_dollars(5)),
            Timestamp::EPOCH,
        )
        .await
        .unwrap();
    assert_eq!(node_b.resolve("k-1").await.unwrap().unwrap().tier, "basic");

    let paid = node_a
        .record_payment("acct-1", Money::from_dollars(20), "premium")
        .await
        .unwrap();
    assert_eq!(
        (paid.tier.as_str(), paid.credit, paid.paid),
        ("premium", Money::from_dollars(25), Money::from_dollars(20))
    );
    assert_eq!(
        node_b.resolve("k-1").await.unwrap().unwrap().tier,
        "premium",
        "the other node sees it at once"
    );
    let missing = node_b
        .record_payment("nobody", Money::from_dollars(1), "premium")
        .await;
    assert_eq!(missing, Err(AccountError::NotFound("nobody".into())));
}

#[tokio::test]
async fn money_stays_exact_beyond_lua_number_precision() {
    let keys = common::TestKeys::new("acct-exact");
    let a = accounts(&keys);
    let huge = Money::from_micros((1 << 53) + 1);
    a.create(new("acct-1", "k-1", huge), Timestamp::EPOCH)
        .await
        .unwrap();
    let r = a.charge("acct-1", Money::from_micros(1)).await.unwrap();
    assert_eq!(
        r,
        Charge::Charged {
            remaining: Money::from_micros(1 << 53)
        }
    );
    let paid = a
        .record_payment("acct-1", Money::from_micros(3), "premium")
        .await
        .unwrap();
    assert_eq!(paid.credit, Money::from_micros((1 << 53) + 3));
}

#[tokio::test]
async fn api_keys_never_reach_redis_in_clear() {
    let keys = common::TestKeys::new("acct-digest");
    let a = accounts(&keys);
    let secret = "k-very-secret-0123456789";
    a.create(
        new("acct-1", secret, Money::from_dollars(5)),
        Timestamp::EPOCH,
    )
    .await
    .unwrap();
    let mut c = keys.connection();
    for key in keys.keys() {
        assert!(!key.contains(secret), "{key}");
        let dump: Vec<u8> = redis::cmd("DUMP").arg(&key).query(&mut c).unwrap();
        assert!(
            !dump.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{key} holds the key"
        );
    }
}
