//! The gateway's settings: the config file (TOML), the values that override
//! it, their defaults, and the [`GatewayBuilder`](crate::GatewayBuilder) they describe. `quota
//! serve` runs on these; a program of its own can run a gateway from the
//! same config file.
//!
//! 1. Read the settings: [`Settings::from_file`] (a config file),
//!    [`Settings::parse`] (its text), or [`Settings::resolve`] (a config
//!    file, if any, under [`Overrides`]: a command line, the environment).
//! 2. Bind the listener (so a gateway that cannot listen opens no database).
//! 3. [`Settings::gateway_builder`] loads the policy, opens the store and
//!    the accounts, the certificate and the access log, and gives the
//!    [`GatewayBuilder`](crate::GatewayBuilder), to change further or to build.
//!
//! ```no_run
//! use std::path::Path;
//! use quota_gateway::settings::Settings;
//! use quota_gateway::shutdown_signal;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let text = "listen = \"127.0.0.1:8080\"\nupstream = \"http://127.0.0.1:9000\"\nshadow = true\n";
//!     let settings = Settings::parse(Path::new("quota.toml"), text)?;
//!     assert!(settings.shadow);
//!     let listener = tokio::net::TcpListener::bind(settings.listen).await?;
//!     let gateway = settings.gateway_builder().await?.build()?;
//!     gateway.serve(listener, shutdown_signal()).await?;
//!     Ok(())
//! }
//! ```
//!
//! # The config file
//! Every key is optional, and may be written with `_` or `-`
//! (`admin_token` or `admin-token`): `listen`, `upstream`, `upstream_ca`,
//! `policy`, `store`, `redis_prefix`, `redis_failure`, `admin_token`,
//! `data_dir`, `shadow`, `refund_on`, `ietf_headers`, `path_action`,
//! `http1`, `forward_credentials`, `trusted_proxies` (a list),
//! `upstream_timeout`, `client_timeout`, `shutdown_timeout` (seconds),
//! `max_connections`, `workers`, `tls_cert`, `tls_key`, `log_format`,
//! `grpc_listen`, `grpc_domain`, `access_log`, and `[[routes]]` (read by
//! [`route_file`](crate::route_file)). An unknown key is an error. Relative
//! paths (`policy`, `data_dir`, `tls_cert`, `tls_key`, `upstream_ca`,
//! `access_log`) are taken from the config file's folder. `docs/gateway.md`
//! has what each one means and its default.
//!
//! # Precedence and errors
//! An [`Overrides`] value beats the config file's, which beats the default.
//! A bad value is an error naming where it came from:
//! `FILE:LINE:COL: key: problem` for the config file, and for an override
//! `--key (or QUOTA_KEY): problem`, the names `quota serve` gives the flag
//! and the environment variable that set it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quota_core::admission::RefundOn;
use quota_core::path::PathAction;

use crate::forwarded::TrustedProxies;
use crate::options::Http1;
use crate::route_table::Route;

mod file;
mod open;
mod resolve;
mod values;

#[cfg(test)]
mod tests;

pub use values::{DEFAULT_DATA_DIR, DEFAULT_LISTEN};

/// Everything a gateway runs with, resolved: read from a config file and
/// [`Overrides`], checked, defaults filled in. See the [module docs](self).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Envoy's rate limit service's listen address, if served.
    pub grpc_listen: Option<SocketAddr>,
    /// The domain Envoy's requests name.
    pub grpc_domain: String,
    /// Upstream base URL (absent with `[[routes]]`, or in demo mode).
    pub upstream: Option<http::Uri>,
    /// The config file's `[[routes]]` (empty: `/v1/` to the upstream).
    pub routes: Vec<Route>,
    /// CA certificates also trusted for an `https://` upstream.
    pub upstream_ca: Option<PathBuf>,
    /// Policy file (the seed when absent).
    pub policy: Option<PathBuf>,
    /// Counter store.
    pub store: StoreSetting,
    /// Redis key prefix (the store's default when absent).
    pub redis_prefix: Option<String>,
    /// What the Redis store does when Redis cannot answer.
    pub redis_failure: quota_redis::FailurePolicy,
    /// Admin token (admin API off when absent).
    pub admin_token: Option<String>,
    /// Accounts database folder, when given ([`Settings::data_dir`] has
    /// the default).
    pub data_dir: Option<PathBuf>,
    /// Never refuse.
    pub shadow: bool,
    /// When admitted requests are refunded.
    pub refund_on: RefundOn,
    /// Send the IETF `RateLimit-Policy`/`RateLimit` headers too.
    pub ietf_headers: bool,
    /// What to do with request paths that are not canonical.
    pub path_action: PathAction,
    /// Which code serves HTTP/1.1.
    pub http1: Http1,
    /// Forward the API key header to the upstream (removed by default).
    pub forward_credentials: bool,
    /// The proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// How long to wait for upstream response headers.
    pub upstream_timeout: Duration,
    /// How long a client connection may take to send a request head.
    pub client_timeout: Duration,
    /// How long in-flight requests get on shutdown.
    pub shutdown_timeout: Duration,
    /// Client connections open at once (at least 1).
    pub max_connections: usize,
    /// Threads serving connections (at least 1).
    pub workers: usize,
    /// TLS termination: the certificate chain's and the key's files.
    pub tls: Option<TlsFiles>,
    /// The log format the program should write (the library writes through
    /// `tracing` and leaves the subscriber to its program).
    pub log_format: LogFormat,
    /// The access log's file, `-` for stdout (none when absent).
    pub access_log: Option<PathBuf>,
    /// Demo mode ([`Overrides::demo`]): no upstream needed, the program
    /// supplies one ([`crate::demo`]).
    pub demo: bool,
}

impl Settings {
    /// The accounts database folder: the one given, else
    /// [`DEFAULT_DATA_DIR`].
    pub fn data_dir(&self) -> &Path {
        self.data_dir
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_DATA_DIR))
    }
}

/// Where counters live.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreSetting {
    /// In this process (and the accounts in a database under
    /// [`Settings::data_dir`] with the feature `redb`, else in memory).
    Memory,
    /// In Redis at this URL (the accounts too).
    Redis(String),
}

/// The PEM files the gateway terminates TLS with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// Log output format (`log_format`): for the program's log subscriber.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: use text or json")),
        }
    }
}

/// Values that beat the config file's: a program's command line or
/// environment. `None` (or `false`) leaves the key to the file or the
/// default. Text values are checked as the file's are; an error names the
/// override as `--key (or QUOTA_KEY)`.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `listen`.
    pub listen: Option<String>,
    /// `grpc_listen`.
    pub grpc_listen: Option<String>,
    /// `grpc_domain`.
    pub grpc_domain: Option<String>,
    /// `upstream`.
    pub upstream: Option<String>,
    /// `upstream_ca`.
    pub upstream_ca: Option<PathBuf>,
    /// `policy`.
    pub policy: Option<PathBuf>,
    /// `store`.
    pub store: Option<String>,
    /// `redis_prefix`.
    pub redis_prefix: Option<String>,
    /// `redis_failure`.
    pub redis_failure: Option<String>,
    /// `admin_token`.
    pub admin_token: Option<String>,
    /// `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `shadow`.
    pub shadow: Option<bool>,
    /// `refund_on`.
    pub refund_on: Option<String>,
    /// `ietf_headers`.
    pub ietf_headers: Option<bool>,
    /// `path_action`.
    pub path_action: Option<String>,
    /// `http1`.
    pub http1: Option<String>,
    /// `forward_credentials`.
    pub forward_credentials: Option<bool>,
    /// `trusted_proxies`.
    pub trusted_proxies: Option<Vec<String>>,
    /// `upstream_timeout`, in seconds.
    pub upstream_timeout: Option<f64>,
    /// `client_timeout`, in seconds.
    pub client_timeout: Option<f64>,
    /// `shutdown_timeout`, in seconds.
    pub shutdown_timeout: Option<f64>,
    /// `max_connections`.
    pub max_connections: Option<usize>,
    /// `workers`.
    pub workers: Option<usize>,
    /// `tls_cert`.
    pub tls_cert: Option<PathBuf>,
    /// `tls_key`.
    pub tls_key: Option<PathBuf>,
    /// `access_log` (`-`: stdout).
    pub access_log: Option<PathBuf>,
    /// `log_format`.
    pub log_format: Option<LogFormat>,
    /// Demo mode: no upstream is needed (the program runs
    /// [`crate::demo`]'s); there is no such key in the file.
    pub demo: bool,
}

/// Why the settings cannot be used: a bad value (with where it came from),
/// or something they name that cannot be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A value that cannot be used: `FILE:LINE:COL: key: problem`,
    /// `--key (or QUOTA_KEY): problem`, or two settings that do not go
    /// together.
    #[error("{0}")]
    Invalid(String),
    /// The policy file cannot be read or is not a valid policy.
    #[error(transparent)]
    Policy(#[from] crate::policy_file::PolicyFileError),
    /// The store, the accounts, the certificate or the access log cannot
    /// be opened.
    #[error("{0}")]
    Open(String),
}
