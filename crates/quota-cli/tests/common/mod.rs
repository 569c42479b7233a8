//! Harness of the binary's end-to-end tests: the real `quota` binary on a
//! free loopback port, killed when its guard drops. The upstream, the
//! client and the helpers are the gateway suite's ([`shared`], included
//! from `crates/quota-gateway/tests/support/shared.rs`); the gateway's
//! behaviour is tested in process there, this suite tests the binary
//! (flags, configuration, signals, reload, the tools). Every wait is
//! bounded.

// tests may panic; each test binary uses a different part of the harness
// (dead_code), and `pub` items here are only reachable from the test crate.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

#[path = "../../../quota-gateway/tests/support/shared.rs"]
pub mod shared;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use shared::*;

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
            "QUOTA_TLS_CERT",
            "QUOTA_TLS_KEY",
            "QUOTA_UPSTREAM_CA",
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
                let addr = line
                    .strip_prefix("quota: listening on http://")
                    .or_else(|| line.strip_prefix("quota: listening on https://"));
                if let Some(a) = addr {
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

impl Served for Quota {
    fn url(&self, path: &str) -> String {
        Quota::url(self, path)
    }
}

/// Starts an upstream and a gateway with the test policy and a fresh data dir.
pub async fn gateway(extra: &[&str]) -> (Upstream, Quota, TempDir) {
    let up = Upstream::start().await;
    let (gw, dir) = gateway_to(&up.url(), extra).await;
    (up, gw, dir)
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
