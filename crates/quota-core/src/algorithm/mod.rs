//! The four window algorithms, each a small state value with a pure step.
//!
//! Every algorithm answers the same question, "may a request of `cost` units
//! pass at `now`?", from a [`State`] and a [`Limit`], in two halves:
//!
//! 1. [`Limit::evaluate`] looks at the state and says what would happen
//!    ([`LimitOutcome`]) without changing anything;
//! 2. [`Limit::commit`] records an admitted request in the state.
//!
//! A multi-limit decision evaluates every limit first and commits only when
//! all of them admit, so a refused request consumes nothing. [`Limit::step`]
//! is the same thing as one pure transition `(state, now) -> (state, outcome)`.
//! The Redis store's script is a line-by-line port of these functions, so both
//! stores compute identical answers (a differential test checks it).
//!
//! All arithmetic is on integer milliseconds and stays below 2^53, which
//! policy validation enforces (`count * window_ms <= 2^52`), so the Lua port
//! computes exactly the same values with its double-precision numbers.
//!
//! | algorithm | guarantee | state |
//! |---|---|---|
//! | [`Algorithm::FixedWindow`] | at most `count` per window aligned to the epoch (UTC minute, UTC day) | window index, used |
//! | [`Algorithm::SlidingLog`] | at most `count` in *any* interval of the window's length (exact) | one timestamp per admitted unit |
//! | [`Algorithm::SlidingWindow`] | at most `count` per aligned window, and at most `count + prev * s / window` (< 2 x `count`) in any interval of the window's length | window index, previous and current counts |
//! | [`Algorithm::Gcra`] | conformance to GCRA with emission interval `T = ceil(window / count)` and burst `count` | theoretical arrival time |
//!
//! ```
//! use quota_core::algorithm::{Algorithm, Limit, State};
//! use quota_core::Timestamp;
//! use std::time::Duration;
//!
//! let limit = Limit::new(3, Duration::from_secs(60), Algorithm::FixedWindow).unwrap();
//! let mut state = State::default();
//! let now = Timestamp::from_secs(120);
//! for _ in 0..3 {
//!     let (next, outcome) = limit.step(state, now, 1);
//!     assert!(outcome.admits);
//!     state = next;
//! }
//! let (_, refused) = limit.step(state, now, 1);
//! assert!(!refused.admits);
//! assert_eq!(refused.retry_after_ms, 60_000);
//! ```

pub(crate) mod fixed_window;
pub(crate) mod gcra;
mod sliding_log;
pub(crate) mod sliding_window;

use core::time::Duration;

use crate::Timestamp;

pub use sliding_log::Log;

/// The largest `count * window_ms` a limit may have: every intermediate value
/// of every algorithm stays below 2^53, exact in the Redis store's Lua numbers.
pub const MAX_COUNT_TIMES_WINDOW_MS: u64 = 1 << 52;

/// How a limit counts requests over its window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Algorithm {
    /// Fixed windows aligned to multiples of the window length since the UNIX
    /// epoch (so the minute window is the UTC minute, the day the UTC day).
    /// Guarantee: at most `count` units admitted per aligned window.
    #[default]
    FixedWindow,
    /// Sliding log: remembers every admitted unit for one window length.
    /// Guarantee (exact): at most `count` units in any half-open interval
    /// `[t, t + window)`. Memory grows with `count` (8 bytes per unit).
    SlidingLog,
    /// Sliding window counter: the previous aligned window's count, weighted
    /// by how much of it still overlaps the sliding window, plus the current
    /// window's count. Bounded memory; guarantee: at most `count` per aligned
    /// window, and fewer than `2 * count` in any interval of the window's
    /// length (at most `count + prev * s / window`, where `s` is how far into
    /// the previous window the interval starts).
    SlidingWindow,
    /// Generic cell rate algorithm: emission interval `T = ceil(window /
    /// count)` ms, burst tolerance `count * T`. A request of cost `c` at `t` is
    /// admitted iff `max(TAT, t) + c * T <= t + count * T`; admitting sets
    /// `TAT = max(TAT, t) + c * T`. Smooth: after a burst of `count`, one
    /// request per `T`.
    Gcra,
}

impl Algorithm {
    /// The name used in policy files and Redis keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::FixedWindow => "fixed_window",
            Algorithm::SlidingLog => "sliding_log",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::Gcra => "gcra",
        }
    }
}

/// Why a [`Limit`] cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// The count is zero.
    #[error("count must be at least 1")]
    ZeroCount,
    /// The window is shorter than a millisecond.
    #[error("window must be at least 1 ms")]
    ZeroWindow,
    /// The count is above `u32::MAX`, or `count * window` is too large for
    /// exact arithmetic.
    #[error(
        "{count} per {window_ms} ms is too large: count must be at most 4294967295 and count x window (ms) at most 2^52"
    )]
    TooLarge {
        /// The count.
        count: u64,
        /// The window in milliseconds.
        window_ms: u64,
    },
}

/// One limit's numbers: `count` units per `window`, counted by `algorithm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limit {
    count: u64,
    window_ms: u64,
    algorithm: Algorithm,
    /// GCRA's emission interval, `ceil(window_ms / count)`.
    interval_ms: u64,
}

/// What one limit says about one request. Plain numbers: this is also what
/// the Redis script returns for each limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LimitOutcome {
    /// Whether this limit admits the request.
    pub admits: bool,
    /// Units left: after this request when it is admitted, before it when not.
    pub remaining: u64,
    /// Milliseconds until the limit is fully replenished (nothing counted).
    pub reset_after_ms: u64,
    /// When refused: milliseconds until this limit would admit the same
    /// request, if nothing else comes in. Zero when admitted.
    pub retry_after_ms: u64,
}

/// Per-key state of one limit. `Default` is the empty state (nothing counted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum State {
    /// Nothing counted yet (or everything expired).
    #[default]
    Empty,
    /// Fixed window: the window's index (`start / window`) and units used.
    Fixed {
        /// Index of the window: its start divided by the window length.
        window: u64,
        /// Units admitted in that window.
        used: u64,
    },
    /// Sliding window counter.
    Counter {
        /// Index of the current aligned window.
        window: u64,
        /// Units admitted in the previous aligned window (at most the count).
        previous: u32,
        /// Units admitted in the current aligned window (at most the count).
        current: u32,
    },
    /// Sliding log of admitted units (boxed: the other states stay small).
    Log(Box<Log>),
    /// GCRA theoretical arrival time, in ms since the epoch.
    Gcra {
        /// The theoretical arrival time.
        tat: u64,
    },
}

impl Limit {
    /// A limit of `count` units per `window`.
    ///
    /// # Errors
    /// [`LimitError`] for a zero count, a window under 1 ms, or
    /// `count * window_ms > 2^52`.
    pub fn new(count: u64, window: Duration, algorithm: Algorithm) -> Result<Self, LimitError> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        Self::from_millis(count, window_ms, algorithm)
    }

    /// Like [`Limit::new`] with the window in milliseconds.
    ///
    /// # Errors
    /// As [`Limit::new`].
    pub fn from_millis(
        count: u64,
        window_ms: u64,
        algorithm: Algorithm,
    ) -> Result<Self, LimitError> {
        if count == 0 {
            return Err(LimitError::ZeroCount);
        }
        if window_ms == 0 {
            return Err(LimitError::ZeroWindow);
        }
        match count.checked_mul(window_ms) {
            Some(p) if p <= MAX_COUNT_TIMES_WINDOW_MS && count <= u64::from(u32::MAX) => {
                Ok(Limit {
                    count,
                    window_ms,
                    algorithm,
                    interval_ms: window_ms.div_ceil(count),
                })
            }
            _ => Err(LimitError::TooLarge { count, window_ms }),
        }
    }

    /// One of `parts` equal shares of this limit: `count / parts`, but at
    /// least one, per the same window. A fleet of `parts` nodes that each
    /// keep to their share stays near the whole limit when they cannot share
    /// state.
    pub fn share(&self, parts: u64) -> Limit {
        if parts <= 1 {
            return *self;
        }
        let count = (self.count / parts).max(1);
        Limit {
            count,
            interval_ms: self.window_ms.div_ceil(count),
            ..*self
        }
    }

    /// Units per window.
    pub const fn count(&self) -> u64 {
        self.count
    }

    /// The window length in milliseconds.
    pub const fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The window length.
    pub const fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    /// The algorithm.
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// What this limit says about a request of `cost` units at `now`, without
    /// changing `state`. `cost` must be between 1 and [`Limit::count`]; the
    /// policy checks that before any limit is asked.
    pub fn evaluate(&self, state: &State, now: Timestamp, cost: u64) -> LimitOutcome {
        let now = now.as_millis();
        match self.algorithm {
            Algorithm::FixedWindow => fixed_window::evaluate(self, state, now, cost),
            Algorithm::SlidingLog => sliding_log::evaluate(self, state, now, cost),
            Algorithm::SlidingWindow => sliding_window::evaluate(self, state, now, cost),
            Algorithm::Gcra => gcra::evaluate(self, state, now, cost),
        }
    }

    /// Records an admitted request of `cost` units at `now` in `state`. Call
    /// it only after [`Limit::evaluate`] admitted the request (and, in a
    /// multi-limit decision, after every other limit admitted it too).
    pub fn commit(&self, state: &mut State, now: Timestamp, cost: u64) {
        let now = now.as_millis();
        match self.algorithm {
            Algorithm::FixedWindow => fixed_window::commit(self, state, now, cost),
            Algorithm::SlidingLog => sliding_log::commit(self, state, now, cost),
            Algorithm::SlidingWindow => sliding_window::commit(self, state, now, cost),
            Algorithm::Gcra => gcra::commit(self, state, now, cost),
        }
    }

    /// Gives back a request of `cost` units that this limit admitted at
    /// `at`, answering `outcome` (the [`LimitOutcome`] of that decision), in
    /// `state` at `now`: the state then counts what it would count had the
    /// request been refused, as far as the state can tell.
    ///
    /// | algorithm | given back |
    /// |---|---|
    /// | [`Algorithm::FixedWindow`] | `cost` units, while the window they were counted in lasts (then they count nothing anyway) |
    /// | [`Algorithm::SlidingWindow`] | `cost` units from the current count while it is the window they were counted in, from the previous count in the next window |
    /// | [`Algorithm::SlidingLog`] | the `cost` entries logged at `at` that have not expired |
    /// | [`Algorithm::Gcra`] | the TAT moves back by `min(cost × T, tat_after − now)`: exact when no later request found the schedule dry, less otherwise, never below `now` |
    ///
    /// Never a budget beyond the limit: units are taken only from the
    /// window that counted them, never below zero. A request the limit did
    /// not admit (`outcome.admits` false) counted nothing, and nothing
    /// changes.
    ///
    /// ```
    /// use quota_core::algorithm::{Algorithm, Limit, State};
    /// use quota_core::Timestamp;
    /// use std::time::Duration;
    ///
    /// let limit = Limit::new(3, Duration::from_secs(60), Algorithm::FixedWindow).unwrap();
    /// let at = Timestamp::from_secs(120);
    /// let (mut state, outcome) = limit.step(State::default(), at, 1);
    /// assert_eq!(outcome.remaining, 2);
    /// limit.refund(&mut state, at, &outcome, 1, Timestamp::from_secs(125));
    /// assert_eq!(limit.evaluate(&state, Timestamp::from_secs(126), 1).remaining, 2); // 3 again, less this one
    /// // A minute later the window it was counted in has passed: nothing to give back.
    /// let (mut state, outcome) = limit.step(state, at, 1);
    /// let later = Timestamp::from_secs(181);
    /// let (mut state, _) = limit.step(state, later, 1);
    /// limit.refund(&mut state, at, &outcome, 1, later);
    /// assert_eq!(limit.evaluate(&state, later, 1).remaining, 1);
    /// ```
    pub fn refund(
        &self,
        state: &mut State,
        at: Timestamp,
        outcome: &LimitOutcome,
        cost: u64,
        now: Timestamp,
    ) {
        if !outcome.admits {
            return;
        }
        let charged = (at.as_millis(), outcome.reset_after_ms);
        match self.algorithm {
            Algorithm::FixedWindow => fixed_window::refund(self, state, charged, cost),
            Algorithm::SlidingLog => sliding_log::refund(state, charged.0, cost),
            Algorithm::SlidingWindow => sliding_window::refund(self, state, charged, cost),
            Algorithm::Gcra => gcra::refund(self, state, charged, now.as_millis(), cost),
        }
    }

    /// The pure transition: `(state, now) -> (state, outcome)`. A refused
    /// request returns the state unchanged.
    pub fn step(&self, mut state: State, now: Timestamp, cost: u64) -> (State, LimitOutcome) {
        let outcome = self.evaluate(&state, now, cost);
        if outcome.admits {
            self.commit(&mut state, now, cost);
        }
        (state, outcome)
    }

    /// The moment from which `state` counts nothing any more, in ms since the
    /// epoch: a store may drop the state then (and Redis keys carry it as TTL).
    pub fn expires_at(&self, state: &State) -> u64 {
        match *state {
            State::Empty => 0,
            State::Fixed { window, .. } => fixed_window::end_of(self, window),
            State::Counter {
                window,
                current,
                previous,
            } => sliding_window::expires_at(self, (window, previous, current)),
            State::Log(ref log) => log.newest().map_or(0, |t| t.saturating_add(self.window_ms)),
            State::Gcra { tat } => tat,
        }
    }
}
