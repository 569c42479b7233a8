//! Callers without a key: limited per client address on the policy's
//! anonymous tier (`granted = "anonymous"`), IPv6 by /64, the address from
//! `X-Forwarded-For` only behind a trusted proxy; a bad key still 401.
//! Run on both HTTP/1.1 paths (`QUOTA_TEST_HTTP1=own|hyper`).

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::IpAddr;

use http::Method;
use quota_gateway::forwarded::TrustedProxies;
use support::*;

/// The test policy and a tier for callers without a key: 2 `txt2img` a
/// minute per address.
fn policy() -> String {
    format!(
        "{TEST_POLICY}
[[tiers]]
name = \"anon\"
granted = \"anonymous\"
limits = [
  {{ endpoint = \"txt2img\", window = \"1m\", count = 2 }},
  {{ endpoint = \"paid\", window = \"1m\", count = 100 }},
]
"
    )
}

fn from(ip: &str) -> Http {
    Http::from_address(ip.parse::<IpAddr>().unwrap())
}

/// `GET /v1/txt2img` without a key, as `client`, with `headers`: the status
/// and the remaining count.
async fn call(client: &Http, gw: &Gw, headers: &[(&str, &str)]) -> (u16, Option<String>) {
    let a = client
        .send(Method::GET, &gw.url("/v1/txt2img"), headers, "")
        .await;
    let remaining = a.header("x-ratelimit-remaining").map(str::to_owned);
    (a.status.as_u16(), remaining)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_address_without_a_key_has_a_budget_of_its_own() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).policy(&policy()).start().await;
    let (one, two) = (from("127.0.0.1"), from("127.0.0.2"));
    assert_eq!(call(&one, &gw, &[]).await, (200, Some("1".into())));
    assert_eq!(call(&one, &gw, &[]).await, (200, Some("0".into())));
    let refused = one.get(&gw.url("/v1/txt2img"), None).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["message"], "Too Many Attempts.");
    assert_eq!(refused.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(refused.header("x-ratelimit-type"), Some("minute"));
    assert!(refused.header("retry-after").is_some());
    // Another address: a budget of its own.
    assert_eq!(call(&two, &gw, &[]).await, (200, Some("1".into())));
    // The upstream is told who the caller is.
    let seen = up.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].headers["x-quota-account"], "anonymous:127.0.0.1");
    assert_eq!(seen[0].headers["x-quota-tier"], "anon");
    assert_eq!(seen[2].headers["x-quota-account"], "anonymous:127.0.0.2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_is_never_downgraded_to_anonymous() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).policy(&policy()).start().await;
    let http = Http::default();
    for headers in [
        [("x-api-key", "unknown-key")],
        [("authorization", "Basic dXNlcjpwYXNz")],
        [("x-api-key", "")],
    ] {
        let a = http
            .send(Method::GET, &gw.url("/v1/txt2img"), &headers, "")
            .await;
        assert_eq!(a.status, 401, "{headers:?}: {:?}", a.body);
    }
    // A priced endpoint needs an account to charge: a key.
    let a = http.get(&gw.url("/v1/paid"), None).await;
    assert_eq!(a.status, 401);
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .contains("needs an API key"),
        "{:?}",
        a.body
    );
    assert!(up.seen().is_empty());
    // Keyed callers are served (and charged) as ever.
    let (_, key) = http.create_account(&gw).await;
    assert_eq!(http.get(&gw.url("/v1/paid"), Some(&key)).await.status, 200);
    assert_eq!(up.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_anonymous_tier_a_missing_key_stays_401() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).start().await;
    let a = Http::default().get(&gw.url("/v1/txt2img"), None).await;
    assert_eq!(a.status, 401);
    assert!(a.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("missing API key"));
    let a = Http::default().get(&gw.url("/v1/limits"), None).await;
    assert_eq!(a.status, 401);
    assert!(up.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_an_ipv6_64_shares_one_budget() {
    let up = Upstream::start().await;
    let trusted = TrustedProxies::parse(&["127.0.0.1"]).unwrap();
    let gw = setup(&up.url())
        .policy(&policy())
        .with(|b| b.trusted_proxies(trusted))
        .start()
        .await;
    let proxy = from("127.0.0.1");
    let xff = |ip: &'static str| [("x-forwarded-for", ip)];
    // Two addresses of one /64: one budget.
    assert_eq!(
        call(&proxy, &gw, &xff("2001:db8:1:2::1")).await,
        (200, Some("1".into()))
    );
    assert_eq!(
        call(&proxy, &gw, &xff("2001:db8:1:2:ffff::9")).await,
        (200, Some("0".into()))
    );
    assert_eq!(call(&proxy, &gw, &xff("2001:db8:1:2::7")).await.0, 429);
    // The next /64, and an IPv4 client: budgets of their own.
    assert_eq!(
        call(&proxy, &gw, &xff("2001:db8:1:3::1")).await,
        (200, Some("1".into()))
    );
    assert_eq!(
        call(&proxy, &gw, &xff("198.51.100.7")).await,
        (200, Some("1".into()))
    );
    // From a peer that is not a trusted proxy, the header is its own
    // claim: the peer's address is counted.
    let other = from("127.0.0.2");
    assert_eq!(
        call(&other, &gw, &xff("2001:db8:1:3::1")).await,
        (200, Some("1".into()))
    );
    assert_eq!(
        call(&other, &gw, &xff("2001:db8:9::1")).await,
        (200, Some("0".into()))
    );
    let accounts: Vec<String> = up
        .seen()
        .iter()
        .map(|s| s.headers["x-quota-account"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        accounts,
        [
            "anonymous:2001:db8:1:2::/64",
            "anonymous:2001:db8:1:2::/64",
            "anonymous:2001:db8:1:3::/64",
            "anonymous:198.51.100.7",
            "anonymous:127.0.0.2",
            "anonymous:127.0.0.2",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_metrics_see_anonymous_callers() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).policy(&policy()).start().await;
    let http = from("127.0.0.2");
    assert_eq!(call(&http, &gw, &[]).await.0, 200);
    let limits = http.get(&gw.url("/v1/limits"), None).await;
    assert_eq!(limits.status, 200, "{:?}", limits.body);
    let v = limits.json();
    assert_eq!(v["account"], "anonymous:127.0.0.2");
    assert_eq!(v["tier"], "anon");
    assert_eq!(v["resources"]["txt2img"]["limits"][0]["remaining"], 1);
    assert!(v.get("credit").is_none());
    let metrics = http.get(&gw.url("/metrics"), None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines().any(|l| l.starts_with("quota_decisions_total{")
            && l.contains("tier=\"anon\"")
            && l.contains("endpoint=\"txt2img\"")
            && l.contains("outcome=\"admitted\"")),
        "{text}"
    );
}
