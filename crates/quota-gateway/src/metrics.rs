//! Prometheus metrics, written by hand in the text exposition format.
//!
//! Series:
//! - `quota_decisions_total{tier,endpoint,outcome,limit_type}`: every
//!   request the enforcement layer answered or let through;
//! - `quota_decision_duration_seconds`: a histogram of decision latency;
//! - `quota_upstream_errors_total{kind}`: `unreachable` (502) and `timeout` (504);
//! - `quota_store_errors_total`: decisions the store could not make;
//! - `quota_edge_refusals_total{status}`: requests refused at the edge,
//!   before any route (`400` a bad `Host`, target or transfer coding, `405`
//!   a method the gateway does not serve, `501` codings before `chunked`);
//! - `quota_policy_reloads_total{result}`: `ok` or `refused`;
//! - `quota_store_info{backend,mode}`: 1 for the store in use; `mode` is
//!   `ok`, or on Redis while it does not answer `fallback` (failure policy
//!   `open` or `local:N`) or `unavailable` (`closed`);
//! - on Redis, the store's own counters: `quota_redis_up`,
//!   `quota_redis_decisions_total`, `quota_redis_fallback_decisions_total`,
//!   `quota_redis_errors_total`, `quota_redis_timeouts_total`.

use crate::http1::edge::Refusal;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use hashbrown::{Equivalent, HashMap};

use quota_redis::StoreHealth;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.1, 1.0,
];

/// [`BUCKETS`] in nanoseconds.
const BUCKETS_NANOS: [u64; BUCKETS.len()] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
    1_000_000_000,
];

/// The labels of `quota_decisions_total`, owned. Fields in the order of
/// [`Labels`]: both hash alike, so a decision is counted without allocating.
#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct DecisionKey {
    tier: Box<str>,
    endpoint: Box<str>,
    outcome: &'static str,
    limit_type: Box<str>,
}

/// The labels of one decision, borrowed.
#[derive(Hash)]
struct Labels<'a> {
    tier: &'a str,
    endpoint: &'a str,
    outcome: &'a str,
    limit_type: &'a str,
}

impl Equivalent<DecisionKey> for Labels<'_> {
    fn equivalent(&self, key: &DecisionKey) -> bool {
        *self.tier == *key.tier
            && *self.endpoint == *key.endpoint
            && self.outcome == key.outcome
            && *self.limit_type == *key.limit_type
    }
}

type Decisions = HashMap<DecisionKey, AtomicU64, foldhash::fast::RandomState>;

/// The gateway's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// One counter per label set; the lock is taken for writing only the
    /// first time a label set is seen.
    decisions: RwLock<Decisions>,
    /// Decisions per latency bucket (not cumulative; the last one is over
    /// the largest bound).
    latency_buckets: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_nanos: AtomicU64,
    upstream_unreachable: AtomicU64,
    upstream_timeout: AtomicU64,
    store_errors: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_refused: AtomicU64,
    /// Edge refusals: 400, 405, 501.
    edge_refusals: [AtomicU64; 3],
}

/// The statuses of `quota_edge_refusals_total`, in the order of
/// `Metrics::edge_refusals`.
const EDGE_STATUSES: [&str; 3] = ["400", "405", "501"];

fn edge_index(refusal: Refusal) -> usize {
    match refusal {
        Refusal::BadRequest(_) => 0,
        Refusal::MethodNotAllowed => 1,
        Refusal::NotImplemented(_) => 2,
    }
}

/// Why the upstream failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    /// Connection refused, reset, bad response (502).
    Unreachable,
    /// No response headers in time (504).
    Timeout,
}

impl Metrics {
    /// A decision: `outcome` is `admitted`, `refused`, `shadow_refused`,
    /// `unauthorized`, `not_found`, `payment_required`, `too_large`, ...;
    /// `limit_type` the refusing limit's name (`none` when admitted).
    pub(crate) fn record_decision(
        &self,
        tier: &str,
        endpoint: &str,
        outcome: &'static str,
        limit_type: &str,
        took: Duration,
    ) {
        let labels = Labels {
            tier,
            endpoint,
            outcome,
            limit_type,
        };
        let counted = self
            .decisions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&labels)
            .map(|n| n.fetch_add(1, Ordering::Relaxed))
            .is_some();
        if !counted {
            let mut map = self
                .decisions
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let key = DecisionKey {
                tier: tier.into(),
                endpoint: endpoint.into(),
                outcome,
                limit_type: limit_type.into(),
            };
            map.entry(key).or_default().fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_NANOS
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// An upstream failure.
    pub(crate) fn record_upstream_error(&self, kind: UpstreamError) {
        match kind {
            UpstreamError::Unreachable => &self.upstream_unreachable,
            UpstreamError::Timeout => &self.upstream_timeout,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// A request refused at the edge.
    pub(crate) fn record_edge_refusal(&self, refusal: Refusal) {
        self.edge_refusals[edge_index(refusal)].fetch_add(1, Ordering::Relaxed);
    }

    /// A store failure.
    pub(crate) fn record_store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A policy reload attempt.
    pub(crate) fn record_reload(&self, ok: bool) {
        if ok {
            &self.reloads_ok
        } else {
            &self.reloads_refused
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition, with the store's backend and mode (and, on
    /// Redis, what the Redis store has been doing).
    pub(crate) fn render(
        &self,
        store_backend: &str,
        store_mode: &str,
        redis: Option<StoreHealth>,
    ) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP quota_decisions_total Requests decided by the gateway.\n");
        out.push_str("# TYPE quota_decisions_total counter\n");
        {
            let map = self
                .decisions
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let mut rows: Vec<_> = map.iter().collect();
            rows.sort_by(|a, b| a.0.cmp(b.0));
            for (key, n) in rows {
                let n = n.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "quota_decisions_total{{tier=\"{}\",endpoint=\"{}\",outcome=\"{}\",limit_type=\"{}\"}} {n}",
                    esc(&key.tier),
                    esc(&key.endpoint),
                    key.outcome,
                    esc(&key.limit_type)
                );
            }
        }
        out.push_str("# HELP quota_decision_duration_seconds Time to decide a request (identity, credit and limits).\n");
        out.push_str("# TYPE quota_decision_duration_seconds histogram\n");
        let mut count = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            count += self.latency_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "quota_decision_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        count += self.latency_buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "quota_decision_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "quota_decision_duration_seconds_sum {sum}");
        let _ = writeln!(out, "quota_decision_duration_seconds_count {count}");
        out.push_str(
            "# HELP quota_upstream_errors_total Requests the upstream could not answer.\n",
        );
        out.push_str("# TYPE quota_upstream_errors_total counter\n");
        let _ = writeln!(
            out,
            "quota_upstream_errors_total{{kind=\"unreachable\"}} {}",
            self.upstream_unreachable.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "quota_upstream_errors_total{{kind=\"timeout\"}} {}",
            self.upstream_timeout.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP quota_edge_refusals_total Requests refused at the edge, before any route.\n",
        );
        out.push_str("# TYPE quota_edge_refusals_total counter\n");
        for (status, n) in EDGE_STATUSES.iter().zip(&self.edge_refusals) {
            let _ = writeln!(
                out,
                "quota_edge_refusals_total{{status=\"{status}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP quota_store_errors_total Decisions the counter store could not make.\n",
        );
        out.push_str("# TYPE quota_store_errors_total counter\n");
        let _ = writeln!(
            out,
            "quota_store_errors_total {}",
            self.store_errors.load(Ordering::Relaxed)
        );
        out.push_str("# HELP quota_policy_reloads_total Policy reloads, applied or refused.\n");
        out.push_str("# TYPE quota_policy_reloads_total counter\n");
        let _ = writeln!(
            out,
            "quota_policy_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "quota_policy_reloads_total{{result=\"refused\"}} {}",
            self.reloads_refused.load(Ordering::Relaxed)
        );
        out.push_str("# HELP quota_store_info The counter store in use and its mode.\n");
        out.push_str("# TYPE quota_store_info gauge\n");
        let _ = writeln!(
            out,
            "quota_store_info{{backend=\"{}\",mode=\"{}\"}} 1",
            esc(store_backend),
            esc(store_mode)
        );
        if let Some(h) = redis {
            render_redis(&mut out, &h);
        }
        out
    }
}

/// The Redis store's own counters.
fn render_redis(out: &mut String, h: &StoreHealth) {
    let series: [(&str, &str, &str, u64); 5] = [
        (
            "quota_redis_up",
            "gauge",
            "1 when the last Redis call succeeded.",
            u64::from(h.redis_ok),
        ),
        (
            "quota_redis_decisions_total",
            "counter",
            "Decisions Redis answered.",
            h.redis_decisions,
        ),
        (
            "quota_redis_fallback_decisions_total",
            "counter",
            "Decisions the failure policy answered while Redis could not.",
            h.fallback_decisions,
        ),
        (
            "quota_redis_errors_total",
            "counter",
            "Redis calls that failed.",
            h.errors,
        ),
        (
            "quota_redis_timeouts_total",
            "counter",
            "Redis calls that timed out.",
            h.timeouts,
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(
            out,
            "{name}{{failure_policy=\"{}\"}} {value}",
            h.failure_policy
        );
    }
}

/// Escapes a label value.
fn esc(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn decisions_are_counted_per_label_set() {
        let m = Metrics::default();
        m.record_decision(
            "basic",
            "txt2img",
            "admitted",
            "none",
            Duration::from_micros(3),
        );
        m.record_decision(
            "basic",
            "txt2img",
            "admitted",
            "none",
            Duration::from_micros(30),
        );
        m.record_decision(
            "basic",
            "txt2img",
            "refused",
            "minute",
            Duration::from_micros(3),
        );
        let text = m.render("memory", "ok", None);
        assert!(text.contains(
            "quota_decisions_total{tier=\"basic\",endpoint=\"txt2img\",outcome=\"admitted\",limit_type=\"none\"} 2"
        ));
        assert!(text.contains("outcome=\"refused\",limit_type=\"minute\"} 1"));
        assert!(text.contains("quota_decision_duration_seconds_bucket{le=\"0.000005\"} 2"));
        assert!(text.contains("quota_decision_duration_seconds_count 3"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
