//! What the upstream learns about the client, on both server paths (a GET
//! without a body takes the gateway's own HTTP/1.1 path, a POST with a body
//! hyper's): the API key is not passed on unless `--forward-credentials`
//! says so, and what a client says in `X-Forwarded-*` is believed only
//! from a peer in `--trusted-proxies`.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::Method;
use quota_gateway::forwarded::TrustedProxies;
use support::{gateway, Http, Seen, Upstream};

/// The last request the upstream saw.
fn last(up: &Upstream) -> Seen {
    up.seen().pop().expect("the upstream saw a request")
}

/// A GET without a body (own path) and a POST with one (hyper), each
/// with `auth` as its key header; what the upstream saw of each.
async fn get_and_post(
    http: &Http,
    gw: &support::Gw,
    up: &Upstream,
    auth: (&str, &str),
) -> [Seen; 2] {
    get_and_post_with(http, gw, up, &[auth]).await
}

/// As [`get_and_post`], with these headers.
async fn get_and_post_with(
    http: &Http,
    gw: &support::Gw,
    up: &Upstream,
    headers: &[(&str, &str)],
) -> [Seen; 2] {
    let a = http
        .send(Method::GET, &gw.url("/v1/slow"), headers, "")
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let got = last(up);
    assert_eq!(got.method, Method::GET);
    let a = http
        .send(
            Method::POST,
            &gw.url("/v1/slow"),
            headers,
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
    let (up, gw) = gateway(|b| b).await;
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
    let (up, gw) = gateway(|b| b.forward_credentials(true)).await;
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

/// What a client claims about forwarding, beside its key.
fn claims(key: &str) -> Vec<(&str, &str)> {
    vec![
        ("x-api-key", key),
        ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
        ("x-forwarded-host", "api.example.com"),
        ("x-forwarded-proto", "https"),
        ("x-real-ip", "6.6.6.6"),
        ("forwarded", "for=6.6.6.6;proto=https"),
    ]
}

fn header<'s>(seen: &'s Seen, name: &str) -> Option<&'s str> {
    let mut values = seen.headers.get_all(name).iter();
    let v = values.next().map(|v| v.to_str().unwrap());
    assert!(
        values.next().is_none(),
        "{name} repeated: {:?}",
        seen.headers
    );
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_own_forwarding_headers_are_replaced_on_either_path() {
    let (up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;

    let host = gw.addr.to_string();
    for seen in get_and_post_with(&http, &gw, &up, &claims(&key)).await {
        let m = &seen.method;
        assert_eq!(header(&seen, "x-forwarded-for"), Some("127.0.0.1"), "{m}");
        assert_eq!(header(&seen, "x-real-ip"), Some("127.0.0.1"), "{m}");
        assert_eq!(
            header(&seen, "x-forwarded-host"),
            Some(host.as_str()),
            "{m}"
        );
        assert_eq!(header(&seen, "x-forwarded-proto"), Some("http"), "{m}");
        assert_eq!(header(&seen, "forwarded"), None, "{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_chain_is_kept_and_appended_to_on_either_path() {
    // The test client connects from 127.0.0.1: the trusted proxy here.
    let trusted = TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1"]).unwrap();
    let (up, gw) = gateway(|b| b.trusted_proxies(trusted)).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;

    for seen in get_and_post_with(&http, &gw, &up, &claims(&key)).await {
        let m = &seen.method;
        assert_eq!(
            header(&seen, "x-forwarded-for"),
            Some("6.6.6.6, 203.0.113.7, 127.0.0.1"),
            "{m}"
        );
        // The rightmost address that is not a trusted proxy.
        assert_eq!(header(&seen, "x-real-ip"), Some("203.0.113.7"), "{m}");
        assert_eq!(
            header(&seen, "x-forwarded-host"),
            Some("api.example.com"),
            "{m}"
        );
        assert_eq!(header(&seen, "x-forwarded-proto"), Some("https"), "{m}");
        assert_eq!(header(&seen, "forwarded"), None, "{m}");
    }

    // A proxy that says nothing: the gateway's own values.
    for seen in get_and_post(&http, &gw, &up, ("x-api-key", &key)).await {
        let m = &seen.method;
        assert_eq!(header(&seen, "x-forwarded-for"), Some("127.0.0.1"), "{m}");
        assert_eq!(header(&seen, "x-real-ip"), Some("127.0.0.1"), "{m}");
        assert_eq!(header(&seen, "x-forwarded-proto"), Some("http"), "{m}");
    }
}
