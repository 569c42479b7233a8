//! Decisions over many keys, walked in the core bench's shuffled order, for
//! instruction and cache-miss counts under valgrind (which, unlike time,
//! repeat on a noisy machine):
//!
//! ```sh
//! valgrind --tool=cachegrind --cache-sim=yes target/release/examples/many_keys KEYS CALLS WHAT
//! ```
//!
//! `WHAT` is `premium-resolved` (the memory store's decision on plans made
//! beforehand) or `governor-no-clock` (governor's keyed check on a clock it
//! never reads), each over `KEYS` keys (default a million) held beforehand,
//! `CALLS` times (default 200,000). Subtract a run with `CALLS = 0` to leave
//! out the set-up.

use std::hint::black_box;
use std::num::NonZeroU32;

use governor::{Quota, RateLimiter};
use quota_core::policy::{Policy, Request};
use quota_core::{MemoryStore, Timestamp};

const POLICY: &str = include_str!("../policies/permissive.toml");
const T0: u64 = 1_795_860_000_000;

fn at(i: u64) -> Timestamp {
    Timestamp::from_millis(T0 + (i & 1023))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut arg = |default: usize| args.next().and_then(|a| a.parse().ok()).unwrap_or(default);
    let n = arg(1_000_000).max(1);
    let calls = arg(200_000);
    let what = std::env::args()
        .nth(3)
        .unwrap_or_else(|| "premium-resolved".into());
    let mut all = quota_benches::keys(n);
    // The core bench's walk: a fixed shuffle.
    let order = quota_benches::walk_order(n);
    let policy = Policy::from_toml(POLICY).expect("policy");
    match what.as_str() {
        "premium-resolved" => {
            let store = MemoryStore::new();
            for k in &all {
                let req = Request {
                    account: k,
                    tier: "premium",
                    endpoint: "txt2img",
                    cost: 1,
                };
                let _ = store.check(&policy, &req, Timestamp::from_millis(T0));
            }
            let plans: Vec<_> = order
                .iter()
                .map(|&j| {
                    let req = Request {
                        account: &all[j],
                        tier: "premium",
                        endpoint: "txt2img",
                        cost: 1,
                    };
                    policy.plan(&req).expect("plan")
                })
                .collect();
            let mut i = 0;
            for _ in 0..calls {
                i = (i + 1) % n;
                black_box(store.decide_now(&plans[i], at(i as u64)));
            }
        }
        "governor-no-clock" => {
            let quota = Quota::per_minute(NonZeroU32::new(1_000_000_000).expect("non-zero"));
            let clock = governor::clock::FakeRelativeClock::default();
            let gov = RateLimiter::dashmap_with_clock(quota, clock);
            for k in &all {
                let _ = gov.check_key(k);
            }
            // The keys in the walk's order, each one's bytes where it was
            // allocated (as the core bench's governor rows walk them).
            let walked: Vec<String> = order.iter().map(|&j| std::mem::take(&mut all[j])).collect();
            let mut i = 0;
            for _ in 0..calls {
                i = (i + 1) % n;
                black_box(gov.check_key(&walked[i]).is_ok());
            }
        }
        other => {
            eprintln!("unknown {other:?}: premium-resolved or governor-no-clock");
            std::process::exit(2);
        }
    }
}
