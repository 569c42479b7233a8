//! The accounts database's contents in memory: what every read answers from.
//!
//! The gateway is the only process that can open its redb file (redb locks
//! it), and every write goes through [`RedbAccounts`](RedbAccounts),
//! which commits to the file first and then puts the committed record here.
//! So resolving an API key on each request is one SHA-256 of the key and
//! two hash lookups instead of a read transaction and a JSON decode. Like
//! the file, the index holds [`KeyDigest`]s of API keys, never the keys.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use quota_core::account::{Account, AccountError, Identity, KeyDigest};

/// An account record as read from the database: a record that cannot be
/// decoded keeps its error, answered on every use (as a read of the file would).
pub(crate) type Record = Result<Account, AccountError>;

/// Accounts by id and account ids by the digest of their API key.
///
/// Hashed with foldhash (seeded per process) rather than SipHash: every
/// request looks up both maps. Only the gateway inserts (ids it made,
/// digests of keys it issued); a client's key is only looked up, so it
/// cannot fill a map with colliding entries.
#[derive(Debug, Default)]
pub(crate) struct Index {
    accounts: HashMap<String, Record, RandomState>,
    keys: HashMap<KeyDigest, String, RandomState>,
}

impl Index {
    /// Puts (or replaces) an account record.
    pub(crate) fn put_record(&mut self, id: String, record: Record) {
        self.accounts.insert(id, record);
    }

    /// Puts (or replaces) an account.
    pub(crate) fn put(&mut self, account: Account) {
        self.accounts.insert(account.id.clone(), Ok(account));
    }

    /// Puts (or replaces) the digest of an API key.
    pub(crate) fn put_key(&mut self, digest: KeyDigest, id: String) {
        self.keys.insert(digest, id);
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

    /// Who holds the API key with this digest: `None` for an unknown key
    /// (or one whose account is gone).
    pub(crate) fn resolve(&self, digest: &KeyDigest) -> Result<Option<Identity>, AccountError> {
        let Some(id) = self.keys.get(digest) else {
            return Ok(None);
        };
        match self.accounts.get(id.as_str()) {
            None => Ok(None),
            Some(Ok(a)) => Ok(Some(Identity {
                account: a.id.clone(),
                tier: a.tier.clone(),
            })),
            Some(Err(e)) => Err(e.clone()),
        }
    }
}
