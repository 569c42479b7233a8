//! TLS termination: the gateway's certificate chain and private key, read
//! from PEM files, and replaced while the gateway serves.
//!
//! A [`TlsConfig`] holds a rustls server configuration (TLS 1.3 and 1.2,
//! the `ring` provider, ALPN `h2` and `http/1.1`) behind an
//! [`ArcSwap`]: every new connection takes the configuration in force when
//! it is accepted, so [`TlsConfig::reload`] changes the certificate for new
//! handshakes while connections already open keep the one they started
//! with. Clones share the configuration: keep one to reload, give another
//! to [`GatewayBuilder::tls`](crate::GatewayBuilder::tls).
//!
//! An `https://` upstream is verified against the Web PKI's roots
//! (`webpki-roots`) and, when given, a private CA
//! ([`GatewayBuilder::upstream_ca`](crate::GatewayBuilder::upstream_ca)).
//!
//! ```no_run
//! use quota_core::policy::Policy;
//! use quota_gateway::{Gateway, TlsConfig};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let tls = TlsConfig::from_pem_files("cert.pem", "key.pem")?;
//!     let gateway = Gateway::builder(Policy::seed())
//!         .upstream("http://127.0.0.1:9000".parse()?)
//!         .tls(tls.clone())
//!         .build()?;
//!     // Later, when the files have changed (new handshakes only):
//!     tls.reload()?;
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//!     gateway.serve(listener, quota_gateway::shutdown_signal()).await?;
//!     Ok(())
//! }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The protocols offered by ALPN, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate chain or key could not be loaded. Every variant names
/// the file it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file cannot be read.
    #[error("{}: cannot read the file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not well-formed PEM.
    #[error("{}: not a PEM file: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate file holds no certificate.
    #[error("{}: no certificate in the file (expected a PEM `CERTIFICATE` block)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error(
        "{}: no private key in the file (expected a PEM `PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY` block)",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// A certificate of the upstream's CA file cannot be a trust anchor.
    #[error("{}: a certificate cannot be used as a CA: {reason}", path.display())]
    BadCa {
        /// The CA file.
        path: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The certificate and key were read but cannot be used together (a
    /// key of another certificate, a key type rustls does not support, a
    /// certificate that cannot be parsed).
    #[error("{} with key {}: {reason}", cert.display(), key.display())]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
}

/// The gateway's TLS certificate and key (from PEM files), reloadable.
/// Cheap to clone; clones share the configuration in force.
#[derive(Clone)]
pub struct TlsConfig {
    inner: Arc<Inner>,
}

struct Inner {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert", &self.inner.cert)
            .field("key", &self.inner.key)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads the certificate chain (`cert`: PEM `CERTIFICATE` blocks, the
    /// server's own first) and its private key (`key`: PKCS#8, SEC1 or
    /// PKCS#1 PEM).
    ///
    /// # Errors
    /// A [`TlsError`] naming the file that cannot be read or used.
    pub fn from_pem_files(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Result<Self, TlsError> {
        let (cert, key) = (cert.into(), key.into());
        let config = load(&cert, &key)?;
        Ok(TlsConfig {
            inner: Arc::new(Inner {
                cert,
                key,
                current: ArcSwap::from_pointee(config),
            }),
        })
    }

    /// Reads both files again and, when they are good, puts them in force
    /// for every connection accepted from now on; connections already open
    /// keep the certificate they started with.
    ///
    /// # Errors
    /// A [`TlsError`] naming the file that cannot be read or used; the
    /// certificate in force then stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load(&self.inner.cert, &self.inner.key)?;
        self.inner.current.store(Arc::new(config));
        Ok(())
    }

    /// The certificate chain's file.
    pub fn cert_path(&self) -> &Path {
        &self.inner.cert
    }

    /// The private key's file.
    pub fn key_path(&self) -> &Path {
        &self.inner.key
    }

    /// An acceptor with the configuration in force now.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.inner.current.load_full())
    }
}

/// The client configuration of connections to an `https://` upstream:
/// the Web PKI's roots (Mozilla's, from `webpki-roots`) and, when given,
/// the certificates of `ca` (PEM: a private CA); ALPN `http/1.1`.
pub(crate) fn upstream_client(ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca {
        for cert in read_chain(path)? {
            roots.add(cert).map_err(|e| TlsError::BadCa {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        }
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::BadCa {
            path: ca.map(Path::to_owned).unwrap_or_default(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Why a TLS handshake with the upstream failed, in words: what was wrong
/// with its certificate (unknown issuer, name mismatch, expired, ...), or
/// what else failed.
pub(crate) fn handshake_failure(e: &std::io::Error) -> String {
    use rustls::CertificateError as C;
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return e.to_string();
    };
    let why = match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "unknown issuer: the certificate is not signed by a trusted CA (a private CA needs --upstream-ca)",
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "name mismatch: the certificate is not valid for the upstream's host"
            }
            C::Expired | C::ExpiredContext { .. } => "expired certificate",
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet",
            C::Revoked => "revoked certificate",
            _ => "invalid certificate",
        },
        _ => return tls.to_string(),
    };
    format!("{why} ({tls})")
}

/// The rustls crypto provider the gateway uses on both sides: *ring*'s.
///
/// rustls 0.23.48 deprecates it for having no post-quantum key exchange
/// (its default, aws-lc-rs, has one); it is kept because aws-lc-rs needs
/// cmake and NASM to build. Key exchange is X25519 or the NIST curves.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration from the chain in `cert` and the key in `key`.
fn load(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let chain = read_chain(cert)?;
    let private = read_key(key)?;
    let rejected = |reason: String| TlsError::Rejected {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| rejected(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| rejected(e.to_string()))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn bad_pem(path: &Path, e: &rustls_pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// The certificates of a PEM file, in order (other blocks skipped).
pub(crate) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(path, &e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// The first private key of a PEM file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_owned(),
        },
        e => bad_pem(path, &e),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;

    /// A folder of its own, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("quota-tls-unit-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn pair(dir: &Dir, tag: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (
            dir.write(&format!("{tag}.crt"), cert.pem().as_bytes()),
            dir.write(&format!("{tag}.key"), key.serialize_pem().as_bytes()),
        )
    }

    #[test]
    fn a_certificate_and_its_key_load_and_reload() {
        let dir = Dir::new("good");
        let (cert, key) = pair(&dir, "a");
        let tls = TlsConfig::from_pem_files(&cert, &key).unwrap();
        assert_eq!(tls.acceptor().config().alpn_protocols[0], b"h2");
        let before = tls.acceptor();
        let (cert_b, key_b) = pair(&dir, "b");
        std::fs::copy(cert_b, &cert).unwrap();
        std::fs::copy(key_b, &key).unwrap();
        tls.reload().unwrap();
        assert!(!Arc::ptr_eq(before.config(), tls.acceptor().config()));
    }

    #[test]
    fn every_bad_file_is_named() {
        let dir = Dir::new("bad");
        let (cert, key) = pair(&dir, "a");
        let (_, other_key) = pair(&dir, "b");
        let missing = dir.0.join("missing.pem");
        let empty = dir.write("empty.pem", b"");
        let broken = dir.write(
            "broken.pem",
            b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        );
        let msg = |c: &Path, k: &Path| TlsConfig::from_pem_files(c, k).unwrap_err().to_string();

        let m = msg(&missing, &key);
        assert!(
            m.starts_with(&format!("{}: cannot read", missing.display())),
            "{m}"
        );
        let m = msg(&empty, &key);
        assert!(
            m.starts_with(&format!("{}: no certificate", empty.display())),
            "{m}"
        );
        let m = msg(&cert, &empty);
        assert!(
            m.starts_with(&format!("{}: no private key", empty.display())),
            "{m}"
        );
        let m = msg(&broken, &key);
        assert!(
            m.starts_with(&format!("{}: not a PEM file", broken.display())),
            "{m}"
        );
        // The certificate where the key should be.
        let m = msg(&cert, &cert);
        assert!(
            m.starts_with(&format!("{}: no private key", cert.display())),
            "{m}"
        );
        // Another certificate's key.
        let m = msg(&cert, &other_key);
        assert!(
            m.starts_with(&format!(
                "{} with key {}:",
                cert.display(),
                other_key.display()
            )),
            "{m}"
        );
    }

    #[test]
    fn a_failed_reload_keeps_the_configuration_in_force() {
        let dir = Dir::new("keep");
        let (cert, key) = pair(&dir, "a");
        let tls = TlsConfig::from_pem_files(&cert, &key).unwrap();
        let before = tls.acceptor();
        std::fs::write(&key, b"").unwrap();
        assert!(matches!(tls.reload(), Err(TlsError::NoKey { .. })));
        assert!(Arc::ptr_eq(before.config(), tls.acceptor().config()));
    }
}
