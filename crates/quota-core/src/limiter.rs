//! A keyed rate limiter without a policy: one limit, any number of keys, in
//! the style of governor's keyed limiter, on the engine's own algorithms and
//! memory store.
//!
//! ```
//! use std::time::Duration;
//! use quota_core::limiter::{Limiter, Verdict};
//! use quota_core::Timestamp;
//!
//! let limiter = Limiter::new(3, Duration::from_secs(60)).unwrap(); // 3 a minute, per key
//! let now = Timestamp::from_secs(1_700_000_020); // 40 s into a UTC minute
//! for _ in 0..3 {
//!     assert!(limiter.check("203.0.113.7", now).is_allowed());
//! }
//! assert_eq!(limiter.check("203.0.113.7", now), Verdict::Denied { retry_after: Duration::from_secs(20) });
//! assert!(limiter.check("198.51.100.1", now).is_allowed()); // another key, its own budget
//! ```
//!
//! Time is passed in, as everywhere in the engine. The limit can use any of
//! the four algorithms ([`Limiter::with_algorithm`]); a fixed window (the
//! default) aligns to the UTC clock, so a minute window is the UTC minute.
//! For several limits per key, tiers or prices, write a [`Policy`] and use
//! [`MemoryStore::check`].

use std::time::Duration;

use crate::algorithm::Algorithm;
use crate::policy::{
    EndpointSpec, LimitSpec, Policy, PolicyError, PolicySpec, Request, TierSpec, WindowLength,
};
use crate::{MemoryStore, Timestamp};

/// The one endpoint and tier the limiter's policy has.
const ANY: &str = "any";

/// A limit of `count` units per window over any number of keys.
#[derive(Debug)]
pub struct Limiter {
    policy: Policy,
    store: MemoryStore,
    window: Duration,
}

/// What [`Limiter::check`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// Counted: this many units are left in the key's budget.
    Allowed {
        /// Units left.
        remaining: u64,
    },
    /// Not counted: the key may try again after this long.
    Denied {
        /// How long until a unit is free again.
        retry_after: Duration,
    },
}

impl Verdict {
    /// Whether the request was allowed (and counted).
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allowed { .. })
    }
}

impl Limiter {
    /// `count` units per `window` for each key, on fixed windows aligned to
    /// the UNIX epoch. An error for a count of 0 or an empty window.
    pub fn new(count: u64, window: Duration) -> Result<Self, PolicyError> {
        Limiter::with_algorithm(count, window, Algorithm::FixedWindow)
    }

    /// `count` units per `window` for each key, counted by `algorithm`
    /// (see [`Algorithm`] for each one's guarantee).
    pub fn with_algorithm(
        count: u64,
        window: Duration,
        algorithm: Algorithm,
    ) -> Result<Self, PolicyError> {
        let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let mut limit = LimitSpec::new(None, WindowLength::from_millis(millis), count);
        limit.algorithm = algorithm;
        let spec = PolicySpec {
            endpoints: vec![EndpointSpec {
                path: ANY.to_owned(),
                price: None,
                priority: None,
            }],
            tiers: vec![TierSpec {
                name: ANY.to_owned(),
                granted: None,
                limits: vec![limit],
            }],
            uploads: None,
        };
        Ok(Limiter {
            policy: Policy::new(spec)?,
            store: MemoryStore::new(),
            window,
        })
    }

    /// Counts one unit for `key` at `now`, if its budget has one left.
    pub fn check(&self, key: &str, now: Timestamp) -> Verdict {
        self.check_n(key, 1, now)
    }

    /// Counts `units` for `key` at `now`, all or none. More units than the
    /// limit's count can never be allowed: denied, with the window as the
    /// wait.
    pub fn check_n(&self, key: &str, units: u64, now: Timestamp) -> Verdict {
        self.run::<true>(key, units, now)
    }

    /// What [`Limiter::check`] would answer for `key` at `now`, counting
    /// nothing.
    pub fn peek(&self, key: &str, now: Timestamp) -> Verdict {
        self.run::<false>(key, 1, now)
    }

    fn run<const COUNT: bool>(&self, key: &str, units: u64, now: Timestamp) -> Verdict {
        let req = Request {
            account: key,
            tier: ANY,
            endpoint: ANY,
            cost: units,
        };
        // Only a cost above the count fails to plan (the policy is the
        // limiter's own, with its one tier and endpoint).
        let Ok(plan) = self.policy.plan(&req) else {
            return Verdict::Denied {
                retry_after: self.window,
            };
        };
        let outcomes = if COUNT {
            self.store.decide_now(&plan, now)
        } else {
            self.store.peek_now(&plan, now)
        };
        match outcomes.iter().find(|o| !o.admits) {
            None => Verdict::Allowed {
                remaining: outcomes.first().map_or(0, |o| o.remaining),
            },
            Some(o) => Verdict::Denied {
                retry_after: Duration::from_millis(o.retry_after_ms.max(1)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may panic

    use super::*;

    const T0: u64 = 1_700_000_000_000; // 20 s into a UTC minute

    #[test]
    fn each_key_has_its_own_budget_and_a_window_later_it_is_whole_again() {
        let limiter = Limiter::new(2, Duration::from_secs(60)).unwrap();
        let now = Timestamp::from_millis(T0);
        assert_eq!(limiter.check("a", now), Verdict::Allowed { remaining: 1 });
        assert_eq!(limiter.check("a", now), Verdict::Allowed { remaining: 0 });
        assert_eq!(
            limiter.check("a", now),
            Verdict::Denied {
                retry_after: Duration::from_secs(40)
            }
        );
        assert_eq!(limiter.check("b", now), Verdict::Allowed { remaining: 1 });
        let next_minute = Timestamp::from_millis(T0 + 40_000);
        assert_eq!(
            limiter.check("a", next_minute),
            Verdict::Allowed { remaining: 1 }
        );
    }

    #[test]
    fn a_refusal_counts_nothing_and_units_go_all_or_none() {
        let limiter =
            Limiter::with_algorithm(3, Duration::from_secs(10), Algorithm::SlidingLog).unwrap();
        let now = Timestamp::from_millis(T0);
        assert!(limiter.check_n("k", 2, now).is_allowed());
        assert!(!limiter.check_n("k", 2, now).is_allowed());
        assert_eq!(
            limiter.check_n("k", 1, now),
            Verdict::Allowed { remaining: 0 }
        );
        assert_eq!(
            limiter.check_n("k", 4, now),
            Verdict::Denied {
                retry_after: Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn a_limit_that_admits_nothing_is_an_error() {
        assert!(Limiter::new(0, Duration::from_secs(1)).is_err());
        assert!(Limiter::new(1, Duration::ZERO).is_err());
    }
}
