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

use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};

use hashbrown::HashTable;
use smallvec::SmallVec;

use crate::algorithm::{LimitOutcome, State};
use crate::decision::Decision;
use crate::policy::{Bucket, Plan, PlanError, Policy, Request};
use crate::store::{Outcomes, Store, StoreError};
use crate::Timestamp;

/// A shard is swept at least this often (callers' clock), if it holds anything.
pub const SWEEP_INTERVAL_MS: u64 = 10_000;

/// Thread-safe in-memory state for every (account, scope, limit).
pub struct MemoryStore {
    shards: Box<[Padded<Mutex<Shard>>]>,
    hasher: foldhash::fast::RandomState,
    mask: usize,
}

#[repr(align(128))]
struct Padded<T>(T);

#[derive(Default)]
struct Shard {
    table: HashTable<Slot>,
    sweep_at_len: usize,
    last_sweep: u64,
}

/// The states of one bucket: `(account, scope)`.
struct Slot {
    /// The account followed by the scope, in one allocation.
    key: Box<str>,
    /// Where the account ends in `key`.
    account_len: u32,
    /// When every state here counts nothing any more (ms since the epoch).
    expires_at: u64,
    /// `(limit fingerprint, state)`.
    states: SmallVec<[(u64, State); 2]>,
}

impl Slot {
    /// Records an admitted request in every limit of the bucket.
    fn commit(&mut self, bucket: &Bucket<'_>, now: Timestamp, cost: u64, parts: u64) {
        for limit in bucket.limits() {
            let fp = limit.fingerprint();
            let idx = match self.states.iter().position(|(f, _)| *f == fp) {
                Some(i) => i,
                None => {
                    self.states.push((fp, State::Empty));
                    self.states.len() - 1
                }
            };
            let state = &mut self.states[idx].1;
            let limit = limit.limit().share(parts);
            limit.commit(state, now, cost);
            self.expires_at = self.expires_at.max(limit.expires_at(state));
        }
    }

    fn state(&self, fingerprint: u64) -> Option<&State> {
        self.states
            .iter()
            .find(|(fp, _)| *fp == fingerprint)
            .map(|(_, st)| st)
    }

    fn account(&self) -> &str {
        self.key.get(..self.account_len as usize).unwrap_or("")
    }

    fn scope(&self) -> &str {
        self.key.get(self.account_len as usize..).unwrap_or("")
    }

    fn is(&self, account: &str, scope: &str) -> bool {
        self.account_len as usize == account.len()
            && self.key.len() == account.len() + scope.len()
            && self.key.starts_with(account)
            && self.key.ends_with(scope)
    }
}

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
            shards: (0..n)
                .map(|_| {
                    Padded(Mutex::new(Shard {
                        sweep_at_len: 64,
                        ..Shard::default()
                    }))
                })
                .collect(),
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
    pub fn decide_now(&self, plan: &Plan<'_>, now: Timestamp) -> Outcomes {
        self.run(plan, now, true)
    }

    /// What [`MemoryStore::decide_now`] would answer, changing nothing.
    pub fn peek_now(&self, plan: &Plan<'_>, now: Timestamp) -> Outcomes {
        self.run(plan, now, false)
    }

    /// Decides `plan` against one of `parts` equal shares of every limit
    /// ([`Limit::share`]): what a node of a fleet of `parts` applies on its
    /// own when the fleet's shared store is out of reach. A request whose
    /// cost exceeds a share is refused (retry after one window).
    ///
    /// [`Limit::share`]: crate::algorithm::Limit::share
    pub fn decide_share(&self, plan: &Plan<'_>, now: Timestamp, parts: u64) -> Outcomes {
        self.run_with(plan, now, true, parts)
    }

    /// What [`MemoryStore::decide_share`] would answer, changing nothing.
    pub fn peek_share(&self, plan: &Plan<'_>, now: Timestamp, parts: u64) -> Outcomes {
        self.run_with(plan, now, false, parts)
    }

    /// Buckets held (each holds the states of one account's scope).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.0).table.len()).sum()
    }

    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every bucket whose windows have all passed at `now`.
    pub fn sweep(&self, now: Timestamp) {
        for s in self.shards.iter() {
            lock(&s.0).sweep(now.as_millis());
        }
    }

    /// Forgets every state.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            lock(&s.0).table.clear();
        }
    }

    fn slot_hash(&self, account_hash: u64, scope: &str) -> u64 {
        combine(account_hash, self.hasher.hash_one(scope))
    }

    fn run(&self, plan: &Plan<'_>, now: Timestamp, commit: bool) -> Outcomes {
        self.run_with(plan, now, commit, 1)
    }

    fn run_with(&self, plan: &Plan<'_>, now: Timestamp, commit: bool, parts: u64) -> Outcomes {
        let mut outcomes = Outcomes::new();
        if plan.is_empty() {
            return outcomes;
        }
        let account = plan.account();
        let h_account = self.hasher.hash_one(account);
        let mut shard = lock(&self.shards[(h_account as usize >> 7) & self.mask].0);
        let cost = plan.cost();
        if let [bucket] = plan.buckets() {
            // One bucket (the common case): one lookup, then evaluate and
            // commit on the same slot.
            let h = self.slot_hash(h_account, bucket.scope());
            let admitted = match shard.table.find_mut(h, |s| s.is(account, bucket.scope())) {
                Some(slot) => {
                    let admitted = evaluate(Some(slot), bucket, now, cost, parts, &mut outcomes);
                    if commit && admitted {
                        slot.commit(bucket, now, cost, parts);
                    }
                    admitted
                }
                None => {
                    let admitted = evaluate(None, bucket, now, cost, parts, &mut outcomes);
                    if commit && admitted {
                        shard.commit(&self.hasher, account, bucket, h, (now, cost, parts));
                    }
                    admitted
                }
            };
            if commit && admitted {
                shard.maybe_sweep(now.as_millis());
            }
            return outcomes;
        }
        // Several buckets: evaluate every one, then commit every one.
        let mut hashes: SmallVec<[u64; 2]> = SmallVec::new();
        let mut all_admit = true;
        for bucket in plan.buckets() {
            let h = self.slot_hash(h_account, bucket.scope());
            hashes.push(h);
            let slot = shard.table.find(h, |s| s.is(account, bucket.scope()));
            all_admit &= evaluate(slot, bucket, now, cost, parts, &mut outcomes);
        }
        if commit && all_admit {
            for (bucket, &h) in plan.buckets().iter().zip(&hashes) {
                shard.commit(&self.hasher, account, bucket, h, (now, cost, parts));
            }
            shard.maybe_sweep(now.as_millis());
        }
        outcomes
    }
}

impl Shard {
    fn commit(
        &mut self,
        hasher: &foldhash::fast::RandomState,
        account: &str,
        bucket: &Bucket<'_>,
        h: u64,
        (now, cost, parts): (Timestamp, u64, u64),
    ) {
        let rehash = |s: &Slot| combine(hasher.hash_one(s.account()), hasher.hash_one(s.scope()));
        let slot = match self.table.find_mut(h, |s| s.is(account, bucket.scope())) {
            Some(slot) => slot,
            None => self
                .table
                .insert_unique(
                    h,
                    Slot {
                        key: [account, bucket.scope()].concat().into(),
                        account_len: u32::try_from(account.len()).unwrap_or(u32::MAX),
                        expires_at: 0,
                        states: SmallVec::new(),
                    },
                    rehash,
                )
                .into_mut(),
        };
        slot.commit(bucket, now, cost, parts);
    }

    fn maybe_sweep(&mut self, now: u64) {
        if self.table.len() >= self.sweep_at_len
            || now >= self.last_sweep.saturating_add(SWEEP_INTERVAL_MS)
        {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: u64) {
        self.table.retain(|s| s.expires_at > now);
        self.sweep_at_len = (self.table.len() * 2).max(64);
        self.last_sweep = now;
    }
}

/// Evaluates every limit of `bucket` against its slot (or empty states),
/// pushing one outcome per limit; true when all admit.
fn evaluate(
    slot: Option<&Slot>,
    bucket: &Bucket<'_>,
    now: Timestamp,
    cost: u64,
    parts: u64,
    outcomes: &mut Outcomes,
) -> bool {
    let mut all_admit = true;
    for limit in bucket.limits() {
        let state = slot
            .and_then(|s| s.state(limit.fingerprint()))
            .unwrap_or(&State::Empty);
        let limit = limit.limit().share(parts);
        let outcome = if cost <= limit.count() {
            limit.evaluate(state, now, cost)
        } else {
            // More than a whole share: never admitted here (and the
            // arithmetic requires cost <= count). Report the share's state.
            let probe = limit.evaluate(state, now, 1);
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

/// The hash of a bucket from the hashes of its account and scope.
fn combine(account_hash: u64, scope_hash: u64) -> u64 {
    account_hash
        ^ scope_hash
            .rotate_left(29)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A poisoned lock only means another thread panicked mid-decision; every
/// state is written whole, so the data is still consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
}
