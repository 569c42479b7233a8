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
//! `quota serve` runs this around the gateway it builds ([`spawn`]), and
//! tells the returned [`ReloadHandle`] of file changes it watches for; a
//! program embedding the gateway can do the same, with any file watcher:
//!
//! ```no_run
//! # async fn run(gateway: quota_gateway::Gateway) -> Result<(), Box<dyn std::error::Error>> {
//! use quota_gateway::reload::{spawn, Reloadable};
//! let policy = Some(("policy.toml".into(), gateway.reloader()));
//! let handle = spawn(Reloadable { policy, tls: gateway.tls().cloned() })?;
//! // SIGHUP reloads everything; a watcher calls this when policy.toml changes:
//! handle.policy_changed();
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Where a change of a watched file is told (the watching itself is the
/// caller's: `quota serve` uses the `notify` crate). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReloadHandle {
    tx: mpsc::UnboundedSender<Ask>,
}

impl ReloadHandle {
    /// The policy file changed (or was replaced): it is read again after a
    /// short pause that takes a burst of events as one, and put in force
    /// if its content changed and is a good policy.
    pub fn policy_changed(&self) {
        let _ = self.tx.send(Ask::Policy);
    }

    /// The certificate or its key changed: both are read again, as for
    /// [`policy_changed`](Self::policy_changed).
    pub fn tls_changed(&self) {
        let _ = self.tx.send(Ask::Tls);
    }

    /// Everything is read again now, changed or not (what SIGHUP does).
    pub fn reload_all(&self) {
        let _ = self.tx.send(Ask::Signal);
    }
}

impl Reloadable {
    /// The policy file, if there is one to reload.
    pub fn policy_file(&self) -> Option<&Path> {
        self.policy.as_ref().map(|(p, _)| p.as_path())
    }

    /// The certificate and key files, if TLS is on.
    pub fn tls_files(&self) -> Vec<&Path> {
        self.tls
            .iter()
            .flat_map(|t| [t.cert_path(), t.key_path()])
            .collect()
    }
}

/// Reloads `what` on SIGHUP and when told of a change through the returned
/// handle, until the process ends, on the current Tokio runtime.
///
/// # Errors
/// SIGHUP cannot be listened for.
pub fn spawn(what: Reloadable) -> std::io::Result<ReloadHandle> {
    let (tx, rx) = mpsc::unbounded_channel::<Ask>();
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
    tokio::spawn(run(what, rx));
    Ok(ReloadHandle { tx })
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
