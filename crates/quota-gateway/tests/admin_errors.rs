//! The admin API's refusals: payments that are not exact, positive amounts
//! in range, a missing token told apart from a wrong one, a 405 that says
//! which method the route answers, and too many wrong tokens from one
//! address.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::Method;
use quota_gateway::forwarded::TrustedProxies;
use support::{gateway, Http, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_that_is_not_an_exact_positive_amount_in_range_is_400_and_says_why() {
    let (_up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let (id, _) = http.create_account(&gw).await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let url = gw.url(&format!("/admin/accounts/{id}/payments"));

    for (body, says) in [
        ("[1]", "not a JSON object"),
        ("\"10.00\"", "not a JSON object"),
        (r#"{"amount": 1e30}"#, "too large"),
        (r#"{"amount": 1e309}"#, "too large"),
        (r#"{"amount": 18446744073710}"#, "too large"),
        (r#"{"amount": -5}"#, "negative"),
        (r#"{"amount": "-5"}"#, "negative"),
        (r#"{"amount": "abc"}"#, "invalid amount"),
        (r#"{"amount": 0.0000001}"#, "at most 6 decimals"),
        (r#"{"amount": 0}"#, "must be more than 0"),
    ] {
        let a = http
            .send(Method::POST, &url, &[("authorization", &auth)], body)
            .await;
        assert_eq!(a.status, 400, "{body}: {:?}", a.body);
        let message = a.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("payment") && message.contains(says),
            "{body}: {message}"
        );
    }
    // Nothing was recorded.
    let account = http.account(&gw, &id).await.json();
    assert_eq!(
        (account["credit"].as_str(), account["paid"].as_str()),
        (Some("5.00"), Some("0.00"))
    );
    assert_eq!(account["tier"], "basic");

    // A good one still goes through.
    let a = http
        .send(
            Method::POST,
            &url,
            &[("authorization", &auth)],
            r#"{"amount": 2.5}"#,
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.json()["credit"], "7.50");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_admin_token_is_told_apart_from_a_missing_one() {
    let (_up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let url = gw.url("/admin/accounts");
    let missing = http.send(Method::POST, &url, &[], "").await;
    let wrong = http
        .send(
            Method::POST,
            &url,
            &[("authorization", "Bearer not-the-admin-token")],
            "",
        )
        .await;
    assert_eq!(missing.status, 401);
    assert_eq!(wrong.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let (m, w) = (
        missing.json()["message"].clone(),
        wrong.json()["message"].clone(),
    );
    assert!(m.as_str().unwrap().contains("required"), "{m}");
    assert!(w.as_str().unwrap().contains("wrong"), "{w}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_405_names_the_routes_method_in_allow() {
    let (_up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    for (method, path, allow) in [
        (Method::DELETE, "/admin/accounts", "GET, HEAD, POST"),
        (
            Method::POST,
            "/admin/accounts/acct_1",
            "GET, HEAD, PATCH, DELETE",
        ),
        (Method::GET, "/admin/accounts/acct_1/payments", "POST"),
    ] {
        let a = http
            .send(
                method.clone(),
                &gw.url(path),
                &[("authorization", &auth)],
                "",
            )
            .await;
        assert_eq!(a.status, 405, "{method} {path}");
        assert_eq!(a.header("allow"), Some(allow), "{method} {path}");
        assert!(a.json()["message"].is_string());
    }
}

/// `POST /admin/accounts` with `token` and these extra headers.
async fn create_with(
    http: &Http,
    gw: &support::Gw,
    token: &str,
    extra: &[(&str, &str)],
) -> support::Answer {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    http.send(Method::POST, &gw.url("/admin/accounts"), &headers, "")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eleventh_wrong_token_from_an_address_is_429_and_so_is_the_right_one_then() {
    let (_up, gw) = gateway(|b| b.workers(2)).await;
    let http = Http::default();
    // A client's own X-Forwarded-For does not make it someone else.
    for i in 0..10 {
        let spoof = format!("198.51.100.{i}");
        let a = create_with(
            &http,
            &gw,
            "wrong-token-guess",
            &[("x-forwarded-for", &spoof)],
        )
        .await;
        assert_eq!(a.status, 401, "attempt {}", i + 1);
    }
    for token in ["wrong-token-guess", ADMIN_TOKEN] {
        let a = create_with(&http, &gw, token, &[]).await;
        assert_eq!(a.status, 429, "{token}: {:?}", a.body);
        let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        let message = a.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("too many failed admin authentications"),
            "{message}"
        );
    }
    assert!(gw.logs().contains("admin request with a wrong token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_wrong_tokens_count_against_the_client_it_names() {
    let trusted = TrustedProxies::parse(&["127.0.0.1"]).unwrap();
    let (_up, gw) = gateway(|b| b.trusted_proxies(trusted)).await;
    let http = Http::default();
    let attacker = [("x-forwarded-for", "203.0.113.7")];
    for _ in 0..10 {
        assert_eq!(
            create_with(&http, &gw, "wrong-token-guess", &attacker)
                .await
                .status,
            401
        );
    }
    assert_eq!(
        create_with(&http, &gw, ADMIN_TOKEN, &attacker).await.status,
        429
    );
    // Another client behind the same proxy, and the proxy itself, are not held back.
    let other = [("x-forwarded-for", "203.0.113.8")];
    assert_eq!(
        create_with(&http, &gw, ADMIN_TOKEN, &other).await.status,
        201
    );
    assert_eq!(create_with(&http, &gw, ADMIN_TOKEN, &[]).await.status, 201);
}
