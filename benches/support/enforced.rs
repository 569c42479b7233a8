//! The enforcement layer's fixture, shared by the transport bench and the
//! `enforced_requests` example (included by path: `#[path] mod`): the
//! layer over a memory store and one account, in front of a service that
//! answers at once, polled without a runtime.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use quota_core::account::{AccountAdmin, MemoryAccounts, NewAccount};
use quota_core::policy::{Money, Policy};
use quota_core::{MemoryStore, Timestamp};
use quota_transport::enforce::EnforceLayer;

/// Large counts, the seed's shapes: every call is admitted.
pub const POLICY: &str = include_str!("../policies/permissive.toml");

/// Polls a future to completion; every future here is ready at once (memory
/// store, memory accounts, an immediate service), so this never spins long.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// The service behind the layer: answers at once.
pub async fn handler<B>(_req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"{}"))))
}

/// The service behind the layer, answering with the fields a JSON API
/// usually sends (`Content-Type`, `Content-Length`, `Cache-Control`) and one
/// of its own (`X-Request-Id`): the layer's fields join these.
pub async fn handler_with_fields<B>(_req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
    let headers = res.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, APPLICATION_JSON);
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from_static("2"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        X_REQUEST_ID,
        http::HeaderValue::from_static("3f2a9c1d7e5b4a60"),
    );
    Ok(res)
}

const APPLICATION_JSON: http::HeaderValue = http::HeaderValue::from_static("application/json");
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// An admitted request: the account's key, a known endpoint.
pub fn request() -> Request<Full<Bytes>> {
    Request::post("http://gateway.test/v1/txt2img")
        .header("x-api-key", "bench-key")
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// The layer over the bench policy, a memory store and the one Basic
/// account whose key [`request`] sends. A clock that moves one millisecond
/// per call and a day every 20 million calls, so no call is ever refused.
pub fn layer() -> EnforceLayer<MemoryStore, MemoryAccounts> {
    let accounts = MemoryAccounts::new();
    block_on(accounts.create(
        NewAccount {
            id: "acct".into(),
            api_key: "bench-key".into(),
            tier: "basic".into(),
            credit: Money::from_dollars(5),
        },
        Timestamp::EPOCH,
    ))
    .expect("account");
    let policy = Policy::from_toml(POLICY).expect("policy");
    let tick = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clock = move || {
        let i = tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Timestamp::from_millis(1_795_860_000_000 + (i / 20_000_000) * 86_400_000 + (i & 1023))
    };
    EnforceLayer::new(policy, Arc::new(MemoryStore::new()), Arc::new(accounts)).clock(clock)
}
