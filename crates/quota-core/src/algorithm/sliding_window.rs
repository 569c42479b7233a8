//! Sliding window counter: previous aligned window weighted by its overlap.
//!
//! With `W` the window, `e` the time into the current aligned window, `p` and
//! `c` the previous and current counts, a request of cost `k` is admitted iff
//! `p * (W - e) + (c + k) * W <= N * W` (exact integers, no division).

use super::{Limit, LimitOutcome, State};

/// `(window index, previous, current)` as seen at `now`.
fn counts_now(limit: &Limit, state: &State, now: u64) -> (u64, u64, u64) {
    match *state {
        State::Counter {
            window,
            previous,
            current,
        } => counts_at(
            limit,
            (window, u64::from(previous), u64::from(current)),
            now,
        ),
        _ => (now / limit.window_ms, 0, 0),
    }
}

/// [`counts_now`] on the state's numbers `(window, previous, current)`;
/// all zero reads as no state.
#[inline]
pub(crate) fn counts_at(
    limit: &Limit,
    (window, previous, current): (u64, u64, u64),
    now: u64,
) -> (u64, u64, u64) {
    let idx = now / limit.window_ms;
    if window >= idx {
        (window, previous, current)
    } else if window + 1 == idx {
        (idx, current, 0)
    } else {
        (idx, 0, 0)
    }
}

pub(super) fn evaluate(limit: &Limit, state: &State, now: u64, cost: u64) -> LimitOutcome {
    outcome(limit, counts_now(limit, state, now), now, cost)
}

/// The outcome from the counts as [`counts_at`] gives them.
pub(crate) fn outcome(
    limit: &Limit,
    (idx, prev, cur): (u64, u64, u64),
    now: u64,
    cost: u64,
) -> LimitOutcome {
    let w = limit.window_ms;
    let n = limit.count;
    let start = idx * w;
    // A state from a later window (clock went back) is read at its start.
    let e = now.saturating_sub(start).min(w - 1);
    let weighted_prev = prev * (w - e);
    let budget = n * w;
    let reset_after_ms = if cur > 0 {
        2 * w - e
    } else if prev > 0 {
        w - e
    } else {
        0
    };
    if weighted_prev + (cur + cost) * w <= budget {
        let left = budget - weighted_prev - (cur + cost) * w;
        let reset_after_ms = if cur + cost > 0 {
            2 * w - e
        } else {
            reset_after_ms
        };
        return LimitOutcome {
            admits: true,
            remaining: left / w,
            reset_after_ms,
            retry_after_ms: 0,
        };
    }
    let remaining = budget.saturating_sub(weighted_prev + cur * w) / w;
    // Earliest admission inside the current window: p * (W - e') <= (N - c - k) * W.
    let retry_after_ms = if cur + cost <= n && prev > 0 {
        let e_min = w - ((n - cur - cost) * w / prev).min(w);
        if e_min < w {
            Some(e_min - e)
        } else {
            None
        }
    } else {
        None
    }
    // Otherwise in the next window, where the current count becomes previous:
    // c * (W - e'') <= (N - k) * W.
    .unwrap_or_else(|| {
        let e_next = ((n - cost) * w)
            .checked_div(cur)
            .map_or(0, |room| w - room.min(w));
        (w - e) + e_next
    });
    LimitOutcome {
        admits: false,
        remaining,
        reset_after_ms,
        retry_after_ms: retry_after_ms.max(1),
    }
}

pub(super) fn commit(limit: &Limit, state: &mut State, now: u64, cost: u64) {
    let (window, previous, current) = after(counts_now(limit, state, now), cost);
    *state = State::Counter {
        window,
        previous,
        current,
    };
}

/// The counts after admitting `cost` units, from [`counts_at`]'s. Both
/// counts are at most the limit's count, which validation keeps within u32.
#[inline]
pub(crate) fn after((window, previous, current): (u64, u64, u64), cost: u64) -> (u64, u32, u32) {
    let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    (window, narrow(previous), narrow(current + cost))
}

/// When the counts `(window, previous, current)` stop counting (ms): the
/// end of the next window while the current one counts anything, the end
/// of this one while only the previous does; 0 for nothing counted.
#[inline]
pub(crate) fn expires_at(limit: &Limit, (window, previous, current): (u64, u32, u32)) -> u64 {
    if current > 0 {
        window.saturating_add(2).saturating_mul(limit.window_ms)
    } else if previous > 0 {
        window.saturating_add(1).saturating_mul(limit.window_ms)
    } else {
        0
    }
}

/// The window index a request admitted at `at` with an outcome of
/// `reset_after_ms` was counted in: `at`'s, unless the outcome says it
/// was a later one (the caller's clock went back), then `None`: which one
/// is not known, and nothing is given back.
#[inline]
fn counted_in(limit: &Limit, (at, reset_after_ms): (u64, u64)) -> Option<u64> {
    let w = limit.window_ms;
    let idx = at / w;
    let e = (at - idx * w).min(w - 1);
    (reset_after_ms == 2 * w - e).then_some(idx)
}

/// The counts after giving back `cost` units admitted at `at` (see
/// [`counted_in`]), from the state's `(window, previous, current)`: taken
/// from `current` while the state is still in that window, from
/// `previous` once it moved on by one, and from nothing after that (they
/// count nothing any more). `None` when nothing changes.
#[inline]
pub(crate) fn refunded(
    limit: &Limit,
    (window, previous, current): (u64, u32, u32),
    charged: (u64, u64),
    cost: u64,
) -> Option<(u64, u32, u32)> {
    let idx = counted_in(limit, charged)?;
    let cost = u32::try_from(cost).unwrap_or(u32::MAX);
    if window == idx {
        Some((window, previous, current.saturating_sub(cost)))
    } else if window == idx + 1 {
        Some((window, previous.saturating_sub(cost), current))
    } else {
        None
    }
}

pub(super) fn refund(limit: &Limit, state: &mut State, charged: (u64, u64), cost: u64) {
    if let State::Counter {
        window,
        previous,
        current,
    } = *state
    {
        if let Some((window, previous, current)) =
            refunded(limit, (window, previous, current), charged, cost)
        {
            *state = State::Counter {
                window,
                previous,
                current,
            };
        }
    }
}
