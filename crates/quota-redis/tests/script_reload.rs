//! NOSCRIPT recovery: after `SCRIPT FLUSH` (a restart, a failover to a
//! replica without the script) the next decision reloads the script and
//! counts on. Runs on a private redis-server, not to flush the shared one.
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use quota_core::policy::{Policy, Request};
use quota_core::Timestamp;
use quota_redis::{RedisConfig, RedisStore, Source};

#[tokio::test]
async fn decisions_survive_a_script_flush() {
    let server = common::PrivateRedis::start();
    let store = RedisStore::connect(&server.url(), RedisConfig::default())
        .await
        .unwrap();
    let policy = Policy::seed();
    let plan = policy
        .plan(&Request {
            account: "a",
            tier: "basic",
            endpoint: "txt2img",
            cost: 1,
        })
        .unwrap();

    let first = store
        .decide_detailed(&plan, Timestamp::EPOCH)
        .await
        .unwrap();
    assert_eq!(first.source, Source::Redis);

    let mut c = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut c).unwrap();

    let second = store
        .decide_detailed(&plan, Timestamp::EPOCH)
        .await
        .unwrap();
    assert_eq!(second.source, Source::Redis);
    let daily = |a: &quota_redis::Answer| a.outcomes[1].remaining;
    assert_eq!(daily(&second), daily(&first) - 1, "the count went on");
    assert_eq!(store.health().errors, 0);
}
