//! The enforcement layer's cost per admitted request, in process (no
//! socket): the same service with and without `EnforceLayer`, in the same run.
//! Both sides build the request the same way; the difference is the layer.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use quota_core::account::{AccountAdmin, MemoryAccounts, NewAccount};
use quota_core::policy::{Money, Policy};
use quota_core::{MemoryStore, Timestamp};
use quota_transport::enforce::EnforceLayer;
use tower::{service_fn, Layer, Service};

/// Large counts, the seed's shapes: every call is admitted.
const POLICY: &str = include_str!("../policies/permissive.toml");

/// Polls a future to completion; every future here is ready at once (memory
/// store, memory accounts, an immediate service), so this never spins long.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// The service behind the layer: answers at once.
async fn handler<B>(_req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"{}"))))
}

fn request() -> Request<Full<Bytes>> {
    Request::post("http://gateway.test/v1/txt2img")
        .header("x-api-key", "bench-key")
        .body(Full::new(Bytes::new()))
        .expect("request")
}

fn overhead(c: &mut Criterion) {
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
    // A clock that moves one millisecond per call and a day every 20 million
    // calls, so no benchmark call is ever refused.
    let tick = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clock = move || {
        let i = tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Timestamp::from_millis(1_795_860_000_000 + (i / 20_000_000) * 86_400_000 + (i & 1023))
    };
    let layer =
        EnforceLayer::new(policy, Arc::new(MemoryStore::new()), Arc::new(accounts)).clock(clock);
    let mut enforced = layer.layer(service_fn(handler));
    let mut bare = service_fn(handler);

    let mut group = c.benchmark_group("transport/admitted request");
    group.bench_function("bare service", |b| {
        b.iter(|| {
            let resp = block_on(bare.call(request())).expect("infallible");
            black_box(resp.status())
        })
    });
    group.bench_function("EnforceLayer + service", |b| {
        b.iter(|| {
            let resp = block_on(enforced.call(request())).expect("infallible");
            assert_eq!(resp.status(), 200);
            black_box(resp.status())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = overhead
}
criterion_main!(benches);
