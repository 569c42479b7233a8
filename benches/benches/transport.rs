//! The enforcement layer's cost per admitted request, in process (no
//! socket): the same service with and without `EnforceLayer`, in the same run.
//! Both sides build the request the same way; the difference is the layer.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tower::{service_fn, Layer, Service};

#[path = "../support/enforced.rs"]
mod enforced;

use enforced::{block_on, handler, handler_with_fields, request};

fn overhead(c: &mut Criterion) {
    let mut enforced = enforced::layer().layer(service_fn(handler));
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

    // The same, with a service whose answer has fields of its own: the
    // layer's fields are merged with them.
    let mut enforced = enforced::layer().layer(service_fn(handler_with_fields));
    let mut bare = service_fn(handler_with_fields);
    let mut group = c.benchmark_group("transport/admitted request, answer with fields");
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
            assert_eq!(resp.headers().len(), 8);
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
