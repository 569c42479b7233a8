//! Known limits a [`Pacer`](super::Pacer) keeps a client under, and the
//! bookkeeping each pacing mode needs.
//!
//! ```
//! use quota_core::client::{PaceMode, PacedLimit};
//! use std::time::Duration;
//!
//! let minute = PacedLimit::sliding(3, Duration::from_secs(60));
//! assert_eq!(minute.mode, PaceMode::Sliding);
//! assert!(minute.validate().is_ok());
//! assert!(PacedLimit::aligned(0, Duration::from_secs(60)).validate().is_err());
//! ```
//!
//! Windows are half-open: a fixed window `k` of length `W` covers
//! `[k*W, (k+1)*W)` milliseconds since the UNIX epoch, and "any interval of the
//! window's length" means any `[s, s+W)`.

use core::time::Duration;
use std::collections::VecDeque;

/// How a [`PacedLimit`] spaces requests, and which server algorithms it is
/// safe against (never draws a 429 from a server enforcing the same count and
/// window with that algorithm, given the client and server clocks agree).
///
/// | mode | fixed window | sliding log | sliding window counter |
/// |---|---|---|---|
/// | `Aligned` | safe | **not safe** (2N across a boundary) | not safe |
/// | `Sliding` | safe | safe | **not safe** (see below) |
/// | `SlidingCounter` | safe | not safe | safe (same formula) |
///
/// A sliding window counter weighs the previous window's count as if its
/// requests were spread evenly. When they came early in that window the
/// estimate is above the true count, so a schedule that a sliding log admits
/// (N requests at the start of one window, then one at the start of the next)
/// is refused by the counter. To be safe against every server algorithm,
/// pace the same count and window twice, as `Sliding` and `SlidingCounter`:
/// the pacer waits for the later of the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PaceMode {
    /// At most `count` releases in each fixed window aligned to the epoch:
    /// full speed, safe against a fixed-window server only.
    Aligned,
    /// At most `count` releases in any interval of the window's length: waits
    /// until the oldest of the last `count` releases is a full window old.
    /// Remembers up to `count` release times.
    Sliding,
    /// Admits a release at offset `e` into aligned window `k` only if
    /// `prev * (W - e) / W + cur + 1 <= count`, in exact arithmetic, where
    /// `prev` and `cur` count the releases in windows `k-1` and `k`: the
    /// sliding window counter's estimate.
    SlidingCounter,
}

/// A limit of `count` requests per `window`, paced in a [`PaceMode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PacedLimit {
    /// Requests allowed per window (at least 1).
    pub count: u64,
    /// The window's length (at least 1 ms; rounded up to whole milliseconds).
    pub window: Duration,
    /// How releases are spaced.
    pub mode: PaceMode,
}

/// A [`PacedLimit`] that cannot be paced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PaceError {
    /// `count` was 0: no schedule can send anything.
    #[error("paced limit allows 0 requests per window")]
    ZeroCount,
    /// `window` was shorter than a millisecond.
    #[error("paced limit has a window shorter than 1 ms")]
    ZeroWindow,
}

impl PacedLimit {
    /// `count` per `window` in [`PaceMode::Aligned`].
    pub const fn aligned(count: u64, window: Duration) -> Self {
        PacedLimit {
            count,
            window,
            mode: PaceMode::Aligned,
        }
    }

    /// `count` per `window` in [`PaceMode::Sliding`].
    pub const fn sliding(count: u64, window: Duration) -> Self {
        PacedLimit {
            count,
            window,
            mode: PaceMode::Sliding,
        }
    }

    /// `count` per `window` in [`PaceMode::SlidingCounter`].
    pub const fn sliding_counter(count: u64, window: Duration) -> Self {
        PacedLimit {
            count,
            window,
            mode: PaceMode::SlidingCounter,
        }
    }

    /// The pacing that keeps to a server-side [`Limit`], by its algorithm:
    /// fixed window → [`PaceMode::Aligned`], sliding log →
    /// [`PaceMode::Sliding`], sliding window counter →
    /// [`PaceMode::SlidingCounter`], GCRA → [`PaceMode::Sliding`] over
    /// `count` emission intervals (`count * ceil(window / count)`), which no
    /// GCRA of that limit ever refuses.
    ///
    /// [`Limit`]: crate::algorithm::Limit
    pub fn for_limit(limit: &crate::algorithm::Limit) -> Self {
        use crate::algorithm::Algorithm;
        let (count, window) = (limit.count(), limit.window());
        match limit.algorithm() {
            Algorithm::FixedWindow => PacedLimit::aligned(count, window),
            Algorithm::SlidingLog => PacedLimit::sliding(count, window),
            Algorithm::SlidingWindow => PacedLimit::sliding_counter(count, window),
            Algorithm::Gcra => {
                let interval = limit.window_ms().div_ceil(count);
                PacedLimit::sliding(count, Duration::from_millis(count.saturating_mul(interval)))
            }
        }
    }

    /// Checks that the limit can be paced.
    pub fn validate(&self) -> Result<(), PaceError> {
        if self.count == 0 {
            Err(PaceError::ZeroCount)
        } else if self.window.is_zero() {
            Err(PaceError::ZeroWindow)
        } else {
            Ok(())
        }
    }

    /// The window in whole milliseconds, rounded up.
    fn window_ms(&self) -> u64 {
        u64::try_from(self.window.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

/// The release bookkeeping of one [`PacedLimit`]; times are milliseconds
/// since the epoch, never decreasing (the pacer clamps them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tracker {
    count: u64,
    window: u64,
    state: State,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Releases in fixed window `index`.
    Aligned { index: u64, released: u64 },
    /// The last `count` releases as runs of `(time, how many)`, oldest first.
    Sliding {
        runs: VecDeque<(u64, u64)>,
        total: u64,
    },
    /// Releases in fixed window `index` and in the one before it.
    Counter { index: u64, prev: u64, cur: u64 },
}

impl Tracker {
    pub(crate) fn new(limit: &PacedLimit) -> Result<Self, PaceError> {
        limit.validate()?;
        let state = match limit.mode {
            PaceMode::Aligned => State::Aligned {
                index: 0,
                released: 0,
            },
            PaceMode::Sliding => State::Sliding {
                runs: VecDeque::new(),
                total: 0,
            },
            PaceMode::SlidingCounter => State::Counter {
                index: 0,
                prev: 0,
                cur: 0,
            },
        };
        Ok(Tracker {
            count: limit.count,
            window: limit.window_ms(),
            state,
        })
    }

    /// The earliest time at or after `t` when one more release keeps the limit.
    pub(crate) fn ready_at(&self, t: u64) -> u64 {
        let (count, w) = (self.count, self.window);
        match &self.state {
            State::Aligned { index, released } => {
                if t / w == *index && *released >= count {
                    window_end(*index, w)
                } else {
                    t
                }
            }
            State::Sliding { runs, total } => match runs.front() {
                Some(&(oldest, _)) if *total >= count => t.max(oldest.saturating_add(w)),
                _ => t,
            },
            State::Counter { .. } => self.counter_ready_at(t),
        }
    }

    /// Records a release at `t`.
    pub(crate) fn record(&mut self, t: u64) {
        let (count, w) = (self.count, self.window);
        match &mut self.state {
            State::Aligned { index, released } => {
                if t / w != *index {
                    *index = t / w;
                    *released = 0;
                }
                *released = released.saturating_add(1);
            }
            State::Sliding { runs, total } => {
                // Releases a full window old constrain nothing any more.
                while let Some(&(at, n)) = runs.front() {
                    if at.saturating_add(w) > t {
                        break;
                    }
                    runs.pop_front();
                    *total -= n;
                }
                match runs.back_mut() {
                    Some((at, n)) if *at == t => *n += 1,
                    _ => runs.push_back((t, 1)),
                }
                *total += 1;
                // Keep only the last `count` releases.
                while *total > count {
                    let Some(front) = runs.front_mut() else { break };
                    let excess = *total - count;
                    if front.1 <= excess {
                        *total -= front.1;
                        runs.pop_front();
                    } else {
                        front.1 -= excess;
                        *total -= excess;
                    }
                }
            }
            State::Counter { index, prev, cur } => {
                let k = t / w;
                (*prev, *cur) = counter_counts(*index, *prev, *cur, k);
                *index = k;
                *cur = cur.saturating_add(1);
            }
        }
    }

    fn counter_ready_at(&self, t: u64) -> u64 {
        let State::Counter { index, prev, cur } = self.state else {
            return t;
        };
        let (count, w) = (u128::from(self.count), self.window);
        let mut t = t;
        // Window `index` may be full, the next one may still weigh it too
        // heavily; from `index + 2` on both counts are 0 and anything goes.
        for _ in 0..3 {
            let k = t / w;
            let (p, c) = counter_counts(index, prev, cur, k);
            let (p, c) = (u128::from(p), u128::from(c));
            if c + 1 > count {
                t = window_end(k, w);
                continue;
            }
            // Admit at offset e iff p * (W - e) <= (count - 1 - c) * W;
            // with p = 0 any offset will do.
            let Some(slack) = ((count - 1 - c) * u128::from(w)).checked_div(p) else {
                return t;
            };
            let e_min = u64::try_from(u128::from(w).saturating_sub(slack)).unwrap_or(w);
            if e_min < w {
                return t.max(k.saturating_mul(w).saturating_add(e_min));
            }
            t = window_end(k, w);
        }
        t
    }
}

/// `(prev, cur)` for window `k`, from the counts `(prev, cur)` of window
/// `index <= k`.
fn counter_counts(index: u64, prev: u64, cur: u64, k: u64) -> (u64, u64) {
    match k.checked_sub(index) {
        Some(0) => (prev, cur),
        Some(1) => (cur, 0),
        _ => (0, 0),
    }
}

/// The first millisecond after fixed window `index` of length `w`.
fn window_end(index: u64, w: u64) -> u64 {
    index.saturating_add(1).saturating_mul(w)
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn tracker(limit: PacedLimit) -> Tracker {
        Tracker::new(&limit).unwrap()
    }

    /// Releases `n` requests as early as the tracker allows, from `t`.
    fn release(tr: &mut Tracker, mut t: u64, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        for _ in 0..n {
            t = tr.ready_at(t);
            tr.record(t);
            out.push(t);
        }
        out
    }

    #[test]
    fn aligned_mode_sends_a_full_window_then_waits_for_the_next() {
        let mut tr = tracker(PacedLimit::aligned(3, Duration::from_secs(60)));
        assert_eq!(
            release(&mut tr, 59_000, 5),
            [59_000, 59_000, 59_000, 60_000, 60_000]
        );
    }

    #[test]
    fn sliding_mode_waits_until_the_oldest_release_is_a_window_old() {
        let mut tr = tracker(PacedLimit::sliding(3, Duration::from_secs(60)));
        assert_eq!(
            release(&mut tr, 59_000, 6),
            [59_000, 59_000, 59_000, 119_000, 119_000, 119_000]
        );
    }

    #[test]
    fn sliding_mode_forgets_releases_beyond_the_last_count() {
        let mut tr = tracker(PacedLimit::sliding(2, Duration::from_millis(10)));
        for t in [0, 1, 2, 3, 4] {
            tr.record(t);
        }
        assert_eq!(tr.ready_at(5), 13);
        let State::Sliding { runs, total } = &tr.state else {
            panic!()
        };
        assert_eq!((runs.len(), *total), (2, 2));
    }

    #[test]
    fn counter_mode_waits_until_the_previous_window_weighs_little_enough() {
        // 2 per 60 s, both released at the start of window 0: at the start
        // of window 1 the estimate is 2, so the next release waits until
        // 2 * (60 - e) / 60 + 1 <= 2, i.e. e = 30 s.
        let mut tr = tracker(PacedLimit::sliding_counter(2, Duration::from_secs(60)));
        assert_eq!(release(&mut tr, 0, 3), [0, 0, 90_000]);
    }

    #[test]
    fn counter_mode_with_count_one_waits_a_whole_empty_window() {
        let mut tr = tracker(PacedLimit::sliding_counter(1, Duration::from_secs(60)));
        assert_eq!(release(&mut tr, 59_999, 2), [59_999, 120_000]);
    }

    #[test]
    fn invalid_limits_are_refused() {
        assert_eq!(
            Tracker::new(&PacedLimit::sliding(0, Duration::from_secs(1))),
            Err(PaceError::ZeroCount)
        );
        assert_eq!(
            Tracker::new(&PacedLimit::aligned(1, Duration::ZERO)),
            Err(PaceError::ZeroWindow)
        );
    }

    #[test]
    fn sub_millisecond_windows_round_up() {
        assert_eq!(
            PacedLimit::aligned(1, Duration::from_micros(1)).window_ms(),
            1
        );
        assert_eq!(
            PacedLimit::aligned(1, Duration::from_micros(1_500)).window_ms(),
            2
        );
    }

    #[test]
    fn end_of_time_saturates() {
        let mut tr = tracker(PacedLimit::aligned(1, Duration::from_secs(60)));
        tr.record(u64::MAX);
        assert_eq!(tr.ready_at(u64::MAX), u64::MAX);
        let mut tr = tracker(PacedLimit::sliding_counter(1, Duration::from_secs(60)));
        tr.record(u64::MAX);
        assert_eq!(tr.ready_at(u64::MAX), u64::MAX);
    }
}
