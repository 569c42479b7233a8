//! Shared by the `client_*` tests: a real hyper server on 127.0.0.1:0 that
//! answers from a script and records what it received, and a real
//! hyper-util client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
#![allow(dead_code, unreachable_pub)] // each test file uses a part of the support

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// The client every test drives: hyper-util's, with a replayable body.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A server that answers the `n`th request (0-based) with `script(n, &request)`.
pub struct ScriptServer {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptServer {
    pub async fn start<F>(script: F) -> ScriptServer
    where
        F: Fn(usize, &Received) -> Response<Full<Bytes>> + Send + Sync + 'static,
    {
        let script = Arc::new(script);
        let received = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::clone(&received);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (script, log) = (Arc::clone(&script), Arc::clone(&log));
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (script, log) = (Arc::clone(&script), Arc::clone(&log));
                    async move {
                        let at = Instant::now();
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let received = Received {
                            at,
                            path: parts.uri.path().to_owned(),
                            headers: parts.headers,
                            body,
                        };
                        let n = {
                            let mut log = log.lock().unwrap();
                            log.push(received.clone());
                            log.len() - 1
                        };
                        Ok::<_, Infallible>(script(n, &received))
                    }
                });
                tokio::spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new();
                    let _ = conn.serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        ScriptServer {
            addr,
            received,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A response with `status`, `headers` and a body.
pub fn respond(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Full<Bytes>> {
    let mut res = Response::builder().status(StatusCode::from_u16(status).unwrap());
    for (name, value) in headers {
        res = res.header(*name, *value);
    }
    res.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

/// The seed's refusal: 429, JSON body, `X-RateLimit-Type` and `Retry-After`.
pub fn too_many(limit_type: &str, retry_after: &str) -> Response<Full<Bytes>> {
    respond(
        429,
        &[
            ("Content-Type", "application/json"),
            ("X-RateLimit-Type", limit_type),
            ("Retry-After", retry_after),
            ("X-RateLimit-Remaining", "0"),
        ],
        r#"{"message":"Too Many Attempts."}"#,
    )
}

pub fn ok(body: &str) -> Response<Full<Bytes>> {
    respond(200, &[], body)
}

/// The whole body of a response.
pub async fn body_of<B>(res: Response<B>) -> Bytes
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    res.into_body().collect().await.unwrap().to_bytes()
}
