//! The operator's page's sign-ins: a server-side table of sessions, each a
//! random 128-bit id (the cookie), the admin token's name (for the audit
//! lines) and a random 128-bit CSRF token (every form's hidden `csrf`).
//!
//! At most [`MAX_SESSIONS`] at once (the least recently used goes first);
//! a session unused for [`IDLE`] is gone. Signing out removes it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use subtle::ConstantTimeEq;

/// Sessions held at once.
pub(crate) const MAX_SESSIONS: usize = 1000;
/// A session unused this long is over.
pub(crate) const IDLE: Duration = Duration::from_secs(12 * 3600);

/// One signed-in operator.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// The admin token's name.
    pub(crate) who: String,
    /// The CSRF token of the session's forms.
    pub(crate) csrf: String,
    last_used: Instant,
}

impl Session {
    /// Whether `given` is this session's CSRF token (constant time).
    pub(crate) fn csrf_matches(&self, given: &str) -> bool {
        bool::from(given.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The sessions of the operator's page.
#[derive(Debug, Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, Session>>);

/// 128 random bits, as 32 hex digits.
fn random_hex() -> String {
    let mut buf = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    let mut out = String::with_capacity(32);
    for b in buf {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

impl Sessions {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        match self.0.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A new session for `who` at `now`: its id (the cookie's value).
    pub(crate) fn open(&self, who: &str, now: Instant) -> String {
        let mut table = self.table();
        table.retain(|_, s| now.saturating_duration_since(s.last_used) < IDLE);
        if table.len() >= MAX_SESSIONS {
            let oldest = table
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                table.remove(&oldest);
            }
        }
        let id = random_hex();
        table.insert(
            id.clone(),
            Session {
                who: who.to_owned(),
                csrf: random_hex(),
                last_used: now,
            },
        );
        id
    }

    /// The session `id` at `now`, if it is open (and now used again).
    pub(crate) fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut table = self.table();
        let s = table.get_mut(id)?;
        if now.saturating_duration_since(s.last_used) >= IDLE {
            table.remove(id);
            return None;
        }
        s.last_used = now;
        Some(s.clone())
    }

    /// Signs the session `id` out.
    pub(crate) fn close(&self, id: &str) {
        self.table().remove(id);
    }

    /// How many sessions are open.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table().len()
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_are_bounded() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let id = s.open("ops", t0);
        assert_eq!(id.len(), 32);
        let got = s.get(&id, t0 + Duration::from_secs(60)).unwrap();
        assert_eq!(got.who, "ops");
        assert!(got.csrf_matches(&got.csrf.clone()));
        assert!(!got.csrf_matches("nope"));
        assert!(s.get(&id, t0 + Duration::from_secs(60) + IDLE).is_none());
        for _ in 0..MAX_SESSIONS + 5 {
            s.open("ops", t0);
        }
        assert!(s.len() <= MAX_SESSIONS);
        let id = s.open("ops", t0);
        s.close(&id);
        assert!(s.get(&id, t0).is_none());
    }
}
