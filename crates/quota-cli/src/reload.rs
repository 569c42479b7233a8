//! Policy reload on SIGHUP or when the policy file changes.
//!
//! The new file is parsed and validated first; a bad one is refused with a
//! logged `FILE:LINE:COL: problem` and the running policy stays. A good one
//! replaces the policy for every request that starts afterwards. Counts are
//! kept for every limit whose definition did not change, because stores key
//! their state by the limit's fingerprint (tier, scope, name, count, window,
//! algorithm), not by its position in the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use quota_gateway::PolicyReloader;
use tokio::sync::mpsc;

use quota_gateway::policy_file;

/// Why a reload was asked for.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    Signal,
    FileChanged,
}

/// Watches `path` and SIGHUP until the process ends. Returns the watcher,
/// which must be kept alive.
pub(crate) fn spawn(
    path: PathBuf,
    reloader: PolicyReloader,
) -> anyhow::Result<notify::RecommendedWatcher> {
    let (tx, rx) = mpsc::unbounded_channel::<Trigger>();
    let file_name = path.file_name().map(ToOwned::to_owned);
    let fs_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        if event
            .paths
            .iter()
            .any(|p| p.file_name() == file_name.as_deref())
        {
            let _ = fs_tx.send(Trigger::FileChanged);
        }
    })?;
    // Watch the folder: editors often replace a file by renaming a new one over it.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;

    #[cfg(unix)]
    {
        let tx = tx.clone();
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if tx.send(Trigger::Signal).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let current = std::fs::read(&path).ok();
    tokio::spawn(run(path, reloader, rx, current));
    Ok(watcher)
}

async fn run(
    path: PathBuf,
    reloader: PolicyReloader,
    mut rx: mpsc::UnboundedReceiver<Trigger>,
    mut current: Option<Vec<u8>>,
) {
    while let Some(trigger) = rx.recv().await {
        if matches!(trigger, Trigger::FileChanged) {
            // Let the writer finish, and take a burst of events as one.
            tokio::time::sleep(Duration::from_millis(150)).await;
            while rx.try_recv().is_ok() {}
        }
        let Ok(bytes) = std::fs::read(&path) else {
            // Mid-rename, or deleted: wait for the next event.
            if matches!(trigger, Trigger::Signal) {
                tracing::error!(file = %path.display(), "policy reload refused: cannot read the file; the running policy stays");
                reloader.refused();
            }
            continue;
        };
        if matches!(trigger, Trigger::FileChanged) && current.as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        match reload(&path, &bytes, &reloader) {
            Ok(summary) => {
                tracing::info!(file = %path.display(), trigger = ?trigger, %summary, "policy reloaded");
            }
            Err(reason) => {
                tracing::error!(file = %path.display(), trigger = ?trigger, %reason, "policy reload refused; the running policy stays");
                reloader.refused();
            }
        }
        current = Some(bytes);
    }
}

/// Validates `bytes` and, when good, puts the policy in force.
fn reload(path: &Path, bytes: &[u8], reloader: &PolicyReloader) -> Result<String, String> {
    let src = std::str::from_utf8(bytes)
        .map_err(|_| format!("{}: the file is not UTF-8", path.display()))?;
    let policy = policy_file::parse(path, src).map_err(|e| e.to_string())?;
    let summary = format!(
        "{} endpoints, {} tiers",
        policy.endpoints().len(),
        policy.tiers().len()
    );
    reloader.reload(policy);
    Ok(summary)
}
