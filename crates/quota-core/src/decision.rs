//! The decision over every limit of a request, and what it reports.
//!
//! A [`Decision`] is built from a [`Plan`] and the per-limit outcomes a store
//! computed for it (in plan order). It is all-or-nothing: admitted only if
//! every limit admits, and a refusal consumed nothing (the store made sure).
//! It borrows the plan's limits; [`Decision::report`] turns it into the
//! owned [`RateReport`] that every header is rendered from.
//!
//! ```
//! use quota_core::{policy::{Policy, Request}, MemoryStore, Timestamp};
//!
//! let policy = Policy::seed();
//! let store = MemoryStore::new();
//! let req = Request { account: "acct-1", tier: "basic", endpoint: "txt2video", cost: 1 };
//! let now = Timestamp::from_secs(1_700_000_000);
//!
//! let first = store.check(&policy, &req, now).unwrap();
//! assert!(first.is_admitted());
//! let second = store.check(&policy, &req, now).unwrap();
//! assert!(!second.is_admitted());
//! assert_eq!(second.refused_by().unwrap().name(), "minute");
//! assert_eq!(second.retry_after_secs(), Some(40)); // 1_700_000_000 is 20 s into its minute
//!
//! // What it reports, owned and rendered without allocating (see `report`).
//! let report = second.report();
//! let mut head = Vec::new();
//! report.encode(&mut head);
//! assert!(head.ends_with(b"x-ratelimit-type: minute\r\nretry-after: 40\r\n"));
//! ```

use core::time::Duration;

use smallvec::SmallVec;

use crate::algorithm::LimitOutcome;
use crate::policy::{Plan, PolicyLimit};
use crate::report::{FieldName, RateReport};
use crate::time::ceil_secs;

/// One limit's status in a decision.
#[derive(Clone, Copy, Debug)]
pub struct LimitStatus<'a> {
    limit: &'a PolicyLimit,
    outcome: LimitOutcome,
}

impl<'a> LimitStatus<'a> {
    /// The limit.
    pub fn limit(&self) -> &'a PolicyLimit {
        self.limit
    }
    /// The limit's name (`minute`, `daily`).
    pub fn name(&self) -> &'a str {
        self.limit.name()
    }
    /// Units per window.
    pub fn count(&self) -> u64 {
        self.limit.limit().count()
    }
    /// Units left: after this request when the decision admitted it, before
    /// it when the decision refused it (a refusal consumes nothing).
    pub fn remaining(&self) -> u64 {
        self.outcome.remaining
    }
    /// Time until the limit is fully replenished.
    pub fn reset_after(&self) -> Duration {
        Duration::from_millis(self.outcome.reset_after_ms)
    }
    /// Whether this limit admitted the request.
    pub fn admits(&self) -> bool {
        self.outcome.admits
    }
    /// The raw outcome.
    pub fn outcome(&self) -> LimitOutcome {
        self.outcome
    }
}

/// The answer for one request over all its limits.
#[derive(Clone, Debug)]
pub struct Decision<'a> {
    statuses: SmallVec<[LimitStatus<'a>; 4]>,
    /// Index of the refusing limit with the longest wait.
    refused_by: Option<usize>,
}

/// Why a store's outcomes do not fit a plan.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the store returned {got} outcomes for a plan of {expected} limits")]
pub struct OutcomeMismatch {
    /// Limits in the plan.
    pub expected: usize,
    /// Outcomes received.
    pub got: usize,
}

impl<'a> Decision<'a> {
    /// Builds the decision from a plan and the store's outcomes (plan order).
    ///
    /// # Errors
    /// [`OutcomeMismatch`] when the counts differ (a store bug, or a Redis
    /// script of another version).
    pub fn from_outcomes(
        plan: &Plan<'a>,
        outcomes: &[LimitOutcome],
    ) -> Result<Self, OutcomeMismatch> {
        let expected = plan.len();
        if outcomes.len() != expected {
            return Err(OutcomeMismatch {
                expected,
                got: outcomes.len(),
            });
        }
        let admitted = outcomes.iter().all(|o| o.admits);
        let cost = plan.cost();
        let statuses: SmallVec<[LimitStatus<'a>; 4]> = plan
            .limits()
            .zip(outcomes)
            .map(|(limit, &outcome)| {
                let mut outcome = outcome;
                if !admitted && outcome.admits {
                    // The request was refused by another limit and consumed
                    // nothing: report what is left without it.
                    outcome.remaining = outcome
                        .remaining
                        .saturating_add(cost)
                        .min(limit.limit().count());
                }
                LimitStatus { limit, outcome }
            })
            .collect();
        // The refusal reported is the one whose wait is longest: a daily
        // refusal beats a minute one.
        let refused_by = statuses
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.outcome.admits)
            .max_by_key(|(_, s)| (s.outcome.retry_after_ms, s.limit.is_daily()))
            .map(|(i, _)| i);
        Ok(Decision {
            statuses,
            refused_by,
        })
    }

    /// Whether every limit admitted the request.
    pub fn is_admitted(&self) -> bool {
        self.refused_by.is_none()
    }

    /// Every limit's status, in plan order.
    pub fn statuses(&self) -> &[LimitStatus<'a>] {
        &self.statuses
    }

    /// The limit reported as refusing (the longest wait), if refused.
    pub fn refused_by(&self) -> Option<&LimitStatus<'a>> {
        self.refused_by.map(|i| &self.statuses[i])
    }

    /// How long until the request would be admitted, if refused (the longest
    /// wait of the refusing limits).
    pub fn retry_after(&self) -> Option<Duration> {
        self.refused_by()
            .map(|s| Duration::from_millis(s.outcome.retry_after_ms.max(1)))
    }

    /// `Retry-After` in whole seconds: the wait rounded up, never 0.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.refused_by()
            .map(|s| ceil_secs(s.outcome.retry_after_ms).max(1))
    }

    /// The limit reported in `X-RateLimit-Limit`/`-Remaining`: of the
    /// non-daily limits, the refusing one, else the one with least remaining.
    pub fn minute(&self) -> Option<&LimitStatus<'a>> {
        self.reported(false)
    }

    /// The limit reported in `X-RateLimit-Daily-*`.
    pub fn daily(&self) -> Option<&LimitStatus<'a>> {
        self.reported(true)
    }

    fn reported(&self, daily: bool) -> Option<&LimitStatus<'a>> {
        if let Some(r) = self.refused_by() {
            if r.limit.is_daily() == daily {
                return Some(r);
            }
        }
        self.statuses
            .iter()
            .filter(|s| s.limit.is_daily() == daily)
            .min_by_key(|s| (s.outcome.remaining, s.limit.limit().window_ms()))
    }

    /// What the decision reports, owned: the model every header and body
    /// below is rendered from (see [`RateReport`]).
    pub fn report(&self) -> RateReport {
        RateReport::new(self)
    }

    /// The seed's headers as name/value pairs: `X-RateLimit-Limit`,
    /// `X-RateLimit-Remaining`, `X-RateLimit-Daily-Limit`,
    /// `X-RateLimit-Daily-Remaining` (each pair only where such a limit
    /// applies) and, on a refusal, `X-RateLimit-Type` and `Retry-After`.
    ///
    /// A convenience over [`RateReport::fields`], which renders them
    /// without allocating.
    pub fn headers(&self) -> SmallVec<[(&'static str, String); 6]> {
        self.report()
            .fields()
            .map(|(name, value)| (name.as_str(), value.into_string()))
            .collect()
    }

    /// The structured fields of the IETF draft
    /// (draft-ietf-httpapi-ratelimit-headers-11): `RateLimit-Policy` with
    /// every limit (`"minute";q=3;w=60, "daily";q=100;w=86400`) and
    /// `RateLimit` with each limit's remaining units and seconds to reset
    /// (`"minute";r=2;t=41`). Empty when no limit applies.
    ///
    /// A convenience over [`RateReport::with_ietf`] and
    /// [`RateReport::value`].
    pub fn ietf_headers(&self) -> SmallVec<[(&'static str, String); 2]> {
        let report = self.report().with_ietf(true);
        [FieldName::RateLimitPolicy, FieldName::RateLimit]
            .into_iter()
            .filter_map(|name| Some((name.as_str(), report.value(name)?.into_string())))
            .collect()
    }

    /// The IETF draft's `quota-exceeded` problem details body
    /// (`application/problem+json`) for a refusal, naming the violated
    /// policies; `None` when admitted. The same as
    /// [`RateReport::problem_body`].
    pub fn problem_body(&self) -> Option<String> {
        self.report().problem_body()
    }
}

/// The body of the seed's 429 answer.
pub const TOO_MANY_ATTEMPTS_BODY: &str = r#"{"message":"Too Many Attempts."}"#;
