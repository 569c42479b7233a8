//! The key extractor seam, through the layer with real requests: callers
//! counted by client address (`ClientIp`, IPv6 by /64) or by a closure
//! over the request, instead of by API key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod enforce_support;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use enforce_support::{accounts, serve, Answer, Seen, VirtualClock, SEED_HEADERS, T0};
use http::{HeaderName, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use quota_core::account::{Identity, MemoryAccounts};
use quota_core::policy::Policy;
use quota_core::MemoryStore;
use quota_transport::enforce::{EnforceLayer, RequestBody};
use quota_transport::identity::{Caller, ClientIp, RequestView};
use tokio::net::TcpListener;
use tower::{service_fn, Layer, ServiceBuilder};

/// Which address a request's extensions say the client has.
#[derive(Clone, Copy)]
enum Peer {
    /// The connection's own peer address, as a server records it.
    Connection,
    /// The address in the test header `x-test-peer`, as a trusted proxy
    /// in front would vouch for it (the loopback has one IPv6 address, so
    /// two IPv6 clients of one /64 cannot both connect for real).
    Vouched,
}

/// A server that records each request's client address in a `SocketAddr`
/// extension (by `peer`), the layer behind that, and a service that
/// answers 200 and remembers the identity it was handed.
async fn serve_with_peers(
    layer: EnforceLayer<MemoryStore, MemoryAccounts>,
    peer: Peer,
) -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let inner_seen = seen.clone();
    let inner = service_fn(move |req: Request<RequestBody<Incoming>>| {
        let seen = inner_seen.clone();
        async move {
            seen.calls.fetch_add(1, Ordering::SeqCst);
            let identity = req.extensions().get::<Identity>().cloned();
            *seen.last.lock().unwrap() = Some((identity, None));
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    });
    let service = layer.layer(inner);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, from)) = listener.accept().await {
            let service = ServiceBuilder::new()
                .map_request(move |mut req: Request<Incoming>| {
                    let addr = match peer {
                        Peer::Connection => from,
                        Peer::Vouched => req.headers()["x-test-peer"]
                            .to_str()
                            .unwrap()
                            .parse()
                            .unwrap(),
                    };
                    req.extensions_mut().insert(addr);
                    req
                })
                .service(service.clone());
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .await;
            });
        }
    });
    (addr, seen)
}

/// `POST path` from a socket bound to `from` (the loopback holds all of
/// 127.0.0.0/8), with `headers`.
async fn post_from(
    from: IpAddr,
    server: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(from));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut req = Request::post(format!("http://{server}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(req.body(Full::new(Bytes::new())).unwrap()),
    )
    .await
    .expect("answer within 10 s")
    .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn layer(clock: &VirtualClock) -> EnforceLayer<MemoryStore, MemoryAccounts> {
    EnforceLayer::new(
        Policy::seed(),
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryAccounts::new()),
    )
    .clock(clock.func())
}

fn identity(account: &str, tier: &str) -> Option<Identity> {
    Some(Identity {
        account: account.into(),
        tier: tier.into(),
    })
}

/// The seed's 429 for a spent minute budget of one.
fn assert_seed_429(a: &Answer) {
    assert_eq!(a.status, 429, "{a:?}");
    assert_eq!(a.body, r#"{"message":"Too Many Attempts."}"#);
    for name in SEED_HEADERS {
        assert!(a.header(name).is_some(), "{name} missing: {a:?}");
    }
    assert_eq!(a.header("x-ratelimit-type"), Some("minute"));
    assert_eq!(a.header("x-ratelimit-remaining"), Some("0"));
}

#[tokio::test]
async fn by_client_ip_two_ipv4_addresses_have_separate_budgets() {
    let clock = VirtualClock::at(T0);
    let (server, seen) =
        serve_with_peers(layer(&clock).key(ClientIp::new("basic")), Peer::Connection).await;
    let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
    // txt2video: one a minute on Basic. No API key anywhere.
    let first = post_from(a, server, "/v1/txt2video", &[]).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.header("x-ratelimit-limit"), Some("1"));
    assert_eq!(seen.last().0, identity("ip:127.0.0.2", "basic"));
    let other = post_from(b, server, "/v1/txt2video", &[]).await;
    assert_eq!(
        other.status, 200,
        "another address, another budget: {other:?}"
    );
    assert_eq!(seen.last().0, identity("ip:127.0.0.3", "basic"));
    assert_seed_429(&post_from(a, server, "/v1/txt2video", &[]).await);
    assert_seed_429(&post_from(b, server, "/v1/txt2video", &[]).await);
    assert_eq!(seen.calls(), 2, "refused requests never reach the service");
    // The next minute, each has one again.
    clock.advance(60_000);
    assert_eq!(post_from(a, server, "/v1/txt2video", &[]).await.status, 200);
}

#[tokio::test]
async fn by_client_ip_two_ipv6_addresses_of_one_64_share_a_budget() {
    let clock = VirtualClock::at(T0);
    let (server, seen) =
        serve_with_peers(layer(&clock).key(ClientIp::new("basic")), Peer::Vouched).await;
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    let from = |peer: &'static str| async move {
        post_from(local, server, "/v1/txt2video", &[("x-test-peer", peer)]).await
    };
    let first = from("[2001:db8:1:2::a]:40000").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(seen.last().0, identity("ip:2001:db8:1:2::/64", "basic"));
    // Another address (and port) in the same /64: the same caller.
    assert_seed_429(&from("[2001:db8:1:2:ffff:ffff:ffff:ffff]:40001").await);
    // The next /64 is another caller.
    let next = from("[2001:db8:1:3::a]:40000").await;
    assert_eq!(next.status, 200, "{next:?}");
    assert_eq!(seen.last().0, identity("ip:2001:db8:1:3::/64", "basic"));
    // An IPv4 address mapped into IPv6 is the IPv4 address.
    assert_eq!(from("198.51.100.7:1").await.status, 200);
    assert_seed_429(&from("[::ffff:198.51.100.7]:2").await);
    assert_eq!(seen.calls(), 3);
}

#[tokio::test]
async fn by_client_ip_on_premium_counts_on_the_tier_the_extractor_names() {
    let clock = VirtualClock::at(T0);
    let (server, seen) = serve_with_peers(
        layer(&clock).key(ClientIp::new("premium")),
        Peer::Connection,
    )
    .await;
    let a = post_from("127.0.0.4".parse().unwrap(), server, "/v1/txt2video", &[]).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.header("x-ratelimit-limit"), Some("300"));
    assert_eq!(
        a.header("x-ratelimit-daily-limit"),
        None,
        "Premium has no daily limit"
    );
    assert_eq!(seen.last().0, identity("ip:127.0.0.4", "premium"));
}

#[tokio::test]
async fn by_client_ip_without_an_address_is_a_500_and_the_service_is_not_called() {
    let clock = VirtualClock::at(T0);
    // The shared test server records no peer address.
    let server = serve(layer(&clock).key(ClientIp::new("basic"))).await;
    let a = server
        .post("/v1/txt2img", &[("x-api-key", "k-basic")], Bytes::new())
        .await;
    assert_eq!(a.status, 500, "{a:?}");
    assert!(a.header("x-request-id").is_some());
    assert!(
        !a.body.contains("address"),
        "no internals for the client: {}",
        a.body
    );
    assert_eq!(server.seen.calls(), 0);
}

#[tokio::test]
async fn a_closure_keyed_by_a_header_counts_each_value_apart() {
    let clock = VirtualClock::at(T0);
    let tenant = HeaderName::from_static("x-tenant");
    let by_tenant = move |request: &RequestView<'_>| {
        let t = request.header(&tenant)?;
        Some(Caller::Identity(Identity {
            account: format!("tenant:{t}"),
            tier: "basic".into(),
        }))
    };
    let server = serve(layer(&clock).key(by_tenant)).await;
    let acme = || server.post("/v1/txt2video", &[("x-tenant", "acme")], Bytes::new());
    let first = acme().await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(server.seen.last().0, identity("tenant:acme", "basic"));
    assert_seed_429(&acme().await);
    let other = server
        .post("/v1/txt2video", &[("x-tenant", "globex")], Bytes::new())
        .await;
    assert_eq!(other.status, 200, "{other:?}");
    assert_eq!(server.seen.last().0, identity("tenant:globex", "basic"));
    // No header: the closure answers None, the layer 401.
    let none = server
        .post("/v1/txt2video", &[("x-api-key", "k-basic")], Bytes::new())
        .await;
    assert_eq!(none.status, 401, "{none:?}");
    assert_eq!(
        none.message(),
        "missing credentials: the request carries none this service accepts"
    );
    // Two values: the client may not choose, so none.
    let two = server
        .post(
            "/v1/txt2video",
            &[("x-tenant", "acme"), ("x-tenant", "initech")],
            Bytes::new(),
        )
        .await;
    assert_eq!(two.status, 401, "{two:?}");
    assert_eq!(server.seen.calls(), 2);
}

#[tokio::test]
async fn a_closure_naming_an_api_key_is_resolved_through_the_accounts() {
    let clock = VirtualClock::at(T0);
    let key_header = HeaderName::from_static("x-legacy-token");
    let legacy = move |request: &RequestView<'_>| {
        request
            .header(&key_header)
            .map(|k| Caller::ApiKey(k.to_owned()))
    };
    let layer = EnforceLayer::new(
        Policy::seed(),
        Arc::new(MemoryStore::new()),
        Arc::new(accounts().await),
    )
    .clock(clock.func())
    .key(legacy);
    let server = serve(layer).await;
    let known = server
        .post(
            "/v1/txt2img",
            &[("x-legacy-token", "k-premium")],
            Bytes::new(),
        )
        .await;
    assert_eq!(known.status, 200, "{known:?}");
    assert_eq!(server.seen.last().0, identity("acct-premium", "premium"));
    let unknown = server
        .post(
            "/v1/txt2img",
            &[("x-legacy-token", "k-nobody")],
            Bytes::new(),
        )
        .await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.message(), "unknown API key");
    // The usual headers are not read any more.
    let usual = server
        .post("/v1/txt2img", &[("x-api-key", "k-premium")], Bytes::new())
        .await;
    assert_eq!(usual.status, 401, "{usual:?}");
}

#[tokio::test]
async fn without_an_extractor_the_api_key_headers_answer_as_before() {
    let clock = VirtualClock::at(T0);
    let server = serve(
        EnforceLayer::new(
            Policy::seed(),
            Arc::new(MemoryStore::new()),
            Arc::new(accounts().await),
        )
        .clock(clock.func()),
    )
    .await;
    let missing = server.post("/v1/txt2img", &[], Bytes::new()).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.body,
        r#"{"message":"missing API key: send `Authorization: Bearer KEY` or `X-API-Key: KEY`"}"#
    );
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let ok = server.call("/v1/txt2img", "k-basic").await;
    assert_eq!(ok.status, 200);
    assert_eq!(server.seen.last().0, identity("acct-basic", "basic"));
}
