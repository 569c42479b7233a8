//! Every refusal before the rate limits: 401, 404, 413, 402, 503, each with a
//! JSON `message`, and the service never called for any of them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod enforce_support;

use std::sync::Arc;

use bytes::Bytes;
use enforce_support::{accounts, policy_with_price, serve, VirtualClock, T0};
use quota_core::account::{AccountAdmin, Accounts, MemoryAccounts};
use quota_core::policy::{Money, Plan, Policy};
use quota_core::{MemoryStore, Outcomes, Store, StoreError, Timestamp};
use quota_transport::enforce::EnforceLayer;
use quota_transport::identity::KeyHeaders;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn layer() -> EnforceLayer<MemoryStore, MemoryAccounts> {
    EnforceLayer::new(
        policy_with_price(),
        Arc::new(MemoryStore::new()),
        Arc::new(accounts().await),
    )
    .clock(VirtualClock::at(T0).func())
}

#[tokio::test]
async fn missing_key_is_401_with_a_json_message_in_both_header_styles() {
    let server = serve(layer().await).await;
    let none = server.post("/v1/txt2img", &[], Bytes::new()).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.header("content-type"), Some("application/json"));
    assert_eq!(
        none.message(),
        "missing API key: send `Authorization: Bearer KEY` or `X-API-Key: KEY`"
    );
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));

    let unknown_x = server.call("/v1/txt2img", "k-nobody").await;
    assert_eq!(
        (unknown_x.status.as_u16(), unknown_x.message().as_str()),
        (401, "unknown API key")
    );
    let unknown_bearer = server
        .post(
            "/v1/txt2img",
            &[("authorization", "Bearer k-nobody")],
            Bytes::new(),
        )
        .await;
    assert_eq!(
        (
            unknown_bearer.status.as_u16(),
            unknown_bearer.message().as_str()
        ),
        (401, "unknown API key")
    );

    let known_bearer = server
        .post(
            "/v1/txt2img",
            &[("authorization", "Bearer k-basic")],
            Bytes::new(),
        )
        .await;
    assert_eq!(known_bearer.status, 200);
    let known_x = server.call("/v1/txt2img", "k-basic").await;
    assert_eq!(known_x.status, 200);
    assert_eq!(server.seen.calls(), 2);
}

#[tokio::test]
async fn malformed_or_conflicting_keys_are_401() {
    let server = serve(layer().await).await;
    for headers in [
        vec![("authorization", "Basic dXNlcjpwYXNz")],
        vec![("authorization", "Bearer")],
        vec![
            ("authorization", "Bearer k-basic"),
            ("x-api-key", "k-premium"),
        ],
    ] {
        let a = server.post("/v1/txt2img", &headers, Bytes::new()).await;
        assert_eq!(a.status, 401, "{headers:?}");
        assert!(!a.message().is_empty());
    }
    assert_eq!(server.seen.calls(), 0);
}

#[tokio::test]
async fn a_header_style_that_is_not_accepted_counts_as_missing() {
    let server = serve(layer().await.key_headers(KeyHeaders::BEARER)).await;
    let a = server.call("/v1/txt2img", "k-basic").await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.message(),
        "missing API key: send `Authorization: Bearer KEY`"
    );
}

#[tokio::test]
async fn unknown_endpoint_or_path_outside_the_prefix_is_404() {
    let server = serve(layer().await).await;
    let unknown = server.call("/v1/txt2everything", "k-basic").await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.message().as_str()),
        (404, "unknown endpoint \"txt2everything\"")
    );
    let outside = server.call("/v2/txt2img", "k-basic").await;
    assert_eq!(outside.status, 404);
    assert_eq!(
        outside.message(),
        "path \"/v2/txt2img\" is not under the API prefix \"/v1/\""
    );
    // prompt/* matches one segment only.
    assert_eq!(server.call("/v1/prompt/a/b", "k-basic").await.status, 404);
    assert_eq!(
        server.call("/v1/prompt/enhance", "k-basic").await.status,
        200
    );
    assert_eq!(server.seen.calls(), 1);
}

#[tokio::test]
async fn a_configured_prefix_names_endpoints() {
    let server = serve(layer().await.prefix("/api")).await;
    assert_eq!(server.call("/api/txt2img", "k-basic").await.status, 200);
    assert_eq!(server.call("/v1/txt2img", "k-basic").await.status, 404);
}

#[tokio::test]
async fn content_length_over_the_limit_is_413_before_the_body_is_read() {
    let server = serve(layer().await).await;
    // Headers only: 30 MiB declared, not one byte sent. The answer comes
    // at once, so the server did not wait for the body.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /v1/aud2video HTTP/1.1\r\nhost: x\r\nx-api-key: k-basic\r\ncontent-length: 31457280\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !got.ends_with(b"}") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.ends_with(r#"{"message":"request body exceeds the 20 MiB limit for aud2video (plus 64 KiB for the multipart form around the file)"}"#),
        "{text}"
    );
    assert_eq!(server.seen.calls(), 0);
}

#[tokio::test]
async fn content_length_within_the_limit_is_read_by_the_service() {
    let server = serve(layer().await).await;
    let body = Bytes::from(vec![7u8; 1 << 20]);
    let a = server
        .post("/v1/img2img", &[("x-api-key", "k-basic")], body.clone())
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body,
        format!(
            "read 1048576 bytes, checksum {}",
            enforce_support::checksum(&body)
        )
    );
}

#[tokio::test]
async fn credit_that_cannot_pay_is_402_and_charges_nothing() {
    let server = serve(layer().await).await;
    // $5 at $2 a request: two paid requests, then 402.
    assert_eq!(server.call("/v1/paid", "k-basic").await.status, 200);
    assert_eq!(server.call("/v1/paid", "k-basic").await.status, 200);
    let broke = server.call("/v1/paid", "k-basic").await;
    assert_eq!(broke.status, 402);
    assert_eq!(broke.header("content-type"), Some("application/json"));
    assert_eq!(
        broke.message(),
        "insufficient credit: paid costs $2.00, the account has $1.00"
    );
    assert_eq!(server.seen.calls(), 2);
    // Free endpoints still work with no credit.
    assert_eq!(server.call("/v1/txt2img", "k-poor").await.status, 200);
    assert_eq!(server.call("/v1/paid", "k-poor").await.status, 402);
}

#[tokio::test]
async fn a_rate_limited_request_is_refunded() {
    let clock = VirtualClock::at(T0);
    let accounts = Arc::new(accounts().await);
    let mut spec = policy_with_price().spec().clone();
    let basic = spec.tiers.iter_mut().find(|t| t.name == "basic").unwrap();
    basic
        .limits
        .retain(|l| l.endpoint.as_deref() != Some("paid"));
    basic.limits.push(quota_core::policy::LimitSpec::new(
        Some("paid"),
        quota_core::policy::WindowLength::from_secs(60),
        1,
    ));
    let layer = EnforceLayer::new(
        Policy::new(spec).unwrap(),
        Arc::new(MemoryStore::new()),
        Arc::clone(&accounts),
    )
    .clock(clock.func());
    let server = serve(layer).await;
    assert_eq!(server.call("/v1/paid", "k-basic").await.status, 200);
    assert_eq!(server.call("/v1/paid", "k-basic").await.status, 429);
    let account = accounts.get("acct-basic").await.unwrap().unwrap();
    assert_eq!(
        (account.credit, account.requests),
        (Money::from_dollars(3), 1)
    );
}

/// A store whose backend is down.
struct DownStore;

impl Store for DownStore {
    fn decide<'a>(
        &'a self,
        _: &'a Plan<'_>,
        _: Timestamp,
    ) -> impl std::future::Future<Output = Result<Outcomes, StoreError>> + Send + 'a {
        std::future::ready(Err(StoreError::unavailable("connection refused")))
    }
    fn peek<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<Outcomes, StoreError>> + Send + 'a {
        self.decide(plan, now)
    }
    fn refund<'a>(
        &'a self,
        _: &'a Plan<'_>,
        _: &'a quota_core::Receipt,
        _: Timestamp,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'a {
        std::future::ready(Err(StoreError::unavailable("connection refused")))
    }
}

#[tokio::test]
async fn store_failure_is_503_and_refunds_the_charge() {
    let accounts = Arc::new(accounts().await);
    let server = serve(EnforceLayer::new(
        policy_with_price(),
        Arc::new(DownStore),
        Arc::clone(&accounts),
    ))
    .await;
    let a = server.call("/v1/paid", "k-basic").await;
    assert_eq!(a.status, 503);
    // Only that, and an id the log line with the detail carries too.
    assert_eq!(
        a.message(),
        "the service is temporarily unavailable; try again later"
    );
    let id = a.header("x-request-id").expect("a request id").to_owned();
    assert_eq!(id.len(), 16, "{id}");
    let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["request_id"], id.as_str());
    assert!(!a.body.contains("refused"), "{}", a.body);
    assert_eq!(server.seen.calls(), 0);
    assert_eq!(
        accounts.get("acct-basic").await.unwrap().unwrap().credit,
        Money::from_dollars(5)
    );
    let _ = accounts.resolve("k-basic").await; // the key still resolves
}

#[tokio::test]
async fn a_tier_missing_from_the_policy_is_a_500_that_names_nothing_internal() {
    let accounts = MemoryAccounts::new();
    let new = quota_core::account::NewAccount {
        id: "acct-gold".into(),
        api_key: "k-gold".into(),
        tier: "gold-tier-of-an-old-policy".into(),
        credit: Money::from_dollars(5),
    };
    accounts.create(new, Timestamp::EPOCH).await.unwrap();
    let server = serve(
        EnforceLayer::new(
            policy_with_price(),
            Arc::new(MemoryStore::new()),
            Arc::new(accounts),
        )
        .clock(VirtualClock::at(T0).func()),
    )
    .await;
    let a = server.call("/v1/txt2img", "k-gold").await;
    assert_eq!(a.status, 500);
    assert!(!a.body.contains("gold"), "{}", a.body);
    let id = a.header("x-request-id").expect("a request id").to_owned();
    let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["request_id"], id.as_str());
    assert_eq!(server.seen.calls(), 0);
}
