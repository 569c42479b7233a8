//! Decisions per second through the Redis store with 1, 16 and 64 requests in
//! flight on one connection, beside `redis-benchmark`'s ceiling for the same
//! script (EVALSHA of decide.lua with the same arguments) on the same server,
//! in the same run. Prints a Markdown table. Needs Redis at 127.0.0.1:6379
//! and `redis-benchmark` on the PATH.
//!
//! A second table compares, in the same run, the same decisions on one
//! Redis and on a Redis Cluster (three masters, three replicas: start it
//! with `scripts/ensure-redis-cluster.sh`; another with
//! `QUOTA_BENCH_CLUSTER=redis+cluster://...`), for one hot account (its keys
//! in one slot, so on one master) and for one account per task (spread over
//! the masters): medians of 3 rounds of 3 s, the two stores alternating.
//! Skipped, with a note, when the cluster does not answer.
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
    measure_for(store, policy, in_flight, false, RUN).await
}

/// Decisions/s, p50 and p99 (ms) with `in_flight` tasks for `run`: all on
/// one account, or (`spread`) one account per task.
async fn measure_for(
    store: Arc<RedisStore>,
    policy: Arc<Policy>,
    in_flight: usize,
    spread: bool,
    run: Duration,
) -> (f64, f64, f64) {
    let deadline = Instant::now() + run;
    let tasks: Vec<_> = (0..in_flight)
        .map(|i| {
            let (store, policy) = (store.clone(), policy.clone());
            let account = if spread {
                format!("bench-{i}")
            } else {
                "bench-hot".to_owned()
            };
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(200_000);
                let req = Request {
                    account: &account,
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

    compare_with_cluster(&rt, &store, &policy, &prefix);

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

const CLUSTER_URL: &str = "redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103";
const ROUNDS: usize = 3;
const CLUSTER_RUN: Duration = Duration::from_secs(3);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The same decisions on one Redis (`single`) and on the cluster, medians
/// of `ROUNDS` alternating rounds; then the cluster's keys are deleted.
fn compare_with_cluster(
    rt: &tokio::runtime::Runtime,
    single: &Arc<RedisStore>,
    policy: &Arc<Policy>,
    prefix: &str,
) {
    let url = std::env::var("QUOTA_BENCH_CLUSTER").unwrap_or_else(|_| CLUSTER_URL.to_owned());
    let cluster = rt.block_on(async {
        RedisStore::connect(
            &url,
            RedisConfig::default()
                .with_prefix(prefix.to_owned())
                .with_timeout(Duration::from_secs(2)),
        )
        .await
    });
    let cluster = match cluster {
        Ok(c) if c.health().redis_ok => Arc::new(c),
        _ => {
            println!("\n(no Redis Cluster answers at {url}: start one with scripts/ensure-redis-cluster.sh to compare)");
            return;
        }
    };
    println!("\nOne Redis against the Redis Cluster at {url} (3 masters), medians of {ROUNDS} rounds of {} s:\n", CLUSTER_RUN.as_secs());
    println!("| accounts | in flight | one Redis decisions/s | p50 ms | p99 ms | cluster decisions/s | p50 ms | p99 ms | cluster / one Redis |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for spread in [false, true] {
        for in_flight in [1usize, 16, 64] {
            let mut one = (Vec::new(), Vec::new(), Vec::new());
            let mut many = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                for (store, into) in [(single, &mut one), (&cluster, &mut many)] {
                    let (rate, p50, p99) = rt.block_on(measure_for(
                        store.clone(),
                        policy.clone(),
                        in_flight,
                        spread,
                        CLUSTER_RUN,
                    ));
                    into.0.push(rate);
                    into.1.push(p50);
                    into.2.push(p99);
                }
            }
            let (r1, r2) = (median(one.0), median(many.0));
            println!(
                "| {} | {in_flight} | {r1:.0} | {:.3} | {:.3} | {r2:.0} | {:.3} | {:.3} | {:.2} |",
                if spread { "one per task" } else { "one (hot)" },
                median(one.1),
                median(one.2),
                median(many.1),
                median(many.2),
                r2 / r1
            );
        }
    }
    // The cluster's keys of this run, on every master.
    let seeds: Vec<String> = url
        .trim_start_matches("redis+cluster://")
        .split(',')
        .map(|h| format!("redis://{h}"))
        .collect();
    let Ok(mut con) = redis::cluster::ClusterClient::new(seeds).and_then(|c| c.get_connection())
    else {
        return;
    };
    let accounts = (0..64)
        .map(|i| format!("bench-{i}"))
        .chain(["bench-hot".to_owned()]);
    let plan_keys: Vec<String> = accounts
        .flat_map(|account| {
            let req = Request {
                account: &account,
                tier: "basic",
                endpoint: "txt2img",
                cost: 1,
            };
            policy
                .plan(&req)
                .map(|p| cluster.plan_keys(&p))
                .unwrap_or_default()
        })
        .collect();
    for k in plan_keys {
        let _: Result<(), _> = redis::cmd("DEL").arg(k).query(&mut con);
    }
}
