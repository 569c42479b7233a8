//! Key layout: every key of one account shares a Redis Cluster hash tag.
//!
//! | what | key | type |
//! |---|---|---|
//! | a limit's state | `{prefix}{<account>}:<scope>:<fingerprint>` | string, or sorted set for a sliding log |
//! | an account | `{prefix}{<account>}:account` | hash |
//! | an API key's account | `{prefix}apikey:<sha256 of the key>` | string (the account id) |
//!
//! `<fingerprint>` is [`PolicyLimit::fingerprint`] in 16 hex digits: a limit
//! whose definition (tier, scope, name, count, window, algorithm) did not
//! change across a policy reload keeps its key, and so its count.
//! In `<account>` and `<scope>`, the characters `%`, `{`, `}` and `:` are
//! percent-encoded (and an empty account id is written `%`), so the hash tag
//! is never empty or cut short, and keys parse back unambiguously. All keys
//! of one account hash to one slot, so the decision script (which touches
//! several of them) runs on Redis Cluster.
//!
//! `<sha256 of the key>` is [`key_digest`] of the API key in 64 lowercase
//! hex digits: no API key reaches Redis in clear. Versions before it wrote
//! `{prefix}apikey:<sha1 of the key>` (40 hex digits); the accounts move each
//! such entry to its SHA-256 the first time its key is resolved (see
//! [`RedisAccounts`](crate::RedisAccounts)).
//!
//! [`PolicyLimit::fingerprint`]: quota_core::policy::PolicyLimit::fingerprint
//! [`key_digest`]: quota_core::account::key_digest
//!
//! ```
//! use quota_redis::KeySpace;
//! let keys = KeySpace::new("quota:").unwrap();
//! assert_eq!(keys.limit_key("acct-1", "txt2img", 0xab), "quota:{acct-1}:txt2img:00000000000000ab");
//! assert_eq!(keys.limit_key("a}b", "prompt/*", 1), "quota:{a%7Db}:prompt/*:0000000000000001");
//! assert_eq!(keys.account_key("acct-1"), "quota:{acct-1}:account");
//! let digest = quota_core::account::key_digest("abc");
//! assert_eq!(
//!     keys.api_key_index(&digest),
//!     "quota:apikey:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
//! );
//! assert!(KeySpace::new("bad{prefix").is_err());
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;

use quota_core::account::KeyDigest;

use crate::Error;

/// Builds the names of every key the store uses, under one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
}

impl KeySpace {
    /// Keys under `prefix` (`quota:` by default).
    ///
    /// # Errors
    /// [`Error::InvalidPrefix`] when the prefix contains `{` or `}`.
    pub fn new(prefix: &str) -> Result<Self, Error> {
        if prefix.contains(['{', '}']) {
            return Err(Error::InvalidPrefix(prefix.to_owned()));
        }
        Ok(KeySpace {
            prefix: prefix.to_owned(),
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hash tag of an account's keys: `{<account>}`, encoded.
    pub fn hash_tag(account: &str) -> String {
        format!("{{{}}}", encode(account))
    }

    /// The key of one limit's state for `account` in `scope`.
    pub fn limit_key(&self, account: &str, scope: &str, fingerprint: u64) -> String {
        let mut key = String::with_capacity(self.prefix.len() + account.len() + scope.len() + 22);
        key.push_str(&self.prefix);
        key.push('{');
        key.push_str(&encode(account));
        key.push_str("}:");
        key.push_str(&encode(scope));
        // Writing to a String cannot fail.
        let _ = write!(key, ":{fingerprint:016x}");
        key
    }

    /// The hash holding an account (tier, credit, ledger).
    pub fn account_key(&self, account: &str) -> String {
        format!("{}{{{}}}:account", self.prefix, encode(account))
    }

    /// The string mapping an API key to its account id, named by the key's
    /// [`key_digest`](quota_core::account::key_digest): the API key itself
    /// never reaches Redis.
    pub fn api_key_index(&self, digest: &KeyDigest) -> String {
        format!("{}apikey:{digest}", self.prefix)
    }

    /// The string that versions before the SHA-256 digests wrote for an API
    /// key, named by its SHA-1 digest: read (and then deleted) only to move
    /// the key to [`api_key_index`](Self::api_key_index).
    pub(crate) fn legacy_api_key_index(&self, legacy_digest: &str) -> String {
        format!("{}apikey:{legacy_digest}", self.prefix)
    }

    /// A `SCAN` pattern matching every key under this prefix.
    pub fn pattern(&self) -> String {
        let mut p = String::with_capacity(self.prefix.len() + 1);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('*');
        p
    }
}

/// The hex SHA-1 digest that versions before the SHA-256 digests stored for
/// an API key: computed only when a key is not found under its SHA-256, to
/// move an entry of that older layout.
pub(crate) fn legacy_key_digest(api_key: &str) -> String {
    sha1_smol::Sha1::from(api_key).digest().to_string()
}

/// Percent-encodes `%`, `{`, `}` and `:`; the empty string becomes `%`
/// (which no non-empty string encodes to).
fn encode(s: &str) -> Cow<'_, str> {
    if s.is_empty() {
        return Cow::Borrowed("%");
    }
    if !s.contains(['%', '{', '}', ':']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_accounts_never_break_the_hash_tag() {
        for account in ["", "}", "{", "a}b{c", "%7D", "x:y", "%"] {
            let tag = KeySpace::hash_tag(account);
            let inner = &tag[1..tag.len() - 1];
            assert!(
                !inner.is_empty() && !inner.contains(['{', '}']),
                "{account:?} -> {tag}"
            );
        }
    }

    #[test]
    fn distinct_accounts_get_distinct_tags() {
        let accounts = ["", "%", "%25", "}", "%7D", "a:b", "a%3Ab"];
        let tags: std::collections::HashSet<String> =
            accounts.iter().map(|a| KeySpace::hash_tag(a)).collect();
        assert_eq!(tags.len(), accounts.len());
    }

    #[test]
    fn scan_pattern_escapes_glob_characters() {
        assert_eq!(
            KeySpace::new("t*[x]:").map(|k| k.pattern()),
            Ok("t\\*\\[x\\]:*".to_owned())
        );
    }
}
