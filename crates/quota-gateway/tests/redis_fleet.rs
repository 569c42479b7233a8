//! Two gateways (in one process, each on its own thread and runtime) on one
//! Redis (127.0.0.1:6379, started by `scripts/test.sh`): one budget and one
//! set of accounts for both; and a gateway whose Redis goes away.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../quota-redis/tests/common/private_redis.rs"]
mod private_redis;
mod support;

use std::time::Duration;

use private_redis::PrivateRedis;
use quota_redis::FailurePolicy;
use support::redis_prefix::Prefix;
use support::{early_in_window, setup, Gw, Http, Upstream};

const REDIS: &str = "redis://127.0.0.1:6379";

/// A gateway in front of `up`, its counters and accounts in the shared
/// Redis under `prefix`.
async fn node(up: &Upstream, prefix: &Prefix) -> Gw {
    setup(&up.url())
        .redis(REDIS, Some(prefix.as_str()), FailurePolicy::default())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_accounts_and_exactly_one_budget() {
    let up = Upstream::start().await;
    let prefix = Prefix::new("e2e");
    let (a, b) = (node(&up, &prefix).await, node(&up, &prefix).await);
    let http = Http::default();
    support::two_nodes_share_accounts_and_one_budget(&http, &a, &b).await;

    let metrics =
        String::from_utf8_lossy(&http.get(&b.url("/metrics"), None).await.body).into_owned();
    assert!(
        metrics.contains("quota_store_info{backend=\"redis\",mode=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("quota_redis_up{failure_policy=\"closed\"} 1"),
        "{metrics}"
    );
    let health = http.get(&a.url("/healthz"), None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["store"]["backend"], "redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_switches_to_the_local_fallback_and_shows_it() {
    let up = Upstream::start().await;
    let mut redis = tokio::task::block_in_place(PrivateRedis::start);
    let failure: FailurePolicy = "local:2".parse().unwrap();
    let gw = setup(&up.url())
        .redis(&redis.url(), None, failure)
        .start()
        .await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let (_, unseen) = http.create_account(&gw).await;
    let res = http.post(&gw.url("/v1/slow"), Some(&key)).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-ratelimit-limit"), Some("100"));

    tokio::task::block_in_place(|| redis.kill());
    // A caller seen before is still decided, by the local fallback.
    let res = http.post(&gw.url("/v1/slow"), Some(&key)).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    // A key never seen cannot be resolved without Redis.
    let res = http.post(&gw.url("/v1/slow"), Some(&unseen)).await;
    assert_eq!(res.status, 503, "{:?}", res.body);
    assert!(res.json()["message"].is_string());

    let metrics =
        String::from_utf8_lossy(&http.get(&gw.url("/metrics"), None).await.body).into_owned();
    assert!(
        metrics.contains("quota_redis_up{failure_policy=\"local:2\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("mode=\"fallback\""), "{metrics}");
    assert!(
        metrics.contains("quota_redis_fallback_decisions_total{failure_policy=\"local:2\"} 1"),
        "{metrics}"
    );
    let health = http.get(&gw.url("/healthz"), None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "degraded");
}

/// An answer compared by its status alone, shown with its body when an
/// assertion fails (so that a refusal says why).
struct Seen(support::Answer);

impl PartialEq<u16> for Seen {
    fn eq(&self, status: &u16) -> bool {
        self.0.status.as_u16() == *status
    }
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.0.status,
            String::from_utf8_lossy(&self.0.body)
        )
    }
}

/// An admin request to `gw` with the harness's admin token.
async fn admin(
    http: &Http,
    gw: &Gw,
    method: http::Method,
    path: &str,
    body: &str,
) -> support::Answer {
    let auth = format!("Bearer {}", support::ADMIN_TOKEN);
    http.send(method, &gw.url(path), &[("authorization", &auth)], body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_or_expired_through_one_gateway_stops_on_the_other_at_once() {
    use http::Method;
    let up = Upstream::start().await;
    let prefix = Prefix::new("e2e");
    let (a, b) = (node(&up, &prefix).await, node(&up, &prefix).await);
    let http = Http::default();
    let (id, key) = http.create_account(&a).await;
    let status = |gw: &Gw, key: &str| {
        let (http, url, key) = (http.clone(), gw.url("/v1/limits"), key.to_owned());
        async move { Seen(http.get(&url, Some(&key)).await) }
    };
    assert_eq!(status(&b, &key).await, 200);

    // A second key made on A works on B; revoked on A, B refuses it next.
    let made = admin(
        &http,
        &a,
        Method::POST,
        &format!("/admin/accounts/{id}/keys"),
        r#"{"name":"ci"}"#,
    )
    .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let made = made.json();
    let (ci, ci_id) = (
        made["key"].as_str().unwrap().to_owned(),
        made["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(status(&b, &ci).await, 200);
    let listed = admin(
        &http,
        &b,
        Method::GET,
        &format!("/admin/accounts/{id}/keys"),
        "",
    )
    .await;
    assert_eq!(listed.json()["keys"].as_array().unwrap().len(), 2);
    let revoked = admin(
        &http,
        &a,
        Method::DELETE,
        &format!("/admin/accounts/{id}/keys/{ci_id}"),
        "",
    )
    .await;
    assert_eq!(revoked.status, 204);
    assert_eq!(
        status(&b, &ci).await,
        401,
        "revoked on A, refused by B at once"
    );

    // Rotated on A with a grace period: B takes both until it ends, then only the new one.
    // The account's first key.
    let first_id = support::key_id_other_than(&listed.json(), &ci_id);
    let rotated = admin(
        &http,
        &a,
        Method::POST,
        &format!("/admin/accounts/{id}/keys/{first_id}/rotate"),
        r#"{"grace_seconds":1}"#,
    )
    .await;
    assert_eq!(rotated.status, 201, "{:?}", rotated.body);
    let new_key = rotated.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(status(&b, &key).await, 200, "in its grace period");
    assert_eq!(status(&b, &new_key).await, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        status(&b, &key).await,
        401,
        "its grace period is over on B too"
    );
    assert_eq!(status(&b, &new_key).await, 200);

    // A tier set on B applies on A; the account deleted on B stops on A.
    let patched = admin(
        &http,
        &b,
        Method::PATCH,
        &format!("/admin/accounts/{id}"),
        r#"{"tier":"premium"}"#,
    )
    .await;
    assert_eq!(patched.status, 200);
    let on_a = http.get(&a.url("/v1/limits"), Some(&new_key)).await;
    assert_eq!(on_a.json()["tier"], "premium");
    let deleted = admin(
        &http,
        &b,
        Method::DELETE,
        &format!("/admin/accounts/{id}"),
        "",
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(status(&a, &new_key).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_reset_on_one_gateway_gives_the_budget_back_on_the_other() {
    use http::Method;
    let up = Upstream::start().await;
    let prefix = Prefix::new("e2e");
    let (a, b) = (node(&up, &prefix).await, node(&up, &prefix).await);
    let http = Http::default();
    let (id, key) = http.create_account(&a).await;
    early_in_window(60_000, Duration::from_secs(5)).await;
    for _ in 0..3 {
        assert_eq!(
            http.post(&a.url("/v1/txt2img"), Some(&key)).await.status,
            200
        );
    }
    assert_eq!(
        http.post(&b.url("/v1/txt2img"), Some(&key)).await.status,
        429
    );
    let reset = admin(
        &http,
        &a,
        Method::DELETE,
        &format!("/admin/accounts/{id}/usage"),
        "",
    )
    .await;
    assert_eq!(reset.status, 204);
    let res = http.post(&b.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-ratelimit-remaining"), Some("2"));
}
