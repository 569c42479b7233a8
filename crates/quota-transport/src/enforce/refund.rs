//! Refunds: an admitted request whose upstream failed gets its units and
//! credit back, as the layer's [`RefundOn`] says.
//!
//! The inner service tells the layer that it could not get an answer from
//! its upstream by setting an [`UpstreamFailure`] in its response's
//! extensions (the `quota` gateway's proxy does, on its 502 and 504);
//! otherwise the layer goes by the response's status. A refunded answer
//! carries no rate-limit headers: the budget they described was given
//! back.

use std::sync::Arc;

use quota_core::account::{Accounts, Identity};
use quota_core::admission::{RefundOn, RefundReason, Taken, UpstreamResult};
use quota_core::Store;

use super::layer::Config;
use super::observe::Refunded;
use super::policy::Loaded;

/// A response extension the inner service sets when its upstream gave no
/// answer: the response is the service's own 502 or 504, and under
/// [`RefundOn::Unreachable`] (the default) the request is refunded.
///
/// ```
/// use http::{Response, StatusCode};
/// use quota_transport::enforce::UpstreamFailure;
///
/// let mut res = Response::new(());
/// *res.status_mut() = StatusCode::GATEWAY_TIMEOUT;
/// res.extensions_mut().insert(UpstreamFailure::TimedOut);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamFailure {
    /// The upstream could not be reached, or closed without an answer (a
    /// 502).
    Unreachable,
    /// The upstream did not answer in time (a 504).
    TimedOut,
}

impl UpstreamFailure {
    /// The result the layer refunds by.
    pub const fn result(self) -> UpstreamResult {
        match self {
            UpstreamFailure::Unreachable => UpstreamResult::Unreachable,
            UpstreamFailure::TimedOut => UpstreamResult::TimedOut,
        }
    }

    /// How the upstream answered a response: its failure if the service
    /// marked one, else its status.
    pub fn of<B>(res: &http::Response<B>) -> UpstreamResult {
        match res.extensions().get::<UpstreamFailure>() {
            Some(failure) => failure.result(),
            None => UpstreamResult::Answered(res.status().as_u16()),
        }
    }
}

/// What an admitted request took, with what giving it back needs: kept
/// while the service answers.
pub(crate) struct Settle<S, A> {
    pub(crate) config: Arc<Config<S, A>>,
    /// The policy the request was admitted under (its plan is built again).
    pub(crate) loaded: Arc<Loaded>,
    pub(crate) who: Identity,
    /// The endpoint name: the canonical path after the prefix.
    pub(crate) endpoint: Box<str>,
    pub(crate) taken: Taken,
}

impl<S: Store, A: Accounts> Settle<S, A> {
    /// Why the request is refunded now that the upstream answered `result`,
    /// if it is.
    pub(crate) fn reason(&self, result: UpstreamResult) -> Option<RefundReason> {
        self.taken
            .refund_for(self.config.admission.refunds(), result)
    }

    /// Gives everything back for `reason`.
    pub(crate) async fn give_back(self, reason: RefundReason) {
        give_back(
            &self.config,
            &self.loaded,
            &self.who,
            &self.endpoint,
            &self.taken,
            reason,
        )
        .await;
    }
}

/// Whether a request admitted with `taken` under `on` needs a [`Settle`]:
/// only if something could be given back.
pub(crate) fn may_refund(on: RefundOn, taken: &Taken) -> bool {
    !on.is_never() && !taken.is_empty()
}

/// Gives back what `taken` holds for `who`'s request to `endpoint` under
/// `loaded`'s policy: its units in the store, its credit to the account.
/// A failure is logged (the answer stands); the observer is told.
pub(crate) async fn give_back<S: Store, A: Accounts>(
    config: &Config<S, A>,
    loaded: &Loaded,
    who: &Identity,
    endpoint: &str,
    taken: &Taken,
    reason: RefundReason,
) {
    if let Some(receipt) = &taken.receipt {
        match taken.plan(&loaded.policy, who, endpoint) {
            Ok(plan) => {
                let now = (config.clock)();
                if let Err(e) = config.store.refund(&plan, receipt, now).await {
                    tracing::warn!(account = %who.account, endpoint, %reason, error = %e,
                        "cannot give back the units of a request the upstream failed");
                }
            }
            // The plan built when the request was admitted; it builds again.
            Err(e) => tracing::warn!(account = %who.account, endpoint, error = %e,
                "cannot plan the refund of a request the upstream failed"),
        }
    }
    if let Some(credit) = taken.credit {
        if let Err(e) = config.accounts.refund(&who.account, credit).await {
            tracing::warn!(account = %who.account, %credit, %reason, error = %e,
                "cannot give back the credit of a request the upstream failed");
        }
    }
    if let Some(observer) = &config.observer {
        observer.refunded(&Refunded {
            tier: &who.tier,
            account: &who.account,
            reason,
            shadow: config.admission.is_shadow(),
        });
    }
}
