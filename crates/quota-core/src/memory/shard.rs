//! One shard of the memory store: packed records in one arena, and an index.
//!
//! A record holds every state of one bucket, `(account, scope)`, and its
//! key. Records live back to back in one `Vec<u64>` per shard, so a bucket
//! costs its words and a 4-byte index entry, with no allocation of its own;
//! and finding one touches the index and then the record alone (its key
//! and its cells are in the same cache lines):
//!
//! | word | holds |
//! |---|---|
//! | 0 | when every state here counts nothing any more (ms, bits 0..48); the cells' length in words (bits 48..63); "moved" (bit 63) |
//! | 1 | the account's length (bits 32..48), the scope's length (48..64) |
//! | 2.. | the key: the account's bytes then the scope's, zero-padded to whole words |
//! | then | one cell per limit ([`cell`]) |
//!
//! A record whose bucket gains a limit (a reloaded policy) is copied to the
//! end of the arena with the new cell and the old copy is marked moved. The
//! sweep drops expired and moved records and compacts the arena.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use smallvec::SmallVec;

use super::cell::{self, Kind};
use super::SWEEP_INTERVAL_MS;
use crate::algorithm::{Algorithm, Limit, LimitOutcome, State};
use crate::policy::PolicyLimit;
use crate::store::Outcomes;
use crate::Timestamp;

const HEADER_WORDS: usize = 2;
const EXPIRES_MASK: u64 = (1 << 48) - 1;
const CELLS_SHIFT: u32 = 48;
const CELLS_MASK: u64 = (1 << 15) - 1;
const MOVED: u64 = 1 << 63;
/// The most cell words a record holds: cells of limits that left the policy
/// are dropped when a record would grow past this.
const MAX_CELL_WORDS: usize = CELLS_MASK as usize;

/// The longest account or scope a record can hold (in bytes). Plans refuse
/// longer ones.
pub(crate) const MAX_KEY_PART: usize = u16::MAX as usize;

#[derive(Default)]
pub(super) struct Shard {
    /// Offsets of records in `words`.
    index: HashTable<u32>,
    words: Vec<u64>,
    /// Sliding logs, by slot (their cells hold the slot number).
    logs: Vec<State>,
    free_logs: Vec<usize>,
    /// Words of moved records, reclaimed by the next sweep.
    moved_words: usize,
    sweep_at_len: usize,
    /// The callers' clock (ms) from which a sweep is due whatever else:
    /// the last sweep's plus [`SWEEP_INTERVAL_MS`] (worked out at the sweep,
    /// so a decision compares once).
    sweep_due: u64,
}

/// The decoded header of the record at `r`.
#[derive(Clone, Copy)]
struct Header {
    expires: u64,
    cells: usize,
    moved: bool,
    account_len: usize,
    scope_len: usize,
}

impl Header {
    fn read(words: &[u64], r: usize) -> Header {
        let (w0, w1) = (words[r], words[r + 1]);
        Header {
            expires: w0 & EXPIRES_MASK,
            cells: ((w0 >> CELLS_SHIFT) & CELLS_MASK) as usize,
            moved: w0 & MOVED != 0,
            account_len: ((w1 >> 32) & 0xFFFF) as usize,
            scope_len: (w1 >> 48) as usize,
        }
    }

    fn key_words(&self) -> usize {
        key_words(self.account_len + self.scope_len)
    }

    /// Words of the record: header, key and cells.
    fn len(&self) -> usize {
        HEADER_WORDS + self.key_words() + self.cells
    }

    /// Where the record's cells start, relative to the record.
    fn cells_at(&self) -> usize {
        HEADER_WORDS + self.key_words()
    }
}

/// Words holding a key of `len` bytes.
const fn key_words(len: usize) -> usize {
    len.div_ceil(8)
}

/// Word 1 of a record: the lengths of its account and scope.
fn lens_word(account_len: usize, scope_len: usize) -> u64 {
    ((account_len as u64 & 0xFFFF) << 32) | ((scope_len as u64 & 0xFFFF) << 48)
}

fn header_words(expires: u64, cells: usize, account_len: usize, scope_len: usize) -> [u64; 2] {
    [
        expires.min(EXPIRES_MASK) | ((cells as u64 & CELLS_MASK) << CELLS_SHIFT),
        lens_word(account_len, scope_len),
    ]
}

/// Appends a key's words: `account` then `scope`, zero-padded.
fn push_key(words: &mut Vec<u64>, account: &[u8], scope: &[u8]) {
    let at = words.len();
    words.resize(at + key_words(account.len() + scope.len()), 0);
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words[at..]);
    bytes[..account.len()].copy_from_slice(account);
    bytes[account.len()..account.len() + scope.len()].copy_from_slice(scope);
}

/// The account and scope of the record at `r`.
fn key_of(words: &[u64], r: usize) -> (&[u8], &[u8]) {
    let h = Header::read(words, r);
    let at = r + HEADER_WORDS;
    let bytes: &[u8] = bytemuck::cast_slice(&words[at..at + h.key_words()]);
    bytes[..h.account_len + h.scope_len].split_at(h.account_len)
}

/// Whether `cell` is `limit`'s and can be decided in place for `cost`:
/// an inline cell (logs live beside the arena) and a cost within the count.
#[inline]
fn decides_in_place(cell: &[u64], limit: &PolicyLimit, cost: u64) -> bool {
    cell::tag_of(cell[0]) == limit.cell_tag()
        && limit.limit().algorithm() != Algorithm::SlidingLog
        && cost <= limit.limit().count()
}

/// Sets `outcomes`, empty on entry (a decision's own vector), to the first
/// `len` of `buf`: built whole, which is cheaper than pushing (a call each).
#[inline(always)]
fn fill(outcomes: &mut Outcomes, buf: [LimitOutcome; 3], len: usize) {
    debug_assert!(outcomes.is_empty());
    *outcomes = Outcomes::from_buf_and_len(buf, len);
}

/// Moves the expiry in header word 0 to `until` (ms) if that is later.
#[inline(always)]
fn extend(w0: &mut u64, until: u64) {
    // The same as `(w0 & !MASK) | (w0 & MASK).max(until.min(MASK))`, with a
    // branch for the common case (the expiry stays: no store at all).
    if until > *w0 & EXPIRES_MASK {
        *w0 = (*w0 & !EXPIRES_MASK) | until.min(EXPIRES_MASK);
    }
}

/// The hash of a bucket from its account's hash and its scope: the
/// account's own for the tier-wide scope (`*`, the most common), so that
/// needs no second hash. (Keys are still compared in full.)
#[inline]
pub(super) fn bucket_hash<S: BuildHasher>(hasher: &S, account_hash: u64, scope: &[u8]) -> u64 {
    if scope == b"*" {
        return account_hash;
    }
    account_hash
        ^ hasher
            .hash_one(scope)
            .rotate_left(29)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn record_hash<S: BuildHasher>(hasher: &S, words: &[u64], r: usize) -> u64 {
    let (account, scope) = key_of(words, r);
    bucket_hash(hasher, hasher.hash_one(account), scope)
}

/// Reserves room for `additional` more items, growing by an eighth at a
/// time rather than doubling: the arenas are the store's memory.
fn reserve<T>(v: &mut Vec<T>, additional: usize) {
    if v.capacity() - v.len() < additional {
        v.reserve_exact(additional.max(v.len() / 8).max(32));
    }
}

impl Shard {
    pub(super) fn new() -> Self {
        Shard {
            sweep_at_len: 64,
            sweep_due: SWEEP_INTERVAL_MS,
            ..Shard::default()
        }
    }

    /// Buckets held.
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// The record of `(account, scope)`.
    ///
    /// Walks the index's candidates itself rather than through
    /// `HashTable::find`, whose comparison is a call through a `dyn` closure.
    #[inline(always)]
    pub(super) fn find(&self, h: u64, account: &[u8], scope: &[u8]) -> Option<usize> {
        let words = &self.words;
        let lens = lens_word(account.len(), scope.len());
        let n = account.len() + scope.len();
        let len = HEADER_WORDS + key_words(n);
        for &r in self.index.iter_hash(h) {
            let r = r as usize;
            // One bounds check for the header and the key.
            let Some(record) = words.get(r..r + len) else {
                continue;
            };
            if record[1] != lens {
                continue;
            }
            let bytes: &[u8] = bytemuck::cast_slice(&record[HEADER_WORDS..]);
            let (a, s) = bytes[..n].split_at(account.len());
            if crate::bytes::eq(a, account) && crate::bytes::eq(s, scope) {
                return Some(r);
            }
        }
        None
    }

    /// The cell of `limit` in the record at `r`.
    #[inline]
    pub(super) fn cell(&self, r: usize, limit: &PolicyLimit) -> Option<usize> {
        let tag = limit.cell_tag();
        let header = Header::read(&self.words, r);
        let mut i = r + header.cells_at();
        let end = i + header.cells;
        while i < end {
            let w0 = self.words[i];
            if cell::tag_of(w0) == tag {
                return Some(i);
            }
            i += cell::kind_of(w0).words();
        }
        None
    }

    /// What `limit` says about a request, from the cell at `i` (or no state).
    #[inline]
    pub(super) fn evaluate(
        &self,
        i: Option<usize>,
        limit: &Limit,
        now: Timestamp,
        cost: u64,
    ) -> LimitOutcome {
        let Some(i) = i else {
            return limit.evaluate(&State::Empty, now, cost);
        };
        if limit.algorithm() == Algorithm::SlidingLog {
            let state = cell::log_slot(&self.words[i..i + 2]).and_then(|s| self.logs.get(s));
            return limit.evaluate(state.unwrap_or(&State::Empty), now, cost);
        }
        cell::evaluate(&self.words[i..], limit, now.as_millis(), cost)
    }

    /// Decides a bucket in the record at `r`, whose key is `key_len` bytes
    /// long, when the record holds exactly the bucket's inline cells, in
    /// order (the steady state): evaluates every limit, pushing its
    /// outcome, and when all admit and `commit`, records the request (from
    /// what the evaluation read, for one or two limits). `None` (and no
    /// outcome pushed) when the record is laid out otherwise; the caller
    /// then takes the general path. `outcomes` is empty on entry (a
    /// decision's own vector).
    #[inline]
    pub(super) fn decide_in_place(
        &mut self,
        (r, key_len): (usize, usize),
        limits: &[PolicyLimit],
        (now, cost): (u64, u64),
        commit: bool,
        outcomes: &mut Outcomes,
    ) -> Option<bool> {
        if let [l] = limits {
            // One limit (the most common shape): one match on its algorithm,
            // then that algorithm's code alone.
            let at = (r, key_len);
            let req = (now, cost, commit);
            return match l.limit().algorithm() {
                Algorithm::FixedWindow => {
                    self.decide_one(Algorithm::FixedWindow, at, l, req, outcomes)
                }
                Algorithm::SlidingWindow => {
                    self.decide_one(Algorithm::SlidingWindow, at, l, req, outcomes)
                }
                Algorithm::Gcra => self.decide_one(Algorithm::Gcra, at, l, req, outcomes),
                Algorithm::SlidingLog => None,
            };
        }
        let h = Header::read(&self.words, r);
        let at = r + h.cells_at();
        let cells = at..at + h.cells;
        if let [a, b] = limits {
            // Two limits (the seed's Basic shape: a minute and a day on one
            // endpoint), without the loops either; two fixed windows (the
            // default) with every match on the algorithms resolved.
            let algs = (a.limit().algorithm(), b.limit().algorithm());
            let fixed = Algorithm::FixedWindow;
            let req = (now, cost, commit);
            if algs == (fixed, fixed) {
                return self.decide_two((fixed, fixed), (r, cells), (a, b), req, outcomes);
            }
            return self.decide_two(algs, (r, cells), (a, b), req, outcomes);
        }
        let cells = self.words.get_mut(cells)?;
        // Three limits or more (rare): evaluate each cell, then commit each.
        let mut at = 0;
        let mut all_admit = true;
        for l in limits {
            let limit = l.limit();
            let words = Kind::of(limit.algorithm()).words();
            let Some(cell) = cells
                .get(at..at + words)
                .filter(|c| decides_in_place(c, l, cost))
            else {
                outcomes.clear();
                return None;
            };
            let outcome = cell::evaluate(cell, limit, now, cost);
            all_admit &= outcome.admits;
            outcomes.push(outcome);
            at += words;
        }
        if at != cells.len() {
            outcomes.clear();
            return None;
        }
        if commit && all_admit {
            let mut until = 0;
            let mut at = 0;
            for l in limits {
                let limit = l.limit();
                until = until.max(cell::commit(&mut cells[at..], limit, now, cost));
                at += Kind::of(limit.algorithm()).words();
            }
            self.extend_expiry(r, until);
        }
        Some(all_admit)
    }

    /// The two-limit case of [`Shard::decide_in_place`], on the record's
    /// cells `cells` (a range of the arena; its header is word 0 of the
    /// record, `r`), for limits whose algorithms are `(ga, gb)`.
    #[inline(always)]
    fn decide_two(
        &mut self,
        (ga, gb): (Algorithm, Algorithm),
        (r, cells): (usize, core::ops::Range<usize>),
        (a, b): (&PolicyLimit, &PolicyLimit),
        (now, cost, commit): (u64, u64, bool),
        outcomes: &mut Outcomes,
    ) -> Option<bool> {
        let (la, lb) = (a.limit(), b.limit());
        let wa = Kind::of(ga).words();
        let cells = self.words.get_mut(cells)?;
        if cells.len() != wa + Kind::of(gb).words() {
            return None;
        }
        let (ca, cb) = cells.split_at_mut(wa);
        if !decides_in_place(ca, a, cost) || !decides_in_place(cb, b, cost) {
            return None;
        }
        let (sa, sb) = (cell::see(ga, ca, la, now), cell::see(gb, cb, lb, now));
        let (oa, ob) = (
            cell::outcome(ga, la, sa, now, cost),
            cell::outcome(gb, lb, sb, now, cost),
        );
        if outcomes.is_empty() {
            // Built whole rather than pushed twice (each push is a call).
            *outcomes = Outcomes::from_buf_and_len([oa, ob, LimitOutcome::default()], 2);
        } else {
            outcomes.extend([oa, ob]);
        }
        let admitted = oa.admits && ob.admits;
        if commit && admitted {
            let until = cell::record(ga, ca, la, sa, now, cost);
            let until = until.max(cell::record(gb, cb, lb, sb, now, cost));
            self.extend_expiry(r, until);
        }
        Some(admitted)
    }

    /// The one-limit case of [`Shard::decide_in_place`] for a limit whose
    /// algorithm is `alg` (inlined at each call with `alg` a constant, so
    /// every match on the algorithm below is resolved at compile time).
    #[inline(always)]
    fn decide_one(
        &mut self,
        alg: Algorithm,
        (r, key_len): (usize, usize),
        l: &PolicyLimit,
        (now, cost, commit): (u64, u64, bool),
        outcomes: &mut Outcomes,
    ) -> Option<bool> {
        let limit = l.limit();
        let cells_at = HEADER_WORDS + key_words(key_len);
        let words = Kind::of(alg).words();
        let record = self.words.get_mut(r..r + cells_at + words)?;
        let (header, cell) = record.split_at_mut(cells_at);
        // Exactly this one cell (a moved record's flag fails this too), the
        // limit's, and a cost within its count.
        if header[0] >> CELLS_SHIFT != words as u64
            || cell::tag_of(cell[0]) != l.cell_tag()
            || cost > limit.count()
        {
            return None;
        }
        let seen = cell::see(alg, cell, limit, now);
        let outcome = cell::outcome(alg, limit, seen, now, cost);
        let none = LimitOutcome::default();
        fill(outcomes, [outcome, none, none], 1);
        if commit && outcome.admits {
            let until = cell::record(alg, cell, limit, seen, now, cost);
            extend(&mut header[0], until);
        }
        Some(outcome.admits)
    }

    /// Moves the expiry of the record at `r` to `until` (ms) if that is later.
    #[inline(always)]
    fn extend_expiry(&mut self, r: usize, until: u64) {
        extend(&mut self.words[r], until);
    }

    /// Records an admitted request in every limit of a bucket whose record
    /// (if any) is at `record`, adding the record or its missing cells first.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn commit<S: BuildHasher>(
        &mut self,
        hasher: &S,
        h: u64,
        (account, scope): (&[u8], &[u8]),
        record: Option<usize>,
        limits: &[PolicyLimit],
        (now, cost, parts): (Timestamp, u64, u64),
    ) {
        let lacks_cells = record.is_none_or(|r| limits.iter().any(|l| self.cell(r, l).is_none()));
        let r = match record {
            Some(r) if !lacks_cells => r,
            Some(r) => self.grow(h, r, limits),
            None => self.create(hasher, h, account, scope, limits),
        };
        for limit in limits {
            let Some(i) = self.cell(r, limit) else {
                continue;
            };
            let limit = limit.limit().share(parts);
            let until = if limit.algorithm() == Algorithm::SlidingLog {
                self.commit_log(i, &limit, now, cost)
            } else {
                cell::commit(&mut self.words[i..], &limit, now.as_millis(), cost)
            };
            self.extend_expiry(r, until);
        }
    }

    /// Gives back, in the record at `r`, what its `limits` admitted with
    /// `outcomes` (one per limit, in order) at `at`, at `now`: see
    /// [`Limit::refund`]. A limit without a cell counts nothing to give.
    pub(super) fn refund(
        &mut self,
        r: usize,
        limits: &[PolicyLimit],
        outcomes: &[LimitOutcome],
        (at, now, cost, parts): (Timestamp, Timestamp, u64, u64),
    ) {
        for (limit, outcome) in limits.iter().zip(outcomes) {
            let Some(i) = self.cell(r, limit) else {
                continue;
            };
            let limit = limit.limit().share(parts);
            if !outcome.admits || cost > limit.count() {
                continue;
            }
            if limit.algorithm() == Algorithm::SlidingLog {
                let slot = cell::log_slot(&self.words[i..i + 2]);
                if let Some(state) = slot.and_then(|s| self.logs.get_mut(s)) {
                    limit.refund(state, at, outcome, cost, now);
                }
            } else {
                let charged = (at.as_millis(), outcome.reset_after_ms);
                cell::refund(&mut self.words[i..], &limit, charged, now.as_millis(), cost);
            }
        }
    }

    fn commit_log(&mut self, i: usize, limit: &Limit, now: Timestamp, cost: u64) -> u64 {
        let cell = &mut self.words[i..i + 2];
        let slot = match cell::log_slot(cell) {
            Some(s) if s < self.logs.len() => s,
            _ => {
                let s = self.free_logs.pop().unwrap_or(self.logs.len());
                if s == self.logs.len() {
                    self.logs.push(State::Empty);
                }
                cell::set_log_slot(cell, s);
                s
            }
        };
        let state = &mut self.logs[slot];
        limit.commit(state, now, cost);
        limit.expires_at(state)
    }

    /// Appends a new record with an empty cell per limit.
    fn create<S: BuildHasher>(
        &mut self,
        hasher: &S,
        h: u64,
        account: &[u8],
        scope: &[u8],
        limits: &[PolicyLimit],
    ) -> usize {
        let cells: usize = limits
            .iter()
            .map(|l| Kind::of(l.limit().algorithm()).words())
            .sum();
        let r = self.words.len();
        let key = key_words(account.len() + scope.len());
        reserve(&mut self.words, HEADER_WORDS + key + cells);
        self.words
            .extend(header_words(0, cells, account.len(), scope.len()));
        push_key(&mut self.words, account, scope);
        for l in limits {
            self.push_cell(l.cell_tag());
        }
        let words = &self.words;
        self.index
            .insert_unique(h, r as u32, |&x| record_hash(hasher, words, x as usize));
        r
    }

    fn push_cell(&mut self, tag: u64) {
        let at = self.words.len();
        self.words.resize(at + cell::kind_of(tag).words(), 0);
        cell::init(&mut self.words[at..], tag);
    }

    /// Copies the record at `r` to the end with a cell for every limit it
    /// lacks, and points the index at the copy.
    fn grow(&mut self, h: u64, r: usize, limits: &[PolicyLimit]) -> usize {
        let old = Header::read(&self.words, r);
        let missing: SmallVec<[u64; 4]> = limits
            .iter()
            .filter(|l| self.cell(r, l).is_none())
            .map(PolicyLimit::cell_tag)
            .collect();
        let added: usize = missing.iter().map(|&t| cell::kind_of(t).words()).sum();
        // Keep the cells of limits no longer in this bucket (a policy being
        // reloaded may still plan with them) unless the record gets too big.
        let keep_all = old.cells + added <= MAX_CELL_WORDS;
        let wanted: SmallVec<[u64; 4]> = limits.iter().map(PolicyLimit::cell_tag).collect();
        let mut kept = Vec::new();
        let mut i = r + old.cells_at();
        while i < r + old.len() {
            let kind = cell::kind_of(self.words[i]);
            if keep_all || wanted.contains(&cell::tag_of(self.words[i])) {
                kept.push((i, kind.words()));
            } else if kind == Kind::Log {
                self.free_log(i);
            }
            i += kind.words();
        }
        let cells = kept.iter().map(|&(_, n)| n).sum::<usize>() + added;
        let new_r = self.words.len();
        reserve(&mut self.words, old.cells_at() + cells);
        self.words.extend(header_words(
            old.expires,
            cells,
            old.account_len,
            old.scope_len,
        ));
        self.words
            .extend_from_within(r + HEADER_WORDS..r + old.cells_at());
        for (at, n) in kept {
            self.words.extend_from_within(at..at + n);
        }
        for t in missing {
            self.push_cell(t);
        }
        // The old copy: moved, expired, its logs now owned by the copy.
        self.words[r] = MOVED | ((old.cells as u64) << CELLS_SHIFT);
        self.moved_words += old.len();
        if let Some(e) = self.index.find_mut(h, |&x| x as usize == r) {
            *e = new_r as u32;
        }
        new_r
    }

    fn free_log(&mut self, i: usize) {
        if let Some(s) = cell::log_slot(&self.words[i..i + 2]) {
            if let Some(st) = self.logs.get_mut(s) {
                *st = State::Empty;
                self.free_logs.push(s);
            }
        }
    }

    /// [`Shard::maybe_sweep`] after a decision in place, which adds and moves
    /// no record: only the clock can have made a sweep due (the other two
    /// conditions are checked whenever a commit adds or moves one).
    #[inline]
    pub(super) fn maybe_sweep_in_place<S: BuildHasher>(&mut self, hasher: &S, now: u64) {
        if now >= self.sweep_due {
            self.sweep(hasher, now);
        }
    }

    /// Sweeps when the shard has doubled since its last sweep, when moved
    /// records take half the arena, or every [`SWEEP_INTERVAL_MS`] of the
    /// callers' clock.
    pub(super) fn maybe_sweep<S: BuildHasher>(&mut self, hasher: &S, now: u64) {
        if self.index.len() >= self.sweep_at_len
            || self.moved_words * 2 > self.words.len().max(64)
            || now >= self.sweep_due
        {
            self.sweep(hasher, now);
        }
    }

    /// Drops every record whose windows have all passed at `now` (and moved
    /// copies), then compacts the arena and rebuilds the index.
    pub(super) fn sweep<S: BuildHasher>(&mut self, hasher: &S, now: u64) {
        self.sweep_due = now.saturating_add(SWEEP_INTERVAL_MS);
        self.retain(hasher, |h, _| h.expires > now);
    }

    /// Drops every record of `account`, whatever its windows.
    pub(super) fn forget_account<S: BuildHasher>(&mut self, hasher: &S, account: &[u8]) {
        self.retain(hasher, |_, (a, _)| a != account);
    }

    /// Keeps the records that are not moved and that `keep` accepts (by
    /// header and key), compacting the arena when any is dropped.
    fn retain<S: BuildHasher>(
        &mut self,
        hasher: &S,
        keep: impl Fn(&Header, (&[u8], &[u8])) -> bool,
    ) {
        let live_at = |words: &[u64], r: usize| {
            let h = Header::read(words, r);
            !h.moved && keep(&h, key_of(words, r))
        };
        let mut live_words = 0;
        let mut live = 0;
        let mut dead = false;
        let mut r = 0;
        while r < self.words.len() {
            let h = Header::read(&self.words, r);
            if live_at(&self.words, r) {
                live += 1;
                live_words += h.len();
            } else {
                dead = true;
            }
            r += h.len();
        }
        self.sweep_at_len = (live * 2).max(64);
        if !dead {
            return;
        }
        let mut words = Vec::with_capacity(live_words + live_words / 8);
        let mut index = HashTable::with_capacity(live);
        let mut r = 0;
        while r < self.words.len() {
            let h = Header::read(&self.words, r);
            if live_at(&self.words, r) {
                let at = words.len();
                words.extend_from_slice(&self.words[r..r + h.len()]);
                let hash = record_hash(hasher, &words, at);
                index.insert_unique(hash, at as u32, |&x: &u32| {
                    record_hash(hasher, &words, x as usize)
                });
            } else if !h.moved {
                let mut i = r + h.cells_at();
                while i < r + h.len() {
                    let kind = cell::kind_of(self.words[i]);
                    if kind == Kind::Log {
                        self.free_log(i);
                    }
                    i += kind.words();
                }
            }
            r += h.len();
        }
        self.words = words;
        self.index = index;
        self.moved_words = 0;
        if self.free_logs.len() == self.logs.len() {
            self.logs = Vec::new();
            self.free_logs = Vec::new();
        }
    }

    /// Forgets everything.
    pub(super) fn clear(&mut self) {
        *self = Shard::new();
    }
}
