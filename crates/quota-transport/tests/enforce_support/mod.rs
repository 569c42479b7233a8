//! Shared by the `enforce_*` tests: a real hyper server on 127.0.0.1:0 with
//! the layer in front of a counting service, a real hyper-util client, a
//! virtual clock and accounts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
#![allow(dead_code, unreachable_pub)] // each test file uses a part of the support

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use quota_core::account::{AccountAdmin, Identity, MemoryAccounts, NewAccount};
use quota_core::policy::{Money, Policy};
use quota_core::{Store, Timestamp};
use quota_transport::enforce::{EnforceLayer, RateReport, RequestBody};
use tokio::net::TcpListener;
use tower::{service_fn, Layer};

/// 2023-11-14T22:13:20Z: 20 s into its UTC minute, 80 000 s into its UTC day.
pub const T0: u64 = 1_700_000_000_000;

/// A clock the test moves by hand.
#[derive(Clone, Debug)]
pub struct VirtualClock(Arc<AtomicU64>);

impl VirtualClock {
    pub fn at(ms: u64) -> Self {
        VirtualClock(Arc::new(AtomicU64::new(ms)))
    }
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
    /// For `EnforceLayer::clock`.
    pub fn func(&self) -> impl Fn() -> Timestamp + Send + Sync + 'static {
        let c = self.clone();
        move || c.now()
    }
}

/// Accounts: `k-basic` (Basic, $5), `k-basic2` (Basic, $5), `k-premium`
/// (Premium, $5), `k-poor` (Basic, $0).
pub async fn accounts() -> MemoryAccounts {
    let accounts = MemoryAccounts::new();
    for (id, key, tier, dollars) in [
        ("acct-basic", "k-basic", "basic", 5),
        ("acct-basic2", "k-basic2", "basic", 5),
        ("acct-premium", "k-premium", "premium", 5),
        ("acct-poor", "k-poor", "basic", 0),
    ] {
        let new = NewAccount {
            id: id.into(),
            api_key: key.into(),
            tier: tier.into(),
            credit: Money::from_dollars(dollars),
        };
        accounts.create(new, Timestamp::EPOCH).await.unwrap();
    }
    accounts
}

/// The seed policy plus a priced endpoint `paid` ($2 a request, 100 a minute on Basic).
pub fn policy_with_price() -> Policy {
    let mut spec = Policy::seed().spec().clone();
    spec.endpoints.push(quota_core::policy::EndpointSpec {
        path: "paid".into(),
        price: Some(Money::from_dollars(2)),
        priority: None,
    });
    let basic = spec.tiers.iter_mut().find(|t| t.name == "basic").unwrap();
    basic.limits.push(quota_core::policy::LimitSpec::new(
        Some("paid"),
        quota_core::policy::WindowLength::from_secs(60),
        100,
    ));
    Policy::new(spec).unwrap()
}

/// The identity and decision the service found in a request's extensions.
pub type Extensions = (Option<Identity>, Option<RateReport>);

/// What the inner service saw: how often it was called, and the last
/// identity and decision summary it found in the request's extensions.
#[derive(Clone, Default)]
pub struct Seen {
    pub calls: Arc<AtomicUsize>,
    /// What the service answered each time (its view of the body).
    pub answers: Arc<std::sync::Mutex<Vec<String>>>,
    pub last: Arc<std::sync::Mutex<Option<Extensions>>>,
}

impl Seen {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn last(&self) -> Extensions {
        self.last.lock().unwrap().clone().unwrap_or_default()
    }
}

/// A running server: the layer in front of a service that reads the whole
/// body and answers `200 read N bytes`.
pub struct TestServer {
    pub addr: SocketAddr,
    pub seen: Seen,
    client: Client<HttpConnector, Full<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve<S, A>(layer: EnforceLayer<S, A>) -> TestServer
where
    S: Store + 'static,
    A: quota_core::account::Accounts + 'static,
{
    let seen = Seen::default();
    let inner_seen = seen.clone();
    let inner = service_fn(move |req: Request<RequestBody<Incoming>>| {
        let seen = inner_seen.clone();
        async move {
            seen.calls.fetch_add(1, Ordering::SeqCst);
            let identity = req.extensions().get::<Identity>().cloned();
            let summary = req.extensions().get::<RateReport>().cloned();
            *seen.last.lock().unwrap() = Some((identity, summary));
            // Stream the body, keeping nothing but a count and a checksum.
            let mut body = req.into_body();
            let (mut len, mut sum) = (0usize, 0u64);
            let answer = loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            len += data.len();
                            sum = data
                                .iter()
                                .fold(sum, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
                        }
                    }
                    Some(Err(e)) => break format!("read failed after {len} bytes: {e}"),
                    None if len == 0 => break "read 0 bytes".to_owned(),
                    None => break format!("read {len} bytes, checksum {sum}"),
                }
            };
            seen.answers.lock().unwrap().push(answer.clone());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(answer))))
        }
    });
    let service = layer.layer(inner);
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
    let client = Client::builder(TokioExecutor::new()).build_http();
    TestServer {
        addr,
        seen,
        client,
        task,
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    /// The `message` of a JSON error body.
    pub fn message(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        v["message"].as_str().unwrap().to_owned()
    }
}

impl TestServer {
    /// Sends `POST path` with the given headers and body.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Bytes) -> Answer {
        let mut req = Request::post(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = tokio::time::timeout(
            Duration::from_secs(10),
            self.client.request(req.body(Full::new(body)).unwrap()),
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

    /// `POST path` with `X-API-Key: key` and an empty body.
    pub async fn call(&self, path: &str, key: &str) -> Answer {
        self.post(path, &[("x-api-key", key)], Bytes::new()).await
    }
}

/// The rate-limit header names of the seed, lowercase.
pub const SEED_HEADERS: [&str; 6] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-daily-limit",
    "x-ratelimit-daily-remaining",
    "x-ratelimit-type",
    "retry-after",
];

/// The checksum the service reports for a body it read whole.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0u64, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)))
}
