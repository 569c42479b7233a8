//! Decision cost of quota-core's memory store beside governor's keyed limiter,
//! on the same key counts, in the same run. See docs/performance.md.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use governor::{Quota, RateLimiter};
use quota_benches::{keys, walk_order};
use quota_core::algorithm::{Algorithm, Limit, State};
use quota_core::policy::{Plan, Policy, Request};
use quota_core::{MemoryStore, Timestamp};

/// Large counts, the seed's shapes: every call is admitted.
const BENCH_POLICY: &str = include_str!("../policies/permissive.toml");

const T0: u64 = 1_795_860_000_000;

/// The time of the i-th call: within one day for 20 million calls, then the
/// next day, so the daily count (50 million) never refuses a benchmark call.
fn at(i: u64) -> Timestamp {
    Timestamp::from_millis(T0 + (i / 20_000_000) * 86_400_000 + (i & 1023))
}

/// The keys in the order the calls walk them: shuffled, so a decision's
/// memory is found at random as with real traffic. (Walking keys in the
/// order they were inserted lets a limiter whose key bytes were allocated
/// in that order stream them from memory; both limiters are filled in
/// `keys` order.)
fn walk(keys: &[String]) -> Vec<&String> {
    walk_order(keys.len())
        .into_iter()
        .map(|j| &keys[j])
        .collect()
}

/// `keys(n)` laid out in the walk's order, each string's bytes where
/// `keys` allocated them (in insertion order): the keys governor's rows
/// check. Its check takes `&String`, so walking these reads each key's
/// pointer and length in order and then its bytes at random, as quota's
/// rows read each resolved plan (which holds the key's `&str`) in order and
/// then the bytes. (Walking `walk(&all)` instead reads a `&String`, then
/// that `String` at random in `all`, then its bytes: a dependent cache miss
/// more per check at a million keys, which quota's rows do not pay.)
fn walked_keys(n: usize) -> Vec<String> {
    let mut owned = keys(n);
    walk_order(n)
        .into_iter()
        .map(|j| std::mem::take(&mut owned[j]))
        .collect()
}

fn governor_limiter() -> governor::DefaultKeyedRateLimiter<String> {
    let n = NonZeroU32::new(1_000_000_000).expect("non-zero");
    RateLimiter::keyed(Quota::per_minute(n))
}

/// Fills a store with every key once on `tier`, so lookups hit existing state.
fn warm(store: &MemoryStore, policy: &Policy, keys: &[String], tier: &str) {
    for k in keys {
        let req = Request {
            account: k,
            tier,
            endpoint: "txt2img",
            cost: 1,
        };
        let _ = store.check(policy, &req, Timestamp::from_millis(T0));
    }
}

/// The plans of every key on `tier`, resolved once.
fn plans<'a>(policy: &'a Policy, keys: &[&'a String], tier: &'a str) -> Vec<Plan<'a>> {
    keys.iter()
        .map(|k| {
            let req = Request {
                account: k,
                tier,
                endpoint: "txt2img",
                cost: 1,
            };
            policy.plan(&req).expect("plan")
        })
        .collect()
}

fn single_thread(c: &mut Criterion) {
    let policy = Policy::from_toml(BENCH_POLICY).expect("bench policy");
    for &n in &[1usize, 10_000, 1_000_000] {
        let all = keys(n);
        let keys = walk(&all);
        // Each tier in a store of its own holding exactly `n` keys, as
        // governor's limiter holds `n`.
        let basic = MemoryStore::new();
        warm(&basic, &policy, &all, "basic");
        let premium = MemoryStore::new();
        warm(&premium, &policy, &all, "premium");
        let mut group = c.benchmark_group(format!("decision/{n}_keys"));
        group.throughput(Throughput::Elements(1));
        let label = if n == 1 {
            "hot key".to_string()
        } else {
            format!("{n} keys")
        };
        group.bench_function(BenchmarkId::new("quota basic (2 limits)", &label), |b| {
            let mut calls = 0u64;
            b.iter(|| {
                calls += 1;
                let i = calls as usize % n;
                let req = Request {
                    account: keys[i],
                    tier: "basic",
                    endpoint: "txt2img",
                    cost: 1,
                };
                let plan = policy.plan(&req).expect("plan");
                black_box(basic.decide_now(&plan, at(calls)))
            })
        });
        group.bench_function(BenchmarkId::new("quota premium (1 limit)", &label), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % n;
                let req = Request {
                    account: keys[i],
                    tier: "premium",
                    endpoint: "txt2img",
                    cost: 1,
                };
                let plan = policy.plan(&req).expect("plan");
                black_box(premium.decide_now(&plan, at(i as u64)))
            })
        });
        // The store's decision alone on plans resolved beforehand: the same
        // work as governor's keyed check (find the key's state, decide,
        // update), without turning tier and endpoint names into limits.
        let resolved = plans(&policy, &keys, "basic");
        group.bench_function(
            BenchmarkId::new("quota basic, plan resolved (2 limits)", &label),
            |b| {
                let mut calls = 0u64;
                b.iter(|| {
                    calls += 1;
                    let i = calls as usize % n;
                    black_box(basic.decide_now(&resolved[i], at(calls)))
                })
            },
        );
        drop(resolved);
        drop(basic);
        let resolved = plans(&policy, &keys, "premium");
        group.bench_function(
            BenchmarkId::new("quota premium, plan resolved (1 limit)", &label),
            |b| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 1) % n;
                    black_box(premium.decide_now(&resolved[i], at(i as u64)))
                })
            },
        );
        drop(resolved);
        drop(premium);
        let keys = walked_keys(n);
        let gov = governor_limiter();
        for k in &all {
            let _ = gov.check_key(k);
        }
        group.bench_function(BenchmarkId::new("governor keyed (1 limit)", &label), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % n;
                black_box(gov.check_key(&keys[i]).is_ok())
            })
        });
        drop(gov);
        // governor on a clock that is only read, not asked the time (quota's
        // figures above take `now` as an argument, never reading a clock).
        let clock = governor::clock::FakeRelativeClock::default();
        let quota = Quota::per_minute(NonZeroU32::new(1_000_000_000).expect("non-zero"));
        let gov_fake = RateLimiter::dashmap_with_clock(quota, clock.clone());
        for k in &all {
            let _ = gov_fake.check_key(k);
        }
        group.bench_function(
            BenchmarkId::new("governor keyed, no clock read (1 limit)", &label),
            |b| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 1) % n;
                    black_box(gov_fake.check_key(&keys[i]).is_ok())
                })
            },
        );
        drop(gov_fake);
        group.finish();
    }
}

fn pure_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("algorithm step (pure, no store)");
    for alg in [
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
        Algorithm::Gcra,
    ] {
        let limit = Limit::from_millis(1_000_000, 60_000, alg).expect("limit");
        group.bench_function(alg.as_str(), |b| {
            let mut state = State::default();
            let mut t = T0;
            b.iter(|| {
                t += 1;
                let outcome = limit.evaluate(&state, Timestamp::from_millis(t), 1);
                if outcome.admits {
                    limit.commit(&mut state, Timestamp::from_millis(t), 1);
                }
                black_box(outcome)
            })
        });
    }
    group.finish();
}

/// Two threads deciding at once, each over its own half of the keys; the
/// figure is the wall time per decision (both threads together).
fn two_threads(c: &mut Criterion) {
    let policy = Arc::new(Policy::from_toml(BENCH_POLICY).expect("bench policy"));
    for &n in &[1usize, 10_000, 1_000_000] {
        let keys = Arc::new(keys(n));
        let store = Arc::new(MemoryStore::new());
        let gov = Arc::new(governor_limiter());
        warm(&store, &policy, &keys, "basic");
        for k in keys.iter() {
            let _ = gov.check_key(k);
        }
        let mut group = c.benchmark_group(format!("2 threads/{n}_keys"));
        group.throughput(Throughput::Elements(1));
        group.bench_function("quota basic (2 limits)", |b| {
            b.iter_custom(|iters| {
                run_two(iters, |t, i| {
                    let k = &keys[(i as usize * 2 + t) % n];
                    let req = Request {
                        account: k,
                        tier: "basic",
                        endpoint: "txt2img",
                        cost: 1,
                    };
                    let plan = policy.plan(&req).expect("plan");
                    black_box(store.decide_now(&plan, at(i)));
                })
            })
        });
        group.bench_function("governor keyed (1 limit)", |b| {
            b.iter_custom(|iters| {
                run_two(iters, |t, i| {
                    black_box(gov.check_key(&keys[(i as usize * 2 + t) % n]).is_ok());
                })
            })
        });
        group.finish();
    }
}

fn run_two(iters: u64, f: impl Fn(usize, u64) + Sync) -> Duration {
    let per_thread = iters.div_ceil(2);
    let started = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2 {
            let (f, started) = (&f, &started);
            s.spawn(move || {
                started.fetch_add(1, Ordering::SeqCst);
                for i in 0..per_thread {
                    f(t, i);
                }
            });
        }
    });
    start.elapsed()
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = single_thread, pure_step, two_threads
}
criterion_main!(benches);
