//! The enforcement layer's observer: turns each decision into metrics, the
//! operator's page's ring (`activity`), a debug log line and (with an
//! access log) the request's record.

use std::sync::Arc;

use http::StatusCode;
use quota_transport::enforce::{Observation, Observer, Outcome, PolicyHandle, Refunded};

use crate::activity::Activity;

use crate::metrics::{DecisionOutcome, Metrics};

/// Counts every decision in [`Metrics`].
pub(crate) struct MetricsObserver {
    metrics: Arc<Metrics>,
    /// Also tell the access log's record of the request.
    access_log: bool,
    /// The operator's page's ring of this node's decisions.
    activity: Arc<Activity>,
    /// The policy in force (which limits are tier-wide).
    policy: PolicyHandle,
}

impl MetricsObserver {
    /// An observer writing to `metrics` (and, with `access_log`, to the
    /// request's access log record).
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        access_log: bool,
        activity: Arc<Activity>,
        policy: PolicyHandle,
    ) -> Self {
        MetricsObserver {
            metrics,
            access_log,
            activity,
            policy,
        }
    }
}

/// The `outcome` label: `admitted`, `refused` (a rate limit, 429),
/// `shadow_refused` (a 429 not enforced), `unauthorized`, `not_found`,
/// `payment_required`, `too_large`, `unprocessable`, `bad_request`,
/// `store_error` or `error`.
pub(crate) fn outcome_label(o: &Observation<'_>) -> DecisionOutcome {
    match (o.outcome, o.status) {
        (Outcome::Admitted, _) => DecisionOutcome::Admitted,
        (Outcome::Refused, StatusCode::TOO_MANY_REQUESTS) if o.shadow => {
            DecisionOutcome::ShadowRefused
        }
        (Outcome::Refused, StatusCode::TOO_MANY_REQUESTS) => DecisionOutcome::Refused,
        (Outcome::Refused, StatusCode::UNAUTHORIZED) => DecisionOutcome::Unauthorized,
        (Outcome::Refused, StatusCode::NOT_FOUND) => DecisionOutcome::NotFound,
        (Outcome::Refused, StatusCode::PAYMENT_REQUIRED) => DecisionOutcome::PaymentRequired,
        (Outcome::Refused, StatusCode::PAYLOAD_TOO_LARGE) => DecisionOutcome::TooLarge,
        (Outcome::Refused, StatusCode::UNPROCESSABLE_ENTITY) => DecisionOutcome::Unprocessable,
        (Outcome::Refused, _) => DecisionOutcome::BadRequest,
        (Outcome::Error, StatusCode::SERVICE_UNAVAILABLE) => DecisionOutcome::StoreError,
        (Outcome::Error, _) => DecisionOutcome::Error,
    }
}

impl Observer for MetricsObserver {
    fn observe(&self, o: &Observation<'_>) {
        let outcome = outcome_label(o);
        self.metrics
            .record_decision(o.tier, o.endpoint, outcome, o.limit, o.latency);
        if o.outcome == Outcome::Error {
            self.metrics.record_store_error();
        }
        self.activity.observe(o, &self.policy, crate::shared::now());
        if self.access_log {
            crate::access_log::observed(o);
        }
        tracing::debug!(
            tier = o.tier,
            endpoint = o.endpoint,
            outcome = outcome.as_str(),
            limit = o.limit,
            status = o.status.as_u16(),
            micros = u64::try_from(o.latency.as_micros()).unwrap_or(u64::MAX),
            "decision"
        );
    }

    fn refunded(&self, r: &Refunded<'_>) {
        self.metrics.record_refund(r.reason);
        if self.access_log {
            crate::access_log::refunded();
        }
        tracing::debug!(tier = r.tier, reason = r.reason.as_str(), "refunded");
    }
}
