//! How one limit's [`State`] is packed into words of a shard's arena.
//!
//! A cell is two words, three for the sliding window counter:
//!
//! | word | bits | holds |
//! |---|---|---|
//! | 0 | 0..30 | the limit's fingerprint (its low 30 bits) |
//! | 0 | 30..32 | the [`Kind`] |
//! | 0 | 32..64 | a count: `used` (fixed window), `current` (counter) |
//! | 1 | 0..64 | the window's end in ms (fixed), the window index (counter), the TAT (GCRA), or a sliding log's slot + 1 |
//! | 2 | 0..32 | the counter's `previous` count |
//!
//! Counts fit in 32 bits because limits are validated to `count <=
//! u32::MAX` and a cell never holds more than its limit admitted. A cell of
//! all-zero values reads as the empty state: every algorithm treats window 0
//! with nothing used (or a TAT of 0) exactly as it treats no state (a fixed
//! window that ended at 0 has passed, so it reads as nothing used).
//!
//! A fixed window keeps its window's end rather than its index: while
//! requests stay in one window, deciding one needs no multiplication (the
//! end is the expiry, and the time left is the end minus now).

use crate::algorithm::{fixed_window, gcra, sliding_window};
use crate::algorithm::{Algorithm, Limit, LimitOutcome, State};
use crate::Timestamp;

/// Bits of the fingerprint kept in a cell.
const FP_MASK: u64 = (1 << 30) - 1;
/// The fingerprint and kind bits of word 0.
const TAG_MASK: u64 = 0xFFFF_FFFF;

/// What a cell holds, which also says how many words it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Fixed = 0,
    Counter = 1,
    Log = 2,
    Gcra = 3,
}

impl Kind {
    pub(super) fn of(algorithm: Algorithm) -> Kind {
        match algorithm {
            Algorithm::FixedWindow => Kind::Fixed,
            Algorithm::SlidingWindow => Kind::Counter,
            Algorithm::SlidingLog => Kind::Log,
            Algorithm::Gcra => Kind::Gcra,
        }
    }

    fn from_word(word0: u64) -> Kind {
        match (word0 >> 30) & 3 {
            0 => Kind::Fixed,
            1 => Kind::Counter,
            2 => Kind::Log,
            _ => Kind::Gcra,
        }
    }

    /// Words a cell of this kind takes.
    pub(super) const fn words(self) -> usize {
        match self {
            Kind::Counter => 3,
            _ => 2,
        }
    }
}

/// The tag that finds a limit's cell: its fingerprint's low bits and its kind.
pub(super) fn tag(fingerprint: u64, kind: Kind) -> u64 {
    (fingerprint & FP_MASK) | ((kind as u64) << 30)
}

/// The tag of the cell starting with `word0`.
pub(super) fn tag_of(word0: u64) -> u64 {
    word0 & TAG_MASK
}

/// The kind of the cell starting with `word0`.
pub(super) fn kind_of(word0: u64) -> Kind {
    Kind::from_word(word0)
}

/// An empty cell for a limit, written at the start of `cell`.
pub(super) fn init(cell: &mut [u64], tag: u64) {
    for w in cell.iter_mut() {
        *w = 0;
    }
    if let Some(w) = cell.first_mut() {
        *w = tag;
    }
}

/// An inline cell's numbers as its algorithm reads them at one instant
/// (the window moved on, the previous count carried over): what both the
/// evaluation and the commit of one request start from. For a fixed
/// window, its end (ms) and the units used.
#[derive(Clone, Copy, Debug)]
pub(super) struct Seen(u64, u64, u64);

/// Reads an inline cell (every kind but [`Kind::Log`]) at `now`.
///
/// `alg` is `limit.algorithm()`, passed apart so that a caller which has
/// already matched on it (the one-limit decision) has every match here
/// resolved at compile time.
#[inline(always)]
pub(super) fn see(alg: Algorithm, cell: &[u64], limit: &Limit, now: u64) -> Seen {
    let (w0, w1) = (cell[0], cell[1]);
    match alg {
        Algorithm::FixedWindow => {
            if now < w1 {
                Seen(w1, w0 >> 32, 0)
            } else {
                Seen(fixed_window::end_of(limit, now / limit.window_ms()), 0, 0)
            }
        }
        Algorithm::SlidingWindow => {
            let (idx, previous, current) =
                sliding_window::counts_at(limit, (w1, cell[2], w0 >> 32), now);
            Seen(idx, previous, current)
        }
        Algorithm::Gcra | Algorithm::SlidingLog => Seen(w1, 0, 0),
    }
}

/// What `limit` says about a request of `cost` at `now`, from what [`see`] read.
#[inline(always)]
pub(super) fn outcome(
    alg: Algorithm,
    limit: &Limit,
    Seen(a, b, c): Seen,
    now: u64,
    cost: u64,
) -> LimitOutcome {
    match alg {
        Algorithm::FixedWindow => fixed_window::outcome_until(limit, (a, b), now, cost),
        Algorithm::SlidingWindow => sliding_window::outcome(limit, (a, b, c), now, cost),
        Algorithm::Gcra => gcra::outcome(limit, a, now, cost),
        Algorithm::SlidingLog => limit.evaluate(&State::Empty, Timestamp::from_millis(now), cost),
    }
}

/// What `limit` says about a request from an inline cell, with the
/// algorithms' own arithmetic on the cell's numbers.
#[inline]
pub(super) fn evaluate(cell: &[u64], limit: &Limit, now: u64, cost: u64) -> LimitOutcome {
    let alg = limit.algorithm();
    outcome(alg, limit, see(alg, cell, limit, now), now, cost)
}

/// Records an admitted request in an inline cell; returns when the cell
/// counts nothing any more (ms).
#[inline]
pub(super) fn commit(cell: &mut [u64], limit: &Limit, now: u64, cost: u64) -> u64 {
    let alg = limit.algorithm();
    let seen = see(alg, cell, limit, now);
    record(alg, cell, limit, seen, now, cost)
}

/// [`commit`] from what [`see`] read at the same `now`.
#[inline(always)]
pub(super) fn record(
    alg: Algorithm,
    cell: &mut [u64],
    limit: &Limit,
    Seen(a, b, c): Seen,
    now: u64,
    cost: u64,
) -> u64 {
    let tag = cell[0] & TAG_MASK;
    match alg {
        Algorithm::FixedWindow => {
            // The window's end is its expiry: a fixed window's state stops
            // counting when its window ends.
            let (end, used) = fixed_window::after((a, b), cost);
            cell[0] = tag | (u64::from(u32::try_from(used).unwrap_or(u32::MAX)) << 32);
            cell[1] = end;
            end
        }
        Algorithm::SlidingWindow => {
            let counts = sliding_window::after((a, b, c), cost);
            let (window, previous, current) = counts;
            cell[0] = tag | (u64::from(current) << 32);
            cell[1] = window;
            cell[2] = u64::from(previous);
            sliding_window::expires_at(limit, counts)
        }
        Algorithm::Gcra => {
            let tat = gcra::next_tat(limit, a, now, cost);
            cell[1] = tat;
            tat
        }
        // Logs live beside the arena; their cells are never recorded here.
        Algorithm::SlidingLog => 0,
    }
}

/// Gives back `cost` units an inline cell's limit admitted at `charged =
/// (at, reset_after_ms)`, at `now`, as
/// [`Limit::refund`](crate::algorithm::Limit::refund) does to a state.
pub(super) fn refund(cell: &mut [u64], limit: &Limit, charged: (u64, u64), now: u64, cost: u64) {
    let tag = cell[0] & TAG_MASK;
    match limit.algorithm() {
        Algorithm::FixedWindow => {
            if let Some(used) = fixed_window::refunded((cell[1], cell[0] >> 32), charged, cost) {
                cell[0] = tag | (used << 32);
            }
        }
        Algorithm::SlidingWindow => {
            let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
            let counts = (cell[1], narrow(cell[2]), narrow(cell[0] >> 32));
            if let Some((window, previous, current)) =
                sliding_window::refunded(limit, counts, charged, cost)
            {
                cell[0] = tag | (u64::from(current) << 32);
                cell[1] = window;
                cell[2] = u64::from(previous);
            }
        }
        Algorithm::Gcra => cell[1] = gcra::refunded(limit, cell[1], charged, now, cost),
        // Logs live beside the arena.
        Algorithm::SlidingLog => {}
    }
}

/// The log slot a [`Kind::Log`] cell points at, if any.
pub(super) fn log_slot(cell: &[u64]) -> Option<usize> {
    let v = cell.get(1).copied().unwrap_or(0);
    v.checked_sub(1).and_then(|s| usize::try_from(s).ok())
}

/// Points a [`Kind::Log`] cell at a log slot.
pub(super) fn set_log_slot(cell: &mut [u64], slot: usize) {
    if let Some(w) = cell.get_mut(1) {
        *w = slot as u64 + 1;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_decides_as_the_state_it_holds() {
        for alg in [
            Algorithm::FixedWindow,
            Algorithm::SlidingWindow,
            Algorithm::Gcra,
        ] {
            let kind = Kind::of(alg);
            let limit = Limit::from_millis(4, 1_000, alg).unwrap();
            let mut cell = [0u64; 3];
            let cell = &mut cell[..kind.words()];
            init(cell, tag(0xDEAD_BEEF_CAFE, kind));
            let mut state = State::Empty;
            for now in [
                5_000, 5_001, 5_400, 5_999, 6_000, 6_500, 6_501, 9_000, 9_100,
            ] {
                let t = Timestamp::from_millis(now);
                let expected = limit.evaluate(&state, t, 1);
                assert_eq!(evaluate(cell, &limit, now, 1), expected, "{alg:?} at {now}");
                if expected.admits {
                    limit.commit(&mut state, t, 1);
                    assert_eq!(commit(cell, &limit, now, 1), limit.expires_at(&state));
                }
                assert_eq!(tag_of(cell[0]), tag(0xDEAD_BEEF_CAFE, kind));
            }
        }
    }

    #[test]
    fn a_cell_refunds_as_the_state_it_holds() {
        for alg in [
            Algorithm::FixedWindow,
            Algorithm::SlidingWindow,
            Algorithm::Gcra,
        ] {
            let kind = Kind::of(alg);
            let limit = Limit::from_millis(4, 1_000, alg).unwrap();
            let mut cell = [0u64; 3];
            let cell = &mut cell[..kind.words()];
            init(cell, tag(7, kind));
            let mut state = State::Empty;
            let mut taken = Vec::new();
            for now in [5_000, 5_001, 5_400, 5_999, 6_000, 6_500, 7_200, 9_000] {
                let t = Timestamp::from_millis(now);
                let outcome = limit.evaluate(&state, t, 1);
                if outcome.admits {
                    limit.commit(&mut state, t, 1);
                    commit(cell, &limit, now, 1);
                    taken.push((now, outcome));
                }
                // Give back every other one, a little later.
                if now % 2 == 0 {
                    if let Some((at, o)) = taken.pop() {
                        let later = now + 150;
                        limit.refund(
                            &mut state,
                            Timestamp::from_millis(at),
                            &o,
                            1,
                            Timestamp::from_millis(later),
                        );
                        refund(cell, &limit, (at, o.reset_after_ms), later, 1);
                    }
                }
                let probe = Timestamp::from_millis(now + 200);
                assert_eq!(
                    evaluate(cell, &limit, probe.as_millis(), 1),
                    limit.evaluate(&state, probe, 1),
                    "{alg:?} at {now}"
                );
            }
        }
    }

    #[test]
    fn a_fresh_cell_reads_as_nothing_counted() {
        for alg in [
            Algorithm::FixedWindow,
            Algorithm::SlidingWindow,
            Algorithm::Gcra,
        ] {
            let kind = Kind::of(alg);
            let mut cell = [0u64; 3];
            let cell = &mut cell[..kind.words()];
            init(cell, tag(1, kind));
            let limit = Limit::from_millis(5, 60_000, alg).unwrap();
            for now in [0, 1, 59_999, 60_000, 1_795_860_000_000] {
                let now = Timestamp::from_millis(now);
                assert_eq!(
                    evaluate(cell, &limit, now.as_millis(), 1),
                    limit.evaluate(&State::Empty, now, 1),
                    "{alg:?} at {now:?}"
                );
            }
        }
    }
}
