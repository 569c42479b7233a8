//! A GET or HEAD with a body of unknown length (chunked over HTTP/1.1,
//! DATA frames without a length over HTTP/2) is forwarded with its body,
//! never silently emptied.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{gateway, raw, status_of, Http};

/// One piece of body, with no length announced (HTTP/2 sends it as DATA
/// without `content-length`).
struct Unsized(Option<Bytes>);

impl Body for Unsized {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_or_head_with_a_chunked_body_is_forwarded_with_it() {
    let (up, gw) = gateway(|b| b).await;
    let (_, key) = Http::default().create_account(&gw).await;
    for method in ["GET", "HEAD", "DELETE"] {
        let req = format!(
            "{method} /v1/slow HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let answer = raw(gw.addr, req.as_bytes()).await;
        assert_eq!(status_of(&answer), 200, "{method}: {answer}");
    }
    let seen: Vec<(String, usize)> = up
        .seen()
        .iter()
        .map(|s| (s.method.to_string(), s.body_len))
        .collect();
    assert_eq!(
        seen,
        [("GET".into(), 5), ("HEAD".into(), 5), ("DELETE".into(), 5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_or_head_over_http2_with_data_but_no_length_is_forwarded_with_it() {
    let (up, gw) = gateway(|b| b).await;
    let (_, key) = Http::default().create_account(&gw).await;
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Unsized>();
    for method in [Method::GET, Method::HEAD] {
        let req = Request::builder()
            .method(method.clone())
            .uri(gw.url("/v1/slow"))
            .header("x-api-key", &key)
            .body(Unsized(Some(Bytes::from_static(b"hello"))))
            .unwrap();
        let res = tokio::time::timeout(Duration::from_secs(20), h2.request(req))
            .await
            .expect("HTTP/2 request timed out")
            .expect("HTTP/2 request failed");
        assert_eq!(res.status(), 200, "{method}");
        let _ = res.into_body().collect().await;
    }
    let seen: Vec<(String, usize)> = up
        .seen()
        .iter()
        .map(|s| (s.method.to_string(), s.body_len))
        .collect();
    assert_eq!(seen, [("GET".into(), 5), ("HEAD".into(), 5)]);
}
