//! Routes beyond `/v1/`: the longest prefix wins, metered or passthrough
//! routes, stripped prefixes, canonical paths matched and forwarded, and a
//! path no route takes answered 404 without reaching any upstream. Run on
//! both HTTP/1.1 paths (`QUOTA_TEST_HTTP1=own|hyper`) and over HTTP/2.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use quota_core::path::PathAction;
use quota_core::policy::Policy;
use quota_gateway::{Error, Gateway, Route, RouteError};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The API (metered `/v1/`), the files (`/static/`, stripped, unmetered)
/// and the API's own private files (`/static/private/`, unmetered, not
/// stripped: the longer prefix wins).
async fn three_routes(path_action: PathAction) -> (Upstream, Upstream, Gw) {
    let api = Upstream::start().await;
    let files = Upstream::start().await;
    let (api_url, files_url) = (api.url(), format!("{}/files", files.url()));
    let gw = setup_routes()
        .with(move |b| {
            b.route(Route::passthrough("/static/", files_url.parse().unwrap()).strip(true))
                .route(Route::metered("/v1/", api_url.parse().unwrap()))
                .route(Route::passthrough(
                    "/static/private/",
                    api_url.parse().unwrap(),
                ))
                .path_action(path_action)
        })
        .start()
        .await;
    (api, files, gw)
}

fn paths(up: &Upstream) -> Vec<String> {
    up.seen().into_iter().map(|s| s.path_and_query).collect()
}

/// Sends `GET target` exactly as written (clients would normalize it) and
/// returns the status and the body.
async fn raw_get(gw: &Gw, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("no answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_prefix_wins_and_each_route_forwards_as_it_says() {
    let (api, files, gw) = three_routes(PathAction::Refuse).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;

    // Metered: the key is checked, the request counted, the path kept.
    let a = http.get(&gw.url("/v1/txt2img?n=1"), Some(&key)).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.header("x-ratelimit-remaining"), Some("2"));
    assert_eq!(http.get(&gw.url("/v1/txt2img"), None).await.status, 401);
    assert_eq!(paths(&api), ["/v1/txt2img?n=1"]);

    // Passthrough, stripped: no key needed, nothing counted, the query
    // kept, the upstream's base path first; credentials and a forged
    // caller go no further.
    let a = http
        .send(
            Method::GET,
            &gw.url("/static/css/a.css?v=2"),
            &[("x-api-key", &key), ("x-quota-account", "forged")],
            "",
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.header("x-ratelimit-limit"), None);
    assert_eq!(paths(&files), ["/files/css/a.css?v=2"]);
    let seen = &files.seen()[0];
    assert!(seen.headers.get("x-api-key").is_none());
    assert!(seen.headers.get("x-quota-account").is_none());
    assert_eq!(http.get(&gw.url("/static/"), None).await.status, 200);
    assert_eq!(paths(&files)[1], "/files/");

    // The longer prefix wins, whatever the order the routes were given in.
    let a = http.get(&gw.url("/static/private/x"), None).await;
    assert_eq!(a.status, 200);
    assert_eq!(paths(&api)[1], "/static/private/x");

    // The gateway's own routes stay its own.
    assert_eq!(http.get(&gw.url("/healthz"), None).await.status, 200);
    let limits = http.get(&gw.url("/v1/limits"), Some(&key)).await;
    assert_eq!(limits.status, 200);
    assert_eq!(limits.json()["tier"], "basic");

    // What no route takes is 404 and reaches no upstream.
    let (api_before, files_before) = (api.seen().len(), files.seen().len());
    for path in ["/", "/v2/txt2img", "/static", "/v1", "/files/x"] {
        let a = http.get(&gw.url(path), Some(&key)).await;
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.header("content-type"), Some("application/json"));
        assert!(
            a.json()["message"].as_str().unwrap().contains("no route"),
            "{path}: {:?}",
            a.body
        );
    }
    assert_eq!(raw_get(&gw, "/nowhere").await.0, 404);
    assert_eq!(api.seen().len(), api_before);
    assert_eq!(files.seen().len(), files_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metered_route_meters_the_path_after_its_own_prefix() {
    let up = Upstream::start().await;
    let url = format!("{}/base", up.url());
    let gw = setup_routes()
        .with(move |b| b.route(Route::metered("/api/", url.parse().unwrap()).strip(true)))
        .start()
        .await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    for remaining in ["2", "1", "0"] {
        let a = http.get(&gw.url("/api/txt2img"), Some(&key)).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert_eq!(a.header("x-ratelimit-remaining"), Some(remaining));
    }
    let refused = http.get(&gw.url("/api/txt2img"), Some(&key)).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["message"], "Too Many Attempts.");
    // Stripped: the upstream sees the endpoint under its base path.
    assert_eq!(paths(&up), ["/base/txt2img"; 3]);
    // An endpoint the policy does not know is the layer's 404; `/v1/` is
    // no route here (but `/v1/limits` is still the gateway's).
    assert_eq!(http.get(&gw.url("/api/nope"), Some(&key)).await.status, 404);
    let a = http.get(&gw.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(a.status, 404);
    assert!(a.json()["message"].as_str().unwrap().contains("no route"));
    assert_eq!(
        http.get(&gw.url("/v1/limits"), Some(&key)).await.status,
        200
    );
    assert_eq!(up.seen().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_made_canonical_before_they_are_matched() {
    // Refused by default, on a passthrough route as on a metered one.
    let (api, files, gw) = three_routes(PathAction::Refuse).await;
    for target in ["/static/./a.css", "/static//a.css", "/static/%2e%2e/v1/x"] {
        let (status, body) = raw_get(&gw, target).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(body.contains("invalid request path"), "{target}: {body}");
    }
    assert!(files.seen().is_empty());
    drop((api, files, gw));

    // Normalized: matched, and forwarded, as canonical.
    let (api, files, gw) = three_routes(PathAction::Normalize).await;
    assert_eq!(raw_get(&gw, "/static/./a.css").await.0, 200);
    assert_eq!(raw_get(&gw, "/static/%61.css").await.0, 200);
    // Unreserved escapes are decoded before matching: this is /static/private/.
    assert_eq!(raw_get(&gw, "/static/%70rivate/y").await.0, 200);
    assert_eq!(paths(&files), ["/files/a.css", "/files/a.css"]);
    assert_eq!(paths(&api), ["/static/private/y"]);
    // A path that climbs out of the route it names is refused, never
    // forwarded elsewhere.
    for target in [
        "/static/../v1/txt2img",
        "/static/../admin/accounts",
        "/static/../healthz",
    ] {
        let (status, body) = raw_get(&gw, target).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(body.contains("climbs above"), "{target}: {body}");
    }
    // One that names no route and lands on the gateway's own is refused too.
    let (status, body) = raw_get(&gw, "/x/../metrics").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(files.seen().len(), 2);
    assert_eq!(api.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_uses_the_same_table() {
    let (api, files, gw) = three_routes(PathAction::Refuse).await;
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let get = |path: &str| {
        Request::get(gw.url(path))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let res = h2.request(get("/static/a.css")).await.unwrap();
    assert_eq!(res.status(), 200);
    let res = h2.request(get("/v1/txt2img")).await.unwrap();
    assert_eq!(res.status(), 401);
    let res = h2.request(get("/elsewhere")).await.unwrap();
    assert_eq!(res.status(), 404);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("no route"));
    assert_eq!(paths(&files), ["/files/a.css"]);
    assert!(api.seen().is_empty());
}

#[test]
fn the_builder_refuses_routes_it_cannot_serve() {
    let up = || "http://127.0.0.1:9".parse().unwrap();
    let build = |b: quota_gateway::GatewayBuilder| b.build().unwrap_err();
    let dup = build(
        Gateway::builder(Policy::seed())
            .route(Route::metered("/v1/", up()))
            .route(Route::passthrough("/v1/", up())),
    );
    assert!(
        matches!(
            dup,
            Error::Route(RouteError::DuplicatePrefix { index: 1, .. })
        ),
        "{dup}"
    );
    let own = build(Gateway::builder(Policy::seed()).route(Route::passthrough("/admin/", up())));
    assert!(
        matches!(own, Error::Route(RouteError::BadPrefix { .. })),
        "{own}"
    );
    let both = build(
        Gateway::builder(Policy::seed())
            .upstream(up())
            .route(Route::metered("/api/", up())),
    );
    assert!(both.to_string().contains("not both"), "{both}");
    assert!(matches!(
        build(Gateway::builder(Policy::seed())),
        Error::NoUpstream
    ));
    // Without routes, the upstream is the one metered /v1/ route.
    let gw = Gateway::builder(Policy::seed())
        .upstream(up())
        .build()
        .unwrap();
    assert_eq!(gw.routes(), [Route::metered("/v1/", up())]);
}
