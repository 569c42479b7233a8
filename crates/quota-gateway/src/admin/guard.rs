//! Failed admin authentications, limited per client address by the engine
//! itself: a [`Limiter`] (by default 10 wrong tokens a minute from one
//! address, on a sliding log, so the limit holds over any minute). Past it,
//! every admin request from that address is refused (429), even one with
//! the right token, until the oldest failure leaves the window.
//!
//! The guard only counts; it never sees the token, which the admin API
//! compares in constant time. Time is passed in, so tests run in virtual
//! time.

use std::net::IpAddr;
use std::time::Duration;

use quota_core::algorithm::Algorithm;
use quota_core::limiter::{Limiter, Verdict};
use quota_core::policy::PolicyError;
use quota_core::Timestamp;

/// The default: wrong admin tokens allowed from one address...
pub(crate) const MAX_FAILURES: u64 = 10;
/// ...in any window of this length.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// Counts failed admin authentications per client address.
#[derive(Debug)]
pub(crate) struct AdminGuard(Limiter);

impl AdminGuard {
    /// At most `failures` wrong tokens from one address in any `window`.
    ///
    /// # Errors
    /// A `failures` of 0, or a window shorter than a millisecond.
    pub(crate) fn new(failures: u64, window: Duration) -> Result<Self, PolicyError> {
        Limiter::with_algorithm(failures, window, Algorithm::SlidingLog).map(AdminGuard)
    }

    /// An admin request from `client` at `now`, whose token was wrong
    /// (`failed`) or not: `Ok` to answer it, or `Err` with how long until
    /// `client` may try again. A wrong token is counted (atomically:
    /// concurrent failures get exactly the allowance), and refused once it
    /// is one too many; any other request only looks, and is refused while
    /// the failures in the window are at the limit.
    pub(crate) fn check_attempt(
        &self,
        client: IpAddr,
        failed: bool,
        now: Timestamp,
    ) -> Result<(), Duration> {
        let key = client.to_canonical().to_string();
        let verdict = if failed {
            self.0.check(&key, now)
        } else {
            self.0.peek(&key, now)
        };
        match verdict {
            Verdict::Allowed { .. } => Ok(()),
            Verdict::Denied { retry_after } => Err(retry_after),
        }
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_700_000_000_123);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_failure_past_the_limit_and_every_request_after_it_wait_for_the_window() {
        let guard = AdminGuard::new(MAX_FAILURES, WINDOW).unwrap();
        let attacker = ip("203.0.113.7");
        for i in 0..MAX_FAILURES {
            let at = T0.saturating_add(Duration::from_secs(i));
            assert_eq!(
                guard.check_attempt(attacker, true, at),
                Ok(()),
                "failure {i}"
            );
        }
        // The 11th wrong token, 10 s after the first: 50 s to wait.
        let now = T0.saturating_add(Duration::from_secs(10));
        assert_eq!(
            guard.check_attempt(attacker, true, now),
            Err(Duration::from_secs(50))
        );
        // The right token too, until the first failure leaves the window.
        let later = T0.saturating_add(Duration::from_millis(59_999));
        assert_eq!(
            guard.check_attempt(attacker, false, later),
            Err(Duration::from_millis(1))
        );
        let after = T0.saturating_add(WINDOW);
        assert_eq!(guard.check_attempt(attacker, false, after), Ok(()));
        // One failure has left the window: one more may be made.
        assert_eq!(guard.check_attempt(attacker, true, after), Ok(()));
        assert!(guard.check_attempt(attacker, true, after).is_err());
    }

    #[test]
    fn each_address_has_its_own_allowance_and_successes_cost_nothing() {
        let guard = AdminGuard::new(2, WINDOW).unwrap();
        let (a, b) = (ip("192.0.2.1"), ip("2001:db8::1"));
        for _ in 0..100 {
            assert_eq!(guard.check_attempt(a, false, T0), Ok(()));
        }
        assert_eq!(guard.check_attempt(a, true, T0), Ok(()));
        assert_eq!(guard.check_attempt(a, true, T0), Ok(()));
        assert!(guard.check_attempt(a, true, T0).is_err());
        assert!(guard.check_attempt(a, false, T0).is_err());
        assert_eq!(guard.check_attempt(b, true, T0), Ok(()));
        // An IPv4-mapped address is its IPv4 address.
        assert!(guard
            .check_attempt(ip("::ffff:192.0.2.1"), false, T0)
            .is_err());
        assert!(AdminGuard::new(0, WINDOW).is_err());
    }
}
