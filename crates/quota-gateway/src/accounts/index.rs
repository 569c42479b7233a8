//! The accounts database's contents in memory: what every read answers from.
//!
//! The gateway is the only process that can open its redb file (redb locks
//! it), and every write goes through [`RedbAccounts`](RedbAccounts),
//! which commits to the file first and then puts the committed record here.
//! So resolving an API key on each request is one SHA-256 of the key and
//! two hash lookups instead of a read transaction and a JSON decode. Like
//! the file, the index holds [`KeyDigest`]s of API keys, never the keys.
//!
//! A key's last use is the one thing a read changes: it is kept in an
//! atomic (a read holds the index's read lock only), moved at most once
//! per [`LAST_USED_EVERY`](quota_core::account::LAST_USED_EVERY), and
//! written to the file by the next flush.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use foldhash::fast::RandomState;

use quota_core::account::{
    key_works, last_used_due, Account, AccountError, Identity, KeyDigest, KeyInfo,
};
use quota_core::Timestamp;

/// An account record as read from the database: a record that cannot be
/// decoded keeps its error, answered on every use (as a read of the file would).
pub(crate) type Record = Result<Account, AccountError>;

/// A key in the index: its account, what is shown of it, and its last use.
#[derive(Debug)]
pub(crate) struct IndexedKey {
    pub(crate) account: String,
    /// As written to the file (its `last_used` as of the last write).
    pub(crate) info: KeyInfo,
    /// The last use in ms since the epoch (0: never), moved by reads.
    last_used: AtomicU64,
    /// `last_used` as the file has it.
    written: AtomicU64,
}

fn millis(t: Option<Timestamp>) -> u64 {
    t.map_or(0, Timestamp::as_millis)
}

impl IndexedKey {
    pub(crate) fn new(account: String, info: KeyInfo) -> Self {
        let used = millis(info.last_used);
        IndexedKey {
            account,
            info,
            last_used: AtomicU64::new(used),
            written: AtomicU64::new(used),
        }
    }

    /// What is shown of it, with its last use now.
    pub(crate) fn info(&self) -> KeyInfo {
        let used = self.last_used.load(Ordering::Relaxed);
        KeyInfo {
            last_used: (used > 0).then(|| Timestamp::from_millis(used)),
            ..self.info.clone()
        }
    }

    /// Whether its last use moved since it was written.
    pub(crate) fn unwritten(&self) -> bool {
        self.last_used.load(Ordering::Relaxed) != self.written.load(Ordering::Relaxed)
    }

    /// Notes that the file now has the last use in `info`.
    pub(crate) fn written(&self, info: &KeyInfo) {
        self.written
            .store(millis(info.last_used), Ordering::Relaxed);
    }
}

/// Accounts by id and keys by the digest of their API key.
///
/// Hashed with foldhash (seeded per process) rather than SipHash: every
/// request looks up both maps. Only the gateway inserts (ids it made,
/// digests of keys it issued); a client's key is only looked up, so it
/// cannot fill a map with colliding entries.
#[derive(Debug, Default)]
pub(crate) struct Index {
    accounts: HashMap<String, Record, RandomState>,
    /// The account ids in order, for listing.
    ids: BTreeSet<String>,
    keys: HashMap<KeyDigest, IndexedKey, RandomState>,
}

impl Index {
    /// Puts (or replaces) an account record.
    pub(crate) fn put_record(&mut self, id: String, record: Record) {
        self.ids.insert(id.clone());
        self.accounts.insert(id, record);
    }

    /// Puts (or replaces) an account.
    pub(crate) fn put(&mut self, account: Account) {
        self.put_record(account.id.clone(), Ok(account));
    }

    /// Removes an account and its keys.
    pub(crate) fn remove(&mut self, id: &str) {
        self.accounts.remove(id);
        self.ids.remove(id);
        self.keys.retain(|_, k| k.account != id);
    }

    /// Puts (or replaces) a key.
    pub(crate) fn put_key(&mut self, digest: KeyDigest, key: IndexedKey) {
        self.keys.insert(digest, key);
    }

    /// Removes a key.
    pub(crate) fn remove_key(&mut self, digest: &KeyDigest) {
        self.keys.remove(digest);
    }

    /// Whether an account with this id exists.
    pub(crate) fn has_account(&self, id: &str) -> bool {
        self.accounts.contains_key(id)
    }

    /// Whether the API key with this digest is taken.
    pub(crate) fn has_key(&self, digest: &KeyDigest) -> bool {
        self.keys.contains_key(digest)
    }

    /// The number of accounts.
    pub(crate) fn len(&self) -> usize {
        self.accounts.len()
    }

    /// The account with this id.
    pub(crate) fn get(&self, id: &str) -> Result<Option<Account>, AccountError> {
        self.accounts.get(id).cloned().transpose()
    }

    /// Accounts in id order after `after`, at most `limit`, on `tier` if given.
    pub(crate) fn list(
        &self,
        after: Option<&str>,
        limit: usize,
        tier: Option<&str>,
    ) -> Result<Vec<Account>, AccountError> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_owned()));
        let mut out = Vec::new();
        for id in self.ids.range((from, Bound::Unbounded)) {
            if out.len() >= limit {
                break;
            }
            let Some(record) = self.accounts.get(id) else {
                continue;
            };
            let account = record.clone()?;
            if tier.is_none_or(|t| account.tier == t) {
                out.push(account);
            }
        }
        Ok(out)
    }

    /// The keys of `account` (all, working or not), with their digests.
    pub(crate) fn keys_of<'a>(
        &'a self,
        account: &'a str,
    ) -> impl Iterator<Item = (&'a KeyDigest, &'a IndexedKey)> + 'a {
        self.keys.iter().filter(move |(_, k)| k.account == account)
    }

    /// The key `key` of `account`, with its digest.
    pub(crate) fn key(
        &self,
        account: &str,
        key: &str,
    ) -> Result<(KeyDigest, &IndexedKey), AccountError> {
        if !self.has_account(account) {
            return Err(AccountError::NotFound(account.to_owned()));
        }
        self.keys
            .iter()
            .find(|(_, k)| k.account == account && k.info.id == key)
            .map(|(d, k)| (*d, k))
            .ok_or_else(|| AccountError::KeyNotFound {
                account: account.to_owned(),
                key: key.to_owned(),
            })
    }

    /// The key with this digest.
    pub(crate) fn key_by_digest(&self, digest: &KeyDigest) -> Option<&IndexedKey> {
        self.keys.get(digest)
    }

    /// Every key whose last use moved since it was written.
    pub(crate) fn unwritten_keys(&self) -> impl Iterator<Item = (&KeyDigest, &IndexedKey)> {
        self.keys.iter().filter(|(_, k)| k.unwritten())
    }

    /// Who holds the API key with this digest at `now`: `None` for an
    /// unknown key, an expired one, or one whose account is gone. Notes the
    /// key's use (at most once per `LAST_USED_EVERY`); returns whether it did.
    pub(crate) fn resolve(
        &self,
        digest: &KeyDigest,
        now: Timestamp,
    ) -> Result<(Option<Identity>, bool), AccountError> {
        let Some(key) = self.keys.get(digest) else {
            return Ok((None, false));
        };
        if !key_works(key.info.expires, now) {
            return Ok((None, false));
        }
        let who = match self.accounts.get(key.account.as_str()) {
            None => return Ok((None, false)),
            Some(Ok(a)) => Identity {
                account: a.id.clone(),
                tier: a.tier.clone(),
            },
            Some(Err(e)) => return Err(e.clone()),
        };
        let used = key.last_used.load(Ordering::Relaxed);
        let touched = last_used_due((used > 0).then(|| Timestamp::from_millis(used)), now)
            && key
                .last_used
                .compare_exchange(used, now.as_millis(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        Ok((Some(who), touched))
    }
}
