//! Refunds when the upstream fails (`docs/contract.md` 4.5, `docs/gateway.md`
//! "Refunds"): a 502 (port closed, or the upstream closes without an
//! answer) or a 504 (the upstream stalls) gives the request's units and
//! credit back, so `/v1/limits` is unchanged and the full limit is still
//! there; an upstream 500 is spent by default and refunded with
//! `--refund-on unreachable,5xx`; in memory and on Redis; on both HTTP/1.1
//! paths (`QUOTA_TEST_HTTP1`).

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quota_gateway::{AccessLog, RefundOn};
use quota_redis::FailurePolicy;
use support::redis_prefix::Prefix;
use support::{early_in_window, setup, Answer, Gw, Http, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the scripted upstream does with each request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// Reads the request and closes the connection without a word (502).
    Close = 0,
    /// Answers `200 {"ok":true}`.
    Ok = 1,
    /// Answers `500 {"error":"boom"}`.
    Fail = 2,
    /// Reads the request and never answers (504 after the upstream timeout).
    Stall = 3,
}

/// An upstream over raw TCP whose behaviour the test switches.
struct Scripted {
    url: String,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(AtomicU8::new(mode as u8));
        let m = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let m = Arc::clone(&m);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let (status, body) = match m.load(Ordering::SeqCst) {
                        0 => return, // dropped: closed without an answer
                        1 => ("200 OK", r#"{"ok":true}"#),
                        2 => ("500 Internal Server Error", r#"{"error":"boom"}"#),
                        _ => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Scripted {
            url,
            mode: shared,
            task,
        }
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A URL on a loopback port nothing listens on.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// Whether an answer carries any rate-limit header.
fn has_rate_headers(a: &Answer) -> bool {
    a.headers.keys().any(|k| {
        let k = k.as_str();
        k.starts_with("x-ratelimit") || k.starts_with("ratelimit") || k == "retry-after"
    })
}

/// `txt2img`'s remaining `(minute, daily)` and the credit, from `/v1/limits`.
async fn standing(http: &Http, gw: &Gw, key: &str) -> (u64, u64, String) {
    let v = http.get(&gw.url("/v1/limits"), Some(key)).await.json();
    let limits = &v["resources"]["txt2img"]["limits"];
    (
        limits[0]["remaining"].as_u64().unwrap(),
        limits[1]["remaining"].as_u64().unwrap(),
        v["credit"].as_str().unwrap().to_owned(),
    )
}

/// The value of `quota_refunds_total{reason="..."}`.
async fn refunds(http: &Http, gw: &Gw, reason: &str) -> u64 {
    let text = String::from_utf8(http.get(&gw.url("/metrics"), None).await.body.to_vec()).unwrap();
    let series = format!("quota_refunds_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Requests to `txt2img` (3 a minute) that the upstream cannot answer, then
/// the limit in full once it can: what every refunding scenario checks.
/// `failed` is the status the gateway answers while the upstream fails.
async fn refunded_then_full_limit(gw: &Gw, up: &Scripted, failing: Mode, failed: u16) {
    let http = Http::default();
    let (_, key) = http.create_account(gw).await;
    early_in_window(60_000, Duration::from_secs(15)).await;
    up.set(failing);
    // More than the limit: each is given back, none is refused.
    // GETs (bodiless: the own HTTP/1.1 path takes them when it is on),
    // POSTs to the priced endpoint.
    for i in 0..5 {
        let a = http.get(&gw.url("/v1/txt2img"), Some(&key)).await;
        assert_eq!(a.status, failed, "request {i}: {:?}", a.body);
        assert!(
            !has_rate_headers(&a),
            "a refunded answer has no rate headers: {:?}",
            a.headers
        );
        assert!(a.header("x-request-id").is_some() || failed == 500);
    }
    assert_eq!(standing(&http, gw, &key).await, (3, 100, "5.00".into()));
    // A priced endpoint's credit comes back too.
    for _ in 0..3 {
        let a = http.post(&gw.url("/v1/paid"), Some(&key)).await;
        assert_eq!(a.status, failed);
    }
    assert_eq!(standing(&http, gw, &key).await.2, "5.00");
    // The upstream answers again: the whole limit is there.
    up.set(Mode::Ok);
    for left in [2, 1, 0] {
        let a = http.get(&gw.url("/v1/txt2img"), Some(&key)).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert_eq!(
            a.header("x-ratelimit-remaining"),
            Some(left.to_string().as_str())
        );
    }
    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
        429
    );
    let a = http.post(&gw.url("/v1/paid"), Some(&key)).await;
    assert_eq!(a.status, 200);
    assert_eq!(standing(&http, gw, &key).await, (0, 97, "3.00".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_a_502_that_takes_nothing() {
    let gw = setup(&closed_port().await).start().await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    early_in_window(60_000, Duration::from_secs(10)).await;
    for _ in 0..5 {
        let a = http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
        assert_eq!(a.status, 502, "{:?}", a.body);
        assert!(!has_rate_headers(&a), "{:?}", a.headers);
    }
    let a = http.post(&gw.url("/v1/paid"), Some(&key)).await;
    assert_eq!(a.status, 502);
    assert_eq!(standing(&http, &gw, &key).await, (3, 100, "5.00".into()));
    assert_eq!(refunds(&http, &gw, "unreachable").await, 6);
    assert_eq!(refunds(&http, &gw, "timeout").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_closes_without_an_answer_is_refunded() {
    let up = Scripted::start(Mode::Ok).await;
    let gw = setup(&up.url).start().await;
    refunded_then_full_limit(&gw, &up, Mode::Close, 502).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stalls_is_a_504_and_refunded() {
    let up = Scripted::start(Mode::Ok).await;
    let gw = setup(&up.url)
        .with(|b| b.upstream_timeout(Duration::from_millis(300)))
        .start()
        .await;
    refunded_then_full_limit(&gw, &up, Mode::Stall, 504).await;
    let http = Http::default();
    assert_eq!(refunds(&http, &gw, "timeout").await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_500_is_spent_by_default() {
    let up = Scripted::start(Mode::Fail).await;
    let gw = setup(&up.url).start().await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    early_in_window(60_000, Duration::from_secs(10)).await;
    for left in [2, 1, 0] {
        let a = http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
        assert_eq!(a.status, 500);
        assert_eq!(a.json()["error"], "boom", "the upstream's own answer");
        assert_eq!(
            a.header("x-ratelimit-remaining"),
            Some(left.to_string().as_str())
        );
    }
    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
        429
    );
    assert_eq!(http.post(&gw.url("/v1/paid"), Some(&key)).await.status, 500);
    assert_eq!(standing(&http, &gw, &key).await, (0, 97, "3.00".into()));
    assert_eq!(refunds(&http, &gw, "5xx").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_500_is_refunded_with_refund_on_5xx() {
    let up = Scripted::start(Mode::Ok).await;
    let gw = setup(&up.url)
        .with(|b| b.refund_on("unreachable,5xx".parse::<RefundOn>().unwrap()))
        .start()
        .await;
    refunded_then_full_limit(&gw, &up, Mode::Fail, 500).await;
    let http = Http::default();
    assert_eq!(refunds(&http, &gw, "5xx").await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_on_none_spends_every_admitted_request() {
    let gw = setup(&closed_port().await)
        .with(|b| b.refund_on(RefundOn::Never))
        .start()
        .await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    early_in_window(60_000, Duration::from_secs(10)).await;
    for left in [2, 1, 0] {
        let a = http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
        assert_eq!(a.status, 502);
        assert_eq!(
            a.header("x-ratelimit-remaining"),
            Some(left.to_string().as_str())
        );
    }
    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
        429
    );
    assert_eq!(refunds(&http, &gw, "unreachable").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_gives_back_the_units_it_counted() {
    let gw = setup(&closed_port().await)
        .with(|b| b.shadow(true))
        .start()
        .await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    early_in_window(60_000, Duration::from_secs(10)).await;
    for _ in 0..4 {
        assert_eq!(
            http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
            502
        );
    }
    assert_eq!(standing(&http, &gw, &key).await, (3, 100, "5.00".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_says_refunded() {
    let dir = TempDir::new("refund-log");
    let path = dir.path().join("access.log");
    let log = AccessLog::file(&path).unwrap();
    let up = Scripted::start(Mode::Close).await;
    let mut gw = setup(&up.url)
        .with(move |b| b.access_log(log))
        .start()
        .await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
        502
    );
    up.set(Mode::Ok);
    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
        200
    );
    gw.stopped(Duration::from_secs(15)).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let decisions: Vec<(String, u64)> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["route"] == "proxy")
        .map(|v| {
            (
                v["decision"].as_str().unwrap().to_owned(),
                v["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [("refunded".to_owned(), 502), ("admitted".to_owned(), 200)],
        "{text}"
    );
}

const REDIS: &str = "redis://127.0.0.1:6379";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_an_unreachable_upstream_is_refunded() {
    let prefix = Prefix::new("refund-e2e");
    let up = Scripted::start(Mode::Ok).await;
    let gw = setup(&up.url)
        .redis(REDIS, Some(prefix.as_str()), FailurePolicy::default())
        .start()
        .await;
    refunded_then_full_limit(&gw, &up, Mode::Close, 502).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_500_is_spent_or_refunded_as_configured() {
    let prefix = Prefix::new("refund-e2e");
    let up = Scripted::start(Mode::Ok).await;
    let gw = setup(&up.url)
        .redis(REDIS, Some(prefix.as_str()), FailurePolicy::default())
        .with(|b| b.refund_on(RefundOn::ServerErrors))
        .start()
        .await;
    refunded_then_full_limit(&gw, &up, Mode::Fail, 500).await;
    drop(gw);
    let prefix = Prefix::new("refund-e2e");
    let gw = setup(&up.url)
        .redis(REDIS, Some(prefix.as_str()), FailurePolicy::default())
        .start()
        .await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    early_in_window(60_000, Duration::from_secs(10)).await;
    up.set(Mode::Fail);
    for _ in 0..3 {
        assert_eq!(
            http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
            500
        );
    }
    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
        429
    );
    assert_eq!(standing(&http, &gw, &key).await, (0, 97, "5.00".into()));
}
