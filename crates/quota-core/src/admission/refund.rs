//! Refunds: what an admitted request took is given back when its upstream
//! failed to answer it ([`RefundOn`]).
//!
//! An admitted request took units on every limit its plan was decided on
//! (the store's [`Receipt`]) and, on a priced endpoint, credit
//! ([`Admit::charged`](super::Admit::charged)): together, its [`Taken`].
//! Once the transport knows how the upstream answered
//! ([`UpstreamResult`]), [`Taken::refund_for`] says whether both are given
//! back, and why ([`RefundReason`]); the driver then calls
//! [`Store::refund`](crate::Store::refund) with [`Taken::plan`] and the
//! receipt, and [`Accounts::refund`](crate::account::Accounts::refund)
//! with the credit.
//!
//! ```
//! use quota_core::admission::{RefundOn, RefundReason, UpstreamResult};
//!
//! let on: RefundOn = "unreachable,5xx".parse().unwrap();
//! assert_eq!(on.reason(UpstreamResult::Answered(503)), Some(RefundReason::ServerError));
//! assert_eq!(RefundOn::default().reason(UpstreamResult::Answered(503)), None);
//! assert_eq!(RefundOn::default().reason(UpstreamResult::TimedOut), Some(RefundReason::Timeout));
//! assert_eq!(RefundOn::Never.reason(UpstreamResult::Unreachable), None);
//! assert_eq!(on.to_string(), "unreachable,5xx");
//! ```

use core::fmt;
use core::str::FromStr;

use crate::account::Identity;
use crate::policy::{Money, Plan, PlanError, Policy, Request};
use crate::store::{Counted, Receipt};

/// When an admitted request's units and credit are given back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RefundOn {
    /// Never: a request admitted is spent, whatever became of it
    /// (`none`).
    Never,
    /// When the gateway itself answered 502 or 504 because the upstream
    /// gave no answer: it could not be reached (connection refused or
    /// failed, closed without an answer, an answer that is not HTTP) or
    /// did not answer in time (`unreachable`, the default).
    #[default]
    Unreachable,
    /// Those, and also when the upstream answered with a 5xx status of its
    /// own (`unreachable,5xx`; `5xx` alone means the same).
    ServerErrors,
}

/// How the upstream answered an admitted request, as the transport saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamResult {
    /// It answered, with this status.
    Answered(u16),
    /// It could not be reached, or gave no answer (the gateway's 502).
    Unreachable,
    /// It did not answer in time (the gateway's 504).
    TimedOut,
}

/// Why a request was refunded: the label of the refunds metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefundReason {
    /// The upstream could not be reached (`unreachable`).
    Unreachable,
    /// The upstream did not answer in time (`timeout`).
    Timeout,
    /// The upstream answered with a 5xx status (`5xx`).
    ServerError,
    /// The admission was withdrawn by its front end: another decision of
    /// the same request was refused (Envoy's descriptors are decided all
    /// or nothing) (`withdrawn`).
    Withdrawn,
}

impl RefundReason {
    /// Every reason, in the metric's order.
    pub const ALL: [RefundReason; 4] = [
        RefundReason::Unreachable,
        RefundReason::Timeout,
        RefundReason::ServerError,
        RefundReason::Withdrawn,
    ];

    /// `unreachable`, `timeout` or `5xx`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RefundReason::Unreachable => "unreachable",
            RefundReason::Timeout => "timeout",
            RefundReason::ServerError => "5xx",
            RefundReason::Withdrawn => "withdrawn",
        }
    }
}

impl fmt::Display for RefundReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RefundOn {
    /// Why a request whose upstream answered `result` is refunded under
    /// this setting, or `None` when it is not.
    pub const fn reason(self, result: UpstreamResult) -> Option<RefundReason> {
        match (self, result) {
            (RefundOn::Never, _) => None,
            (_, UpstreamResult::Unreachable) => Some(RefundReason::Unreachable),
            (_, UpstreamResult::TimedOut) => Some(RefundReason::Timeout),
            (RefundOn::ServerErrors, UpstreamResult::Answered(status))
                if status >= 500 && status <= 599 =>
            {
                Some(RefundReason::ServerError)
            }
            (_, UpstreamResult::Answered(_)) => None,
        }
    }

    /// Whether no answer is ever refunded.
    pub const fn is_never(self) -> bool {
        matches!(self, RefundOn::Never)
    }
}

impl fmt::Display for RefundOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefundOn::Never => "none",
            RefundOn::Unreachable => "unreachable",
            RefundOn::ServerErrors => "unreachable,5xx",
        })
    }
}

/// Why a [`RefundOn`] cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefundOnError {
    /// A word that is none of `none`, `unreachable`, `5xx`.
    #[error("unknown refund condition {0:?}: expected none, unreachable or 5xx (comma-separated, e.g. unreachable,5xx)")]
    Unknown(String),
    /// `none` together with a condition.
    #[error("none cannot be combined with other refund conditions")]
    NoneWithOthers,
    /// Nothing at all.
    #[error("no refund condition: expected none, unreachable or 5xx")]
    Empty,
}

impl FromStr for RefundOn {
    type Err = RefundOnError;

    /// A comma-separated list of `unreachable` and `5xx` (either order,
    /// spaces around the words allowed), or `none`. `5xx` implies
    /// `unreachable`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (mut none, mut unreachable, mut errors) = (false, false, false);
        for word in s.split(',').map(str::trim) {
            match word.to_ascii_lowercase().as_str() {
                "none" => none = true,
                "unreachable" => unreachable = true,
                "5xx" => errors = true,
                "" => return Err(RefundOnError::Empty),
                _ => return Err(RefundOnError::Unknown(word.to_owned())),
            }
        }
        match (none, unreachable, errors) {
            (true, false, false) => Ok(RefundOn::Never),
            (true, _, _) => Err(RefundOnError::NoneWithOthers),
            (false, _, true) => Ok(RefundOn::ServerErrors),
            (false, true, false) => Ok(RefundOn::Unreachable),
            (false, false, false) => Err(RefundOnError::Empty),
        }
    }
}

/// What an admitted request took: its units (the store's receipt, when the
/// decision counted them) and the credit charged. Owned, so a driver keeps
/// it while the service answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// The decision's receipt, when it counted the request (not for an
    /// unmetered endpoint, a refusal shadow mode let through, or a store
    /// that admitted without counting).
    pub receipt: Option<Receipt>,
    /// The credit charged (a priced endpoint, not in shadow mode).
    pub credit: Option<Money>,
    /// The units the decision counted on each limit.
    pub cost: u64,
}

impl Taken {
    /// Whether there is nothing to give back.
    pub fn is_empty(&self) -> bool {
        self.receipt.is_none() && self.credit.is_none()
    }

    /// Whether (and why) what was taken is given back, now that the
    /// upstream answered `result`, under `on`: `None` when it is kept, or
    /// when nothing was taken.
    pub fn refund_for(&self, on: RefundOn, result: UpstreamResult) -> Option<RefundReason> {
        if self.is_empty() {
            return None;
        }
        on.reason(result)
    }

    /// The plan the receipt was decided on, built again from `policy` (the
    /// one the request was admitted under) for `who` on the endpoint
    /// `endpoint` (the path after the prefix): what
    /// [`Store::refund`](crate::Store::refund) is given with the receipt.
    ///
    /// # Errors
    /// The [`PlanError`] the admission would have met (it did not: the
    /// plan built then).
    pub fn plan<'p>(
        &self,
        policy: &'p Policy,
        who: &'p Identity,
        endpoint: &'p str,
    ) -> Result<Plan<'p>, PlanError> {
        policy.plan(&Request {
            account: &who.account,
            tier: &who.tier,
            endpoint,
            cost: self.cost,
        })
    }

    /// The receipt, when the decision counted something to give back.
    pub(crate) fn counted(receipt: Receipt) -> Option<Receipt> {
        (receipt.admitted() && receipt.counted != Counted::Nothing).then_some(receipt)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn refund_on_reads_and_writes_its_words() {
        for (text, on) in [
            ("none", RefundOn::Never),
            ("unreachable", RefundOn::Unreachable),
            ("unreachable,5xx", RefundOn::ServerErrors),
            ("5xx, unreachable", RefundOn::ServerErrors),
            ("5xx", RefundOn::ServerErrors),
            ("UNREACHABLE", RefundOn::Unreachable),
        ] {
            assert_eq!(text.parse::<RefundOn>().unwrap(), on, "{text}");
            assert_eq!(on.to_string().parse::<RefundOn>().unwrap(), on);
        }
        for (text, e) in [
            ("", RefundOnError::Empty),
            ("unreachable,", RefundOnError::Empty),
            ("none,5xx", RefundOnError::NoneWithOthers),
            ("4xx", RefundOnError::Unknown("4xx".into())),
        ] {
            assert_eq!(text.parse::<RefundOn>().unwrap_err(), e, "{text:?}");
        }
    }

    #[test]
    fn only_the_chosen_failures_are_refunded() {
        use UpstreamResult::*;
        for status in [200, 404, 499, 600] {
            for on in [
                RefundOn::Never,
                RefundOn::Unreachable,
                RefundOn::ServerErrors,
            ] {
                assert_eq!(on.reason(Answered(status)), None);
            }
        }
        for status in [500, 502, 503, 504, 599] {
            assert_eq!(RefundOn::Unreachable.reason(Answered(status)), None);
            assert_eq!(
                RefundOn::ServerErrors.reason(Answered(status)),
                Some(RefundReason::ServerError)
            );
        }
        assert_eq!(RefundOn::Never.reason(Unreachable), None);
        assert_eq!(RefundOn::Never.reason(TimedOut), None);
        let nothing = Taken::default();
        assert_eq!(
            nothing.refund_for(RefundOn::ServerErrors, Unreachable),
            None
        );
    }
}
