//! The account and key lifecycle through the admin API, on the memory
//! accounts and on the embedded database (redb): named keys, rotation with
//! a grace period, revocation, listing with a cursor, PATCH, DELETE, the
//! usage reset, 405s with `Allow`, and the audit lines. (The redb tests
//! need the feature `redb`, which `cargo test --workspace` turns on.)

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use http::Method;
use support::{early_in_window, setup, Answer, Gw, Http, TempDir, Upstream, ADMIN_TOKEN};

/// Where the accounts of a test gateway live.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    #[cfg(feature = "redb")]
    Redb,
}

/// A gateway on `backend`, also accepting the admin token `ops=ops-secret-0123456789`.
async fn gateway(up: &Upstream, backend: Backend, dir: &TempDir) -> Gw {
    let s = setup(&up.url()).with(|b| b.admin_token("ops=ops-secret-0123456789"));
    let s = match backend {
        Backend::Memory => {
            let _ = dir;
            s
        }
        #[cfg(feature = "redb")]
        Backend::Redb => {
            let db = quota_gateway::accounts::RedbAccounts::open(dir.path()).unwrap();
            s.with(move |b| b.accounts(db))
        }
    };
    s.start().await
}

/// An admin request with `token`.
async fn admin_as(
    http: &Http,
    gw: &Gw,
    token: &str,
    method: Method,
    path: &str,
    body: &str,
) -> Answer {
    let auth = format!("Bearer {token}");
    http.send(method, &gw.url(path), &[("authorization", &auth)], body)
        .await
}

async fn admin(http: &Http, gw: &Gw, method: Method, path: &str, body: &str) -> Answer {
    admin_as(http, gw, ADMIN_TOKEN, method, path, body).await
}

/// The status of `GET /v1/limits` with `key`.
async fn key_status(http: &Http, gw: &Gw, key: &str) -> u16 {
    http.get(&gw.url("/v1/limits"), Some(key))
        .await
        .status
        .as_u16()
}

async fn keys_of(http: &Http, gw: &Gw, id: &str) -> Vec<serde_json::Value> {
    let res = admin(
        http,
        gw,
        Method::GET,
        &format!("/admin/accounts/{id}/keys"),
        "",
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    res.json()["keys"].as_array().unwrap().clone()
}

async fn named_keys_rotate_and_revoke(backend: Backend) {
    let up = Upstream::start().await;
    let dir = TempDir::new(&format!("admin-keys-{backend:?}"));
    let gw = gateway(&up, backend, &dir).await;
    let http = Http::default();
    let mut secrets = Vec::new();

    let created = admin(&http, &gw, Method::POST, "/admin/accounts", "").await;
    assert_eq!(created.status, 201);
    let created = created.json();
    let id = created["id"].as_str().unwrap().to_owned();
    let k0 = created["key"].as_str().unwrap().to_owned();
    let k0_id = created["key_id"].as_str().unwrap().to_owned();
    secrets.push(k0.clone());

    // The first key: named `default`, never used yet.
    let keys = keys_of(&http, &gw, &id).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], k0_id.as_str());
    assert_eq!(keys[0]["name"], "default");
    assert!(keys[0]["last_used"].is_null() && keys[0]["expires"].is_null());
    assert_eq!(key_status(&http, &gw, &k0).await, 200);
    let keys = keys_of(&http, &gw, &id).await;
    assert!(keys[0]["last_used"].as_u64().unwrap() > 0, "{keys:?}");

    // A second, named key, shown once.
    let ci = admin(
        &http,
        &gw,
        Method::POST,
        &format!("/admin/accounts/{id}/keys"),
        r#"{"name":"ci"}"#,
    )
    .await;
    assert_eq!(ci.status, 201, "{:?}", ci.body);
    let ci = ci.json();
    let (k1, k1_id) = (
        ci["key"].as_str().unwrap().to_owned(),
        ci["id"].as_str().unwrap().to_owned(),
    );
    secrets.push(k1.clone());
    assert_eq!(ci["name"], "ci");
    assert!(k1_id.starts_with("key_") && k1_id.len() == 16, "{k1_id}");
    assert_eq!(key_status(&http, &gw, &k1).await, 200);
    assert_eq!(keys_of(&http, &gw, &id).await.len(), 2);

    // Rotating with a grace period: both work, then only the new one.
    let rotated = admin(
        &http,
        &gw,
        Method::POST,
        &format!("/admin/accounts/{id}/keys/{k1_id}/rotate"),
        r#"{"grace_seconds":1}"#,
    )
    .await;
    assert_eq!(rotated.status, 201, "{:?}", rotated.body);
    let rotated = rotated.json();
    let k2 = rotated["key"].as_str().unwrap().to_owned();
    let k2_id = rotated["id"].as_str().unwrap().to_owned();
    secrets.push(k2.clone());
    assert_eq!(rotated["name"], "ci");
    assert_eq!(rotated["replaces"]["id"], k1_id.as_str());
    assert!(rotated["replaces"]["expires"].as_u64().is_some());
    assert_eq!(
        key_status(&http, &gw, &k1).await,
        200,
        "in its grace period"
    );
    assert_eq!(key_status(&http, &gw, &k2).await, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        key_status(&http, &gw, &k1).await,
        401,
        "past its grace period"
    );
    assert_eq!(key_status(&http, &gw, &k2).await, 200);
    let ids: BTreeSet<String> = keys_of(&http, &gw, &id)
        .await
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, BTreeSet::from([k0_id.clone(), k2_id.clone()]));

    // Rotating without one: the old key stops at once.
    let rotated = admin(
        &http,
        &gw,
        Method::POST,
        &format!("/admin/accounts/{id}/keys/{k0_id}/rotate"),
        "",
    )
    .await;
    assert_eq!(rotated.status, 201, "{:?}", rotated.body);
    let k3 = rotated.json()["key"].as_str().unwrap().to_owned();
    secrets.push(k3.clone());
    assert_eq!(key_status(&http, &gw, &k0).await, 401);
    assert_eq!(key_status(&http, &gw, &k3).await, 200);

    // Revoking: at once.
    let revoked = admin(
        &http,
        &gw,
        Method::DELETE,
        &format!("/admin/accounts/{id}/keys/{k2_id}"),
        "",
    )
    .await;
    assert_eq!(revoked.status, 204);
    assert_eq!(key_status(&http, &gw, &k2).await, 401);
    let again = admin(
        &http,
        &gw,
        Method::DELETE,
        &format!("/admin/accounts/{id}/keys/{k2_id}"),
        "",
    )
    .await;
    assert_eq!(again.status, 404);
    assert!(again.json()["message"].as_str().unwrap().contains(&k2_id));
    let no_account = admin(
        &http,
        &gw,
        Method::DELETE,
        "/admin/accounts/acct_nobody/keys/key_x",
        "",
    )
    .await;
    assert_eq!(no_account.status, 404);

    // Bad bodies.
    for (path, body) in [
        (format!("/admin/accounts/{id}/keys"), r#"{"name":""}"#),
        (format!("/admin/accounts/{id}/keys"), r#"{"nom":"x"}"#),
        (format!("/admin/accounts/{id}/keys"), "[1]"),
        (
            format!("/admin/accounts/{id}/keys/key_x/rotate"),
            r#"{"grace_seconds":-5}"#,
        ),
        (
            format!("/admin/accounts/{id}/keys/key_x/rotate"),
            r#"{"grace_seconds":99999999}"#,
        ),
    ] {
        let res = admin(&http, &gw, Method::POST, &path, body).await;
        assert_eq!(res.status, 400, "{path} {body}: {:?}", res.body);
    }

    // Named admin tokens: the audit lines say who; no key is ever logged.
    let by_ops = admin_as(
        &http,
        &gw,
        "ops-secret-0123456789",
        Method::DELETE,
        &format!("/admin/accounts/{id}/usage"),
        "",
    )
    .await;
    assert_eq!(by_ops.status, 204);
    gw.wait_log("account.usage.reset", Duration::from_secs(5))
        .await;
    let logs = gw.logs();
    for line in ["key.create", "key.rotate", "key.revoke", "account.create"] {
        assert!(logs.contains(line), "no audit line {line}:\n{logs}");
    }
    let audit: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("quota::audit"))
        .collect();
    assert!(
        audit
            .iter()
            .any(|l| l.contains("who=ops") && l.contains("account.usage.reset")),
        "{audit:#?}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains("who=admin") && l.contains(&k2_id)),
        "{audit:#?}"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a key was logged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_keys_rotate_and_revoke_on_memory_accounts() {
    named_keys_rotate_and_revoke(Backend::Memory).await;
}

#[cfg(feature = "redb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_keys_rotate_and_revoke_on_redb_accounts() {
    named_keys_rotate_and_revoke(Backend::Redb).await;
}

async fn accounts_page_patch_and_delete(backend: Backend) {
    let up = Upstream::start().await;
    let dir = TempDir::new(&format!("admin-accounts-{backend:?}"));
    let gw = gateway(&up, backend, &dir).await;
    let http = Http::default();
    let mut made = BTreeSet::new();
    for _ in 0..5 {
        made.insert(http.create_account(&gw).await.0);
    }

    // Pages of 2, an account created while paging: none seen twice or skipped.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/accounts?limit=2&cursor={c}"),
            None => "/admin/accounts?limit=2".to_owned(),
        };
        let page = admin(&http, &gw, Method::GET, &path, "").await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let page = page.json();
        let accounts = page["accounts"].as_array().unwrap();
        assert!(accounts.len() <= 2);
        seen.extend(
            accounts
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned()),
        );
        if pages == 0 {
            http.create_account(&gw).await;
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10);
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "an account seen twice: {seen:?}");
    assert!(made.is_subset(&unique), "an account skipped: {seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "id order");

    for bad in ["limit=0", "limit=1001", "limit=x", "page=2", "cursor="] {
        let res = admin(
            &http,
            &gw,
            Method::GET,
            &format!("/admin/accounts?{bad}"),
            "",
        )
        .await;
        assert_eq!(res.status, 400, "{bad}");
        assert!(res.json()["message"].is_string());
    }

    // PATCH: the tier up and down, the credit as a decimal; an unknown tier is 422.
    let id = made.iter().next().unwrap().clone();
    let path = format!("/admin/accounts/{id}");
    let up_tier = admin(&http, &gw, Method::PATCH, &path, r#"{"tier":"premium"}"#).await;
    assert_eq!(up_tier.status, 200, "{:?}", up_tier.body);
    assert_eq!(up_tier.json()["tier"], "premium");
    let premium = admin(&http, &gw, Method::GET, "/admin/accounts?tier=premium", "").await;
    let premium = premium.json();
    let ids: Vec<&str> = premium["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let down = admin(
        &http,
        &gw,
        Method::PATCH,
        &path,
        r#"{"tier":"basic","credit":"12.50"}"#,
    )
    .await;
    assert_eq!(down.status, 200);
    let down = down.json();
    assert_eq!(
        (down["tier"].as_str(), down["credit"].as_str()),
        (Some("basic"), Some("12.50"))
    );
    let gold = admin(&http, &gw, Method::PATCH, &path, r#"{"tier":"gold"}"#).await;
    assert_eq!(gold.status, 422);
    let gold = gold.json();
    assert_eq!(gold["known_tiers"], serde_json::json!(["basic", "premium"]));
    assert!(gold["message"].as_str().unwrap().contains("gold"));
    for bad in [
        "{}",
        r#"{"credit":"-1"}"#,
        r#"{"credit":"1.0000001"}"#,
        r#"{"tier":5}"#,
        "nope",
    ] {
        let res = admin(&http, &gw, Method::PATCH, &path, bad).await;
        assert_eq!(res.status, 400, "{bad}: {:?}", res.body);
    }
    let missing = admin(
        &http,
        &gw,
        Method::PATCH,
        "/admin/accounts/acct_none",
        r#"{"tier":"basic"}"#,
    )
    .await;
    assert_eq!(missing.status, 404);

    // DELETE: its keys stop at once.
    let (victim, key) = http.create_account(&gw).await;
    assert_eq!(key_status(&http, &gw, &key).await, 200);
    let gone = admin(
        &http,
        &gw,
        Method::DELETE,
        &format!("/admin/accounts/{victim}"),
        "",
    )
    .await;
    assert_eq!(gone.status, 204);
    assert_eq!(key_status(&http, &gw, &key).await, 401);
    assert_eq!(http.account(&gw, &victim).await.status, 404);
    let twice = admin(
        &http,
        &gw,
        Method::DELETE,
        &format!("/admin/accounts/{victim}"),
        "",
    )
    .await;
    assert_eq!(twice.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_page_patch_and_delete_on_memory_accounts() {
    accounts_page_patch_and_delete(Backend::Memory).await;
}

#[cfg(feature = "redb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_page_patch_and_delete_on_redb_accounts() {
    accounts_page_patch_and_delete(Backend::Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resetting_usage_gives_the_budget_back() {
    let up = Upstream::start().await;
    let dir = TempDir::new("admin-usage");
    let gw = gateway(&up, Backend::Memory, &dir).await;
    let http = Http::default();
    let (id, key) = http.create_account(&gw).await;
    let (_, other_key) = http.create_account(&gw).await;
    early_in_window(60_000, Duration::from_secs(5)).await;
    for _ in 0..3 {
        assert_eq!(
            http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
            200
        );
        assert_eq!(
            http.post(&gw.url("/v1/txt2img"), Some(&other_key))
                .await
                .status,
            200
        );
    }
    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
        429
    );
    let reset = admin(
        &http,
        &gw,
        Method::DELETE,
        &format!("/admin/accounts/{id}/usage"),
        "",
    )
    .await;
    assert_eq!(reset.status, 204);
    let res = http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-ratelimit-remaining"), Some("2"));
    // Only that account's counters.
    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&other_key))
            .await
            .status,
        429
    );
    let missing = admin(
        &http,
        &gw,
        Method::DELETE,
        "/admin/accounts/acct_none/usage",
        "",
    )
    .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_path_answers_an_unknown_method_with_allow() {
    let up = Upstream::start().await;
    let dir = TempDir::new("admin-405");
    let gw = gateway(&up, Backend::Memory, &dir).await;
    let http = Http::default();
    for (path, wrong, allow) in [
        ("/admin/accounts", Method::DELETE, "GET, HEAD, POST"),
        (
            "/admin/accounts/a",
            Method::POST,
            "GET, HEAD, PATCH, DELETE",
        ),
        ("/admin/accounts/a", Method::PUT, "GET, HEAD, PATCH, DELETE"),
        ("/admin/accounts/a/payments", Method::GET, "POST"),
        ("/admin/accounts/a/usage", Method::GET, "DELETE"),
        ("/admin/accounts/a/keys", Method::PUT, "GET, HEAD, POST"),
        ("/admin/accounts/a/keys/k", Method::GET, "DELETE"),
        ("/admin/accounts/a/keys/k/rotate", Method::GET, "POST"),
        ("/admin/openapi.json", Method::POST, "GET, HEAD"),
    ] {
        let res = admin(&http, &gw, wrong.clone(), path, "").await;
        assert_eq!(res.status, 405, "{wrong} {path}");
        assert_eq!(res.header("allow"), Some(allow), "{wrong} {path}");
    }
    let doc = admin(&http, &gw, Method::GET, "/admin/openapi.json", "").await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.json()["openapi"], "3.1.0");
    assert_eq!(
        http.get(&gw.url("/admin/openapi.json"), None).await.status,
        401,
        "the document is behind the admin token too"
    );
}
