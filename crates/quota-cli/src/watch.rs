//! The files `quota serve` reloads, watched with `notify`: each change is
//! told to the gateway's reloader (`quota_gateway::reload`), which reads
//! the file again and puts it in force when it is good.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher};
use quota_gateway::reload::{self, Reloadable};

/// Reloads `what` on SIGHUP and when its files change. Returns the watcher,
/// which must be kept alive (`None`: nothing to reload).
pub(crate) fn spawn(what: Reloadable) -> anyhow::Result<Option<notify::RecommendedWatcher>> {
    let policy = what.policy_file().map(Path::to_owned);
    let tls: Vec<PathBuf> = what.tls_files().into_iter().map(Path::to_owned).collect();
    if policy.is_none() && tls.is_empty() {
        return Ok(None);
    }
    let handle = reload::spawn(what)?;
    let name = |p: &Path| p.file_name().map(ToOwned::to_owned);
    let policy_name: Option<OsString> = policy.as_deref().and_then(name);
    let tls_names: Vec<OsString> = tls.iter().filter_map(|p| name(p)).collect();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let named = |n: &OsString| event.paths.iter().any(|p| p.file_name() == Some(n));
        if policy_name.as_ref().is_some_and(named) {
            handle.policy_changed();
        }
        if tls_names.iter().any(named) {
            handle.tls_changed();
        }
    })
    .map_err(|e| anyhow::anyhow!("cannot watch the files to reload: {e}"))?;
    // Watch the folders: editors often replace a file by renaming a new one over it.
    let dirs: BTreeSet<PathBuf> = policy
        .iter()
        .chain(&tls)
        .map(|path| match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        })
        .collect();
    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| anyhow::anyhow!("cannot watch {} to reload: {e}", dir.display()))?;
    }
    Ok(Some(watcher))
}
