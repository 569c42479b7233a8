//! Decisions per second through the Redis store with 1, 16 and 64 requests in
//! flight on one connection, beside `redis-benchmark`'s ceiling for the same
//! script (EVALSHA of decide.lua with the same arguments) on the same server,
//! in the same run. Prints a Markdown table. Needs Redis at 127.0.0.1:6379
//! and `redis-benchmark` on the PATH.
//!
//! Run: `cargo bench -p quota-benches --bench redis`

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quota_core::policy::{Policy, Request};
use quota_core::{Store, Timestamp};
use quota_redis::{RedisConfig, RedisStore};

/// Large counts, the seed's shapes: every call is admitted.
const POLICY: &str = include_str!("../policies/permissive.toml");

const URL: &str = "redis://127.0.0.1:6379";
const RUN: Duration = Duration::from_secs(5);

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

async fn measure(store: Arc<RedisStore>, policy: Arc<Policy>, in_flight: usize) -> (f64, f64, f64) {
    let deadline = Instant::now() + RUN;
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let (store, policy) = (store.clone(), policy.clone());
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(200_000);
                let req = Request {
                    account: "bench-hot",
                    tier: "basic",
                    endpoint: "txt2img",
                    cost: 1,
                };
                let plan = policy.plan(&req).expect("plan");
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let r = store.decide(&plan, Timestamp::EPOCH).await;
                    assert!(r.is_ok(), "redis decision failed: {r:?}");
                    lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
                lat
            })
        })
        .collect();
    let start = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    (
        all.len() as f64 / secs,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    )
}

/// `redis-benchmark` running the same EVALSHA with `clients` connections,
/// each keeping `pipeline` commands in flight.
fn redis_benchmark(sha: &str, clients: usize, pipeline: usize) -> Option<f64> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", "6379", "-n", "200000", "-q"])
        .args(["-c", &clients.to_string(), "-P", &pipeline.to_string()])
        .args([
            "EVALSHA",
            sha,
            "2",
            "quota-bench:{rb}:a",
            "quota-bench:{rb}:b",
            "1",
            "",
            "1",
            "1000",
        ])
        .args(["f", "1000000000", "60000", "f", "1000000000", "86400000"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The last line reads "EVALSHA ...: 81234.56 requests per second, p50=...".
    let before = text.rsplit("requests per second").nth(1)?;
    before.split_whitespace().last()?.parse().ok()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let policy = Arc::new(Policy::from_toml(POLICY).expect("policy"));
    let prefix = format!("quota-bench-{}:", std::process::id());
    let store = rt.block_on(async {
        RedisStore::connect(
            URL,
            RedisConfig::default()
                .with_prefix(prefix.clone())
                .with_timeout(Duration::from_secs(2)),
        )
        .await
        .expect("Redis at 127.0.0.1:6379")
    });
    let store = Arc::new(store);

    // The script's SHA, to run the very same command under redis-benchmark.
    let client = redis::Client::open(URL).expect("url");
    let mut con = client.get_connection().expect("connect");
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(include_str!("../../crates/quota-redis/src/decide.lua"))
        .query(&mut con)
        .expect("SCRIPT LOAD");

    println!("| in flight | quota decisions/s | p50 ms | p99 ms | redis-benchmark: N connections | redis-benchmark: 1 connection, N pipelined | ceiling (the higher) | quota / ceiling |");
    println!("|---|---|---|---|---|---|---|---|");
    let show = |v: Option<f64>| v.map_or("(failed)".to_string(), |c| format!("{c:.0}"));
    for in_flight in [1usize, 16, 64] {
        let (rate, p50, p99) = rt.block_on(measure(store.clone(), policy.clone(), in_flight));
        let conns = redis_benchmark(&sha, in_flight, 1);
        let piped = redis_benchmark(&sha, 1, in_flight);
        let ceiling = conns
            .into_iter()
            .chain(piped)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        let ratio = ceiling.map_or("-".to_string(), |c| format!("{:.2}", rate / c));
        println!(
            "| {in_flight} | {rate:.0} | {p50:.3} | {p99:.3} | {} | {} | {} | {ratio} |",
            show(conns),
            show(piped),
            show(ceiling)
        );
    }

    // Clean up this run's keys.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut con)
        .unwrap_or_default();
    let rb: Vec<String> = redis::cmd("KEYS")
        .arg("quota-bench:*")
        .query(&mut con)
        .unwrap_or_default();
    for k in keys.iter().chain(&rb) {
        let _: Result<(), _> = redis::cmd("DEL").arg(k).query(&mut con);
    }
}
