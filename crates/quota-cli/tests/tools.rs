//! The binary's other faces: bad configuration, `quota call`, `quota
//! simulate`, `quota policy`.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, early_in_window, gateway, Http, Quota, TempDir, TEST_POLICY};

/// Runs `quota ARGS` to completion (bounded), without the QUOTA_* environment.
fn quota(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "QUOTA_LISTEN",
        "QUOTA_UPSTREAM",
        "QUOTA_POLICY",
        "QUOTA_CONFIG",
        "QUOTA_KEY",
        "QUOTA_DATA_DIR",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("quota {args:?} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn bad_config_file_exits_non_zero_naming_file_line_and_problem() {
    let dir = TempDir::new("badconfig");
    let cfg = dir.write(
        "quota.toml",
        "upstream = \"http://127.0.0.1:9\"\nlisten = \"127.0.0.1:0\"\nshadow = \"maybe\"\n",
    );
    let out = quota(&["serve", "--config", cfg.to_str().unwrap()], &[]);
    assert_ne!(out.status.code(), Some(0));
    let msg = stderr(&out);
    assert!(msg.contains(&format!("{}:3:", cfg.display())), "{msg}");
    assert!(msg.contains("bool") || msg.contains("boolean"), "{msg}");
}

#[test]
fn bad_policy_file_exits_non_zero_with_file_line_and_column() {
    let dir = TempDir::new("badpolicy");
    let policy = dir.write(
        "policy.toml",
        &TEST_POLICY.replace("count = 3 }", "count = 0 }"),
    );
    let data = dir.path().join("data");
    let out = quota(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:9",
            "--policy",
            policy.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let msg = stderr(&out);
    let line = TEST_POLICY
        .lines()
        .position(|l| l.contains("count = 3 }"))
        .unwrap()
        + 1;
    assert!(
        msg.contains(&format!("{}:{line}:", policy.display())),
        "{msg}"
    );
    assert!(msg.contains("count must be at least 1"), "{msg}");
}

#[test]
fn flag_beats_environment_which_beats_config_file() {
    let dir = TempDir::new("precedence");
    let cfg = dir.write(
        "quota.toml",
        "upstream = \"http://127.0.0.1:9\"\nlisten = \"127.0.0.1:0\"\n",
    );
    // The environment's bad value beats the file's good one...
    let out = quota(
        &["serve", "--config", cfg.to_str().unwrap()],
        &[("QUOTA_LISTEN", "not-an-address")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("QUOTA_LISTEN"), "{}", stderr(&out));
    // ...and a flag beats the environment.
    let data = dir.path().join("data");
    let gw = Quota::serve_with_env(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[("QUOTA_LISTEN", "not-an-address")],
    );
    assert_eq!(gw.addr.ip().to_string(), "127.0.0.1");
}

#[test]
fn missing_upstream_is_a_clear_error() {
    let out = quota(&["serve", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--upstream"), "{}", stderr(&out));
}

/// Runs `quota call FLAGS -X POST` on `/v1/burst` once this 2-second
/// window's one request is spent (early in it); returns the output and how
/// long the call took.
async fn call_on_a_spent_window(flags: &[&str]) -> (Output, Duration) {
    let (_up, gw, _dir) = gateway(&[]).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let url = gw.url("/v1/burst");
    early_in_window(2_000, Duration::from_millis(1_500)).await;
    assert_eq!(http.post(&url, Some(&key)).await.status, 200);
    let started = Instant::now();
    let mut args = vec!["call", "--key", &key, "-X", "POST"];
    args.extend_from_slice(flags);
    args.push(&url);
    let out = tokio::task::block_in_place(|| quota(&args, &[]));
    (out, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_waits_through_a_minute_limit_then_succeeds() {
    let (out, elapsed) = call_on_a_spent_window(&[]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("attempt 1 refused (429, minute limit); waiting"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("\"path\":\"/v1/burst\""),
        "{}",
        stdout(&out)
    );
    assert!(elapsed >= Duration::from_millis(900), "it waited");
    assert!(elapsed < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_include_shows_the_head_of_every_attempt_the_refused_one_first() {
    let (out, _) = call_on_a_spent_window(&["-i"]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let at = |needle: &str| {
        err.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing: {err}"))
    };
    let refused = at("HTTP/1.1 429 Too Many Requests");
    let wait = at("attempt 1 refused (429, minute limit); waiting");
    let admitted = at("HTTP/1.1 200 OK");
    assert!(refused < wait && wait < admitted, "{err}");
    assert!(err[refused..wait].contains("retry-after: "), "{err}");
    assert!(stdout(&out).contains("\"path\":\"/v1/burst\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_gives_up_at_once_on_a_daily_limit() {
    let (_up, gw, _dir) = gateway(&[]).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let url = gw.url("/v1/once");
    assert_eq!(http.post(&url, Some(&key)).await.status, 200);
    let started = Instant::now();
    let out = tokio::task::block_in_place(|| {
        quota(
            &["call", "--key", &key, "-d", "{\"prompt\":\"x\"}", &url],
            &[],
        )
    });
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("daily limit reached after 1 attempt"), "{err}");
    assert!(stdout(&out).contains("Too Many Attempts."));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no wait before giving up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_with_pacing_meets_no_429() {
    // The IETF `RateLimit` header tells the pacer when this 2-second window resets.
    let (_up, gw, _dir) = gateway(&["--ietf-headers"]).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let url = gw.url("/v1/burst");
    let out = tokio::task::block_in_place(|| {
        quota(
            &[
                "call", "--key", &key, "--pace", "--repeat", "2", "-X", "POST", &url,
            ],
            &[],
        )
    });
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("refused"), "pacing avoided the 429: {err}");
    assert!(err.contains("pacing: waiting"), "{err}");
}

#[test]
fn call_to_nothing_exits_2() {
    let out = quota(&["call", "http://127.0.0.1:9/v1/x"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));
}

#[test]
fn simulate_counts_a_generated_trace_and_draws_it() {
    let dir = TempDir::new("simulate");
    let policy = dir.write("policy.toml", TEST_POLICY);
    // 3 keys, each sending 10 txt2img requests in each of 20 seconds: every
    // minute window admits 3 per key; rows spread over two minutes.
    let start = 1_700_000_020_000u64; // 40 s into a UTC minute
    let mut csv = String::from("timestamp_ms,key,endpoint,tier\n");
    for s in 0..40u64 {
        for i in 0..10u64 {
            for k in 0..3 {
                csv.push_str(&format!(
                    "{},key-{k},txt2img,basic\n",
                    start + s * 1000 + i * 10
                ));
            }
        }
    }
    csv.push_str(&format!("{},key-0,nope,basic\n", start + 40_000));
    let trace = dir.write("trace.csv", &csv);
    let svg = dir.path().join("out.svg");
    let out = quota(
        &[
            "simulate",
            "--policy",
            policy.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 1200 requests over two minute windows: 3 keys x 3 x 2 admitted.
    assert_eq!(v["requests"], 1201);
    assert_eq!(v["endpoints"]["txt2img"]["admitted"], 18);
    assert_eq!(v["endpoints"]["txt2img"]["refused"], 1182);
    assert_eq!(v["endpoints"]["txt2img"]["refused_by"]["minute"], 1182);
    assert_eq!(v["errors"]["unknown endpoint"], 1);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    assert!(svg.contains("admitted") && svg.contains("refused"));

    let table = quota(
        &[
            "simulate",
            "--policy",
            policy.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
        ],
        &[],
    );
    let text = stdout(&table);
    assert!(
        text.lines()
            .any(|l| l.starts_with("txt2img") && l.contains("18") && l.contains("1182")),
        "{text}"
    );
}

#[test]
fn simulate_refuses_an_unknown_tier_and_rows_out_of_time_order() {
    let dir = TempDir::new("simulate-checks");
    let policy = dir.write("policy.toml", TEST_POLICY);
    let p = policy.to_str().unwrap();
    let good = dir.write("good.csv", "1700000020000,k,txt2img\n");
    let out = quota(
        &[
            "simulate",
            "--policy",
            p,
            "--trace",
            good.to_str().unwrap(),
            "--tier",
            "gold",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("--tier: unknown tier \"gold\": the policy's tiers are basic, premium"),
        "{}",
        stderr(&out)
    );
    let late = dir.write(
        "late.csv",
        "timestamp_ms,key,endpoint\n1700000020000,k,txt2img\n1700000019000,k,txt2img\n",
    );
    let out = quota(
        &["simulate", "--policy", p, "--trace", late.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let msg = stderr(&out);
    assert!(
        msg.contains(&format!("{}:3: rows must be in time order", late.display())),
        "{msg}"
    );
    let gold = dir.write("gold.csv", "1700000020000,k,txt2img,gold\n");
    let out = quota(
        &["simulate", "--policy", p, "--trace", gold.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(":1: unknown tier \"gold\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn simulate_warns_when_timestamps_look_like_seconds() {
    let dir = TempDir::new("simulate-seconds");
    let trace = dir.write("s.csv", "1700000020,k,txt2img\n1700000080,k,txt2img\n");
    let out = quota(&["simulate", "--trace", trace.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning") && stderr(&out).contains("look like seconds"),
        "{}",
        stderr(&out)
    );
}

/// The sample trace of docs/gateway.md gives the table and plot shown there.
#[test]
fn simulate_the_sample_trace_as_the_docs_show_it() {
    let trace = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/sample-trace.csv");
    let dir = TempDir::new("simulate-sample");
    let svg = dir.path().join("plot.svg");
    let out = quota(
        &[
            "simulate",
            "--trace",
            trace,
            "--plot",
            svg.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let row = |name: &str| -> Vec<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{text}"));
        line.split_whitespace()
            .skip(1)
            .map(|n| n.parse().unwrap())
            .collect()
    };
    // endpoint, admitted, refused, refused:daily, refused:minute
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "endpoint",
            "admitted",
            "refused",
            "refused:daily",
            "refused:minute"
        ]
    );
    assert_eq!(row("txt2img"), [90, 60, 0, 60]);
    assert_eq!(row("txt2video"), [15, 45, 31, 14]);
    assert_eq!(row("img2img"), [590, 60, 0, 60]);
    assert_eq!(row("TOTAL"), [695, 165, 31, 134]);
    let svg = std::fs::read_to_string(&svg).unwrap();
    for label in [
        "refused by minute",
        "refused by daily",
        "txt2video (tier basic), per minute",
        "img2img (tier premium)",
    ] {
        assert!(svg.contains(label), "{label} not in the plot");
    }
}

#[test]
fn policy_validate_counts_in_words() {
    let dir = TempDir::new("validate-one");
    let one = dir.write(
        "one.toml",
        "[[endpoints]]\npath = \"a\"\n[[tiers]]\nname = \"t\"\n",
    );
    let out = quota(&["policy", "validate", one.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).ends_with(": ok (1 endpoint, 1 tier)\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_gateway_that_cannot_listen_says_so_once_and_creates_no_database() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = TempDir::new("nolisten");
    let data = dir.path().join("data");
    let out = quota(
        &[
            "serve",
            "--listen",
            &addr,
            "--upstream",
            "http://127.0.0.1:9",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let msg = stderr(&out);
    assert_eq!(msg.matches("cannot listen on").count(), 1, "{msg}");
    assert!(!data.join("accounts.redb").exists(), "{msg}");
}

#[test]
fn a_redis_that_does_not_answer_is_not_called_connected() {
    let dir = TempDir::new("redis-down");
    let gw = Quota::serve(&[
        "--upstream",
        "http://127.0.0.1:9",
        "--store",
        "redis://127.0.0.1:1",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    let log = gw.stderr();
    assert!(log.contains("redis does not answer yet"), "{log}");
    assert!(!log.contains("redis store connected"), "{log}");
}

#[test]
fn help_names_no_seed_strategy() {
    let out = quota(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!stdout(&out).contains("seed's"), "{}", stdout(&out));
}

#[test]
fn policy_validate_names_line_and_column() {
    let dir = TempDir::new("validate");
    let good = dir.write("good.toml", TEST_POLICY);
    let out = quota(&["policy", "validate", good.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("ok (5 endpoints, 2 tiers)"),
        "{}",
        stdout(&out)
    );

    let bad = dir.write(
        "bad.toml",
        &TEST_POLICY.replace("window = \"2s\"", "window = \"2 fortnights\""),
    );
    let out = quota(&["policy", "validate", bad.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let line = TEST_POLICY
        .lines()
        .position(|l| l.contains("window = \"2s\""))
        .unwrap()
        + 1;
    let msg = stderr(&out);
    let prefix = format!("{}:{line}:", bad.display());
    assert!(msg.starts_with(&prefix), "{msg}");
    let col: usize = msg[prefix.len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(col > 1, "{msg}");
    assert!(msg.contains("invalid window length"), "{msg}");
}

#[test]
fn policy_show_and_export_round_trip() {
    let out = quota(&["policy", "show"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("Tier premium"));
    let dir = TempDir::new("export");
    let json = quota(&["policy", "export", "--format", "json"], &[]);
    let file = dir.write("seed.json", &stdout(&json));
    let back = quota(&["policy", "validate", file.to_str().unwrap()], &[]);
    assert_eq!(back.status.code(), Some(0), "{}", stderr(&back));
    let toml = quota(&["policy", "export"], &[]);
    let file = dir.write("seed.toml", &stdout(&toml));
    assert_eq!(
        quota(&["policy", "validate", file.to_str().unwrap()], &[])
            .status
            .code(),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_seed_with_two_accounts_and_nothing_else() {
    let dir = TempDir::new("demo");
    let gw = tokio::task::block_in_place(|| {
        Quota::serve(&[
            "--demo",
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
        ])
    });
    let out = gw.stdout();
    let keys: Vec<&str> = out
        .split_whitespace()
        .filter(|w| w.starts_with("qk_"))
        .collect();
    assert!(keys.len() >= 2, "{out}");
    assert!(out.contains("curl"), "{out}");
    assert!(
        out.contains("/admin/ui/") && out.contains("Demo traffic"),
        "{out}"
    );
    let http = Http::default();
    let basic = http.post(&gw.url("/v1/txt2video"), Some(keys[0])).await;
    assert_eq!(basic.status, 200);
    assert_eq!(basic.header("x-ratelimit-limit"), Some("1"));
    assert_eq!(basic.json()["endpoint"], "txt2video");
    let premium = http.post(&gw.url("/v1/txt2video"), Some(keys[1])).await;
    assert_eq!(premium.header("x-ratelimit-limit"), Some("300"));
}
