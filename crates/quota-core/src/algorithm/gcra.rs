//! GCRA (virtual scheduling form) with emission interval `T = ceil(W / N)`.

use super::{Limit, LimitOutcome, State};

/// The emission interval in ms, rounded up so the rate never exceeds `count`
/// per window (computed once, when the limit is built).
fn emission_interval(limit: &Limit) -> u64 {
    limit.interval_ms
}

fn tat(state: &State) -> u64 {
    match *state {
        State::Gcra { tat } => tat,
        _ => 0,
    }
}

pub(super) fn evaluate(limit: &Limit, state: &State, now: u64, cost: u64) -> LimitOutcome {
    outcome(limit, tat(state), now, cost)
}

/// The outcome from the theoretical arrival time (0 reads as no state).
#[inline]
pub(crate) fn outcome(limit: &Limit, tat: u64, now: u64, cost: u64) -> LimitOutcome {
    let t = emission_interval(limit);
    let tolerance = limit.count * t; // <= count * (window + count) <= 2^53 by validation
    let base = tat.max(now);
    let new_tat = base + cost * t;
    let used = base - now; // how far ahead the schedule already is
    if new_tat - now <= tolerance {
        LimitOutcome {
            admits: true,
            remaining: (tolerance - (new_tat - now)) / t,
            reset_after_ms: new_tat - now,
            retry_after_ms: 0,
        }
    } else {
        LimitOutcome {
            admits: false,
            remaining: tolerance.saturating_sub(used) / t,
            reset_after_ms: used,
            retry_after_ms: new_tat - tolerance - now,
        }
    }
}

pub(super) fn commit(limit: &Limit, state: &mut State, now: u64, cost: u64) {
    *state = State::Gcra {
        tat: next_tat(limit, tat(state), now, cost),
    };
}

/// The theoretical arrival time after admitting `cost` units at `now`.
#[inline]
pub(crate) fn next_tat(limit: &Limit, tat: u64, now: u64, cost: u64) -> u64 {
    tat.max(now) + cost * emission_interval(limit)
}
