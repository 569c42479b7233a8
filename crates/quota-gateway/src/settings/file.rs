//! The config file as written: its keys, read with their spans so that a
//! bad value names its line and column.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use quota_core::policy::LineCol;
use serde::Deserialize;
use toml::Spanned;

use super::{LogFormat, SettingsError};

/// The config file: every key optional, with `_` or `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    pub(super) listen: Option<Spanned<String>>,
    #[serde(alias = "grpc-listen")]
    pub(super) grpc_listen: Option<Spanned<String>>,
    #[serde(alias = "grpc-domain")]
    pub(super) grpc_domain: Option<Spanned<String>>,
    pub(super) upstream: Option<Spanned<String>>,
    pub(super) policy: Option<Spanned<String>>,
    pub(super) store: Option<Spanned<String>>,
    #[serde(alias = "redis-prefix")]
    pub(super) redis_prefix: Option<Spanned<String>>,
    #[serde(alias = "redis-failure")]
    pub(super) redis_failure: Option<Spanned<String>>,
    #[serde(alias = "admin-token")]
    pub(super) admin_token: Option<Spanned<String>>,
    #[serde(alias = "data-dir")]
    pub(super) data_dir: Option<Spanned<String>>,
    pub(super) shadow: Option<Spanned<bool>>,
    #[serde(alias = "refund-on")]
    pub(super) refund_on: Option<Spanned<String>>,
    #[serde(alias = "ietf-headers")]
    pub(super) ietf_headers: Option<Spanned<bool>>,
    #[serde(alias = "path-action")]
    pub(super) path_action: Option<Spanned<String>>,
    pub(super) http1: Option<Spanned<String>>,
    #[serde(alias = "forward-credentials")]
    pub(super) forward_credentials: Option<Spanned<bool>>,
    #[serde(alias = "trusted-proxies")]
    pub(super) trusted_proxies: Option<Vec<Spanned<String>>>,
    #[serde(alias = "upstream-timeout")]
    pub(super) upstream_timeout: Option<Spanned<f64>>,
    #[serde(alias = "client-timeout")]
    pub(super) client_timeout: Option<Spanned<f64>>,
    #[serde(alias = "shutdown-timeout")]
    pub(super) shutdown_timeout: Option<Spanned<f64>>,
    #[serde(alias = "max-connections")]
    pub(super) max_connections: Option<Spanned<usize>>,
    pub(super) workers: Option<Spanned<usize>>,
    #[serde(alias = "log-format")]
    pub(super) log_format: Option<Spanned<LogFormat>>,
    #[serde(alias = "tls-cert")]
    pub(super) tls_cert: Option<Spanned<String>>,
    #[serde(alias = "tls-key")]
    pub(super) tls_key: Option<Spanned<String>>,
    #[serde(alias = "upstream-ca")]
    pub(super) upstream_ca: Option<Spanned<String>>,
    #[serde(alias = "access-log")]
    pub(super) access_log: Option<Spanned<String>>,
    /// `[[routes]]`: read by [`crate::route_file`].
    #[serde(rename = "routes")]
    _routes: Option<toml::Value>,
}

/// A config file read, with its path and text (for line numbers and
/// relative paths).
pub(super) struct Loaded {
    pub(super) path: PathBuf,
    pub(super) src: String,
    pub(super) file: ConfigFile,
}

impl Loaded {
    /// Reads the config file at `path`.
    pub(super) fn read(path: &Path) -> Result<Loaded, SettingsError> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            SettingsError::Invalid(format!("{}: cannot read config file: {e}", path.display()))
        })?;
        Loaded::parse(path, src)
    }

    /// The config file text `src`, read from `path`.
    pub(super) fn parse(path: &Path, src: String) -> Result<Loaded, SettingsError> {
        let file: ConfigFile = toml::from_str(&src).map_err(|e| {
            let LineCol { line, column } = LineCol::of(&src, e.span().map_or(0, |s| s.start));
            SettingsError::Invalid(format!(
                "{}:{line}:{column}: {}",
                path.display(),
                e.message().trim()
            ))
        })?;
        Ok(Loaded {
            path: path.to_owned(),
            src,
            file,
        })
    }

    /// `FILE:LINE:COL: key: problem`, for the value at `span`.
    pub(super) fn at(
        &self,
        span: Range<usize>,
        key: &str,
        problem: impl fmt::Display,
    ) -> SettingsError {
        let LineCol { line, column } = LineCol::of(&self.src, span.start);
        SettingsError::Invalid(format!(
            "{}:{line}:{column}: {key}: {problem}",
            self.path.display()
        ))
    }

    /// A path from the file, relative to the file's folder.
    pub(super) fn path_value(&self, v: &str) -> PathBuf {
        let p = PathBuf::from(v);
        if p.is_absolute() {
            return p;
        }
        self.path.parent().map_or(p.clone(), |dir| dir.join(&p))
    }
}
