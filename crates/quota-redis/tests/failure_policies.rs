//! What each failure policy does when Redis cannot answer: nothing listens
//! (127.0.0.1:1, connection refused) or a server never answers (timeouts).
//! Every call returns within the timeout; nothing panics.
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use quota_core::algorithm::Algorithm;
use quota_core::policy::{
    Count, EndpointSpec, LimitSpec, Policy, PolicySpec, Request, TierSpec, WindowLength,
};
use quota_core::{StoreError, Timestamp};
use quota_redis::{Clock, Error, FailurePolicy, RedisConfig, RedisStore, Source};

const NOTHING_LISTENS: &str = "redis://127.0.0.1:1";
const T0: u64 = 1_700_000_000_000;
const TIMEOUT: Duration = Duration::from_millis(250);
/// Scheduling noise allowed on a shared machine.
const SLACK: Duration = Duration::from_millis(250);

fn policy() -> Policy {
    let limit = |endpoint: Option<&str>, name: &str, count| LimitSpec {
        endpoint: endpoint.map(str::to_owned),
        per_match: false,
        name: Some(name.to_owned()),
        window: WindowLength::from_millis(1000),
        count: Count::Limited(count),
        algorithm: Algorithm::FixedWindow,
    };
    let spec = PolicySpec {
        endpoints: ["e", "y"]
            .map(|p| EndpointSpec {
                path: p.into(),
                price: None,
                priority: None,
            })
            .to_vec(),
        tiers: vec![TierSpec {
            name: "t".into(),
            granted: None,
            limits: vec![limit(Some("e"), "endpoint", 10), limit(None, "tier", 12)],
        }],
        uploads: None,
    };
    Policy::new(spec).unwrap()
}

fn config(failure: FailurePolicy) -> RedisConfig {
    RedisConfig::default()
        .with_timeout(TIMEOUT)
        .with_clock(Clock::Caller)
        .with_failure_policy(failure)
}

#[tokio::test]
async fn connecting_to_nothing_returns_at_once_and_reports_redis_down() {
    let started = Instant::now();
    let store = RedisStore::connect(NOTHING_LISTENS, config(FailurePolicy::Closed))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1) + SLACK,
        "took {:?}",
        started.elapsed()
    );
    let health = store.health();
    assert!(!health.redis_ok);
    assert!(health.errors >= 1);
}

#[tokio::test]
async fn closed_policy_returns_unavailable_quickly() {
    let store = RedisStore::connect(NOTHING_LISTENS, config(FailurePolicy::Closed))
        .await
        .unwrap();
    let policy = policy();
    let plan = policy
        .plan(&Request {
            account: "a",
            tier: "t",
            endpoint: "e",
            cost: 1,
        })
        .unwrap();
    for _ in 0..5 {
        let started = Instant::now();
        let r = store
            .decide_detailed(&plan, Timestamp::from_millis(T0))
            .await;
        assert!(matches!(r, Err(StoreError::Unavailable { .. })), "{r:?}");
        assert!(r.as_ref().is_err_and(StoreError::is_transient), "{r:?}");
        assert!(
            started.elapsed() <= TIMEOUT + SLACK,
            "took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(store.health().fallback_decisions, 0);
}

#[tokio::test]
async fn closed_policy_times_out_on_a_server_that_never_answers() {
    let server = common::Blackhole::start();
    // No warm-up ping: the first decision meets the silent server.
    let store = RedisStore::lazy(
        &server.url(),
        config(FailurePolicy::Closed).with_probe_interval(Duration::ZERO),
    )
    .unwrap();
    let policy = policy();
    let plan = policy
        .plan(&Request {
            account: "a",
            tier: "t",
            endpoint: "e",
            cost: 1,
        })
        .unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let r = store
            .decide_detailed(&plan, Timestamp::from_millis(T0))
            .await;
        assert!(
            matches!(r, Err(StoreError::Timeout { after_ms: 250, .. })),
            "{r:?}"
        );
        assert!(r.as_ref().is_err_and(StoreError::is_transient), "{r:?}");
        assert!(
            started.elapsed() <= TIMEOUT + SLACK,
            "took {:?}",
            started.elapsed()
        );
    }
    let health = store.health();
    assert_eq!((health.redis_ok, health.timeouts), (false, 3));
}

#[tokio::test]
async fn while_redis_is_down_only_one_request_per_probe_interval_waits_for_it() {
    let server = common::Blackhole::start();
    let store = RedisStore::lazy(
        &server.url(),
        config(FailurePolicy::Open).with_probe_interval(Duration::from_secs(30)),
    )
    .unwrap();
    let policy = policy();
    let plan = policy
        .plan(&Request {
            account: "a",
            tier: "t",
            endpoint: "e",
            cost: 1,
        })
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        store
            .decide_detailed(&plan, Timestamp::from_millis(T0))
            .await
            .unwrap()
            .source,
        Source::Open
    );
    assert!(
        started.elapsed() >= TIMEOUT,
        "the first request waited for Redis"
    );
    for _ in 0..100 {
        let started = Instant::now();
        assert_eq!(
            store
                .decide_detailed(&plan, Timestamp::from_millis(T0))
                .await
                .unwrap()
                .source,
            Source::Open
        );
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(store.health().timeouts, 1);
}

#[tokio::test]
async fn open_policy_admits_and_reports_every_full_count() {
    let store = RedisStore::connect(NOTHING_LISTENS, config(FailurePolicy::Open))
        .await
        .unwrap();
    let policy = policy();
    let plan = policy
        .plan(&Request {
            account: "a",
            tier: "t",
            endpoint: "e",
            cost: 1,
        })
        .unwrap();
    for _ in 0..50 {
        let answer = store
            .decide_detailed(&plan, Timestamp::from_millis(T0))
            .await
            .unwrap();
        assert_eq!(answer.source, Source::Open);
        assert_eq!(answer.now, Timestamp::from_millis(T0));
        let remaining: Vec<(bool, u64)> = answer
            .outcomes
            .iter()
            .map(|o| (o.admits, o.remaining))
            .collect();
        assert_eq!(remaining, [(true, 10), (true, 12)]);
    }
    assert_eq!(store.health().fallback_decisions, 50);
}

#[tokio::test]
async fn local_policy_enforces_each_nodes_share() {
    let store = RedisStore::connect(NOTHING_LISTENS, config(FailurePolicy::Local { nodes: 2 }))
        .await
        .unwrap();
    let policy = policy();
    let e = policy
        .plan(&Request {
            account: "a",
            tier: "t",
            endpoint: "e",
            cost: 1,
        })
        .unwrap();
    let y = policy
        .plan(&Request {
            account: "a",
            tier: "t",
            endpoint: "y",
            cost: 1,
        })
        .unwrap();
    let at = |ms| Timestamp::from_millis(T0 + ms);

    // endpoint: 10 / 2 = 5 per window on this node; tier: 12 / 2 = 6.
    for left in [4, 3, 2, 1, 0] {
        let answer = store.decide_detailed(&e, at(0)).await.unwrap();
        assert_eq!(answer.source, Source::Local);
        assert!(answer.outcomes.iter().all(|o| o.admits));
        assert_eq!(answer.outcomes[0].remaining, left);
    }
    let refused = store.decide_detailed(&e, at(0)).await.unwrap();
    assert!(
        !refused.outcomes[0].admits,
        "the sixth request exceeds this node's share"
    );
    assert_eq!(refused.outcomes[0].retry_after_ms, 1000);
    // All or nothing locally too: the refusal left the tier-wide share at 1.
    assert!(store.decide_detailed(&y, at(0)).await.unwrap().outcomes[0].admits);
    assert!(!store.decide_detailed(&y, at(0)).await.unwrap().outcomes[0].admits);
    // The next window gives the share again.
    assert!(store
        .decide_detailed(&e, at(1000))
        .await
        .unwrap()
        .outcomes
        .iter()
        .all(|o| o.admits));
    let health = store.health();
    assert_eq!((health.redis_ok, health.fallback_decisions), (false, 9));
}

/// A decision the local fallback counted is given back there; one the
/// `open` policy let through counted nothing and gives nothing back; a
/// refund Redis cannot take is an error (and changes nothing).
#[tokio::test]
async fn refunds_go_where_the_decision_was_counted() {
    use quota_core::{Counted, Store as _};
    let policy = policy();
    let e = policy
        .plan(&Request {
            account: "a",
            tier: "t",
            endpoint: "e",
            cost: 1,
        })
        .unwrap();
    let now = Timestamp::from_millis(T0);
    let local = RedisStore::connect(NOTHING_LISTENS, config(FailurePolicy::Local { nodes: 2 }))
        .await
        .unwrap();
    // This node's share is 5: five admitted, one given back, one more admitted.
    let mut receipts = Vec::new();
    for _ in 0..5 {
        let r = local.decide_with_receipt(&e, now).await.unwrap();
        assert_eq!((r.admitted(), r.counted), (true, Counted::Fallback));
        receipts.push(r);
    }
    assert!(!local.decide_with_receipt(&e, now).await.unwrap().admitted());
    local.refund(&e, &receipts[4], now).await.unwrap();
    assert!(local.decide_with_receipt(&e, now).await.unwrap().admitted());
    assert!(!local.decide_with_receipt(&e, now).await.unwrap().admitted());

    let open = RedisStore::connect(NOTHING_LISTENS, config(FailurePolicy::Open))
        .await
        .unwrap();
    let r = open.decide_with_receipt(&e, now).await.unwrap();
    assert_eq!((r.admitted(), r.counted), (true, Counted::Nothing));
    open.refund(&e, &r, now).await.unwrap();
    // A receipt Redis counted, given back while Redis is away: an error.
    let counted = quota_core::Receipt::new(r.outcomes.clone(), now);
    let err = open.refund(&e, &counted, now).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn redis_errors_are_returned_whatever_the_policy() {
    let keys = common::TestKeys::new("protocol");
    let store = RedisStore::connect(
        &keys.url,
        keys.config().with_failure_policy(FailurePolicy::Open),
    )
    .await
    .unwrap();
    let policy = policy();
    let plan = policy
        .plan(&Request {
            account: "a",
            tier: "t",
            endpoint: "e",
            cost: 1,
        })
        .unwrap();
    // Someone else's data where a limit's state should be.
    let key = store.plan_keys(&plan)[0].clone();
    let mut c = keys.connection();
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("not")
        .arg("ours")
        .query(&mut c)
        .unwrap();
    let r = store.decide_detailed(&plan, Timestamp::EPOCH).await;
    assert!(matches!(r, Err(StoreError::Protocol { .. })), "{r:?}");
    let e = r.unwrap_err();
    assert!(
        !e.is_transient(),
        "Redis answered: trying again changes nothing"
    );
    let source = std::error::Error::source(&e).expect("the Redis error is kept");
    assert!(
        source.downcast_ref::<redis::RedisError>().is_some(),
        "{source:?}"
    );
    let health = store.health();
    assert!(health.redis_ok, "Redis answered; it is not down");
    assert_eq!(health.fallback_decisions, 0);
}

#[tokio::test]
async fn bad_settings_are_rejected_before_connecting() {
    let r = RedisStore::connect(
        "redis://127.0.0.1:6379",
        RedisConfig::default().with_prefix("a{b}"),
    )
    .await;
    assert!(matches!(r, Err(Error::InvalidPrefix(_))));
    let r = RedisStore::connect(
        "redis://127.0.0.1:6379",
        config(FailurePolicy::Local { nodes: 0 }),
    )
    .await;
    assert_eq!(r.err(), Some(Error::ZeroNodes));
    let r = RedisStore::connect("http://user:secret@example.invalid", RedisConfig::default()).await;
    match r {
        Err(Error::InvalidUrl(msg)) => assert!(!msg.contains("secret"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn building_a_store_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let r = RedisStore::lazy("redis://127.0.0.1:6379", RedisConfig::default());
    assert_eq!(r.err(), Some(Error::NoRuntime));
}
