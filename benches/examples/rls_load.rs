//! `ShouldRateLimit` calls under load: quota's rate limit service against a
//! bare tonic server of the same service that answers `OK` at once (the
//! floor of the gRPC stack), in the same run, at 1, 16 and 64 calls in
//! flight. See docs/performance.md.
//!
//! ```sh
//! cargo run --release -p quota-benches --example rls_load [SECONDS_PER_ROUND [ROUNDS]]
//! ```
//!
//! Both servers share one runtime (one worker thread, named
//! `rls-server`) and mimalloc, the allocator of the `quota` binary; the
//! client has its own runtime (one worker thread). quota decides
//! with the memory store and memory accounts,
//! `benches/policies/permissive.toml` (every call admitted), 64 accounts by
//! API key, round robin.
//!
//! # A fixed number of calls, for a profiler
//! With `RLS_CALLS=N` the bench makes exactly `N` calls (at
//! `RLS_IN_FLIGHT`, default 64, in flight) to one server, `--only quota` or
//! `--only bare`, and exits. Wall time means little on a shared machine;
//! instruction counts do not move with the load, so this mode is for
//! `valgrind --tool=callgrind --separate-threads=yes`: the `rls-server`
//! thread's instructions, at two values of `N`, give the server's
//! instructions per call (the difference over the difference of `N`
//! cancels the setup):
//!
//! ```sh
//! RLS_CALLS=20000 valgrind --tool=callgrind --separate-threads=yes \
//!     target/release/examples/rls_load --only quota
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use quota_core::account::{AccountAdmin, NewAccount};
use quota_core::policy::{Money, Policy};
use quota_core::Timestamp;
use quota_gateway::Gateway;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Channel;

const ACCOUNTS: usize = 64;

/// The allocator `quota serve --grpc-listen` runs with (crates/quota-cli):
/// both servers allocate through it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The floor: the same service, answering OK without deciding anything.
struct Bare;

#[tonic::async_trait]
impl RateLimitService for Bare {
    async fn should_rate_limit(
        &self,
        _: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        Ok(tonic::Response::new(RateLimitResponse {
            overall_code: Code::Ok.into(),
            ..RateLimitResponse::default()
        }))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Ok(calls) = std::env::var("RLS_CALLS") {
        return fixed_calls(&args, &calls);
    }
    let mut args = args.into_iter();
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3.0);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let round = Duration::from_secs_f64(secs);

    let servers = server_runtime()?;
    let (bare, quota, keys) = servers.block_on(start_servers())?;

    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    println!(
        "in flight | server | calls/s | p50 µs | p99 µs   (median of {rounds} rounds of {secs} s)"
    );
    for in_flight in [1usize, 16, 64] {
        let mut results: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
        for r in 0..rounds {
            // Alternate which goes first, so that drift hurts both alike.
            let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let addr = if which == 0 { bare } else { quota };
                let res = client.block_on(load(addr, in_flight, round, keys.clone()))?;
                results[which].push(res);
            }
        }
        let [b, q] = results.map(|mut rs| median(&mut rs));
        println!(
            "{in_flight:>9} | bare   | {:>7.0} | {:>6.0} | {:>6.0}",
            b.rate, b.p50, b.p99
        );
        println!(
            "{in_flight:>9} | quota  | {:>7.0} | {:>6.0} | {:>6.0}",
            q.rate, q.p50, q.p99
        );
        println!(
            "{in_flight:>9} | quota / bare calls/s: {:.3}",
            q.rate / b.rate
        );
    }
    Ok(())
}

/// The servers' runtime: one worker thread, named for a profiler.
fn server_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("rls-server")
        .enable_all()
        .build()
}

/// `RLS_CALLS` calls to the server `--only` names, then exits.
fn fixed_calls(args: &[String], calls: &str) -> Result<(), Box<dyn std::error::Error>> {
    let calls: usize = calls.parse().map_err(|_| "RLS_CALLS: a number of calls")?;
    let in_flight: usize = match std::env::var("RLS_IN_FLIGHT") {
        Ok(n) => n.parse().map_err(|_| "RLS_IN_FLIGHT: a number")?,
        Err(_) => 64,
    };
    let only = match args {
        [flag, which] if flag == "--only" && (which == "quota" || which == "bare") => which,
        _ => return Err("with RLS_CALLS: --only quota, or --only bare".into()),
    };
    let servers = server_runtime()?;
    let (bare, quota, keys) = servers.block_on(start_servers())?;
    let addr = if only == "bare" { bare } else { quota };
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let made = client.block_on(load_n(addr, in_flight.max(1), calls, keys))?;
    println!(
        "{made} calls to {only} at {in_flight} in flight in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `in_flight` callers on one channel making `calls` calls in all.
async fn load_n(
    addr: SocketAddr,
    in_flight: usize,
    calls: usize,
    keys: Arc<Vec<String>>,
) -> Result<usize, Box<dyn std::error::Error>> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let mut client = RateLimitServiceClient::new(channel.clone());
        let next = Arc::clone(&next);
        let keys = Arc::clone(&keys);
        tasks.push(tokio::spawn(async move {
            let mut made = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    return Ok::<_, String>(made);
                }
                match client
                    .should_rate_limit(request(&keys[i % keys.len()]))
                    .await
                {
                    Ok(r) if r.get_ref().overall_code == Code::Ok as i32 => made += 1,
                    other => return Err(format!("unexpected answer: {other:?}")),
                }
            }
        }));
    }
    let mut made = 0;
    for task in tasks {
        made += task.await??;
    }
    Ok(made)
}

async fn start_servers(
) -> Result<(SocketAddr, SocketAddr, Arc<Vec<String>>), Box<dyn std::error::Error>> {
    let bare_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare = bare_listener.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RateLimitServiceServer::new(Bare))
            .serve_with_incoming(TcpIncoming::from(bare_listener).with_nodelay(Some(true))),
    );

    let policy = Policy::parse(include_str!("../policies/permissive.toml"))?;
    let gateway = Gateway::builder(policy)
        .upstream("http://127.0.0.1:9".parse()?)
        .build()?;
    let mut keys = Vec::new();
    for i in 0..ACCOUNTS {
        let key = format!("qk_bench_{i:04}");
        let new = NewAccount {
            id: format!("acct-{i}"),
            api_key: key.clone(),
            tier: "basic".into(),
            credit: Money::ZERO,
        };
        gateway.accounts().create(new, Timestamp::EPOCH).await?;
        keys.push(key);
    }
    let quota_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let quota = quota_listener.local_addr()?;
    let rls = gateway.rls("quota");
    tokio::spawn(rls.serve(quota_listener, std::future::pending()));
    // The gateway itself is not served: only its rate limit service.
    std::mem::forget(gateway);
    Ok((bare, quota, Arc::new(keys)))
}

#[derive(Clone, Copy)]
struct Round {
    rate: f64,
    p50: f64,
    p99: f64,
}

fn median(rs: &mut [Round]) -> Round {
    let mid = rs.len() / 2;
    let pick = |rs: &mut [Round], f: fn(&Round) -> f64| {
        rs.sort_by(|a, b| f(a).total_cmp(&f(b)));
        f(&rs[mid])
    };
    Round {
        rate: pick(rs, |r| r.rate),
        p50: pick(rs, |r| r.p50),
        p99: pick(rs, |r| r.p99),
    }
}

/// `in_flight` callers, each on its own HTTP/2 connection's clone (one
/// channel, as Envoy multiplexes), calling for `round`.
async fn load(
    addr: SocketAddr,
    in_flight: usize,
    round: Duration,
    keys: Arc<Vec<String>>,
) -> Result<Round, Box<dyn std::error::Error>> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..in_flight {
        let mut client = RateLimitServiceClient::new(channel.clone());
        let stop = Arc::clone(&stop);
        let keys = Arc::clone(&keys);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let req = request(&keys[i % keys.len()]);
                i += 1;
                let started = Instant::now();
                let res = client.should_rate_limit(req).await;
                let took = started.elapsed();
                match res {
                    Ok(r) if r.get_ref().overall_code == Code::Ok as i32 => latencies.push(took),
                    other => return Err(format!("unexpected answer: {other:?}")),
                }
            }
            Ok(latencies)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(round).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let at = |q: f64| {
        let i = ((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1));
        all.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Ok(Round {
        rate: all.len() as f64 / elapsed,
        p50: at(0.50),
        p99: at(0.99),
    })
}

fn request(key: &str) -> RateLimitRequest {
    let entry = |k: &str, v: &str| Entry {
        key: k.to_owned(),
        value: v.to_owned(),
    };
    RateLimitRequest {
        domain: "quota".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![entry("api_key", key), entry("endpoint", "txt2img")],
            ..RateLimitDescriptor::default()
        }],
        hits_addend: 1,
    }
}
