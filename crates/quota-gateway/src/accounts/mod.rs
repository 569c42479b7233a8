//! Accounts on disk: the embedded default, in a `redb` database under `--data-dir`.
//!
//! Three tables: `accounts` (id to the account as JSON), `key_digests`
//! ([`key_digest`] of an API key, 32 bytes, to the account id) and
//! `api_keys` (the same digest to what is shown of the key: its id, name,
//! creation, last use and expiry, as JSON). No API key
//! is stored in clear, in the file or in memory: resolving a request's key
//! hashes it once and looks the digest up.
//!
//! Versions before named keys wrote no `api_keys`: opening such a database
//! gives each digest of `key_digests` without a row there its row, as the
//! account's first key (named `default`, with the id
//! [`first_key_id`] derives from the digest, created with the account).
//! A key's last use is kept in memory and written by the flush, at most
//! once per [`LAST_USED_EVERY`](quota_core::account::LAST_USED_EVERY) per key.
//!
//! Creating an account and recording a payment commit durably (fsync)
//! before they answer; charges and refunds, one per priced request, commit
//! without waiting for the disk (the OS writes them; a crash of the process
//! loses nothing, a power cut may lose the last moment), and a durable commit
//! every second and at shutdown ([`RedbAccounts::flush`]) puts them on disk.
//!
//! Reads never touch the file: the whole database is loaded into an
//! `Index` when it opens, and each write updates the index once its
//! transaction has committed (writers go one at a time).
//!
//! Versions before the digests kept API keys in clear in a table `keys`.
//! Opening such a database migrates it: see the `migration` module.

use std::future::{ready, Future};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use quota_core::account::{
    earliest, first_key_id, key_digest, key_works, sort_keys, Account, AccountAdmin, AccountError,
    AccountUpdate, Accounts, Charge, Identity, KeyDigest, KeyInfo, NewAccount, NewKey,
    FIRST_KEY_NAME,
};
use quota_core::policy::Money;
use quota_core::Timestamp;
use redb::{Database, Durability, ReadableTable, TableDefinition};

use index::{Index, IndexedKey};

mod index;
mod migration;

const ACCOUNTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("accounts");
/// Account ids by [`key_digest`] of their API key.
const KEY_DIGESTS: TableDefinition<'_, &[u8; 32], &str> = TableDefinition::new("key_digests");
/// What is shown of each key ([`KeyInfo`] as JSON), by the same digest.
const API_KEYS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("api_keys");

/// The database file's name inside the data folder.
pub const DB_FILE: &str = "accounts.redb";

/// Accounts in a redb file. Cheap to clone.
#[derive(Clone)]
pub struct RedbAccounts {
    db: Arc<Database>,
    /// Everything in the database, for reads.
    index: Arc<RwLock<Index>>,
    /// Held by each writer from reading the index to updating it.
    writer: Arc<Mutex<()>>,
    dirty: Arc<AtomicBool>,
    /// Some key's last use moved since the last flush.
    used: Arc<AtomicBool>,
    path: PathBuf,
}

impl std::fmt::Debug for RedbAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbAccounts")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> AccountError {
    AccountError::unavailable(format!("accounts database: {e}"))
}

impl RedbAccounts {
    /// Opens (or creates) the database in `dir`, migrating one that an
    /// older version wrote (see the `migration` module).
    pub fn open(dir: &Path) -> Result<Self, crate::Error> {
        Self::open_inner(dir).map_err(|e| crate::Error::Accounts(e.into()))
    }

    fn open_inner(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", dir.display()))?;
        let path = dir.join(DB_FILE);
        let db = create(&path)?;
        let db = migration::migrate(db, &path, create)?;
        // Create the tables so that readers never meet a missing one.
        let tx = db.begin_write()?;
        {
            tx.open_table(ACCOUNTS)?;
            tx.open_table(KEY_DIGESTS)?;
            tx.open_table(API_KEYS)?;
        }
        tx.commit()?;
        name_first_keys(&db)
            .map_err(|e| anyhow::anyhow!("{}: cannot name the API keys: {e}", path.display()))?;
        let index = load(&db).map_err(|e| {
            anyhow::anyhow!("{}: cannot read the accounts database: {e}", path.display())
        })?;
        Ok(RedbAccounts {
            db: Arc::new(db),
            index: Arc::new(RwLock::new(index)),
            writer: Arc::new(Mutex::new(())),
            dirty: Arc::new(AtomicBool::new(false)),
            used: Arc::new(AtomicBool::new(false)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every commit so far durable (an fsync), if any was not.
    /// Keys' last uses noted since the last flush are written then.
    pub fn flush(&self) -> Result<(), AccountError> {
        let used = self.used.swap(false, Ordering::AcqRel);
        if !self.dirty.swap(false, Ordering::AcqRel) && !used {
            return Ok(());
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut tx = self.db.begin_write().map_err(unavailable)?;
        tx.set_durability(Durability::Immediate);
        let mut written = Vec::new();
        if used {
            let index = self.read();
            let mut t = tx.open_table(API_KEYS).map_err(unavailable)?;
            for (digest, key) in index.unwritten_keys() {
                let info = key.info();
                t.insert(digest.as_bytes(), encode_key(&info)?.as_slice())
                    .map_err(unavailable)?;
                written.push((*digest, info));
            }
        }
        tx.commit().map_err(unavailable)?;
        let index = self.read();
        for (digest, info) in written {
            if let Some(key) = index.key_by_digest(&digest) {
                key.written(&info);
            }
        }
        Ok(())
    }

    /// The number of accounts.
    pub fn count(&self) -> Result<u64, AccountError> {
        Ok(self.read().len() as u64)
    }

    fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_index(&self, f: impl FnOnce(&mut Index)) {
        f(&mut self.index.write().unwrap_or_else(PoisonError::into_inner));
    }

    fn get_sync(&self, id: &str) -> Result<Option<Account>, AccountError> {
        self.read().get(id)
    }

    fn resolve_sync(&self, api_key: &str) -> Result<Option<Identity>, AccountError> {
        let digest = key_digest(api_key);
        let (who, touched) = self.read().resolve(&digest, crate::shared::now())?;
        if touched {
            self.used.store(true, Ordering::Release);
        }
        Ok(who)
    }

    /// Runs `change` in one durable write transaction under the writer lock,
    /// then `after` on the index once it committed.
    fn write<T>(
        &self,
        change: impl FnOnce(&Index, &redb::WriteTransaction) -> Result<T, AccountError>,
        after: impl FnOnce(&mut Index, &T),
    ) -> Result<T, AccountError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut tx = self.db.begin_write().map_err(unavailable)?;
        tx.set_durability(Durability::Immediate);
        let out = change(&self.read(), &tx)?;
        tx.commit().map_err(unavailable)?;
        self.write_index(|index| after(index, &out));
        Ok(out)
    }

    fn delete_sync(&self, id: &str) -> Result<(), AccountError> {
        self.write(
            |index, tx| {
                if !index.has_account(id) {
                    return Err(AccountError::NotFound(id.to_owned()));
                }
                let mut accounts = tx.open_table(ACCOUNTS).map_err(unavailable)?;
                let mut digests = tx.open_table(KEY_DIGESTS).map_err(unavailable)?;
                let mut keys = tx.open_table(API_KEYS).map_err(unavailable)?;
                accounts.remove(id).map_err(unavailable)?;
                for (digest, _) in index.keys_of(id) {
                    digests.remove(digest.as_bytes()).map_err(unavailable)?;
                    keys.remove(digest.as_bytes()).map_err(unavailable)?;
                }
                Ok(())
            },
            |index, ()| index.remove(id),
        )
    }

    fn add_key_sync(
        &self,
        account: &str,
        key: NewKey,
        now: Timestamp,
    ) -> Result<KeyInfo, AccountError> {
        let digest = key_digest(&key.api_key);
        let info = KeyInfo {
            id: key.id,
            name: key.name,
            created: now,
            last_used: None,
            expires: None,
        };
        self.write(
            |index, tx| {
                if !index.has_account(account) {
                    return Err(AccountError::NotFound(account.to_owned()));
                }
                let id_taken = index.keys_of(account).any(|(_, k)| k.info.id == info.id);
                if id_taken || index.has_key(&digest) {
                    return Err(AccountError::Exists(info.id.clone()));
                }
                let mut digests = tx.open_table(KEY_DIGESTS).map_err(unavailable)?;
                let mut keys = tx.open_table(API_KEYS).map_err(unavailable)?;
                digests
                    .insert(digest.as_bytes(), account)
                    .map_err(unavailable)?;
                keys.insert(digest.as_bytes(), encode_key(&info)?.as_slice())
                    .map_err(unavailable)?;
                Ok(info.clone())
            },
            |index, info| index.put_key(digest, IndexedKey::new(account.to_owned(), info.clone())),
        )
    }

    fn revoke_key_sync(&self, account: &str, key: &str) -> Result<(), AccountError> {
        self.write(
            |index, tx| {
                let (digest, _) = index.key(account, key)?;
                let mut digests = tx.open_table(KEY_DIGESTS).map_err(unavailable)?;
                let mut keys = tx.open_table(API_KEYS).map_err(unavailable)?;
                digests.remove(digest.as_bytes()).map_err(unavailable)?;
                keys.remove(digest.as_bytes()).map_err(unavailable)?;
                Ok(digest)
            },
            |index, digest| index.remove_key(digest),
        )
        .map(|_| ())
    }

    fn expire_key_sync(
        &self,
        account: &str,
        key: &str,
        at: Timestamp,
    ) -> Result<KeyInfo, AccountError> {
        let (_, info) = self.write(
            |index, tx| {
                let (digest, k) = index.key(account, key)?;
                let mut info = k.info();
                info.expires = Some(earliest(info.expires, at));
                let mut keys = tx.open_table(API_KEYS).map_err(unavailable)?;
                keys.insert(digest.as_bytes(), encode_key(&info)?.as_slice())
                    .map_err(unavailable)?;
                Ok((digest, info))
            },
            |index, (digest, info)| {
                index.put_key(*digest, IndexedKey::new(account.to_owned(), info.clone()));
            },
        )?;
        Ok(info)
    }

    fn keys_sync(&self, account: &str, now: Timestamp) -> Result<Vec<KeyInfo>, AccountError> {
        let index = self.read();
        if !index.has_account(account) {
            return Err(AccountError::NotFound(account.to_owned()));
        }
        let mut keys: Vec<KeyInfo> = index
            .keys_of(account)
            .map(|(_, k)| k.info())
            .filter(|k| key_works(k.expires, now))
            .collect();
        sort_keys(&mut keys);
        Ok(keys)
    }

    /// Reads, changes and writes one account in one transaction.
    fn update<T>(
        &self,
        id: &str,
        durable: bool,
        change: impl FnOnce(&mut Account) -> Result<(T, bool), AccountError>,
    ) -> Result<T, AccountError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.read().get(id)?;
        let mut account = current.ok_or_else(|| AccountError::NotFound(id.to_owned()))?;
        let (out, write) = change(&mut account)?;
        if !write {
            return Ok(out);
        }
        let bytes = encode(&account)?;
        let mut tx = self.db.begin_write().map_err(unavailable)?;
        tx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::Eventual
        });
        {
            let mut t = tx.open_table(ACCOUNTS).map_err(unavailable)?;
            t.insert(id, bytes.as_slice()).map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)?;
        if !durable {
            self.dirty.store(true, Ordering::Release);
        }
        self.write_index(|index| index.put_record(id.to_owned(), Ok(account)));
        Ok(out)
    }

    fn create_sync(&self, new: NewAccount, now: Timestamp) -> Result<Account, AccountError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let digest = key_digest(&new.api_key);
        {
            let index = self.read();
            if index.has_account(&new.id) || index.has_key(&digest) {
                return Err(AccountError::Exists(new.id));
            }
        }
        let account = Account {
            id: new.id.clone(),
            tier: new.tier,
            credit: new.credit,
            paid: Money::ZERO,
            spent: Money::ZERO,
            requests: 0,
            created_at: now,
        };
        let bytes = encode(&account)?;
        let key = first_key(&digest, now);
        let mut tx = self.db.begin_write().map_err(unavailable)?;
        tx.set_durability(Durability::Immediate);
        {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(unavailable)?;
            let mut digests = tx.open_table(KEY_DIGESTS).map_err(unavailable)?;
            let mut keys = tx.open_table(API_KEYS).map_err(unavailable)?;
            accounts
                .insert(new.id.as_str(), bytes.as_slice())
                .map_err(unavailable)?;
            digests
                .insert(digest.as_bytes(), new.id.as_str())
                .map_err(unavailable)?;
            keys.insert(digest.as_bytes(), encode_key(&key)?.as_slice())
                .map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)?;
        self.write_index(|index| {
            index.put(account.clone());
            index.put_key(digest, IndexedKey::new(new.id, key));
        });
        Ok(account)
    }
}

/// Reads the whole database.
fn load(db: &Database) -> anyhow::Result<Index> {
    let tx = db.begin_read()?;
    let mut index = Index::default();
    for row in tx.open_table(ACCOUNTS)?.iter()? {
        let (id, record) = row?;
        index.put_record(id.value().to_owned(), decode(record.value()));
    }
    let keys = tx.open_table(API_KEYS)?;
    for row in tx.open_table(KEY_DIGESTS)?.iter()? {
        let (digest, id) = row?;
        let digest = KeyDigest::from_bytes(*digest.value());
        // Every digest has its row: `name_first_keys` ran before.
        let Some(info) = keys.get(digest.as_bytes())? else {
            anyhow::bail!(
                "key {} of account {:?} has no api_keys row",
                first_key_id(&digest),
                id.value()
            );
        };
        let info = decode_key(info.value())?;
        index.put_key(digest, IndexedKey::new(id.value().to_owned(), info));
    }
    Ok(index)
}

/// The first key of an account created at `now`, or of one written before
/// named keys (the digest it was created with).
fn first_key(digest: &KeyDigest, created: Timestamp) -> KeyInfo {
    KeyInfo {
        id: first_key_id(digest),
        name: FIRST_KEY_NAME.to_owned(),
        created,
        last_used: None,
        expires: None,
    }
}

/// Gives each digest of `key_digests` without an `api_keys` row its row:
/// the one key of an account written before named keys becomes its first
/// named key. Returns how many.
fn name_first_keys(db: &Database) -> anyhow::Result<u64> {
    let tx = db.begin_write()?;
    let mut named = 0;
    {
        let accounts = tx.open_table(ACCOUNTS)?;
        let digests = tx.open_table(KEY_DIGESTS)?;
        let mut keys = tx.open_table(API_KEYS)?;
        let mut missing = Vec::new();
        for row in digests.iter()? {
            let (digest, id) = row?;
            if keys.get(digest.value())?.is_none() {
                missing.push((*digest.value(), id.value().to_owned()));
            }
        }
        for (digest, id) in missing {
            let created = match accounts.get(id.as_str())? {
                Some(record) => decode(record.value()).map_or(Timestamp::EPOCH, |a| a.created_at),
                None => Timestamp::EPOCH,
            };
            let info = first_key(&KeyDigest::from_bytes(digest), created);
            keys.insert(&digest, encode_key(&info)?.as_slice())?;
            named += 1;
        }
    }
    tx.commit()?;
    if named > 0 {
        tracing::info!(
            keys = named,
            "accounts database: {named} API keys of an older version named \"{FIRST_KEY_NAME}\""
        );
    }
    Ok(named)
}

fn decode_key(bytes: &[u8]) -> Result<KeyInfo, AccountError> {
    serde_json::from_slice(bytes).map_err(|e| unavailable(format!("corrupt key record: {e}")))
}

fn encode_key(k: &KeyInfo) -> Result<Vec<u8>, AccountError> {
    serde_json::to_vec(k).map_err(unavailable)
}

/// Opens (or creates) the database file at `path`.
fn create(path: &Path) -> anyhow::Result<Database> {
    Database::create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
            "{}: the accounts database is in use by another process (another `quota serve` with the same --data-dir?)",
            path.display()
        ),
        other => anyhow::anyhow!("{}: cannot open the accounts database: {other}", path.display()),
    })
}

fn decode(bytes: &[u8]) -> Result<Account, AccountError> {
    serde_json::from_slice(bytes).map_err(|e| unavailable(format!("corrupt account record: {e}")))
}

fn encode(a: &Account) -> Result<Vec<u8>, AccountError> {
    serde_json::to_vec(a).map_err(unavailable)
}

/// Runs a blocking database call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
) -> Result<T, AccountError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| unavailable(format!("database task failed: {e}")))?
}

fn add(a: Money, b: Money) -> Money {
    Money::from_micros(a.micros().saturating_add(b.micros()))
}

fn sub(a: Money, b: Money) -> Money {
    Money::from_micros(a.micros().saturating_sub(b.micros()))
}

impl Accounts for RedbAccounts {
    fn resolve(
        &self,
        api_key: &str,
    ) -> impl Future<Output = Result<Option<Identity>, AccountError>> + Send {
        ready(self.resolve_sync(api_key))
    }

    fn charge(
        &self,
        account: &str,
        price: Money,
    ) -> impl Future<Output = Result<Charge, AccountError>> + Send {
        ready(self.update(account, false, |a| {
            if a.credit < price {
                return Ok((
                    Charge::Insufficient {
                        credit: a.credit,
                        price,
                    },
                    false,
                ));
            }
            a.credit = sub(a.credit, price);
            a.spent = add(a.spent, price);
            a.requests = a.requests.saturating_add(1);
            Ok((
                Charge::Charged {
                    remaining: a.credit,
                },
                true,
            ))
        }))
    }

    fn refund(
        &self,
        account: &str,
        amount: Money,
    ) -> impl Future<Output = Result<(), AccountError>> + Send {
        ready(self.update(account, false, |a| {
            a.credit = add(a.credit, amount);
            a.spent = sub(a.spent, amount);
            a.requests = a.requests.saturating_sub(1);
            Ok(((), true))
        }))
    }
}

impl AccountAdmin for RedbAccounts {
    fn create(
        &self,
        new: NewAccount,
        now: Timestamp,
    ) -> impl Future<Output = Result<Account, AccountError>> + Send {
        let this = self.clone();
        blocking(move || this.create_sync(new, now))
    }

    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Account>, AccountError>> + Send {
        ready(self.get_sync(id))
    }

    fn record_payment(
        &self,
        id: &str,
        amount: Money,
        tier: &str,
    ) -> impl Future<Output = Result<Account, AccountError>> + Send {
        let (this, id, tier) = (self.clone(), id.to_owned(), tier.to_owned());
        blocking(move || {
            this.update(&id, true, |a| {
                a.credit = add(a.credit, amount);
                a.paid = add(a.paid, amount);
                a.tier = tier;
                Ok((a.clone(), true))
            })
        })
    }

    fn list(
        &self,
        after: Option<&str>,
        limit: usize,
        tier: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Account>, AccountError>> + Send {
        ready(self.read().list(after, limit, tier))
    }

    fn update(
        &self,
        id: &str,
        change: AccountUpdate,
    ) -> impl Future<Output = Result<Account, AccountError>> + Send {
        let (this, id) = (self.clone(), id.to_owned());
        blocking(move || {
            this.update(&id, true, |a| {
                if let Some(tier) = change.tier {
                    a.tier = tier;
                }
                if let Some(credit) = change.credit {
                    a.credit = credit;
                }
                Ok((a.clone(), true))
            })
        })
    }

    fn delete(&self, id: &str) -> impl Future<Output = Result<(), AccountError>> + Send {
        let (this, id) = (self.clone(), id.to_owned());
        blocking(move || this.delete_sync(&id))
    }

    fn add_key(
        &self,
        account: &str,
        key: NewKey,
        now: Timestamp,
    ) -> impl Future<Output = Result<KeyInfo, AccountError>> + Send {
        let (this, account) = (self.clone(), account.to_owned());
        blocking(move || this.add_key_sync(&account, key, now))
    }

    fn list_keys(
        &self,
        account: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<KeyInfo>, AccountError>> + Send {
        ready(self.keys_sync(account, now))
    }

    fn revoke_key(
        &self,
        account: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), AccountError>> + Send {
        let (this, account, key) = (self.clone(), account.to_owned(), key.to_owned());
        blocking(move || this.revoke_key_sync(&account, &key))
    }

    fn expire_key(
        &self,
        account: &str,
        key: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<KeyInfo, AccountError>> + Send {
        let (this, account, key) = (self.clone(), account.to_owned(), key.to_owned());
        blocking(move || this.expire_key_sync(&account, &key, at))
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::ids::new_api_key;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("quota-redb-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn new(id: &str, key: &str) -> NewAccount {
        NewAccount {
            id: id.into(),
            api_key: key.into(),
            tier: "basic".into(),
            credit: Money::from_dollars(5),
        }
    }

    #[tokio::test]
    async fn accounts_and_credit_survive_reopening() {
        let d = dir("reopen");
        {
            let db = RedbAccounts::open(&d).unwrap();
            db.create(new("a1", "k1"), Timestamp::from_secs(1))
                .await
                .unwrap();
            let c = db.charge("a1", Money::from_dollars(1)).await.unwrap();
            assert_eq!(
                c,
                Charge::Charged {
                    remaining: Money::from_dollars(4)
                }
            );
            db.flush().unwrap();
        }
        let db = RedbAccounts::open(&d).unwrap();
        let who = db.resolve("k1").await.unwrap().unwrap();
        assert_eq!(
            who,
            Identity {
                account: "a1".into(),
                tier: "basic".into()
            }
        );
        let a = db.get("a1").await.unwrap().unwrap();
        assert_eq!(
            (a.credit, a.spent, a.requests),
            (Money::from_dollars(4), Money::from_dollars(1), 1)
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn charge_the_credit_cannot_pay_debits_nothing() {
        let d = dir("insufficient");
        let db = RedbAccounts::open(&d).unwrap();
        db.create(new("a1", "k1"), Timestamp::EPOCH).await.unwrap();
        let c = db.charge("a1", Money::from_dollars(6)).await.unwrap();
        assert_eq!(
            c,
            Charge::Insufficient {
                credit: Money::from_dollars(5),
                price: Money::from_dollars(6)
            }
        );
        assert_eq!(
            db.get("a1").await.unwrap().unwrap().credit,
            Money::from_dollars(5)
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn payment_adds_credit_and_moves_tier_at_once() {
        let d = dir("payment");
        let db = RedbAccounts::open(&d).unwrap();
        db.create(new("a1", "k1"), Timestamp::EPOCH).await.unwrap();
        let a = db
            .record_payment("a1", Money::from_dollars(10), "premium")
            .await
            .unwrap();
        assert_eq!(
            (a.tier.as_str(), a.credit, a.paid),
            ("premium", Money::from_dollars(15), Money::from_dollars(10))
        );
        assert_eq!(db.resolve("k1").await.unwrap().unwrap().tier, "premium");
        assert!(matches!(
            db.record_payment("nope", Money::ZERO, "x").await,
            Err(AccountError::NotFound(_))
        ));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn duplicate_id_or_key_is_refused() {
        let d = dir("dup");
        let db = RedbAccounts::open(&d).unwrap();
        db.create(new("a1", "k1"), Timestamp::EPOCH).await.unwrap();
        assert!(matches!(
            db.create(new("a1", "k2"), Timestamp::EPOCH).await,
            Err(AccountError::Exists(_))
        ));
        assert!(matches!(
            db.create(new("a2", "k1"), Timestamp::EPOCH).await,
            Err(AccountError::Exists(_))
        ));
        assert_eq!(db.count().unwrap(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Whether any file of `dir` holds `needle`.
    fn folder_holds(dir: &Path, needle: &str) -> bool {
        std::fs::read_dir(dir).unwrap().any(|entry| {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
    }

    #[tokio::test]
    async fn no_file_holds_an_api_key_in_clear() {
        let d = dir("no-clear-key");
        let key = new_api_key();
        {
            let db = RedbAccounts::open(&d).unwrap();
            db.create(new("a1", &key), Timestamp::EPOCH).await.unwrap();
            db.charge("a1", Money::from_dollars(1)).await.unwrap();
            db.flush().unwrap();
            assert!(!folder_holds(&d, &key), "while open");
        }
        assert!(!folder_holds(&d, &key), "once closed");
        let db = RedbAccounts::open(&d).unwrap();
        assert_eq!(db.resolve(&key).await.unwrap().unwrap().account, "a1");
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A data folder as versions before the digests wrote it: account `a1`
    /// on Premium with its API key in clear.
    fn old_layout(d: &Path, key: &str) {
        std::fs::create_dir_all(d).unwrap();
        let db = Database::create(d.join(DB_FILE)).unwrap();
        let account = Account {
            id: "a1".into(),
            tier: "premium".into(),
            credit: Money::from_dollars(5),
            paid: Money::ZERO,
            spent: Money::ZERO,
            requests: 0,
            created_at: Timestamp::EPOCH,
        };
        let tx = db.begin_write().unwrap();
        {
            let mut accounts = tx.open_table(ACCOUNTS).unwrap();
            accounts
                .insert("a1", encode(&account).unwrap().as_slice())
                .unwrap();
            let mut keys = tx.open_table(migration::CLEAR_KEYS).unwrap();
            keys.insert(key, "a1").unwrap();
        }
        tx.commit().unwrap();
        drop(db);
        assert!(folder_holds(d, key), "the old layout holds the key");
    }

    #[tokio::test]
    async fn clear_keys_of_an_older_version_move_to_their_digests() {
        let d = dir("migrate");
        let key = new_api_key();
        old_layout(&d, &key);
        {
            let db = RedbAccounts::open(&d).unwrap();
            let who = db.resolve(&key).await.unwrap().unwrap();
            assert_eq!((who.account.as_str(), who.tier.as_str()), ("a1", "premium"));
            assert_eq!(
                db.get("a1").await.unwrap().unwrap().credit,
                Money::from_dollars(5)
            );
            assert!(!folder_holds(&d, &key), "migrated, while open");
        }
        assert!(!folder_holds(&d, &key), "migrated, once closed");

        // Opening again finds nothing to move, and the key is still taken.
        let db = RedbAccounts::open(&d).unwrap();
        assert_eq!(db.resolve(&key).await.unwrap().unwrap().account, "a1");
        assert!(matches!(
            db.create(new("a2", &key), Timestamp::EPOCH).await,
            Err(AccountError::Exists(_))
        ));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn a_migration_cut_short_is_done_again() {
        let d = dir("migrate-again");
        let key = new_api_key();
        old_layout(&d, &key);
        let partial = d.join(DB_FILE).with_extension("redb.migrating");
        std::fs::write(&partial, b"cut short").unwrap();
        let db = RedbAccounts::open(&d).unwrap();
        assert_eq!(db.resolve(&key).await.unwrap().unwrap().account, "a1");
        assert!(!partial.exists());
        assert!(!folder_holds(&d, &key));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A data folder as versions before named keys wrote it: account `a1`
    /// with the digest of its one key, and no `api_keys` table.
    fn digests_layout(d: &Path, key: &str) {
        std::fs::create_dir_all(d).unwrap();
        let db = Database::create(d.join(DB_FILE)).unwrap();
        let account = Account {
            id: "a1".into(),
            tier: "basic".into(),
            credit: Money::from_dollars(5),
            paid: Money::ZERO,
            spent: Money::ZERO,
            requests: 0,
            created_at: Timestamp::from_secs(77),
        };
        let tx = db.begin_write().unwrap();
        {
            let mut accounts = tx.open_table(ACCOUNTS).unwrap();
            accounts
                .insert("a1", encode(&account).unwrap().as_slice())
                .unwrap();
            let mut digests = tx.open_table(KEY_DIGESTS).unwrap();
            digests.insert(key_digest(key).as_bytes(), "a1").unwrap();
        }
        tx.commit().unwrap();
    }

    #[tokio::test]
    async fn the_one_key_of_an_older_version_becomes_the_first_named_key() {
        let d = dir("pre-named");
        let key = new_api_key();
        digests_layout(&d, &key);
        let first_id = first_key_id(&key_digest(&key));
        {
            let db = RedbAccounts::open(&d).unwrap();
            let keys = db.list_keys("a1", Timestamp::EPOCH).await.unwrap();
            assert_eq!(keys.len(), 1);
            assert_eq!(
                (keys[0].id.as_str(), keys[0].name.as_str(), keys[0].created),
                (first_id.as_str(), "default", Timestamp::from_secs(77))
            );
            assert_eq!(db.resolve(&key).await.unwrap().unwrap().account, "a1");
            db.add_key(
                "a1",
                NewKey {
                    id: "key_second".into(),
                    name: "ci".into(),
                    api_key: "k-second".into(),
                },
                Timestamp::from_secs(80),
            )
            .await
            .unwrap();
            db.flush().unwrap();
        }
        // Reopened: the names, the last use (flushed) and the new key are kept.
        let db = RedbAccounts::open(&d).unwrap();
        let keys = db.list_keys("a1", Timestamp::EPOCH).await.unwrap();
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, [first_id.as_str(), "key_second"]);
        assert!(keys[0].last_used.is_some(), "{keys:?}");
        db.revoke_key("a1", &first_id).await.unwrap();
        assert_eq!(db.resolve(&key).await.unwrap(), None);
        drop(db);
        let db = RedbAccounts::open(&d).unwrap();
        assert_eq!(db.resolve(&key).await.unwrap(), None, "revoked for good");
        assert_eq!(db.resolve("k-second").await.unwrap().unwrap().account, "a1");
        db.delete("a1").await.unwrap();
        drop(db);
        let db = RedbAccounts::open(&d).unwrap();
        assert_eq!(db.resolve("k-second").await.unwrap(), None);
        assert_eq!(db.count().unwrap(), 0);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn keys_are_long_random_hex() {
        let (a, b) = (new_api_key(), new_api_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 32);
        assert!(a[3..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
