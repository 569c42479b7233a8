//! Resolving the settings: an override, else the config file, else the
//! default; each value checked, its error naming where it came from.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use quota_core::admission::RefundOn;
use quota_core::path::PathAction;
use toml::Spanned;

use super::file::Loaded;
use super::values::*;
use super::{LogFormat, Overrides, Settings, SettingsError, StoreSetting, TlsFiles};
use crate::forwarded::TrustedProxies;
use crate::options::Http1;
use crate::route_file;

/// Where a value came from, for error messages.
enum Origin<'a> {
    /// An override (`quota serve`: a flag, or its environment variable).
    Override(&'static str),
    /// The config file, at this span, under this key.
    File(&'a Loaded, Range<usize>, &'static str),
    Default,
}

impl Origin<'_> {
    fn error(&self, problem: impl fmt::Display) -> SettingsError {
        match self {
            Origin::Override(key) => {
                let env = format!("QUOTA_{}", key.replace('-', "_").to_ascii_uppercase());
                SettingsError::Invalid(format!("--{key} (or {env}): {problem}"))
            }
            Origin::File(loaded, span, key) => loaded.at(span.clone(), key, problem),
            Origin::Default => SettingsError::Invalid(format!("default value: {problem}")),
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

/// One setting: the override (`name` names it), else the config file's
/// value, else `default`; `check` turns it into the setting, and its error
/// names where the value came from.
fn setting<T: Clone, U>(
    over: (Option<T>, &'static str),
    file: (Option<(&Loaded, &Spanned<T>)>, &'static str),
    check: impl FnOnce(T) -> Result<U, String>,
    default: impl FnOnce() -> Result<U, String>,
) -> Result<U, SettingsError> {
    let (value, origin) = match (over, file) {
        ((Some(v), name), _) => (v, Origin::Override(name)),
        (_, (Some((l, s)), key)) => (s.get_ref().clone(), Origin::File(l, s.span(), key)),
        _ => return default().map_err(|e| Origin::Default.error(e)),
    };
    check(value).map_err(|e| origin.error(e))
}

/// A two-settings problem: `--a (or QUOTA_A, or `a`) ...`.
fn invalid(message: &str) -> SettingsError {
    SettingsError::Invalid(message.to_owned())
}

impl Settings {
    /// The settings of the config file at `path`, alone.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`]: the file cannot be read, is not TOML,
    /// has an unknown key, or a value that cannot be used (its line and
    /// column named), or names no upstream.
    pub fn from_file(path: &Path) -> Result<Settings, SettingsError> {
        Settings::resolve(Some(path), &Overrides::default())
    }

    /// The settings of the config file text `src`, read from `path` (for
    /// error messages, and relative paths are taken from its folder).
    ///
    /// ```
    /// use std::path::Path;
    /// use quota_gateway::settings::Settings;
    ///
    /// let src = "upstream = \"http://127.0.0.1:9000\"\nworkers = 0\n";
    /// let err = Settings::parse(Path::new("conf/quota.toml"), src).unwrap_err();
    /// assert!(err.to_string().starts_with("conf/quota.toml:2:11: workers: must be between 1 and"));
    /// let src = "upstream = \"http://127.0.0.1:9000\"\npolicy = \"policy.toml\"\n";
    /// let settings = Settings::parse(Path::new("conf/quota.toml"), src).unwrap();
    /// assert_eq!(settings.policy.as_deref(), Some(Path::new("conf/policy.toml")));
    /// ```
    ///
    /// # Errors
    /// As [`Settings::from_file`].
    pub fn parse(path: &Path, src: &str) -> Result<Settings, SettingsError> {
        let loaded = Loaded::parse(path, src.to_owned())?;
        Settings::resolve_loaded(Some(&loaded), &Overrides::default())
    }

    /// The settings of the config file at `config` (if any) under
    /// `overrides`: an override beats the file, which beats the default.
    ///
    /// # Errors
    /// As [`Settings::from_file`]; an override's error names it
    /// `--key (or QUOTA_KEY)`.
    pub fn resolve(
        config: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Settings, SettingsError> {
        let loaded = config.map(Loaded::read).transpose()?;
        Settings::resolve_loaded(loaded.as_ref(), overrides)
    }

    fn resolve_loaded(l: Option<&Loaded>, o: &Overrides) -> Result<Settings, SettingsError> {
        let listen = setting(
            (o.listen.clone(), "listen"),
            in_file!(l, listen),
            |v| parse_listen(&v),
            || parse_listen(DEFAULT_LISTEN),
        )?;
        let grpc_listen = setting(
            (o.grpc_listen.clone(), "grpc-listen"),
            in_file!(l, grpc_listen),
            |v| parse_listen(&v).map(Some),
            || Ok(None),
        )?;
        let grpc_domain = setting(
            (o.grpc_domain.clone(), "grpc-domain"),
            in_file!(l, grpc_domain),
            parse_grpc_domain,
            || Ok(DEFAULT_GRPC_DOMAIN.to_owned()),
        )?;
        let upstream = setting(
            (o.upstream.clone(), "upstream"),
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
        let file = |key: fn(&Loaded) -> Option<&Spanned<String>>| l.and_then(key);
        let policy = path(&o.policy, file(|l| l.file.policy.as_ref()));
        // `-` (stdout) is not a path.
        let access_log = match file(|l| l.file.access_log.as_ref()) {
            Some(f) if o.access_log.is_none() && f.get_ref() == "-" => Some(PathBuf::from("-")),
            f => path(&o.access_log, f),
        };
        let data_dir = path(&o.data_dir, file(|l| l.file.data_dir.as_ref()));
        let upstream_ca = path(&o.upstream_ca, file(|l| l.file.upstream_ca.as_ref()));
        if upstream_ca.is_some()
            && upstream
                .as_ref()
                .is_some_and(|u| u.scheme_str() != Some("https"))
        {
            return Err(invalid(
                "--upstream-ca (or QUOTA_UPSTREAM_CA, or `upstream_ca`) is for an https:// upstream",
            ));
        }
        let tls_cert = path(&o.tls_cert, file(|l| l.file.tls_cert.as_ref()));
        let tls_key = path(&o.tls_key, file(|l| l.file.tls_key.as_ref()));
        let tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(invalid(
                "--tls-cert (or QUOTA_TLS_CERT, or `tls_cert`) needs --tls-key (or QUOTA_TLS_KEY, or `tls_key`): the certificate's private key",
            )),
            (None, Some(_)) => return Err(invalid(
                "--tls-key (or QUOTA_TLS_KEY, or `tls_key`) needs --tls-cert (or QUOTA_TLS_CERT, or `tls_cert`): the certificate chain",
            )),
        };
        let store = setting(
            (o.store.clone(), "store"),
            in_file!(l, store),
            |v| parse_store(&v),
            || Ok(StoreSetting::Memory),
        )?;
        let redis_prefix = setting(
            (o.redis_prefix.clone(), "redis-prefix"),
            in_file!(l, redis_prefix),
            |v| Ok(Some(v)),
            || Ok(None),
        )?;
        let redis_failure = setting(
            (o.redis_failure.clone(), "redis-failure"),
            in_file!(l, redis_failure),
            parsed,
            || Ok(quota_redis::FailurePolicy::default()),
        )?;
        let admin_token = setting(
            (o.admin_token.clone(), "admin-token"),
            in_file!(l, admin_token),
            parse_admin_token,
            || Ok(None),
        )?;
        let flag = |v: bool| Ok(v);
        let off = || Ok(false);
        let shadow = setting((o.shadow, "shadow"), in_file!(l, shadow), flag, off)?;
        let refund_on = setting(
            (o.refund_on.clone(), "refund-on"),
            in_file!(l, refund_on),
            |v: String| v.trim().parse::<RefundOn>().map_err(|e| e.to_string()),
            || Ok(RefundOn::default()),
        )?;
        let ietf_headers = setting(
            (o.ietf_headers, "ietf-headers"),
            in_file!(l, ietf_headers),
            flag,
            off,
        )?;
        let path_action = setting(
            (o.path_action.clone(), "path-action"),
            in_file!(l, path_action),
            parsed,
            || Ok(PathAction::Refuse),
        )?;
        let http1 = setting(
            (o.http1.clone(), "http1"),
            in_file!(l, http1),
            parsed,
            || Ok(Http1::default()),
        )?;
        let forward_credentials = setting(
            (o.forward_credentials, "forward-credentials"),
            in_file!(l, forward_credentials),
            flag,
            off,
        )?;
        let trusted_proxies = match (
            &o.trusted_proxies,
            l.zip(l.and_then(|l| l.file.trusted_proxies.as_ref())),
        ) {
            (Some(list), _) => TrustedProxies::parse(list)
                .map_err(|e| Origin::Override("trusted-proxies").error(e))?,
            (None, Some((l, list))) => {
                for entry in list {
                    TrustedProxies::parse(&[entry.get_ref()])
                        .map_err(|e| l.at(entry.span(), "trusted_proxies", e))?;
                }
                let list: Vec<&String> = list.iter().map(Spanned::get_ref).collect();
                TrustedProxies::parse(&list).map_err(SettingsError::Invalid)?
            }
            (None, None) => TrustedProxies::default(),
        };
        let upstream_timeout = setting(
            (o.upstream_timeout, "upstream-timeout"),
            in_file!(l, upstream_timeout),
            seconds,
            || seconds(DEFAULT_UPSTREAM_TIMEOUT),
        )?;
        let client_timeout = setting(
            (o.client_timeout, "client-timeout"),
            in_file!(l, client_timeout),
            seconds,
            || seconds(DEFAULT_CLIENT_TIMEOUT),
        )?;
        let shutdown_timeout = setting(
            (o.shutdown_timeout, "shutdown-timeout"),
            in_file!(l, shutdown_timeout),
            seconds,
            || seconds(DEFAULT_SHUTDOWN_TIMEOUT),
        )?;
        let max_connections = setting(
            (o.max_connections, "max-connections"),
            in_file!(l, max_connections),
            |n| between_1_and(MAX_MAX_CONNECTIONS, n),
            || Ok(DEFAULT_MAX_CONNECTIONS),
        )?;
        let workers = setting(
            (o.workers, "workers"),
            in_file!(l, workers),
            |n| between_1_and(MAX_WORKERS, n),
            || Ok(std::thread::available_parallelism().map_or(1, usize::from)),
        )?;
        let log_format = setting(
            (o.log_format, "log-format"),
            in_file!(l, log_format),
            Ok,
            || Ok(LogFormat::default()),
        )?;
        let routes = match l {
            Some(l) => route_file::parse(&l.path, &l.src)
                .map_err(|e| SettingsError::Invalid(e.to_string()))?,
            None => Vec::new(),
        };
        if upstream.is_some() && !routes.is_empty() {
            return Err(invalid(
                "--upstream (or QUOTA_UPSTREAM, or `upstream`) and [[routes]] both name upstreams: give the routes, or one upstream for /v1/",
            ));
        }
        if upstream.is_none() && routes.is_empty() && !o.demo {
            return Err(invalid(
                "no upstream: pass --upstream URL (or QUOTA_UPSTREAM, or `upstream` in the config file), or try --demo",
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
            data_dir,
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
            demo: o.demo,
        })
    }
}
