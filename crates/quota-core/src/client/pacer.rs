//! A pacer: how long a client should wait before its next request so that
//! it never meets a 429.
//!
//! ```
//! use quota_core::client::{PacedLimit, Pacer};
//! use quota_core::Timestamp;
//! use std::time::Duration;
//!
//! // txt2video on the Basic tier: 1 request per minute.
//! let mut pacer = Pacer::from_limits(&[PacedLimit::sliding(1, Duration::from_secs(60))])?;
//! let now = Timestamp::from_secs(1_000);
//!
//! // 1. Ask before sending: zero means "send now".
//! assert_eq!(pacer.poll_delay(now), Duration::ZERO);
//! // 2. Record the release.
//! pacer.on_send(now);
//! // 3. Feed the response (here one saying the minute budget is spent).
//! let headers = [("X-RateLimit-Limit", "1".as_bytes()), ("X-RateLimit-Remaining", b"0")];
//! pacer.observe(200, headers, now + Duration::from_millis(300));
//! // 1 again: the next request must wait a minute after the first.
//! assert_eq!(pacer.poll_delay(now + Duration::from_secs(1)), Duration::from_secs(59));
//! # Ok::<(), quota_core::client::PaceError>(())
//! ```
//!
//! The call sequence, for each request:
//!
//! 1. `let wait = pacer.poll_delay(now)`. If it is not zero, sleep that long
//!    and ask again (another task may have sent meanwhile). The answer holds
//!    until `on_send` or `observe` is next called.
//! 2. `pacer.on_send(now)` just before the request goes out.
//! 3. `pacer.observe(status, headers, now)` when its response arrives.
//!
//! Use one pacer per budget the server keeps: per endpoint on the seed's Basic
//! tier (each endpoint has its own minute and daily limits), one for all
//! endpoints on Premium (one shared budget).
//!
//! The pacer never reads a clock: every call takes `now`. If `now` goes
//! backwards, the pacer counts from the latest time it has seen, so it only
//! ever waits longer.
//!
//! Two sources of knowledge combine; the pacer waits for the latest of them:
//!
//! - **Known limits**, from [`Pacer::from_limits`]: each [`PacedLimit`] counts
//!   the releases recorded by `on_send` (see [`PaceMode`](super::PaceMode) for which mode is
//!   safe against which server algorithm).
//! - **Response headers**, from [`Pacer::observe`]:
//!   - a `RateLimit` field (the IETF draft, `"minute";r=2;t=41`) gives one
//!     budget per member: `r` requests until `now + t`. When it is present it
//!     supersedes the `X-RateLimit-*` headers of that response.
//!   - otherwise `X-RateLimit-Remaining` (capped by `X-RateLimit-Limit`) gives a
//!     budget until the next UTC minute boundary, and
//!     `X-RateLimit-Daily-Remaining` (capped by `X-RateLimit-Daily-Limit`) one
//!     until the next UTC midnight: the server's default fixed windows.
//!   - each `on_send` spends one request of every budget; a spent budget
//!     holds requests until its reset. A newer response replaces the budgets
//!     it carries. Requests still in flight when a response was generated are
//!     not subtracted from it, so concurrent clients may still meet a 429.
//!   - a 429 or 503 holds requests for its `Retry-After`; a 429 without one
//!     holds them until the next UTC midnight if `X-RateLimit-Type` is `daily`,
//!     else until the next UTC minute boundary.
//!
//! Malformed header values are ignored.

use core::time::Duration;

use smallvec::SmallVec;

use super::headers::{LimitType, RateLimitHeaders};
use super::pace_limit::{PaceError, PacedLimit, Tracker};
use crate::Timestamp;

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;

/// Spaces a client's requests; see the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pacer {
    limits: Vec<Tracker>,
    /// From `X-RateLimit-Remaining`.
    minute: Option<Budget>,
    /// From `X-RateLimit-Daily-Remaining`.
    daily: Option<Budget>,
    /// From the members of a `RateLimit` field.
    field: SmallVec<[Budget; 2]>,
    /// From `Retry-After` on a 429 or 503.
    hold_until: Timestamp,
    /// The latest `now` seen.
    latest: Timestamp,
}

/// Requests the server said are left until `reset_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Budget {
    remaining: u64,
    reset_at: Timestamp,
}

impl Budget {
    fn ready_at(&self, t: Timestamp) -> Timestamp {
        if self.remaining == 0 && self.reset_at > t {
            self.reset_at
        } else {
            t
        }
    }

    fn spend(&mut self, t: Timestamp) {
        if self.reset_at > t {
            self.remaining = self.remaining.saturating_sub(1);
        }
    }
}

impl Pacer {
    /// A pacer that knows no limits yet and learns them from responses.
    pub fn new() -> Self {
        Pacer::default()
    }

    /// A pacer that keeps to `limits` (all of them at once), and also learns
    /// from responses.
    pub fn from_limits(limits: &[PacedLimit]) -> Result<Self, PaceError> {
        let limits = limits.iter().map(Tracker::new).collect::<Result<_, _>>()?;
        Ok(Pacer {
            limits,
            ..Pacer::default()
        })
    }

    /// A pacer that keeps to every limit of a plan: a client that knows the
    /// policy (the gateway's `/v1/limits` publishes it) never meets a 429
    /// when it sends requests of cost 1 at the times this pacer gives.
    ///
    /// ```
    /// use quota_core::client::Pacer;
    /// use quota_core::policy::{Policy, Request};
    /// use quota_core::Timestamp;
    ///
    /// let policy = Policy::seed();
    /// let plan = policy.plan(&Request { account: "a", tier: "basic", endpoint: "txt2video", cost: 1 }).unwrap();
    /// let mut pacer = Pacer::for_plan(&plan);
    /// let now = Timestamp::from_secs(600);
    /// assert!(pacer.poll_delay(now).is_zero());
    /// pacer.on_send(now);
    /// assert_eq!(pacer.poll_delay(now).as_secs(), 60); // 1 per UTC minute
    /// ```
    pub fn for_plan(plan: &crate::policy::Plan<'_>) -> Self {
        let limits: Vec<PacedLimit> = plan
            .limits()
            .map(|l| PacedLimit::for_limit(l.limit()))
            .collect();
        // Limits of a validated policy have a count and a window of at least 1.
        Pacer::from_limits(&limits).unwrap_or_default()
    }

    /// How long to wait, from `now`, before sending the next request; zero
    /// means send now. Ask again after waiting, and after every `on_send` or
    /// `observe`.
    #[must_use]
    pub fn poll_delay(&self, now: Timestamp) -> Duration {
        self.ready_at(now).saturating_since(now)
    }

    /// The earliest time at or after `now` when the next request may go out.
    #[must_use]
    pub fn ready_at(&self, now: Timestamp) -> Timestamp {
        let t = now.max(self.latest);
        let from_limits = self
            .limits
            .iter()
            .map(|l| Timestamp::from_millis(l.ready_at(t.as_millis())))
            .max()
            .unwrap_or(t);
        let from_headers = self.budgets().map(|b| b.ready_at(t)).max().unwrap_or(t);
        from_limits.max(from_headers).max(self.hold_until).max(t)
    }

    /// Records a request released at `now`.
    pub fn on_send(&mut self, now: Timestamp) {
        let t = self.advance(now);
        for limit in &mut self.limits {
            limit.record(t.as_millis());
        }
        self.minute
            .iter_mut()
            .chain(&mut self.daily)
            .chain(&mut self.field)
            .for_each(|b| b.spend(t));
    }

    /// Learns from a response with `status` and `headers` (`(name, value)`
    /// pairs of bytes; names match case-insensitively), received at `now`.
    ///
    /// This takes raw bytes and never panics: a fuzzing entry point.
    pub fn observe<H, N, V>(&mut self, status: u16, headers: H, now: Timestamp)
    where
        H: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        self.observe_parsed(status, &RateLimitHeaders::parse(headers), now);
    }

    /// [`Pacer::observe`] for headers already parsed.
    pub fn observe_parsed(&mut self, status: u16, headers: &RateLimitHeaders, now: Timestamp) {
        let t = self.advance(now);
        let field: SmallVec<[Budget; 2]> = headers
            .ratelimit()
            .iter()
            .filter_map(|e| {
                Some(Budget {
                    remaining: e.remaining?,
                    reset_at: t + e.reset?,
                })
            })
            .collect();
        if !field.is_empty() {
            self.field = field;
            self.minute = None;
            self.daily = None;
        } else {
            if let Some(remaining) = headers.remaining {
                let remaining = remaining.min(headers.limit.unwrap_or(u64::MAX));
                self.minute = Some(Budget {
                    remaining,
                    reset_at: next_boundary(t, MINUTE_MS),
                });
            }
            if let Some(remaining) = headers.daily_remaining {
                let remaining = remaining.min(headers.daily_limit.unwrap_or(u64::MAX));
                self.daily = Some(Budget {
                    remaining,
                    reset_at: next_boundary(t, DAY_MS),
                });
            }
        }
        if status == 429 || status == 503 {
            let hold = match (headers.retry_after, headers.limit_type) {
                (Some(ra), _) => t + ra.wait_from(t),
                (None, _) if status == 503 => t,
                (None, Some(LimitType::Daily)) => next_boundary(t, DAY_MS),
                (None, _) => next_boundary(t, MINUTE_MS),
            };
            self.hold_until = self.hold_until.max(hold);
        }
    }

    fn budgets(&self) -> impl Iterator<Item = &Budget> {
        self.minute.iter().chain(&self.daily).chain(&self.field)
    }

    /// Moves the pacer's clock to `now`, unless it has seen a later time.
    fn advance(&mut self, now: Timestamp) -> Timestamp {
        self.latest = self.latest.max(now);
        self.latest
    }
}

/// The start of the next fixed window of `w` ms after `t` (UTC-aligned).
fn next_boundary(t: Timestamp, w: u64) -> Timestamp {
    Timestamp::from_millis((t.as_millis() / w).saturating_add(1).saturating_mul(w))
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const T0: Timestamp = Timestamp::from_secs(1_700_000_000); // 22:13:20 UTC

    fn at(ms_after_t0: u64) -> Timestamp {
        Timestamp::from_millis(T0.as_millis() + ms_after_t0)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_pacer_without_knowledge_never_waits() {
        let mut p = Pacer::new();
        for i in 0..100 {
            assert_eq!(p.poll_delay(at(i)), Duration::ZERO);
            p.on_send(at(i));
        }
    }

    #[test]
    fn spent_minute_budget_waits_for_the_next_utc_minute() {
        let mut p = Pacer::new();
        p.observe(200, [("X-RateLimit-Remaining", &b"0"[..])], at(0));
        // T0 is 20 s into its minute.
        assert_eq!(p.poll_delay(at(0)), secs(40));
        assert_eq!(p.poll_delay(at(40_000)), Duration::ZERO);
    }

    #[test]
    fn sends_spend_the_observed_budget() {
        let mut p = Pacer::new();
        p.observe(200, [("x-ratelimit-remaining", &b"2"[..])], at(0));
        p.on_send(at(1_000));
        assert_eq!(p.poll_delay(at(1_000)), Duration::ZERO);
        p.on_send(at(2_000));
        assert_eq!(p.poll_delay(at(2_000)), secs(38));
    }

    #[test]
    fn remaining_is_capped_by_the_limit() {
        let mut p = Pacer::new();
        let h = [
            ("X-RateLimit-Remaining", &b"9"[..]),
            ("X-RateLimit-Limit", b"0"),
        ];
        p.observe(200, h, at(0));
        assert_eq!(p.poll_delay(at(0)), secs(40));
    }

    #[test]
    fn spent_daily_budget_waits_for_utc_midnight() {
        let mut p = Pacer::new();
        let h = [
            ("X-RateLimit-Daily-Remaining", &b"0"[..]),
            ("X-RateLimit-Remaining", b"2"),
        ];
        p.observe(200, h, at(0));
        // 22:13:20 to midnight.
        assert_eq!(p.poll_delay(at(0)), secs(6_400));
    }

    #[test]
    fn ratelimit_field_reset_replaces_the_minute_boundary() {
        let mut p = Pacer::new();
        let h = [
            ("X-RateLimit-Remaining", &b"0"[..]),
            ("RateLimit", br#""minute";r=0;t=7"#),
        ];
        p.observe(200, h, at(0));
        assert_eq!(p.poll_delay(at(0)), secs(7));
    }

    #[test]
    fn retry_after_on_a_429_holds_requests() {
        let mut p = Pacer::new();
        p.observe(429, [("Retry-After", &b"12"[..])], at(0));
        assert_eq!(p.poll_delay(at(2_000)), secs(10));
        // A later, shorter hint does not shorten the hold.
        p.observe(429, [("Retry-After", &b"1"[..])], at(3_000));
        assert_eq!(p.poll_delay(at(3_000)), secs(9));
    }

    #[test]
    fn retry_after_on_a_success_is_ignored() {
        let mut p = Pacer::new();
        p.observe(200, [("Retry-After", &b"12"[..])], at(0));
        assert_eq!(p.poll_delay(at(0)), Duration::ZERO);
    }

    #[test]
    fn a_429_without_retry_after_holds_until_its_window_ends() {
        let mut p = Pacer::new();
        p.observe(429, [("X-RateLimit-Type", &b"minute"[..])], at(0));
        assert_eq!(p.poll_delay(at(0)), secs(40));
        let mut p = Pacer::new();
        p.observe(429, [("X-RateLimit-Type", &b"daily"[..])], at(0));
        assert_eq!(p.poll_delay(at(0)), secs(6_400));
    }

    #[test]
    fn malformed_headers_teach_nothing() {
        let mut p = Pacer::new();
        let h = [
            ("X-RateLimit-Remaining", &b"zero"[..]),
            ("X-RateLimit-Daily-Remaining", b"-1"),
            ("RateLimit", b"\"m\";r=;t=x"),
            ("Retry-After", b"\xff"),
        ];
        p.observe(200, h, at(0));
        assert_eq!(
            p,
            Pacer {
                latest: at(0),
                ..Pacer::new()
            }
        );
    }

    #[test]
    fn known_limits_and_headers_combine_to_the_later_wait() {
        let mut p = Pacer::from_limits(&[PacedLimit::aligned(5, secs(60))]).unwrap();
        p.on_send(at(0));
        p.observe(200, [("X-RateLimit-Remaining", &b"0"[..])], at(0));
        assert_eq!(p.poll_delay(at(0)), secs(40));
    }

    #[test]
    fn time_going_backwards_only_lengthens_the_wait() {
        let mut p = Pacer::from_limits(&[PacedLimit::sliding(1, secs(10))]).unwrap();
        p.on_send(at(5_000));
        assert_eq!(p.poll_delay(at(5_000)), secs(10));
        assert_eq!(p.poll_delay(at(0)), secs(15));
        p.on_send(at(0)); // counted at 5 s, the latest time seen
        assert_eq!(p.ready_at(at(0)), at(15_000));
    }

    #[test]
    fn invalid_limits_are_refused() {
        assert_eq!(
            Pacer::from_limits(&[PacedLimit::aligned(0, secs(1))]),
            Err(PaceError::ZeroCount)
        );
    }
}
