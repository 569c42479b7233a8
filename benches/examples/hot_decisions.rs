//! A fixed number of hot-key decisions, for instruction counts under
//! `valgrind --tool=callgrind` (repeatable on a noisy machine, unlike time):
//!
//! ```sh
//! valgrind --tool=callgrind target/release/examples/hot_decisions [N [WHAT]]
//! ```
//!
//! `WHAT` is one of `premium` and `basic` (a plan from the request's names,
//! then the memory store's decision), `premium-resolved` and
//! `basic-resolved` (the store's decision alone, on a plan made once), `governor` (governor's keyed check
//! on the same key), `governor-no-clock` (the same on a clock it never
//! reads); without it, `premium` then `basic`. `N` defaults to
//! 200,000. Subtract a run with `N = 0` to leave out the set-up.

use std::hint::black_box;
use std::num::NonZeroU32;

use governor::{Quota, RateLimiter};
use quota_core::policy::{Policy, Request};
use quota_core::{MemoryStore, Timestamp};

/// Large counts, the seed's shapes: every call is admitted.
const POLICY: &str = include_str!("../policies/permissive.toml");
const KEY: &str = "acct-00000001";

fn at(i: u64) -> Timestamp {
    Timestamp::from_millis(1_795_860_000_000 + (i & 1023))
}

fn main() {
    let policy = Policy::from_toml(POLICY).expect("policy");
    let store = MemoryStore::new();
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let what = std::env::args().nth(2);
    let runs: Vec<&str> = match what.as_deref() {
        Some(w) => vec![w],
        None => vec!["premium", "basic"],
    };
    for run in runs {
        match run {
            "premium" | "basic" => {
                let req = Request {
                    account: KEY,
                    tier: run,
                    endpoint: "txt2img",
                    cost: 1,
                };
                for i in 0..n {
                    let plan = policy.plan(&req).expect("plan");
                    black_box(store.decide_now(&plan, at(i)));
                }
            }
            "premium-resolved" | "basic-resolved" => {
                let req = Request {
                    account: KEY,
                    tier: run.trim_end_matches("-resolved"),
                    endpoint: "txt2img",
                    cost: 1,
                };
                let plan = policy.plan(&req).expect("plan");
                for i in 0..n {
                    black_box(store.decide_now(&plan, at(i)));
                }
            }
            "governor" => {
                let quota = Quota::per_minute(NonZeroU32::new(1_000_000_000).expect("non-zero"));
                let limiter = RateLimiter::<String, _, _>::dashmap(quota);
                let key = KEY.to_owned();
                for _ in 0..n {
                    black_box(limiter.check_key(&key).is_ok());
                }
            }
            "governor-no-clock" => {
                let quota = Quota::per_minute(NonZeroU32::new(1_000_000_000).expect("non-zero"));
                let clock = governor::clock::FakeRelativeClock::default();
                let limiter = RateLimiter::dashmap_with_clock(quota, clock);
                let key = KEY.to_owned();
                for _ in 0..n {
                    black_box(limiter.check_key(&key).is_ok());
                }
            }
            other => {
                eprintln!("unknown run {other:?}: premium, basic, premium-resolved, basic-resolved, governor or governor-no-clock");
                std::process::exit(2);
            }
        }
    }
}
