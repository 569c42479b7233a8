//! Policy and certificate reload on SIGHUP or when their files change.
//!
//! The new policy file is parsed and validated first; a bad one is refused
//! with a logged `FILE:LINE:COL: problem` and the running policy stays. A
//! good one replaces the policy for every request that starts afterwards.
//! Counts are kept for every limit whose definition did not change, because
//! stores key their state by the limit's fingerprint (tier, scope, name,
//! count, window, algorithm), not by its position in the file.
//!
//! With TLS on, the certificate chain and key (`--tls-cert`, `--tls-key`)
//! are read again on the same SIGHUP and when either file changes: a good
//! pair is served to every new connection (open ones keep theirs), a bad
//! one is refused with a logged reason naming the file and the certificate
//! in force stays.
//!
//! `quota serve` runs this around the gateway it builds ([`spawn`]); a
//! program embedding the gateway can do the same:
//!
//! ```no_run
//! # async fn run(gateway: quota_gateway::Gateway) -> Result<(), Box<dyn std::error::Error>> {
//! use quota_gateway::reload::{spawn, Reloadable};
//! let policy = Some(("policy.toml".into(), gateway.reloader()));
//! let _watcher = spawn(Reloadable { policy, tls: gateway.tls().cloned() })?;
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::{policy_file, PolicyReloader, TlsConfig};

/// Why a reload was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    Signal,
    FileChanged,
}

/// What a file event or a signal asks to reload.
#[derive(Clone, Copy, Debug)]
enum Ask {
    /// Everything (SIGHUP).
    Signal,
    /// The policy file changed.
    Policy,
    /// The certificate or its key changed.
    Tls,
}

/// What to reload, and from where.
pub struct Reloadable {
    /// The policy file and where to put a new policy (`None`: the built-in
    /// seed, nothing to reload).
    pub policy: Option<(PathBuf, PolicyReloader)>,
    /// The certificate the gateway terminates TLS with, if it does.
    pub tls: Option<TlsConfig>,
}

/// Watches the files of `what` and SIGHUP until the process ends, on the
/// current Tokio runtime. Returns the watcher, which must be kept alive
/// (`None`: nothing to reload).
///
/// # Errors
/// The folders cannot be watched, or SIGHUP cannot be listened for.
pub fn spawn(what: Reloadable) -> std::io::Result<Option<notify::RecommendedWatcher>> {
    if what.policy.is_none() && what.tls.is_none() {
        return Ok(None);
    }
    let (tx, rx) = mpsc::unbounded_channel::<Ask>();
    let policy_name = what
        .policy
        .as_ref()
        .and_then(|(p, _)| p.file_name().map(ToOwned::to_owned));
    let tls_names: Vec<_> = what
        .tls
        .iter()
        .flat_map(|t| [t.cert_path(), t.key_path()])
        .filter_map(|p| p.file_name().map(ToOwned::to_owned))
        .collect();
    let fs_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let named =
            |name: &std::ffi::OsStr| event.paths.iter().any(|p| p.file_name() == Some(name));
        if policy_name.as_deref().is_some_and(named) {
            let _ = fs_tx.send(Ask::Policy);
        }
        if tls_names.iter().any(|n| named(n)) {
            let _ = fs_tx.send(Ask::Tls);
        }
    })
    .map_err(watch_error)?;
    // Watch the folders: editors often replace a file by renaming a new one over it.
    let files = what
        .policy
        .iter()
        .map(|(p, _)| p.as_path())
        .chain(what.tls.iter().flat_map(|t| [t.cert_path(), t.key_path()]));
    let dirs: BTreeSet<PathBuf> = files
        .map(|path| match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        })
        .collect();
    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(watch_error)?;
    }

    #[cfg(unix)]
    {
        let tx = tx.clone();
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if tx.send(Ask::Signal).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    tokio::spawn(run(what, rx));
    Ok(Some(watcher))
}

/// A watcher's error as an I/O error that names the watching.
fn watch_error(e: notify::Error) -> std::io::Error {
    std::io::Error::other(format!("cannot watch the files to reload: {e}"))
}

async fn run(what: Reloadable, mut rx: mpsc::UnboundedReceiver<Ask>) {
    let mut policy = what
        .policy
        .map(|(path, reloader)| (std::fs::read(&path).ok(), path, reloader));
    let mut tls = what.tls.map(|t| (tls_bytes(&t), t));
    while let Some(first) = rx.recv().await {
        let (mut signal, mut policy_due, mut tls_due) = (false, false, false);
        let mut note = |ask: Ask| match ask {
            Ask::Signal => signal = true,
            Ask::Policy => policy_due = true,
            Ask::Tls => tls_due = true,
        };
        note(first);
        if !matches!(first, Ask::Signal) {
            // Let the writer finish, and take a burst of events as one.
            tokio::time::sleep(Duration::from_millis(150)).await;
            while let Ok(ask) = rx.try_recv() {
                note(ask);
            }
        }
        let trigger = if signal {
            Trigger::Signal
        } else {
            Trigger::FileChanged
        };
        if let Some((current, path, reloader)) = policy.as_mut().filter(|_| signal || policy_due) {
            reload_policy(path, reloader, trigger, current);
        }
        if let Some((current, config)) = tls.as_mut().filter(|_| signal || tls_due) {
            reload_tls(config, trigger, current);
        }
    }
}

/// Reads the policy file again and puts it in force when it is good;
/// `current` is what it held last time (a change event that left it as it
/// was is no reload).
fn reload_policy(
    path: &Path,
    reloader: &PolicyReloader,
    trigger: Trigger,
    current: &mut Option<Vec<u8>>,
) {
    let Ok(bytes) = std::fs::read(path) else {
        // Mid-rename, or deleted: wait for the next event.
        if trigger == Trigger::Signal {
            tracing::error!(file = %path.display(), "policy reload refused: cannot read the file; the running policy stays");
            reloader.refused();
        }
        return;
    };
    if trigger == Trigger::FileChanged && current.as_deref() == Some(bytes.as_slice()) {
        return;
    }
    match reload(path, &bytes, reloader) {
        Ok(summary) => {
            tracing::info!(file = %path.display(), trigger = ?trigger, %summary, "policy reloaded");
        }
        Err(reason) => {
            tracing::error!(file = %path.display(), trigger = ?trigger, %reason, "policy reload refused; the running policy stays");
            reloader.refused();
        }
    }
    *current = Some(bytes);
}

/// Both files of `tls`, as they are now (`None` for one that cannot be read).
fn tls_bytes(tls: &TlsConfig) -> [Option<Vec<u8>>; 2] {
    [tls.cert_path(), tls.key_path()].map(|p| std::fs::read(p).ok())
}

/// Reads the certificate and key again and serves them to new connections
/// when they are good; `current` as for [`reload_policy`].
fn reload_tls(tls: &TlsConfig, trigger: Trigger, current: &mut [Option<Vec<u8>>; 2]) {
    let bytes = tls_bytes(tls);
    if trigger == Trigger::FileChanged && *current == bytes {
        return;
    }
    let cert = tls.cert_path().display();
    match tls.reload() {
        Ok(()) => {
            tracing::info!(%cert, trigger = ?trigger, "TLS certificate reloaded; new connections get it")
        }
        Err(reason) => {
            tracing::error!(%cert, trigger = ?trigger, %reason, "TLS certificate reload refused; the certificate in force stays")
        }
    }
    *current = bytes;
}

/// Validates `bytes` and, when good, puts the policy in force.
fn reload(path: &Path, bytes: &[u8], reloader: &PolicyReloader) -> Result<String, String> {
    let src = std::str::from_utf8(bytes)
        .map_err(|_| format!("{}: the file is not UTF-8", path.display()))?;
    let policy = policy_file::parse(path, src).map_err(|e| e.to_string())?;
    let summary = policy.census();
    reloader.reload(policy);
    Ok(summary)
}
