//! What the upstream learns about the client: the API key is not passed on
//! unless `--forward-credentials` says so, on both server paths (a GET
//! without a body takes the gateway's own HTTP/1.1 path, a POST with a body
//! hyper's).

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{gateway, Http, Seen, Upstream};
use http::Method;

/// The last request the upstream saw.
fn last(up: &Upstream) -> Seen {
    up.seen().pop().expect("the upstream saw a request")
}

/// A GET without a body (own path) and a POST with one (hyper), each
/// with `auth` as its key header; what the upstream saw of each.
async fn get_and_post(
    http: &Http,
    gw: &common::Quota,
    up: &Upstream,
    auth: (&str, &str),
) -> [Seen; 2] {
    let a = http
        .send(Method::GET, &gw.url("/v1/slow"), &[auth], "")
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let got = last(up);
    assert_eq!(got.method, Method::GET);
    let a = http
        .send(
            Method::POST,
            &gw.url("/v1/slow"),
            &[auth],
            "{\"prompt\":\"x\"}",
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let posted = last(up);
    assert_eq!((posted.method.clone(), posted.body_len), (Method::POST, 14));
    [got, posted]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_is_not_forwarded_by_default_on_either_path() {
    let (up, gw, _dir) = gateway(&[]).await;
    let http = Http::default();
    let (id, key) = http.create_account(&gw).await;

    let bearer = format!("Bearer {key}");
    for (name, value) in [("x-api-key", key.as_str()), ("authorization", &bearer)] {
        for seen in get_and_post(&http, &gw, &up, (name, value)).await {
            assert!(
                seen.headers.get("x-api-key").is_none()
                    && seen.headers.get("authorization").is_none(),
                "{} {name}: {:?}",
                seen.method,
                seen.headers
            );
            assert_eq!(seen.headers["x-quota-account"], id.as_str());
            assert_eq!(seen.headers["x-quota-tier"], "basic");
        }
    }

    // An `Authorization` of another scheme carried no key of ours: it is
    // the upstream's, and goes on.
    let a = http
        .send(
            Method::GET,
            &gw.url("/v1/slow"),
            &[("x-api-key", &key), ("authorization", "Basic dXNlcjpwYXNz")],
            "",
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let seen = last(&up);
    assert!(seen.headers.get("x-api-key").is_none());
    assert_eq!(seen.headers["authorization"], "Basic dXNlcjpwYXNz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_credentials_keeps_the_api_key_on_either_path() {
    let (up, gw, _dir) = gateway(&["--forward-credentials"]).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;

    for seen in get_and_post(&http, &gw, &up, ("x-api-key", &key)).await {
        assert_eq!(seen.headers["x-api-key"], key.as_str(), "{}", seen.method);
    }
    let bearer = format!("Bearer {key}");
    for seen in get_and_post(&http, &gw, &up, ("authorization", &bearer)).await {
        assert_eq!(
            seen.headers["authorization"],
            bearer.as_str(),
            "{}",
            seen.method
        );
    }
}
