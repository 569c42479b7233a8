//! The layer's options over a real server: shadow mode, IETF fields and
//! problem+json, the observer, request extensions, unmetered endpoints, a
//! policy replaced while serving, and the default (system) clock.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod enforce_support;

use std::sync::{Arc, Mutex};

use enforce_support::{accounts, policy_with_price, serve, VirtualClock, T0};
use quota_core::account::{AccountAdmin, MemoryAccounts};
use quota_core::policy::{Money, Policy};
use quota_core::MemoryStore;
use quota_transport::enforce::{EnforceLayer, Observation, Outcome, PolicyHandle};

async fn layer(clock: &VirtualClock) -> EnforceLayer<MemoryStore, MemoryAccounts> {
    EnforceLayer::new(
        policy_with_price(),
        Arc::new(MemoryStore::new()),
        Arc::new(accounts().await),
    )
    .clock(clock.func())
}

#[tokio::test]
async fn shadow_mode_never_refuses_but_sends_the_headers() {
    let clock = VirtualClock::at(T0);
    let accounts = Arc::new(accounts().await);
    let layer = EnforceLayer::new(
        policy_with_price(),
        Arc::new(MemoryStore::new()),
        Arc::clone(&accounts),
    )
    .clock(clock.func())
    .shadow(true);
    let server = serve(layer).await;
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let a = server.call("/v1/txt2img", "k-basic").await;
        assert_eq!(a.status, 200);
        remaining.push(a.header("x-ratelimit-remaining").unwrap().to_owned());
    }
    assert_eq!(remaining, ["2", "1", "0", "0", "0"]);
    let over = server.call("/v1/txt2img", "k-basic").await;
    assert_eq!(
        (over.header("x-ratelimit-type"), over.header("retry-after")),
        (Some("minute"), Some("40"))
    );
    // Nothing else is refused either, and credit is not charged.
    assert_eq!(server.call("/v1/txt2img", "k-nobody").await.status, 200);
    assert_eq!(server.call("/v1/nowhere", "k-basic").await.status, 200);
    assert_eq!(server.call("/v1/paid", "k-poor").await.status, 200);
    assert_eq!(
        accounts.get("acct-poor").await.unwrap().unwrap().credit,
        Money::ZERO
    );
    assert_eq!(server.seen.calls(), 9);
}

#[tokio::test]
async fn ietf_fields_are_sent_beside_the_seed_headers() {
    let clock = VirtualClock::at(T0); // 40 s to the next minute, 6400 s to midnight
    let server = serve(layer(&clock).await.ietf_headers(true)).await;
    let ok = server.call("/v1/txt2img", "k-basic").await;
    assert_eq!(
        ok.header("ratelimit-policy"),
        Some(r#""minute";q=3;w=60, "daily";q=100;w=86400"#)
    );
    assert_eq!(
        ok.header("ratelimit"),
        Some(r#""minute";r=2;t=40, "daily";r=99;t=6400"#)
    );
    assert_eq!(ok.header("x-ratelimit-remaining"), Some("2"));
    server.call("/v1/txt2img", "k-basic").await;
    server.call("/v1/txt2img", "k-basic").await;
    let refused = server.call("/v1/txt2img", "k-basic").await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.header("ratelimit"),
        Some(r#""minute";r=0;t=40, "daily";r=97;t=6400"#)
    );
    assert_eq!(refused.body, r#"{"message":"Too Many Attempts."}"#);
}

#[tokio::test]
async fn problem_json_replaces_the_429_body() {
    let clock = VirtualClock::at(T0);
    let server = serve(layer(&clock).await.problem_json(true)).await;
    server.call("/v1/txt2video", "k-basic").await;
    let refused = server.call("/v1/txt2video", "k-basic").await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    let v: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(v["status"], 429);
    assert_eq!(v["violated-policies"], serde_json::json!(["minute"]));
    assert_eq!(refused.header("retry-after"), Some("40"));
}

type Seen = (
    Option<String>,
    Option<String>,
    Outcome,
    u16,
    Option<String>,
    bool,
);

#[tokio::test]
async fn the_observer_sees_every_decision_with_bounded_labels() {
    let clock = VirtualClock::at(T0);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let layer = layer(&clock).await.observer(move |o: &Observation<'_>| {
        let owned = |s: Option<&str>| s.map(str::to_owned);
        sink.lock().unwrap().push((
            owned(o.tier),
            owned(o.endpoint),
            o.outcome,
            o.status.as_u16(),
            owned(o.limit),
            o.shadow,
        ));
    });
    let server = serve(layer).await;
    server.call("/v1/txt2video", "k-basic").await;
    server.call("/v1/txt2video", "k-basic").await;
    server.call("/v1/prompt/enhance", "k-premium").await;
    server.call("/v1/txt2img", "k-nobody").await;
    server.call("/v1/nowhere", "k-basic").await;
    server.call("/v1/paid", "k-poor").await;
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (
                s("basic"),
                s("txt2video"),
                Outcome::Admitted,
                200,
                None,
                false
            ),
            (
                s("basic"),
                s("txt2video"),
                Outcome::Refused,
                429,
                s("minute"),
                false
            ),
            (
                s("premium"),
                s("prompt/*"),
                Outcome::Admitted,
                200,
                None,
                false
            ),
            (None, None, Outcome::Refused, 401, None, false),
            (s("basic"), None, Outcome::Refused, 404, None, false),
            (s("basic"), s("paid"), Outcome::Refused, 402, None, false),
        ]
    );
}

#[tokio::test]
async fn the_service_finds_the_identity_and_the_decision_in_the_extensions() {
    let clock = VirtualClock::at(T0);
    let server = serve(layer(&clock).await).await;
    server.call("/v1/txt2img", "k-basic").await;
    let (identity, summary) = server.seen.last();
    let identity = identity.unwrap();
    assert_eq!(
        (identity.account.as_str(), identity.tier.as_str()),
        ("acct-basic", "basic")
    );
    let summary = summary.unwrap();
    assert!(summary.is_admitted());
    let minute = summary.minute().unwrap();
    assert_eq!(
        (minute.name.as_ref(), minute.count, minute.remaining),
        ("minute", 3, 2)
    );
    assert_eq!(minute.reset_after, std::time::Duration::from_secs(40));
    assert_eq!(summary.daily().unwrap().remaining, 99);
    assert_eq!(summary.limits().len(), 2);
}

#[tokio::test]
async fn unmetered_endpoints_need_a_key_but_count_nothing() {
    let clock = VirtualClock::at(T0);
    let server = serve(layer(&clock).await.unmetered(["limits"])).await;
    for _ in 0..5 {
        let a = server.call("/v1/limits", "k-basic").await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-ratelimit-limit"), None);
    }
    let (identity, summary) = server.seen.last();
    assert_eq!(identity.unwrap().account, "acct-basic");
    assert!(summary.is_none());
    assert_eq!(server.call("/v1/limits", "k-nobody").await.status, 401);
    assert_eq!(
        server
            .call("/v1/txt2img", "k-basic")
            .await
            .header("x-ratelimit-remaining"),
        Some("2")
    );
}

#[tokio::test]
async fn a_replaced_policy_applies_to_the_next_request() {
    let clock = VirtualClock::at(T0);
    let handle = PolicyHandle::new(Policy::seed());
    let layer = EnforceLayer::new(
        handle.clone(),
        Arc::new(MemoryStore::new()),
        Arc::new(accounts().await),
    )
    .clock(clock.func());
    let server = serve(layer).await;
    assert_eq!(
        server
            .call("/v1/txt2img", "k-basic")
            .await
            .header("x-ratelimit-limit"),
        Some("3")
    );
    handle.replace(
        Policy::from_toml(
            r#"
        [[endpoints]]
        path = "txt2img"
        [[tiers]]
        name = "basic"
        limits = [{ endpoint = "txt2img", window = "1m", count = 7 }]
        "#,
        )
        .unwrap(),
    );
    let a = server.call("/v1/txt2img", "k-basic").await;
    assert_eq!(
        (
            a.header("x-ratelimit-limit"),
            a.header("x-ratelimit-daily-limit")
        ),
        (Some("7"), None)
    );
    assert_eq!(
        server.call("/v1/img2img", "k-basic").await.status,
        404,
        "img2img is gone"
    );
}

#[tokio::test]
async fn the_default_clock_is_the_system_clock() {
    // A sliding log is not aligned to the clock, so the wait is close to
    // the whole hour whenever the test runs.
    let policy = Policy::from_toml(
        r#"
        [[endpoints]]
        path = "txt2img"
        [[tiers]]
        name = "basic"
        limits = [{ endpoint = "txt2img", name = "hourly", window = "1h", count = 2, algorithm = "sliding_log" }]
        "#,
    )
    .unwrap();
    let server = serve(EnforceLayer::new(
        policy,
        Arc::new(MemoryStore::new()),
        Arc::new(accounts().await),
    ))
    .await;
    assert_eq!(server.call("/v1/txt2img", "k-basic").await.status, 200);
    assert_eq!(server.call("/v1/txt2img", "k-basic").await.status, 200);
    let refused = server.call("/v1/txt2img", "k-basic").await;
    assert_eq!(
        (refused.status.as_u16(), refused.header("x-ratelimit-type")),
        (429, Some("hourly"))
    );
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&wait), "{wait}");
}
