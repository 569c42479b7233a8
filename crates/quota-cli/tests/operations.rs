//! Running the binary: it serves a request end to end, keeps accounts
//! across a restart, drains on SIGTERM, reloads its policy file. (What the
//! gateway does once running is tested in process:
//! `crates/quota-gateway/tests/`.)

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{early_in_window, gateway, Http, Quota, TempDir, Upstream, ADMIN_TOKEN, TEST_POLICY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_a_request_end_to_end() {
    let (up, gw, _dir) = gateway(&[]).await;
    let http = Http::default();
    let (id, key) = http.create_account(&gw).await;
    let res = http.post(&gw.url("/v1/slow?n=1"), Some(&key)).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.header("x-ratelimit-limit"), Some("100"));
    assert_eq!(res.header("x-ratelimit-remaining"), Some("99"));
    assert_eq!(res.json()["path"], "/v1/slow");
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path_and_query, "/v1/slow?n=1");
    assert_eq!(seen[0].headers["x-quota-account"], id.as_str());
    // The binary's own choices: accounts on disk, its start-up line.
    let health = http.get(&gw.url("/healthz"), None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["accounts"]["backend"], "redb");
    assert!(
        gw.stderr().contains("quota gateway started"),
        "{}",
        gw.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_accounts_tiers_and_credit() {
    let up = Upstream::start().await;
    let dir = TempDir::new("restart");
    let policy = dir.write("policy.toml", TEST_POLICY);
    let data = dir.path().join("data");
    let args = [
        "--upstream",
        &up.url(),
        "--policy",
        policy.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--admin-token",
        ADMIN_TOKEN,
    ];
    let http = Http::default();
    let (id, key, premium_key) = {
        let mut gw = tokio::task::block_in_place(|| Quota::serve(&args));
        let (id, key) = http.create_account(&gw).await;
        let (pid, pkey) = http.create_account(&gw).await;
        assert_eq!(http.pay(&gw, &pid, "1.50").await.status, 200);
        assert_eq!(http.post(&gw.url("/v1/paid"), Some(&key)).await.status, 200);
        gw.terminate();
        assert_eq!(
            tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(10))),
            Some(0)
        );
        (id, key, pkey)
    };
    let gw = tokio::task::block_in_place(|| Quota::serve(&args));
    let account = http.account(&gw, &id).await.json();
    assert_eq!(account["credit"], "3.00");
    assert_eq!(account["spent"], "2.00");
    assert_eq!(account["requests"], 1);
    assert_eq!(http.post(&gw.url("/v1/paid"), Some(&key)).await.status, 200);
    assert_eq!(
        http.post(&gw.url("/v1/paid"), Some(&key)).await.status,
        402,
        "$1 left cannot pay $2"
    );
    let premium = http.post(&gw.url("/v1/txt2img"), Some(&premium_key)).await;
    assert_eq!(premium.status, 200);
    assert_eq!(premium.header("x-ratelimit-limit"), Some("300"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish_then_exits_cleanly() {
    let (_up, mut gw, _dir) = gateway(&[]).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let url = gw.url("/v1/slow?delay_ms=1500");
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            tokio::spawn(async move { http.post(&url, Some(&key)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let started = Instant::now();
    gw.terminate();
    gw.wait_log("shutting down", Duration::from_secs(5));
    // A new connection is refused while the old ones drain.
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "still accepting after SIGTERM"
    );
    for t in in_flight {
        let res = t.await.unwrap();
        assert_eq!(res.status, 200, "{:?}", res.body);
    }
    assert_eq!(
        tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(10))),
        Some(0)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "exited before the requests finished"
    );
    assert!(gw.stderr().contains("accounts flushed"));
    // The clients' kept-alive connections, idle by then, closed at once.
    assert!(
        gw.stderr().contains("all connections drained"),
        "{}",
        gw.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_policy_file_is_reloaded_and_a_bad_one_refused() {
    let (_up, gw, dir) = gateway(&[]).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    early_in_window(60_000, Duration::from_secs(10)).await;
    // Count against a limit that the reload does not change.
    assert_eq!(
        http.post(&gw.url("/v1/slow"), Some(&key))
            .await
            .header("x-ratelimit-remaining"),
        Some("99")
    );
    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&key))
            .await
            .header("x-ratelimit-limit"),
        Some("3")
    );

    let raised = TEST_POLICY.replace(
        r#"{ endpoint = "txt2img", window = "1m", count = 3 }"#,
        r#"{ endpoint = "txt2img", window = "1m", count = 7 }"#,
    );
    assert_ne!(raised, TEST_POLICY);
    dir.write("policy.toml", &raised);
    gw.wait_log_count("policy reloaded", 1, Duration::from_secs(10));
    let res = http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(res.header("x-ratelimit-limit"), Some("7"));
    let slow = http.post(&gw.url("/v1/slow"), Some(&key)).await;
    assert_eq!(
        slow.header("x-ratelimit-remaining"),
        Some("98"),
        "an unchanged limit keeps its count"
    );

    let broken = raised.replace("count = 7", "count = 0");
    dir.write("policy.toml", &broken);
    gw.wait_log("policy reload refused", Duration::from_secs(10));
    let log = gw.stderr();
    assert!(
        log.contains("policy.toml:"),
        "the refusal names the file and line: {log}"
    );
    assert!(log.contains("count must be at least 1"), "{log}");
    let res = http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(
        res.header("x-ratelimit-limit"),
        Some("7"),
        "the old policy keeps running"
    );

    // SIGHUP reloads too.
    dir.write("policy.toml", TEST_POLICY);
    gw.wait_log_count("policy reloaded", 2, Duration::from_secs(10));
    gw.hangup();
    gw.wait_log("trigger=Signal", Duration::from_secs(10));
    let res = http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(res.header("x-ratelimit-limit"), Some("3"));
}

/// `--refund-on` reaches the gateway: with `none`, the 502s of a port
/// nothing listens on are spent; by default (`unreachable`) they are not.
/// Bad values stop it with the flag's or the line's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_on_is_a_flag_and_a_config_key() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let http = Http::default();
    for (flags, statuses) in [
        (&["--refund-on", "none"][..], [502, 502, 502, 429]),
        (&[][..], [502, 502, 502, 502]),
    ] {
        let (gw, _dir) = common::gateway_to(&closed, flags).await;
        let (_, key) = http.create_account(&gw).await;
        early_in_window(60_000, Duration::from_secs(10)).await;
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(
                http.get(&gw.url("/v1/txt2img"), Some(&key))
                    .await
                    .status
                    .as_u16(),
            );
        }
        assert_eq!(got, statuses, "{flags:?}");
    }
    let dir = TempDir::new("refund-on");
    let bad = |args: &[&str]| {
        let out = std::process::Command::new(common::bin())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let serve = ["serve", "--listen", "127.0.0.1:0", "--upstream", &closed];
    let (code, msg) = bad(&[&serve[..], &["--refund-on", "4xx"]].concat());
    assert_eq!(code, Some(2), "{msg}");
    assert!(
        msg.contains("--refund-on") && msg.contains("\"4xx\""),
        "{msg}"
    );
    let cfg = dir.write(
        "quota.toml",
        &format!("upstream = \"{closed}\"\nlisten = \"127.0.0.1:0\"\nrefund_on = \"none,5xx\"\n"),
    );
    let (code, msg) = bad(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains(&format!("{}:3:", cfg.display())), "{msg}");
    assert!(msg.contains("none cannot be combined"), "{msg}");
}
