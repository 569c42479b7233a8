//! Resetting an account's counters: every limit state under the account's
//! hash tag, but not its account, keys or API key indexes.

use quota_core::StoreError;

use crate::accounts::glob_escape;
use crate::{KeySpace, RedisAccounts, RedisStore};

impl RedisStore {
    /// Forgets every counter of `account` (every limit, every scope): its
    /// limits start again from nothing on every node. Returns how many keys
    /// were deleted. Found by `SCAN` of the account's hash tag (so, on Redis
    /// Cluster, on the one node holding its slot); a decision made meanwhile
    /// may be counted or not.
    ///
    /// # Errors
    /// [`StoreError`] when Redis cannot be reached.
    pub async fn forget_account(&self, account: &str) -> Result<u64, StoreError> {
        self.accounts().forget_usage(account).await
    }
}

impl RedisAccounts {
    /// [`RedisStore::forget_account`], over these accounts' connection.
    pub(crate) async fn forget_usage(&self, account: &str) -> Result<u64, StoreError> {
        let keys = self.keys();
        let pattern = format!(
            "{}{}:*",
            glob_escape(keys.prefix()),
            glob_escape(&KeySpace::hash_tag(account))
        );
        let keep = [keys.account_key(account), self.keys_hash(account)];
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, found): (u64, Vec<String>) = self
                .conn()
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            let doomed: Vec<&String> = found.iter().filter(|k| !keep.contains(k)).collect();
            if !doomed.is_empty() {
                let n: u64 = self.conn().query(redis::cmd("DEL").arg(&doomed)).await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}
