//! The axum example (`examples/axum_by_ip.rs`), its very router served in
//! process on a loopback listener: callers are limited by address, and a
//! spent budget is the seed's 429 with its six headers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

#[allow(dead_code)] // the example's `main` serves on port 3000: only `app` is used here
#[path = "../examples/axum_by_ip.rs"]
mod example;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The seed's rate-limit headers.
const SEED_HEADERS: [&str; 6] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-daily-limit",
    "x-ratelimit-daily-remaining",
    "x-ratelimit-type",
    "retry-after",
];

/// `POST /v1/txt2video` from a socket bound to `from`.
async fn post_from(from: IpAddr, server: SocketAddr) -> (StatusCode, http::HeaderMap, Bytes) {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(from));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let req = Request::post(format!("http://{server}/v1/txt2video"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("answer within 10 s")
        .unwrap();
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn the_example_app_answers_429_by_client_address_once_its_budget_is_spent() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let app = example::app().into_make_service_with_connect_info::<SocketAddr>();
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });

    let (a, b): (IpAddr, IpAddr) = ("127.0.0.5".parse().unwrap(), "127.0.0.6".parse().unwrap());
    let (status, headers, body) = post_from(a, server).await;
    assert_eq!(status, 200, "{headers:?} {body:?}");
    assert_eq!(body, "generated\n");
    assert_eq!(
        headers["x-ratelimit-limit"], "1",
        "txt2video: one a minute on Basic"
    );
    // The real clock runs: a minute may start between two requests, so
    // the budget is spent within two more.
    let mut refused = None;
    for _ in 0..2 {
        let answer = post_from(a, server).await;
        if answer.0 == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(answer);
            break;
        }
    }
    let (_, headers, body) = refused.expect("a 429 once the minute's one request is spent");
    assert_eq!(body, r#"{"message":"Too Many Attempts."}"#);
    assert_eq!(headers["content-type"], "application/json");
    for name in SEED_HEADERS {
        assert!(headers.contains_key(name), "{name} missing: {headers:?}");
    }
    assert_eq!(headers["x-ratelimit-type"], "minute");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    // Another address has its own budget.
    let (status, _, _) = post_from(b, server).await;
    assert_eq!(status, 200);
    serving.abort();
}
