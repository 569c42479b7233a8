//! The gateway's own HTTP/1.1 path (requests without a body), driven over
//! raw TCP: pipelining, a connection handed to hyper midway, `Connection:
//! close`, HEAD, refusals, and the headers it forwards and answers with.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use quota_gateway::Http1;
use support::{Gw, Http, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An upstream and a gateway on the own HTTP/1.1 path, whatever
/// `QUOTA_TEST_HTTP1` says: these tests are about that path (its
/// pipelining, its handover to hyper, its answers), which `Http1::Hyper`
/// does not use.
async fn gateway() -> (Upstream, Gw) {
    support::gateway(|b| b.http1(Http1::Own)).await
}

/// One answer read off a raw connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one answer (framed by `Content-Length`; none for a HEAD) from
/// `s`, keeping what follows it in `buf`.
async fn read_answer(s: &mut TcpStream, buf: &mut Vec<u8>, head: bool) -> Raw {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut fields);
        if let httparse::Status::Complete(len) = res.parse(buf).unwrap() {
            let headers: Vec<(String, String)> = res
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let status = res.code.unwrap();
            let body_len = if head {
                0
            } else {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse::<usize>().unwrap())
            };
            while buf.len() < len + body_len {
                read_more(s, buf, deadline).await;
            }
            let body = buf[len..len + body_len].to_vec();
            buf.drain(..len + body_len);
            return Raw {
                status,
                headers,
                body,
            };
        }
        read_more(s, buf, deadline).await;
    }
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>, deadline: tokio::time::Instant) {
    let mut chunk = [0u8; 4096];
    let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
        .await
        .expect("no answer in time")
        .unwrap();
    assert!(
        n > 0,
        "closed early; read so far: {:?}",
        String::from_utf8_lossy(buf)
    );
    buf.extend_from_slice(&chunk[..n]);
}

fn get(path: &str, key: &str) -> String {
    request("GET", path, key, "")
}

/// A request head with `key` and `more` fields (each ended by CRLF).
fn request(method: &str, path: &str, key: &str, more: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: {key}\r\n{more}\r\n")
}

/// Writes `request` on `s`, then reads one answer (see [`read_answer`]).
async fn ask(s: &mut TcpStream, buf: &mut Vec<u8>, request: &[u8], head: bool) -> Raw {
    s.write_all(request).await.unwrap();
    read_answer(s, buf, head).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_with_their_counts() {
    let (up, gw) = gateway().await;
    let (_, key) = Http::default().create_account(&gw).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let three = format!(
        "{}{}{}",
        get("/v1/slow?n=1", &key),
        get("/v1/slow?n=2", &key),
        get("/v1/slow?n=3", &key)
    );
    s.write_all(three.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    for remaining in ["99", "98", "97"] {
        let a = read_answer(&mut s, &mut buf, false).await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.header("x-ratelimit-limit"), Some("100"));
        assert_eq!(a.header("x-ratelimit-remaining"), Some(remaining));
        assert_eq!(a.header("content-type"), Some("application/json"));
        assert!(a.header("date").is_some());
        // The upstream's hop-by-hop headers stay behind; the rest comes.
        assert_eq!(a.header("x-upstream-hop"), None);
        assert_eq!(a.header("keep-alive"), None);
        assert_eq!(a.header("x-upstream-end-to-end"), Some("kept"));
        let json: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(json["path"], "/v1/slow");
    }
    let seen: Vec<String> = up.seen().into_iter().map(|s| s.path_and_query).collect();
    assert_eq!(seen, ["/v1/slow?n=1", "/v1/slow?n=2", "/v1/slow?n=3"]);
    let first = &up.seen()[0];
    assert_eq!(first.headers["x-forwarded-host"], "gw.test");
    assert_eq!(first.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(first.headers["x-forwarded-proto"], "http");
    assert_eq!(first.headers["x-quota-tier"], "basic");
    assert_eq!(first.headers["host"], up.addr.to_string().as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_body_hands_the_connection_to_hyper_which_serves_the_rest() {
    let (up, gw) = gateway().await;
    let (_, key) = Http::default().create_account(&gw).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    // Own path, then a body (hyper from here on, counts kept), then a GET.
    let a = ask(&mut s, &mut buf, get("/v1/slow", &key).as_bytes(), false).await;
    assert_eq!(a.header("x-ratelimit-remaining"), Some("99"));
    let post = request("POST", "/v1/slow", &key, "Content-Length: 5\r\n");
    let post = format!("{post}hello{}", get("/v1/slow", &key));
    let b = ask(&mut s, &mut buf, post.as_bytes(), false).await;
    assert_eq!(b.status, 200, "{b:?}");
    assert_eq!(b.header("x-ratelimit-remaining"), Some("98"));
    let c = read_answer(&mut s, &mut buf, false).await;
    assert_eq!(c.header("x-ratelimit-remaining"), Some("97"));
    let bodies: Vec<usize> = up.seen().iter().map(|s| s.body_len).collect();
    assert_eq!(bodies, [0, 5, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_head_requests_and_connection_close() {
    let (up, gw) = gateway().await;
    let (_, key) = Http::default().create_account(&gw).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    // A refusal keeps the connection open.
    let no_key = b"GET /v1/slow HTTP/1.1\r\nHost: gw.test\r\n\r\n";
    let refused = ask(&mut s, &mut buf, no_key, false).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    assert_eq!(refused.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert!(json["message"]
        .as_str()
        .unwrap()
        .contains("missing API key"));
    // An unknown endpoint: 404 from the same checks.
    let unknown = get("/v1/nope", &key);
    assert_eq!(
        ask(&mut s, &mut buf, unknown.as_bytes(), false)
            .await
            .status,
        404
    );
    // HEAD: the upstream's length, no body; the connection goes on.
    let head = request("HEAD", "/v1/slow", &key, "");
    let head = ask(&mut s, &mut buf, head.as_bytes(), true).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("x-ratelimit-remaining"), Some("99"));
    // Connection: close is answered, then the connection ends.
    let last = request("GET", "/v1/slow", &key, "Connection: close\r\n");
    let last = ask(&mut s, &mut buf, last.as_bytes(), false).await;
    assert_eq!(last.status, 200);
    assert_eq!(last.header("connection"), Some("close"));
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty() && buf.is_empty());
    assert_eq!(up.seen().len(), 2, "refusals never reach the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_routes_and_malformed_heads_go_to_hyper() {
    let (_up, gw) = gateway().await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: gw.test\r\n\r\n";
    let health = ask(&mut s, &mut buf, healthz, false).await;
    assert_eq!(health.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
    assert_eq!(json["status"], "ok");
    let mut bad = TcpStream::connect(gw.addr).await.unwrap();
    let malformed = b"GET /v1/slow HTTP/1.1\r\nBad Header\r\n\r\n";
    let mut buf = Vec::new();
    assert_eq!(ask(&mut bad, &mut buf, malformed, false).await.status, 400);
}
