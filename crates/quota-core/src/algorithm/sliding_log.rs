//! Sliding log: one timestamp per admitted unit, kept for one window.

use super::{Limit, LimitOutcome, State};

/// The admitted units of a sliding log, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Log {
    times: Vec<u64>,
}

impl Log {
    /// The timestamps (ms since the epoch) of the logged units, oldest first.
    pub fn times(&self) -> &[u64] {
        &self.times
    }

    /// A log holding these timestamps (sorted on the way in).
    pub fn from_times(mut times: Vec<u64>) -> Self {
        times.sort_unstable();
        Log { times }
    }

    /// The newest logged timestamp.
    pub fn newest(&self) -> Option<u64> {
        self.times.last().copied()
    }

    /// Index of the first unit still inside the window at `now`
    /// (a unit logged at `t` counts while `now < t + W`).
    fn first_live(&self, window_ms: u64, now: u64) -> usize {
        self.times
            .partition_point(|&t| t.saturating_add(window_ms) <= now)
    }
}

fn log(state: &State) -> Option<&Log> {
    match state {
        State::Log(log) => Some(log),
        _ => None,
    }
}

pub(super) fn evaluate(limit: &Limit, state: &State, now: u64, cost: u64) -> LimitOutcome {
    let w = limit.window_ms;
    let empty = Log::default();
    let log = log(state).unwrap_or(&empty);
    let live = &log.times[log.first_live(w, now)..];
    let used = live.len() as u64;
    if used + cost <= limit.count {
        return LimitOutcome {
            admits: true,
            remaining: limit.count - used - cost,
            reset_after_ms: w,
            retry_after_ms: 0,
        };
    }
    let reset_after_ms = live.last().map_or(0, |&t| (t + w).saturating_sub(now));
    // The (used + cost - count)-th oldest live unit must expire first.
    let must_expire = (used + cost - limit.count) as usize;
    let retry_after_ms = live
        .get(must_expire - 1)
        .map_or(w, |&t| (t + w).saturating_sub(now))
        .max(1);
    LimitOutcome {
        admits: false,
        remaining: limit.count.saturating_sub(used),
        reset_after_ms,
        retry_after_ms,
    }
}

pub(super) fn commit(limit: &Limit, state: &mut State, now: u64, cost: u64) {
    if !matches!(state, State::Log(_)) {
        *state = State::Log(Box::default());
    }
    if let State::Log(log) = state {
        let first = log.first_live(limit.window_ms, now);
        log.times.drain(..first);
        // Time that goes back is logged in order, so the log stays sorted.
        let at = log.times.partition_point(|&t| t <= now);
        let n = usize::try_from(cost).unwrap_or(usize::MAX);
        log.times.splice(at..at, core::iter::repeat_n(now, n));
    }
}

/// Gives back `cost` units logged at `at`: removes up to `cost` entries of
/// that time (those that expired are gone already).
pub(super) fn refund(state: &mut State, at: u64, cost: u64) {
    if let State::Log(log) = state {
        let end = log.times.partition_point(|&t| t <= at);
        let start = log.times.partition_point(|&t| t < at);
        let n = usize::try_from(cost).unwrap_or(usize::MAX).min(end - start);
        log.times.drain(end - n..end);
    }
}
