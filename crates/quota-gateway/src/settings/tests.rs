//! The settings' behaviour: precedence, defaults, and errors that name
//! where a bad value came from.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::values::{self, DEFAULT_MAX_CONNECTIONS};
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
fn from_file(name: &str, text: &str) -> (File, Result<Settings, SettingsError>) {
    let p = write(name, text);
    let s = Settings::from_file(&p.0);
    (p, s)
}

/// Flags naming an upstream, the one setting every gateway needs.
fn with_upstream() -> Overrides {
    Overrides {
        upstream: Some("http://127.0.0.1:9".to_owned()),
        ..Overrides::default()
    }
}

/// Settings from flags alone, no config file.
fn from_flags(flags: Overrides) -> Result<Settings, SettingsError> {
    Settings::resolve(None, &flags)
}

fn write(name: &str, text: &str) -> File {
    let dir = std::env::temp_dir().join(format!("quota-config-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("quota.toml");
    std::fs::write(&p, text).unwrap();
    File(p)
}

#[test]
fn a_redis_cluster_is_a_store() {
    let url = "redis+cluster://127.0.0.1:7101,127.0.0.1:7102";
    assert!(matches!(values::parse_store(url), Ok(StoreSetting::Redis(u)) if u == url));
    let e = values::parse_store("cluster://127.0.0.1:7101")
        .err()
        .unwrap();
    assert!(e.contains("redis+cluster://"), "{e}");
}

#[test]
fn flag_beats_config_file_which_beats_default() {
    let p = write(
        "prec",
        "listen = \"127.0.0.1:9001\"\nupstream = \"http://127.0.0.1:9\"\nshadow = true\n",
    );
    let s = Settings::resolve(Some(&p.0), &Overrides::default()).unwrap();
    assert_eq!(s.listen.port(), 9001);
    assert!(s.shadow);
    let args = Overrides {
        listen: Some("127.0.0.1:9002".into()),
        ..Overrides::default()
    };
    assert_eq!(
        Settings::resolve(Some(&p.0), &args).unwrap().listen.port(),
        9002
    );
    let args = Overrides {
        upstream: Some("http://127.0.0.1:9".into()),
        ..Overrides::default()
    };
    assert_eq!(
        Settings::resolve(None, &args).unwrap().listen.to_string(),
        DEFAULT_LISTEN
    );
}

#[test]
fn bad_value_in_config_file_names_file_line_and_key() {
    let p = write(
        "bad",
        "upstream = \"http://127.0.0.1:9\"\n\nlisten = \"nowhere\"\n",
    );
    let err = Settings::resolve(Some(&p.0), &Overrides::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("{}:3:10: listen:", p.0.display())),
        "{msg}"
    );
}

#[test]
fn max_connections_and_client_timeout_default_and_bad_values_name_their_line() {
    let s = from_flags(with_upstream()).unwrap();
    assert_eq!(s.max_connections, DEFAULT_MAX_CONNECTIONS);
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
    let err = from_flags(Overrides {
        client_timeout: Some(-1.0),
        ..with_upstream()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("--client-timeout (or QUOTA_CLIENT_TIMEOUT): invalid number of seconds -1"),
        "{err}"
    );
}

#[test]
fn workers_default_to_the_cpus_and_zero_is_refused_with_its_line() {
    let s = from_flags(with_upstream()).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(s.workers, cpus);
    let p = write(
        "workers",
        "upstream = \"http://127.0.0.1:9\"\nworkers = 3\n",
    );
    let file = |workers| {
        let o = Overrides {
            workers,
            ..Overrides::default()
        };
        Settings::resolve(Some(&p.0), &o)
    };
    assert_eq!(file(None).unwrap().workers, 3);
    assert_eq!(file(Some(1)).unwrap().workers, 1);
    let err = file(Some(0)).unwrap_err().to_string();
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
    let msg = Settings::resolve(Some(&p.0), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(":2:1:") && msg.contains("listen_port"),
        "{msg}"
    );
}

#[test]
fn trusted_proxies_and_forward_credentials_come_from_flags_or_the_file() {
    let s = from_flags(with_upstream()).unwrap();
    assert_eq!(s.trusted_proxies, TrustedProxies::default());
    assert!(!s.forward_credentials);
    let s = from_flags(Overrides {
        trusted_proxies: Some(vec!["10.0.0.0/8".into(), "::1".into()]),
        ..with_upstream()
    })
    .unwrap();
    assert!(s.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
    assert!(s.trusted_proxies.contains("::1".parse().unwrap()));
    let err = from_flags(Overrides {
        trusted_proxies: Some(vec!["10.0.0.0/99".into()]),
        ..with_upstream()
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
    let s = from_flags(with_upstream()).unwrap();
    assert_eq!(s.tls, None);
    let s = from_flags(Overrides {
        tls_cert: Some("/etc/quota/cert.pem".into()),
        tls_key: Some("/etc/quota/key.pem".into()),
        ..with_upstream()
    })
    .unwrap();
    assert_eq!(
        s.tls,
        Some(TlsFiles {
            cert: "/etc/quota/cert.pem".into(),
            key: "/etc/quota/key.pem".into()
        })
    );
    let err = from_flags(Overrides {
        tls_cert: Some("cert.pem".into()),
        ..with_upstream()
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
    let s = Settings::resolve(
        None,
        &Overrides {
            upstream: Some("https://api.internal/base".into()),
            upstream_ca: Some("/etc/quota/ca.pem".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(s.upstream_ca, Some(PathBuf::from("/etc/quota/ca.pem")));
    let err = Settings::resolve(
        None,
        &Overrides {
            upstream: Some("http://127.0.0.1:9".into()),
            upstream_ca: Some("ca.pem".into()),
            ..Overrides::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("is for an https:// upstream"), "{err}");
}

#[test]
fn access_log_comes_from_the_flag_or_the_file_relative_to_it_and_dash_is_stdout() {
    let s = from_flags(with_upstream()).unwrap();
    assert_eq!(s.access_log, None);
    let s = from_flags(Overrides {
        access_log: Some("/var/log/quota/access.log".into()),
        ..with_upstream()
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
    let file = |access_log: Option<&str>| {
        let o = Overrides {
            access_log: access_log.map(PathBuf::from),
            ..Overrides::default()
        };
        Settings::resolve(Some(&p.0), &o)
    };
    let dir = p.0.parent().unwrap();
    assert_eq!(
        file(None).unwrap().access_log,
        Some(dir.join("logs/access.log"))
    );
    // The flag (or QUOTA_ACCESS_LOG) beats the file.
    assert_eq!(
        file(Some("-")).unwrap().access_log,
        Some(PathBuf::from("-"))
    );
    let (_, s) = from_file(
        "access-log-stdout",
        "upstream = \"http://127.0.0.1:9\"\naccess_log = \"-\"\n",
    );
    assert_eq!(s.unwrap().access_log, Some(PathBuf::from("-")));
}

#[test]
fn upstream_must_be_http_or_https() {
    assert!(values::parse_upstream("https://x").is_ok());
    assert!(values::parse_upstream("ftp://x").is_err());

    assert!(values::parse_upstream("127.0.0.1:80").is_err());
    assert!(values::parse_upstream("http://127.0.0.1:80/base").is_ok());
}

#[test]
fn upstream_is_checked_as_the_gateway_checks_it() {
    let e = values::parse_upstream("ftp://x").unwrap_err();
    assert!(e.contains("only http:// and https://"), "{e}");
    let e = values::parse_upstream("http://127.0.0.1:9/?a=1").unwrap_err();
    assert!(e.contains("no query"), "{e}");
    let (p, s) = from_file("upstream-bad", "upstream = \"127.0.0.1:9\"\n");
    let err = s.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:1:12: upstream: upstream URL", p.0.display())),
        "{err}"
    );
    assert!(err.contains("no scheme"), "{err}");
}

#[test]
fn parsed_text_takes_relative_paths_from_its_folder() {
    let src = "upstream = \"http://127.0.0.1:9\"\npolicy = \"p.toml\"\ndata_dir = \"/var/q\"\n";
    let s = Settings::parse(Path::new("etc/quota/quota.toml"), src).unwrap();
    assert_eq!(s.policy.as_deref(), Some(Path::new("etc/quota/p.toml")));
    assert_eq!(s.data_dir(), Path::new("/var/q"));
    let s = Settings::parse(Path::new("quota.toml"), "upstream = \"http://h\"\n").unwrap();
    assert_eq!(s.data_dir(), Path::new(DEFAULT_DATA_DIR));
    let err = Settings::parse(Path::new("q.toml"), "shadow = \"maybe\"\n").unwrap_err();
    assert!(err.to_string().starts_with("q.toml:1:10: "), "{err}");
}

#[test]
fn demo_mode_needs_no_upstream_and_nothing_else_does_without_one() {
    let err = Settings::resolve(None, &Overrides::default()).unwrap_err();
    assert!(
        err.to_string().starts_with("no upstream: pass --upstream"),
        "{err}"
    );
    let demo = Overrides {
        demo: true,
        ..Overrides::default()
    };
    let s = Settings::resolve(None, &demo).unwrap();
    assert!(s.demo && s.upstream.is_none());
}

#[tokio::test]
async fn the_settings_build_the_gateway_they_describe() {
    let dir = write("build", "");
    let src = "upstream = \"http://127.0.0.1:9/base\"\nworkers = 1\nadmin-token = \"ops=secret-token\"\n\n\
               [[routes]]\nprefix = \"/v1/\"\nupstream = \"http://127.0.0.1:9\"\n";
    // `upstream` and `[[routes]]` both: refused before anything opens.
    assert!(Settings::parse(&dir.0, src)
        .unwrap_err()
        .to_string()
        .contains("[[routes]] both name upstreams"));
    let src = src.replacen(
        "upstream = \"http://127.0.0.1:9/base\"\n",
        "data_dir = \"data\"\n",
        1,
    );
    let settings = Settings::parse(&dir.0, &src).unwrap();
    let gateway = settings.gateway_builder().await.unwrap().build().unwrap();
    assert_eq!(gateway.routes().len(), 1);
    assert_eq!(gateway.routes()[0].prefix(), "/v1/");
    assert_eq!(gateway.store().backend(), "memory");
    #[cfg(feature = "redb")]
    assert!(dir.0.parent().unwrap().join("data").is_dir());
    // A policy file that is not there: the policy's error, naming it.
    let mut missing = settings.clone();
    missing.policy = Some(dir.0.with_file_name("missing.toml"));
    let err = missing.gateway_builder().await.err().unwrap();
    assert!(matches!(err, SettingsError::Policy(_)), "{err}");
    assert!(
        err.to_string()
            .contains("missing.toml: cannot read policy file"),
        "{err}"
    );
}

#[tokio::test]
async fn a_redis_store_setting_connects_with_its_prefix_and_hides_its_password() {
    let prefix = format!("quota-settings-test-{}:", std::process::id());
    let src = format!(
        "upstream = \"http://127.0.0.1:9\"\nstore = \"redis://127.0.0.1:6379\"\nredis-prefix = \"{prefix}\"\nworkers = 1\n"
    );
    let settings = Settings::parse(Path::new("quota.toml"), &src).unwrap();
    let gateway = settings.gateway_builder().await.unwrap().build().unwrap();
    assert_eq!(gateway.store().backend(), "redis");
    assert_eq!(gateway.accounts().backend(), "redis");
    // A URL that is not Redis's: the error names it, without the password.
    let mut bad = settings.clone();
    bad.store = StoreSetting::Redis("redis://user:hunter2@127.0.0.1:6379/x/y".into());
    let err = bad.gateway_builder().await.err().unwrap().to_string();
    assert!(
        err.starts_with("--store redis://***@127.0.0.1:6379/x/y: "),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
