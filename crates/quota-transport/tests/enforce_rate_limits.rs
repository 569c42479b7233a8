//! The rate limits over a real hyper server, in virtual time: the seed's 429
//! and its six headers, success headers, which limit is reported, and that a
//! refusal consumes nothing and never reaches the service.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod enforce_support;

use std::collections::BTreeSet;
use std::sync::Arc;

use enforce_support::{accounts, serve, Answer, TestServer, VirtualClock, SEED_HEADERS, T0};
use quota_core::policy::Policy;
use quota_core::{MemoryStore, TOO_MANY_ATTEMPTS_BODY};
use quota_transport::enforce::EnforceLayer;

async fn server(clock: &VirtualClock) -> TestServer {
    let layer = EnforceLayer::new(
        Policy::seed(),
        Arc::new(MemoryStore::new()),
        Arc::new(accounts().await),
    )
    .clock(clock.func());
    serve(layer).await
}

fn rate_headers(a: &Answer) -> Vec<(&str, &str)> {
    SEED_HEADERS
        .iter()
        .filter_map(|&h| Some((h, a.header(h)?)))
        .collect()
}

#[tokio::test]
async fn refused_request_is_429_with_the_seed_body_and_exactly_the_six_headers() {
    let clock = VirtualClock::at(T0); // 20 s into the minute
    let server = server(&clock).await;
    for left in ["2", "1", "0"] {
        let a = server.call("/v1/txt2img", "k-basic").await;
        assert_eq!(
            (a.status.as_u16(), a.header("x-ratelimit-remaining")),
            (200, Some(left))
        );
    }
    let refused = server.call("/v1/txt2img", "k-basic").await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body, TOO_MANY_ATTEMPTS_BODY);
    assert_eq!(refused.body, r#"{"message":"Too Many Attempts."}"#);
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(
        rate_headers(&refused),
        [
            ("x-ratelimit-limit", "3"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-daily-limit", "100"),
            ("x-ratelimit-daily-remaining", "97"),
            ("x-ratelimit-type", "minute"),
            ("retry-after", "40"),
        ]
    );
    let names: BTreeSet<&str> = refused.headers.keys().map(|k| k.as_str()).collect();
    let expected: BTreeSet<&str> = SEED_HEADERS
        .into_iter()
        .chain(["content-type", "content-length", "date"])
        .collect();
    assert_eq!(names, expected);
    assert_eq!(
        server.seen.calls(),
        3,
        "the refused request never reached the service"
    );
}

#[tokio::test]
async fn retry_after_is_the_wait_rounded_up_and_never_zero() {
    let clock = VirtualClock::at(T0);
    let server = server(&clock).await;
    server.call("/v1/txt2video", "k-basic").await; // 1 a minute
    for (into_minute_ms, expected) in [
        (20_000, "40"),
        (20_500, "40"),
        (58_999, "2"),
        (59_001, "1"),
        (59_999, "1"),
    ] {
        clock.set(T0 - 20_000 + into_minute_ms);
        let a = server.call("/v1/txt2video", "k-basic").await;
        assert_eq!(a.status, 429);
        assert_eq!(
            a.header("retry-after"),
            Some(expected),
            "at {into_minute_ms} ms into the minute"
        );
    }
}

#[tokio::test]
async fn a_daily_refusal_beats_a_minute_refusal() {
    let clock = VirtualClock::at(T0); // 6400 s before UTC midnight
    let server = server(&clock).await;
    // txt2video: 1 a minute, 15 a day. One per minute for 15 minutes.
    for minute in 0..15 {
        clock.set(T0 + minute * 60_000);
        assert_eq!(
            server.call("/v1/txt2video", "k-basic").await.status,
            200,
            "minute {minute}"
        );
    }
    // Still in the 15th minute: both limits refuse; the daily wait is longer.
    let both = server.call("/v1/txt2video", "k-basic").await;
    assert_eq!(both.status, 429);
    let to_midnight = 6400 - 14 * 60;
    assert_eq!(
        rate_headers(&both),
        [
            ("x-ratelimit-limit", "1"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-daily-limit", "15"),
            ("x-ratelimit-daily-remaining", "0"),
            ("x-ratelimit-type", "daily"),
            ("retry-after", to_midnight.to_string().as_str()),
        ]
    );
    // A new minute: only the daily limit refuses.
    clock.advance(60_000);
    let daily = server.call("/v1/txt2video", "k-basic").await;
    assert_eq!(
        (
            daily.header("x-ratelimit-type"),
            daily.header("x-ratelimit-remaining")
        ),
        (Some("daily"), Some("1"))
    );
    // After UTC midnight everything is fresh.
    clock.set(T0 + 6400 * 1000);
    let fresh = server.call("/v1/txt2video", "k-basic").await;
    assert_eq!(
        (
            fresh.status.as_u16(),
            fresh.header("x-ratelimit-daily-remaining")
        ),
        (200, Some("14"))
    );
}

#[tokio::test]
async fn admitted_requests_carry_the_limits_that_apply_and_no_header_for_unlimited_ones() {
    let clock = VirtualClock::at(T0);
    let server = server(&clock).await;
    let basic = server.call("/v1/txt2img", "k-basic").await;
    assert_eq!(basic.status, 200);
    assert_eq!(basic.body, "read 0 bytes");
    assert_eq!(
        rate_headers(&basic),
        [
            ("x-ratelimit-limit", "3"),
            ("x-ratelimit-remaining", "2"),
            ("x-ratelimit-daily-limit", "100"),
            ("x-ratelimit-daily-remaining", "99"),
        ]
    );
    // Premium: 300 a minute across all endpoints, no daily limit.
    let premium = server.call("/v1/img2video", "k-premium").await;
    assert_eq!(
        rate_headers(&premium),
        [
            ("x-ratelimit-limit", "300"),
            ("x-ratelimit-remaining", "299")
        ]
    );
    let premium = server.call("/v1/prompt/enhance", "k-premium").await;
    assert_eq!(
        premium.header("x-ratelimit-remaining"),
        Some("298"),
        "one budget for every endpoint"
    );
}

#[tokio::test]
async fn refused_request_consumes_nothing() {
    let clock = VirtualClock::at(T0);
    let server = server(&clock).await;
    for _ in 0..3 {
        server.call("/v1/txt2img", "k-basic").await;
    }
    for _ in 0..5 {
        assert_eq!(server.call("/v1/txt2img", "k-basic").await.status, 429);
    }
    clock.advance(40_000); // the next UTC minute
    let a = server.call("/v1/txt2img", "k-basic").await;
    assert_eq!(
        rate_headers(&a)[..4],
        [
            ("x-ratelimit-limit", "3"),
            ("x-ratelimit-remaining", "2"),
            ("x-ratelimit-daily-limit", "100"),
            ("x-ratelimit-daily-remaining", "96"),
        ]
    );
    assert_eq!(server.seen.calls(), 4);
}

#[tokio::test]
async fn limits_are_counted_per_account_and_prompt_endpoints_share_one_budget() {
    let clock = VirtualClock::at(T0);
    let server = server(&clock).await;
    for i in 0..10 {
        let path = if i % 2 == 0 {
            "/v1/prompt/enhance"
        } else {
            "/v1/prompt/translate"
        };
        assert_eq!(server.call(path, "k-basic").await.status, 200);
    }
    let shared = server.call("/v1/prompt/other", "k-basic").await;
    assert_eq!(
        (shared.status.as_u16(), shared.header("x-ratelimit-type")),
        (429, Some("minute"))
    );
    assert_eq!(
        server.call("/v1/prompt/enhance", "k-basic2").await.status,
        200,
        "another account has its own budget"
    );
}
