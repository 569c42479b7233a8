//! The enforcement layer's observer: turns each decision into metrics and
//! a debug log line.

use std::sync::Arc;

use http::StatusCode;
use quota_transport::enforce::{Observation, Observer, Outcome};

use crate::metrics::Metrics;

/// Counts every decision in [`Metrics`].
pub(crate) struct MetricsObserver {
    metrics: Arc<Metrics>,
}

impl MetricsObserver {
    /// An observer writing to `metrics`.
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        MetricsObserver { metrics }
    }
}

/// The `outcome` label: `admitted`, `refused` (a rate limit, 429),
/// `shadow_refused` (a 429 not enforced), `unauthorized`, `not_found`,
/// `payment_required`, `too_large`, `unprocessable`, `bad_request`,
/// `store_error` or `error`.
pub(crate) fn outcome_label(o: &Observation<'_>) -> &'static str {
    match (o.outcome, o.status) {
        (Outcome::Admitted, _) => "admitted",
        (Outcome::Refused, StatusCode::TOO_MANY_REQUESTS) if o.shadow => "shadow_refused",
        (Outcome::Refused, StatusCode::TOO_MANY_REQUESTS) => "refused",
        (Outcome::Refused, StatusCode::UNAUTHORIZED) => "unauthorized",
        (Outcome::Refused, StatusCode::NOT_FOUND) => "not_found",
        (Outcome::Refused, StatusCode::PAYMENT_REQUIRED) => "payment_required",
        (Outcome::Refused, StatusCode::PAYLOAD_TOO_LARGE) => "too_large",
        (Outcome::Refused, StatusCode::UNPROCESSABLE_ENTITY) => "unprocessable",
        (Outcome::Refused, _) => "bad_request",
        (Outcome::Error, StatusCode::SERVICE_UNAVAILABLE) => "store_error",
        (Outcome::Error, _) => "error",
    }
}

impl Observer for MetricsObserver {
    fn observe(&self, o: &Observation<'_>) {
        let outcome = outcome_label(o);
        let limit_type = o.limit.unwrap_or("none");
        self.metrics.record_decision(
            o.tier.unwrap_or("unknown"),
            o.endpoint.unwrap_or("unknown"),
            outcome,
            limit_type,
            o.latency,
        );
        if o.outcome == Outcome::Error {
            self.metrics.record_store_error();
        }
        tracing::debug!(
            tier = o.tier,
            endpoint = o.endpoint,
            outcome,
            limit = o.limit,
            status = o.status.as_u16(),
            micros = u64::try_from(o.latency.as_micros()).unwrap_or(u64::MAX),
            "decision"
        );
    }
}
