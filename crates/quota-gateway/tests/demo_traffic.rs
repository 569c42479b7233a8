//! `quota serve --demo` opens with traffic to look at: the demo gateway
//! (seed policy, the mock upstream, the demo accounts) started as
//! `quota serve --demo` starts it, with [`DemoTraffic`] sending through it.
//! Within seconds the gateway has admitted requests, refused some by a
//! minute limit, and answered 401 and 404; the traffic stops at shutdown;
//! the demo's signup-tier account is left alone for the banner's `curl`
//! lines.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use quota_core::policy::Policy;
use quota_gateway::demo::{self, traffic::DemoTraffic};
use quota_gateway::Gateway;
use support::{early_in_window, Http, ADMIN_TOKEN};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_traffic_is_admitted_refused_and_stops_at_shutdown() {
    // The burst of the first second must not straddle a minute.
    early_in_window(60_000, Duration::from_secs(15)).await;
    let upstream = demo::start_mock_upstream().await.unwrap();
    let gateway = Gateway::builder(Policy::seed())
        .upstream(format!("http://{upstream}").parse().unwrap())
        .admin_token(ADMIN_TOKEN)
        .workers(1)
        .shutdown_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shown = demo::create_accounts(&gateway).await.unwrap();
    let (stop_traffic, traffic_stopped) = tokio::sync::oneshot::channel::<()>();
    let traffic = DemoTraffic::start(&gateway, addr, &shown, async {
        let _ = traffic_stopped.await;
    })
    .await
    .unwrap();
    assert!(traffic.is_on());
    assert_eq!(traffic.accounts().len(), 3);
    let banner = demo::banner(addr, upstream, ADMIN_TOKEN, &shown, Some(&traffic));
    assert!(banner.contains("/admin/ui/"), "{banner}");
    assert!(banner.contains(&traffic.accounts()[0].id), "{banner}");
    let (stop_gateway, gateway_stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(gateway.serve(listener, async {
        let _ = gateway_stopped.await;
    }));

    // Admitted, refused by a limit, a stranger's key, an unknown endpoint.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = traffic.statuses();
        if [200, 429, 401, 404].iter().all(|s| seen.contains_key(s)) {
            break;
        }
        assert!(Instant::now() < deadline, "after 30 s: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let http = Http::default();
    let metrics = http.get(&format!("http://{addr}/metrics"), None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines().any(|l| l.starts_with("quota_decisions_total{")
            && l.contains("outcome=\"refused\"")
            && l.contains("limit_type=\"minute\"")),
        "{text}"
    );
    // And on the operator's page, signed in with the admin token: the busy
    // account among the most refused.
    let login = http
        .send(
            http::Method::POST,
            &format!("http://{addr}/admin/ui/login"),
            &[("content-type", "application/x-www-form-urlencoded")],
            &format!("token={ADMIN_TOKEN}"),
        )
        .await;
    let cookie = login
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie: {login:?}"))
        .to_owned();
    let now = http
        .send(
            http::Method::GET,
            &format!("http://{addr}/admin/ui/"),
            &[("cookie", &cookie)],
            "",
        )
        .await;
    assert_eq!(now.status, 200);
    let page = String::from_utf8_lossy(&now.body);
    let busy = &traffic.accounts()[0].id;
    assert!(page.contains(&format!("data-account=\"{busy}\"")), "{page}");

    // The banner's account is untouched: its first txt2img of the minute
    // is admitted with the whole minute's budget.
    let basic = &shown[0];
    let first = http
        .post(&format!("http://{addr}/v1/txt2img"), Some(&basic.key))
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-ratelimit-remaining"), Some("2"));

    // Stopped: no more requests.
    stop_traffic.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: u64 = traffic.statuses().values().sum();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(traffic.statuses().values().sum::<u64>(), before);
    stop_gateway.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
