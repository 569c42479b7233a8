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

use core::future::Future;

use smallvec::SmallVec;

use crate::algorithm::LimitOutcome;
use crate::decision::Decision;
use crate::policy::Plan;
use crate::Timestamp;

/// One outcome per limit of a plan, in plan order.
pub type Outcomes = SmallVec<[LimitOutcome; 3]>;

/// Why a store could not decide.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached (connection refused, closed).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer in time.
    #[error("store timed out after {0} ms")]
    Timeout(u64),
    /// The backend answered something this version does not understand.
    #[error("store protocol error: {0}")]
    Protocol(String),
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
    Decision::from_outcomes(plan, &outcomes).map_err(|e| StoreError::Protocol(e.to_string()))
}
