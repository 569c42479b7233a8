//! The pacing layer over hyper-util's client against the real enforcement
//! layer served by hyper: a paced burst draws no 429.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod client_support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use quota_core::account::{AccountAdmin, MemoryAccounts, NewAccount};
use quota_core::policy::{Money, Policy};
use quota_core::{MemoryStore, Timestamp};
use quota_transport::enforce::EnforceLayer;
use quota_transport::pace::PaceLayer;
use quota_transport::retry::{RetryLayer, RetryOutcome, RetryPolicy};
use tokio::net::TcpListener;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

use client_support::client;

/// `echo`: 5 requests per 1-second fixed window on the signup tier.
const POLICY: &str = r#"
[[endpoints]]
path = "echo"

[[tiers]]
name = "basic"
granted = "signup"
limits = [ { endpoint = "echo", name = "burst", window = "1s", count = 5 } ]
"#;

const BURST: usize = 15;

/// A server, and how many requests reached the service behind the layer.
struct Enforcing {
    addr: SocketAddr,
    admitted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Enforcing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the enforcement layer (memory store, one account with key `k-1`)
/// in front of a service that answers 200.
async fn enforcing_server(policy: Policy, ietf_headers: bool) -> Enforcing {
    gated_enforcing_server(policy, ietf_headers, 0).await
}

/// [`enforcing_server`], holding the first `hold` requests until all of
/// them have arrived (at most 5 s), so that they meet the limiter as one
/// wave whatever the scheduling of the client's tasks.
async fn gated_enforcing_server(policy: Policy, ietf_headers: bool, hold: usize) -> Enforcing {
    let accounts = MemoryAccounts::new();
    let new = NewAccount {
        id: "acct-1".into(),
        api_key: "k-1".into(),
        tier: "basic".into(),
        credit: Money::ZERO,
    };
    accounts.create(new, Timestamp::EPOCH).await.unwrap();
    let layer = EnforceLayer::new(policy, Arc::new(MemoryStore::new()), Arc::new(accounts))
        .ietf_headers(ietf_headers);
    let admitted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&admitted);
    let inner = service_fn(move |_req: Request<_>| {
        count.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"echo")))) }
    });
    let enforce = layer.layer(inner);
    let arrived = Arc::new(AtomicUsize::new(0));
    let wave = Arc::new(tokio::sync::Barrier::new(hold.max(1)));
    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
        let (enforce, arrived, wave) = (enforce.clone(), Arc::clone(&arrived), Arc::clone(&wave));
        async move {
            if arrived.fetch_add(1, Ordering::SeqCst) < hold {
                let _ = tokio::time::timeout(Duration::from_secs(5), wave.wait()).await;
            }
            enforce.oneshot(req).await
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Enforcing {
        addr,
        admitted,
        task,
    }
}

fn echo(addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}/v1/echo"))
        .header("x-api-key", "k-1")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacer_built_from_the_plan_draws_no_429_over_a_concurrent_burst() {
    let policy = Policy::from_toml(POLICY).unwrap();
    let req = quota_core::policy::Request {
        account: "acct-1",
        tier: "basic",
        endpoint: "echo",
        cost: 1,
    };
    let pace = PaceLayer::for_plan(&policy.plan(&req).unwrap());
    // The IETF `RateLimit` field tells the pacer the 1-second reset; with the
    // seed's headers alone it would assume UTC minutes and wait for the next
    // one (no 429, but slow).
    let server = enforcing_server(policy, true).await;
    let api = ServiceBuilder::new().layer(pace).service(client());

    let started = Instant::now();
    let tasks: Vec<_> = (0..BURST)
        .map(|_| tokio::spawn(api.clone().oneshot(echo(server.addr))))
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap().unwrap().status().as_u16());
    }
    let elapsed = started.elapsed();

    eprintln!("{BURST} paced concurrent requests in {elapsed:?}");
    assert_eq!(statuses, [200; BURST], "after {elapsed:?}");
    // 15 at 5 per 1-second window: the third window at the latest.
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacer_learning_from_ietf_headers_draws_no_429_over_a_sequential_burst() {
    let server = enforcing_server(Policy::from_toml(POLICY).unwrap(), true).await;
    let mut api = ServiceBuilder::new()
        .layer(PaceLayer::new())
        .service(client());

    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..BURST {
        let res = api
            .ready()
            .await
            .unwrap()
            .call(echo(server.addr))
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    let elapsed = started.elapsed();

    eprintln!("{BURST} paced sequential requests in {elapsed:?}");
    assert_eq!(statuses, [200; BURST], "after {elapsed:?}");
    // Each hold lasts to the reset rounded up to whole seconds (`t=1`).
    assert!(elapsed < Duration::from_secs(7), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaced_burst_draws_429s_so_the_pacing_tests_mean_something() {
    let server = enforcing_server(Policy::from_toml(POLICY).unwrap(), true).await;
    let api = client();

    let tasks: Vec<_> = (0..BURST)
        .map(|_| tokio::spawn(api.clone().oneshot(echo(server.addr))))
        .collect();
    let mut refused = 0;
    for task in tasks {
        refused += usize::from(task.await.unwrap().unwrap().status() == 429);
    }

    // A burst over at most two 1-second windows admits 10 at most.
    assert!(refused > 0, "{refused} refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_over_a_learning_pacer_gets_every_request_of_a_concurrent_burst_through() {
    // The pacer knows nothing before the first answers, so the first wave
    // (held at the server until all of it has arrived) draws 429s; the
    // retry layer waits them out and the pacer spaces the retries. Every
    // request ends admitted, and only 15 reach the service.
    let server = gated_enforcing_server(Policy::from_toml(POLICY).unwrap(), true, BURST).await;
    let policy = RetryPolicy {
        base: Duration::from_millis(10),
        ..RetryPolicy::SEED
    };
    let api = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .layer(PaceLayer::new())
        .service(client());

    let started = Instant::now();
    let tasks: Vec<_> = (0..BURST)
        .map(|_| tokio::spawn(api.clone().oneshot(echo(server.addr))))
        .collect();
    let mut attempts = 0;
    for task in tasks {
        let res = task.await.unwrap().unwrap();
        assert_eq!(res.status(), 200);
        attempts += res.extensions().get::<RetryOutcome>().unwrap().attempts;
    }
    let elapsed = started.elapsed();

    eprintln!("{BURST} requests in {attempts} attempts, {elapsed:?}");
    assert_eq!(server.admitted.load(Ordering::SeqCst), BURST);
    assert!(attempts > 15, "the first wave was refused");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}
