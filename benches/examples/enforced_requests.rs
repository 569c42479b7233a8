//! A fixed number of admitted requests through `EnforceLayer` in process,
//! for instruction counts under callgrind (see docs/performance.md):
//!
//! ```sh
//! valgrind --tool=callgrind target/release/examples/enforced_requests [N [bare]]
//! ```
//!
//! With `bare`, the same requests go to the service without the layer.
//! Subtract a run with `N = 0` to leave out the set-up.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use quota_core::account::{AccountAdmin, MemoryAccounts, NewAccount};
use quota_core::policy::{Money, Policy};
use quota_core::{MemoryStore, Timestamp};
use quota_transport::enforce::EnforceLayer;
use tower::{service_fn, Layer, Service};

/// The seed's shapes with counts so large that every request is admitted.
const POLICY: &str = include_str!("../policies/permissive.toml");

/// Polls a future to completion; every future here is ready at once.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

async fn handler<B>(_req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"{}"))))
}

fn request() -> Request<Full<Bytes>> {
    Request::post("http://gateway.test/v1/txt2img")
        .header("x-api-key", "bench-key")
        .body(Full::new(Bytes::new()))
        .expect("request")
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let bare = std::env::args().nth(2).as_deref() == Some("bare");
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
        Timestamp::from_millis(1_795_860_000_000 + (i & 1023))
    };
    let layer =
        EnforceLayer::new(policy, Arc::new(MemoryStore::new()), Arc::new(accounts)).clock(clock);
    let mut enforced = layer.layer(service_fn(handler));
    let mut plain = service_fn(handler);
    for _ in 0..n {
        if bare {
            black_box(block_on(plain.call(request())).expect("answer"));
        } else {
            let res = block_on(enforced.call(request())).expect("answer");
            assert_eq!(res.status(), 200);
            black_box(res);
        }
    }
}
