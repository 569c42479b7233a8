//! One shard of the memory store: packed records in two arenas, and an index.
//!
//! A record holds every state of one bucket, `(account, scope)`. Records
//! live back to back in one `Vec<u64>` per shard and their key bytes in one
//! `Vec<u8>`, so a bucket costs its words, its key bytes and a 4-byte index
//! entry, with no allocation of its own:
//!
//! | word | holds |
//! |---|---|
//! | 0 | when every state here counts nothing any more (ms, bits 0..48); the cells' length in words (bits 48..63); "moved" (bit 63) |
//! | 1 | the key's offset in the key arena (bits 0..32), the account's length (32..48), the scope's length (48..64) |
//! | 2.. | one cell per limit ([`cell`]) |
//!
//! A record whose bucket gains a limit (a reloaded policy) is copied to the
//! end of the arena with the new cell and the old copy is marked moved. The
//! sweep drops expired and moved records and compacts both arenas.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use smallvec::SmallVec;

use super::cell::{self, Kind};
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
    keys: Vec<u8>,
    /// Sliding logs, by slot (their cells hold the slot number).
    logs: Vec<State>,
    free_logs: Vec<usize>,
    /// Words of moved records, reclaimed by the next sweep.
    moved_words: usize,
    sweep_at_len: usize,
    last_sweep: u64,
}

/// The decoded header of the record at `r`.
#[derive(Clone, Copy)]
struct Header {
    expires: u64,
    cells: usize,
    moved: bool,
    key: usize,
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
            key: (w1 & 0xFFFF_FFFF) as usize,
            account_len: ((w1 >> 32) & 0xFFFF) as usize,
            scope_len: (w1 >> 48) as usize,
        }
    }

    fn len(&self) -> usize {
        HEADER_WORDS + self.cells
    }

    fn account<'k>(&self, keys: &'k [u8]) -> &'k [u8] {
        &keys[self.key..self.key + self.account_len]
    }

    fn scope<'k>(&self, keys: &'k [u8]) -> &'k [u8] {
        let start = self.key + self.account_len;
        &keys[start..start + self.scope_len]
    }
}

fn header_words(
    expires: u64,
    cells: usize,
    key: usize,
    account_len: usize,
    scope_len: usize,
) -> [u64; 2] {
    [
        expires.min(EXPIRES_MASK) | ((cells as u64 & CELLS_MASK) << CELLS_SHIFT),
        (key as u64 & 0xFFFF_FFFF)
            | ((account_len as u64 & 0xFFFF) << 32)
            | ((scope_len as u64 & 0xFFFF) << 48),
    ]
}

/// The tag of a limit's cell.
fn tag(limit: &PolicyLimit) -> u64 {
    cell::tag(limit.fingerprint(), Kind::of(limit.limit().algorithm()))
}

/// Whether `cell` is `limit`'s and can be decided in place for `cost`:
/// an inline cell (logs live beside the arena) and a cost within the count.
#[inline]
fn decides_in_place(cell: &[u64], limit: &PolicyLimit, cost: u64) -> bool {
    cell::tag_of(cell[0]) == tag(limit)
        && limit.limit().algorithm() != Algorithm::SlidingLog
        && cost <= limit.limit().count()
}

/// The hash of a bucket from the hashes of its account and scope.
pub(super) fn combine(account_hash: u64, scope_hash: u64) -> u64 {
    account_hash
        ^ scope_hash
            .rotate_left(29)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn record_hash<S: BuildHasher>(hasher: &S, words: &[u64], keys: &[u8], r: usize) -> u64 {
    let h = Header::read(words, r);
    combine(
        hasher.hash_one(h.account(keys)),
        hasher.hash_one(h.scope(keys)),
    )
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
            ..Shard::default()
        }
    }

    /// Buckets held.
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// The record of `(account, scope)`.
    #[inline]
    pub(super) fn find(&self, h: u64, account: &[u8], scope: &[u8]) -> Option<usize> {
        let (words, keys) = (&self.words, &self.keys);
        self.index
            .find(h, |&r| {
                let Some(&w1) = words.get(r as usize + 1) else {
                    return false;
                };
                let (key, account_len) =
                    ((w1 & 0xFFFF_FFFF) as usize, ((w1 >> 32) & 0xFFFF) as usize);
                account_len == account.len()
                    && (w1 >> 48) as usize == scope.len()
                    && match keys.get(key..key + account_len + scope.len()) {
                        Some(k) => {
                            let (a, s) = k.split_at(account_len);
                            crate::bytes::eq(a, account) && crate::bytes::eq(s, scope)
                        }
                        None => false,
                    }
            })
            .map(|&r| r as usize)
    }

    /// The cell of `limit` in the record at `r`.
    #[inline]
    pub(super) fn cell(&self, r: usize, limit: &PolicyLimit) -> Option<usize> {
        let tag = tag(limit);
        let n = ((self.words[r] >> CELLS_SHIFT) & CELLS_MASK) as usize;
        let mut i = r + HEADER_WORDS;
        let end = i + n;
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

    /// Decides a bucket in the record at `r` when the record holds exactly
    /// the bucket's inline cells, in order (the steady state): evaluates
    /// every limit, pushing its outcome, and when all admit and `commit`,
    /// records the request. `None` (and no outcome pushed) when the record
    /// is laid out otherwise; the caller then takes the general path.
    #[inline]
    pub(super) fn decide_in_place(
        &mut self,
        r: usize,
        limits: &[PolicyLimit],
        (now, cost): (u64, u64),
        commit: bool,
        outcomes: &mut Outcomes,
    ) -> Option<bool> {
        let end = r + HEADER_WORDS + ((self.words[r] >> CELLS_SHIFT) & CELLS_MASK) as usize;
        if let [l] = limits {
            // One limit: read the cell once, then decide and record.
            let limit = l.limit();
            let at = r + HEADER_WORDS;
            let cell = self.words.get_mut(at..end)?;
            if cell.len() != Kind::of(limit.algorithm()).words() || !decides_in_place(cell, l, cost)
            {
                return None;
            }
            let seen = cell::see(cell, limit, now);
            let outcome = cell::outcome(limit, seen, now, cost);
            outcomes.push(outcome);
            if commit && outcome.admits {
                let until = cell::record(cell, limit, seen, now, cost).min(EXPIRES_MASK);
                let header = self.words[r];
                self.words[r] = (header & !EXPIRES_MASK) | (header & EXPIRES_MASK).max(until);
            }
            return Some(outcome.admits);
        }
        let cells = self.words.get(r + HEADER_WORDS..end)?;
        let mut at = 0;
        let mut all_admit = true;
        for l in limits {
            let limit = l.limit();
            let words = Kind::of(limit.algorithm()).words();
            let cell = cells.get(at..at + words)?;
            if !decides_in_place(cell, l, cost) {
                outcomes.clear();
                return None;
            }
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
            let mut expires = self.words[r] & EXPIRES_MASK;
            let mut i = r + HEADER_WORDS;
            for l in limits {
                let limit = l.limit();
                let until = cell::commit(&mut self.words[i..], limit, now, cost);
                expires = expires.max(until.min(EXPIRES_MASK));
                i += Kind::of(limit.algorithm()).words();
            }
            self.words[r] = (self.words[r] & !EXPIRES_MASK) | expires;
        }
        Some(all_admit)
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
        let mut expires = self.words[r] & EXPIRES_MASK;
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
            expires = expires.max(until.min(EXPIRES_MASK));
        }
        self.words[r] = (self.words[r] & !EXPIRES_MASK) | expires;
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
        let key = self.keys.len();
        reserve(&mut self.keys, account.len() + scope.len());
        self.keys.extend_from_slice(account);
        self.keys.extend_from_slice(scope);
        let cells: usize = limits
            .iter()
            .map(|l| Kind::of(l.limit().algorithm()).words())
            .sum();
        let r = self.words.len();
        reserve(&mut self.words, HEADER_WORDS + cells);
        self.words
            .extend(header_words(0, cells, key, account.len(), scope.len()));
        for l in limits {
            self.push_cell(tag(l));
        }
        let (words, keys) = (&self.words, &self.keys);
        self.index.insert_unique(h, r as u32, |&x| {
            record_hash(hasher, words, keys, x as usize)
        });
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
            .map(tag)
            .collect();
        let added: usize = missing.iter().map(|&t| cell::kind_of(t).words()).sum();
        // Keep the cells of limits no longer in this bucket (a policy being
        // reloaded may still plan with them) unless the record gets too big.
        let keep_all = old.cells + added <= MAX_CELL_WORDS;
        let wanted: SmallVec<[u64; 4]> = limits.iter().map(tag).collect();
        let mut kept = Vec::new();
        let mut i = r + HEADER_WORDS;
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
        reserve(&mut self.words, HEADER_WORDS + cells);
        self.words.extend(header_words(
            old.expires,
            cells,
            old.key,
            old.account_len,
            old.scope_len,
        ));
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

    /// Sweeps when the shard has doubled since its last sweep, when moved
    /// records take half the arena, or every `interval_ms` of the callers' clock.
    pub(super) fn maybe_sweep<S: BuildHasher>(&mut self, hasher: &S, now: u64, interval_ms: u64) {
        if self.index.len() >= self.sweep_at_len
            || self.moved_words * 2 > self.words.len().max(64)
            || now >= self.last_sweep.saturating_add(interval_ms)
        {
            self.sweep(hasher, now);
        }
    }

    /// Drops every record whose windows have all passed at `now` (and moved
    /// copies), then compacts the arenas and rebuilds the index.
    pub(super) fn sweep<S: BuildHasher>(&mut self, hasher: &S, now: u64) {
        self.last_sweep = now;
        let mut live_words = 0;
        let mut live_keys = 0;
        let mut live = 0;
        let mut dead = false;
        let mut r = 0;
        while r < self.words.len() {
            let h = Header::read(&self.words, r);
            if !h.moved && h.expires > now {
                live += 1;
                live_words += h.len();
                live_keys += h.account_len + h.scope_len;
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
        let mut keys = Vec::with_capacity(live_keys + live_keys / 8);
        let mut index = HashTable::with_capacity(live);
        let mut r = 0;
        while r < self.words.len() {
            let h = Header::read(&self.words, r);
            if !h.moved && h.expires > now {
                let at = words.len();
                words.extend(header_words(
                    h.expires,
                    h.cells,
                    keys.len(),
                    h.account_len,
                    h.scope_len,
                ));
                words.extend_from_slice(&self.words[r + HEADER_WORDS..r + h.len()]);
                keys.extend_from_slice(h.account(&self.keys));
                keys.extend_from_slice(h.scope(&self.keys));
                let hash = record_hash(hasher, &words, &keys, at);
                index.insert_unique(hash, at as u32, |&x: &u32| {
                    record_hash(hasher, &words, &keys, x as usize)
                });
            } else if !h.moved {
                let mut i = r + HEADER_WORDS;
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
        self.keys = keys;
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
