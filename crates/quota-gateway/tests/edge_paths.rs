//! What is charged is what is served, with a real nginx as the upstream.
//! nginx resolves `%2F` and dot-segments before it serves, as most servers
//! and frameworks do, so a gateway that matches the raw spelling and
//! forwards it raw charges one endpoint and has another served. Each
//! spelling goes through every path the gateway has: its own HTTP/1.1 path
//! (a GET over raw TCP, sent as written), hyper's HTTP/1.1 (a POST with a
//! body) and HTTP/2.
//!
//! nginx comes from Debian's `nginx-light` (scripts/test.sh installs it).

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use quota_core::path::PathAction;
use support::{setup, Gw, Http, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An nginx that answers every request with the path it resolved (`$uri`),
/// and logs each request it served, one line each.
struct Nginx {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Nginx {
    fn start() -> Self {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("nginx is not installed: run scripts/test.sh, which installs nginx-light");
        let dir = TempDir::new("nginx");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tmp = dir.path().display().to_string();
        let conf = format!(
            r#"
worker_processes 1;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    log_format served '$request_uri -> $uri';
    access_log {tmp}/access.log served;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "$uri";
        }}
    }}
}}
"#
        );
        let conf_path = dir.write("nginx.conf", &conf);
        let child = Command::new(bin)
            .args(["-p", &tmp, "-c"])
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, port, dir }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What nginx served so far: `request_uri -> uri` per request.
    fn served(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// What nginx served, once it has logged at least `n` requests (it
    /// logs a request after its answer is sent, so the line may come a
    /// moment after the client read the answer): waits up to 5 s.
    async fn served_at_least(&self, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let served = self.served();
            if served.len() >= n || std::time::Instant::now() > deadline {
                return served;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway on the seed policy in front of `nginx`, refusing paths that
/// are not canonical or (`normalize`) resolving them.
async fn gateway(nginx: &Nginx, normalize: bool) -> Gw {
    let action = if normalize {
        PathAction::Normalize
    } else {
        PathAction::Refuse
    };
    setup(&nginx.url())
        .seed_policy()
        .with(move |b| b.path_action(action))
        .start()
        .await
}

/// Sends `GET target` as written (no client normalizes it) and returns the
/// status, the `X-RateLimit-Limit` header and the body.
async fn raw_get(gw: &Gw, target: &str, key: &str) -> (u16, Option<String>, String) {
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("no answer in time")
        .unwrap();
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut res = httparse::Response::new(&mut fields);
    let httparse::Status::Complete(len) = res.parse(&buf).unwrap() else {
        panic!("partial answer: {:?}", String::from_utf8_lossy(&buf));
    };
    let limit = res
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("x-ratelimit-limit"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned());
    let body = String::from_utf8_lossy(&buf[len..]).into_owned();
    (res.code.unwrap(), limit, body)
}

/// Sends `POST target` with a body over HTTP/1.1 (hyper's path) or HTTP/2.
async fn post(gw: &Gw, target: &str, key: &str, h2: bool) -> (u16, String) {
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(gw.addr).await.unwrap());
    let req = http::Request::post(target)
        .header("host", "gw")
        .header("x-api-key", key)
        .body(Full::new(Bytes::from_static(b"{\"prompt\":\"a cat\"}")))
        .unwrap();
    let res = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut req = req;
        *req.uri_mut() = format!("http://gw{target}").parse().unwrap();
        send.send_request(req).await.unwrap()
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        send.send_request(req).await.unwrap()
    };
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The spellings that escape their segment once nginx resolves them.
const SPELLINGS: [&str; 6] = [
    "/v1/prompt/..%2ftxt2img",
    "/v1/prompt/..%2Ftxt2img",
    "/v1/prompt/..%2f..%2fadmin%2faccounts",
    "/v1/prompt/%2e%2e/txt2img",
    "/v1/prompt/../txt2img",
    "/v1/prompt/..%5ctxt2img",
];

#[tokio::test(flavor = "multi_thread")]
async fn spellings_that_nginx_resolves_elsewhere_are_refused_on_every_path() {
    let nginx = Nginx::start();
    let gw = gateway(&nginx, false).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;

    // Basic: 3 txt2img a minute, then 429.
    for _ in 0..3 {
        assert_eq!(raw_get(&gw, "/v1/txt2img", &key).await.0, 200);
    }
    assert_eq!(raw_get(&gw, "/v1/txt2img", &key).await.0, 429);
    let before = nginx.served_at_least(3).await;
    assert_eq!(before.len(), 3, "{before:?}");

    for target in SPELLINGS {
        let (status, _, body) = raw_get(&gw, target, &key).await;
        assert_eq!(status, 400, "GET {target}: {body}");
        assert!(
            body.contains("invalid request path"),
            "GET {target}: {body}"
        );
        for h2 in [false, true] {
            let (status, body) = post(&gw, target, &key, h2).await;
            assert_eq!(status, 400, "POST {target} (h2 {h2}): {body}");
        }
    }
    // Nothing of it reached nginx.
    assert_eq!(nginx.served(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn normalizing_charges_the_endpoint_nginx_serves() {
    let nginx = Nginx::start();
    let gw = gateway(&nginx, true).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;

    // Charged as txt2img (3 a minute), not as prompt/* (10 a minute), and
    // forwarded as what nginx serves.
    for _ in 0..3 {
        let (status, limit, body) = raw_get(&gw, "/v1/prompt/..%2ftxt2img", &key).await;
        assert_eq!((status, limit.as_deref()), (200, Some("3")), "{body}");
        assert_eq!(body, "/v1/txt2img");
    }
    assert_eq!(raw_get(&gw, "/v1/txt2img", &key).await.0, 429);
    let (status, _) = post(&gw, "/v1/prompt/%2e%2e/txt2img", &key, false).await;
    assert_eq!(status, 429);
    // The upstream got the canonical spelling, never the raw one.
    for line in nginx.served_at_least(3).await {
        assert_eq!(line, "/v1/txt2img -> /v1/txt2img");
    }
    // Climbing out of /v1/ is refused even when normalizing.
    let (status, _, body) = raw_get(&gw, "/v1/prompt/..%2f..%2fadmin%2faccounts", &key).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(nginx.served().len(), 3);
}
