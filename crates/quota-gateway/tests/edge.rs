//! What the gateway refuses at the edge, before any route: the same status
//! on the own HTTP/1.1 path (a connection's first request), on hyper's
//! (a connection handed over by an earlier request with a body) and, where
//! HTTP/2 can carry the request at all, over HTTP/2; never forwarded.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use quota_gateway::Http1;
use support::{gateway, h2_client, raw, status_of, Gw, Http};

/// A request with a body first: the connection is hyper's from then on.
fn handover_first(key: &str) -> String {
    format!(
        "POST /v1/slow HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\nContent-Length: 5\r\n\r\nhello"
    )
}

/// The answers on a raw connection, split (each starts with its status line).
fn answers(text: &str) -> Vec<&str> {
    text.match_indices("HTTP/1.1 ")
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| &text[w[0]..w[1]])
        .collect()
}

/// `bad` (a whole request) on a new connection, and after a request that
/// hands the connection to hyper: both answers (status line onwards).
async fn on_both_paths(gw: &Gw, key: &str, bad: &[u8]) -> [String; 2] {
    let own = raw(gw.addr, bad).await;
    let mut second = handover_first(key).into_bytes();
    second.extend_from_slice(bad);
    let hyper = raw(gw.addr, &second).await;
    let all = answers(&hyper);
    assert_eq!(all.len(), 2, "two answers expected: {hyper}");
    assert_eq!(status_of(all[0]), 200, "{hyper}");
    [own, all[1].to_owned()]
}

/// Checks that both paths answer `bad` with `status` and a JSON message,
/// and close the connection.
async fn refused_on_both_paths(gw: &Gw, key: &str, bad: &str, status: u16) {
    for (path, answer) in ["own path", "hyper"]
        .into_iter()
        .zip(on_both_paths(gw, key, bad.as_bytes()).await)
    {
        assert_eq!(status_of(&answer), status, "{path}, {bad:?}: {answer}");
        assert!(answer.contains("\"message\""), "{path}, {bad:?}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{path}, {bad:?}: {answer}"
        );
    }
}

async fn h2_status(method: Method, url: &str, key: &str) -> u16 {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("x-api-key", key)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(20), h2_client().request(req))
        .await
        .expect("HTTP/2 request timed out")
        .expect("HTTP/2 request failed");
    let status = res.status().as_u16();
    let _ = res.into_body().collect().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_codings_before_chunked_are_501_and_never_forwarded() {
    let (up, gw) = gateway(|b| b).await;
    let (_, key) = Http::default().create_account(&gw).await;
    for te in ["gzip, chunked", "identity, chunked", "chunked, chunked"] {
        let bad = format!(
            "POST /v1/slow HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        refused_on_both_paths(&gw, &key, &bad, 501).await;
    }
    // Chunked not last: the body's length is unknown (RFC 9112, 6.3):
    // 400 (hyper's parser refuses it first, with its own empty 400).
    let bad = format!(
        "POST /v1/slow HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\nTransfer-Encoding: chunked, gzip\r\n\r\nhello"
    );
    for answer in on_both_paths(&gw, &key, bad.as_bytes()).await {
        assert_eq!(status_of(&answer), 400, "{answer}");
    }
    // Only the requests that handed connections over reached the upstream.
    assert!(up.seen().iter().all(|s| s.body_len == 5), "{:?}", up.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_outside_the_list_are_405_with_allow_and_never_forwarded() {
    let (up, gw) = gateway(|b| b).await;
    let (_, key) = Http::default().create_account(&gw).await;
    for method in ["TRACE", "PROPFIND", "CONNECT"] {
        let target = if method == "CONNECT" {
            "gw:443"
        } else {
            "/v1/slow"
        };
        let bad = format!("{method} {target} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\n\r\n");
        refused_on_both_paths(&gw, &key, &bad, 405).await;
        for answer in on_both_paths(&gw, &key, bad.as_bytes()).await {
            assert!(
                answer
                    .to_ascii_lowercase()
                    .contains("allow: get, head, post, put, patch, delete, options\r\n"),
                "{answer}"
            );
        }
    }
    let trace = Method::from_bytes(b"TRACE").unwrap();
    assert_eq!(h2_status(trace, &gw.url("/v1/slow"), &key).await, 405);
    let brew = Method::from_bytes(b"BREW").unwrap();
    assert_eq!(h2_status(brew, &gw.url("/v1/slow"), &key).await, 405);
    assert!(
        up.seen().iter().all(|s| s.method == Method::POST),
        "{:?}",
        up.seen()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_repeated_or_invalid_host_is_400_and_never_forwarded() {
    let (up, gw) = gateway(|b| b).await;
    let (_, key) = Http::default().create_account(&gw).await;
    for host in [
        "",
        "Host: a\r\nHost: a\r\n",
        "Host: a b\r\n",
        "Host: @\r\n",
        "Host: \r\n",
        "Host: u@gw\r\n",
    ] {
        for (method, body) in [("GET", ""), ("POST", "Content-Length: 5\r\n\r\nhello")] {
            let bad = if body.is_empty() {
                format!("{method} /v1/slow HTTP/1.1\r\n{host}X-API-Key: {key}\r\n\r\n")
            } else {
                format!("{method} /v1/slow HTTP/1.1\r\n{host}X-API-Key: {key}\r\n{body}")
            };
            refused_on_both_paths(&gw, &key, &bad, 400).await;
        }
    }
    // HTTP/1.0 may leave it out (hyper serves it).
    let old = format!("GET /v1/slow HTTP/1.0\r\nX-API-Key: {key}\r\n\r\n");
    assert_eq!(status_of(&raw(gw.addr, old.as_bytes()).await), 200);
    assert_eq!(
        up.seen().iter().filter(|s| s.method == Method::GET).count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_with_a_fragment_is_400_on_the_own_path() {
    // Pinned to the own path, whatever `QUOTA_TEST_HTTP1` says: only the
    // own path sees a fragment. A connection's first request (the own
    // path sees every one as sent, with a body or not); hyper's parser
    // drops fragments before the gateway sees the request, which it then
    // serves without it (see docs/gateway.md): with `Http1::Hyper`, both
    // requests below are answered 200 and forwarded as `/v1/slow`.
    let (up, gw) = gateway(|b| b.http1(Http1::Own)).await;
    let (_, key) = Http::default().create_account(&gw).await;
    for (method, body) in [("GET", ""), ("POST", "Content-Length: 5\r\n\r\nhello")] {
        let bad = if body.is_empty() {
            format!("{method} /v1/slow#frag HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\n\r\n")
        } else {
            format!("{method} /v1/slow#frag HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\n{body}")
        };
        let answer = raw(gw.addr, bad.as_bytes()).await;
        assert_eq!(status_of(&answer), 400, "{answer}");
        assert!(answer.contains("\"message\""), "{answer}");
    }
    assert!(up.seen().is_empty(), "{:?}", up.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_with_bytes_beyond_ascii_is_400_on_every_path() {
    let (up, gw) = gateway(|b| b).await;
    let (_, key) = Http::default().create_account(&gw).await;
    // Bytes beyond ASCII, on both paths: UTF-8 or not.
    for target in [&b"/v1/caf\xc3\xa9"[..], b"/v1/slow?q=\xc3\xa9", b"/v1/\xff"] {
        let mut bad = b"GET ".to_vec();
        bad.extend_from_slice(target);
        bad.extend_from_slice(
            format!(" HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\n\r\n").as_bytes(),
        );
        for answer in on_both_paths(&gw, &key, &bad).await {
            assert_eq!(
                status_of(&answer),
                400,
                "{:?}: {answer}",
                String::from_utf8_lossy(target)
            );
        }
    }
    // HTTP/2 carries UTF-8 in `:path` as it is.
    assert_eq!(
        h2_status(Method::GET, &gw.url("/v1/caf\u{e9}"), &key).await,
        400
    );
    assert!(
        up.seen().iter().all(|s| s.method == Method::POST),
        "{:?}",
        up.seen()
    );
}
