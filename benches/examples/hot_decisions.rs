//! A fixed number of hot-key decisions, for instruction counts under
//! `valgrind --tool=callgrind` (repeatable on a noisy machine):
//! `valgrind --tool=callgrind target/release/examples/hot_decisions`.

use std::hint::black_box;

use quota_core::policy::{Policy, Request};
use quota_core::{MemoryStore, Timestamp};

/// Large counts, the seed's shapes: every call is admitted.
const POLICY: &str = include_str!("../policies/permissive.toml");

fn main() {
    let policy = Policy::from_toml(POLICY).expect("policy");
    let store = MemoryStore::new();
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    for tier in ["premium", "basic"] {
        let req = Request {
            account: "acct-00000001",
            tier,
            endpoint: "txt2img",
            cost: 1,
        };
        for i in 0..n {
            let plan = policy.plan(&req).expect("plan");
            black_box(store.decide_now(
                &plan,
                Timestamp::from_millis(1_795_860_000_000 + (i & 1023)),
            ));
        }
    }
}
