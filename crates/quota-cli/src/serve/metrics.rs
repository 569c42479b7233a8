//! Prometheus metrics, written by hand in the text exposition format.
//!
//! Series:
//! - `quota_decisions_total{tier,endpoint,outcome,limit_type}`: every
//!   request the enforcement layer answered or let through;
//! - `quota_decision_duration_seconds`: a histogram of decision latency;
//! - `quota_upstream_errors_total{kind}`: `unreachable` (502) and `timeout` (504);
//! - `quota_store_errors_total`: decisions the store could not make;
//! - `quota_policy_reloads_total{result}`: `ok` or `refused`;
//! - `quota_store_info{backend,mode}`: 1 for the store in use; `mode` is
//!   `ok`, or on Redis while it does not answer `fallback` (failure policy
//!   `open` or `local:N`) or `unavailable` (`closed`);
//! - on Redis, the store's own counters: `quota_redis_up`,
//!   `quota_redis_decisions_total`, `quota_redis_fallback_decisions_total`,
//!   `quota_redis_errors_total`, `quota_redis_timeouts_total`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use quota_redis::StoreHealth;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.1, 1.0,
];

type DecisionKey = (Box<str>, Box<str>, &'static str, Box<str>);

/// The gateway's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    decisions: Mutex<HashMap<DecisionKey, u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
    upstream_unreachable: AtomicU64,
    upstream_timeout: AtomicU64,
    store_errors: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_refused: AtomicU64,
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
        {
            let mut map = self
                .decisions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *map.entry((tier.into(), endpoint.into(), outcome, limit_type.into()))
                .or_insert(0) += 1;
        }
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// An upstream failure.
    pub(crate) fn record_upstream_error(&self, kind: UpstreamError) {
        match kind {
            UpstreamError::Unreachable => &self.upstream_unreachable,
            UpstreamError::Timeout => &self.upstream_timeout,
        }
        .fetch_add(1, Ordering::Relaxed);
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
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let mut rows: Vec<_> = map.iter().collect();
            rows.sort();
            for ((tier, endpoint, outcome, limit_type), n) in rows {
                let _ = writeln!(
                    out,
                    "quota_decisions_total{{tier=\"{}\",endpoint=\"{}\",outcome=\"{}\",limit_type=\"{}\"}} {n}",
                    esc(tier),
                    esc(endpoint),
                    outcome,
                    esc(limit_type)
                );
            }
        }
        out.push_str("# HELP quota_decision_duration_seconds Time to decide a request (identity, credit and limits).\n");
        out.push_str("# TYPE quota_decision_duration_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let n = self.latency_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "quota_decision_duration_seconds_bucket{{le=\"{bound}\"}} {n}"
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
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
