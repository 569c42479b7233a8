//! What an [`Admission`](super::Admission) ends in: serve the request, or
//! answer a [`Refusal`] instead.

use crate::account::AccountError;
use crate::decision::OutcomeMismatch;
use crate::path::PathError;
use crate::policy::{Money, PlanError};
use crate::report::RateReport;
use crate::store::{Receipt, StoreError};
use crate::upload::UploadRefusal;

/// The end of an admission.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // `Admit` is the common case; boxing it would allocate per request
pub enum Verdict {
    /// Serve the request.
    Admit(Admit),
    /// Answer this refusal instead; the service never sees the request.
    Refuse(Refusal),
}

/// An admitted request: what its answer and its service need.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Admit {
    /// What the rate limits reported, for the answer's headers and the
    /// service: none for an unmetered endpoint, or when shadow mode lets a
    /// request through that was refused before its limits were decided.
    pub report: Option<RateReport>,
    /// The canonical path, when it is not the path asked for: the request
    /// was checked and charged under this one, so it must be served under
    /// it (with the query as it was).
    pub path: Option<Box<str>>,
    /// Whether the body must be checked against the upload rules while it
    /// streams (not for an unmetered endpoint, nor in shadow mode).
    pub guard_body: bool,
    /// The price charged to the caller's account: to give back if the
    /// request is refused after all (its body breaks an upload rule).
    pub charged: Option<Money>,
    /// The store's receipt of the decision that counted the request (none
    /// for an unmetered endpoint, a refusal shadow mode lets through, or a
    /// store that admitted without counting): to give back, with
    /// [`Admit::charged`], when the upstream fails to answer (see
    /// [`RefundOn`](super::RefundOn)).
    pub receipt: Option<Receipt>,
    /// The units the decision counted on each limit (the request's cost:
    /// 1 for one HTTP request), for a refund to give back as many.
    pub cost: u64,
    /// In shadow mode, why the request would have been refused (a 429's
    /// report is [`Admit::report`]).
    pub shadowed: Option<Reason>,
}

impl Admit {
    /// What the request took ([`Admit::receipt`], taken out, and
    /// [`Admit::charged`]), for the driver to keep while the service
    /// answers.
    pub fn take(&mut self) -> super::Taken {
        super::Taken {
            receipt: self.receipt.take(),
            credit: self.charged,
            cost: self.cost,
        }
    }
}

/// A refused request: why, and what the rate limits reported.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Refusal {
    /// Why; it gives the status and the message.
    pub reason: Reason,
    /// For a 429, what the rate limits reported (the answer's headers). In
    /// shadow mode the report is the [`Admit`]'s instead.
    pub report: Option<RateReport>,
}

impl Refusal {
    /// A refusal for `reason`, with no rate-limit report: what a driver
    /// answers for a check it makes before the machine runs (see
    /// [`Reason::UnknownCaller`]).
    pub fn new(reason: Reason) -> Self {
        Refusal {
            reason,
            report: None,
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        self.reason.status()
    }
}

/// Why a request is refused, in the order the checks run (see the
/// [module docs](super)).
///
/// The [`Display`](core::fmt::Display) text is the client's JSON `message`
/// for a 4xx; for a 5xx it is the detail for the log, and the client is
/// told only that the service is unavailable.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// 400: the path has no canonical form that may be used.
    #[error("invalid request path: {0}")]
    InvalidPath(PathError),
    /// 400: resolving the path's dot-segments left the API prefix.
    #[error("invalid request path: it climbs above {prefix:?}")]
    PathAbovePrefix {
        /// The API prefix.
        prefix: Box<str>,
    },
    /// 401: no usable API key (none, a malformed one, two different ones),
    /// in the words of the transport that read the headers.
    #[error("{0}")]
    UnusableKey(String),
    /// 500: the server cannot tell who the caller is (its key extractor
    /// needs something the server did not record, such as the client's
    /// address): a configuration error, for the log.
    #[error("cannot tell who the caller is: {0}")]
    UnknownCaller(String),
    /// 401: no account has the key.
    #[error("unknown API key")]
    UnknownKey,
    /// 503: the account source could not resolve the key.
    #[error("cannot resolve the API key: {0}")]
    ResolveFailed(AccountError),
    /// 404: the path is not under the API prefix.
    #[error("path {path:?} is not under the API prefix {prefix:?}")]
    OutsidePrefix {
        /// The canonical path.
        path: String,
        /// The API prefix.
        prefix: Box<str>,
    },
    /// 404: the path names no endpoint of the policy.
    #[error("unknown endpoint {0:?}")]
    UnknownEndpoint(String),
    /// 400: the declared body cannot be read (an unreadable
    /// `Content-Length`, a multipart type without a boundary), in the
    /// transport's words.
    #[error("{0}")]
    MalformedBody(String),
    /// 413: the declared length is over the endpoint's largest body.
    #[error("{0}")]
    BodyTooLarge(UploadRefusal),
    /// 402: the account's credit cannot pay the endpoint's price.
    #[error("insufficient credit: {endpoint} costs ${price}, the account has ${credit}")]
    InsufficientCredit {
        /// The endpoint name asked for.
        endpoint: String,
        /// Its price.
        price: Money,
        /// The account's credit.
        credit: Money,
    },
    /// 401: a caller without a key (on the policy's anonymous tier) asked
    /// for a priced endpoint: there is no account to charge.
    #[error("endpoint {endpoint:?} is priced: it needs an API key")]
    KeyRequired {
        /// The endpoint name asked for.
        endpoint: String,
    },
    /// 503: the account source could not charge the price.
    #[error("cannot charge the request: {0}")]
    ChargeFailed(AccountError),
    /// 404 (unknown endpoint), 400 (a name too long to key) or 500 (the
    /// account's tier is not in the policy: a configuration error).
    #[error("cannot plan the request: {0}")]
    Plan(PlanError),
    /// 503: the store could not decide.
    #[error("cannot decide the request: {0}")]
    DecideFailed(DecideError),
    /// 429: a rate limit refused the request.
    #[error("Too Many Attempts.")]
    TooManyRequests,
}

impl Reason {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Reason::InvalidPath(_) | Reason::PathAbovePrefix { .. } | Reason::MalformedBody(_) => {
                400
            }
            Reason::UnusableKey(_) | Reason::UnknownKey | Reason::KeyRequired { .. } => 401,
            Reason::InsufficientCredit { .. } => 402,
            Reason::OutsidePrefix { .. } | Reason::UnknownEndpoint(_) => 404,
            Reason::BodyTooLarge(refusal) => refusal.status_code(),
            Reason::Plan(PlanError::UnknownEndpoint(_)) => 404,
            Reason::Plan(PlanError::TooLong { .. }) => 400,
            Reason::Plan(_) | Reason::UnknownCaller(_) => 500,
            Reason::TooManyRequests => 429,
            Reason::ResolveFailed(_) | Reason::ChargeFailed(_) | Reason::DecideFailed(_) => 503,
        }
    }

    /// Whether the gateway failed (a 5xx) rather than the request.
    pub fn is_server_error(&self) -> bool {
        self.status() >= 500
    }
}

/// Why the store's answer gave no decision.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecideError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store answered, but not for this plan.
    #[error(transparent)]
    Mismatch(#[from] OutcomeMismatch),
}
