//! TLS on both sides of the gateway.
//!
//! Termination: the gateway with a certificate made here (`rcgen`, signed
//! by a test CA), talked to by a Rust client (tokio-rustls and hyper's
//! client connections) over HTTP/1.1 and HTTP/2 as ALPN chooses, and by
//! curl (`--cacert`); the certificate reloaded while a connection made with
//! the old one keeps working.
//!
//! An `https://` upstream started here (hyper over tokio-rustls): trusted
//! through `upstream_ca` (a private CA), refused with 502 and a log line
//! saying why without it, for a name mismatch and for an expired
//! certificate; its connections kept alive, and one it closes while idle
//! noticed before it is used.

// tests may panic; the client takes rustls's *ring* provider, as the
// gateway does (deprecated in rustls 0.23.48 for lacking post-quantum
// key exchange).
#![allow(clippy::unwrap_used, clippy::expect_used, deprecated)]

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use quota_gateway::{Http1, TlsConfig, TlsError};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use support::*;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Every network wait of these tests is bounded by this.
const WITHIN: Duration = Duration::from_secs(20);

/// A test CA and the certificates it signs, as PEM files in a folder of
/// their own.
struct Pki {
    dir: TempDir,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

/// A certificate signed by a [`Pki`]'s CA: its files and its DER.
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = TempDir::new(name);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "quota test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        dir.write("ca.pem", &ca.pem());
        Pki { dir, ca, ca_key }
    }

    /// The CA certificate's file (for curl's `--cacert`).
    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for `names`, written to `TAG.crt` and `TAG.key`.
    fn leaf(&self, tag: &str, names: &[&str]) -> Leaf {
        self.leaf_with(tag, names, |_| {})
    }

    /// [`Pki::leaf`], its parameters changed by `change` first.
    fn leaf_with(
        &self,
        tag: &str,
        names: &[&str],
        change: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        change(&mut params);
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        Leaf {
            cert: self.dir.write(&format!("{tag}.crt"), &cert.pem()),
            key: self.dir.write(&format!("{tag}.key"), &key.serialize_pem()),
            der: cert.der().clone(),
        }
    }

    /// A client configuration trusting this CA alone, offering `alpn`.
    fn client(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// A TLS connection to `addr` as `localhost`, offering `alpn`.
async fn connect(pki: &Pki, addr: SocketAddr, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(
        WITHIN,
        TlsConnector::from(pki.client(alpn)).connect(name, tcp),
    )
    .await
    .expect("the TLS handshake timed out")
    .expect("the TLS handshake failed")
}

/// The certificate the server presented on `tls`.
fn presented(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// An HTTP client connection over TLS, HTTP/1.1 or HTTP/2.
enum Client {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Client {
    /// HTTP/2 when ALPN chose `h2`, HTTP/1.1 otherwise.
    async fn over(tls: TlsStream<TcpStream>) -> Self {
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            Client::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Client::H1(send)
        }
    }

    /// Sends `method path` with `key`'s bearer (and the admin token for
    /// `/admin/...`), and reads the answer whole.
    async fn send(&mut self, method: Method, path: &str, key: Option<&str>) -> Answer {
        let mut b = Request::builder().method(method);
        b = match self {
            // Absolute-form: HTTP/2 needs the scheme and authority.
            Client::H2(_) => b.uri(format!("https://localhost{path}")),
            Client::H1(_) => b.uri(path).header("host", "localhost"),
        };
        if let Some(key) = key {
            b = b.header("authorization", format!("Bearer {key}"));
        }
        let req = b.body(Full::new(Bytes::new())).unwrap();
        let sent = async {
            match self {
                Client::H1(s) => s.send_request(req).await,
                Client::H2(s) => s.send_request(req).await,
            }
        };
        let res = tokio::time::timeout(WITHIN, sent)
            .await
            .expect("the request timed out")
            .expect("the request failed");
        let (parts, body) = res.into_parts();
        let body = tokio::time::timeout(WITHIN, body.collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// A new account through the admin API: its key.
    async fn create_account(&mut self) -> String {
        let a = self
            .send(Method::POST, "/admin/accounts", Some(ADMIN_TOKEN))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
        a.json()["key"].as_str().unwrap().to_owned()
    }
}

/// A gateway terminating TLS with `leaf`, on the HTTP/1.1 path `http1`
/// (the suite's own when `None`), in front of a test upstream.
async fn tls_gateway(leaf: &Leaf, http1: Option<Http1>) -> (Upstream, Gw, TlsConfig) {
    let tls = TlsConfig::from_pem_files(&leaf.cert, &leaf.key).unwrap();
    let up = Upstream::start().await;
    let config = tls.clone();
    let gw = setup(&up.url())
        .with(move |b| {
            let b = b.tls(config);
            match http1 {
                Some(h) => b.http1(h),
                None => b,
            }
        })
        .start()
        .await;
    (up, gw, tls)
}

#[tokio::test]
async fn http1_and_http2_are_chosen_by_alpn_on_both_http1_paths() {
    let pki = Pki::new("tls-alpn");
    let leaf = pki.leaf("gw", &["localhost"]);
    for http1 in [Http1::Own, Http1::Hyper] {
        let (up, gw, _tls) = tls_gateway(&leaf, Some(http1)).await;
        let mut admin = Client::over(connect(&pki, gw.addr, &[b"http/1.1"]).await).await;
        let key = admin.create_account().await;
        let offers: [&[&[u8]]; 4] = [&[b"http/1.1"], &[b"h2"], &[b"h2", b"http/1.1"], &[]];
        for alpn in offers {
            let tls = connect(&pki, gw.addr, alpn).await;
            let chose = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let expected: Option<&[u8]> = match alpn.first() {
                Some(p) => Some(p),
                None => None,
            };
            assert_eq!(chose.as_deref(), expected, "{http1}: offered {alpn:?}");
            let mut client = Client::over(tls).await;
            // Twice on one connection: kept alive on every path.
            for _ in 0..2 {
                let a = client.send(Method::GET, "/v1/slow?x=1", Some(&key)).await;
                assert_eq!(a.status, StatusCode::OK, "{http1}, {alpn:?}: {a:?}");
                assert_eq!(a.json()["path"], "/v1/slow", "{http1}, {alpn:?}");
                assert!(a.header("x-ratelimit-remaining").is_some(), "{a:?}");
            }
            // The gateway's own routes, on the path hyper serves.
            let a = client.send(Method::GET, "/healthz", None).await;
            assert_eq!(a.status, StatusCode::OK, "{http1}, {alpn:?}: {a:?}");
        }
        let seen = up.seen();
        assert_eq!(seen.len(), 8, "{http1}");
        // The upstream learns that the client came over TLS.
        for s in &seen {
            assert_eq!(s.headers["x-forwarded-proto"], "https", "{http1}");
        }
    }
}

#[tokio::test]
async fn the_seed_policy_refuses_the_fourth_request_with_429_over_tls() {
    let pki = Pki::new("tls-429");
    let leaf = pki.leaf("gw", &["localhost"]);
    let tls = TlsConfig::from_pem_files(&leaf.cert, &leaf.key).unwrap();
    let up = Upstream::start().await;
    let gw = setup(&up.url())
        .seed_policy()
        .with(move |b| b.tls(tls))
        .start()
        .await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut client = Client::over(connect(&pki, gw.addr, &[alpn]).await).await;
        let key = client.create_account().await;
        // The four requests in one minute.
        early_in_window(60_000, Duration::from_secs(10)).await;
        for _ in 0..3 {
            let a = client.send(Method::POST, "/v1/txt2img", Some(&key)).await;
            assert_eq!(a.status, StatusCode::OK, "{a:?}");
        }
        let a = client.send(Method::POST, "/v1/txt2img", Some(&key)).await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{a:?}");
        assert_eq!(a.json()["message"], "Too Many Attempts.");
        assert_eq!(a.header("x-ratelimit-remaining"), Some("0"));
        assert!(a.header("retry-after").is_some(), "{a:?}");
    }
}

#[tokio::test]
async fn a_reloaded_certificate_is_served_to_new_connections_while_old_ones_keep_theirs() {
    let pki = Pki::new("tls-reload");
    let first = pki.leaf("gw", &["localhost"]);
    let (_up, gw, tls) = tls_gateway(&first, None).await;
    let mut clients = Vec::new();
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let old = connect(&pki, gw.addr, &[alpn]).await;
        assert_eq!(presented(&old), first.der);
        let mut old = Client::over(old).await;
        let key = old.create_account().await;
        let a = old.send(Method::GET, "/v1/slow", Some(&key)).await;
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
        clients.push((old, key));
    }

    // New files in place of the old ones, then the reload.
    let second = pki.leaf("next", &["localhost"]);
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    tls.reload().unwrap();

    for alpn in [&b"http/1.1"[..], b"h2"] {
        let new = connect(&pki, gw.addr, &[alpn]).await;
        assert_eq!(presented(&new), second.der, "{alpn:?}");
        assert_ne!(second.der, first.der);
        let mut new = Client::over(new).await;
        let a = new.send(Method::GET, "/healthz", None).await;
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
    }
    // The connections made before the reload go on.
    for (old, key) in &mut clients {
        let a = old.send(Method::GET, "/v1/slow", Some(key)).await;
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
    }

    // A bad file is refused and the certificate in force stays.
    std::fs::write(&first.key, "not a key").unwrap();
    let e = tls.reload().unwrap_err();
    assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
    let again = connect(&pki, gw.addr, &[b"http/1.1"]).await;
    assert_eq!(presented(&again), second.der);
}

#[tokio::test]
async fn a_client_that_does_not_finish_its_handshake_is_closed_at_the_client_timeout() {
    use tokio::io::AsyncReadExt;
    let pki = Pki::new("tls-slow");
    let leaf = pki.leaf("gw", &["localhost"]);
    let tls = TlsConfig::from_pem_files(&leaf.cert, &leaf.key).unwrap();
    let up = Upstream::start().await;
    let gw = setup(&up.url())
        .with(move |b| b.tls(tls).client_timeout(Duration::from_millis(500)))
        .start()
        .await;
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WITHIN, tcp.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn bad_certificate_or_key_files_are_errors_naming_the_file() {
    let pki = Pki::new("tls-bad");
    let leaf = pki.leaf("gw", &["localhost"]);
    let missing = pki.dir.path().join("missing.crt");
    let garbage = pki.dir.write("garbage.key", "hello\n");
    let e = TlsConfig::from_pem_files(&missing, &leaf.key).unwrap_err();
    assert!(matches!(e, TlsError::Read { .. }), "{e}");
    assert!(e.to_string().contains("missing.crt"), "{e}");
    let e = TlsConfig::from_pem_files(&leaf.cert, &garbage).unwrap_err();
    assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
    assert!(e.to_string().contains("garbage.key"), "{e}");
    let e = TlsConfig::from_pem_files(&leaf.key, &leaf.key).unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
    assert!(e.to_string().contains("gw.key: no certificate"), "{e}");
}

/// curl with `args` (bounded by its `--max-time`): whether it succeeded,
/// and what it printed.
async fn curl(args: Vec<String>) -> (bool, String) {
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "10"])
            .args(&args)
            .output()
            .expect("curl cannot run (is it installed?)")
    });
    let out = tokio::time::timeout(WITHIN, run)
        .await
        .expect("curl did not finish in time")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn curl_with_cacert_speaks_http1_and_http2_to_the_gateway() {
    let pki = Pki::new("tls-curl");
    let leaf = pki.leaf("gw", &["localhost"]);
    let (_up, gw, _tls) = tls_gateway(&leaf, None).await;
    let port = gw.addr.port();
    let url = format!("https://localhost:{port}/healthz");
    let base = |version: &str| {
        vec![
            "--cacert".to_owned(),
            pki.ca_file().display().to_string(),
            "--resolve".to_owned(),
            format!("localhost:{port}:127.0.0.1"),
            version.to_owned(),
            "--write-out".to_owned(),
            "\n%{http_code} %{http_version}".to_owned(),
            url.clone(),
        ]
    };
    let (ok, out) = curl(base("--http1.1")).await;
    assert!(ok, "{out}");
    assert!(out.ends_with("\n200 1.1"), "{out}");
    assert!(out.contains("\"status\""), "{out}");
    let (ok, out) = curl(base("--http2")).await;
    assert!(ok, "{out}");
    assert!(out.ends_with("\n200 2"), "{out}");
    // Without the CA, curl refuses the certificate.
    let mut untrusted = base("--http1.1");
    untrusted.drain(..2);
    let (ok, out) = curl(untrusted).await;
    assert!(!ok, "{out}");
    assert!(out.contains("certificate"), "{out}");
}

/// An HTTPS upstream: hyper's HTTP/1.1 server over tokio-rustls with
/// `leaf`, answering `200 {"path": ...}`; it counts the connections it
/// accepted and notes each request's path and `X-Forwarded-Proto`.
struct TlsUpstream {
    addr: SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<(String, usize)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsUpstream {
    /// Serves with `leaf`; with `idle_close`, each connection is closed
    /// (gracefully: a TLS close notification, then FIN) once it has served
    /// a request and been idle that long.
    async fn start(leaf: &Leaf, idle_close: Option<Duration>) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::PrivateKeyDer;
        use std::sync::atomic::Ordering;
        let key = PrivateKeyDer::from_pem_file(&leaf.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der.clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (count, log) = (Arc::clone(&accepted), Arc::clone(&seen));
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, log) = (acceptor.clone(), Arc::clone(&log));
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    // A refused handshake (the gateway does not trust this
                    // certificate) ends here.
                    let Ok(Ok(tls)) = tokio::time::timeout(WITHIN, acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let served = Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let mark = Arc::clone(&served);
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let log = Arc::clone(&log);
                            mark.store(true, Ordering::SeqCst);
                            async move {
                                let proto = req
                                    .headers()
                                    .get("x-forwarded-proto")
                                    .map(|v| v.to_str().unwrap().to_owned())
                                    .unwrap_or_default();
                                let path = req.uri().path().to_owned();
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                log.lock().unwrap().push((format!("{path} {proto}"), n));
                                let text =
                                    format!(r#"{{"path":"{path}","body_len":{}}}"#, body.len());
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                    Bytes::from(text),
                                )))
                            }
                        });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc);
                    let mut conn = std::pin::pin!(conn);
                    let Some(idle) = idle_close else {
                        let _ = conn.await;
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = conn.as_mut() => return,
                            () = tokio::time::sleep(idle) => {
                                if served.load(Ordering::SeqCst) {
                                    conn.as_mut().graceful_shutdown();
                                    let _ = tokio::time::timeout(WITHIN, conn.as_mut()).await;
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        TlsUpstream {
            addr,
            accepted,
            seen,
            task,
        }
    }

    /// `https://HOST:PORT`.
    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.addr.port())
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<(String, usize)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A gateway with one worker in front of `upstream` (a URL), trusting
/// `ca` (a PEM file) besides the Web PKI's roots when given.
async fn gateway_to_https(upstream: &str, ca: Option<PathBuf>) -> Gw {
    setup(upstream)
        .with(move |b| {
            let b = b.workers(1);
            match ca {
                Some(ca) => b.upstream_ca(ca),
                None => b,
            }
        })
        .start()
        .await
}

#[tokio::test]
async fn an_https_upstream_signed_by_a_private_ca_is_trusted_with_its_ca_file() {
    let pki = Pki::new("tls-up-ca");
    let leaf = pki.leaf("up", &["localhost"]);
    let up = TlsUpstream::start(&leaf, None).await;
    let gw = gateway_to_https(
        &format!("{}/base", up.url("localhost")),
        Some(pki.ca_file()),
    )
    .await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    // No body (the own path's request), a small body (sent whole), a large
    // one (streamed): on one kept-alive upstream connection.
    let a = http.get(&gw.url("/v1/slow"), Some(&key)).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}\n{}", gw.logs());
    assert_eq!(a.json()["path"], "/base/v1/slow");
    let auth = format!("Bearer {key}");
    let small = "x".repeat(1000);
    let a = http
        .send(
            Method::POST,
            &gw.url("/v1/slow"),
            &[("authorization", &auth)],
            &small,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.json()["body_len"], 1000);
    let large = "y".repeat(300 * 1024);
    let a = http
        .send(
            Method::POST,
            &gw.url("/v1/slow"),
            &[("authorization", &auth)],
            &large,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.json()["body_len"], 300 * 1024);
    let a = http.get(&gw.url("/v1/slow"), Some(&key)).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let seen = up.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    // The client came over plain HTTP.
    assert!(
        seen.iter().all(|(s, _)| s == "/base/v1/slow http"),
        "{seen:?}"
    );
    assert_eq!(up.accepted(), 1, "one kept-alive connection: {seen:?}");
}

#[tokio::test]
async fn an_upstream_certificate_of_an_unknown_issuer_is_a_502_and_a_log_line_saying_so() {
    let pki = Pki::new("tls-up-unknown");
    let leaf = pki.leaf("up", &["localhost"]);
    let up = TlsUpstream::start(&leaf, None).await;
    let gw = gateway_to_https(&up.url("localhost"), None).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    for method in [Method::GET, Method::POST] {
        let a = http
            .send(
                method,
                &gw.url("/v1/slow"),
                &[("authorization", &format!("Bearer {key}"))],
                "",
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{a:?}");
        let id = a.header("x-request-id").unwrap().to_owned();
        gw.wait_log(&id, WITHIN).await;
        let logs = gw.logs();
        let line = logs.lines().find(|l| l.contains(&id)).unwrap();
        assert!(line.contains("upstream unreachable"), "{line}");
        assert!(
            line.contains("TLS handshake with the upstream failed: unknown issuer"),
            "{line}"
        );
    }
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn an_upstream_certificate_for_another_name_or_expired_is_a_502_saying_why() {
    let pki = Pki::new("tls-up-name");
    // Valid for localhost, reached as 127.0.0.1.
    let leaf = pki.leaf("up", &["localhost"]);
    let up = TlsUpstream::start(&leaf, None).await;
    let gw = gateway_to_https(&up.url("127.0.0.1"), Some(pki.ca_file())).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let a = http.get(&gw.url("/v1/slow"), Some(&key)).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{a:?}");
    gw.wait_log("name mismatch", WITHIN).await;
    drop(gw);

    let expired = pki.leaf_with("old", &["localhost"], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let old = TlsUpstream::start(&expired, None).await;
    let gw = gateway_to_https(&old.url("localhost"), Some(pki.ca_file())).await;
    let (_, key) = http.create_account(&gw).await;
    let a = http.get(&gw.url("/v1/slow"), Some(&key)).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{a:?}");
    gw.wait_log("expired certificate", WITHIN).await;
    assert!(up.seen().is_empty() && old.seen().is_empty());
}

#[tokio::test]
async fn an_idle_upstream_tls_connection_the_upstream_closed_is_not_used_again() {
    let pki = Pki::new("tls-up-idle");
    let leaf = pki.leaf("up", &["localhost"]);
    let up = TlsUpstream::start(&leaf, Some(Duration::from_millis(100))).await;
    let gw = gateway_to_https(&up.url("localhost"), Some(pki.ca_file())).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    for round in 1..=3 {
        // A POST is never sent twice: on a connection found closed only
        // after it was written, it would be a 502.
        let a = http.post(&gw.url("/v1/slow"), Some(&key)).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "round {round}: {a:?}\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(up.accepted(), 3);
}

#[test]
fn an_upstream_ca_that_cannot_be_read_or_an_http_upstream_with_one_is_a_build_error() {
    use quota_core::policy::Policy;
    use quota_gateway::{Error, Gateway};
    let pki = Pki::new("tls-up-build");
    let leaf = pki.leaf("up", &["localhost"]);
    let build = |url: &str, ca: &std::path::Path| {
        Gateway::builder(Policy::seed())
            .upstream(url.parse().unwrap())
            .upstream_ca(ca)
            .build()
    };
    let missing = pki.dir.path().join("missing-ca.pem");
    let e = build("https://localhost", &missing).unwrap_err();
    assert!(matches!(e, Error::Tls(TlsError::Read { .. })), "{e}");
    assert!(e.to_string().contains("missing-ca.pem: cannot read"), "{e}");
    let e = build("https://localhost", &leaf.key).unwrap_err();
    assert!(
        matches!(e, Error::Tls(TlsError::NoCertificate { .. })),
        "{e}"
    );
    let e = build("http://localhost", &pki.ca_file()).unwrap_err();
    assert!(matches!(e, Error::Upstream { .. }), "{e}");
}
