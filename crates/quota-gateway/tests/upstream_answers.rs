//! Upstream answers the gateway must not pass on as they are, through
//! every path a request can take: the own HTTP/1.1 path (no body), hyper's
//! HTTP/1.1 server with a small body (read whole, the own client) and a
//! large one (streamed on the same client), and HTTP/2.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use std::time::Duration;
use support::{gateway_to, h2_client, raw, status_of, Http, RawUpstream};

/// A body over the size read whole: streamed (written as it arrives).
fn large() -> String {
    "x".repeat(70 * 1024)
}

/// Sends over HTTP/2 with prior knowledge: status and body.
async fn h2(method: Method, url: &str, key: &str, body: String) -> (u16, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("x-api-key", key)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(20), h2_client().request(req))
        .await
        .expect("HTTP/2 request timed out")
        .expect("HTTP/2 request failed");
    let status = res.status().as_u16();
    let body = tokio::time::timeout(Duration::from_secs(20), res.into_body().collect())
        .await
        .unwrap()
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_beside_chunked_is_dropped_and_the_whole_body_comes_through() {
    let up = RawUpstream::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n",
    )
    .await;
    let gw = gateway_to(&up.url(), |b| b).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let url = gw.url("/v1/slow");
    let auth = [("x-api-key", key.as_str())];
    // The own path (no body, a new connection), and its HEAD answer.
    for method in ["GET", "HEAD"] {
        let req = format!(
            "{method} /v1/slow HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
        );
        let answer = raw(gw.addr, req.as_bytes()).await;
        assert_eq!(status_of(&answer), 200, "{answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(!lower.contains("content-length: 5\r\n"), "{answer}");
        if method == "GET" {
            // (Framed by its length, or chunked when it came in pieces.)
            assert!(answer.contains("hello world"), "{answer}");
        }
    }
    // hyper's server: a small body (sent whole) and a large one (streamed).
    for body in ["hello".to_owned(), large()] {
        let a = http.send(Method::POST, &url, &auth, &body).await;
        assert_eq!(
            (a.status.as_u16(), &a.body[..]),
            (200, &b"hello world"[..]),
            "a {}-byte body",
            body.len()
        );
        assert_ne!(a.header("content-length"), Some("5"));
    }
    // HTTP/2, without a body and with each kind.
    for body in [String::new(), "hello".to_owned(), large()] {
        let (status, got) = h2(Method::POST, &url, &key, body.clone()).await;
        assert_eq!(
            (status, &got[..]),
            (200, &b"hello world"[..]),
            "HTTP/2, a {}-byte body",
            body.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_nobody_asked_for_is_a_502_on_every_path() {
    let up = RawUpstream::start(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nraw bytes",
    )
    .await;
    let gw = gateway_to(&up.url(), |b| b).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let url = gw.url("/v1/slow");
    let auth = [("x-api-key", key.as_str())];
    // The own path.
    let req = format!(
        "GET /v1/slow HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
    );
    let answer = raw(gw.addr, req.as_bytes()).await;
    assert_eq!(status_of(&answer), 502, "{answer}");
    assert!(answer.contains("\"message\""), "{answer}");
    // hyper's server, a body sent whole and one streamed.
    for body in ["hello".to_owned(), large()] {
        let a = http.send(Method::POST, &url, &auth, &body).await;
        assert_eq!(a.status, 502, "a {}-byte body: {:?}", body.len(), a.body);
        assert!(a.json()["message"].is_string());
    }
    // HTTP/2.
    for body in [String::new(), large()] {
        let (status, _) = h2(Method::POST, &url, &key, body.clone()).await;
        assert_eq!(status, 502, "HTTP/2, a {}-byte body", body.len());
    }
}
