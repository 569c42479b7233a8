//! Fixed window aligned to the epoch: window `k` covers `[k*W, (k+1)*W)`.

use super::{Limit, LimitOutcome, State};

/// Units used in the window containing `now`, and that window's index.
/// A state from a later window (the caller's clock went back) still counts:
/// we never hand out a budget twice.
/// (`window >= now / W` is tested as `now < (window + 1) * W`: no division
/// while requests stay in one window.)
fn used_now(limit: &Limit, state: &State, now: u64) -> (u64, u64) {
    match *state {
        State::Fixed { window, used } => current(limit, window, used, now),
        _ => (now / limit.window_ms, 0),
    }
}

/// [`used_now`] on the state's numbers. `(0, 0)` reads as no state.
#[inline]
pub(crate) fn current(limit: &Limit, window: u64, used: u64, now: u64) -> (u64, u64) {
    if now < end_of(limit, window) {
        (window, used)
    } else {
        (now / limit.window_ms, 0)
    }
}

pub(super) fn evaluate(limit: &Limit, state: &State, now: u64, cost: u64) -> LimitOutcome {
    outcome(limit, used_now(limit, state, now), now, cost)
}

/// The outcome from the window's numbers as [`current`] gives them.
#[inline]
pub(crate) fn outcome(
    limit: &Limit,
    (window, used): (u64, u64),
    now: u64,
    cost: u64,
) -> LimitOutcome {
    outcome_until(limit, (end_of(limit, window), used), now, cost)
}

/// [`outcome`] from the window's end (ms, as [`end_of`] gives it) rather
/// than its index: no multiplication.
#[inline]
pub(crate) fn outcome_until(
    limit: &Limit,
    (end, used): (u64, u64),
    now: u64,
    cost: u64,
) -> LimitOutcome {
    let reset_after_ms = end.saturating_sub(now);
    if used.saturating_add(cost) <= limit.count {
        LimitOutcome {
            admits: true,
            remaining: limit.count - used - cost,
            reset_after_ms,
            retry_after_ms: 0,
        }
    } else {
        LimitOutcome {
            admits: false,
            remaining: limit.count.saturating_sub(used),
            reset_after_ms,
            // cost <= count, so the next window admits it.
            retry_after_ms: reset_after_ms.max(1),
        }
    }
}

pub(super) fn commit(limit: &Limit, state: &mut State, now: u64, cost: u64) {
    let (window, used) = after(used_now(limit, state, now), cost);
    *state = State::Fixed { window, used };
}

/// The window's numbers after admitting `cost` units, from [`current`]'s.
#[inline]
pub(crate) fn after((window, used): (u64, u64), cost: u64) -> (u64, u64) {
    (window, used.saturating_add(cost))
}

/// The end of window `window` (ms): the start of the next one, saturated;
/// also when the window's count stops counting.
#[inline]
pub(crate) fn end_of(limit: &Limit, window: u64) -> u64 {
    window.saturating_add(1).saturating_mul(limit.window_ms)
}

/// The units used after giving back `cost` units admitted at `at` with an
/// outcome of `reset_after_ms`, from a state of `(end, used)` (the window's
/// end in ms, units used): `None` when the state is no longer the window
/// they were counted in (it ended: they count nothing any more).
///
/// The window they were counted in ends at `at + reset_after_ms` (the
/// admitted outcome's), which is exact even when the caller's clock went
/// back and the request was counted in a later window than `at`'s.
#[inline]
pub(crate) fn refunded(
    (end, used): (u64, u64),
    (at, reset_after_ms): (u64, u64),
    cost: u64,
) -> Option<u64> {
    (end == at.saturating_add(reset_after_ms)).then(|| used.saturating_sub(cost))
}

pub(super) fn refund(limit: &Limit, state: &mut State, charged: (u64, u64), cost: u64) {
    if let State::Fixed { window, used } = state {
        if let Some(left) = refunded((end_of(limit, *window), *used), charged, cost) {
            *used = left;
        }
    }
}
