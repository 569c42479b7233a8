//! `/healthz` shows the store as it is now: a gateway on a Redis of the
//! test's own answers 503 while that Redis is down and 200 again within
//! about two seconds of its return, with no other request sent (a load
//! balancer that took the node out must be able to take it back).

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Http, Quota, TempDir, TEST_POLICY};

/// A `redis-server` of this test's own on a loopback port, killed on drop.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut r = PrivateRedis { port, child: None };
        r.restart();
        r
    }

    /// Kills it (SIGKILL: no goodbye to the clients).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port, empty, and waits until it answers.
    fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it answers `PING` (checked by the test itself, not the gateway).
    fn answers(&self) -> bool {
        let addr = ([127, 0, 0, 1], self.port).into();
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut pong = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut pong).is_ok() && &pong == b"+PONG\r\n"
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `/healthz` until it answers `status`; how long that took.
async fn until_health(http: &Http, gw: &Quota, status: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let a = http.get(&gw.url("/healthz"), None).await;
        if a.status == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "/healthz still {} after {within:?}, expected {status}: {:?}",
            a.status,
            a.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_follows_redis_down_and_back_without_other_requests() {
    let mut redis = tokio::task::block_in_place(PrivateRedis::start);
    let dir = TempDir::new("health");
    let policy = dir.write("policy.toml", TEST_POLICY);
    let store = format!("redis://127.0.0.1:{}", redis.port);
    let gw = tokio::task::block_in_place(|| {
        Quota::serve(&[
            "--upstream",
            "http://127.0.0.1:9",
            "--policy",
            policy.to_str().unwrap(),
            "--store",
            &store,
            "--redis-prefix",
            "quota-e2e-health:",
        ])
    });
    let http = Http::default();
    until_health(&http, &gw, 200, Duration::from_secs(5)).await;

    tokio::task::block_in_place(|| redis.kill());
    let down = until_health(&http, &gw, 503, Duration::from_secs(5)).await;
    let a = http.get(&gw.url("/healthz"), None).await;
    assert_eq!(a.json()["status"], "unavailable");

    tokio::task::block_in_place(|| redis.restart());
    // About two seconds (a ping a second at most, and the reconnection),
    // with room for a busy machine.
    let back = until_health(&http, &gw, 200, Duration::from_secs(3)).await;
    let a = http.get(&gw.url("/healthz"), None).await;
    assert_eq!(a.json()["status"], "ok");
    assert_eq!(a.json()["store"]["redis_ok"], true);
    eprintln!("503 after {down:?} down, 200 after {back:?} back");
}
