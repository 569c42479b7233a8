//! The storage trait: where per-key state lives and who makes a decision atomic.
//!
//! A store applies the core arithmetic ([`Limit::evaluate`] then
//! [`Limit::commit`]) to every limit of a [`Plan`] atomically: either every
//! limit admits and all commit, or nothing changes. It answers with one
//! [`LimitOutcome`] per limit, in plan order; [`Decision::from_outcomes`]
//! turns them into a decision. The in-memory store ([`MemoryStore`]) and the
//! Redis store implement this trait, and one conformance suite runs against
//! both.
//!
//! [`Limit::evaluate`]: crate::algorithm::Limit::evaluate
//! [`Limit::commit`]: crate::algorithm::Limit::commit
//! [`MemoryStore`]: crate::MemoryStore

use core::fmt;
use core::future::Future;
use std::error::Error;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::algorithm::LimitOutcome;
use crate::decision::Decision;
use crate::policy::Plan;
use crate::Timestamp;

/// One outcome per limit of a plan, in plan order.
pub type Outcomes = SmallVec<[LimitOutcome; 3]>;

/// A backend's error, as [`StoreError::with_source`] and
/// [`AccountError::with_source`](crate::account::AccountError::with_source)
/// take it: anything that converts into it (any `Error + Send + Sync`, a
/// `String`, a `&str`) will do.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// A backend's error kept as the cause of a [`StoreError`] or an
/// [`AccountError`](crate::account::AccountError): shared, so the error
/// stays `Clone`. [`Error::source`] hands out the backend's error itself,
/// so it downcasts to its own type.
pub type ErrorSource = Arc<dyn Error + Send + Sync + 'static>;

/// Why a store could not decide.
///
/// Built with [`StoreError::unavailable`], [`StoreError::timeout`] or
/// [`StoreError::protocol`], and [`StoreError::with_source`] to keep the
/// backend's own error (a Redis error, an I/O error) as the
/// [`source`](Error::source). The message is the one shown: it already
/// says what the source says.
///
/// ```
/// use std::error::Error as _;
/// use quota_core::StoreError;
///
/// let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// let e = StoreError::unavailable("connection refused").with_source(refused);
/// assert_eq!(e.to_string(), "store unavailable: connection refused");
/// assert!(e.is_transient()); // worth another try later
/// let source = e.source().unwrap();
/// assert_eq!(source.downcast_ref::<std::io::Error>().unwrap().kind(), std::io::ErrorKind::ConnectionRefused);
/// assert!(!StoreError::protocol("unexpected reply").is_transient());
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached (connection refused, closed).
    Unavailable {
        /// What went wrong, as shown.
        message: String,
        /// The backend's error, when there is one.
        source: Option<ErrorSource>,
    },
    /// The backend did not answer in time.
    Timeout {
        /// How long the call was given, in milliseconds.
        after_ms: u64,
        /// The backend's error, when the timeout was its own.
        source: Option<ErrorSource>,
    },
    /// The backend answered something this version does not understand.
    Protocol {
        /// What went wrong, as shown.
        message: String,
        /// The backend's error, when there is one.
        source: Option<ErrorSource>,
    },
}

impl StoreError {
    /// [`StoreError::Unavailable`] without a source.
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// [`StoreError::Timeout`] after `after_ms` milliseconds, without a source.
    pub fn timeout(after_ms: u64) -> Self {
        StoreError::Timeout {
            after_ms,
            source: None,
        }
    }

    /// [`StoreError::Protocol`] without a source.
    pub fn protocol(message: impl Into<String>) -> Self {
        StoreError::Protocol {
            message: message.into(),
            source: None,
        }
    }

    /// The same error, keeping `source` as its cause (replacing any).
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        let slot = match &mut self {
            StoreError::Unavailable { source, .. }
            | StoreError::Timeout { source, .. }
            | StoreError::Protocol { source, .. } => source,
        };
        *slot = Some(Arc::from(source.into()));
        self
    }

    /// Whether the same call may succeed later: the backend was unreachable
    /// or slow ([`Unavailable`](StoreError::Unavailable),
    /// [`Timeout`](StoreError::Timeout)). A [`Protocol`](StoreError::Protocol)
    /// error is not: the backend answered, and will answer the same.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable { .. } | StoreError::Timeout { .. } => true,
            StoreError::Protocol { .. } => false,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable { message, .. } => write!(f, "store unavailable: {message}"),
            StoreError::Timeout { after_ms, .. } => {
                write!(f, "store timed out after {after_ms} ms")
            }
            StoreError::Protocol { message, .. } => write!(f, "store protocol error: {message}"),
        }
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        let (StoreError::Unavailable { source, .. }
        | StoreError::Timeout { source, .. }
        | StoreError::Protocol { source, .. }) = self;
        source_of(source.as_ref())
    }
}

/// The backend's error itself (not the `Arc` around it), so it downcasts.
pub(crate) fn source_of(source: Option<&ErrorSource>) -> Option<&(dyn Error + 'static)> {
    source.map(|e| {
        let e: &(dyn Error + 'static) = &**e;
        e
    })
}

/// What a decision counted, kept to give it back with [`Store::refund`]
/// (when the upstream failed to answer the request it admitted).
///
/// [`Store::decide_with_receipt`] makes it; [`Receipt::outcomes`] are what
/// [`Store::decide`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// One outcome per limit, in plan order.
    pub outcomes: Outcomes,
    /// The time the decision was taken at, on the store's clock (the
    /// caller's `now`, or the store's own).
    pub at: Timestamp,
    /// Where the decision was counted.
    pub counted: Counted,
}

/// Where a store counted a decision: what [`Store::refund`] gives back from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Counted {
    /// In the store's own state (the shared one, for a shared store).
    #[default]
    Store,
    /// In a fallback the store decided by while its own state was out of
    /// reach (the Redis store's `local:N` failure policy).
    Fallback,
    /// Nowhere: admitted without counting (the Redis store's `open`
    /// failure policy). Nothing to give back.
    Nothing,
}

impl Receipt {
    /// The receipt of `outcomes` decided at `at`, counted in the store's
    /// own state.
    pub fn new(outcomes: Outcomes, at: Timestamp) -> Self {
        Receipt {
            outcomes,
            at,
            counted: Counted::Store,
        }
    }

    /// Whether the decision admitted the request (every limit admitted),
    /// and so counted it: only then is there anything to give back.
    pub fn admitted(&self) -> bool {
        self.outcomes.iter().all(|o| o.admits)
    }
}

/// A place that keeps limit state and decides plans atomically.
///
/// `now` is the caller's clock. A store with a clock of its own (the Redis
/// store reads Redis `TIME`, so every gateway node agrees) may ignore it and
/// says so in its docs.
pub trait Store: Send + Sync {
    /// Decides every limit of `plan` at `now`: commits all of them if all
    /// admit, nothing otherwise.
    fn decide<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Outcomes, StoreError>> + Send + 'a;

    /// What [`Store::decide`] would answer, changing nothing.
    fn peek<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Outcomes, StoreError>> + Send + 'a;

    /// [`Store::decide`], answered with what [`Store::refund`] needs to give
    /// the decision back. The default is right for a store on the caller's
    /// clock that always counts in its own state: the outcomes, decided at
    /// `now`. A store with a clock of its own, or a fallback, says so here.
    fn decide_with_receipt<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Receipt, StoreError>> + Send + 'a {
        async move {
            self.decide(plan, now)
                .await
                .map(|outcomes| Receipt::new(outcomes, now))
        }
    }

    /// Gives back, at `now`, what the decision of `plan` (the same plan)
    /// that `receipt` describes counted, atomically: every limit as
    /// [`Limit::refund`](crate::algorithm::Limit::refund) says (never a
    /// budget beyond a limit). Nothing changes for a decision that refused
    /// ([`Receipt::admitted`]) or counted nothing ([`Counted::Nothing`]).
    ///
    /// Giving the same receipt back twice is a mistake the store cannot
    /// always see; call it once per decision.
    fn refund<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        receipt: &'a Receipt,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;

    /// Whether every future this store returns is ready at its first poll
    /// (the store does no I/O, as [`MemoryStore`](crate::MemoryStore)).
    /// A driver may then poll each future once, in place, instead of
    /// keeping it across a wait: the enforcement layer checks a request
    /// without a future of its own. A future that is still pending after
    /// that one poll is dropped and taken for a failure of the store.
    /// The default, `false`, is right for every store that waits.
    fn answers_at_once(&self) -> bool {
        false
    }
}

/// Decides `plan` through `store` and builds the [`Decision`].
///
/// # Errors
/// The store's error, or [`StoreError::Protocol`] when its answer does not fit the plan.
pub async fn decide<'p, S: Store + ?Sized>(
    store: &S,
    plan: &Plan<'p>,
    now: Timestamp,
) -> Result<Decision<'p>, StoreError> {
    let outcomes = store.decide(plan, now).await?;
    Decision::from_outcomes(plan, &outcomes)
        .map_err(|e| StoreError::protocol(e.to_string()).with_source(e))
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::account::AccountError;

    #[test]
    fn messages_are_unchanged_by_a_source() {
        let cause = || std::io::Error::other("reset by peer");
        for (e, shown) in [
            (
                StoreError::unavailable("refused"),
                "store unavailable: refused",
            ),
            (StoreError::timeout(250), "store timed out after 250 ms"),
            (
                StoreError::protocol("odd reply"),
                "store protocol error: odd reply",
            ),
        ] {
            assert_eq!(e.to_string(), shown);
            assert!(e.source().is_none());
            let with = e.with_source(cause());
            assert_eq!(with.to_string(), shown);
            let source = with.source().expect("kept");
            assert!(
                source.downcast_ref::<std::io::Error>().is_some(),
                "{source:?}"
            );
            // A clone shares the same source.
            assert!(with.clone().source().is_some());
        }
    }

    #[test]
    fn only_unreachable_or_slow_backends_are_transient() {
        assert!(StoreError::unavailable("x").is_transient());
        assert!(StoreError::timeout(1).is_transient());
        assert!(!StoreError::protocol("x").is_transient());
        assert!(AccountError::unavailable("x").is_transient());
        assert!(!AccountError::corrupt("x").is_transient());
        assert!(!AccountError::NotFound("a".into()).is_transient());
        assert!(!AccountError::Exists("a".into()).is_transient());
    }

    #[test]
    fn an_account_error_from_a_store_keeps_it() {
        let e = AccountError::from_store(StoreError::protocol("odd reply"));
        assert_eq!(
            e.to_string(),
            "account store unavailable: store protocol error: odd reply"
        );
        assert!(!e.is_transient());
        let source = e.source().expect("kept");
        assert!(matches!(
            source.downcast_ref::<StoreError>(),
            Some(StoreError::Protocol { .. })
        ));
    }
}
