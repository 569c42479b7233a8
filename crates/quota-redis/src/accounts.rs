//! [`RedisAccounts`]: accounts and tiers in Redis, so a payment on one
//! gateway node makes the account Premium on every node at once.
//!
//! Layout (see [`KeySpace`]): each account is a hash
//! `{prefix}{<id>}:account` with the fields `id`, `tier`, `credit`, `paid`,
//! `spent` (micro-dollars, as integers), `requests` and `created_at` (ms since
//! the epoch). Its keys are in the hash `{prefix}{<id>}:keys` (same hash
//! tag, so one script reads both on Redis Cluster): for each key id `K`,
//! `K:digest` (the SHA-256 [`key_digest`] of the API key, in hex), `K:name`,
//! `K:created`, `K:expires` (ms, only on a rotated key) and `K:used` (its
//! last use, ms, written at most once per [`LAST_USED_EVERY`]); and
//! `d:<sha256>` gives the id of the key with that digest.
//! `{prefix}apikey:<sha256>` maps an API key's digest to the account id, and
//! the sorted set `{prefix}accounts` holds every account id (for listing in
//! id order). No API key reaches Redis in clear. Charges, refunds, payments
//! and key changes are Lua scripts on the account's hashes: atomic, and exact
//! 64-bit integers. Nothing is cached: every node reads the tier and the key
//! from Redis on each request, so a revoked key stops on every node at once.
//!
//! Versions before named keys kept the digest of an account's one key in
//! the account hash's field `key`: the first script that reads the
//! account's keys makes it the first named key (`default`, with the id
//! [`first_key_id`](quota_core::account::first_key_id)) and deletes the field; and the first listing of
//! accounts adds the accounts it finds (`SCAN`) to `{prefix}accounts`, once
//! (the key `{prefix}accounts:indexed` says it was done).
//!
//! Resolving a key hashes it once (SHA-256) and reads its index and its
//! account. Versions before the SHA-256 digests wrote SHA-1 ones
//! (`{prefix}apikey:<sha1>`, and the SHA-1 in `key`): a key not found under
//! its SHA-256 is looked up once under its SHA-1 (so an unknown key costs a
//! second hash and a second read), and if found, moved in three steps: the
//! account's `key` field is rewritten with the SHA-256, the SHA-256 index is
//! written, the SHA-1 index deleted. A move cut short after the first step
//! is finished by the next resolve; one cut short before the last leaves a
//! SHA-1 index that nothing reads any more. Gateways of an older version
//! sharing the Redis no longer resolve a key once it has moved: upgrade
//! every gateway of a fleet together.

use core::future::Future;
use std::sync::Arc;

use std::collections::BTreeMap;

use quota_core::account::{
    key_digest, sort_keys, Account, AccountAdmin, AccountError, AccountUpdate, Accounts, Charge,
    Identity, KeyDigest, KeyInfo, NewAccount, NewKey, LAST_USED_EVERY,
};
use quota_core::policy::Money;
use quota_core::{StoreError, Timestamp};

use crate::conn::Conn;
use crate::keys::legacy_key_digest;
use crate::{Error, KeySpace, RedisConfig};

/// Accounts in Redis. Cheap to clone. Build one with
/// [`RedisAccounts::lazy`], or share a store's connection with
/// [`RedisStore::accounts`](crate::RedisStore::accounts).
#[derive(Clone, Debug)]
pub struct RedisAccounts {
    conn: Conn,
    keys: KeySpace,
    scripts: Arc<Scripts>,
}

#[derive(Debug)]
struct Scripts {
    create: redis::Script,
    charge: redis::Script,
    refund: redis::Script,
    pay: redis::Script,
    update: redis::Script,
    resolve: redis::Script,
    keys: redis::Script,
    add_key: redis::Script,
    revoke_key: redis::Script,
    expire_key: redis::Script,
}

/// A script that reads an account's keys: `name_first_key.lua` first.
fn keys_script(body: &str) -> redis::Script {
    redis::Script::new(&format!(
        "{}\n{body}",
        include_str!("lua/name_first_key.lua")
    ))
}

/// The hash fields read back into an [`Account`], in this order.
const FIELDS: [&str; 7] = [
    "id",
    "tier",
    "credit",
    "paid",
    "spent",
    "requests",
    "created_at",
];

/// A store error as an account error: same message, same transience, kept as the source.
fn unavailable(e: StoreError) -> AccountError {
    AccountError::from_store(e)
}

impl RedisAccounts {
    /// Accounts on the Redis at `url`, without dialling yet (the first call
    /// connects). Must be called inside a Tokio runtime
    /// ([`Error::NoRuntime`] otherwise).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], [`Error::InvalidPrefix`] or [`Error::NoRuntime`].
    pub fn lazy(url: &str, config: &RedisConfig) -> Result<Self, Error> {
        let keys = KeySpace::new(&config.prefix)?;
        Ok(Self::from_parts(Conn::lazy(url, config)?, keys))
    }

    pub(crate) fn from_parts(conn: Conn, keys: KeySpace) -> Self {
        let scripts = Scripts {
            create: redis::Script::new(include_str!("lua/create.lua")),
            charge: redis::Script::new(include_str!("lua/charge.lua")),
            refund: redis::Script::new(include_str!("lua/refund.lua")),
            pay: redis::Script::new(include_str!("lua/pay.lua")),
            update: redis::Script::new(include_str!("lua/update.lua")),
            resolve: keys_script(include_str!("lua/resolve.lua")),
            keys: keys_script(include_str!("lua/keys.lua")),
            add_key: keys_script(include_str!("lua/add_key.lua")),
            revoke_key: keys_script(include_str!("lua/revoke_key.lua")),
            expire_key: keys_script(include_str!("lua/expire_key.lua")),
        };
        RedisAccounts {
            conn,
            keys,
            scripts: Arc::new(scripts),
        }
    }

    /// The key layout.
    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// The connection.
    pub(crate) fn conn(&self) -> &Conn {
        &self.conn
    }

    async fn resolve_inner(&self, api_key: &str) -> Result<Option<Identity>, AccountError> {
        self.resolve_digested(api_key, &key_digest(api_key)).await
    }

    /// [`Accounts::resolve`] for a caller that has hashed the key already
    /// (`digest` is [`key_digest`] of `api_key`; the key itself is read only
    /// to find an entry of the older SHA-1 layout): one hash per request
    /// where the caller also needs the digest (say, to key a cache).
    pub async fn resolve_digested(
        &self,
        api_key: &str,
        digest: &KeyDigest,
    ) -> Result<Option<Identity>, AccountError> {
        let digest = *digest;
        let hex = digest.to_string();
        let index = self.keys.api_key_index(&digest);
        let Some(id) = self.get_index(&index).await? else {
            return self.resolve_legacy(api_key, &digest, &hex).await;
        };
        // An index left behind by an interrupted create or a revocation, or
        // pointing at an account without this key, resolves to nobody.
        let mut inv = self.scripts.resolve.key(self.keys.account_key(&id));
        inv.key(self.keys_hash(&id))
            .arg(&hex)
            .arg(u64::try_from(LAST_USED_EVERY.as_millis()).unwrap_or(u64::MAX));
        let reply: Option<(String, String)> = self.conn.eval(&inv).await.map_err(unavailable)?;
        match reply {
            Some((tier, _)) if !tier.is_empty() => Ok(Some(Identity { account: id, tier })),
            // Past its grace period: gone for good, and its index with it.
            Some((_, key)) => {
                if let Err(e) = self.revoke_key_inner(&id, &key).await {
                    tracing::debug!(error = %e, "cannot delete an expired key");
                }
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// The hash of an account's keys: `{prefix}{<id>}:keys`.
    pub fn keys_hash(&self, account: &str) -> String {
        format!("{}{}:keys", self.keys.prefix(), KeySpace::hash_tag(account))
    }

    /// The sorted set of every account id.
    fn ids_key(&self) -> String {
        format!("{}accounts", self.keys.prefix())
    }

    /// Adds every account already in Redis to [`Self::ids_key`], once (the
    /// accounts of a version before listing).
    async fn index_old_accounts(&self) -> Result<(), AccountError> {
        let done = format!("{}accounts:indexed", self.keys.prefix());
        let indexed: bool = self
            .conn
            .query(redis::cmd("EXISTS").arg(&done))
            .await
            .map_err(unavailable)?;
        if indexed {
            return Ok(());
        }
        let pattern = format!("{}{{*}}:account", glob_escape(self.keys.prefix()));
        let mut cursor: u64 = 0;
        loop {
            let (next, found): (u64, Vec<String>) = self
                .conn
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await
                .map_err(unavailable)?;
            for key in found {
                let id: Option<String> = self
                    .conn
                    .query(redis::cmd("HGET").arg(&key).arg("id"))
                    .await
                    .map_err(unavailable)?;
                if let Some(id) = id {
                    self.conn
                        .query::<i64>(redis::cmd("ZADD").arg(self.ids_key()).arg(0).arg(&id))
                        .await
                        .map_err(unavailable)?;
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        self.conn
            .query::<()>(redis::cmd("SET").arg(&done).arg(1))
            .await
            .map_err(unavailable)
    }

    async fn list_inner(
        &self,
        after: Option<&str>,
        limit: usize,
        tier: Option<&str>,
    ) -> Result<Vec<Account>, AccountError> {
        self.index_old_accounts().await?;
        let mut out = Vec::new();
        let mut from = after.map_or_else(|| "-".to_owned(), |a| format!("({a}"));
        while out.len() < limit {
            let batch = (limit - out.len()).clamp(16, 1000);
            let ids: Vec<String> = self
                .conn
                .query(
                    redis::cmd("ZRANGEBYLEX")
                        .arg(self.ids_key())
                        .arg(&from)
                        .arg("+")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(batch),
                )
                .await
                .map_err(unavailable)?;
            let Some(last) = ids.last() else {
                break;
            };
            from = format!("({last}");
            let full = ids.len() < batch;
            for id in ids {
                if out.len() >= limit {
                    break;
                }
                // An id whose account is gone (a delete cut short) is skipped.
                if let Some(a) = self.get_inner(&id).await? {
                    if tier.is_none_or(|t| a.tier == t) {
                        out.push(a);
                    }
                }
            }
            if full {
                break;
            }
        }
        Ok(out)
    }

    async fn update_inner(&self, id: &str, change: AccountUpdate) -> Result<Account, AccountError> {
        let mut inv = self.scripts.update.key(self.keys.account_key(id));
        inv.arg(change.tier.as_deref().unwrap_or("")).arg(
            change
                .credit
                .map_or(String::new(), |c| c.micros().to_string()),
        );
        let fields: Option<Vec<Option<String>>> =
            self.conn.eval(&inv).await.map_err(unavailable)?;
        let fields = fields.ok_or_else(|| AccountError::NotFound(id.to_owned()))?;
        parse_account(id, &fields)?.ok_or_else(|| AccountError::NotFound(id.to_owned()))
    }

    async fn delete_inner(&self, id: &str) -> Result<(), AccountError> {
        // The account hash first: from then on no key of it resolves.
        let account = self.keys.account_key(id);
        let deleted: i64 = self
            .conn
            .query(redis::cmd("DEL").arg(&account))
            .await
            .map_err(unavailable)?;
        let keys_hash = self.keys_hash(id);
        let fields: BTreeMap<String, String> = self
            .conn
            .query(redis::cmd("HGETALL").arg(&keys_hash))
            .await
            .map_err(unavailable)?;
        for digest in fields.keys().filter_map(|f| f.strip_prefix("d:")) {
            self.conn
                .query::<i64>(
                    redis::cmd("DEL").arg(format!("{}apikey:{digest}", self.keys.prefix())),
                )
                .await
                .map_err(unavailable)?;
        }
        self.conn
            .query::<i64>(redis::cmd("DEL").arg(&keys_hash))
            .await
            .map_err(unavailable)?;
        self.conn
            .query::<i64>(redis::cmd("ZREM").arg(self.ids_key()).arg(id))
            .await
            .map_err(unavailable)?;
        if deleted == 0 {
            return Err(AccountError::NotFound(id.to_owned()));
        }
        Ok(())
    }

    /// Runs a key script: `'missing'` is no account, `'nokey'` no such key.
    async fn key_script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        account: &str,
        args: &[String],
    ) -> Result<T, AccountError> {
        let mut inv = script.key(self.keys.account_key(account));
        inv.key(self.keys_hash(account));
        for a in args {
            inv.arg(a);
        }
        self.conn.eval(&inv).await.map_err(unavailable)
    }

    async fn add_key_inner(
        &self,
        account: &str,
        key: NewKey,
        now: Timestamp,
    ) -> Result<KeyInfo, AccountError> {
        let digest = key_digest(&key.api_key);
        let index = self.keys.api_key_index(&digest);
        let claimed: Option<String> = self
            .conn
            .query(redis::cmd("SET").arg(&index).arg(account).arg("NX"))
            .await
            .map_err(unavailable)?;
        if claimed.is_none() {
            return Err(AccountError::Exists(key.id));
        }
        let args = [
            key.id.clone(),
            key.name.clone(),
            now.as_millis().to_string(),
            digest.to_string(),
        ];
        let reply = self
            .key_script::<String>(&self.scripts.add_key, account, &args)
            .await;
        let refused = match reply.as_deref() {
            Ok("ok") => None,
            Ok("missing") => Some(AccountError::NotFound(account.to_owned())),
            Ok("exists") => Some(AccountError::Exists(key.id.clone())),
            Ok(other) => Some(AccountError::corrupt(format!(
                "unexpected reply from the add_key script: {other:?}"
            ))),
            Err(e) => Some(e.clone()),
        };
        if let Some(e) = refused {
            let _ = self.conn.query::<i64>(redis::cmd("DEL").arg(&index)).await;
            return Err(e);
        }
        Ok(KeyInfo {
            id: key.id,
            name: key.name,
            created: now,
            last_used: None,
            expires: None,
        })
    }

    async fn keys_inner(
        &self,
        account: &str,
        now: Timestamp,
    ) -> Result<Vec<KeyInfo>, AccountError> {
        let fields: Option<Vec<String>> = self.key_script(&self.scripts.keys, account, &[]).await?;
        let fields = fields.ok_or_else(|| AccountError::NotFound(account.to_owned()))?;
        let mut by_id: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        for pair in fields.chunks_exact(2) {
            if let Some((id, field)) = pair[0].split_once(':') {
                if id != "d" {
                    by_id.entry(id).or_default().insert(field, pair[1].as_str());
                }
            }
        }
        let corrupt = |id: &str, field: &str| {
            AccountError::corrupt(format!(
                "key {id:?} of account {account:?} has an unreadable {field} field"
            ))
        };
        let mut keys = Vec::new();
        for (id, f) in by_id {
            let time = |field: &str| -> Result<Option<Timestamp>, AccountError> {
                f.get(field)
                    .map(|v| v.parse::<u64>().map(Timestamp::from_millis))
                    .transpose()
                    .map_err(|_| corrupt(id, field))
            };
            let info = KeyInfo {
                id: id.to_owned(),
                name: (*f.get("name").ok_or_else(|| corrupt(id, "name"))?).to_owned(),
                created: time("created")?.ok_or_else(|| corrupt(id, "created"))?,
                last_used: time("used")?,
                expires: time("expires")?,
            };
            if quota_core::account::key_works(info.expires, now) {
                keys.push(info);
            }
        }
        sort_keys(&mut keys);
        Ok(keys)
    }

    async fn revoke_key_inner(&self, account: &str, key: &str) -> Result<(), AccountError> {
        let reply: String = self
            .key_script(&self.scripts.revoke_key, account, &[key.to_owned()])
            .await?;
        match reply.as_str() {
            "missing" => Err(AccountError::NotFound(account.to_owned())),
            "nokey" => Err(AccountError::KeyNotFound {
                account: account.to_owned(),
                key: key.to_owned(),
            }),
            digest => {
                self.conn
                    .query::<i64>(
                        redis::cmd("DEL").arg(format!("{}apikey:{digest}", self.keys.prefix())),
                    )
                    .await
                    .map_err(unavailable)?;
                Ok(())
            }
        }
    }

    async fn expire_key_inner(
        &self,
        account: &str,
        key: &str,
        at: Timestamp,
    ) -> Result<KeyInfo, AccountError> {
        let args = [key.to_owned(), at.as_millis().to_string()];
        let reply: String = self
            .key_script(&self.scripts.expire_key, account, &args)
            .await?;
        let no_key = || AccountError::KeyNotFound {
            account: account.to_owned(),
            key: key.to_owned(),
        };
        match reply.as_str() {
            "ok" => {}
            "missing" => return Err(AccountError::NotFound(account.to_owned())),
            "nokey" => return Err(no_key()),
            other => {
                return Err(AccountError::corrupt(format!(
                    "unexpected reply from the expire_key script: {other:?}"
                )))
            }
        }
        // Listed as of `at`'s eve, so that the key just expired is found.
        let before = Timestamp::from_millis(at.as_millis().saturating_sub(1));
        self.keys_inner(account, before)
            .await?
            .into_iter()
            .find(|k| k.id == key)
            .ok_or_else(no_key)
    }

    /// Resolves a key that has no SHA-256 index, through the SHA-1 index of
    /// an older version, and moves it to its SHA-256 (see the module docs).
    async fn resolve_legacy(
        &self,
        api_key: &str,
        digest: &KeyDigest,
        hex: &str,
    ) -> Result<Option<Identity>, AccountError> {
        let legacy = legacy_key_digest(api_key);
        let legacy_index = self.keys.legacy_api_key_index(&legacy);
        let Some(id) = self.get_index(&legacy_index).await? else {
            return Ok(None);
        };
        let tier = match self.tier_and_key(&id).await? {
            // Not moved yet, or its `key` field already was (by a resolve cut
            // short, here or on another node).
            (Some(tier), Some(stored)) if stored == legacy || stored == hex => tier,
            _ => return Ok(None),
        };
        let account_key = self.keys.account_key(&id);
        self.conn
            .query::<i64>(redis::cmd("HSET").arg(&account_key).arg("key").arg(hex))
            .await
            .map_err(unavailable)?;
        self.conn
            .query::<()>(
                redis::cmd("SET")
                    .arg(self.keys.api_key_index(digest))
                    .arg(&id),
            )
            .await
            .map_err(unavailable)?;
        self.conn
            .query::<i64>(redis::cmd("DEL").arg(&legacy_index))
            .await
            .map_err(unavailable)?;
        Ok(Some(Identity { account: id, tier }))
    }

    /// The account id an API key index holds.
    async fn get_index(&self, index: &str) -> Result<Option<String>, AccountError> {
        self.conn
            .query(redis::cmd("GET").arg(index))
            .await
            .map_err(unavailable)
    }

    /// The `tier` and `key` fields of an account.
    async fn tier_and_key(
        &self,
        id: &str,
    ) -> Result<(Option<String>, Option<String>), AccountError> {
        let key = self.keys.account_key(id);
        self.conn
            .query(redis::cmd("HMGET").arg(&key).arg("tier").arg("key"))
            .await
            .map_err(unavailable)
    }

    async fn charge_inner(&self, account: &str, price: Money) -> Result<Charge, AccountError> {
        let mut inv = self.scripts.charge.key(self.keys.account_key(account));
        inv.arg(price.micros());
        let reply: Vec<String> = self.conn.eval(&inv).await.map_err(unavailable)?;
        let money = |s: Option<&String>| {
            s.and_then(|s| s.parse::<u64>().ok())
                .map(Money::from_micros)
                .ok_or_else(|| {
                    AccountError::corrupt(format!("unreadable credit of account {account:?}"))
                })
        };
        match reply.first().map(String::as_str) {
            Some("charged") => Ok(Charge::Charged {
                remaining: money(reply.get(1))?,
            }),
            Some("short") => Ok(Charge::Insufficient {
                credit: money(reply.get(1))?,
                price,
            }),
            Some("missing") => Err(AccountError::NotFound(account.to_owned())),
            _ => Err(AccountError::corrupt(format!(
                "unexpected reply from the charge script: {reply:?}"
            ))),
        }
    }

    async fn refund_inner(&self, account: &str, amount: Money) -> Result<(), AccountError> {
        let mut inv = self.scripts.refund.key(self.keys.account_key(account));
        inv.arg(amount.micros());
        let done: i64 = self.conn.eval(&inv).await.map_err(unavailable)?;
        if done == 1 {
            Ok(())
        } else {
            Err(AccountError::NotFound(account.to_owned()))
        }
    }

    async fn create_inner(&self, new: NewAccount, now: Timestamp) -> Result<Account, AccountError> {
        // The API key first (SET NX: one key, one account), then the account
        // hash; if the id is taken, the key is given back.
        let digest = key_digest(&new.api_key);
        let index = self.keys.api_key_index(&digest);
        let claimed: Option<String> = self
            .conn
            .query(redis::cmd("SET").arg(&index).arg(&new.id).arg("NX"))
            .await
            .map_err(unavailable)?;
        if claimed.is_none() {
            return Err(AccountError::Exists(new.id));
        }
        let mut inv = self.scripts.create.key(self.keys.account_key(&new.id));
        inv.key(self.keys_hash(&new.id))
            .arg(&new.id)
            .arg(&new.tier)
            .arg(new.credit.micros())
            .arg(now.as_millis())
            .arg(digest.to_string());
        let created = match self.conn.eval::<i64>(&inv).await {
            Ok(created) => created == 1,
            Err(e) => {
                let _ = self.conn.query::<i64>(redis::cmd("DEL").arg(&index)).await;
                return Err(unavailable(e));
            }
        };
        if !created {
            self.conn
                .query::<i64>(redis::cmd("DEL").arg(&index))
                .await
                .map_err(unavailable)?;
            return Err(AccountError::Exists(new.id));
        }
        self.conn
            .query::<i64>(redis::cmd("ZADD").arg(self.ids_key()).arg(0).arg(&new.id))
            .await
            .map_err(unavailable)?;
        Ok(Account {
            id: new.id,
            tier: new.tier,
            credit: new.credit,
            paid: Money::ZERO,
            spent: Money::ZERO,
            requests: 0,
            created_at: now,
        })
    }

    async fn get_inner(&self, id: &str) -> Result<Option<Account>, AccountError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.keys.account_key(id)).arg(&FIELDS[..]);
        let fields: Vec<Option<String>> = self.conn.query(&cmd).await.map_err(unavailable)?;
        parse_account(id, &fields)
    }

    async fn pay_inner(
        &self,
        id: &str,
        amount: Money,
        tier: &str,
    ) -> Result<Account, AccountError> {
        let mut inv = self.scripts.pay.key(self.keys.account_key(id));
        inv.arg(amount.micros()).arg(tier);
        let fields: Option<Vec<Option<String>>> =
            self.conn.eval(&inv).await.map_err(unavailable)?;
        let fields = fields.ok_or_else(|| AccountError::NotFound(id.to_owned()))?;
        parse_account(id, &fields)?.ok_or_else(|| AccountError::NotFound(id.to_owned()))
    }
}

/// An account from its [`FIELDS`]; `None` when the hash does not exist.
fn parse_account(id: &str, fields: &[Option<String>]) -> Result<Option<Account>, AccountError> {
    if fields.first().is_none_or(Option::is_none) {
        return Ok(None);
    }
    let corrupt = |field: &str| {
        AccountError::corrupt(format!("account {id:?} has an unreadable {field} field"))
    };
    let text = |i: usize| {
        fields
            .get(i)
            .cloned()
            .flatten()
            .ok_or_else(|| corrupt(FIELDS[i]))
    };
    let num = |i: usize| text(i)?.parse::<u64>().map_err(|_| corrupt(FIELDS[i]));
    Ok(Some(Account {
        id: text(0)?,
        tier: text(1)?,
        credit: Money::from_micros(num(2)?),
        paid: Money::from_micros(num(3)?),
        spent: Money::from_micros(num(4)?),
        requests: num(5)?,
        created_at: Timestamp::from_millis(num(6)?),
    }))
}

impl Accounts for RedisAccounts {
    fn resolve(
        &self,
        api_key: &str,
    ) -> impl Future<Output = Result<Option<Identity>, AccountError>> + Send {
        self.resolve_inner(api_key)
    }

    fn charge(
        &self,
        account: &str,
        price: Money,
    ) -> impl Future<Output = Result<Charge, AccountError>> + Send {
        self.charge_inner(account, price)
    }

    fn refund(
        &self,
        account: &str,
        amount: Money,
    ) -> impl Future<Output = Result<(), AccountError>> + Send {
        self.refund_inner(account, amount)
    }
}

impl AccountAdmin for RedisAccounts {
    fn create(
        &self,
        new: NewAccount,
        now: Timestamp,
    ) -> impl Future<Output = Result<Account, AccountError>> + Send {
        self.create_inner(new, now)
    }

    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Account>, AccountError>> + Send {
        self.get_inner(id)
    }

    fn record_payment(
        &self,
        id: &str,
        amount: Money,
        tier: &str,
    ) -> impl Future<Output = Result<Account, AccountError>> + Send {
        self.pay_inner(id, amount, tier)
    }

    fn list(
        &self,
        after: Option<&str>,
        limit: usize,
        tier: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Account>, AccountError>> + Send {
        self.list_inner(after, limit, tier)
    }

    fn update(
        &self,
        id: &str,
        change: AccountUpdate,
    ) -> impl Future<Output = Result<Account, AccountError>> + Send {
        self.update_inner(id, change)
    }

    fn delete(&self, id: &str) -> impl Future<Output = Result<(), AccountError>> + Send {
        self.delete_inner(id)
    }

    fn add_key(
        &self,
        account: &str,
        key: NewKey,
        now: Timestamp,
    ) -> impl Future<Output = Result<KeyInfo, AccountError>> + Send {
        self.add_key_inner(account, key, now)
    }

    fn list_keys(
        &self,
        account: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<KeyInfo>, AccountError>> + Send {
        self.keys_inner(account, now)
    }

    fn revoke_key(
        &self,
        account: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), AccountError>> + Send {
        self.revoke_key_inner(account, key)
    }

    fn expire_key(
        &self,
        account: &str,
        key: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<KeyInfo, AccountError>> + Send {
        self.expire_key_inner(account, key, at)
    }
}

/// `text` with the glob characters of `SCAN MATCH` escaped.
pub(crate) fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
