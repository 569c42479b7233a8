//! What both end-to-end suites share, the gateway's in process
//! (`crates/quota-gateway/tests/support`) and the binary's
//! (`crates/quota-cli/tests/common`, which includes this file by
//! `#[path]`): the test policy, a real upstream (a small hyper server), a
//! hyper client, and small helpers. Every wait is bounded.

// tests may panic; each test binary uses a different part of the harness
// (dead_code), and `pub` items here are only reachable from the test crate.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The test policy: short windows so that no test sleeps for minutes.
///
/// - `txt2img`: 3 per 1 minute (`minute`) and 100 a day (`daily`), as the seed;
/// - `burst`: 1 per 2 s (`minute`), for waiting through a refusal;
/// - `paid`: $2.00 a request, 100 per minute;
/// - `once`: 10 per minute and 1 per day (`daily`), for the daily refusal;
/// - `slow`: generous limits, for requests the upstream delays;
/// - premium: 300 per minute over every endpoint together.
pub const TEST_POLICY: &str = r#"
[[endpoints]]
path = "txt2img"

[[endpoints]]
path = "burst"

[[endpoints]]
path = "paid"
price = "2.00"

[[endpoints]]
path = "once"

[[endpoints]]
path = "slow"

[[tiers]]
name = "basic"
granted = "signup"
limits = [
  { endpoint = "txt2img", window = "1m", count = 3 },
  { endpoint = "txt2img", window = "1d", count = 100 },
  { endpoint = "burst", name = "minute", window = "2s", count = 1 },
  { endpoint = "paid", window = "1m", count = 100 },
  { endpoint = "once", window = "1m", count = 10 },
  { endpoint = "once", window = "1d", count = 1 },
  { endpoint = "slow", window = "1m", count = 100 },
]

[[tiers]]
name = "premium"
granted = "payment"
limits = [
  { window = "1m", count = 300 },
]
"#;

/// The admin token the tests start the gateway with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A gateway under test, however it runs (in process, or the binary).
pub trait Served {
    /// `http://ADDR{path}`.
    fn url(&self, path: &str) -> String;
}

/// A folder removed on drop.
pub struct TempDir(pub PathBuf);

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "quota-e2e-{name}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body_len: usize,
}

/// A real upstream: answers `200 {"path": ...}` after reading the body.
/// `?delay_ms=N` delays the answer; the response carries hop-by-hop headers
/// that the gateway must not pass on.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let s = Arc::clone(&s);
                        async move { Ok::<_, Infallible>(upstream_answer(req, s).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn upstream_answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        method: parts.method.clone(),
        path_and_query: pq.clone(),
        headers: parts.headers.clone(),
        body_len: body.len(),
    });
    if let Some(ms) = parts
        .uri
        .query()
        .and_then(|q| q.strip_prefix("delay_ms="))
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let text = serde_json::json!({ "path": parts.uri.path(), "body_len": body.len() }).to_string();
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("connection", "x-upstream-hop")
        .header("x-upstream-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("x-upstream-end-to-end", "kept")
        .body(Full::new(Bytes::from(text)))
        .unwrap()
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A hyper client.
#[derive(Clone)]
pub struct Http(Client<HttpConnector, Full<Bytes>>);

impl Default for Http {
    fn default() -> Self {
        Http(Client::builder(TokioExecutor::new()).build(HttpConnector::new()))
    }
}

impl Http {
    /// A client whose connections come from `local` (`127.0.0.2`, say: all
    /// of 127.0.0.0/8 is loopback).
    pub fn from_address(local: std::net::IpAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(local));
        Http(Client::builder(TokioExecutor::new()).build(connector))
    }

    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
        let res = tokio::time::timeout(Duration::from_secs(20), self.0.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        let (parts, body) = res.into_parts();
        let body = tokio::time::timeout(Duration::from_secs(20), body.collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, url: &str, key: Option<&str>) -> Answer {
        let auth = key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.send(Method::GET, url, &headers, "").await
    }

    pub async fn post(&self, url: &str, key: Option<&str>) -> Answer {
        let auth = key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.send(Method::POST, url, &headers, "").await
    }

    /// Creates an account through the admin API: `(id, key)`.
    pub async fn create_account(&self, gw: &impl Served) -> (String, String) {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let a = self
            .send(
                Method::POST,
                &gw.url("/admin/accounts"),
                &[("authorization", &auth)],
                "",
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.body);
        let v = a.json();
        (
            v["id"].as_str().unwrap().to_owned(),
            v["key"].as_str().unwrap().to_owned(),
        )
    }

    /// Records a payment through the admin API.
    pub async fn pay(&self, gw: &impl Served, id: &str, amount: &str) -> Answer {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let body = format!("{{\"amount\":\"{amount}\"}}");
        self.send(
            Method::POST,
            &gw.url(&format!("/admin/accounts/{id}/payments")),
            &[("authorization", &auth)],
            &body,
        )
        .await
    }

    pub async fn account(&self, gw: &impl Served, id: &str) -> Answer {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        self.send(
            Method::GET,
            &gw.url(&format!("/admin/accounts/{id}")),
            &[("authorization", &auth)],
            "",
        )
        .await
    }
}

/// Sleeps, if needed, so that at least `margin` is left in the current
/// aligned window of `window_ms` (fixed windows align to the epoch).
pub async fn early_in_window(window_ms: u64, margin: Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let left = window_ms - now % window_ms;
    if Duration::from_millis(left) < margin {
        tokio::time::sleep(Duration::from_millis(left + 20)).await;
    }
}
