//! Moving a database written before the key digests to them.
//!
//! Versions before the digests kept each API key in clear in a table `keys`
//! (key to account id). Opening such a database:
//!
//! 1. copies it, in one write transaction, into a new file beside it
//!    (`accounts.redb.migrating`): the accounts as they are, and each key of
//!    `keys` as its [`key_digest`] in `key_digests`;
//! 2. renames the new file over the old one (and syncs the folder), so the
//!    folder holds either the old database or the migrated one, never a mix;
//! 3. logs one info line with the number of keys moved.
//!
//! Why a new file rather than moving the keys within the old one: redb
//! writes copy-on-write, so the pages a transaction frees keep their bytes
//! until some later write happens to reuse them, and a deleted table of keys
//! would stay readable in the file for an unknown time. (The blocks of the
//! replaced file go back to the file system like those of any deleted file;
//! erasing them is the storage's concern.)
//!
//! A crash before the rename leaves the old database whole and a partial
//! new file, which the next open deletes before it migrates again.

use std::path::Path;

use anyhow::Context as _;
use quota_core::account::key_digest;
use redb::{
    Database, MultimapTableHandle, ReadTransaction, ReadableTable, TableDefinition, TableError,
    TableHandle,
};

use super::{ACCOUNTS, KEY_DIGESTS};

/// API keys in clear to account ids, as versions before [`KEY_DIGESTS`]
/// kept them: only ever read, to migrate them.
pub(super) const CLEAR_KEYS: TableDefinition<'_, &str, &str> = TableDefinition::new("keys");

/// Returns `db` (the database file at `path`) as it is when it holds no
/// table of keys in clear; otherwise migrates the file and returns it opened
/// again with `open`.
pub(super) fn migrate(
    db: Database,
    path: &Path,
    open: impl FnOnce(&Path) -> anyhow::Result<Database>,
) -> anyhow::Result<Database> {
    let new_path = path.with_extension("redb.migrating");
    // Left by a migration cut short; holding `db` means no other process
    // is migrating.
    match std::fs::remove_file(&new_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot delete {}: {e}", new_path.display()),
    }
    let read = db.begin_read()?;
    if !read.list_tables()?.any(|t| t.name() == CLEAR_KEYS.name()) {
        return Ok(db);
    }
    let moved = copy_with_digests(&read, &new_path)
        .with_context(|| format!("{}: cannot migrate the API keys", path.display()))?;
    drop(read);
    drop(db);
    std::fs::rename(&new_path, path).with_context(|| {
        format!(
            "cannot replace {} with {}",
            path.display(),
            new_path.display()
        )
    })?;
    sync_folder(path)?;
    tracing::info!(
        keys = moved,
        path = %path.display(),
        "accounts database migrated: {moved} API keys in clear replaced by their SHA-256 digests"
    );
    open(path)
}

/// Writes the database read by `old` into a new file at `to`, each key in
/// clear as its digest, in one durable transaction. Returns the number of
/// keys moved.
fn copy_with_digests(old: &ReadTransaction, to: &Path) -> anyhow::Result<u64> {
    // An older version wrote no other table; one that is there now would be
    // lost by the copy.
    for table in old.list_tables()? {
        let name = table.name();
        if ![ACCOUNTS.name(), KEY_DIGESTS.name(), CLEAR_KEYS.name()].contains(&name) {
            anyhow::bail!("unexpected table {name:?}: not migrated");
        }
    }
    if let Some(table) = old.list_multimap_tables()?.next() {
        anyhow::bail!("unexpected table {:?}: not migrated", table.name());
    }
    let new = Database::create(to)?;
    let tx = new.begin_write()?;
    let mut moved = 0;
    {
        let mut accounts = tx.open_table(ACCOUNTS)?;
        if let Some(old_accounts) = existing(old.open_table(ACCOUNTS))? {
            for row in old_accounts.iter()? {
                let (id, record) = row?;
                accounts.insert(id.value(), record.value())?;
            }
        }
        let mut digests = tx.open_table(KEY_DIGESTS)?;
        if let Some(old_digests) = existing(old.open_table(KEY_DIGESTS))? {
            for row in old_digests.iter()? {
                let (digest, id) = row?;
                digests.insert(digest.value(), id.value())?;
            }
        }
        if let Some(clear) = existing(old.open_table(CLEAR_KEYS))? {
            for row in clear.iter()? {
                let (key, id) = row?;
                digests.insert(key_digest(key.value()).as_bytes(), id.value())?;
                moved += 1;
            }
        }
    }
    // Durable (the default): the file is on disk before it replaces the old.
    tx.commit()?;
    Ok(moved)
}

/// `None` for a table that does not exist.
fn existing<T>(table: Result<T, TableError>) -> Result<Option<T>, TableError> {
    match table {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes the rename of the file at `path` durable.
#[cfg(unix)]
fn sync_folder(path: &Path) -> anyhow::Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(folder)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync the folder {}", folder.display()))
}

/// Makes the rename of the file at `path` durable (done by the rename
/// itself where folders cannot be opened).
#[cfg(not(unix))]
fn sync_folder(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}
