//! The operator's page (`/admin/ui/`) over plain HTTP, as a browser without
//! JavaScript would use it: sign-in, the session cookie, the throttle on
//! wrong tokens, CSRF and `Origin` checks, the actions (revoke, rotate,
//! tier) through the admin API's code, refused traffic in the node's ring
//! and on the pages, escaping, the page weight, and two gateways on one
//! Redis (fleet numbers agree, node numbers differ).
//!
// tests may panic; the TLS client takes rustls's *ring* provider, as the
// gateway does (deprecated in rustls 0.23.48 for lacking post-quantum key
// exchange).
#![allow(clippy::unwrap_used, clippy::expect_used, deprecated)]

mod support;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;
use quota_redis::FailurePolicy;
use support::{early_in_window, setup, Answer, Gw, Http, TempDir, Upstream, ADMIN_TOKEN};

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// A signed-in browser: its cookie and the session's CSRF token.
struct Browser {
    http: Http,
    cookie: String,
    csrf: String,
}

/// The value of `name="csrf" value="..."` in a page.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

fn text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

/// The sign-in form posted from `http` with `token`.
async fn post_login(http: &Http, gw: &Gw, token: &str) -> Answer {
    let body = format!("token={token}");
    http.send(Method::POST, &gw.url("/admin/ui/login"), &[FORM], &body)
        .await
}

async fn sign_in_from(http: Http, gw: &Gw) -> Browser {
    let a = post_login(&http, gw, ADMIN_TOKEN).await;
    assert_eq!(a.status, 303, "{}", text(&a));
    assert_eq!(a.header("location"), Some("/admin/ui/"));
    let set = a.header("set-cookie").unwrap();
    let cookie = set.split(';').next().unwrap().to_owned();
    let now = http
        .send(
            Method::GET,
            &gw.url("/admin/ui/"),
            &[("cookie", &cookie)],
            "",
        )
        .await;
    assert_eq!(now.status, 200);
    let csrf = csrf_of(&text(&now));
    Browser { http, cookie, csrf }
}

async fn sign_in(gw: &Gw) -> Browser {
    sign_in_from(Http::default(), gw).await
}

impl Browser {
    async fn get(&self, gw: &Gw, path: &str) -> Answer {
        self.http
            .send(Method::GET, &gw.url(path), &[("cookie", &self.cookie)], "")
            .await
    }

    /// A form POST with the session's CSRF token and `fields`.
    async fn post(&self, gw: &Gw, path: &str, fields: &str) -> Answer {
        let body = format!("csrf={}&{fields}", self.csrf);
        self.http
            .send(
                Method::POST,
                &gw.url(path),
                &[FORM, ("cookie", &self.cookie)],
                &body,
            )
            .await
    }
}

async fn admin(http: &Http, gw: &Gw, method: Method, path: &str, body: &str) -> Answer {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    http.send(method, &gw.url(path), &[("authorization", &auth)], body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_opens_a_strict_session_and_wrong_tokens_are_throttled() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).start().await;
    let http = Http::default();

    // Signed out: a page is a 303 to the form, a POST a 403.
    let a = http.get(&gw.url("/admin/ui/accounts"), None).await;
    assert_eq!(a.status, 303);
    assert_eq!(a.header("location"), Some("/admin/ui/login"));
    let a = http
        .send(Method::POST, &gw.url("/admin/ui/logout"), &[FORM], "csrf=x")
        .await;
    assert_eq!(a.status, 403);

    // The form, with the security headers every answer has.
    let form = http.get(&gw.url("/admin/ui/login"), None).await;
    assert_eq!(form.status, 200);
    let page = text(&form);
    assert!(page.contains(r#"<form id="signin""#), "{page}");
    assert!(page.contains(r#"name="token""#));
    assert!(page.contains(r#"<button type="submit">"#));
    assert_eq!(
        form.header("content-security-policy"),
        Some("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
    );
    assert_eq!(form.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(form.header("referrer-policy"), Some("same-origin"));
    assert_eq!(form.header("cache-control"), Some("no-store"));
    assert!(!page.contains("<script>") && !page.contains("style="));

    // A wrong token: the form again, with why.
    let a = post_login(&http, &gw, "nope").await;
    assert_eq!(a.status, 401);
    assert!(text(&a).contains(r#"id="error""#));
    assert!(a.header("set-cookie").is_none());

    // The right one: a session cookie, HttpOnly, SameSite=Strict, on
    // /admin/ui, not Secure over plain HTTP.
    let a = post_login(&http, &gw, ADMIN_TOKEN).await;
    assert_eq!(a.status, 303);
    let set = a.header("set-cookie").unwrap();
    let (pair, attrs) = set.split_once(';').unwrap();
    let id = pair.strip_prefix("quota_ui=").unwrap();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/admin/ui"] {
        assert!(attrs.contains(attr), "{set}");
    }
    assert!(!attrs.contains("Secure"), "{set}");
    gw.wait_log("ui.sign_in", Duration::from_secs(5)).await;

    // Signed in: the pages, with the navigation and the sign-out form.
    let b = sign_in(&gw).await;
    let now = b.get(&gw, "/admin/ui/").await;
    let page = text(&now);
    for part in [
        r#"id="nav-now""#,
        r#"id="nav-accounts""#,
        r#"<form id="logout""#,
        r#"<svg id="chart-now""#,
        "<title",
        r#"id="store-health""#,
        r#"id="policy""#,
        r#"id="top-refused""#,
    ] {
        assert!(page.contains(part), "{part} missing");
    }
    assert!(page.contains("<strong>ok</strong>"));

    // Signing out ends the session.
    let out = b.post(&gw, "/admin/ui/logout", "").await;
    assert_eq!(out.status, 303);
    assert_eq!(b.get(&gw, "/admin/ui/").await.status, 303);

    // Ten wrong tokens from one address, then the 429 (with Retry-After)
    // even for the right token; another address is not affected.
    let attacker = Http::from_address("127.0.0.3".parse().unwrap());
    for i in 0..10 {
        let a = post_login(&attacker, &gw, "wrong").await;
        assert_eq!(a.status, 401, "attempt {i}");
    }
    let a = post_login(&attacker, &gw, ADMIN_TOKEN).await;
    assert_eq!(a.status, 429);
    let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(text(&a).contains(r#"id="error""#));
    // The admin API shares the guard: the same address is refused there.
    let api = attacker
        .get(&gw.url("/admin/accounts"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(api.status, 429);
    sign_in(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_csrf_token_or_from_another_origin_changes_nothing() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).start().await;
    let http = Http::default();
    let (id, key) = http.create_account(&gw).await;
    let b = sign_in(&gw).await;
    let path = format!("/admin/ui/accounts/{id}/tier");

    let tier_now = |http: Http, key: String| {
        let url = gw.url("/v1/limits");
        async move { http.get(&url, Some(&key)).await.json()["tier"].clone() }
    };
    for (body, origin) in [
        ("tier=premium".to_owned(), None),
        ("csrf=0123&tier=premium".to_owned(), None),
        (
            format!("csrf={}&tier=premium", b.csrf),
            Some("http://evil.example"),
        ),
        (format!("csrf={}&tier=premium", b.csrf), Some("null")),
    ] {
        let mut headers = vec![FORM, ("cookie", b.cookie.as_str())];
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        let a = http
            .send(Method::POST, &gw.url(&path), &headers, &body)
            .await;
        assert_eq!(a.status, 403, "{body} {origin:?}");
        assert_eq!(tier_now(http.clone(), key.clone()).await, "basic");
    }
    // With its token and its own origin: done, through the admin code.
    let own = format!("http://{}", gw.addr);
    let body = format!("csrf={}&tier=premium", b.csrf);
    let a = http
        .send(
            Method::POST,
            &gw.url(&path),
            &[
                FORM,
                ("cookie", b.cookie.as_str()),
                ("origin", own.as_str()),
            ],
            &body,
        )
        .await;
    assert_eq!(a.status, 200, "{}", text(&a));
    assert!(text(&a).contains(r#"id="flash""#));
    assert_eq!(tier_now(http.clone(), key.clone()).await, "premium");
    gw.wait_log("account.update tier", Duration::from_secs(5))
        .await;
    // An unknown tier: the admin API's 422, its message in the flash.
    let a = b.post(&gw, &path, "tier=gold").await;
    assert_eq!(a.status, 422);
    assert!(text(&a).contains("unknown tier"), "{}", text(&a));
    // The credit.
    let a = b
        .post(
            &gw,
            &format!("/admin/ui/accounts/{id}/credit"),
            "credit=2.50",
        )
        .await;
    assert_eq!(a.status, 200, "{}", text(&a));
    let credit = http.account(&gw, &id).await.json()["credit"].clone();
    assert!(credit.as_str().unwrap().contains("2.50"), "{credit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_and_rotate_through_the_page_and_hostile_names_are_escaped() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).start().await;
    let http = Http::default();
    let (id, key) = http.create_account(&gw).await;
    let hostile = r#"<script>alert("x")</script>"#;
    let added = admin(
        &http,
        &gw,
        Method::POST,
        &format!("/admin/accounts/{id}/keys"),
        &serde_json::json!({ "name": hostile }).to_string(),
    )
    .await;
    assert_eq!(added.status, 201);
    let (key2, key2_id) = (
        added.json()["key"].as_str().unwrap().to_owned(),
        added.json()["id"].as_str().unwrap().to_owned(),
    );
    let keys = admin(
        &http,
        &gw,
        Method::GET,
        &format!("/admin/accounts/{id}/keys"),
        "",
    )
    .await;
    // The account's first key.
    let first_id = support::key_id_other_than(&keys.json(), &key2_id);

    let b = sign_in(&gw).await;
    let page = text(&b.get(&gw, &format!("/admin/ui/accounts/{id}")).await);
    assert!(page.contains(&format!("<h1>Account <code>{id}</code></h1>")));
    assert!(!page.contains(hostile), "a raw key name in the page");
    assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
    assert!(page.contains(&format!(r#"<tr data-key="{first_id}">"#)));
    assert!(page.contains(r#"<form class="revoke""#));
    assert!(page.contains(r#"<form class="rotate""#));
    assert!(
        !page.contains(&key) && !page.contains(&key2),
        "a key in the page"
    );

    // Revoke the first key: its next request is a 401.
    assert_eq!(
        http.get(&gw.url("/v1/limits"), Some(&key)).await.status,
        200
    );
    let a = b
        .post(
            &gw,
            &format!("/admin/ui/accounts/{id}/keys/{first_id}/revoke"),
            "",
        )
        .await;
    assert_eq!(a.status, 200, "{}", text(&a));
    assert!(text(&a).contains(r#"id="flash" class="ok""#));
    assert_eq!(
        http.get(&gw.url("/v1/txt2img"), Some(&key)).await.status,
        401
    );
    gw.wait_log("key.revoke", Duration::from_secs(5)).await;

    // Rotate the second, no grace: the new key is shown once and works.
    let a = b
        .post(
            &gw,
            &format!("/admin/ui/accounts/{id}/keys/{key2_id}/rotate"),
            "grace_seconds=0",
        )
        .await;
    assert_eq!(a.status, 200, "{}", text(&a));
    let page = text(&a);
    let at = page.find(r#"<code id="new-key">"#).expect("the new key") + 19;
    let new_key = page[at..].split('<').next().unwrap().to_owned();
    assert!(!new_key.is_empty());
    assert_eq!(
        http.get(&gw.url("/v1/limits"), Some(&new_key)).await.status,
        200
    );
    assert_eq!(
        http.get(&gw.url("/v1/limits"), Some(&key2)).await.status,
        401
    );
    // Shown once: the account's page does not have it.
    let again = text(&b.get(&gw, &format!("/admin/ui/accounts/{id}")).await);
    assert!(!again.contains(&new_key));
    // A bad grace: the admin API's 400, in the flash.
    let a = b
        .post(
            &gw,
            &format!("/admin/ui/accounts/{id}/keys/nope/rotate"),
            "grace_seconds=x",
        )
        .await;
    assert!(a.status.is_client_error(), "{}", a.status);
    assert!(text(&a).contains(r#"id="flash" class="error""#));
}

/// The number in the totals table's cell for `category`, last hour.
fn total_last_hour(page: &str, category: &str) -> u64 {
    let row = format!(r#"<tr data-category="{category}">"#);
    let at = page
        .find(&row)
        .unwrap_or_else(|| panic!("no row {category}"));
    let cells: Vec<&str> = page[at..]
        .split("<td>")
        .skip(1)
        .take(3)
        .map(|c| c.split('<').next().unwrap())
        .collect();
    cells[2].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_traffic_is_counted_by_limit_kind_and_shown_on_the_pages() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).start().await;
    let http = Http::default();
    let (id, key) = http.create_account(&gw).await;
    let (quiet, _) = http.create_account(&gw).await;

    early_in_window(60_000, Duration::from_secs(10)).await;
    // txt2img: 3 a minute, then a 429 by `minute`; once: 1 a day, then
    // a 429 by `daily`; a wrong key: a 401; no such endpoint: a 404.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(http.get(&gw.url("/v1/txt2img"), Some(&key)).await.status);
    }
    for _ in 0..2 {
        statuses.push(http.get(&gw.url("/v1/once"), Some(&key)).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 200, 429]);
    assert_eq!(
        http.get(&gw.url("/v1/txt2img"), Some("wrong-key"))
            .await
            .status,
        401
    );
    assert_eq!(
        http.get(&gw.url("/v1/nowhere"), Some(&key)).await.status,
        404
    );

    let b = sign_in(&gw).await;
    let page = text(&b.get(&gw, "/admin/ui/").await);
    assert_eq!(total_last_hour(&page, "admitted"), 4);
    assert_eq!(total_last_hour(&page, "429 minute"), 1);
    assert_eq!(total_last_hour(&page, "429 daily"), 1);
    assert_eq!(total_last_hour(&page, "429 tier-wide"), 0);
    assert_eq!(total_last_hour(&page, "401"), 1);
    assert_eq!(total_last_hour(&page, "404"), 1);
    assert!(
        page.contains(&format!(r#"<tr data-account="{id}">"#)),
        "{page}"
    );
    assert!(!page.contains(&format!(r#"data-account="{quiet}""#)));
    // Which limits refuse it, without opening it.
    assert!(
        page.contains(r#"<small class="kinds">minute 1, daily 1</small>"#),
        "{page}"
    );
    assert!(
        page.contains("4 refused (2 by a rate limit), 4 admitted"),
        "the chart's title"
    );

    // The live chart alone.
    let svg = b.get(&gw, "/admin/ui/now.svg").await;
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert!(text(&svg).starts_with(r#"<svg id="chart-now""#));
    let recent = text(&b.get(&gw, "/admin/ui/now.svg?range=5m").await);
    assert!(recent.starts_with(r#"<svg id="chart-recent""#));
    assert!(recent.contains("per 5 s over the last 5 min on this node: 4 refused"));

    // The account: its refusals, recent requests, the limits as /v1/limits.
    let page = text(&b.get(&gw, &format!("/admin/ui/accounts/{id}")).await);
    assert!(
        page.contains("over the last hour on this node: 2</title>"),
        "{page}"
    );
    assert!(
        page.contains(r#"<td class="decision refused">429 minute</td><td class="status">429</td>"#)
    );
    assert!(page.contains(r#"<td class="decision refused">429 daily</td>"#));
    assert!(page.contains(r#"<td class="decision">admitted</td><td class="status">200</td>"#));
    let limits = http.get(&gw.url("/v1/limits"), Some(&key)).await.json();
    let minute = &limits["resources"]["txt2img"]["limits"][0];
    let shown = format!(
        r#"<span class="used">{}/{}</span>"#,
        minute["used"], minute["limit"]
    );
    assert_eq!(shown, r#"<span class="used">3/3</span>"#);
    assert!(page.contains(&shown));
    assert!(page.contains(r#"class="limit over" data-endpoint="txt2img" data-limit="minute""#));
    // The spent limits first: every full bar comes before any other.
    let last_full = page.rfind(r#"class="limit over""#).unwrap();
    let first_other = page.find(r#"class="limit" "#).unwrap();
    assert!(last_full < first_other, "{page}");

    // The accounts table: the refused account first, then the rest.
    let list = text(&b.get(&gw, "/admin/ui/accounts").await);
    let first = list.find(&format!(r#"<tr data-account="{id}""#)).unwrap();
    let second = list
        .find(&format!(r#"<tr data-account="{quiet}""#))
        .unwrap();
    assert!(first < second);
    assert!(list.contains(r#"<small class="kinds">minute 1, daily 1</small>"#));
    assert!(list.contains(r#"<form id="search""#));
    assert!(!list.contains(r#"id="next""#));
    // A search by part of the id.
    let part = &quiet[quiet.len() - 6..];
    let found = text(&b.get(&gw, &format!("/admin/ui/accounts?q={part}")).await);
    assert!(found.contains(&format!(r#"data-account="{quiet}""#)));
    assert!(!found.contains(&format!(r#"data-account="{id}""#)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accounts_table_pages_with_a_next_link() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).start().await;
    let http = Http::default();
    for _ in 0..55 {
        http.create_account(&gw).await;
    }
    let b = sign_in(&gw).await;
    let first = text(&b.get(&gw, "/admin/ui/accounts").await);
    assert_eq!(first.matches("<tr data-account=").count(), 50);
    let at = first.find(r#"<a id="next" href=""#).unwrap() + 19;
    let next = first[at..].split('"').next().unwrap().replace("&amp;", "&");
    let second = text(&b.get(&gw, &next).await);
    assert_eq!(second.matches("<tr data-account=").count(), 5);
    assert!(!second.contains(r#"id="next""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_load_weighs_under_60_kb() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).start().await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    for _ in 0..10 {
        http.get(&gw.url("/v1/txt2img"), Some(&key)).await;
    }
    let b = sign_in(&gw).await;
    let mut total = 0;
    for path in [
        "/admin/ui/",
        "/admin/ui/assets/ui.css",
        "/admin/ui/assets/ui.js",
    ] {
        let a = b.get(&gw, path).await;
        assert_eq!(a.status, 200, "{path}");
        total += a.body.len();
    }
    println!("a load of the Now page: {total} bytes");
    assert!(total < 60 * 1024, "{total} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_the_page_is_off_like_the_admin_api() {
    let up = Upstream::start().await;
    let gateway = quota_gateway::Gateway::builder(quota_core::policy::Policy::seed())
        .upstream(up.url().parse().unwrap())
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(gateway.serve(listener, async {
        let _ = stopped.await;
    }));
    let http = Http::default();
    let ui = http.get(&format!("http://{addr}/admin/ui/"), None).await;
    let api = http
        .get(&format!("http://{addr}/admin/accounts"), None)
        .await;
    assert_eq!(ui.status, api.status);
    assert_eq!(ui.status, 403);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A key prefix no other test uses; its keys are deleted on drop.
struct Prefix(String);

impl Prefix {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Prefix(format!("quota-ui-{}-{nanos}:", std::process::id()))
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let script = format!(
            "redis-cli -h 127.0.0.1 -p 6379 --scan --pattern '{}*' | xargs -r redis-cli -h 127.0.0.1 -p 6379 del >/dev/null",
            self.0
        );
        let _ = Command::new("sh").args(["-c", &script]).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_agree_on_the_fleet_and_differ_on_the_node() {
    let up = Upstream::start().await;
    let prefix = Prefix::new();
    let node = || {
        setup(&up.url())
            .redis(
                "redis://127.0.0.1:6379",
                Some(&prefix.0),
                FailurePolicy::default(),
            )
            .start()
    };
    let (a, b) = (node().await, node().await);
    let http = Http::default();
    let (id, key) = http.create_account(&a).await;
    early_in_window(60_000, Duration::from_secs(10)).await;
    for _ in 0..4 {
        http.get(&a.url("/v1/txt2img"), Some(&key)).await;
    }
    let (on_a, on_b) = (sign_in(&a).await, sign_in(&b).await);
    let path = format!("/admin/ui/accounts/{id}");
    let (page_a, page_b) = (
        text(&on_a.get(&a, &path).await),
        text(&on_b.get(&b, &path).await),
    );
    // The fleet's numbers (the store's): the same on both.
    let used = r#"data-endpoint="txt2img" data-limit="minute""#;
    for page in [&page_a, &page_b] {
        assert!(page.contains(used));
        assert!(page.contains(r#"<span class="used">3/3</span>"#), "{page}");
        assert!(page.contains(r#"Limits now <span class="scope">fleet</span>"#));
        assert!(page.contains(r#"Refusals, last hour <span class="scope">this node</span>"#));
    }
    // The node's: A saw the requests, B did not.
    assert!(page_a.contains("4 requests since this node started, 1 refused (429) in the last hour"));
    assert!(page_b.contains("Not seen by this node since it started"));
    let now_b = text(&on_b.get(&b, "/admin/ui/").await);
    assert!(now_b.contains("0 refused (0 by a rate limit), 0 admitted"));
    assert!(now_b.contains("backend redis"), "{now_b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_session_cookie_is_secure() {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::ServerName;

    // A self-signed certificate for localhost, trusted by the client alone.
    let dir = TempDir::new("ui-tls");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_file = dir.write("ui.crt", &cert.cert.pem());
    let key_file = dir.write("ui.key", &cert.key_pair.serialize_pem());
    let tls = quota_gateway::TlsConfig::from_pem_files(&cert_file, &key_file).unwrap();
    let up = Upstream::start().await;
    let gw = setup(&up.url()).with(move |b| b.tls(tls)).start().await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp),
    )
    .await
    .unwrap()
    .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post("/admin/ui/login")
        .header("host", "localhost")
        .header(FORM.0, FORM.1)
        .body(Full::new(Bytes::from(format!("token={ADMIN_TOKEN}"))))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(20), send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.ends_with("; HttpOnly; SameSite=Strict; Secure"),
        "{cookie}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_a_key_has_a_page_of_its_address() {
    let policy = format!(
        "{}
[[tiers]]
name = \"anon\"
granted = \"anonymous\"
limits = [{{ endpoint = \"txt2img\", window = \"1m\", count = 2 }}]
",
        support::TEST_POLICY
    );
    let up = Upstream::start().await;
    let gw = setup(&up.url()).policy(&policy).start().await;
    let caller = Http::from_address("127.0.0.4".parse().unwrap());
    early_in_window(60_000, Duration::from_secs(10)).await;
    let statuses: Vec<u16> = three_calls_without_a_key(&caller, &gw).await;
    assert_eq!(statuses, [200, 200, 429]);

    let b = sign_in(&gw).await;
    let now = text(&b.get(&gw, "/admin/ui/").await);
    assert!(
        now.contains(r#"<tr data-account="anonymous:127.0.0.4">"#),
        "{now}"
    );
    assert!(now.contains(r#"href="/admin/ui/accounts/anonymous%3A127.0.0.4""#));
    let a = b.get(&gw, "/admin/ui/accounts/anonymous%3A127.0.0.4").await;
    assert_eq!(a.status, 200);
    let page = text(&a);
    assert!(page.contains("A caller without a key"), "{page}");
    assert!(page.contains(r#"<span class="used">2/2</span>"#), "{page}");
    assert!(page.contains(r#"<td class="decision refused">429 minute</td>"#));
    assert!(!page.contains(r#"<table id="keys""#));
    // An id that is neither an account nor an anonymous caller: a 404.
    let a = b.get(&gw, "/admin/ui/accounts/nobody").await;
    assert_eq!(a.status, 404);
}

/// Three `GET /v1/txt2img` without a key from `caller`: their statuses.
async fn three_calls_without_a_key(caller: &Http, gw: &Gw) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..3 {
        out.push(
            caller
                .get(&gw.url("/v1/txt2img"), None)
                .await
                .status
                .as_u16(),
        );
    }
    out
}
