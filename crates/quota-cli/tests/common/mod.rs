//! Shared harness of the end-to-end tests: a real upstream (a small hyper
//! server), the real `quota` binary on a free loopback port, and a hyper
//! client. Children are killed when their guard drops; every wait is bounded.

// tests may panic; each test binary uses a different part of the harness
// (dead_code), and `pub` items here are only reachable from the test crate.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// The real `quota` binary, killed on drop.
pub struct Quota {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdout_lines: Arc<Mutex<Vec<String>>>,
    pub stderr_path: PathBuf,
    _logs: TempDir,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_quota")
}

impl Quota {
    /// Starts `quota serve ARGS --listen 127.0.0.1:0` and waits for its address.
    pub fn serve(args: &[&str]) -> Self {
        Self::serve_with_env(args, &[])
    }

    pub fn serve_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let logs = TempDir::new("logs");
        let stderr_path = logs.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("serve");
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .stdin(Stdio::null());
        for var in [
            "QUOTA_LISTEN",
            "QUOTA_UPSTREAM",
            "QUOTA_POLICY",
            "QUOTA_STORE",
            "QUOTA_ADMIN_TOKEN",
            "QUOTA_DATA_DIR",
            "QUOTA_CONFIG",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("quota: listening on http://") {
                    let _ = tx.send(a.parse::<SocketAddr>().unwrap());
                }
                l.lock().unwrap().push(line);
            }
        });
        let mut guard = Quota {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            stdout_lines: lines,
            stderr_path,
            _logs: logs,
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => guard.addr = addr,
            Err(_) => panic!("quota serve did not start; stderr:\n{}", guard.stderr()),
        }
        guard
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        self.stdout_lines.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Sends SIGHUP.
    pub fn hangup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits (bounded) for the process to exit; its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "quota did not exit within {within:?}; stderr:\n{}",
            self.stderr()
        );
    }

    /// Waits (bounded) until stderr contains `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) {
        self.wait_log_count(needle, 1, within);
    }

    /// Waits (bounded) until stderr contains `needle` at least `n` times.
    pub fn wait_log_count(&self, needle: &str, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.stderr().matches(needle).count() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "log line {needle:?} did not appear {n} times within {within:?}; stderr:\n{}",
            self.stderr()
        );
    }
}

impl Drop for Quota {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    pub async fn create_account(&self, gw: &Quota) -> (String, String) {
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
    pub async fn pay(&self, gw: &Quota, id: &str, amount: &str) -> Answer {
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

    pub async fn account(&self, gw: &Quota, id: &str) -> Answer {
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

/// Starts an upstream and a gateway with the test policy and a fresh data dir.
pub async fn gateway(extra: &[&str]) -> (Upstream, Quota, TempDir) {
    let up = Upstream::start().await;
    let (gw, dir) = gateway_to(&up.url(), extra).await;
    (up, gw, dir)
}

/// A scripted upstream over raw TCP: reads each request (its head, and
/// a body framed by `Content-Length` or chunked), answers it with the
/// same bytes every time, and closes the connection. For answers a real
/// HTTP server would not send (both `Content-Length` and
/// `Transfer-Encoding`, a `101` nobody asked for).
pub struct RawUpstream {
    pub addr: SocketAddr,
    /// The heads received (up to their blank line), in order.
    pub heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawUpstream {
    pub async fn start(answer: &'static [u8]) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = Arc::clone(&heads);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let h = Arc::clone(&h);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 16 * 1024];
                    let read = async {
                        loop {
                            if let Some(end) = request_end(&buf) {
                                return Some(end);
                            }
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return None,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                    };
                    let Ok(Some(head_len)) =
                        tokio::time::timeout(Duration::from_secs(10), read).await
                    else {
                        return;
                    };
                    h.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..head_len]).into_owned());
                    let _ = stream.write_all(answer).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        RawUpstream { addr, heads, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where the head of the request in `buf` ends, once the request (head
/// and body) is all there.
fn request_end(buf: &[u8]) -> Option<usize> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
    let body = &buf[head..];
    if text.contains("transfer-encoding:") {
        return body.ends_with(b"0\r\n\r\n").then_some(head);
    }
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (body.len() >= len).then_some(head)
}

/// Starts a gateway with the test policy in front of `upstream` (a URL).
pub async fn gateway_to(upstream: &str, extra: &[&str]) -> (Quota, TempDir) {
    let dir = TempDir::new("gw");
    let policy = dir.write("policy.toml", TEST_POLICY);
    let data = dir.path().join("data");
    let mut args = vec![
        "--upstream".to_owned(),
        upstream.to_owned(),
        "--policy".to_owned(),
        policy.display().to_string(),
        "--data-dir".to_owned(),
        data.display().to_string(),
        "--admin-token".to_owned(),
        ADMIN_TOKEN.to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let gw = tokio::task::block_in_place(|| Quota::serve(&refs));
    (gw, dir)
}

/// An HTTP/2 client with prior knowledge (no upgrade, no TLS).
pub fn h2_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>()
}

/// Writes `request` on a new connection to `addr` and reads until the
/// gateway closes it (ask for `Connection: close`), within 10 s.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    // A reset after the answer (the gateway closed with unread bytes)
    // ends the answer too.
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the gateway did not close the connection in time");
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw answer (`HTTP/1.1 200 OK...`).
pub fn status_of(answer: &str) -> u16 {
    answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an answer: {answer:?}"))
}
