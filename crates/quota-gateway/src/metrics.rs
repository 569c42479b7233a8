//! Prometheus metrics, kept and encoded by `prometheus-client` (a
//! [`Registry`] of [`Family`]s with typed label sets) in the Prometheus text
//! format, version 0.0.4 ([`CONTENT_TYPE`]).
//!
//! Series:
//! - `quota_decisions_total{tier,endpoint,outcome,limit_type}`: every
//!   request the enforcement layer answered or let through;
//! - `quota_decision_duration_seconds`: a histogram of decision latency;
//! - `quota_upstream_errors_total{kind}`: `unreachable` (502) and `timeout` (504);
//! - `quota_refunds_total{reason}`: admitted requests given back their
//!   units and credit because the upstream failed (`unreachable`, a 502;
//!   `timeout`, a 504; `5xx`, the upstream's own 5xx with `--refund-on
//!   unreachable,5xx`);
//! - `quota_store_errors_total`: decisions the store could not make;
//! - `quota_edge_refusals_total{status}`: requests refused at the edge,
//!   before any route (`400` a bad `Host`, target or transfer coding, `405`
//!   a method the gateway does not serve, `501` codings before `chunked`);
//! - `quota_policy_reloads_total{result}`: `ok` or `refused`;
//! - `quota_access_log_dropped_total`: with an access log, records dropped
//!   because its writer fell behind;
//! - `quota_store_info{backend,mode}`: 1 for the store in use; `mode` is
//!   `ok`, or on Redis while it does not answer `fallback` (failure policy
//!   `open` or `local:N`) or `unavailable` (`closed`);
//! - on Redis, the store's own counters: `quota_redis_up`,
//!   `quota_redis_decisions_total`, `quota_redis_fallback_decisions_total`,
//!   `quota_redis_errors_total`, `quota_redis_timeouts_total`.
//!
//! Recording costs a few atomic operations: every counter a request can
//! touch is a handle resolved before the request comes (the fixed label sets
//! when [`Metrics`] is made; the decisions' per policy, in a table indexed by
//! tier, endpoint, outcome and limit that is rebuilt when the policy reloads,
//! each handle made the first time its label set is used). No label set is
//! hashed and no label string is built per request, except for a decision
//! whose tier, endpoint or limit the policy does not name (an account on a
//! tier the policy lacks), which goes through the [`Family`] itself.
//!
//! What the format imposes, against the hand-written exposition this module
//! replaced (same names, types, help texts and label sets otherwise):
//! - the histogram's `le` labels under `1e-4` are written as Go writes them
//!   (`5e-06`, `1e-05`, `2.5e-05`, `5e-05`, where `0.000005`, `0.00001`,
//!   `0.000025`, `0.00005` were): `prometheus-client` formats every bucket
//!   bound itself. The same numbers, which `histogram_quantile` reads
//!   alike; but a query naming one of those four values literally (a
//!   label match on the string) finds a different series;
//! - the histogram's `_sum` is written by `dtoa` (`0.0` for `0`, `3.6e-5`
//!   for `0.000036`): a sample value, the same number;
//! - the series of a family come in no particular order (they were sorted);
//! - the `Content-Type` gains `; charset=utf-8` ([`CONTENT_TYPE`], Go's).

use std::sync::Arc;
use std::time::Duration;

use crate::http1::edge::Refusal;
use arc_swap::ArcSwap;
use prometheus_client::encoding::{
    prometheus_text, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    MetricEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use quota_core::admission::RefundReason;
use quota_redis::StoreHealth;
use quota_transport::enforce::PolicyHandle;

use decisions::{DecisionLabels, Table};
use latency::Latency;
use store::StoreState;

/// The `Content-Type` of [`Metrics::render`]'s text: the Prometheus text
/// format, version 0.0.4.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The `tier` or `endpoint` of a decision made before either was known.
const UNKNOWN: &str = "unknown";

/// The `limit_type` of a decision no limit refused.
const NO_LIMIT: &str = "none";

/// The `outcome` label of `quota_decisions_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DecisionOutcome {
    /// Passed on to the upstream.
    Admitted,
    /// A rate limit refused it (429).
    Refused,
    /// A rate limit would have refused it (shadow mode).
    ShadowRefused,
    /// No key, or an unknown one (401).
    Unauthorized,
    /// No such endpoint (404).
    NotFound,
    /// Out of credit (402).
    PaymentRequired,
    /// An upload over its limit (413).
    TooLarge,
    /// An upload of the wrong kind (422).
    Unprocessable,
    /// Any other refusal (400).
    BadRequest,
    /// The counter store could not decide (503).
    StoreError,
    /// Any other failure (500).
    Error,
}

impl DecisionOutcome {
    /// Every outcome, in the order of their discriminants.
    const ALL: [DecisionOutcome; 11] = [
        DecisionOutcome::Admitted,
        DecisionOutcome::Refused,
        DecisionOutcome::ShadowRefused,
        DecisionOutcome::Unauthorized,
        DecisionOutcome::NotFound,
        DecisionOutcome::PaymentRequired,
        DecisionOutcome::TooLarge,
        DecisionOutcome::Unprocessable,
        DecisionOutcome::BadRequest,
        DecisionOutcome::StoreError,
        DecisionOutcome::Error,
    ];

    /// The label value: `admitted`, `refused`, `shadow_refused`, ...
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            DecisionOutcome::Admitted => "admitted",
            DecisionOutcome::Refused => "refused",
            DecisionOutcome::ShadowRefused => "shadow_refused",
            DecisionOutcome::Unauthorized => "unauthorized",
            DecisionOutcome::NotFound => "not_found",
            DecisionOutcome::PaymentRequired => "payment_required",
            DecisionOutcome::TooLarge => "too_large",
            DecisionOutcome::Unprocessable => "unprocessable",
            DecisionOutcome::BadRequest => "bad_request",
            DecisionOutcome::StoreError => "store_error",
            DecisionOutcome::Error => "error",
        }
    }
}

impl EncodeLabelValue for DecisionOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Why the upstream failed: the `kind` of `quota_upstream_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum UpstreamError {
    /// Connection refused, reset, bad response (502).
    Unreachable,
    /// No response headers in time (504).
    Timeout,
}

impl UpstreamError {
    /// Every kind, in the order of their discriminants.
    const ALL: [UpstreamError; 2] = [UpstreamError::Unreachable, UpstreamError::Timeout];
}

impl EncodeLabelValue for UpstreamError {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        let value = match self {
            UpstreamError::Unreachable => "unreachable",
            UpstreamError::Timeout => "timeout",
        };
        std::fmt::Write::write_str(encoder, value)
    }
}

/// The labels of `quota_upstream_errors_total`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    kind: UpstreamError,
}

/// The labels of `quota_refunds_total`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefundLabels {
    reason: RefundLabel,
}

/// A [`RefundReason`] as a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct RefundLabel(RefundReason);

impl EncodeLabelValue for RefundLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, self.0.as_str())
    }
}

/// The `status` of `quota_edge_refusals_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum EdgeStatus {
    /// `400`: a bad `Host`, target or transfer coding.
    BadRequest,
    /// `405`: a method the gateway does not serve.
    MethodNotAllowed,
    /// `501`: codings before `chunked`.
    NotImplemented,
}

impl EdgeStatus {
    /// Every status, in the order of their discriminants.
    const ALL: [EdgeStatus; 3] = [
        EdgeStatus::BadRequest,
        EdgeStatus::MethodNotAllowed,
        EdgeStatus::NotImplemented,
    ];

    /// The status `refusal` is answered with.
    const fn of(refusal: Refusal) -> Self {
        match refusal {
            Refusal::BadRequest(_) => EdgeStatus::BadRequest,
            Refusal::MethodNotAllowed => EdgeStatus::MethodNotAllowed,
            Refusal::NotImplemented(_) => EdgeStatus::NotImplemented,
        }
    }
}

impl EncodeLabelValue for EdgeStatus {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        let value = match self {
            EdgeStatus::BadRequest => "400",
            EdgeStatus::MethodNotAllowed => "405",
            EdgeStatus::NotImplemented => "501",
        };
        std::fmt::Write::write_str(encoder, value)
    }
}

/// The labels of `quota_edge_refusals_total`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EdgeLabels {
    status: EdgeStatus,
}

/// The `result` of `quota_policy_reloads_total`: `ok` or `refused`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ReloadResult(bool);

impl EncodeLabelValue for ReloadResult {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, if self.0 { "ok" } else { "refused" })
    }
}

/// The labels of `quota_policy_reloads_total`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: ReloadResult,
}

/// A metric whose `# HELP` and `# TYPE` lines are written even while it has
/// no series (a [`Family`] alone leaves them out until its first one).
#[derive(Debug)]
struct Described<M>(M);

impl<M: EncodeMetric> EncodeMetric for Described<M> {
    fn encode(&self, encoder: MetricEncoder<'_>) -> std::fmt::Result {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

/// The gateway's metrics: the registry `/metrics` renders, and a handle on
/// each of its counters.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// `quota_decisions_total`, every label set seen.
    decisions: Family<DecisionLabels, Counter>,
    /// The decision counters of the policy in force.
    table: ArcSwap<Table>,
    /// The policy in force, read again after each reload.
    policy: PolicyHandle,
    latency: Latency,
    /// In the order of [`UpstreamError::ALL`].
    upstream_errors: [Counter; 2],
    /// In the order of [`RefundReason::ALL`].
    refunds: [Counter; 4],
    /// In the order of [`EdgeStatus::ALL`].
    edge_refusals: [Counter; 3],
    store_errors: Counter,
    /// Refused, then applied.
    reloads: [Counter; 2],
}

impl Metrics {
    /// The metrics of a gateway enforcing `policy` (kept to follow its
    /// reloads, see [`Metrics::record_reload`]), every counter at zero.
    pub(crate) fn new(policy: PolicyHandle) -> Self {
        let mut registry = Registry::default();
        // Help texts without their final period: the registry adds one.
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "quota_decisions",
            "Requests decided by the gateway",
            Described(decisions.clone()),
        );
        let latency = Latency::default();
        registry.register_with_unit(
            "quota_decision_duration",
            "Time to decide a request (identity, credit and limits)",
            Unit::Seconds,
            latency.clone(),
        );
        let upstream = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "quota_upstream_errors",
            "Requests the upstream could not answer",
            upstream.clone(),
        );
        let refunds = Family::<RefundLabels, Counter>::default();
        registry.register(
            "quota_refunds",
            "Admitted requests given back their units and credit because the upstream failed",
            refunds.clone(),
        );
        let edge = Family::<EdgeLabels, Counter>::default();
        registry.register(
            "quota_edge_refusals",
            "Requests refused at the edge, before any route",
            edge.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "quota_store_errors",
            "Decisions the counter store could not make",
            store_errors.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "quota_policy_reloads",
            "Policy reloads, applied or refused",
            reloads.clone(),
        );
        let table = ArcSwap::from_pointee(Table::new(&policy.load()));
        Metrics {
            registry,
            decisions,
            table,
            policy,
            latency,
            upstream_errors: UpstreamError::ALL
                .map(|kind| upstream.get_or_create_owned(&UpstreamLabels { kind })),
            refunds: RefundReason::ALL.map(|reason| {
                refunds.get_or_create_owned(&RefundLabels {
                    reason: RefundLabel(reason),
                })
            }),
            edge_refusals: EdgeStatus::ALL
                .map(|status| edge.get_or_create_owned(&EdgeLabels { status })),
            store_errors,
            reloads: [false, true].map(|ok| {
                reloads.get_or_create_owned(&ReloadLabels {
                    result: ReloadResult(ok),
                })
            }),
        }
    }

    /// A decision: its tier and endpoint (`unknown` when not known), what
    /// became of it, the refusing limit's name (`none` when no limit
    /// refused it) and the time it took.
    pub(crate) fn record_decision(
        &self,
        tier: Option<&str>,
        endpoint: Option<&str>,
        outcome: DecisionOutcome,
        limit: Option<&str>,
        took: Duration,
    ) {
        let tier = tier.unwrap_or(UNKNOWN);
        let endpoint = endpoint.unwrap_or(UNKNOWN);
        let limit = limit.unwrap_or(NO_LIMIT);
        match self.table.load().counter(tier, endpoint, outcome, limit) {
            Some(slot) => {
                slot.get_or_init(|| {
                    self.decisions
                        .get_or_create_owned(&DecisionLabels::new(tier, endpoint, outcome, limit))
                })
                .inc();
            }
            // A name the policy does not have: counted by label set.
            None => {
                self.decisions
                    .get_or_create(&DecisionLabels::new(tier, endpoint, outcome, limit))
                    .inc();
            }
        }
        self.latency.observe(took);
    }

    /// An upstream failure.
    pub(crate) fn record_upstream_error(&self, kind: UpstreamError) {
        self.upstream_errors[kind as usize].inc();
    }

    /// A request refunded.
    pub(crate) fn record_refund(&self, reason: RefundReason) {
        let i = RefundReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.refunds[i].inc();
    }

    /// A request refused at the edge.
    pub(crate) fn record_edge_refusal(&self, refusal: Refusal) {
        self.edge_refusals[EdgeStatus::of(refusal) as usize].inc();
    }

    /// A store failure.
    pub(crate) fn record_store_error(&self) {
        self.store_errors.inc();
    }

    /// A policy reload attempt; once one is applied, the decision counters
    /// are resolved again for the policy now in force.
    pub(crate) fn record_reload(&self, ok: bool) {
        self.reloads[usize::from(ok)].inc();
        if ok {
            self.table.store(Arc::new(Table::new(&self.policy.load())));
        }
    }

    /// Adds `quota_access_log_dropped_total`: access log records dropped
    /// because the writer fell behind (only a gateway with an access log
    /// has it).
    pub(crate) fn register_access_log(&mut self, dropped: Counter) {
        self.registry.register(
            "quota_access_log_dropped",
            "Access log records dropped because the writer fell behind",
            dropped,
        );
    }

    /// The text exposition, with the store's backend and mode (and, on
    /// Redis, what the Redis store has been doing).
    pub(crate) fn render(
        &self,
        store_backend: &str,
        store_mode: &str,
        redis: Option<StoreHealth>,
    ) -> String {
        // The store's state is read for this scrape: a registry of its own.
        let mut scrape = Registry::default();
        scrape.register_collector(Box::new(StoreState::new(store_backend, store_mode, redis)));
        let mut out = String::with_capacity(4096);
        let encoded = prometheus_text::encode(&mut out, &self.registry)
            .and_then(|()| prometheus_text::encode(&mut out, &scrape));
        // Writing to a String does not fail, nor does any metric here.
        if encoded.is_err() {
            tracing::error!("the metrics could not all be encoded");
        }
        out
    }
}

/// The decision counters of one policy.
mod decisions {
    use std::sync::OnceLock;

    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use quota_core::policy::Policy;

    use super::{DecisionOutcome, NO_LIMIT, UNKNOWN};
    use crate::routes::Route;

    /// The labels of `quota_decisions_total`.
    #[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
    pub(super) struct DecisionLabels {
        tier: String,
        endpoint: String,
        outcome: DecisionOutcome,
        limit_type: String,
    }

    impl DecisionLabels {
        /// The label set of one decision.
        pub(super) fn new(
            tier: &str,
            endpoint: &str,
            outcome: DecisionOutcome,
            limit_type: &str,
        ) -> Self {
            DecisionLabels {
                tier: tier.to_owned(),
                endpoint: endpoint.to_owned(),
                outcome,
                limit_type: limit_type.to_owned(),
            }
        }
    }

    /// The values one label takes under a policy, sorted: a value's index
    /// is its place, found by binary search (a few comparisons of short
    /// strings, no hashing).
    #[derive(Debug)]
    struct Names(Box<[Box<str>]>);

    impl Names {
        fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
            let mut names: Vec<Box<str>> = names.into_iter().map(Box::from).collect();
            names.sort_unstable();
            names.dedup();
            Names(names.into_boxed_slice())
        }

        fn find(&self, name: &str) -> Option<usize> {
            self.0.binary_search_by(|n| (**n).cmp(name)).ok()
        }

        fn len(&self) -> usize {
            self.0.len()
        }
    }

    /// A counter handle, made the first time its label set is used.
    pub(super) type Slot = OnceLock<Counter>;

    /// The decision counters of one policy: a slot per tier, endpoint,
    /// outcome and limit it names (and `unknown` tier and endpoint, `none`
    /// limit), grouped in a row per tier and endpoint, each row allocated
    /// when first used.
    #[derive(Debug)]
    pub(super) struct Table {
        tiers: Names,
        endpoints: Names,
        limits: Names,
        /// Indexed by `tier * endpoints.len() + endpoint`; in a row,
        /// `outcome * limits.len() + limit`.
        rows: Box<[OnceLock<Box<[Slot]>>]>,
    }

    impl Table {
        /// The (empty) table of `policy`'s names.
        pub(super) fn new(policy: &Policy) -> Self {
            let tiers = Names::new(policy.tiers().iter().map(|t| t.name()).chain([UNKNOWN]));
            let endpoints = Names::new(
                policy
                    .endpoints()
                    .iter()
                    .map(|e| e.path())
                    .chain(Route::UNMETERED)
                    .chain([UNKNOWN]),
            );
            let limits = Names::new(
                policy
                    .tiers()
                    .iter()
                    .flat_map(|t| t.limits().iter().map(|l| l.name()))
                    .chain([NO_LIMIT]),
            );
            let rows = (0..tiers.len() * endpoints.len())
                .map(|_| OnceLock::new())
                .collect();
            Table {
                tiers,
                endpoints,
                limits,
                rows,
            }
        }

        /// The slot of a decision's counter, or `None` when the policy does
        /// not name its tier, endpoint or limit.
        pub(super) fn counter(
            &self,
            tier: &str,
            endpoint: &str,
            outcome: DecisionOutcome,
            limit: &str,
        ) -> Option<&Slot> {
            let t = self.tiers.find(tier)?;
            let e = self.endpoints.find(endpoint)?;
            let l = self.limits.find(limit)?;
            let width = self.limits.len();
            let row = self
                .rows
                .get(t * self.endpoints.len() + e)?
                .get_or_init(|| {
                    (0..DecisionOutcome::ALL.len() * width)
                        .map(|_| OnceLock::new())
                        .collect()
                });
            row.get(outcome as usize * width + l)
        }
    }
}

/// `quota_decision_duration_seconds`: a histogram of atomic counters (the
/// crate's own `Histogram` takes a lock per observation).
mod latency {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
    use prometheus_client::metrics::MetricType;

    /// Upper bounds of the buckets, in seconds.
    pub(super) const BUCKETS: [f64; 14] = [
        0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5,
        0.005, 0.01, 0.025, 0.1, 1.0,
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

    /// Decision latencies; clones share the counts.
    #[derive(Clone, Debug, Default)]
    pub(super) struct Latency(Arc<Counts>);

    #[derive(Debug, Default)]
    struct Counts {
        /// Observations per bucket (not cumulative; the last one is over
        /// the largest bound).
        buckets: [AtomicU64; BUCKETS.len() + 1],
        sum_nanos: AtomicU64,
    }

    impl Latency {
        /// Counts one decision that took `took`.
        pub(super) fn observe(&self, took: Duration) {
            let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            let bucket = BUCKETS_NANOS
                .iter()
                .position(|bound| nanos <= *bound)
                .unwrap_or(BUCKETS.len());
            self.0.buckets[bucket].fetch_add(1, Ordering::Relaxed);
            self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        }
    }

    impl EncodeMetric for Latency {
        fn encode(&self, mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
            let mut buckets = [(0.0, 0); BUCKETS.len()];
            for ((bucket, bound), n) in buckets.iter_mut().zip(BUCKETS).zip(&self.0.buckets) {
                *bucket = (bound, n.load(Ordering::Relaxed));
            }
            let over = self.0.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let count = buckets.iter().map(|(_, n)| n).sum::<u64>() + over;
            let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
        }

        fn metric_type(&self) -> MetricType {
            MetricType::Histogram
        }
    }
}

/// The counter store's state, read at each scrape.
mod store {
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;
    use prometheus_client::metrics::info::Info;
    use prometheus_client::metrics::MetricType;
    use quota_redis::StoreHealth;

    /// The labels of `quota_store_info`.
    #[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct StoreLabels {
        backend: String,
        mode: String,
    }

    /// The labels of the Redis store's series.
    #[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct RedisLabels {
        failure_policy: String,
    }

    /// The store in use, its mode and, on Redis, its counters.
    #[derive(Debug)]
    pub(super) struct StoreState {
        info: Info<StoreLabels>,
        redis: Option<StoreHealth>,
    }

    impl StoreState {
        /// The state of the store `backend` in `mode`.
        pub(super) fn new(backend: &str, mode: &str, redis: Option<StoreHealth>) -> Self {
            StoreState {
                info: Info::new(StoreLabels {
                    backend: backend.to_owned(),
                    mode: mode.to_owned(),
                }),
                redis,
            }
        }
    }

    impl Collector for StoreState {
        // Help texts with their final period: a collector's are written as
        // given.
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
            self.info.encode(encoder.encode_descriptor(
                "quota_store",
                "The counter store in use and its mode.",
                None,
                self.info.metric_type(),
            )?)?;
            let Some(h) = &self.redis else {
                return Ok(());
            };
            let labels = RedisLabels {
                failure_policy: h.failure_policy.to_string(),
            };
            let up = ConstGauge::new(i64::from(h.redis_ok));
            let mut up_encoder = encoder.encode_descriptor(
                "quota_redis_up",
                "1 when the last Redis call succeeded.",
                None,
                up.metric_type(),
            )?;
            up.encode(up_encoder.encode_family(&labels)?)?;
            let counters = [
                (
                    "quota_redis_decisions",
                    "Decisions Redis answered.",
                    h.redis_decisions,
                ),
                (
                    "quota_redis_fallback_decisions",
                    "Decisions the failure policy answered while Redis could not.",
                    h.fallback_decisions,
                ),
                ("quota_redis_errors", "Redis calls that failed.", h.errors),
                (
                    "quota_redis_timeouts",
                    "Redis calls that timed out.",
                    h.timeouts,
                ),
            ];
            for (name, help, value) in counters {
                let mut family =
                    encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use quota_core::policy::Policy;

    use super::DecisionOutcome::*;
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn seed_metrics() -> Metrics {
        Metrics::new(PolicyHandle::new(Policy::seed()))
    }

    #[test]
    fn decisions_the_policy_names_are_counted_through_the_table() {
        let m = seed_metrics();
        m.record_decision(Some("basic"), Some("txt2img"), Admitted, None, us(3));
        m.record_decision(Some("basic"), Some("txt2img"), Admitted, None, us(3));
        let table = m.table.load();
        let slot = table
            .counter("basic", "txt2img", Admitted, NO_LIMIT)
            .unwrap();
        assert_eq!(slot.get().map(Counter::get), Some(2));
        // Another slot of the same row is still unmade.
        let refused = table
            .counter("basic", "txt2img", Refused, "minute")
            .unwrap();
        assert!(refused.get().is_none());
        assert!(table
            .counter(UNKNOWN, "limits", Unauthorized, NO_LIMIT)
            .is_some());
        // Not in the policy: no slot, counted all the same.
        assert!(table
            .counter("gold", "txt2img", Admitted, NO_LIMIT)
            .is_none());
        m.record_decision(Some("gold"), Some("txt2img"), Admitted, None, us(3));
        let text = m.render("memory", "ok", None);
        assert!(text.contains(
            "quota_decisions_total{tier=\"basic\",endpoint=\"txt2img\",outcome=\"admitted\",limit_type=\"none\"} 2\n"
        ));
        assert!(text.contains(
            "quota_decisions_total{tier=\"gold\",endpoint=\"txt2img\",outcome=\"admitted\",limit_type=\"none\"} 1\n"
        ));
    }

    #[test]
    fn a_reload_resolves_the_new_policy_and_keeps_the_counts() {
        let handle = PolicyHandle::new(Policy::seed());
        let m = Metrics::new(handle.clone());
        m.record_decision(Some("basic"), Some("txt2img"), Admitted, None, us(3));
        assert!(m
            .table
            .load()
            .counter("basic", "new", Admitted, NO_LIMIT)
            .is_none());
        let policy = r#"
[[endpoints]]
path = "txt2img"

[[endpoints]]
path = "new"

[[tiers]]
name = "basic"
limits = [{ endpoint = "new", name = "burst", window = "1m", count = 3 }]
"#;
        handle.replace(quota_core::policy::Policy::parse(policy).unwrap());
        // A refused reload leaves the table as it is.
        m.record_reload(false);
        assert!(m
            .table
            .load()
            .counter("basic", "new", Admitted, NO_LIMIT)
            .is_none());
        m.record_reload(true);
        assert!(m
            .table
            .load()
            .counter("basic", "new", Refused, "burst")
            .is_some());
        assert!(m
            .table
            .load()
            .counter("premium", "txt2img", Admitted, NO_LIMIT)
            .is_none());
        m.record_decision(Some("basic"), Some("txt2img"), Admitted, None, us(3));
        m.record_decision(Some("basic"), Some("new"), Refused, Some("burst"), us(3));
        let text = m.render("memory", "ok", None);
        assert!(text.contains(
            "quota_decisions_total{tier=\"basic\",endpoint=\"txt2img\",outcome=\"admitted\",limit_type=\"none\"} 2\n"
        ), "{text}");
        assert!(text.contains(
            "quota_decisions_total{tier=\"basic\",endpoint=\"new\",outcome=\"refused\",limit_type=\"burst\"} 1\n"
        ), "{text}");
        assert!(text.contains("quota_policy_reloads_total{result=\"ok\"} 1\n"));
        assert!(text.contains("quota_policy_reloads_total{result=\"refused\"} 1\n"));
    }

    #[test]
    fn latency_buckets_include_their_bound() {
        let m = seed_metrics();
        m.record_decision(None, None, Unauthorized, None, us(5));
        m.record_decision(None, None, Unauthorized, None, Duration::from_nanos(5_001));
        m.record_decision(None, None, Unauthorized, None, Duration::from_secs(1));
        m.record_decision(None, None, Unauthorized, None, Duration::MAX);
        let text = m.render("memory", "ok", None);
        assert!(text.contains("quota_decision_duration_seconds_bucket{le=\"5e-06\"} 1\n"));
        assert!(text.contains("quota_decision_duration_seconds_bucket{le=\"1e-05\"} 2\n"));
        assert!(text.contains("quota_decision_duration_seconds_bucket{le=\"1\"} 3\n"));
        assert!(text.contains("quota_decision_duration_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("quota_decision_duration_seconds_count 4\n"));
    }

    #[test]
    fn the_content_type_is_the_text_format_0_0_4() {
        assert!(CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    }
}

/// The exposition against the hand-written one this module replaced, and
/// against the text format's grammar.
#[cfg(test)]
mod exposition_tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::{BTreeMap, BTreeSet};

    use quota_core::policy::Policy;
    use quota_redis::{FailurePolicy, RedisConfig, RedisStore};

    use super::DecisionOutcome::*;
    use super::*;

    /// What the hand-written exposition (before `prometheus-client`) wrote
    /// after [`record_sequence`], rendered for Redis in `fallback` with a
    /// `local:2` failure policy and fresh counters.
    const OLD_EXPOSITION: &str = r#"
# HELP quota_decisions_total Requests decided by the gateway.
# TYPE quota_decisions_total counter
quota_decisions_total{tier="basic",endpoint="txt2img",outcome="admitted",limit_type="none"} 3
quota_decisions_total{tier="basic",endpoint="txt2img",outcome="refused",limit_type="daily"} 1
quota_decisions_total{tier="basic",endpoint="txt2img",outcome="refused",limit_type="minute"} 1
quota_decisions_total{tier="basic",endpoint="unknown",outcome="not_found",limit_type="none"} 1
quota_decisions_total{tier="gold",endpoint="txt2img",outcome="error",limit_type="none"} 1
quota_decisions_total{tier="odd\"tier\\x\ny",endpoint="videos/replace",outcome="admitted",limit_type="none"} 1
quota_decisions_total{tier="premium",endpoint="img2img",outcome="store_error",limit_type="none"} 1
quota_decisions_total{tier="premium",endpoint="limits",outcome="admitted",limit_type="none"} 1
quota_decisions_total{tier="premium",endpoint="prompt/*",outcome="shadow_refused",limit_type="minute"} 1
quota_decisions_total{tier="unknown",endpoint="unknown",outcome="unauthorized",limit_type="none"} 1
# HELP quota_decision_duration_seconds Time to decide a request (identity, credit and limits).
# TYPE quota_decision_duration_seconds histogram
quota_decision_duration_seconds_bucket{le="0.000005"} 4
quota_decision_duration_seconds_bucket{le="0.00001"} 4
quota_decision_duration_seconds_bucket{le="0.000025"} 4
quota_decision_duration_seconds_bucket{le="0.00005"} 6
quota_decision_duration_seconds_bucket{le="0.0001"} 6
quota_decision_duration_seconds_bucket{le="0.00025"} 7
quota_decision_duration_seconds_bucket{le="0.0005"} 7
quota_decision_duration_seconds_bucket{le="0.001"} 8
quota_decision_duration_seconds_bucket{le="0.0025"} 9
quota_decision_duration_seconds_bucket{le="0.005"} 9
quota_decision_duration_seconds_bucket{le="0.01"} 9
quota_decision_duration_seconds_bucket{le="0.025"} 9
quota_decision_duration_seconds_bucket{le="0.1"} 10
quota_decision_duration_seconds_bucket{le="1"} 11
quota_decision_duration_seconds_bucket{le="+Inf"} 12
quota_decision_duration_seconds_sum 3.052901
quota_decision_duration_seconds_count 12
# HELP quota_upstream_errors_total Requests the upstream could not answer.
# TYPE quota_upstream_errors_total counter
quota_upstream_errors_total{kind="unreachable"} 2
quota_upstream_errors_total{kind="timeout"} 1
# HELP quota_edge_refusals_total Requests refused at the edge, before any route.
# TYPE quota_edge_refusals_total counter
quota_edge_refusals_total{status="400"} 1
quota_edge_refusals_total{status="405"} 2
quota_edge_refusals_total{status="501"} 0
# HELP quota_store_errors_total Decisions the counter store could not make.
# TYPE quota_store_errors_total counter
quota_store_errors_total 1
# HELP quota_policy_reloads_total Policy reloads, applied or refused.
# TYPE quota_policy_reloads_total counter
quota_policy_reloads_total{result="ok"} 1
quota_policy_reloads_total{result="refused"} 2
# HELP quota_store_info The counter store in use and its mode.
# TYPE quota_store_info gauge
quota_store_info{backend="redis",mode="fallback"} 1
# HELP quota_redis_up 1 when the last Redis call succeeded.
# TYPE quota_redis_up gauge
quota_redis_up{failure_policy="local:2"} 1
# HELP quota_redis_decisions_total Decisions Redis answered.
# TYPE quota_redis_decisions_total counter
quota_redis_decisions_total{failure_policy="local:2"} 0
# HELP quota_redis_fallback_decisions_total Decisions the failure policy answered while Redis could not.
# TYPE quota_redis_fallback_decisions_total counter
quota_redis_fallback_decisions_total{failure_policy="local:2"} 0
# HELP quota_redis_errors_total Redis calls that failed.
# TYPE quota_redis_errors_total counter
quota_redis_errors_total{failure_policy="local:2"} 0
# HELP quota_redis_timeouts_total Redis calls that timed out.
# TYPE quota_redis_timeouts_total counter
quota_redis_timeouts_total{failure_policy="local:2"} 0
"#;

    /// The `le` values the old exposition wrote and `prometheus-client`
    /// writes otherwise (as Go does), in the same order.
    const OLD_LE: [&str; 4] = ["0.000005", "0.00001", "0.000025", "0.00005"];
    const NEW_LE: [&str; 4] = ["5e-06", "1e-05", "2.5e-05", "5e-05"];

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn seed_metrics() -> Metrics {
        Metrics::new(PolicyHandle::new(Policy::seed()))
    }

    /// A decision's tier, endpoint, outcome, limit and latency.
    type Decision<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        DecisionOutcome,
        Option<&'a str>,
        Duration,
    );

    /// The fixed observations [`OLD_EXPOSITION`] was recorded after: label
    /// sets the seed policy names and some it does not (`gold`, the odd
    /// tier that needs escaping), every latency bucket region, every
    /// counter of fixed labels.
    fn record_sequence(m: &Metrics) {
        let decisions: [Decision<'_>; 12] = [
            (Some("basic"), Some("txt2img"), Admitted, None, us(3)),
            (Some("basic"), Some("txt2img"), Admitted, None, us(5)),
            (Some("basic"), Some("txt2img"), Admitted, None, us(30)),
            (
                Some("basic"),
                Some("txt2img"),
                Refused,
                Some("minute"),
                us(3),
            ),
            (
                Some("basic"),
                Some("txt2img"),
                Refused,
                Some("daily"),
                us(120),
            ),
            (
                Some("premium"),
                Some("prompt/*"),
                ShadowRefused,
                Some("minute"),
                us(700),
            ),
            (Some("premium"), Some("limits"), Admitted, None, us(0)),
            (None, None, Unauthorized, None, us(2_000)),
            (Some("basic"), None, NotFound, None, us(40)),
            (
                Some("premium"),
                Some("img2img"),
                StoreError,
                None,
                us(50_000),
            ),
            (Some("gold"), Some("txt2img"), Error, None, us(1_000_000)),
            (
                Some("odd\"tier\\x\ny"),
                Some("videos/replace"),
                Admitted,
                None,
                Duration::from_secs(2),
            ),
        ];
        for (tier, endpoint, outcome, limit, took) in decisions {
            m.record_decision(tier, endpoint, outcome, limit, took);
        }
        m.record_upstream_error(UpstreamError::Unreachable);
        m.record_upstream_error(UpstreamError::Unreachable);
        m.record_upstream_error(UpstreamError::Timeout);
        m.record_edge_refusal(Refusal::BadRequest("bad host"));
        m.record_edge_refusal(Refusal::MethodNotAllowed);
        m.record_edge_refusal(Refusal::MethodNotAllowed);
        m.record_store_error();
        m.record_reload(true);
        m.record_reload(false);
        m.record_reload(false);
    }

    /// What a Redis store reports before its first call (needs a runtime).
    fn fresh_redis_health() -> StoreHealth {
        let mut config = RedisConfig::default();
        config.failure = FailurePolicy::Local { nodes: 2 };
        RedisStore::lazy("redis://127.0.0.1:1", config)
            .unwrap()
            .health()
    }

    /// Families added since the hand-written exposition: left out of the
    /// comparisons with it (and tested on their own).
    const ADDED_SINCE: [&str; 1] = ["quota_refunds_total"];

    /// The exposition of [`record_sequence`] as the new code renders it,
    /// without the families [`ADDED_SINCE`].
    fn new_exposition() -> String {
        let m = seed_metrics();
        record_sequence(&m);
        let text = m.render("redis", "fallback", Some(fresh_redis_health()));
        let added = |line: &str| {
            let name = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
                .unwrap_or(line);
            ADDED_SINCE.iter().any(|f| {
                name.strip_prefix(f)
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
            })
        };
        text.lines()
            .filter(|l| !added(l))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn refunds_are_counted_by_reason() {
        let m = seed_metrics();
        for reason in [
            RefundReason::Unreachable,
            RefundReason::Unreachable,
            RefundReason::ServerError,
        ] {
            m.record_refund(reason);
        }
        let text = m.render("memory", "ok", None);
        for line in [
            "# HELP quota_refunds_total Admitted requests given back their units and credit because the upstream failed.",
            "# TYPE quota_refunds_total counter",
            "quota_refunds_total{reason=\"unreachable\"} 2",
            "quota_refunds_total{reason=\"timeout\"} 0",
            "quota_refunds_total{reason=\"5xx\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }

    /// A sample's name and labels.
    type SeriesKey = (String, BTreeMap<String, String>);

    /// One exposition, read line by line by the text format's grammar.
    #[derive(Debug, Default, PartialEq)]
    struct Exposition {
        /// Family name: its type and help text.
        families: BTreeMap<String, (String, String)>,
        /// Every sample's value.
        samples: BTreeMap<SeriesKey, f64>,
    }

    fn is_name(s: &str, colon: bool) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }

    /// `name{label="value",...} value`, label values unescaped.
    fn parse_sample(line: &str) -> Result<(SeriesKey, f64), String> {
        let end = line.find(['{', ' ']).ok_or("no value")?;
        let (name, mut rest) = line.split_at(end);
        if !is_name(name, true) {
            return Err(format!("bad metric name {name:?}"));
        }
        let mut labels = BTreeMap::new();
        if let Some(mut s) = rest.strip_prefix('{') {
            loop {
                let (label, after) = s.split_once("=\"").ok_or("no label value")?;
                if !is_name(label, false) {
                    return Err(format!("bad label name {label:?}"));
                }
                let mut value = String::new();
                let mut chars = after.char_indices();
                let close = loop {
                    match chars.next().ok_or("unterminated label value")? {
                        (i, '"') => break i,
                        (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            c => return Err(format!("bad escape \\{c}")),
                        },
                        (_, '\n') => return Err("raw line feed in a label value".into()),
                        (_, c) => value.push(c),
                    }
                };
                if labels.insert(label.to_owned(), value).is_some() {
                    return Err(format!("label {label} twice"));
                }
                let after = &after[close + 1..];
                if let Some(next) = after.strip_prefix(',') {
                    s = next;
                } else {
                    rest = after.strip_prefix('}').ok_or("no closing brace")?;
                    break;
                }
            }
        }
        let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
        };
        Ok(((name.to_owned(), labels), value))
    }

    /// Reads `text`, failing on the first line outside the text format
    /// (version 0.0.4) as this gateway writes it: every family with one
    /// `# HELP` then one `# TYPE` line before its samples, whose names are
    /// the family's (or for a histogram its `_bucket`, `_sum` and
    /// `_count`), no other comment (no `# EOF`), no sample twice, a final
    /// line feed.
    fn parse(text: &str) -> Result<Exposition, String> {
        let mut e = Exposition::default();
        let mut help: Option<(&str, &str)> = None;
        let mut family: Option<(&str, &str)> = None;
        if !text.ends_with('\n') {
            return Err("no final line feed".into());
        }
        for (n, line) in text.lines().enumerate() {
            let at = |m: String| format!("line {}: {m}: {line:?}", n + 1);
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').ok_or_else(|| at("no help".into()))?;
                if !is_name(name, true) || e.families.contains_key(name) {
                    return Err(at("bad or repeated family".into()));
                }
                help = Some((name, text));
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| at("no type".into()))?;
                let Some((help_name, text)) = help.take().filter(|(h, _)| *h == name) else {
                    return Err(at("no # HELP just before".into()));
                };
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(at("bad type".into()));
                }
                e.families
                    .insert(help_name.to_owned(), (kind.to_owned(), text.to_owned()));
                family = Some((name, kind));
            } else if line.starts_with('#') || line.is_empty() {
                return Err(at("unexpected line".into()));
            } else {
                let (key, value) = parse_sample(line).map_err(at)?;
                let Some((name, kind)) = family else {
                    return Err(at("a sample before any # TYPE".into()));
                };
                let suffix = key
                    .0
                    .strip_prefix(name)
                    .ok_or_else(|| at("not its family's".into()))?;
                let allowed: &[&str] = if kind == "histogram" {
                    &["_bucket", "_sum", "_count"]
                } else {
                    &[""]
                };
                if !allowed.contains(&suffix) {
                    return Err(at("not its family's".into()));
                }
                if e.samples.insert(key, value).is_some() {
                    return Err(at("sample twice".into()));
                }
            }
        }
        Ok(e)
    }

    /// `samples` with each `le` written as Rust writes its number.
    fn le_as_numbers(samples: &BTreeMap<SeriesKey, f64>) -> BTreeMap<SeriesKey, f64> {
        samples
            .iter()
            .map(|((name, labels), v)| {
                let mut labels = labels.clone();
                if let Some(le) = labels.get_mut("le") {
                    if le != "+Inf" {
                        *le = le.parse::<f64>().unwrap().to_string();
                    }
                }
                ((name.clone(), labels), *v)
            })
            .collect()
    }

    #[test]
    fn the_old_exposition_reads_as_the_format() {
        let old = parse(OLD_EXPOSITION.trim_start()).unwrap();
        assert_eq!(old.families.len(), 12);
    }

    #[tokio::test]
    async fn every_old_family_and_series_is_rendered_alike() {
        let old = parse(OLD_EXPOSITION.trim_start()).unwrap();
        let new = parse(&new_exposition()).unwrap();
        // Names, types, help texts.
        assert_eq!(new.families, old.families);
        // Label sets and values, the `le` bounds compared as numbers.
        assert_eq!(le_as_numbers(&new.samples), le_as_numbers(&old.samples));
    }

    #[tokio::test]
    async fn the_only_lines_written_otherwise_are_four_bucket_bounds() {
        let new = new_exposition();
        let old_lines: BTreeSet<&str> = OLD_EXPOSITION.trim_start().lines().collect();
        let new_lines: BTreeSet<&str> = new.lines().collect();
        let gone: Vec<&str> = old_lines.difference(&new_lines).copied().collect();
        let came: Vec<&str> = new_lines.difference(&old_lines).copied().collect();
        let bucket = |le: &str| {
            let n = OLD_EXPOSITION
                .lines()
                .find(|l| l.contains(&format!("{{le=\"{le}\"}}")))
                .and_then(|l| l.rsplit(' ').next())
                .unwrap();
            n.to_owned()
        };
        let mut want_gone: Vec<String> = OLD_LE
            .iter()
            .map(|le| {
                format!(
                    "quota_decision_duration_seconds_bucket{{le=\"{le}\"}} {}",
                    bucket(le)
                )
            })
            .collect();
        let mut want_came: Vec<String> = OLD_LE
            .iter()
            .zip(NEW_LE)
            .map(|(old, le)| {
                format!(
                    "quota_decision_duration_seconds_bucket{{le=\"{le}\"}} {}",
                    bucket(old)
                )
            })
            .collect();
        want_gone.sort();
        want_came.sort();
        assert_eq!(gone, want_gone, "{new}");
        assert_eq!(came, want_came, "{new}");
    }

    #[tokio::test]
    async fn a_prometheus_text_parser_reads_it() {
        let text = new_exposition();
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let old = parse(OLD_EXPOSITION.trim_start()).unwrap();
        for (name, (_, help)) in &old.families {
            assert_eq!(scrape.docs.get(name), Some(help), "{name}");
        }
        let admitted = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "quota_decisions_total"
                    && s.labels.get("tier") == Some("basic")
                    && s.labels.get("outcome") == Some("admitted")
            })
            .unwrap();
        assert_eq!(admitted.value, prometheus_parse::Value::Counter(3.0));
        let histogram = scrape
            .samples
            .iter()
            .find(|s| s.metric == "quota_decision_duration_seconds")
            .unwrap();
        let prometheus_parse::Value::Histogram(buckets) = &histogram.value else {
            panic!("{histogram:?}");
        };
        assert_eq!(buckets.len(), latency::BUCKETS.len() + 1);
        assert_eq!(buckets[0].less_than, 0.000_005);
        assert_eq!(buckets[0].count, 4.0);
        assert_eq!(buckets[buckets.len() - 1].count, 12.0);
        let up = scrape
            .samples
            .iter()
            .find(|s| s.metric == "quota_redis_up")
            .unwrap();
        assert_eq!(up.labels.get("failure_policy"), Some("local:2"));
        assert_eq!(up.value, prometheus_parse::Value::Gauge(1.0));
    }

    #[test]
    fn a_fresh_gateway_describes_its_families() {
        let text = seed_metrics().render("memory", "ok", None);
        let e = parse(&text).unwrap();
        let names: Vec<&str> = e.families.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "quota_decision_duration_seconds",
                "quota_decisions_total",
                "quota_edge_refusals_total",
                "quota_policy_reloads_total",
                "quota_refunds_total",
                "quota_store_errors_total",
                "quota_store_info",
                "quota_upstream_errors_total",
            ]
        );
        assert!(text.contains("quota_edge_refusals_total{status=\"501\"} 0\n"));
        assert!(text.contains("quota_store_info{backend=\"memory\",mode=\"ok\"} 1\n"));
        assert!(!text.contains("quota_decisions_total{"), "{text}");
    }
}
