//! [`RedisAccounts`]: accounts and tiers in Redis, so a payment on one
//! gateway node makes the account Premium on every node at once.
//!
//! Layout (see [`KeySpace`]): each account is a hash
//! `{prefix}{<id>}:account` with the fields `id`, `tier`, `credit`, `paid`,
//! `spent` (micro-dollars, as integers), `requests`, `created_at` (ms since
//! the epoch) and `key` (the SHA-256 [`key_digest`] of its API key, in hex);
//! `{prefix}apikey:<sha256>` maps an API key's digest to the account id. No
//! API key reaches Redis in clear. Charges, refunds and payments are Lua
//! scripts on the account's hash: atomic, and exact 64-bit integers.
//! Nothing is cached: every node reads the tier from Redis on each request.
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

use quota_core::account::{
    key_digest, Account, AccountAdmin, AccountError, Accounts, Charge, Identity, KeyDigest,
    NewAccount,
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
        let Some(id) = self.get_index(&self.keys.api_key_index(&digest)).await? else {
            return self.resolve_legacy(api_key, &digest, &hex).await;
        };
        // An index left behind by an interrupted create, or pointing at an
        // account with another key, resolves to nobody.
        match self.tier_and_key(&id).await? {
            (Some(tier), Some(stored)) if stored == hex => Ok(Some(Identity { account: id, tier })),
            _ => Ok(None),
        }
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
        inv.arg(&new.id)
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
}
