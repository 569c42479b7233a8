//! `RedisStore` on a Redis Cluster (`redis+cluster://`), three masters and
//! three replicas on 127.0.0.1:7101..7106 (`scripts/ensure-redis-cluster.sh`,
//! started by `scripts/test.sh`, which sets `QUOTA_REDIS_CLUSTER`; without
//! it these tests say that they skip).
//!
//! Every key of one decision in one slot (asked of the cluster with
//! `CLUSTER KEYSLOT`), the script loaded on every node, two stores sharing
//! one budget exactly, accounts, and decisions that go on while the
//! account's slot migrates to another master (`ASK`) and after it moved
//! (`MOVED`).
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::cluster;
use quota_core::account::{AccountAdmin, Accounts, Charge, NewAccount};
use quota_core::algorithm::Algorithm;
use quota_core::policy::{
    Count, EndpointSpec, LimitSpec, Money, Policy, PolicySpec, Request, TierSpec, WindowLength,
};
use quota_core::Timestamp;
use quota_redis::{KeySpace, RedisStore, Source};

const T0: u64 = 1_700_000_000_000;

fn limit(
    endpoint: Option<&str>,
    per_match: bool,
    name: &str,
    window_ms: u64,
    count: u64,
) -> LimitSpec {
    LimitSpec {
        endpoint: endpoint.map(str::to_owned),
        per_match,
        name: Some(name.to_owned()),
        window: WindowLength::from_millis(window_ms),
        count: Count::Limited(count),
        algorithm: Algorithm::FixedWindow,
    }
}

/// Endpoint limits per minute and per day, a pattern budget per match and
/// a shared one, and tier-wide limits: every kind of key a decision touches.
fn policy(count: u64) -> Policy {
    let endpoints = ["e", "p/*"]
        .into_iter()
        .map(|p| EndpointSpec {
            path: p.to_owned(),
            price: None,
            priority: None,
        })
        .collect();
    let spec = PolicySpec {
        endpoints,
        tiers: vec![TierSpec {
            name: "t".into(),
            granted: None,
            limits: vec![
                limit(Some("e"), false, "minute", 60_000, count),
                LimitSpec {
                    algorithm: Algorithm::SlidingLog,
                    ..limit(Some("e"), false, "daily", 86_400_000, count)
                },
                limit(Some("p/*"), true, "each", 60_000, count),
                LimitSpec {
                    algorithm: Algorithm::Gcra,
                    ..limit(Some("p/*"), false, "shared", 60_000, count)
                },
                limit(None, false, "tier-minute", 60_000, count),
                LimitSpec {
                    algorithm: Algorithm::SlidingWindow,
                    ..limit(None, false, "tier-daily", 86_400_000, count)
                },
            ],
        }],
        uploads: None,
    };
    Policy::new(spec).unwrap()
}

fn request<'a>(account: &'a str, endpoint: &'a str) -> Request<'a> {
    Request {
        account,
        tier: "t",
        endpoint,
        cost: 1,
    }
}

#[tokio::test]
async fn every_key_of_a_decision_is_in_one_slot() {
    let Some(keys) = common::TestKeys::cluster("cluster-slots") else {
        return;
    };
    let store = RedisStore::connect(&keys.url, keys.virtual_time_config())
        .await
        .unwrap();
    assert!(store.health().redis_ok, "the cluster answers");
    let policy = policy(100);
    let space = KeySpace::new(&keys.prefix).unwrap();
    let mut slots_seen = std::collections::BTreeSet::new();
    for account in ["acct-1", "acct-2", "a}b{c", "", "x:y%", "premium-42"] {
        let mut slot_of_account = None;
        for endpoint in ["e", "p/x"] {
            let plan = policy.plan(&request(account, endpoint)).unwrap();
            let plan_keys = store.plan_keys(&plan);
            // Endpoint (minute, daily) or pattern limits plus the tier-wide ones.
            assert_eq!(plan_keys.len(), 4, "{plan_keys:?}");
            let mut all = plan_keys.clone();
            all.push(space.account_key(account));
            for key in &all {
                let slot = cluster::keyslot(&keys.url, key);
                assert_eq!(
                    *slot_of_account.get_or_insert(slot),
                    slot,
                    "{key} is in another slot than the other keys of {account:?}: {all:?}"
                );
            }
            // The script runs on the slot's master: no CROSSSLOT.
            let answer = store
                .decide_detailed(&plan, Timestamp::from_millis(T0))
                .await
                .unwrap();
            assert_eq!(answer.source, Source::Redis);
            assert!(answer.outcomes.iter().all(|o| o.admits));
        }
        slots_seen.insert(slot_of_account.unwrap());
    }
    assert!(
        slots_seen.len() > 1,
        "accounts spread over slots: {slots_seen:?}"
    );
}

#[tokio::test]
async fn the_script_is_loaded_on_every_node_and_reloaded_after_a_flush() {
    let Some(keys) = common::TestKeys::cluster("cluster-script") else {
        return;
    };
    let store = RedisStore::connect(&keys.url, keys.virtual_time_config())
        .await
        .unwrap();
    let sha = redis::Script::new(include_str!("../src/decide.lua"))
        .get_hash()
        .to_owned();
    let nodes = cluster::nodes(&keys.url);
    assert_eq!(
        nodes.len(),
        6,
        "three masters and three replicas: {nodes:?}"
    );
    for node in &nodes {
        let mut c = redis::Client::open(format!("redis://{}", node.addr))
            .unwrap()
            .get_connection()
            .unwrap();
        let exists: Vec<i64> = redis::cmd("SCRIPT")
            .arg("EXISTS")
            .arg(&sha)
            .query(&mut c)
            .unwrap();
        assert_eq!(exists, [1], "the decision script on {node:?} of {nodes:?}");
    }

    // A node that lost its scripts (a restart, a new replica promoted)
    // gets the script again on the first NOSCRIPT: decisions go on.
    let policy = policy(100);
    let plan = policy.plan(&request("flushed", "e")).unwrap();
    let at = Timestamp::from_millis(T0);
    let first = store.decide_detailed(&plan, at).await.unwrap();
    let master = master_of(&keys.url, &store.plan_keys(&plan)[0]);
    let mut c = redis::Client::open(format!("redis://{}", master.addr))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut c).unwrap();
    let second = store.decide_detailed(&plan, at).await.unwrap();
    assert_eq!(second.source, Source::Redis);
    assert_eq!(
        second.outcomes[0].remaining,
        first.outcomes[0].remaining - 1,
        "the count went on"
    );
    assert_eq!(store.health().errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_the_cluster_share_one_budget_exactly() {
    let Some(keys) = common::TestKeys::cluster("cluster-shared") else {
        return;
    };
    const BUDGET: u64 = 150;
    let config = keys.virtual_time_config();
    let stores = [
        RedisStore::connect(&keys.url, config.clone())
            .await
            .unwrap(),
        RedisStore::connect(&keys.url, config).await.unwrap(),
    ];
    let policy = Arc::new(policy(BUDGET));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = stores[i % 2].clone();
        let policy = Arc::clone(&policy);
        tasks.push(tokio::spawn(async move {
            let plan = policy.plan(&request("shared", "e")).unwrap();
            let (mut admitted, mut refused) = (0u64, 0u64);
            for _ in 0..20 {
                let a = store
                    .decide_detailed(&plan, Timestamp::from_millis(T0))
                    .await
                    .unwrap();
                assert_eq!(a.source, Source::Redis);
                if a.outcomes.iter().all(|o| o.admits) {
                    admitted += 1;
                } else {
                    refused += 1;
                }
            }
            (admitted, refused)
        }));
    }
    let (mut admitted, mut refused) = (0, 0);
    for t in tasks {
        let (a, r) = t.await.unwrap();
        admitted += a;
        refused += r;
    }
    assert_eq!(admitted, BUDGET, "exactly the budget across both stores");
    assert_eq!(refused, 16 * 20 - BUDGET);
}

#[tokio::test]
async fn accounts_live_on_the_cluster() {
    let Some(keys) = common::TestKeys::cluster("cluster-accounts") else {
        return;
    };
    let store = RedisStore::connect(&keys.url, keys.config()).await.unwrap();
    let accounts = store.accounts();
    let now = Timestamp::from_millis(T0);
    let created = accounts
        .create(
            NewAccount {
                id: "acct-c".into(),
                tier: "basic".into(),
                credit: Money::from_micros(1_000),
                api_key: "key-on-the-cluster".into(),
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(created.tier, "basic");
    let who = accounts
        .resolve("key-on-the-cluster")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (who.account.as_str(), who.tier.as_str()),
        ("acct-c", "basic")
    );
    assert!(matches!(
        accounts.charge("acct-c", Money::from_micros(400)).await.unwrap(),
        Charge::Charged { remaining } if remaining == Money::from_micros(600)
    ));
    let paid = accounts
        .record_payment("acct-c", Money::from_micros(5_000), "premium")
        .await
        .unwrap();
    assert_eq!(paid.tier, "premium");
    assert_eq!(paid.credit, Money::from_micros(5_600));
    assert!(accounts.resolve("no-such-key").await.unwrap().is_none());
}

/// The master that serves `key`'s slot now.
fn master_of(url: &str, key: &str) -> cluster::Node {
    let slot = cluster::keyslot(url, key);
    let mut c = cluster::any_node(url);
    let shards: Vec<(i64, i64, String)> = {
        let slots: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut c).unwrap();
        let redis::Value::Array(ranges) = slots else {
            panic!("CLUSTER SLOTS: {slots:?}")
        };
        ranges
            .into_iter()
            .map(|r| {
                let redis::Value::Array(r) = r else {
                    panic!("{r:?}")
                };
                let num = |v: &redis::Value| match v {
                    redis::Value::Int(n) => *n,
                    v => panic!("{v:?}"),
                };
                let redis::Value::Array(master) = &r[2] else {
                    panic!("{r:?}")
                };
                let text = |v: &redis::Value| match v {
                    redis::Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
                    v => panic!("{v:?}"),
                };
                let id = text(&master[2]);
                (num(&r[0]), num(&r[1]), id)
            })
            .collect()
    };
    let id = shards
        .iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&slot))
        .map(|(_, _, id)| id.clone())
        .unwrap_or_else(|| panic!("slot {slot} is served by nobody: {shards:?}"));
    cluster::nodes(url)
        .into_iter()
        .find(|n| n.id == id)
        .unwrap()
}

fn node_connection(node: &cluster::Node) -> redis::Connection {
    redis::Client::open(format!("redis://{}", node.addr))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap()
}

fn setslot(node: &cluster::Node, slot: i64, how: &str, id: &str) {
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg(how)
        .arg(id)
        .query(&mut node_connection(node))
        .unwrap_or_else(|e| panic!("SETSLOT {slot} {how} {id} on {}: {e}", node.addr));
}

/// Moves every key of `slot` from `from` to `to` and hands the slot over,
/// calling `between` once the keys moved but before the slot did (the
/// source then answers `ASK`).
async fn migrate_slot<F: core::future::Future<Output = ()>>(
    url: &str,
    slot: i64,
    from: &cluster::Node,
    to: &cluster::Node,
    between: impl FnOnce() -> F,
) {
    setslot(to, slot, "IMPORTING", &from.id);
    setslot(from, slot, "MIGRATING", &to.id);
    let mut src = node_connection(from);
    let keys: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(1000)
        .query(&mut src)
        .unwrap();
    if !keys.is_empty() {
        let (host, port) = to.addr.rsplit_once(':').unwrap();
        let _: () = redis::cmd("MIGRATE")
            .arg(host)
            .arg(port)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&keys)
            .query(&mut src)
            .unwrap();
    }
    between().await;
    // The new owner first, then the old one, then everyone else.
    setslot(to, slot, "NODE", &to.id);
    setslot(from, slot, "NODE", &to.id);
    for node in cluster::nodes(url) {
        if node.id != to.id && node.id != from.id && node.master {
            setslot(&node, slot, "NODE", &to.id);
        }
    }
}

#[tokio::test]
async fn decisions_follow_a_slot_that_migrates_ask_then_moved() {
    let Some(keys) = common::TestKeys::cluster("cluster-migrate") else {
        return;
    };
    let store = RedisStore::connect(&keys.url, keys.virtual_time_config())
        .await
        .unwrap();
    let policy = policy(1000);
    // An account of this test's own: its slot is moved and moved back.
    let account = format!("migrating-{}", std::process::id());
    let plan = policy.plan(&request(&account, "e")).unwrap();
    let at = Timestamp::from_millis(T0);
    let remaining = |a: &quota_redis::Answer| a.outcomes[0].remaining;
    let first = store.decide_detailed(&plan, at).await.unwrap();
    assert_eq!(remaining(&first), 999);

    let key = store.plan_keys(&plan)[0].clone();
    let slot = cluster::keyslot(&keys.url, &key);
    let from = master_of(&keys.url, &key);
    let to = cluster::nodes(&keys.url)
        .into_iter()
        .find(|n| n.master && !n.failed && n.id != from.id)
        .unwrap();

    // Keys moved, slot not yet: the old master answers ASK.
    let store2 = store.clone();
    let plan2 = &plan;
    migrate_slot(&keys.url, slot, &from, &to, || async move {
        let during = store2.decide_detailed(plan2, at).await.unwrap();
        assert_eq!(during.source, Source::Redis);
        assert_eq!(remaining(&during), 998, "decided on the new master (ASK)");
    })
    .await;
    // Slot moved: the store's slot map is stale, the old master answers MOVED.
    let after = store.decide_detailed(&plan, at).await.unwrap();
    assert_eq!(remaining(&after), 997, "decided on the new master (MOVED)");
    assert_eq!(master_of(&keys.url, &key).id, to.id);

    // And back, so the cluster keeps its layout for the other tests.
    migrate_slot(&keys.url, slot, &to, &from, || async {}).await;
    let back = store.decide_detailed(&plan, at).await.unwrap();
    assert_eq!(
        remaining(&back),
        996,
        "the count went on through both moves"
    );
    assert_eq!(store.health().errors, 0);
}
