//! A fixed number of admitted requests through `EnforceLayer` in process,
//! for instruction counts under callgrind (see docs/performance.md):
//!
//! ```sh
//! valgrind --tool=callgrind target/release/examples/enforced_requests [N [bare|layer [fields]]]
//! ```
//!
//! With `bare`, the same requests go to the service without the layer; with
//! `fields`, to a service whose answers carry fields of their own.
//! Subtract a run with `N = 0` to leave out the set-up.

use std::hint::black_box;

use tower::{service_fn, Layer, Service};

#[path = "../support/enforced.rs"]
mod enforced;

use enforced::{block_on, handler, handler_with_fields, request};

/// `n` requests through the layer over `handler`, or to `handler` alone.
macro_rules! run {
    ($n:expr, $bare:expr, $handler:ident) => {{
        let mut enforced = enforced::layer().layer(service_fn($handler));
        let mut plain = service_fn($handler);
        for _ in 0..$n {
            if $bare {
                black_box(block_on(plain.call(request())).expect("answer"));
            } else {
                let res = block_on(enforced.call(request())).expect("answer");
                assert_eq!(res.status(), 200);
                black_box(res);
            }
        }
    }};
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let bare = std::env::args().nth(2).as_deref() == Some("bare");
    if std::env::args().nth(3).as_deref() == Some("fields") {
        run!(n, bare, handler_with_fields);
    } else {
        run!(n, bare, handler);
    }
}
