//! The config file's `[[routes]]`: served by the binary, and a bad route
//! refused at start-up with its file, line and column.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, Http, Quota, TempDir, Upstream, ADMIN_TOKEN, TEST_POLICY};

/// `quota serve --config FILE` to its exit (bounded): the exit code and
/// stderr.
fn serve_to_exit(config: &std::path::Path) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--config", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in [
        "QUOTA_LISTEN",
        "QUOTA_UPSTREAM",
        "QUOTA_POLICY",
        "QUOTA_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("quota serve did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr)
}

#[test]
fn a_bad_route_is_refused_at_start_up_with_its_line() {
    let dir = TempDir::new("badroutes");
    let head = "listen = \"127.0.0.1:0\"\n\n[[routes]]\nprefix = \"/v1/\"\nupstream = \"http://127.0.0.1:9\"\n\n";
    for (body, at, problem) in [
        (
            "[[routes]]\nprefix = \"/v1/\"\nupstream = \"http://127.0.0.1:9\"\n",
            "8:10",
            "routes: prefix: \"/v1/\" is route 0's already",
        ),
        (
            "[[routes]]\nprefix = \"/files/\"\nupstream = \"ftp://127.0.0.1:9\"\n",
            "9:12",
            "routes: upstream: ftp://127.0.0.1:9/: only http:// and https://",
        ),
        (
            "[[routes]]\nprefix = \"/admin/\"\nupstream = \"http://127.0.0.1:9\"\n",
            "8:10",
            "the gateway's own routes take it",
        ),
        (
            "[[routes]]\nprefix = \"/files\"\nupstream = \"http://127.0.0.1:9\"\n",
            "8:10",
            "a prefix starts and ends with `/`",
        ),
        (
            "[[routes]]\nprefix = \"/files/\"\nupstream = \"http://127.0.0.1:9\"\nmetred = false\n",
            "10:1",
            "unknown field `metred`",
        ),
    ] {
        let cfg = dir.write("quota.toml", &format!("{head}{body}"));
        let (code, stderr) = serve_to_exit(&cfg);
        assert_ne!(code, Some(0), "{stderr}");
        let want = format!("{}:{at}: ", cfg.display());
        assert!(stderr.contains(&want), "want {want:?}: {stderr}");
        assert!(stderr.contains(problem), "want {problem:?}: {stderr}");
    }
    // Routes and an upstream for /v1/ both: refused.
    let cfg = dir.write(
        "quota.toml",
        &format!("upstream = \"http://127.0.0.1:9\"\n{head}"),
    );
    let (code, stderr) = serve_to_exit(&cfg);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("[[routes]] both name upstreams"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_routes_of_its_config_file() {
    let (api, files) = (Upstream::start().await, Upstream::start().await);
    let dir = TempDir::new("routes");
    let policy = dir.write("policy.toml", TEST_POLICY);
    let cfg = dir.write(
        "quota.toml",
        &format!(
            "policy = \"policy.toml\"\ndata-dir = \"data\"\nadmin-token = \"{ADMIN_TOKEN}\"\n\n\
             [[routes]]\nprefix = \"/v1/\"\nupstream = \"{}\"\n\n\
             [[routes]]\nprefix = \"/static/\"\nupstream = \"{}\"\nmetered = false\nstrip = true\n",
            api.url(),
            files.url()
        ),
    );
    assert!(policy.exists());
    let gw = tokio::task::block_in_place(|| Quota::serve(&["--config", cfg.to_str().unwrap()]));
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let a = http.get(&gw.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(http.get(&gw.url("/static/a.css"), None).await.status, 200);
    assert_eq!(http.get(&gw.url("/other"), None).await.status, 404);
    assert_eq!(api.seen()[0].path_and_query, "/v1/txt2img");
    assert_eq!(files.seen()[0].path_and_query, "/a.css");
    assert_eq!(api.seen().len() + files.seen().len(), 2);
    assert!(gw.stderr().contains("/static/ -> "), "{}", gw.stderr());
}
