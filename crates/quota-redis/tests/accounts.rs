//! Accounts in Redis: identities, atomic charges, payments that every
//! gateway node sees at once.
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use quota_core::account::{
    first_key_id, key_digest, AccountAdmin, AccountError, AccountUpdate, Accounts, Charge,
    Identity, NewAccount, NewKey,
};
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
    assert!(
        matches!(&same_id, Err(AccountError::Exists(id)) if id == "acct-1"),
        "{same_id:?}"
    );
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
    assert!(
        matches!(&same_key, Err(AccountError::Exists(id)) if id == "acct-2"),
        "{same_key:?}"
    );
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
    let refunded = a.refund("nobody", price).await;
    assert!(
        matches!(&refunded, Err(AccountError::NotFound(id)) if id == "nobody"),
        "{refunded:?}"
    );
    let charged = a.charge("nobody", price).await;
    assert!(
        matches!(&charged, Err(AccountError::NotFound(id)) if id == "nobody"),
        "{charged:?}"
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
    assert!(
        matches!(&missing, Err(AccountError::NotFound(id)) if id == "nobody"),
        "{missing:?}"
    );
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

/// A key, and its SHA-1 and SHA-256 in hex (from `sha1sum`/`sha256sum`).
const LEGACY_KEY: &str = "k-legacy-0123456789abcdef";
const LEGACY_SHA1: &str = "a5d00ae31e281654d39db783b1a0c584ea61915b";
const LEGACY_SHA256: &str = "7a95ee24a1227ad50be6c77e6b44c17d5f76001702954271053b301e9589855a";

/// Writes account `acct-1` (Premium) as versions before the SHA-256 digests
/// did: its `key` field and its index under the SHA-1 of [`LEGACY_KEY`].
fn write_sha1_layout(keys: &common::TestKeys, key_field: &str) {
    let mut c = keys.connection();
    let p = &keys.prefix;
    let _: () = redis::cmd("HSET")
        .arg(format!("{p}{{acct-1}}:account"))
        .arg(&[
            ("id", "acct-1"),
            ("tier", "premium"),
            ("credit", "5000000"),
            ("paid", "0"),
            ("spent", "0"),
            ("requests", "0"),
            ("created_at", "0"),
            ("key", key_field),
        ])
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{p}apikey:{LEGACY_SHA1}"))
        .arg("acct-1")
        .query(&mut c)
        .unwrap();
}

/// Every value under the test's prefix, as text, by key.
fn every_value(keys: &common::TestKeys) -> Vec<(String, Vec<String>)> {
    let mut c = keys.connection();
    keys.keys()
        .into_iter()
        .map(|key| {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut c).unwrap();
            let values: Vec<String> = match kind.as_str() {
                "string" => vec![redis::cmd("GET").arg(&key).query(&mut c).unwrap()],
                "hash" => redis::cmd("HGETALL").arg(&key).query(&mut c).unwrap(),
                other => panic!("{key}: unexpected type {other}"),
            };
            (key, values)
        })
        .collect()
}

#[tokio::test]
async fn a_created_account_is_indexed_by_the_sha256_of_its_key() {
    let keys = common::TestKeys::new("acct-sha256");
    let a = accounts(&keys);
    a.create(
        new("acct-1", LEGACY_KEY, Money::from_dollars(5)),
        Timestamp::EPOCH,
    )
    .await
    .unwrap();
    let p = &keys.prefix;
    let index = format!("{p}apikey:{LEGACY_SHA256}");
    assert_eq!(
        keys.keys(),
        vec![
            format!("{p}accounts"),
            format!("{p}apikey:{LEGACY_SHA256}"),
            format!("{p}{{acct-1}}:account"),
            format!("{p}{{acct-1}}:keys"),
        ],
    );
    let mut c = keys.connection();
    let id: String = redis::cmd("GET").arg(&index).query(&mut c).unwrap();
    let key_id: String = redis::cmd("HGET")
        .arg(format!("{p}{{acct-1}}:keys"))
        .arg(format!("d:{LEGACY_SHA256}"))
        .query(&mut c)
        .unwrap();
    assert_eq!(
        (id.as_str(), key_id.as_str()),
        ("acct-1", format!("key_{}", &LEGACY_SHA256[..12]).as_str())
    );
}

#[tokio::test]
async fn a_key_of_the_sha1_layout_resolves_and_moves_to_its_sha256() {
    let keys = common::TestKeys::new("acct-sha1-move");
    write_sha1_layout(&keys, LEGACY_SHA1);
    let a = accounts(&keys);
    let who = Identity {
        account: "acct-1".into(),
        tier: "premium".into(),
    };
    assert_eq!(a.resolve(LEGACY_KEY).await.unwrap(), Some(who.clone()));

    let p = &keys.prefix;
    let values = every_value(&keys);
    let names: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{p}apikey:{LEGACY_SHA256}"),
            format!("{p}{{acct-1}}:account")
        ],
        "the SHA-1 index is gone, the SHA-256 one is there"
    );
    assert_eq!(values[0].1, ["acct-1"]);
    let fields = &values[1].1;
    let key_field = fields.chunks(2).find(|f| f[0] == "key").map(|f| &f[1]);
    assert_eq!(key_field.map(String::as_str), Some(LEGACY_SHA256));
    for (key, values) in &values {
        assert!(!key.contains(LEGACY_KEY), "{key}");
        for v in values {
            assert!(!v.contains(LEGACY_KEY), "{key} holds the key: {v}");
            assert!(!v.contains(LEGACY_SHA1), "{key} still holds the SHA-1: {v}");
        }
    }

    // From now on, the SHA-256 index answers (on another node as well).
    let other = accounts(&keys);
    assert_eq!(other.resolve(LEGACY_KEY).await.unwrap(), Some(who));
    assert_eq!(a.resolve("k-other").await.unwrap(), None);
}

#[tokio::test]
async fn a_move_cut_short_is_finished_by_the_next_resolve() {
    // The `key` field was rewritten, then the resolve stopped before
    // writing the SHA-256 index.
    let keys = common::TestKeys::new("acct-sha1-half");
    write_sha1_layout(&keys, LEGACY_SHA256);
    let a = accounts(&keys);
    assert_eq!(
        a.resolve(LEGACY_KEY).await.unwrap().map(|w| w.account),
        Some("acct-1".to_owned())
    );
    let p = &keys.prefix;
    assert_eq!(
        keys.keys(),
        vec![
            format!("{p}apikey:{LEGACY_SHA256}"),
            format!("{p}{{acct-1}}:account")
        ],
    );
}

#[tokio::test]
async fn a_sha1_index_of_an_account_with_another_key_resolves_to_nobody() {
    let keys = common::TestKeys::new("acct-sha1-stale");
    write_sha1_layout(&keys, "0000000000000000000000000000000000000000");
    let a = accounts(&keys);
    assert_eq!(a.resolve(LEGACY_KEY).await.unwrap(), None);
    let p = &keys.prefix;
    assert_eq!(
        keys.keys(),
        vec![
            format!("{p}apikey:{LEGACY_SHA1}"),
            format!("{p}{{acct-1}}:account")
        ],
        "nothing moved"
    );
}

#[tokio::test]
async fn accounts_behind_a_trait_object_answer_as_redis_does() {
    use std::sync::Arc;

    use quota_core::dynamic::{DynAccountAdmin, DynAccounts};

    let keys = common::TestKeys::new("acct-dyn");
    // What a service holds when it picks its accounts at run time.
    let admin: Arc<dyn DynAccountAdmin> = Arc::new(accounts(&keys));
    let created = admin
        .create(
            new("acct-1", "k-dyn", Money::from_dollars(1)),
            Timestamp::EPOCH,
        )
        .await
        .unwrap();
    let price = Money::from_micros(400_000);
    assert_eq!(
        admin.charge("acct-1", price).await.unwrap(),
        Charge::Charged {
            remaining: Money::from_micros(600_000)
        }
    );
    admin.refund("acct-1", price).await.unwrap();
    let paid = admin
        .record_payment("acct-1", Money::from_dollars(2), "premium")
        .await
        .unwrap();
    assert_eq!(
        (paid.tier.as_str(), paid.credit, paid.created_at),
        ("premium", Money::from_dollars(3), created.created_at)
    );
    assert_eq!(admin.get("acct-1").await.unwrap(), Some(paid));

    // Only the enforcement layer's half, over the same Redis.
    let enforce_side: Box<dyn DynAccounts> = Box::new(accounts(&keys));
    assert_eq!(
        enforce_side.resolve("k-dyn").await.unwrap(),
        Some(Identity {
            account: "acct-1".into(),
            tier: "premium".into()
        })
    );
    let missing = enforce_side.charge("nobody", price).await;
    assert!(
        matches!(&missing, Err(AccountError::NotFound(id)) if id == "nobody"),
        "{missing:?}"
    );
}

fn key(id: &str, name: &str, secret: &str) -> NewKey {
    NewKey {
        id: id.into(),
        name: name.into(),
        api_key: secret.into(),
    }
}

#[tokio::test]
async fn named_keys_are_added_listed_expired_and_revoked_for_every_node() {
    let keys = common::TestKeys::new("acct-named-keys");
    let (a, b) = (accounts(&keys), accounts(&keys));
    let t0 = Timestamp::from_secs(1_700_000_000);
    a.create(new("acct-1", "k-first", Money::ZERO), t0)
        .await
        .unwrap();
    let first = a.list_keys("acct-1", t0).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (
            first[0].id.as_str(),
            first[0].name.as_str(),
            first[0].created
        ),
        (first_key_id(&key_digest("k-first")).as_str(), "default", t0)
    );
    let ci = a
        .add_key("acct-1", key("key_ci", "ci", "k-ci"), t0)
        .await
        .unwrap();
    assert_eq!(
        (ci.name.as_str(), ci.last_used, ci.expires),
        ("ci", None, None)
    );
    // Taken: the id in the account, or the key anywhere.
    assert!(matches!(
        a.add_key("acct-1", key("key_ci", "again", "k-other"), t0)
            .await,
        Err(AccountError::Exists(_))
    ));
    assert!(matches!(
        a.add_key("acct-1", key("key_x", "dup", "k-ci"), t0).await,
        Err(AccountError::Exists(_))
    ));
    assert!(matches!(
        a.add_key("nobody", key("key_y", "y", "k-y"), t0).await,
        Err(AccountError::NotFound(_))
    ));
    // A failed add left no index behind.
    assert_eq!(b.resolve("k-other").await.unwrap(), None);
    assert_eq!(b.resolve("k-y").await.unwrap(), None);

    // Both keys resolve on the other node, and their use is noted.
    assert_eq!(b.resolve("k-ci").await.unwrap().unwrap().account, "acct-1");
    assert_eq!(
        b.resolve("k-first").await.unwrap().unwrap().account,
        "acct-1"
    );
    let listed = a.list_keys("acct-1", t0).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|k| k.last_used.is_some()), "{listed:?}");

    // An expiry in the past: the key stops on every node, and is gone.
    let expired = a
        .expire_key("acct-1", "key_ci", Timestamp::from_secs(1))
        .await
        .unwrap();
    assert_eq!(expired.expires, Some(Timestamp::from_secs(1)));
    assert_eq!(b.resolve("k-ci").await.unwrap(), None);
    assert_eq!(
        keys.keys().iter().filter(|k| k.contains("apikey:")).count(),
        1
    );
    // A future one: still working.
    let later = Timestamp::from_unix_duration(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            + std::time::Duration::from_secs(3600),
    );
    a.add_key("acct-1", key("key_2", "two", "k-two"), t0)
        .await
        .unwrap();
    a.expire_key("acct-1", "key_2", later).await.unwrap();
    assert!(b.resolve("k-two").await.unwrap().is_some());

    // Revoked: at once, for every node.
    let first_id = first_key_id(&key_digest("k-first"));
    a.revoke_key("acct-1", &first_id).await.unwrap();
    assert_eq!(b.resolve("k-first").await.unwrap(), None);
    assert!(matches!(
        a.revoke_key("acct-1", &first_id).await,
        Err(AccountError::KeyNotFound { .. })
    ));
    assert!(matches!(
        a.expire_key("nobody", "key_2", later).await,
        Err(AccountError::NotFound(_))
    ));
    let left: Vec<String> = a
        .list_keys("acct-1", t0)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(left, ["key_2"]);
    for (key, values) in every_value_but_sets(&keys) {
        for v in values {
            for secret in ["k-first", "k-ci", "k-two"] {
                assert!(!v.contains(secret), "{key} holds a key");
            }
        }
    }
}

/// Every string and hash value under the prefix.
fn every_value_but_sets(keys: &common::TestKeys) -> Vec<(String, Vec<String>)> {
    let mut c = keys.connection();
    keys.keys()
        .into_iter()
        .filter_map(|key| {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut c).unwrap();
            let values: Vec<String> = match kind.as_str() {
                "string" => vec![redis::cmd("GET").arg(&key).query(&mut c).unwrap()],
                "hash" => redis::cmd("HGETALL").arg(&key).query(&mut c).unwrap(),
                _ => return None,
            };
            Some((key, values))
        })
        .collect()
}

#[tokio::test]
async fn the_one_key_of_an_account_before_named_keys_becomes_its_first() {
    // The layout before named keys: the SHA-256 in the account's `key`
    // field and its index; no keys hash, no list of accounts.
    let keys = common::TestKeys::new("acct-pre-named");
    write_sha1_layout(&keys, LEGACY_SHA256);
    let mut c = keys.connection();
    let p = &keys.prefix;
    let _: () = redis::cmd("SET")
        .arg(format!("{p}apikey:{LEGACY_SHA256}"))
        .arg("acct-1")
        .query(&mut c)
        .unwrap();
    let a = accounts(&keys);
    let listed = a.list_keys("acct-1", Timestamp::EPOCH).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, format!("key_{}", &LEGACY_SHA256[..12]));
    assert_eq!(listed[0].name, "default");
    assert_eq!(
        a.resolve(LEGACY_KEY).await.unwrap().map(|w| w.tier),
        Some("premium".to_owned())
    );
    let field: Option<String> = redis::cmd("HGET")
        .arg(format!("{p}{{acct-1}}:account"))
        .arg("key")
        .query(&mut c)
        .unwrap();
    assert_eq!(field, None, "moved to the keys hash");
    // Listed, though it was never added to the list of accounts.
    let page = a.list(None, 10, None).await.unwrap();
    assert_eq!(
        page.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["acct-1"]
    );
    // Revoking it works like any key's.
    a.revoke_key("acct-1", &listed[0].id).await.unwrap();
    assert_eq!(a.resolve(LEGACY_KEY).await.unwrap(), None);
}

#[tokio::test]
async fn accounts_list_in_id_order_page_by_page_with_a_tier_filter() {
    let keys = common::TestKeys::new("acct-list");
    let a = accounts(&keys);
    for i in 0..7 {
        a.create(
            new(&format!("acct-{i}"), &format!("k-{i}"), Money::ZERO),
            Timestamp::EPOCH,
        )
        .await
        .unwrap();
    }
    let page1 = a.list(None, 3, None).await.unwrap();
    let ids =
        |p: &[quota_core::account::Account]| p.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&page1), ["acct-0", "acct-1", "acct-2"]);
    let page2 = a.list(Some("acct-2"), 3, None).await.unwrap();
    assert_eq!(ids(&page2), ["acct-3", "acct-4", "acct-5"]);
    let page3 = a.list(Some("acct-5"), 3, None).await.unwrap();
    assert_eq!(ids(&page3), ["acct-6"]);
    a.update(
        "acct-4",
        AccountUpdate {
            tier: Some("premium".into()),
            credit: Some(Money::from_dollars(3)),
        },
    )
    .await
    .unwrap();
    let a4 = a.get("acct-4").await.unwrap().unwrap();
    assert_eq!(
        (a4.tier.as_str(), a4.credit),
        ("premium", Money::from_dollars(3))
    );
    assert_eq!(
        ids(&a.list(None, 10, Some("premium")).await.unwrap()),
        ["acct-4"]
    );
    assert_eq!(a.list(None, 2, Some("basic")).await.unwrap().len(), 2);
    assert!(matches!(
        a.update("nobody", AccountUpdate::default()).await,
        Err(AccountError::NotFound(_))
    ));

    // Deleted: gone from the list, its key resolves to nobody, nothing of it left.
    a.delete("acct-4").await.unwrap();
    assert_eq!(a.resolve("k-4").await.unwrap(), None);
    assert!(a.list(None, 10, Some("premium")).await.unwrap().is_empty());
    assert!(
        keys.keys().iter().all(|k| !k.contains("acct-4")),
        "{:?}",
        keys.keys()
    );
    assert!(matches!(
        a.delete("acct-4").await,
        Err(AccountError::NotFound(_))
    ));
}
