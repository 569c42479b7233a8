//! A failover under steady load, on a Redis Cluster of this test's own
//! (127.0.0.1:7111..7116, three masters and three replicas, every node
//! persisted with an append-only file fsynced on every write), so the other
//! cluster tests are not disturbed. Runs when `QUOTA_REDIS_CLUSTER` is set
//! (`scripts/test.sh`), says that it skips otherwise.
//!
//! Three stores decide steadily for one account, one per failure policy
//! (closed, open, local:2); the master of the account's slot is killed
//! (SIGKILL, by its pid); its replica takes over. Checked: during the gap
//! each store follows its policy (closed: transient errors; open: admitted
//! without counting; local: decided in memory), every store is back on
//! Redis within 60 s, the counts replicated before the kill are all there
//! after it, and the killed node, started again, rejoins as a replica with
//! the same counts. The time to recovery is printed (`docs/redis.md`
//! records what was seen).
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster;
use quota_core::algorithm::Algorithm;
use quota_core::policy::{
    Count, EndpointSpec, LimitSpec, Policy, PolicySpec, Request, TierSpec, WindowLength,
};
use quota_core::{StoreError, Timestamp};
use quota_redis::{Clock, FailurePolicy, RedisConfig, RedisStore, Source};

const BASE: u16 = 7111;
const URL: &str = "redis+cluster://127.0.0.1:7111,127.0.0.1:7112,127.0.0.1:7113";
const LIMIT: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000;
/// The bound on the time to recovery.
const RECOVERY_BOUND: Duration = Duration::from_secs(60);

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../scripts/{name}"))
}

/// The test's own cluster, stopped (its nodes killed, its files removed) on drop.
struct OwnCluster;

impl OwnCluster {
    fn start() -> Self {
        // A fresh one: a cluster left on these ports by an earlier run may
        // have had its failover already.
        let _ = Command::new(script("stop-redis-cluster.sh"))
            .arg(BASE.to_string())
            .status();
        let status = Command::new(script("ensure-redis-cluster.sh"))
            .arg(BASE.to_string())
            .env("QUOTA_CLUSTER_PERSIST", "1")
            .status()
            .expect("run scripts/ensure-redis-cluster.sh");
        assert!(
            status.success(),
            "the failover test's cluster did not start"
        );
        OwnCluster
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new(script("stop-redis-cluster.sh"))
            .arg(BASE.to_string())
            .status();
    }
}

fn policy() -> Policy {
    Policy::new(PolicySpec {
        endpoints: vec![EndpointSpec {
            path: "e".into(),
            price: None,
            priority: None,
        }],
        tiers: vec![TierSpec {
            name: "t".into(),
            granted: None,
            limits: vec![LimitSpec {
                endpoint: Some("e".into()),
                per_match: false,
                name: Some("day".into()),
                window: WindowLength::from_millis(86_400_000),
                count: Count::Limited(LIMIT),
                algorithm: Algorithm::FixedWindow,
            }],
        }],
        uploads: None,
    })
    .unwrap()
}

fn connection(addr: &str) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(format!("redis://{addr}"))?
        .get_connection_with_timeout(Duration::from_secs(1))
}

fn info(addr: &str, section: &str) -> String {
    try_info(addr, section).unwrap_or_else(|| panic!("INFO {section} from {addr}"))
}

fn try_info(addr: &str, section: &str) -> Option<String> {
    redis::cmd("INFO")
        .arg(section)
        .query(&mut connection(addr).ok()?)
        .ok()
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Waits until every replica of `master` has the master's replication offset.
fn wait_for_replicas(master: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = info(master, "replication");
        let offset = field(&r, "master_repl_offset").unwrap().to_owned();
        let replicas: Vec<&str> = r
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains("offset="))
            .collect();
        if !replicas.is_empty()
            && replicas
                .iter()
                .all(|l| l.contains(&format!("offset={offset},")))
        {
            return;
        }
        assert!(Instant::now() < deadline, "replicas of {master} lag: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What one decision of the steady load got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Got {
    Redis,
    Open,
    Local,
    Transient,
}

/// Decides every 5 ms until `stop` is set, recording when and what.
async fn steady(store: RedisStore, account: String, stop: Arc<AtomicBool>) -> Vec<(Instant, Got)> {
    let policy = policy();
    let plan = policy
        .plan(&Request {
            account: &account,
            tier: "t",
            endpoint: "e",
            cost: 1,
        })
        .unwrap();
    let mut seen = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let got = match store
            .decide_detailed(&plan, Timestamp::from_millis(T0))
            .await
        {
            Ok(a) => {
                assert!(a.outcomes[0].admits, "far below the limit");
                match a.source {
                    Source::Redis => Got::Redis,
                    Source::Open => Got::Open,
                    Source::Local => Got::Local,
                    other => panic!("{other:?}"),
                }
            }
            Err(e @ (StoreError::Unavailable { .. } | StoreError::Timeout { .. })) => {
                assert!(e.is_transient());
                Got::Transient
            }
            Err(e) => panic!("not a transient error during the failover: {e}"),
        };
        seen.push((Instant::now(), got));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_fails_over_under_steady_load() {
    if cluster::cluster_url("cluster_failover").is_none() {
        return;
    }
    let _cluster = OwnCluster::start();
    let prefix = common::unique_prefix("failover");
    let account = "failover-acct".to_owned();
    let config = |failure| {
        RedisConfig::default()
            .with_prefix(prefix.clone())
            .with_clock(Clock::Caller)
            .with_ttl_grace(Duration::from_secs(600))
            .with_failure_policy(failure)
    };
    let closed = RedisStore::connect(URL, config(FailurePolicy::Closed))
        .await
        .unwrap();
    let open = RedisStore::connect(URL, config(FailurePolicy::Open))
        .await
        .unwrap();
    let local = RedisStore::connect(URL, config(FailurePolicy::Local { nodes: 2 }))
        .await
        .unwrap();
    // A store that only pings (a gateway's /healthz with no traffic).
    let idle = RedisStore::connect(URL, config(FailurePolicy::Closed))
        .await
        .unwrap();
    assert!(idle.ping().await.is_ok());
    let policy = Arc::new(policy());
    let plan = policy
        .plan(&Request {
            account: &account,
            tier: "t",
            endpoint: "e",
            cost: 1,
        })
        .unwrap();
    let key = closed.plan_keys(&plan)[0].clone();

    // Counts before the failover, replicated.
    const BEFORE: u64 = 200;
    for _ in 0..BEFORE {
        let a = closed
            .decide_detailed(&plan, Timestamp::from_millis(T0))
            .await
            .unwrap();
        assert_eq!(a.source, Source::Redis);
    }
    let slot = cluster::keyslot(URL, &key);
    let master = cluster::nodes(URL)
        .into_iter()
        .find(|n| {
            n.master && {
                let mut c = connection(&n.addr).unwrap();
                let count: i64 = redis::cmd("CLUSTER")
                    .arg("COUNTKEYSINSLOT")
                    .arg(slot)
                    .query(&mut c)
                    .unwrap();
                count > 0
            }
        })
        .expect("the master holding the account's slot");
    wait_for_replicas(&master.addr);
    let pid = field(&info(&master.addr, "server"), "process_id")
        .unwrap()
        .to_owned();
    let dir: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query(&mut connection(&master.addr).unwrap())
        .unwrap();
    let dir = dir[1].clone();

    // Steady load on all three stores; the master dies 1 s in.
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = [closed.clone(), open.clone(), local.clone()]
        .into_iter()
        .map(|s| tokio::spawn(steady(s, account.clone(), Arc::clone(&stop))))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed_at = Instant::now();
    let status = Command::new("kill").args(["-9", &pid]).status().unwrap();
    assert!(status.success(), "kill -9 {pid} ({})", master.addr);

    // Recovered: every store answers from Redis again, 20 times in a row.
    let deadline = killed_at + RECOVERY_BOUND;
    let recovered_at = loop {
        let mut streak = 0;
        let mut first = None;
        while streak < 20 {
            match closed
                .decide_detailed(&plan, Timestamp::from_millis(T0))
                .await
            {
                Ok(a) if a.source == Source::Redis => {
                    first.get_or_insert_with(Instant::now);
                    streak += 1;
                }
                _ => break,
            }
        }
        if streak == 20 {
            break first.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no recovery within {RECOVERY_BOUND:?} after the kill"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Let the load run on a little past the recovery, then stop it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for l in loads {
        seen.push(l.await.unwrap());
    }
    let recovery = recovered_at - killed_at;
    // The idle store's PING (every master) answers again too, without a
    // decision of its own to show it the new master.
    let idle_deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = idle.ping().await {
        assert!(
            Instant::now() < idle_deadline,
            "PING through an idle store still fails 10 s after the recovery: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle_back = recovered_at.elapsed();
    for (name, s, gap) in [
        ("closed", &seen[0], Got::Transient),
        ("open", &seen[1], Got::Open),
        ("local", &seen[2], Got::Local),
    ] {
        let before: Vec<_> = s
            .iter()
            .filter(|(t, _)| *t < killed_at)
            .map(|(_, g)| *g)
            .collect();
        assert!(
            !before.is_empty() && before.iter().all(|g| *g == Got::Redis),
            "{name}: Redis before the kill: {before:?}"
        );
        let during: Vec<_> = s
            .iter()
            .filter(|(t, _)| *t > killed_at && *t < recovered_at)
            .map(|(_, g)| *g)
            .collect();
        assert!(during.contains(&gap), "{name}: {gap:?} during the gap");
        assert!(
            during.iter().all(|g| *g == gap || *g == Got::Redis),
            "{name}: only {gap:?} or Redis during the gap: {during:?}"
        );
        let last: Vec<_> = s.iter().rev().take(20).map(|(_, g)| *g).collect();
        assert!(
            last.iter().all(|g| *g == Got::Redis),
            "{name}: back on Redis: {last:?}"
        );
    }

    // During the gap each store followed its policy.
    let closed_h = closed.health();
    let open_h = open.health();
    let local_h = local.health();
    assert!(
        closed_h.errors > 0,
        "the closed store saw the gap: {closed_h:?}"
    );
    assert_eq!(closed_h.fallback_decisions, 0);
    assert!(
        open_h.fallback_decisions > 0,
        "the open store admitted during the gap: {open_h:?}"
    );
    assert!(
        local_h.fallback_decisions > 0,
        "the local store decided in memory during the gap: {local_h:?}"
    );

    // Nothing replicated before the kill was lost: the count holds at least
    // those, and at most every decision Redis answered plus those whose
    // answer never came: timed out, or in flight when the master died (one
    // per load task; the master may have run and replicated it). Those may
    // cost budget; an answered one is never counted twice.
    let answered_by_redis =
        closed_h.redis_decisions + open_h.redis_decisions + local_h.redis_decisions;
    let timed_out = closed_h.timeouts + open_h.timeouts + local_h.timeouts;
    let peek = closed
        .peek_detailed(&plan, Timestamp::from_millis(T0))
        .await
        .unwrap();
    // A peek reports what would remain after it: one unit less than now.
    let counted = LIMIT - peek.outcomes[0].remaining - 1;
    eprintln!(
        "failover: recovery {} ms after the kill (an idle store's PING ok again within {} ms of it); during the gap: closed {} errors ({} timeouts), \
         open {} admitted uncounted, local {} decided in memory; counted {counted}: {answered_by_redis} \
         decisions answered by Redis, {timed_out} timed out",
        recovery.as_millis(),
        idle_back.as_millis(),
        closed_h.errors,
        closed_h.timeouts,
        open_h.fallback_decisions,
        local_h.fallback_decisions,
    );
    assert!(
        counted >= BEFORE,
        "{counted} counted, {BEFORE} were replicated before the kill"
    );
    let in_flight_at_the_kill = 3;
    assert!(
        counted <= answered_by_redis + timed_out + in_flight_at_the_kill,
        "{counted} counted, {answered_by_redis} answered by Redis, {timed_out} timed out"
    );
    assert!(recovery < RECOVERY_BOUND);

    // The killed node, started again from its append-only file, rejoins as a
    // replica of the new master and holds the same count.
    let port = master.addr.rsplit_once(':').unwrap().1.to_owned();
    let status = Command::new("redis-server")
        .args([
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--dir",
            &dir,
            "--pidfile",
            &format!("{dir}/redis.pid"),
            "--logfile",
            &format!("{dir}/redis.log"),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "1000",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let value_on = |addr: &str| -> Option<String> {
        let mut c = connection(addr).ok()?;
        let _: () = redis::cmd("READONLY").query(&mut c).ok()?;
        redis::cmd("GET").arg(&key).query(&mut c).ok()?
    };
    let new_master = loop {
        let nodes = cluster::nodes(URL);
        let me = nodes.iter().find(|n| n.addr == master.addr);
        let linked = try_info(&master.addr, "replication")
            .is_some_and(|r| r.contains("master_link_status:up"));
        if let Some(me) = me.filter(|n| !n.master && !n.failed && linked) {
            let m = nodes
                .iter()
                .find(|n| n.id == me.master_id)
                .unwrap()
                .addr
                .clone();
            wait_for_replicas(&m);
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node did not rejoin: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let on_master = value_on(&new_master).unwrap();
    assert_eq!(
        value_on(&master.addr),
        Some(on_master.clone()),
        "the rejoined replica holds the count"
    );
    assert!(
        on_master.ends_with(&format!(":{counted}")),
        "{on_master} vs {counted}"
    );
}
