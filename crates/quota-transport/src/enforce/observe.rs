//! A hook that sees every decision, for metrics without a metrics dependency.

use core::fmt;
use std::time::Duration;

use http::StatusCode;
use quota_core::admission::RefundReason;

/// What became of a request at the enforcement layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Every check passed; the request went to the inner service.
    Admitted,
    /// A check refused it (401, 404, 413, 402, 429, 400).
    Refused,
    /// The layer could not decide (the store or the account source failed,
    /// or the account's tier is not in the policy): 503 or 500.
    Error,
}

impl Outcome {
    /// `admitted`, `refused` or `error`: a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Admitted => "admitted",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision, as labels: what an [`Observer`] receives.
///
/// Label values have bounded cardinality: `endpoint` is the policy's declared
/// endpoint (`prompt/*`, not the request path), `tier` a policy tier name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Observation<'a> {
    /// The account's tier, once the key is resolved.
    pub tier: Option<&'a str>,
    /// The account, once the key is resolved (for a per-request record
    /// such as an access log; not a metric label: it is unbounded).
    pub account: Option<&'a str>,
    /// The policy endpoint the request resolved to.
    pub endpoint: Option<&'a str>,
    /// Admitted, refused or error.
    pub outcome: Outcome,
    /// The status the layer answered (or, in shadow mode, would have
    /// answered); `200 OK` for an admitted request, whatever the service says.
    pub status: StatusCode,
    /// For a rate-limit refusal, the limit reported (`minute`, `daily`).
    pub limit: Option<&'a str>,
    /// Time spent deciding, from the request's arrival at the layer until
    /// it is passed on or refused.
    pub latency: Duration,
    /// True in shadow mode: a `Refused` outcome was not enforced.
    pub shadow: bool,
}

/// Receives every decision of the enforcement layer.
///
/// Implemented for closures, so `.observer(|o: &Observation<'_>| ...)` works.
/// Called on the request's task once the checks are done, before the
/// service runs: keep it short (increment counters). An upload refused
/// later, while the service reads the body, was observed as admitted.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use quota_transport::enforce::{Observation, Observer, Outcome};
///
/// #[derive(Default)]
/// struct Refusals(AtomicU64);
/// impl Observer for Refusals {
///     fn observe(&self, o: &Observation<'_>) {
///         if o.outcome == Outcome::Refused {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// ```
pub trait Observer: Send + Sync + 'static {
    /// Called once per request the layer decides.
    fn observe(&self, observation: &Observation<'_>);

    /// Called when an admitted request was given back what it took,
    /// because its upstream failed (see
    /// [`RefundOn`](quota_core::admission::RefundOn)), on the request's
    /// task before its answer is returned. Does nothing by default.
    fn refunded(&self, refund: &Refunded<'_>) {
        let _ = refund;
    }
}

/// A refund, as labels: what [`Observer::refunded`] receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refunded<'a> {
    /// The account's tier.
    pub tier: &'a str,
    /// The account (not a metric label: it is unbounded).
    pub account: &'a str,
    /// Why: `unreachable`, `timeout` or `5xx`.
    pub reason: RefundReason,
    /// True in shadow mode (units were counted, no credit was charged).
    pub shadow: bool,
}

impl<F> Observer for F
where
    F: Fn(&Observation<'_>) + Send + Sync + 'static,
{
    fn observe(&self, observation: &Observation<'_>) {
        self(observation);
    }
}
