//! The gateway's own failures (a store that cannot answer, an upstream out
//! of reach) tell the client only what failed and a request id, in
//! `X-Request-Id` and the body; the detail goes to the log line that carries
//! the same id.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http::Method;
use quota_redis::FailurePolicy;
use support::{gateway, setup, Answer, Gw, Http, ADMIN_TOKEN};

/// A loopback port nothing listens on (free a moment ago).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Checks that `a` is a `status` that says nothing internal, and that the
/// gateway logged its request id; the id. (The gateways here run one
/// worker, so that every request's log line is captured: see
/// `support::Logs`.)
async fn generic(gw: &Gw, a: &Answer, status: u16, port: u16) -> String {
    assert_eq!(a.status, status, "{:?}", a.body);
    let body = String::from_utf8_lossy(&a.body).to_lowercase();
    for secret in [
        "redis",
        "127.0.0.1",
        &port.to_string(),
        "connection refused",
        "os error",
    ] {
        assert!(!body.contains(secret), "{secret:?} in {body}");
    }
    let id = a.header("x-request-id").expect("X-Request-Id").to_owned();
    assert_eq!(a.json()["request_id"], id.as_str(), "{body}");
    gw.wait_log(&id, Duration::from_secs(5)).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_answer_is_a_503_that_names_nothing_internal() {
    let port = closed_port();
    let store = format!("redis://127.0.0.1:{port}");
    let gw = setup("http://127.0.0.1:9")
        .redis(&store, None, FailurePolicy::default())
        .with(|b| b.workers(2))
        .start()
        .await;
    let http = Http::default();

    // The enforcement layer's 503 (the key cannot be resolved), on the own
    // path and on hyper's.
    let a = http.get(&gw.url("/v1/txt2img"), Some("qk_unknown")).await;
    let first = generic(&gw, &a, 503, port).await;
    let a = http
        .send(
            Method::POST,
            &gw.url("/v1/txt2img"),
            &[("x-api-key", "qk_unknown")],
            "{}",
        )
        .await;
    let second = generic(&gw, &a, 503, port).await;
    assert_ne!(first, second, "one id per request");

    // The admin API's.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let a = http
        .send(
            Method::POST,
            &gw.url("/admin/accounts"),
            &[("authorization", &auth)],
            "",
        )
        .await;
    generic(&gw, &a, 503, port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_a_502_with_a_request_id_on_either_path() {
    let (up, gw) = gateway(|b| b.workers(2)).await;
    // The upstream goes away (its listener with it) before any request.
    let port = up.addr.port();
    drop(up);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;

    let a = http.get(&gw.url("/v1/slow"), Some(&key)).await;
    generic(&gw, &a, 502, port).await;
    let a = http
        .send(
            Method::POST,
            &gw.url("/v1/slow"),
            &[("x-api-key", &key)],
            "{\"prompt\":\"x\"}",
        )
        .await;
    generic(&gw, &a, 502, port).await;
}
