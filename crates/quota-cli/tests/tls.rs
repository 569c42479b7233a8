//! `quota serve --tls-cert FILE --tls-key FILE`: the binary terminates TLS
//! (curl `--cacert` over HTTP/1.1 and HTTP/2), serves a new certificate
//! when its files change and on SIGHUP, refuses a bad one while the one in
//! force stays, and will not start with files it cannot use.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// A CA (its certificate in `NAME-ca.pem`) and a certificate for
/// `localhost` it signed: `(certificate PEM, key PEM)`.
fn signed(dir: &TempDir, name: &str) -> (String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("quota test CA {name}"));
    let ca = params.self_signed(&ca_key).unwrap();
    dir.write(&format!("{name}-ca.pem"), &ca.pem());
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

/// curl `https://localhost:PORT/healthz` trusting `ca` alone, with
/// `version` (`--http1.1`, `--http2`): `Ok("CODE VERSION")` or curl's error.
fn curl(gw: &Quota, ca: &Path, version: &str) -> Result<String, String> {
    let port = gw.addr.port();
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "10",
            "--output",
            "/dev/null",
        ])
        .args(["--write-out", "%{http_code} %{http_version}", version])
        .arg("--cacert")
        .arg(ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}/healthz"))
        .output()
        .expect("curl cannot run (is it installed?)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_served_and_reloaded_on_change_and_on_sighup() {
    let certs = TempDir::new("tls-certs");
    let (cert, key) = signed(&certs, "first");
    let cert_file = certs.write("cert.pem", &cert);
    let key_file = certs.write("key.pem", &key);
    let first_ca = certs.path().join("first-ca.pem");
    let (_up, gw, _dir) = gateway(&[
        "--tls-cert",
        cert_file.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ])
    .await;
    // The harness hands the address over before it keeps the line.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !gw.stdout().contains("quota: listening on https://") {
        assert!(std::time::Instant::now() < deadline, "{}", gw.stdout());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(curl(&gw, &first_ca, "--http1.1"), Ok("200 1.1".into()));
    assert_eq!(curl(&gw, &first_ca, "--http2"), Ok("200 2".into()));

    // New files: served to new connections once reloaded.
    let (cert, key) = signed(&certs, "second");
    let second_ca = certs.path().join("second-ca.pem");
    certs.write("key.pem", &key);
    certs.write("cert.pem", &cert);
    gw.wait_log("TLS certificate reloaded", Duration::from_secs(10));
    assert_eq!(curl(&gw, &second_ca, "--http1.1"), Ok("200 1.1".into()));
    let refused = curl(&gw, &first_ca, "--http1.1").unwrap_err();
    assert!(refused.contains("certificate"), "{refused}");

    // A bad key is refused, naming the file; the certificate stays.
    certs.write("key.pem", "not a key\n");
    gw.wait_log("TLS certificate reload refused", Duration::from_secs(10));
    let log = gw.stderr();
    assert!(
        log.contains(&format!("{}: no private key", key_file.display())),
        "{log}"
    );
    assert_eq!(curl(&gw, &second_ca, "--http2"), Ok("200 2".into()));

    // Mended, and SIGHUP reloads it too.
    certs.write("key.pem", &key);
    gw.wait_log_count("TLS certificate reloaded", 2, Duration::from_secs(10));
    gw.hangup();
    gw.wait_log_count("TLS certificate reloaded", 3, Duration::from_secs(10));
    let log = gw.stderr();
    let line = log
        .lines()
        .rfind(|l| l.contains("TLS certificate reloaded"))
        .unwrap();
    assert!(line.contains("trigger=Signal"), "{line}");
    assert_eq!(curl(&gw, &second_ca, "--http1.1"), Ok("200 1.1".into()));
}

/// `quota serve ARGS` on a free port, expected to exit at once: its exit
/// code and stderr.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let dir = TempDir::new("tls-refused");
    let data = dir.path().join("data");
    let out = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:9",
        ])
        .arg("--data-dir")
        .arg(&data)
        .args(args)
        .env_remove("QUOTA_TLS_CERT")
        .env_remove("QUOTA_TLS_KEY")
        .env_remove("QUOTA_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn files_it_cannot_use_stop_it_before_it_listens() {
    let certs = TempDir::new("tls-bad");
    let (cert, key) = signed(&certs, "ca");
    let cert_file = certs.write("cert.pem", &cert);
    let key_file = certs.write("key.pem", &key);
    let missing: PathBuf = certs.path().join("missing.pem");
    let (code, err) = refused(&["--tls-cert", cert_file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("needs --tls-key"), "{err}");
    let (code, err) = refused(&[
        "--tls-cert",
        missing.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: cannot read the file", missing.display())),
        "{err}"
    );
    let (code, err) = refused(&[
        "--tls-cert",
        key_file.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: no certificate", key_file.display())),
        "{err}"
    );
}
