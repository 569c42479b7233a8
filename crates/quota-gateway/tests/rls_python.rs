//! Envoy's rate limit service through a client quota did not write:
//! Python's grpcio, with stubs compiled by grpcio-tools from the `.proto`
//! files the envoy-types crate ships (`tests/python/rls_client.py`). The
//! Python tools are installed, pinned, by `scripts/ensure-python-tools.sh`.
//! And `docs/envoy/envoy.yaml` read against Envoy's own protos.
#![cfg(feature = "grpc")]
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::{setup, Http, TempDir, Upstream};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// envoy-types' `proto` folder, where cargo unpacked the crate.
fn envoy_protos() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(repo().join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "envoy-types")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("envoy-types is a dependency");
    Path::new(manifest).parent().unwrap().join("proto")
}

/// The venv's python, installing the pinned tools if needed.
fn python() -> String {
    let out = Command::new(repo().join("scripts/ensure-python-tools.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/ensure-python-tools.sh failed"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Runs `calls` through the Python client against `addr`: one JSON answer
/// per call.
fn run_python(addr: std::net::SocketAddr, calls: &Value) -> Vec<Value> {
    let scratch = TempDir::new("rls-python");
    let mut child = Command::new(python())
        .arg(repo().join("crates/quota-gateway/tests/python/rls_client.py"))
        .arg(envoy_protos())
        .arg(addr.to_string())
        .arg(scratch.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(calls.to_string().as_bytes())
        .unwrap();
    // Bounded: the client's calls time out after 10 s each.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the Python client finishes within 2 minutes")
        .unwrap();
    assert!(
        out.status.success(),
        "the Python client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_sees_the_seeds_limits_and_its_429() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).grpc("quota").start().await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let ok = json!([["api_key", key], ["endpoint", "txt2img"]]);
    let call = |descriptor: &Value| json!({"domain": "quota", "descriptors": [descriptor]});
    let calls = json!([
        call(&ok),
        call(&ok),
        call(&ok),
        call(&ok),
        call(&json!([["api_key", "qk_nobody"], ["endpoint", "txt2img"]])),
        {"domain": "elsewhere", "descriptors": [ok]},
        call(&json!([["api_key", key]])),
    ]);
    let addr = gw.grpc_addr.unwrap();
    let answers = tokio::task::spawn_blocking(move || run_python(addr, &calls))
        .await
        .unwrap();
    assert_eq!(answers.len(), 7, "{answers:?}");
    for (i, remaining) in [2, 1, 0].into_iter().enumerate() {
        let a = &answers[i];
        assert_eq!(a["code"], "OK", "{a}");
        assert_eq!(a["statuses"][0]["code"], "OK");
        assert_eq!(a["statuses"][0]["requests_per_unit"], 3);
        assert_eq!(a["statuses"][0]["unit"], "MINUTE");
        assert_eq!(a["statuses"][0]["limit_remaining"], remaining);
        assert_eq!(a["headers"]["x-ratelimit-limit"], "3");
        assert_eq!(a["headers"]["x-ratelimit-remaining"], remaining.to_string());
    }
    let refused = &answers[3];
    assert_eq!(refused["code"], "OVER_LIMIT", "{refused}");
    assert_eq!(refused["headers"]["x-ratelimit-remaining"], "0");
    assert!(refused["headers"]["retry-after"].is_string(), "{refused}");
    // The body Envoy will send: the gateway's own 429 body.
    let http_refusal = http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(http_refusal.status, 429);
    let body: Value = serde_json::from_str(refused["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, http_refusal.json());

    assert_eq!(answers[4]["code"], "OVER_LIMIT");
    assert_eq!(answers[4]["headers"]["x-quota-status"], "401");
    assert_eq!(answers[5]["error"], "INVALID_ARGUMENT", "{}", answers[5]);
    assert_eq!(answers[6]["error"], "INVALID_ARGUMENT", "{}", answers[6]);
    assert!(answers[6]["message"].as_str().unwrap().contains("endpoint"));
}

/// The Envoy configuration the docs give, read against Envoy's protos: a
/// field name, type or enum value Envoy would not accept fails here.
#[test]
fn the_documented_envoy_yaml_is_what_envoy_reads() {
    let scratch = TempDir::new("envoy-config");
    let out = Command::new(python())
        .arg(repo().join("crates/quota-gateway/tests/python/envoy_config.py"))
        .arg(envoy_protos())
        .arg(scratch.path())
        .arg(repo().join("docs/envoy/envoy.yaml"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok: 1 listener(s), 2 cluster(s)"),
        "{stdout}"
    );
}
