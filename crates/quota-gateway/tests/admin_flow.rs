//! Accounts through the admin API: create, use up a Basic limit, pay, and
//! Premium's higher limit applies to the very next request.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http::Method;
use support::{early_in_window, gateway, Http, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_lifts_a_spent_basic_account_to_premium_at_once() {
    let (_up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let (id, key) = http.create_account(&gw).await;

    let account = http.account(&gw, &id).await.json();
    assert_eq!(account["tier"], "basic");
    assert_eq!(account["credit"], "5.00");

    early_in_window(60_000, Duration::from_secs(5)).await;
    for _ in 0..3 {
        assert_eq!(
            http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
            200
        );
    }
    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
        429
    );

    let paid = http.pay(&gw, &id, "10.00").await;
    assert_eq!(paid.status, 200, "{:?}", paid.body);
    let paid = paid.json();
    assert_eq!(paid["tier"], "premium");
    assert_eq!(paid["credit"], "15.00");
    assert_eq!(paid["paid"], "10.00");

    // The same minute: Premium's 300 a minute over all endpoints applies now.
    for i in 0..5u64 {
        let ok = http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("x-ratelimit-limit"), Some("300"));
        assert_eq!(
            ok.header("x-ratelimit-remaining").unwrap(),
            (299 - i).to_string()
        );
        assert_eq!(
            ok.header("x-ratelimit-daily-limit"),
            None,
            "Premium has no daily limit"
        );
    }
    let shown = http.account(&gw, &id).await.json();
    assert_eq!(shown["tier"], "premium");
    assert_eq!(shown["limits"]["txt2img"]["limits"][0]["remaining"], 295);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_admin_token() {
    let (_up, gw) = gateway(|b| b.workers(2)).await;
    let http = Http::default();
    for auth in [
        None,
        Some("Bearer wrong-token-xxxxxxxxxxxx"),
        Some("Bearer test-admin-token-012345678"),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        let res = http
            .send(Method::POST, &gw.url("/admin/accounts"), &headers, "")
            .await;
        assert_eq!(res.status, 401, "{auth:?}");
        assert!(res.json()["message"].is_string());
    }
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let res = http
        .send(
            Method::GET,
            &gw.url("/admin/accounts/nobody"),
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(res.status, 404);
    let (id, _) = http.create_account(&gw).await;
    let bad = http
        .send(
            Method::POST,
            &gw.url(&format!("/admin/accounts/{id}/payments")),
            &[("authorization", &auth)],
            "{\"amount\": \"ten\"}",
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(gw.logs().contains("account created"));
    assert!(!gw.logs().contains("qk_"), "API keys are never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_endpoint_reports_every_endpoint_without_consuming() {
    let (_up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let (id, key) = http.create_account(&gw).await;
    early_in_window(60_000, Duration::from_secs(5)).await;
    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
        200
    );
    for _ in 0..3 {
        let res = http.get(&gw.url("/v1/limits"), Some(&key)).await;
        assert_eq!(res.status, 200);
        let v = res.json();
        assert_eq!(v["tier"], "basic");
        assert_eq!(v["account"], id.as_str());
        assert_eq!(v["credit"], "5.00");
        let limits = &v["resources"]["txt2img"]["limits"];
        assert_eq!(limits[0]["name"], "minute");
        assert_eq!(limits[0]["limit"], 3);
        assert_eq!(limits[0]["remaining"], 2);
        assert_eq!(limits[0]["window_seconds"], 60);
        assert!(limits[0]["reset"].as_u64().unwrap() > v["time"].as_u64().unwrap());
        assert_eq!(limits[1]["name"], "daily");
        assert_eq!(limits[1]["remaining"], 99);
        assert_eq!(v["resources"]["paid"]["price"], "2.00");
        assert_eq!(v["resources"]["burst"]["limits"][0]["remaining"], 1);
    }
    assert_eq!(http.get(&gw.url("/v1/limits"), None).await.status, 401);
}
