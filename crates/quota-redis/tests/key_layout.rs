//! Keys: one hash tag per account, documented layout, a TTL on every key
//! that ends when its state stops counting, so idle accounts cost nothing.
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use quota_core::algorithm::Algorithm;
use quota_core::policy::{
    Count, EndpointSpec, LimitSpec, Policy, PolicySpec, Request, TierSpec, WindowLength,
};
use quota_core::Timestamp;
use quota_redis::{Clock, KeySpace, RedisStore};

const T0: u64 = 1_700_000_000_000;

fn policy(window_ms: u64) -> Policy {
    let limit = |endpoint: Option<&str>, name: &str, alg| LimitSpec {
        endpoint: endpoint.map(str::to_owned),
        per_match: false,
        name: Some(name.to_owned()),
        window: WindowLength::from_millis(window_ms),
        count: Count::Limited(4),
        algorithm: alg,
    };
    let spec = PolicySpec {
        endpoints: vec![
            EndpointSpec {
                path: "e".into(),
                price: None,
                priority: None,
            },
            EndpointSpec {
                path: "p/*".into(),
                price: None,
                priority: None,
            },
        ],
        tiers: vec![TierSpec {
            name: "t".into(),
            granted: None,
            limits: vec![
                limit(Some("e"), "fixed", Algorithm::FixedWindow),
                limit(Some("e"), "log", Algorithm::SlidingLog),
                limit(Some("e"), "counter", Algorithm::SlidingWindow),
                limit(Some("e"), "gcra", Algorithm::Gcra),
                LimitSpec {
                    per_match: true,
                    ..limit(Some("p/*"), "each", Algorithm::FixedWindow)
                },
                limit(None, "tier", Algorithm::FixedWindow),
            ],
        }],
        uploads: None,
    };
    Policy::new(spec).unwrap()
}

/// The hash tag Redis Cluster hashes: between the first `{` and the first
/// `}` after it, when that is not empty.
fn cluster_hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let close = key[open + 1..].find('}')? + open + 1;
    (close > open + 1).then(|| &key[open + 1..close])
}

#[tokio::test]
async fn every_key_has_the_documented_name_and_type() {
    let keys = common::TestKeys::new("layout");
    let store = RedisStore::connect(&keys.url, keys.virtual_time_config())
        .await
        .unwrap();
    let policy = policy(1000);
    let plan = policy
        .plan(&Request {
            account: "acct-1",
            tier: "t",
            endpoint: "e",
            cost: 1,
        })
        .unwrap();
    assert!(store
        .decide_detailed(&plan, Timestamp::from_millis(T0))
        .await
        .unwrap()
        .outcomes
        .iter()
        .all(|o| o.admits));

    let prefix = keys.prefix.as_str();
    let mut expected: Vec<String> = plan
        .buckets()
        .flat_map(|b| {
            b.limits()
                .iter()
                .map(move |l| format!("{prefix}{{acct-1}}:{}:{:016x}", b.scope(), l.fingerprint()))
        })
        .collect();
    expected.sort();
    assert_eq!(keys.keys(), expected);

    let mut c = keys.connection();
    for (l, key) in plan.limits().zip(store.plan_keys(&plan)) {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut c).unwrap();
        let want = if l.limit().algorithm() == Algorithm::SlidingLog {
            "zset"
        } else {
            "string"
        };
        assert_eq!(kind, want, "{}", l.name());
    }
}

#[tokio::test]
async fn keys_of_one_account_share_one_hash_tag_whatever_its_id() {
    let keys = common::TestKeys::new("hashtag");
    let store = RedisStore::connect(&keys.url, keys.virtual_time_config())
        .await
        .unwrap();
    let policy = policy(1000);
    let accounts = ["plain", "a}b{c", "", "{x}", "%7D", "u:v"];
    for account in accounts {
        for endpoint in ["e", "p/q", "p/r"] {
            let plan = policy
                .plan(&Request {
                    account,
                    tier: "t",
                    endpoint,
                    cost: 1,
                })
                .unwrap();
            store
                .decide_detailed(&plan, Timestamp::from_millis(T0))
                .await
                .unwrap();
        }
    }
    for account in accounts {
        let tag = KeySpace::hash_tag(account);
        let inner = &tag[1..tag.len() - 1];
        let mine: Vec<String> = keys
            .keys()
            .into_iter()
            .filter(|k| cluster_hash_tag(k) == Some(inner))
            .collect();
        // e: 4 limits, p/q and p/r: 1 each, the tier-wide limit: 1.
        assert_eq!(mine.len(), 7, "{account:?}: {mine:?}");
    }
    let all = keys.keys();
    assert_eq!(all.len(), 7 * accounts.len());
    assert!(
        all.iter().all(|k| cluster_hash_tag(k).is_some()),
        "no key without a hash tag"
    );
}

#[tokio::test]
async fn every_key_expires_when_its_state_stops_counting() {
    let keys = common::TestKeys::new("ttl");
    let grace = 1000;
    let store = RedisStore::connect(
        &keys.url,
        keys.config()
            .with_clock(Clock::Caller)
            .with_ttl_grace(Duration::from_millis(grace)),
    )
    .await
    .unwrap();
    let policy = policy(1000);
    let plan = policy
        .plan(&Request {
            account: "ttl",
            tier: "t",
            endpoint: "e",
            cost: 1,
        })
        .unwrap();
    let now = T0 + 300;
    store
        .decide_detailed(&plan, Timestamp::from_millis(now))
        .await
        .unwrap();

    let mut c = keys.connection();
    for (l, key) in plan.limits().zip(store.plan_keys(&plan)) {
        // Limit::expires_at after one unit at T0 + 300 in a 1 s window.
        let expires_at = match (l.name(), l.limit().algorithm()) {
            (_, Algorithm::FixedWindow) => T0 + 1000,
            (_, Algorithm::SlidingWindow) => T0 + 2000,
            (_, Algorithm::SlidingLog) => now + 1000,
            (_, Algorithm::Gcra) => now + 250, // one emission interval: 1000 / 4
        };
        let want = (expires_at - now + grace) as i64;
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut c).unwrap();
        assert!(
            (want - 200..=want).contains(&pttl),
            "{}: PTTL {pttl} ms, expected about {want}",
            l.name()
        );
    }
}

#[tokio::test]
async fn idle_accounts_leave_no_keys_behind() {
    let keys = common::TestKeys::new("idle");
    let store = RedisStore::connect(&keys.url, keys.config().with_ttl_grace(Duration::ZERO))
        .await
        .unwrap();
    let policy = policy(200);
    let plan = policy
        .plan(&Request {
            account: "idle",
            tier: "t",
            endpoint: "e",
            cost: 1,
        })
        .unwrap();
    store
        .decide_detailed(&plan, Timestamp::EPOCH)
        .await
        .unwrap();
    assert_eq!(keys.keys().len(), 5);
    // Every window of 200 ms has passed after 200 + 200 ms (the sliding
    // window counter counts its previous window once more).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(keys.keys(), Vec::<String>::new());
}
