//! The HTTP contract of the gateway: 429, 401, 402, 404, 413, success
//! headers, and what the proxy passes on.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http::Method;
use support::{early_in_window, gateway, Http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fourth_basic_request_in_a_minute_is_429_with_the_seed_body_and_six_headers() {
    let (_up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    early_in_window(60_000, Duration::from_secs(5)).await;
    for remaining in ["2", "1", "0"] {
        let ok = http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(ok.header("x-ratelimit-remaining"), Some(remaining));
        assert_eq!(ok.header("x-ratelimit-daily-limit"), Some("100"));
        assert_eq!(ok.header("x-ratelimit-type"), None);
    }
    let refused = http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(
        refused.json(),
        serde_json::json!({ "message": "Too Many Attempts." })
    );
    assert_eq!(refused.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(refused.header("x-ratelimit-daily-limit"), Some("100"));
    assert_eq!(refused.header("x-ratelimit-daily-remaining"), Some("97"));
    assert_eq!(refused.header("x-ratelimit-type"), Some("minute"));
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unknown_key_is_401_with_a_json_message() {
    let (up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let none = http.post(&gw.url("/v1/txt2img"), None).await;
    assert_eq!(none.status, 401);
    assert!(none.json()["message"].as_str().unwrap().contains("API key"));
    let unknown = http
        .post(&gw.url("/v1/txt2img"), Some("qk_not_a_key"))
        .await;
    assert_eq!(unknown.status, 401);
    assert!(unknown.json()["message"].is_string());
    assert!(
        up.seen().is_empty(),
        "refused requests never reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_endpoint_is_404_not_forwarded_unmetered() {
    let (up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let res = http.post(&gw.url("/v1/not-an-endpoint"), Some(&key)).await;
    assert_eq!(res.status, 404);
    assert!(res.json()["message"].is_string());
    assert!(up.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_the_credit_cannot_pay_is_402() {
    let (_up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let (id, key) = http.create_account(&gw).await;
    // $5 of credit, $2 a request: two requests, then 402.
    for _ in 0..2 {
        assert_eq!(http.post(&gw.url("/v1/paid"), Some(&key)).await.status, 200);
    }
    let refused = http.post(&gw.url("/v1/paid"), Some(&key)).await;
    assert_eq!(refused.status, 402);
    assert!(refused.json()["message"].is_string());
    let account = http.account(&gw, &id).await.json();
    assert_eq!(account["credit"], "1.00");
    assert_eq!(account["spent"], "4.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_body_over_the_upload_limit_is_413_before_it_is_sent() {
    let (up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    // Announce 200 MB and send none of it: the answer must come anyway.
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /v1/txt2img HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Length: 200000000\r\nContent-Type: image/png\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("\"message\""), "{text}");
    assert!(up.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_forwards_path_query_and_body_and_drops_hop_by_hop_headers() {
    let (up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let (id, key) = http.create_account(&gw).await;
    let auth = format!("Bearer {key}");
    let res = http
        .send(
            Method::POST,
            &gw.url("/v1/slow?size=3"),
            &[
                ("authorization", &auth),
                ("connection", "x-client-hop"),
                ("x-client-hop", "1"),
                ("x-quota-tier", "premium"),
                ("x-custom", "kept"),
            ],
            "hello body",
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["body_len"], 10);
    // Response: the upstream's hop-by-hop headers are removed, others kept.
    assert_eq!(res.header("x-upstream-hop"), None);
    assert_eq!(res.header("keep-alive"), None);
    assert_eq!(res.header("x-upstream-end-to-end"), Some("kept"));
    // Request: as the upstream saw it.
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, Method::POST);
    assert_eq!(s.path_and_query, "/v1/slow?size=3");
    assert_eq!(s.body_len, 10);
    assert!(s.headers.get("x-client-hop").is_none());
    assert_eq!(s.headers["x-custom"], "kept");
    assert_eq!(s.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(s.headers["x-quota-account"], id.as_str());
    assert_eq!(
        s.headers["x-quota-tier"], "basic",
        "a client cannot claim a tier"
    );
    assert_eq!(s.headers["host"], up.addr.to_string().as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_502_and_slow_upstream_is_504() {
    let (up, gw) = gateway(|b| b.upstream_timeout(Duration::from_millis(500))).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let slow = http
        .post(&gw.url("/v1/slow?delay_ms=3000"), Some(&key))
        .await;
    assert_eq!(slow.status, 504);
    assert!(slow.json()["message"]
        .as_str()
        .unwrap()
        .contains("did not answer"));
    drop(up);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let gone = http.post(&gw.url("/v1/slow"), Some(&key)).await;
    assert_eq!(gone.status, 502);
    assert!(gone.json()["message"]
        .as_str()
        .unwrap()
        .contains("cannot be reached"));
    let metrics = http.get(&gw.url("/metrics"), None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("quota_upstream_errors_total{kind=\"unreachable\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("quota_upstream_errors_total{kind=\"timeout\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_growing_past_the_upload_limit_is_413() {
    let (_up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /v1/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // A PNG that never ends: 1 MiB chunks, far past the 10 MiB image limit.
    let mut chunk = vec![0u8; 1 << 20];
    chunk[..8].copy_from_slice(b"\x89PNG\r\n\x1a\n");
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..40 {
            let frame = if i == 0 {
                chunk.clone()
            } else {
                vec![b'x'; 1 << 20]
            };
            let mut out = format!("{:x}\r\n", frame.len()).into_bytes();
            out.extend_from_slice(&frame);
            out.extend_from_slice(b"\r\n");
            if wr.write_all(&out).await.is_err() {
                return i;
            }
        }
        40
    });
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 8192];
    let read = async {
        loop {
            let n = rd.read(&mut tmp).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&tmp[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.ends_with(b"}") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("no answer");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("\"message\""), "{text}");
    let _ = writer.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_serves_http1_and_http2_with_prior_knowledge() {
    use bytes::Bytes;
    use http::{Request, Version};
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let (up, gw) = gateway(|b| b.workers(3)).await;
    let http = Http::default();
    let (id, key) = http.create_account(&gw).await;
    // New connections are handed round-robin to the workers: six fresh
    // clients reach each of the three twice.
    for _ in 0..6 {
        let res = Http::default().get(&gw.url("/v1/slow"), Some(&key)).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.header("x-ratelimit-limit"), Some("100"));
    }
    // A client that speaks HTTP/2 from its first byte.
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    for path in ["/healthz", "/v1/slow"] {
        let req = Request::get(gw.url(path))
            .header("x-api-key", &key)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = tokio::time::timeout(Duration::from_secs(20), h2.request(req))
            .await
            .expect("HTTP/2 request timed out")
            .expect("HTTP/2 request failed");
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.version(), Version::HTTP_2, "{path}");
    }
    let seen = up.seen();
    assert_eq!(seen.len(), 7);
    for s in &seen {
        assert_eq!(s.headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(s.headers["x-quota-account"], id.as_str());
    }
}
