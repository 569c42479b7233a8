//! The in-memory store: the embedded default.
//!
//! Sharded by account (every bucket of one account lives in one shard, so a
//! multi-limit decision takes exactly one lock and there is no global lock).
//! Memory is bounded: a bucket is dropped once every window it counts has
//! passed, by an amortised sweep of its shard (when the shard has doubled
//! since its last sweep, and at least every [`SWEEP_INTERVAL_MS`] of the
//! callers' clock).
//!
//! ```
//! use quota_core::{policy::{Policy, Request}, MemoryStore, Timestamp};
//!
//! let policy = Policy::seed();
//! let store = MemoryStore::new();
//! let req = Request { account: "k", tier: "premium", endpoint: "txt2img", cost: 1 };
//! let d = store.check(&policy, &req, Timestamp::from_secs(60)).unwrap();
//! assert!(d.is_admitted());
//! assert_eq!(d.minute().unwrap().remaining(), 299);
//! ```

mod cell;
mod shard;

use std::hash::BuildHasher;

use parking_lot::Mutex;

use crate::algorithm::LimitOutcome;
use crate::decision::Decision;
use crate::policy::{Bucket, Plan, PlanError, Policy, Request};
use crate::store::{Counted, Outcomes, Receipt, Store, StoreError};
use crate::Timestamp;
use shard::{bucket_hash, Shard};

pub(crate) use shard::MAX_KEY_PART;

/// The tag of the cell that holds the state of a limit with this
/// fingerprint and algorithm (policies work it out once per limit).
pub(crate) fn cell_tag(fingerprint: u64, algorithm: crate::algorithm::Algorithm) -> u64 {
    cell::tag(fingerprint, cell::Kind::of(algorithm))
}

/// A shard is swept at least this often (callers' clock), if it holds anything.
pub const SWEEP_INTERVAL_MS: u64 = 10_000;

/// Thread-safe in-memory state for every (account, scope, limit).
///
/// Each shard keeps its buckets packed in one arena of words (header, key
/// bytes, states) with a table of 4-byte offsets, so a bucket costs its
/// key's length rounded up to 8 bytes, plus 16 bytes per limit and 16 of
/// header; `docs/performance.md` has the measured figures.
pub struct MemoryStore {
    /// parking_lot mutexes: they do not poison, and a shard is never left
    /// half-written (each state is written whole).
    shards: Box<[Padded<Mutex<Shard>>]>,
    hasher: foldhash::fast::RandomState,
    mask: usize,
}

#[repr(align(128))]
struct Padded<T>(T);

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store with 64 shards.
    pub fn new() -> Self {
        Self::with_shards(64)
    }

    /// A store with `n` shards (rounded up to a power of two, at least 1).
    pub fn with_shards(n: usize) -> Self {
        let n = n.max(1).next_power_of_two();
        MemoryStore {
            shards: (0..n).map(|_| Padded(Mutex::new(Shard::new()))).collect(),
            hasher: foldhash::fast::RandomState::default(),
            mask: n - 1,
        }
    }

    /// Plans and decides a request in one call.
    ///
    /// # Errors
    /// [`PlanError`] for an unknown tier or endpoint, or an impossible cost.
    pub fn check<'a>(
        &self,
        policy: &'a Policy,
        req: &Request<'a>,
        now: Timestamp,
    ) -> Result<Decision<'a>, PlanError> {
        let plan = policy.plan(req)?;
        let outcomes = self.decide_now(&plan, now);
        Ok(decision(&plan, &outcomes))
    }

    /// Decides a plan at `now`: commits every limit if all admit, nothing otherwise.
    #[inline]
    pub fn decide_now(&self, plan: &Plan<'_>, now: Timestamp) -> Outcomes {
        self.run::<true>(plan, now)
    }

    /// What [`MemoryStore::decide_now`] would answer, changing nothing.
    #[inline]
    pub fn peek_now(&self, plan: &Plan<'_>, now: Timestamp) -> Outcomes {
        self.run::<false>(plan, now)
    }

    /// Decides `plan` against one of `parts` equal shares of every limit
    /// ([`Limit::share`]): what a node of a fleet of `parts` applies on its
    /// own when the fleet's shared store is out of reach. A request whose
    /// cost exceeds a share is refused (retry after one window).
    ///
    /// [`Limit::share`]: crate::algorithm::Limit::share
    pub fn decide_share(&self, plan: &Plan<'_>, now: Timestamp, parts: u64) -> Outcomes {
        let mut outcomes = Outcomes::new();
        self.run_with::<true>(plan, now, parts, &mut outcomes);
        outcomes
    }

    /// What [`MemoryStore::decide_share`] would answer, changing nothing.
    pub fn peek_share(&self, plan: &Plan<'_>, now: Timestamp, parts: u64) -> Outcomes {
        let mut outcomes = Outcomes::new();
        self.run_with::<false>(plan, now, parts, &mut outcomes);
        outcomes
    }

    /// Gives back what the decision of `plan` that `receipt` describes
    /// counted, at `now` (see [`Store::refund`]).
    pub fn refund_now(&self, plan: &Plan<'_>, receipt: &Receipt, now: Timestamp) {
        self.refund_share(plan, receipt, now, 1);
    }

    /// [`MemoryStore::refund_now`] for a decision of
    /// [`MemoryStore::decide_share`] with the same `parts`.
    pub fn refund_share(&self, plan: &Plan<'_>, receipt: &Receipt, now: Timestamp, parts: u64) {
        if plan.is_empty() || !receipt.admitted() || receipt.outcomes.len() != plan.len() {
            return;
        }
        let account = plan.account().as_bytes();
        let h_account = self.hasher.hash_one(account);
        let mut shard = self.shards[shard_of(h_account, self.mask)].0.lock();
        let mut outcomes = &receipt.outcomes[..];
        for bucket in plan.buckets() {
            let (mine, rest) = outcomes.split_at(bucket.limits().len().min(outcomes.len()));
            outcomes = rest;
            let scope = bucket.scope().as_bytes();
            let h = bucket_hash(&self.hasher, h_account, scope);
            if let Some(r) = shard.find(h, account, scope) {
                let at = (receipt.at, now, plan.cost(), parts);
                shard.refund(r, bucket.limits(), mine, at);
            }
        }
    }

    /// Buckets held (each holds the states of one account's scope).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().len()).sum()
    }

    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every bucket whose windows have all passed at `now`.
    pub fn sweep(&self, now: Timestamp) {
        for s in self.shards.iter() {
            s.0.lock().sweep(&self.hasher, now.as_millis());
        }
    }

    /// Forgets every state of `account` (every scope and limit): its
    /// counters start again from nothing. What the admin API's usage reset does.
    pub fn forget_account(&self, account: &str) {
        for s in self.shards.iter() {
            s.0.lock().forget_account(&self.hasher, account.as_bytes());
        }
    }

    /// Forgets every state.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            s.0.lock().clear();
        }
    }

    /// Outcomes are written into the caller's frame (this is inlined), not
    /// copied out of the decision's.
    #[inline(always)]
    fn run<const COMMIT: bool>(&self, plan: &Plan<'_>, now: Timestamp) -> Outcomes {
        let mut outcomes = Outcomes::new();
        self.run_with::<COMMIT>(plan, now, 1, &mut outcomes);
        outcomes
    }

    /// Decides (`COMMIT`) or peeks at `plan`, pushing one outcome per limit
    /// into `outcomes` (empty on entry: every caller passes a new vector).
    /// `COMMIT` is a constant so that each of the two has its own copy,
    /// without a test of it in the hot path. Never inlined: its callers
    /// stay small, and the outcomes land in their frames.
    #[inline(never)]
    fn run_with<const COMMIT: bool>(
        &self,
        plan: &Plan<'_>,
        now: Timestamp,
        parts: u64,
        outcomes: &mut Outcomes,
    ) {
        if plan.is_empty() {
            return;
        }
        let account = plan.account().as_bytes();
        let h_account = self.hasher.hash_one(account);
        let mut guard = self.shards[shard_of(h_account, self.mask)].0.lock();
        let shard = &mut *guard;
        let mut buckets = plan.buckets();
        if let (Some(bucket), 0, 1) = (buckets.next(), buckets.len(), parts) {
            // One bucket in the steady state (the common case): its record
            // holds exactly these cells; decide them in place.
            let scope = bucket.scope().as_bytes();
            let h = bucket_hash(&self.hasher, h_account, scope);
            if let Some(r) = shard.find(h, account, scope) {
                let at = (now.as_millis(), plan.cost());
                if let Some(admitted) = shard.decide_in_place(
                    (r, account.len() + scope.len()),
                    bucket.limits(),
                    at,
                    COMMIT,
                    outcomes,
                ) {
                    if COMMIT && admitted {
                        shard.maybe_sweep_in_place(&self.hasher, now.as_millis());
                    }
                    return;
                }
            }
        }
        self.run_general(shard, plan, h_account, (now, COMMIT, parts), outcomes);
    }

    /// Every other case (several buckets, a new bucket or limit, a sliding
    /// log, a share of a fleet's limits): evaluates every bucket, then
    /// commits every one (looking each record up again: committing one
    /// bucket may move another's).
    #[inline(never)]
    fn run_general(
        &self,
        shard: &mut Shard,
        plan: &Plan<'_>,
        h_account: u64,
        (now, commit, parts): (Timestamp, bool, u64),
        outcomes: &mut Outcomes,
    ) {
        let account = plan.account().as_bytes();
        let cost = plan.cost();
        let locate = |scope: &str| bucket_hash(&self.hasher, h_account, scope.as_bytes());
        let mut all_admit = true;
        for bucket in plan.buckets() {
            let scope = bucket.scope();
            let record = shard.find(locate(scope), account, scope.as_bytes());
            all_admit &= evaluate(shard, record, &bucket, (now, cost, parts), outcomes);
        }
        if commit && all_admit {
            for bucket in plan.buckets() {
                let scope = bucket.scope();
                let h = locate(scope);
                let record = shard.find(h, account, scope.as_bytes());
                let key = (account, scope.as_bytes());
                let at = (now, cost, parts);
                shard.commit(&self.hasher, h, key, record, bucket.limits(), at);
            }
            shard.maybe_sweep(&self.hasher, now.as_millis());
        }
    }
}

/// The shard of an account whose hash is `h_account`, for a store of
/// `mask + 1` shards: from bits 32 and up, which a shard's index never
/// reads. (hashbrown starts its probe at the hash's low bits, masked to the
/// table's size, and tags slots with its top 7; taking the shard from bits
/// a table also probes with fixes those bits for every key of the shard,
/// so its keys crowd into a fraction of the table's groups: with bits 7..13,
/// as before, 512 starting places for 15,000 keys a shard at a million.)
#[inline(always)]
fn shard_of(h_account: u64, mask: usize) -> usize {
    (h_account >> 32) as usize & mask
}

/// Evaluates every limit of `bucket` against its record (or empty states),
/// pushing one outcome per limit; true when all admit.
fn evaluate(
    shard: &Shard,
    record: Option<usize>,
    bucket: &Bucket<'_>,
    (now, cost, parts): (Timestamp, u64, u64),
    outcomes: &mut Outcomes,
) -> bool {
    let mut all_admit = true;
    for limit in bucket.limits() {
        let cell = record.and_then(|r| shard.cell(r, limit));
        let limit = limit.limit().share(parts);
        let outcome = if cost <= limit.count() {
            shard.evaluate(cell, &limit, now, cost)
        } else {
            // More than a whole share: never admitted here (and the
            // arithmetic requires cost <= count). Report the share's state.
            let probe = shard.evaluate(cell, &limit, now, 1);
            LimitOutcome {
                admits: false,
                remaining: probe.remaining + u64::from(probe.admits),
                retry_after_ms: limit.window_ms(),
                ..probe
            }
        };
        all_admit &= outcome.admits;
        outcomes.push(outcome);
    }
    all_admit
}

fn decision<'a>(plan: &Plan<'a>, outcomes: &[LimitOutcome]) -> Decision<'a> {
    match Decision::from_outcomes(plan, outcomes) {
        Ok(d) => d,
        // The memory store returns exactly one outcome per limit.
        Err(e) => unreachable!("{e}"),
    }
}

impl Store for MemoryStore {
    fn decide<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> impl core::future::Future<Output = Result<Outcomes, StoreError>> + Send + 'a {
        core::future::ready(Ok(self.decide_now(plan, now)))
    }

    fn peek<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> impl core::future::Future<Output = Result<Outcomes, StoreError>> + Send + 'a {
        core::future::ready(Ok(self.peek_now(plan, now)))
    }

    fn refund<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        receipt: &'a Receipt,
        now: Timestamp,
    ) -> impl core::future::Future<Output = Result<(), StoreError>> + Send + 'a {
        if receipt.counted == Counted::Store {
            self.refund_now(plan, receipt, now);
        }
        core::future::ready(Ok(()))
    }

    fn answers_at_once(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::shard_of;

    #[test]
    fn the_shard_comes_from_bits_no_index_reads() {
        // hashbrown probes from the low bits (up to 32 of them for a u32
        // offset's table) and tags with the top 7: none of them may move
        // the shard, or a shard's keys crowd into part of its table.
        let mask = 63;
        for bit in (0..32).chain(57..64) {
            assert_eq!(shard_of(1 << bit, mask), 0, "bit {bit}");
        }
        let shards: std::collections::BTreeSet<usize> =
            (32..38).map(|bit| shard_of(1 << bit, mask)).collect();
        assert_eq!(shards.len(), 6);
    }
}
