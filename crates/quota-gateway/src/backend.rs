//! The store and account source the gateway runs on: embedded (memory
//! counters, redb accounts) or Redis (both in Redis, shared by every node).
//!
//! The core's traits return `impl Future`, so they are not object-safe; these
//! enums dispatch to the backend chosen at start-up.

use quota_core::account::{
    key_digest, Account, AccountAdmin, AccountError, AccountUpdate, Accounts, Charge, Identity,
    KeyDigest, KeyInfo, MemoryAccounts, NewAccount, NewKey,
};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use quota_core::policy::{Money, Plan};
use quota_core::{MemoryStore, Outcomes, Receipt, Store, StoreError, Timestamp};

use quota_redis::{FailurePolicy, RedisAccounts, RedisStore, StoreHealth};

#[cfg(feature = "redb")]
use crate::accounts::RedbAccounts;

/// Where limit counters live.
pub enum GatewayStore {
    /// In this process.
    Memory(MemoryStore),
    /// In Redis, with `/healthz`'s probe of it.
    Redis(RedisStore, Probe),
}

/// How often `/healthz` asks Redis at most: a call within this long of the
/// last ping gets that ping's answer.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// `/healthz`'s own look at Redis, so that it shows the store as it is now
/// rather than as the last decision found it (a node taken out during an
/// outage comes back without a request being sent to it): a `PING` at most
/// once per `PROBE_EVERY` (1 s), one at a time (callers meanwhile wait for its
/// answer), bounded by the store's timeout. The time of the last one.
#[derive(Debug, Default)]
pub struct Probe(tokio::sync::Mutex<Option<Instant>>);

impl GatewayStore {
    /// `memory` or `redis`.
    pub fn backend(&self) -> &'static str {
        match self {
            GatewayStore::Memory(_) => "memory",
            GatewayStore::Redis(..) => "redis",
        }
    }

    /// On Redis, asks it whether it answers now (see [`Probe`]); what it
    /// says is what [`GatewayStore::mode`] and the failure policy go by from
    /// then on (a successful `PING` tells the failure policy Redis is back).
    pub(crate) async fn probe(&self) {
        let GatewayStore::Redis(r, probe) = self else {
            return;
        };
        let mut last = probe.0.lock().await;
        if last.is_some_and(|at| at.elapsed() < PROBE_EVERY) {
            return;
        }
        // Bounded by the store's timeout; the answer is recorded in its
        // health (and a failure logged there).
        if let Err(e) = r.ping().await {
            tracing::debug!(error = %e, "health probe: redis does not answer");
        }
        *last = Some(Instant::now());
    }

    /// `ok`; on Redis while it does not answer, what the failure policy
    /// does: `fallback` (`open` or `local:N`) or `unavailable` (`closed`).
    pub fn mode(&self) -> &'static str {
        match self {
            GatewayStore::Memory(_) => "ok",
            GatewayStore::Redis(r, _) => {
                let h = r.health();
                match (h.redis_ok, h.failure_policy) {
                    (true, _) => "ok",
                    (false, FailurePolicy::Closed) => "unavailable",
                    (false, _) => "fallback",
                }
            }
        }
    }

    /// Forgets every counter of `account` (every limit, every scope): the
    /// admin API's `DELETE /admin/accounts/{id}/usage`.
    ///
    /// # Errors
    /// The Redis store's, when it cannot be reached.
    pub async fn reset_account(&self, account: &str) -> Result<(), StoreError> {
        match self {
            GatewayStore::Memory(m) => {
                m.forget_account(account);
                Ok(())
            }
            GatewayStore::Redis(r, _) => r.forget_account(account).await.map(|_| ()),
        }
    }

    /// The Redis store's health, when on Redis.
    pub fn redis_health(&self) -> Option<StoreHealth> {
        match self {
            GatewayStore::Memory(_) => None,
            GatewayStore::Redis(r, _) => Some(r.health()),
        }
    }
}

impl Store for GatewayStore {
    async fn decide<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> Result<Outcomes, StoreError> {
        match self {
            GatewayStore::Memory(m) => Ok(m.decide_now(plan, now)),
            GatewayStore::Redis(r, _) => r.decide(plan, now).await,
        }
    }

    async fn peek<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> Result<Outcomes, StoreError> {
        match self {
            GatewayStore::Memory(m) => Ok(m.peek_now(plan, now)),
            GatewayStore::Redis(r, _) => r.peek(plan, now).await,
        }
    }

    async fn decide_with_receipt<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> Result<Receipt, StoreError> {
        match self {
            GatewayStore::Memory(m) => Ok(Receipt::new(m.decide_now(plan, now), now)),
            GatewayStore::Redis(r, _) => r.decide_with_receipt(plan, now).await,
        }
    }

    async fn refund<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        receipt: &'a Receipt,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        match self {
            GatewayStore::Memory(m) => m.refund(plan, receipt, now).await,
            GatewayStore::Redis(r, _) => r.refund(plan, receipt, now).await,
        }
    }

    fn answers_at_once(&self) -> bool {
        matches!(self, GatewayStore::Memory(_))
    }
}

/// Where accounts live.
pub enum GatewayAccounts {
    /// In this process, gone when it ends (for tests and embedding).
    Memory(MemoryAccounts),
    /// In the embedded database.
    #[cfg(feature = "redb")]
    Redb(RedbAccounts),
    /// In Redis, with the identities last seen for when Redis is away.
    Redis(RedisAccounts, LastKnown),
}

/// The identities Redis last answered, by the digest of the API key (no
/// key is kept in clear): used only while Redis
/// cannot answer, so that the store's failure policy (`open`, `local:N`)
/// can still decide for callers seen before. A tier changed meanwhile is
/// seen once Redis answers again. Bounded: cleared when it grows past
/// `LastKnown::CAPACITY` (100,000) keys.
#[derive(Debug, Default)]
pub struct LastKnown(Mutex<HashMap<KeyDigest, Identity>>);

impl LastKnown {
    /// The most keys remembered.
    pub(crate) const CAPACITY: usize = 100_000;

    fn remember(&self, key: KeyDigest, who: &Identity) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&key) == Some(who) {
            return;
        }
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(key, who.clone());
    }

    fn recall(&self, key: &KeyDigest) -> Option<Identity> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Forgets every identity of `account` (its key was revoked or
    /// rotated, or it was deleted).
    fn forget_account(&self, account: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, who| who.account != account);
    }

    fn forget(&self, key: &KeyDigest) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

/// Resolves through Redis, falling back to the last known identity while
/// Redis is unavailable.
async fn resolve_redis(
    r: &RedisAccounts,
    last: &LastKnown,
    api_key: &str,
) -> Result<Option<Identity>, AccountError> {
    // Hashed once: the digest resolves the key and keys the memory of it
    // (no key is kept in clear, here either).
    let digest = key_digest(api_key);
    match r.resolve_digested(api_key, &digest).await {
        Ok(Some(who)) => {
            last.remember(digest, &who);
            Ok(Some(who))
        }
        Ok(None) => {
            last.forget(&digest);
            Ok(None)
        }
        Err(e @ AccountError::Unavailable { .. }) => match last.recall(&digest) {
            Some(who) => {
                tracing::debug!(error = %e, "redis unavailable: using the last known identity");
                Ok(Some(who))
            }
            None => Err(e),
        },
        Err(other) => Err(other),
    }
}

impl GatewayAccounts {
    /// Makes recent writes durable (embedded database only; Redis persists on its own).
    pub fn flush(&self) -> Result<(), AccountError> {
        match self {
            GatewayAccounts::Memory(_) => Ok(()),
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.flush(),
            GatewayAccounts::Redis(..) => Ok(()),
        }
    }

    /// `redb` or `redis`.
    pub fn backend(&self) -> &'static str {
        match self {
            GatewayAccounts::Memory(_) => "memory",
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(_) => "redb",
            GatewayAccounts::Redis(..) => "redis",
        }
    }
}

impl Accounts for GatewayAccounts {
    async fn resolve(&self, api_key: &str) -> Result<Option<Identity>, AccountError> {
        match self {
            GatewayAccounts::Memory(m) => m.resolve(api_key).await,
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.resolve(api_key).await,
            GatewayAccounts::Redis(r, last) => resolve_redis(r, last, api_key).await,
        }
    }

    async fn charge(&self, account: &str, price: Money) -> Result<Charge, AccountError> {
        match self {
            GatewayAccounts::Memory(m) => m.charge(account, price).await,
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.charge(account, price).await,
            GatewayAccounts::Redis(r, _) => r.charge(account, price).await,
        }
    }

    async fn refund(&self, account: &str, amount: Money) -> Result<(), AccountError> {
        match self {
            GatewayAccounts::Memory(m) => m.refund(account, amount).await,
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.refund(account, amount).await,
            GatewayAccounts::Redis(r, _) => r.refund(account, amount).await,
        }
    }

    fn answers_at_once(&self) -> bool {
        // redb reads and writes its file in place, but may wait on its lock.
        matches!(self, GatewayAccounts::Memory(_))
    }
}

impl AccountAdmin for GatewayAccounts {
    async fn create(&self, new: NewAccount, now: Timestamp) -> Result<Account, AccountError> {
        match self {
            GatewayAccounts::Memory(m) => m.create(new, now).await,
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.create(new, now).await,
            GatewayAccounts::Redis(r, _) => r.create(new, now).await,
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Account>, AccountError> {
        match self {
            GatewayAccounts::Memory(m) => m.get(id).await,
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.get(id).await,
            GatewayAccounts::Redis(r, _) => r.get(id).await,
        }
    }

    async fn record_payment(
        &self,
        id: &str,
        amount: Money,
        tier: &str,
    ) -> Result<Account, AccountError> {
        match self {
            GatewayAccounts::Memory(m) => m.record_payment(id, amount, tier).await,
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.record_payment(id, amount, tier).await,
            GatewayAccounts::Redis(r, _) => r.record_payment(id, amount, tier).await,
        }
    }

    async fn list(
        &self,
        after: Option<&str>,
        limit: usize,
        tier: Option<&str>,
    ) -> Result<Vec<Account>, AccountError> {
        match self {
            GatewayAccounts::Memory(m) => m.list(after, limit, tier).await,
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.list(after, limit, tier).await,
            GatewayAccounts::Redis(r, _) => r.list(after, limit, tier).await,
        }
    }

    async fn update(&self, id: &str, change: AccountUpdate) -> Result<Account, AccountError> {
        match self {
            GatewayAccounts::Memory(m) => m.update(id, change).await,
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.update(id, change).await,
            GatewayAccounts::Redis(r, _) => r.update(id, change).await,
        }
    }

    /// On Redis, this gateway also forgets the identities it remembered
    /// (`LastKnown`): a deleted account's keys stop here even while Redis
    /// is away.
    async fn delete(&self, id: &str) -> Result<(), AccountError> {
        match self {
            GatewayAccounts::Memory(m) => m.delete(id).await,
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.delete(id).await,
            GatewayAccounts::Redis(r, last) => {
                r.delete(id).await?;
                last.forget_account(id);
                Ok(())
            }
        }
    }

    async fn add_key(
        &self,
        account: &str,
        key: NewKey,
        now: Timestamp,
    ) -> Result<KeyInfo, AccountError> {
        match self {
            GatewayAccounts::Memory(m) => m.add_key(account, key, now).await,
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.add_key(account, key, now).await,
            GatewayAccounts::Redis(r, _) => r.add_key(account, key, now).await,
        }
    }

    async fn list_keys(&self, account: &str, now: Timestamp) -> Result<Vec<KeyInfo>, AccountError> {
        match self {
            GatewayAccounts::Memory(m) => m.list_keys(account, now).await,
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.list_keys(account, now).await,
            GatewayAccounts::Redis(r, _) => r.list_keys(account, now).await,
        }
    }

    async fn revoke_key(&self, account: &str, key: &str) -> Result<(), AccountError> {
        match self {
            GatewayAccounts::Memory(m) => m.revoke_key(account, key).await,
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.revoke_key(account, key).await,
            GatewayAccounts::Redis(r, last) => {
                r.revoke_key(account, key).await?;
                last.forget_account(account);
                Ok(())
            }
        }
    }

    async fn expire_key(
        &self,
        account: &str,
        key: &str,
        at: Timestamp,
    ) -> Result<KeyInfo, AccountError> {
        match self {
            GatewayAccounts::Memory(m) => m.expire_key(account, key, at).await,
            #[cfg(feature = "redb")]
            GatewayAccounts::Redb(r) => r.expire_key(account, key, at).await,
            GatewayAccounts::Redis(r, last) => {
                let info = r.expire_key(account, key, at).await?;
                last.forget_account(account);
                Ok(info)
            }
        }
    }
}

impl From<MemoryStore> for GatewayStore {
    fn from(store: MemoryStore) -> Self {
        GatewayStore::Memory(store)
    }
}

impl From<RedisStore> for GatewayStore {
    fn from(store: RedisStore) -> Self {
        GatewayStore::Redis(store, Probe::default())
    }
}

/// Given the gateway's clock if it has none (so that rotated keys expire).
impl From<MemoryAccounts> for GatewayAccounts {
    fn from(accounts: MemoryAccounts) -> Self {
        if accounts.has_clock() {
            GatewayAccounts::Memory(accounts)
        } else {
            GatewayAccounts::Memory(accounts.with_clock(crate::shared::now))
        }
    }
}

#[cfg(feature = "redb")]
impl From<RedbAccounts> for GatewayAccounts {
    fn from(accounts: RedbAccounts) -> Self {
        GatewayAccounts::Redb(accounts)
    }
}

impl From<RedisAccounts> for GatewayAccounts {
    fn from(accounts: RedisAccounts) -> Self {
        GatewayAccounts::Redis(accounts, LastKnown::default())
    }
}
