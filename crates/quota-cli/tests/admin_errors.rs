//! The admin API's refusals: payments that are not exact, positive amounts
//! in range, a missing token told apart from a wrong one, and a 405 that
//! says which method the route answers.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{gateway, Http, ADMIN_TOKEN};
use http::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_that_is_not_an_exact_positive_amount_in_range_is_400_and_says_why() {
    let (_up, gw, _dir) = gateway(&[]).await;
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
    let (_up, gw, _dir) = gateway(&[]).await;
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
    let (_up, gw, _dir) = gateway(&[]).await;
    let http = Http::default();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    for (method, path, allow) in [
        (Method::GET, "/admin/accounts", "POST"),
        (Method::DELETE, "/admin/accounts/acct_1", "GET"),
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
