//! `quota serve` settings: flags, environment, config file, defaults.
//!
//! Precedence, highest first: a command-line flag, its environment variable
//! (clap reads both), the config file (`--config FILE`, TOML, the same keys
//! as the flags with `-` or `_`), the default. A bad value anywhere is an
//! error naming where it came from: `FILE:LINE:COL: key: problem` for the
//! config file, `--flag (or QUOTA_ENV): problem` otherwise. Relative paths in
//! the config file are taken from the config file's folder.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quota_core::admission::RefundOn;
use quota_core::path::PathAction;
use quota_core::policy::LineCol;
use quota_gateway::Http1;
use serde::Deserialize;
use toml::Spanned;

use crate::cli::{LogFormat, ServeArgs};
use quota_gateway::forwarded::TrustedProxies;
use quota_gateway::route_file;

/// The listen address when none is given.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The accounts database folder when none is given.
pub(crate) const DEFAULT_DATA_DIR: &str = "quota-data";

/// Where counters live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoreSetting {
    /// In this process.
    Memory,
    /// In Redis at this URL.
    Redis(String),
}

/// Everything `quota serve` runs with, resolved.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Listen address.
    pub(crate) listen: SocketAddr,
    /// Envoy's rate limit service's listen address, if served.
    pub(crate) grpc_listen: Option<SocketAddr>,
    /// The domain Envoy's requests name.
    pub(crate) grpc_domain: String,
    /// Upstream base URL (absent with `[[routes]]`, or with `--demo`).
    pub(crate) upstream: Option<http::Uri>,
    /// The config file's `[[routes]]` (empty: `/v1/` to the upstream).
    pub(crate) routes: Vec<quota_gateway::Route>,
    /// CA certificates also trusted for an `https://` upstream.
    pub(crate) upstream_ca: Option<PathBuf>,
    /// Policy file (the seed when absent).
    pub(crate) policy: Option<PathBuf>,
    /// Counter store.
    pub(crate) store: StoreSetting,
    /// Redis key prefix (the store's default when absent).
    pub(crate) redis_prefix: Option<String>,
    /// What the Redis store does when Redis cannot answer.
    pub(crate) redis_failure: quota_redis::FailurePolicy,
    /// Admin token (admin API off when absent).
    pub(crate) admin_token: Option<String>,
    /// Accounts database folder, and whether it was chosen explicitly.
    pub(crate) data_dir: PathBuf,
    /// True when `data_dir` was given rather than defaulted.
    pub(crate) data_dir_given: bool,
    /// Never refuse.
    pub(crate) shadow: bool,
    /// When admitted requests are refunded.
    pub(crate) refund_on: RefundOn,
    /// Send the IETF `RateLimit-Policy`/`RateLimit` headers too.
    pub(crate) ietf_headers: bool,
    /// What to do with request paths that are not canonical.
    pub(crate) path_action: PathAction,
    /// Which code serves HTTP/1.1.
    pub(crate) http1: Http1,
    /// Forward the API key header to the upstream (removed by default).
    pub(crate) forward_credentials: bool,
    /// The proxies whose `X-Forwarded-For` is believed.
    pub(crate) trusted_proxies: TrustedProxies,
    /// How long to wait for upstream response headers.
    pub(crate) upstream_timeout: Duration,
    /// How long a client connection may take to send a request head.
    pub(crate) client_timeout: Duration,
    /// How long in-flight requests get on shutdown.
    pub(crate) shutdown_timeout: Duration,
    /// Client connections open at once (at least 1).
    pub(crate) max_connections: usize,
    /// Threads serving connections (at least 1).
    pub(crate) workers: usize,
    /// TLS termination: the certificate chain's and the key's files.
    pub(crate) tls: Option<TlsFiles>,
    /// Log format.
    pub(crate) log_format: LogFormat,
    /// The access log's file, `-` for stdout (none when absent).
    pub(crate) access_log: Option<PathBuf>,
    /// Demo mode.
    pub(crate) demo: bool,
}

/// The PEM files the gateway terminates TLS with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// The certificate chain.
    pub(crate) cert: PathBuf,
    /// Its private key.
    pub(crate) key: PathBuf,
}

/// A bad setting, with where it came from.
#[derive(Debug)]
pub(crate) struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The config file: the flags' keys, every one optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<Spanned<String>>,
    #[serde(alias = "grpc-listen")]
    grpc_listen: Option<Spanned<String>>,
    #[serde(alias = "grpc-domain")]
    grpc_domain: Option<Spanned<String>>,
    upstream: Option<Spanned<String>>,
    policy: Option<Spanned<String>>,
    store: Option<Spanned<String>>,
    #[serde(alias = "redis-prefix")]
    redis_prefix: Option<Spanned<String>>,
    #[serde(alias = "redis-failure")]
    redis_failure: Option<Spanned<String>>,
    #[serde(alias = "admin-token")]
    admin_token: Option<Spanned<String>>,
    #[serde(alias = "data-dir")]
    data_dir: Option<Spanned<String>>,
    shadow: Option<Spanned<bool>>,
    #[serde(alias = "refund-on")]
    refund_on: Option<Spanned<String>>,
    #[serde(alias = "ietf-headers")]
    ietf_headers: Option<Spanned<bool>>,
    #[serde(alias = "path-action")]
    path_action: Option<Spanned<String>>,
    http1: Option<Spanned<String>>,
    #[serde(alias = "forward-credentials")]
    forward_credentials: Option<Spanned<bool>>,
    #[serde(alias = "trusted-proxies")]
    trusted_proxies: Option<Vec<Spanned<String>>>,
    #[serde(alias = "upstream-timeout")]
    upstream_timeout: Option<Spanned<f64>>,
    #[serde(alias = "client-timeout")]
    client_timeout: Option<Spanned<f64>>,
    #[serde(alias = "shutdown-timeout")]
    shutdown_timeout: Option<Spanned<f64>>,
    #[serde(alias = "max-connections")]
    max_connections: Option<Spanned<usize>>,
    workers: Option<Spanned<usize>>,
    #[serde(alias = "log-format")]
    log_format: Option<Spanned<LogFormat>>,
    #[serde(alias = "tls-cert")]
    tls_cert: Option<Spanned<String>>,
    #[serde(alias = "tls-key")]
    tls_key: Option<Spanned<String>>,
    #[serde(alias = "upstream-ca")]
    upstream_ca: Option<Spanned<String>>,
    #[serde(alias = "access-log")]
    access_log: Option<Spanned<String>>,
    /// `[[routes]]`: read by `quota_gateway::route_file`.
    #[serde(rename = "routes")]
    _routes: Option<toml::Value>,
}

/// A loaded config file and its text (for line numbers).
struct Loaded {
    path: PathBuf,
    src: String,
    file: ConfigFile,
}

impl Loaded {
    fn at(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        problem: impl fmt::Display,
    ) -> ConfigError {
        let LineCol { line, column: col } = LineCol::of(&self.src, span.start);
        ConfigError(format!(
            "{}:{line}:{col}: {key}: {problem}",
            self.path.display()
        ))
    }

    /// A path from the file, relative to the file's folder.
    fn path_value(&self, v: &str) -> PathBuf {
        let p = PathBuf::from(v);
        if p.is_absolute() {
            return p;
        }
        self.path.parent().map_or(p.clone(), |dir| dir.join(&p))
    }
}

fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read config file: {e}", path.display())))?;
    let file: ConfigFile = toml::from_str(&src).map_err(|e| {
        let LineCol { line, column: col } = LineCol::of(&src, e.span().map_or(0, |s| s.start));
        ConfigError(format!(
            "{}:{line}:{col}: {}",
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

/// Where a value came from, for error messages.
enum Origin<'a> {
    /// A flag, or its environment variable.
    Flag(&'static str),
    /// The config file, at this span, under this key.
    File(&'a Loaded, std::ops::Range<usize>, &'static str),
    Default,
}

impl Origin<'_> {
    fn error(&self, problem: impl fmt::Display) -> ConfigError {
        match self {
            Origin::Flag(flag) => {
                let env = format!("QUOTA_{}", flag.replace('-', "_").to_ascii_uppercase());
                ConfigError(format!("--{flag} (or {env}): {problem}"))
            }
            Origin::File(loaded, span, key) => loaded.at(span.clone(), key, problem),
            Origin::Default => ConfigError(format!("default value: {problem}")),
        }
    }
}

/// The config file's value of one key, with the file it came from.
macro_rules! in_file {
    ($loaded:expr, $key:ident) => {
        (
            $loaded.and_then(|l| l.file.$key.as_ref().map(|v| (l, v))),
            stringify!($key),
        )
    };
}

/// One setting: the flag (or its environment variable, `flag` names both),
/// else the config file's value, else `default`; `check` turns it into the
/// setting, and its error names where the value came from.
fn setting<T: Clone, U>(
    flag: (Option<T>, &'static str),
    file: (Option<(&Loaded, &Spanned<T>)>, &'static str),
    check: impl FnOnce(T) -> Result<U, String>,
    default: impl FnOnce() -> Result<U, String>,
) -> Result<U, ConfigError> {
    let (value, origin) = match (flag, file) {
        ((Some(v), name), _) => (v, Origin::Flag(name)),
        (_, (Some((l, s)), key)) => (s.get_ref().clone(), Origin::File(l, s.span(), key)),
        _ => return default().map_err(|e| Origin::Default.error(e)),
    };
    check(value).map_err(|e| origin.error(e))
}

/// A value read by its type's `FromStr`.
fn parsed<T: std::str::FromStr<Err = String>>(v: String) -> Result<T, String> {
    v.trim().parse()
}

impl Settings {
    /// Resolves the settings of `quota serve`.
    pub(crate) fn resolve(args: &ServeArgs) -> Result<Settings, ConfigError> {
        let loaded = args.config.as_deref().map(load_file).transpose()?;
        let l = loaded.as_ref();
        let given = |v: String| Ok(Some(v));
        let listen = setting(
            (args.listen.clone(), "listen"),
            in_file!(l, listen),
            |v| parse_listen(&v),
            || parse_listen(DEFAULT_LISTEN),
        )?;
        let grpc_listen = setting(
            (args.grpc_listen.clone(), "grpc-listen"),
            in_file!(l, grpc_listen),
            |v| parse_listen(&v).map(Some),
            || Ok(None),
        )?;
        let grpc_domain = setting(
            (args.grpc_domain.clone(), "grpc-domain"),
            in_file!(l, grpc_domain),
            |v| match v.trim() {
                "" => Err("the gRPC domain is empty".to_owned()),
                d => Ok(d.to_owned()),
            },
            || Ok("quota".to_owned()),
        )?;
        let upstream = setting(
            (args.upstream.clone(), "upstream"),
            in_file!(l, upstream),
            |v| parse_upstream(&v).map(Some),
            || Ok(None),
        )?;
        // Paths in the file are taken from the file's folder.
        let path = |p: &Option<PathBuf>, f: Option<&Spanned<String>>| match (p, l.zip(f)) {
            (Some(p), _) => Some(p.clone()),
            (None, Some((l, f))) => Some(l.path_value(f.get_ref())),
            (None, None) => None,
        };
        let policy = path(&args.policy, l.and_then(|l| l.file.policy.as_ref()));
        // `-` (stdout) is not a path.
        let access_log = match l.and_then(|l| l.file.access_log.as_ref()) {
            Some(f) if args.access_log.is_none() && f.get_ref() == "-" => Some(PathBuf::from("-")),
            f => path(&args.access_log, f),
        };
        let data_dir = path(&args.data_dir, l.and_then(|l| l.file.data_dir.as_ref()));
        let upstream_ca = path(
            &args.upstream_ca,
            l.and_then(|l| l.file.upstream_ca.as_ref()),
        );
        if upstream_ca.is_some()
            && upstream
                .as_ref()
                .is_some_and(|u| u.scheme_str() != Some("https"))
        {
            return Err(ConfigError(
                "--upstream-ca (or QUOTA_UPSTREAM_CA, or `upstream_ca`) is for an https:// upstream".into(),
            ));
        }
        let tls_cert = path(&args.tls_cert, l.and_then(|l| l.file.tls_cert.as_ref()));
        let tls_key = path(&args.tls_key, l.and_then(|l| l.file.tls_key.as_ref()));
        let tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError(
                    "--tls-cert (or QUOTA_TLS_CERT, or `tls_cert`) needs --tls-key (or QUOTA_TLS_KEY, or `tls_key`): the certificate's private key".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError(
                    "--tls-key (or QUOTA_TLS_KEY, or `tls_key`) needs --tls-cert (or QUOTA_TLS_CERT, or `tls_cert`): the certificate chain".into(),
                ))
            }
        };
        let store = setting(
            (args.store.clone(), "store"),
            in_file!(l, store),
            |v| parse_store(&v),
            || Ok(StoreSetting::Memory),
        )?;
        let redis_prefix = setting(
            (args.redis_prefix.clone(), "redis-prefix"),
            in_file!(l, redis_prefix),
            given,
            || Ok(None),
        )?;
        let redis_failure = setting(
            (args.redis_failure.clone(), "redis-failure"),
            in_file!(l, redis_failure),
            parsed,
            || Ok(quota_redis::FailurePolicy::default()),
        )?;
        let admin_token = setting(
            (args.admin_token.clone(), "admin-token"),
            in_file!(l, admin_token),
            |v| match v.trim().len() {
                ..8 => Err("the admin token must be at least 8 characters".to_owned()),
                _ => Ok(Some(v)),
            },
            || Ok(None),
        )?;
        let flag = |v: bool| Ok(v);
        let off = || Ok(false);
        let shadow = setting((args.shadow, "shadow"), in_file!(l, shadow), flag, off)?;
        let refund_on = setting(
            (args.refund_on.clone(), "refund-on"),
            in_file!(l, refund_on),
            |v: String| v.trim().parse::<RefundOn>().map_err(|e| e.to_string()),
            || Ok(RefundOn::default()),
        )?;
        let ietf_headers = setting(
            (args.ietf_headers, "ietf-headers"),
            in_file!(l, ietf_headers),
            flag,
            off,
        )?;
        let path_action = setting(
            (args.path_action.clone(), "path-action"),
            in_file!(l, path_action),
            parsed,
            || Ok(PathAction::Refuse),
        )?;
        let http1 = setting(
            (args.http1.clone(), "http1"),
            in_file!(l, http1),
            parsed,
            || Ok(Http1::default()),
        )?;
        let forward_credentials = setting(
            (args.forward_credentials, "forward-credentials"),
            in_file!(l, forward_credentials),
            flag,
            off,
        )?;
        let trusted_proxies = match (
            &args.trusted_proxies,
            l.zip(l.and_then(|l| l.file.trusted_proxies.as_ref())),
        ) {
            (Some(list), _) => {
                TrustedProxies::parse(list).map_err(|e| Origin::Flag("trusted-proxies").error(e))?
            }
            (None, Some((l, list))) => {
                for entry in list {
                    TrustedProxies::parse(&[entry.get_ref()])
                        .map_err(|e| l.at(entry.span(), "trusted_proxies", e))?;
                }
                let list: Vec<&String> = list.iter().map(Spanned::get_ref).collect();
                TrustedProxies::parse(&list).map_err(ConfigError)?
            }
            (None, None) => TrustedProxies::default(),
        };
        let upstream_timeout = setting(
            (args.upstream_timeout, "upstream-timeout"),
            in_file!(l, upstream_timeout),
            seconds,
            || seconds(30.0),
        )?;
        let client_timeout = setting(
            (args.client_timeout, "client-timeout"),
            in_file!(l, client_timeout),
            seconds,
            || seconds(60.0),
        )?;
        let shutdown_timeout = setting(
            (args.shutdown_timeout, "shutdown-timeout"),
            in_file!(l, shutdown_timeout),
            seconds,
            || seconds(30.0),
        )?;
        let max_connections = setting(
            (args.max_connections, "max-connections"),
            in_file!(l, max_connections),
            |n| between_1_and(MAX_MAX_CONNECTIONS, n),
            || Ok(DEFAULT_MAX_CONNECTIONS),
        )?;
        let workers = setting(
            (args.workers, "workers"),
            in_file!(l, workers),
            |n| between_1_and(MAX_WORKERS, n),
            || Ok(std::thread::available_parallelism().map_or(1, usize::from)),
        )?;
        let log_format = setting(
            (args.log_format, "log-format"),
            in_file!(l, log_format),
            Ok,
            || Ok(LogFormat::default()),
        )?;
        let routes = match l {
            Some(l) => {
                route_file::parse(&l.path, &l.src).map_err(|e| ConfigError(e.to_string()))?
            }
            None => Vec::new(),
        };
        if upstream.is_some() && !routes.is_empty() {
            return Err(ConfigError(
                "--upstream (or QUOTA_UPSTREAM, or `upstream`) and [[routes]] both name upstreams: give the routes, or one upstream for /v1/".into(),
            ));
        }
        if upstream.is_none() && routes.is_empty() && !args.demo {
            return Err(ConfigError(
                "no upstream: pass --upstream URL (or QUOTA_UPSTREAM, or `upstream` in the config file), or try --demo"
                    .into(),
            ));
        }
        Ok(Settings {
            listen,
            grpc_listen,
            grpc_domain,
            upstream,
            routes,
            upstream_ca,
            policy,
            store,
            redis_prefix,
            redis_failure,
            admin_token,
            data_dir_given: data_dir.is_some(),
            data_dir: data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            shadow,
            refund_on,
            ietf_headers,
            path_action,
            http1,
            forward_credentials,
            trusted_proxies,
            upstream_timeout,
            client_timeout,
            shutdown_timeout,
            max_connections,
            workers,
            tls,
            log_format,
            access_log,
            demo: args.demo,
        })
    }
}

fn parse_listen(v: &str) -> Result<SocketAddr, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("invalid listen address {v:?}: expected IP:PORT, e.g. 127.0.0.1:8080"))
}

/// Parses an upstream base URL: `http[s]://host[:port][/base]`.
pub(crate) fn parse_upstream(v: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = v
        .trim()
        .parse()
        .map_err(|e| format!("invalid upstream URL {v:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "upstream URL {v:?}: scheme {other:?} is not supported (use http:// or https://)"
            ))
        }
        None => {
            return Err(format!(
                "upstream URL {v:?} needs a scheme, e.g. http://{v}"
            ))
        }
    }
    if uri.authority().is_none() {
        return Err(format!("upstream URL {v:?} has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("upstream URL {v:?} must not have a query"));
    }
    Ok(uri)
}

fn parse_store(v: &str) -> Result<StoreSetting, String> {
    let t = v.trim();
    if t.eq_ignore_ascii_case("memory") {
        Ok(StoreSetting::Memory)
    } else if t.starts_with("redis://")
        || t.starts_with("rediss://")
        || t.starts_with("redis+unix://")
        || t.starts_with("redis+cluster://")
    {
        Ok(StoreSetting::Redis(t.to_owned()))
    } else {
        Err(format!(
            "invalid store {v:?}: expected `memory` or a Redis URL such as redis://127.0.0.1:6379 (a cluster: redis+cluster://host:port,host:port)"
        ))
    }
}

/// The most worker threads accepted.
const MAX_WORKERS: usize = 1024;

/// `n` if it is in `1..=max`.
fn between_1_and(max: usize, n: usize) -> Result<usize, String> {
    if (1..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be between 1 and {max}, not {n}"))
    }
}

/// Client connections open at once unless configured.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// The most `max_connections` accepts (a semaphore's limit is far higher;
/// this keeps a typo from meaning "no limit").
const MAX_MAX_CONNECTIONS: usize = 1_000_000;

fn seconds(v: f64) -> Result<Duration, String> {
    if v.is_finite() && v > 0.0 && v < 1e9 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!(
            "invalid number of seconds {v}: expected a positive number"
        ))
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A config file in its own folder, removed on drop.
    struct File(PathBuf);

    impl Drop for File {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    /// Settings from a config file holding `text` alone.
    fn from_file(name: &str, text: &str) -> (File, Result<Settings, ConfigError>) {
        let p = write(name, text);
        let s = Settings::resolve(&ServeArgs {
            config: Some(p.0.clone()),
            ..ServeArgs::default()
        });
        (p, s)
    }

    fn write(name: &str, text: &str) -> File {
        let dir =
            std::env::temp_dir().join(format!("quota-config-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("quota.toml");
        std::fs::write(&p, text).unwrap();
        File(p)
    }

    #[test]
    fn a_redis_cluster_is_a_store() {
        let url = "redis+cluster://127.0.0.1:7101,127.0.0.1:7102";
        assert!(matches!(parse_store(url), Ok(StoreSetting::Redis(u)) if u == url));
        let e = parse_store("cluster://127.0.0.1:7101").err().unwrap();
        assert!(e.contains("redis+cluster://"), "{e}");
    }

    #[test]
    fn flag_beats_config_file_which_beats_default() {
        let p = write(
            "prec",
            "listen = \"127.0.0.1:9001\"\nupstream = \"http://127.0.0.1:9\"\nshadow = true\n",
        );
        let args = ServeArgs {
            config: Some(p.0.clone()),
            ..ServeArgs::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.listen.port(), 9001);
        assert!(s.shadow);
        let args = ServeArgs {
            config: Some(p.0.clone()),
            listen: Some("127.0.0.1:9002".into()),
            ..ServeArgs::default()
        };
        assert_eq!(Settings::resolve(&args).unwrap().listen.port(), 9002);
        let args = ServeArgs {
            upstream: Some("http://127.0.0.1:9".into()),
            ..ServeArgs::default()
        };
        assert_eq!(
            Settings::resolve(&args).unwrap().listen.to_string(),
            DEFAULT_LISTEN
        );
    }

    #[test]
    fn bad_value_in_config_file_names_file_line_and_key() {
        let p = write(
            "bad",
            "upstream = \"http://127.0.0.1:9\"\n\nlisten = \"nowhere\"\n",
        );
        let err = Settings::resolve(&ServeArgs {
            config: Some(p.0.clone()),
            ..ServeArgs::default()
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{}:3:10: listen:", p.0.display())),
            "{msg}"
        );
    }

    #[test]
    fn max_connections_and_client_timeout_default_and_bad_values_name_their_line() {
        let upstream = || Some("http://127.0.0.1:9".to_owned());
        let s = Settings::resolve(&ServeArgs {
            upstream: upstream(),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(s.max_connections, 10_000);
        assert_eq!(s.client_timeout, Duration::from_secs(60));
        let (_, s) = from_file(
            "limits",
            "upstream = \"http://127.0.0.1:9\"\nmax-connections = 5\nclient_timeout = 2.5\n",
        );
        let s = s.unwrap();
        assert_eq!(s.max_connections, 5);
        assert_eq!(s.client_timeout, Duration::from_millis(2500));
        let (p, s) = from_file(
            "limits0",
            "upstream = \"http://127.0.0.1:9\"\nmax_connections = 0\n",
        );
        let err = s.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}:2:19: max_connections:", p.0.display())),
            "{err}"
        );
        let err = Settings::resolve(&ServeArgs {
            upstream: upstream(),
            client_timeout: Some(-1.0),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "--client-timeout (or QUOTA_CLIENT_TIMEOUT): invalid number of seconds -1"
            ),
            "{err}"
        );
    }

    #[test]
    fn workers_default_to_the_cpus_and_zero_is_refused_with_its_line() {
        let upstream = || Some("http://127.0.0.1:9".to_owned());
        let s = Settings::resolve(&ServeArgs {
            upstream: upstream(),
            ..ServeArgs::default()
        })
        .unwrap();
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(s.workers, cpus);
        let p = write(
            "workers",
            "upstream = \"http://127.0.0.1:9\"\nworkers = 3\n",
        );
        let file = |workers| ServeArgs {
            config: Some(p.0.clone()),
            workers,
            ..ServeArgs::default()
        };
        assert_eq!(Settings::resolve(&file(None)).unwrap().workers, 3);
        assert_eq!(Settings::resolve(&file(Some(1))).unwrap().workers, 1);
        let err = Settings::resolve(&file(Some(0))).unwrap_err().to_string();
        assert!(
            err.starts_with("--workers (or QUOTA_WORKERS): must be between 1 and"),
            "{err}"
        );
        let (p, s) = from_file(
            "workers0",
            "upstream = \"http://127.0.0.1:9\"\nworkers = 0\n",
        );
        let err = s.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}:2:11: workers:", p.0.display())),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_in_config_file_is_refused_with_its_line() {
        let p = write(
            "unknown",
            "upstream = \"http://127.0.0.1:9\"\nlisten_port = 3\n",
        );
        let msg = Settings::resolve(&ServeArgs {
            config: Some(p.0.clone()),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains(":2:1:") && msg.contains("listen_port"),
            "{msg}"
        );
    }

    #[test]
    fn trusted_proxies_and_forward_credentials_come_from_flags_or_the_file() {
        let upstream = || Some("http://127.0.0.1:9".to_owned());
        let s = Settings::resolve(&ServeArgs {
            upstream: upstream(),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(s.trusted_proxies, TrustedProxies::default());
        assert!(!s.forward_credentials);
        let s = Settings::resolve(&ServeArgs {
            upstream: upstream(),
            trusted_proxies: Some(vec!["10.0.0.0/8".into(), "::1".into()]),
            ..ServeArgs::default()
        })
        .unwrap();
        assert!(s.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(s.trusted_proxies.contains("::1".parse().unwrap()));
        let err = Settings::resolve(&ServeArgs {
            upstream: upstream(),
            trusted_proxies: Some(vec!["10.0.0.0/99".into()]),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("--trusted-proxies (or QUOTA_TRUSTED_PROXIES): invalid address block"),
            "{err}"
        );
        let (_, s) = from_file(
            "trusted",
            "upstream = \"http://127.0.0.1:9\"\ntrusted_proxies = [\"192.0.2.0/24\"]\nforward-credentials = true\n",
        );
        let s = s.unwrap();
        assert!(s.trusted_proxies.contains("192.0.2.9".parse().unwrap()));
        assert!(s.forward_credentials);
        let (p, s) = from_file(
            "trusted-bad",
            "upstream = \"http://127.0.0.1:9\"\ntrusted_proxies = [\"192.0.2.0/24\", \"x\"]\n",
        );
        let err = s.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}:2:36: trusted_proxies:", p.0.display())),
            "{err}"
        );
    }

    #[test]
    fn tls_files_come_together_from_flags_or_the_file_relative_to_it() {
        let upstream = || Some("http://127.0.0.1:9".to_owned());
        let s = Settings::resolve(&ServeArgs {
            upstream: upstream(),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(s.tls, None);
        let s = Settings::resolve(&ServeArgs {
            upstream: upstream(),
            tls_cert: Some("/etc/quota/cert.pem".into()),
            tls_key: Some("/etc/quota/key.pem".into()),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(
            s.tls,
            Some(TlsFiles {
                cert: "/etc/quota/cert.pem".into(),
                key: "/etc/quota/key.pem".into()
            })
        );
        let err = Settings::resolve(&ServeArgs {
            upstream: upstream(),
            tls_cert: Some("cert.pem".into()),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("--tls-cert (or QUOTA_TLS_CERT"), "{err}");
        assert!(err.contains("needs --tls-key"), "{err}");
        let (p, s) = from_file(
            "tls",
            "upstream = \"http://127.0.0.1:9\"\ntls_cert = \"cert.pem\"\ntls-key = \"/k.pem\"\n",
        );
        let dir = p.0.parent().unwrap();
        assert_eq!(
            s.unwrap().tls,
            Some(TlsFiles {
                cert: dir.join("cert.pem"),
                key: "/k.pem".into()
            })
        );
    }

    #[test]
    fn upstream_ca_is_for_an_https_upstream() {
        let s = Settings::resolve(&ServeArgs {
            upstream: Some("https://api.internal/base".into()),
            upstream_ca: Some("/etc/quota/ca.pem".into()),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(s.upstream_ca, Some(PathBuf::from("/etc/quota/ca.pem")));
        let err = Settings::resolve(&ServeArgs {
            upstream: Some("http://127.0.0.1:9".into()),
            upstream_ca: Some("ca.pem".into()),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("is for an https:// upstream"), "{err}");
    }

    #[test]
    fn access_log_comes_from_the_flag_or_the_file_relative_to_it_and_dash_is_stdout() {
        let upstream = || Some("http://127.0.0.1:9".to_owned());
        let s = Settings::resolve(&ServeArgs {
            upstream: upstream(),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(s.access_log, None);
        let s = Settings::resolve(&ServeArgs {
            upstream: upstream(),
            access_log: Some("/var/log/quota/access.log".into()),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(
            s.access_log.as_deref(),
            Some(Path::new("/var/log/quota/access.log"))
        );
        let p = write(
            "access-log",
            "upstream = \"http://127.0.0.1:9\"\naccess-log = \"logs/access.log\"\n",
        );
        let file = |access_log: Option<&str>| ServeArgs {
            config: Some(p.0.clone()),
            access_log: access_log.map(PathBuf::from),
            ..ServeArgs::default()
        };
        let dir = p.0.parent().unwrap();
        assert_eq!(
            Settings::resolve(&file(None)).unwrap().access_log,
            Some(dir.join("logs/access.log"))
        );
        // The flag (or QUOTA_ACCESS_LOG) beats the file.
        assert_eq!(
            Settings::resolve(&file(Some("-"))).unwrap().access_log,
            Some(PathBuf::from("-"))
        );
        let (_, s) = from_file(
            "access-log-stdout",
            "upstream = \"http://127.0.0.1:9\"\naccess_log = \"-\"\n",
        );
        assert_eq!(s.unwrap().access_log, Some(PathBuf::from("-")));
    }

    #[test]
    fn access_log_flag_parses_and_takes_a_dash() {
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from([
            "quota",
            "serve",
            "--upstream",
            "http://127.0.0.1:9",
            "--access-log",
            "-",
        ])
        .unwrap();
        let crate::cli::Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.access_log, Some(PathBuf::from("-")));
    }

    #[test]
    fn upstream_must_be_http_or_https() {
        assert!(parse_upstream("https://x").is_ok());
        assert!(parse_upstream("ftp://x").is_err());

        assert!(parse_upstream("127.0.0.1:80").is_err());
        assert!(parse_upstream("http://127.0.0.1:80/base").is_ok());
    }
}
