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

/// The theoretical arrival time after giving back `cost` units admitted at
/// `at` with an outcome of `reset_after_ms`, at `now`, from `tat`.
///
/// The admission set the TAT to `a = at + reset_after_ms`. Had it never
/// happened, the TAT would be `cost * T` lower as long as the schedule
/// never ran dry since; a request that found it dry in between took up part
/// of that room itself, and the state does not say which. So what is given
/// back is `min(cost * T, a - now)` (nothing once `a` has passed): never
/// more than the request's own room, never a TAT below `now` (a budget
/// beyond the burst), and exactly the request's room when no other request
/// came after it. A TAT below `a` is not the state the request was counted
/// in (it expired since): nothing changes.
#[inline]
pub(crate) fn refunded(
    limit: &Limit,
    tat: u64,
    (at, reset_after_ms): (u64, u64),
    now: u64,
    cost: u64,
) -> u64 {
    let a = at.saturating_add(reset_after_ms);
    if tat < a {
        return tat;
    }
    let room = cost
        .saturating_mul(emission_interval(limit))
        .min(a.saturating_sub(now));
    tat - room
}

pub(super) fn refund(limit: &Limit, state: &mut State, charged: (u64, u64), now: u64, cost: u64) {
    if let State::Gcra { tat } = *state {
        *state = State::Gcra {
            tat: refunded(limit, tat, charged, now, cost),
        };
    }
}
