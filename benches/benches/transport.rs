//! The enforcement layer's cost per admitted request, in process (no
//! socket): the same service with and without `EnforceLayer`, in the same run.
//! Both sides build the request the same way; the difference is the layer.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{Extensions, HeaderMap};
use quota_core::account::{key_digest, Identity};
use quota_core::policy::{Policy, Request as PlanRequest};
use quota_core::{MemoryStore, RateReport, Timestamp};
use quota_transport::response::write_rate_headers;
use tower::{service_fn, Layer, Service};

/// With `--features mimalloc`: the allocator the `quota` binary runs with
/// (crates/quota-cli), instead of the system's.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../support/enforced.rs"]
mod enforced;

use enforced::{block_on, handler, handler_with_fields, request};

/// The group `name`: the service `handler` alone, then behind the layer.
/// `fields` is how many fields the layer's answer has.
macro_rules! admitted {
    ($c:expr, $name:expr, $handler:ident, $fields:expr) => {{
        let mut enforced = enforced::layer().layer(service_fn($handler));
        let mut bare = service_fn($handler);
        let mut group = $c.benchmark_group($name);
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
                assert_eq!(resp.headers().len(), $fields);
                black_box(resp.status())
            })
        });
        group.finish();
    }};
}

fn overhead(c: &mut Criterion) {
    admitted!(c, "transport/admitted request", handler, 4);
    // The same, with a service whose answer has four fields of its own:
    // the layer's four join them.
    admitted!(
        c,
        "transport/admitted request, answer with fields",
        handler_with_fields,
        8
    );
}

/// The parts of an admitted request's work that the layer's contract
/// makes it do, each alone: what the layer's cost cannot go below while it
/// keeps these promises (the seed's headers on every answer, keys kept as
/// SHA-256 digests, the identity and the report in the request's
/// extensions).
fn parts(c: &mut Criterion) {
    let policy = Policy::from_toml(enforced::POLICY).expect("policy");
    let store = MemoryStore::new();
    let req = PlanRequest {
        account: "acct",
        tier: "basic",
        endpoint: "txt2img",
        cost: 1,
    };
    let tick = AtomicU64::new(0);
    let now = || {
        let i = tick.fetch_add(1, Ordering::Relaxed);
        Timestamp::from_millis(1_795_860_000_000 + (i / 20_000_000) * 86_400_000 + (i & 1023))
    };
    let report = RateReport::new(&store.check(&policy, &req, now()).expect("decision"));
    let who = Identity {
        account: "acct".into(),
        tier: "basic".into(),
    };

    let mut group = c.benchmark_group("transport/parts of an admitted request");
    group.bench_function("decision (2 limits) and its report", |b| {
        b.iter(|| {
            let decision = store.check(&policy, &req, now()).expect("decision");
            black_box(RateReport::new(&decision))
        })
    });
    group.bench_function("the key's SHA-256 digest", |b| {
        b.iter(|| black_box(key_digest(black_box("bench-key"))))
    });
    group.bench_function("the report's four fields into an empty header map", |b| {
        b.iter(|| {
            let mut headers = HeaderMap::new();
            write_rate_headers(black_box(&report), &mut headers);
            black_box(headers)
        })
    });
    let seed = Policy::seed();
    let small = RateReport::new(
        &MemoryStore::new()
            .check(&seed, &req, now())
            .expect("decision"),
    );
    group.bench_function("the same, counts under 10,000 (the seed's policy)", |b| {
        b.iter(|| {
            let mut headers = HeaderMap::new();
            write_rate_headers(black_box(&small), &mut headers);
            black_box(headers)
        })
    });
    group.bench_function("the identity and the report into the extensions", |b| {
        b.iter(|| {
            let mut extensions = Extensions::new();
            extensions.insert(black_box(&who).clone());
            extensions.insert(black_box(&report).clone());
            black_box(extensions)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = overhead, parts
}
criterion_main!(benches);
