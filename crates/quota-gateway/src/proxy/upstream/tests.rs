//! The pool against real upstreams on loopback: a hyper server, and raw
//! TCP servers that write exactly the bytes a test needs.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use std::borrow::Cow;

use http::header::HeaderValue;

/// A hyper upstream on loopback that answers with what it received:
/// `METHOD PATH len=N te=chunked|- cl=N|-`; a megabyte for `/big`, and the
/// request's headers (but its framing ones), sorted, for `/headers`; counts
/// its connections.
async fn echo_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let (parts, body) = req.into_parts();
                    let header = |n: &str| {
                        parts
                            .headers
                            .get(n)
                            .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned())
                    };
                    let (te, cl) = (header("transfer-encoding"), header("content-length"));
                    let body = body.collect().await.unwrap().to_bytes();
                    let text = if parts.uri.path() == "/big" {
                        "x".repeat(1 << 20)
                    } else if parts.uri.path() == "/headers" {
                        let mut lines: Vec<String> = parts
                            .headers
                            .iter()
                            .filter(|(n, _)| *n != "content-length" && *n != "transfer-encoding")
                            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
                            .collect();
                        lines.sort();
                        lines.join("\n")
                    } else {
                        format!(
                            "{} {} len={} te={te} cl={cl}",
                            parts.method,
                            parts.uri,
                            body.len()
                        )
                    };
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, accepted)
}

/// A raw TCP upstream: `serve(stream, n)` handles its `n`th connection (from 0).
async fn raw_upstream<F, Fut>(serve: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(TcpStream, usize) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, n));
        }
    });
    (addr, accepted)
}

/// Reads one request head (requests in these tests have no body); `None`
/// when the connection closes first.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8(head).unwrap())
}

/// Writes `pieces` apart in time, so that the reader sees them in
/// separate reads.
async fn write_in_pieces(stream: &mut TcpStream, pieces: &[&[u8]]) {
    for p in pieces {
        stream.write_all(p).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn request(method: Method, path: &str, addr: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr)
        .body(body)
        .unwrap()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn get(addr: &str) -> Request<Body> {
    request(Method::GET, "/x", addr, empty())
}

async fn text(res: Response<Body>) -> Result<String, BoxError> {
    let bytes = res.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(bytes.to_vec()).unwrap())
}

/// Sends `req` with no header edits.
async fn send(pool: &Arc<Pool>, req: Request<Body>) -> Result<Response<Body>, ForwardError> {
    pool.send(req, &HeaderEdits::default()).await
}

/// The body of a `GET /x`, read to its end.
async fn get_text(pool: &Arc<Pool>, addr: &str) -> String {
    text(send(pool, get(addr)).await.unwrap()).await.unwrap()
}

fn pool(addr: &str) -> Arc<Pool> {
    Pool::new(
        addr.to_owned(),
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
}

/// Runs `f` on a runtime, failing the test after 10 s.
fn run<F: Future<Output = ()>>(f: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("test timed out");
    });
}

#[test]
fn a_connection_read_to_the_end_is_reused() {
    run(async {
        let (addr, accepted) = echo_upstream().await;
        let pool = pool(&addr);
        for _ in 0..3 {
            assert_eq!(get_text(&pool, &addr).await, "GET /x len=0 te=- cl=-");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_body_dropped_unread_does_not_give_its_connection_back() {
    run(async {
        let (addr, accepted) = echo_upstream().await;
        let pool = pool(&addr);
        drop(
            send(&pool, request(Method::GET, "/big", &addr, empty()))
                .await
                .unwrap(),
        );
        let res = send(&pool, request(Method::GET, "/big", &addr, empty()))
            .await
            .unwrap();
        assert_eq!(text(res).await.unwrap().len(), 1 << 20);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // Read to its end, the big body's connection is reused.
        assert_eq!(get_text(&pool, &addr).await, "GET /x len=0 te=- cl=-");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn an_upstream_nobody_listens_on_is_a_connect_error() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        assert!(matches!(
            send(&pool(&addr), get(&addr)).await,
            Err(ForwardError::Connect(_))
        ));
    });
}

#[test]
fn bodies_go_whole_with_their_length_or_streamed() {
    run(async {
        let (addr, _) = echo_upstream().await;
        let pool = pool(&addr);
        let small = send(&pool, request(Method::POST, "/s", &addr, full("hello")))
            .await
            .unwrap();
        assert_eq!(text(small).await.unwrap(), "POST /s len=5 te=- cl=5");
        // A POST without a body still says so.
        let none = send(&pool, request(Method::POST, "/n", &addr, empty()))
            .await
            .unwrap();
        assert_eq!(text(none).await.unwrap(), "POST /n len=0 te=- cl=0");
        // Over the whole-body limit: streamed, with its length.
        let big = vec![b'a'; MAX_BUFFERED as usize + 1];
        let res = send(&pool, request(Method::PUT, "/b", &addr, full(big)))
            .await
            .unwrap();
        assert_eq!(
            text(res).await.unwrap(),
            format!(
                "PUT /b len={} te=- cl={}",
                MAX_BUFFERED + 1,
                MAX_BUFFERED + 1
            )
        );
        // Of unknown length: streamed, chunked.
        let body = chunks(&[Ok("ab"), Ok("cd"), Ok("e")], None);
        let res = send(&pool, request(Method::POST, "/u", &addr, body))
            .await
            .unwrap();
        assert_eq!(text(res).await.unwrap(), "POST /u len=5 te=chunked cl=-");
    });
}

/// A body of these chunks (an `Err` fails it there), of an exact length
/// when `len` is given, else of unknown length.
struct Chunks {
    items: std::collections::VecDeque<Result<&'static str, &'static str>>,
    len: Option<u64>,
}

impl HttpBody for Chunks {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let next = self.items.pop_front().map(|item| match item {
            Ok(s) => Ok(http_body::Frame::data(Bytes::from_static(s.as_bytes()))),
            Err(e) => Err(e.into()),
        });
        std::task::Poll::Ready(next)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.len.map_or_else(
            http_body::SizeHint::default,
            http_body::SizeHint::with_exact,
        )
    }
}

fn chunks(items: &[Result<&'static str, &'static str>], len: Option<u64>) -> Body {
    Chunks {
        items: items.iter().copied().collect(),
        len,
    }
    .boxed_unsync()
}

#[test]
fn a_client_body_that_fails_or_falls_short_is_the_requests_error() {
    run(async {
        let (addr, _) = echo_upstream().await;
        let pool = pool(&addr);
        let cases = [
            chunks(&[Ok("ab"), Err("cut off")], Some(4)),
            chunks(&[Ok("abc")], Some(10)),
            chunks(&[Ok("ab"), Err("cut off")], None),
        ];
        for body in cases {
            let req = request(Method::POST, "/f", &addr, body);
            assert!(matches!(
                send(&pool, req).await,
                Err(ForwardError::RequestBody(_))
            ));
        }
    });
}

#[test]
fn an_idle_connection_the_upstream_closed_is_not_used() {
    run(async {
        let (addr, accepted) = raw_upstream(|mut s, _| async move {
            read_head(&mut s).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            // Closes at once, as an upstream with a short keep-alive does.
        })
        .await;
        let pool = pool(&addr);
        for _ in 0..3 {
            assert_eq!(get_text(&pool, &addr).await, "ok");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    });
}

/// An upstream that answers the first request on its first connection, then
/// closes that connection when the next request arrives on it, unanswered;
/// later connections answer every request.
async fn closes_the_second_request() -> (String, Arc<AtomicUsize>) {
    raw_upstream(|mut s, n| async move {
        let mut answered = 0;
        while read_head(&mut s).await.is_some() {
            if n == 0 && answered == 1 {
                return;
            }
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            answered += 1;
        }
    })
    .await
}

#[test]
fn an_idempotent_request_goes_again_when_a_kept_connection_closes_unanswered() {
    run(async {
        let (addr, accepted) = closes_the_second_request().await;
        let pool = pool(&addr);
        assert_eq!(get_text(&pool, &addr).await, "ok");
        assert_eq!(get_text(&pool, &addr).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn a_post_is_not_sent_twice() {
    run(async {
        let (addr, _) = closes_the_second_request().await;
        let pool = pool(&addr);
        assert_eq!(get_text(&pool, &addr).await, "ok");
        let post = request(Method::POST, "/p", &addr, full("x"));
        assert!(matches!(
            send(&pool, post).await,
            Err(ForwardError::Exchange(ExchangeError::NoResponse {
                written: true,
                ..
            }))
        ));
    });
}

#[test]
fn a_chunked_answer_in_pieces_is_read_and_its_connection_reused() {
    run(async {
        let (addr, accepted) = raw_upstream(|mut s, _| async move {
            while read_head(&mut s).await.is_some() {
                let pieces: [&[u8]; 5] = [
                    b"HTTP/1.1 200 OK\r\nTransfer-",
                    b"Encoding: chunked\r\n\r\n5\r\nhel",
                    b"lo\r\n6;x=y\r\n world\r\n",
                    b"0\r\nx-t: 1\r\n",
                    b"\r\n",
                ];
                write_in_pieces(&mut s, &pieces).await;
            }
        })
        .await;
        let pool = pool(&addr);
        for _ in 0..2 {
            assert_eq!(get_text(&pool, &addr).await, "hello world");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_close_delimited_answer_runs_to_the_close() {
    run(async {
        let (addr, accepted) = raw_upstream(|mut s, _| async move {
            read_head(&mut s).await.unwrap();
            write_in_pieces(&mut s, &[b"HTTP/1.1 200 OK\r\n\r\npart one, ", b"part two"]).await;
        })
        .await;
        let pool = pool(&addr);
        for _ in 0..2 {
            assert_eq!(get_text(&pool, &addr).await, "part one, part two");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn a_body_cut_short_is_an_error_and_a_bad_head_a_502_cause() {
    run(async {
        let (addr, _) = raw_upstream(|mut s, n| async move {
            read_head(&mut s).await.unwrap();
            let answer: &[u8] = match n {
                0 => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
                1 => b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                _ => b"NOT HTTP AT ALL\r\n\r\n",
            };
            s.write_all(answer).await.unwrap();
        })
        .await;
        let pool = pool(&addr);
        let res = send(&pool, get(&addr)).await.unwrap();
        let err = text(res).await.unwrap_err();
        assert!(err.to_string().contains("closed before the end"), "{err}");
        for _ in 0..2 {
            assert!(matches!(
                send(&pool, get(&addr)).await,
                Err(ForwardError::Exchange(ExchangeError::Wire(_)))
            ));
        }
    });
}

#[test]
fn bytes_beyond_the_answer_retire_the_connection_and_head_answers_have_no_body() {
    run(async {
        let (addr, accepted) = raw_upstream(|mut s, n| async move {
            while let Some(head) = read_head(&mut s).await {
                if n == 0 {
                    // One answer too many: the connection cannot be trusted.
                    s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
                    )
                    .await
                    .unwrap();
                } else if head.starts_with("HEAD ") {
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
                        .await
                        .unwrap();
                } else {
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await
                        .unwrap();
                }
            }
        })
        .await;
        let pool = pool(&addr);
        assert_eq!(get_text(&pool, &addr).await, "ok");
        let head = send(&pool, request(Method::HEAD, "/h", &addr, empty()))
            .await
            .unwrap();
        assert_eq!(head.headers()["content-length"], "1234");
        assert_eq!(text(head).await.unwrap(), "");
        assert_eq!(get_text(&pool, &addr).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn headers_are_edited_alike_whether_the_body_is_sent_whole_or_streamed() {
    run(async {
        let (addr, _) = echo_upstream().await;
        let pool = pool(&addr);
        let edits = || {
            let mut e = HeaderEdits::default();
            e.set.push(("host", Cow::Borrowed(&b"upstream:80"[..])));
            e.set.push(("x-set", Cow::Borrowed(&b"by gateway"[..])));
            e.dropped.push("x-dropped");
            e
        };
        let client = |body: Body| {
            let mut req = request(Method::POST, "/headers", &addr, body);
            let h = req.headers_mut();
            h.insert(
                "connection",
                HeaderValue::from_static("keep-alive, X-Named"),
            );
            h.insert("x-named", HeaderValue::from_static("hop"));
            h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            h.insert("te", HeaderValue::from_static("trailers"));
            h.insert("x-set", HeaderValue::from_static("by client"));
            h.insert("x-dropped", HeaderValue::from_static("1"));
            h.append("x-kept", HeaderValue::from_static("1"));
            h.append("x-kept", HeaderValue::from_static("2"));
            req
        };
        let whole = pool.send(client(full("ab")), &edits()).await.unwrap();
        let streamed = pool
            .send(client(chunks(&[Ok("a"), Ok("b")], None)), &edits())
            .await
            .unwrap();
        let (whole, streamed) = (text(whole).await.unwrap(), text(streamed).await.unwrap());
        assert_eq!(
            whole,
            "host: upstream:80\nx-kept: 1\nx-kept: 2\nx-set: by gateway"
        );
        assert_eq!(whole, streamed);
    });
}

#[test]
fn a_streamed_body_goes_on_a_kept_connection_which_is_reused() {
    run(async {
        let (addr, accepted) = echo_upstream().await;
        let pool = pool(&addr);
        for _ in 0..2 {
            let big = vec![b'a'; MAX_BUFFERED as usize + 1];
            let res = send(&pool, request(Method::PUT, "/b", &addr, full(big)))
                .await
                .unwrap();
            assert!(text(res).await.unwrap().starts_with("PUT /b len=65537"));
            let body = chunks(&[Ok("ab"), Ok("cd")], None);
            let res = send(&pool, request(Method::POST, "/u", &addr, body))
                .await
                .unwrap();
            assert_eq!(text(res).await.unwrap(), "POST /u len=4 te=chunked cl=-");
        }
        assert_eq!(get_text(&pool, &addr).await, "GET /x len=0 te=- cl=-");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    });
}

/// A body whose first piece comes at once and whose rest never does.
struct Endless(bool);

impl HttpBody for Endless {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        if std::mem::replace(&mut self.0, true) {
            return std::task::Poll::Pending;
        }
        let piece = Bytes::from_static(b"the start of an upload");
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
    }
}

#[test]
fn an_early_answer_is_taken_before_the_body_ends_and_retires_its_connection() {
    run(async {
        let (addr, accepted) = raw_upstream(|mut s, _| async move {
            while let Some(head) = read_head(&mut s).await {
                let answer: &[u8] = if head.starts_with("POST ") {
                    b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\n\r\nbig!"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                };
                s.write_all(answer).await.unwrap();
            }
        })
        .await;
        let pool = pool(&addr);
        let upload = request(Method::POST, "/up", &addr, Endless(false).boxed_unsync());
        let res = send(&pool, upload).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(text(res).await.unwrap(), "big!");
        // The upload's connection is in the middle of a request: not reused.
        assert_eq!(get_text(&pool, &addr).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn the_upstream_timeout_of_a_streamed_body_starts_once_it_is_sent() {
    run(async {
        // Answers once the whole chunked body has arrived, never before.
        let (addr, _) = raw_upstream(|mut s, _| async move {
            read_head(&mut s).await.unwrap();
            let mut seen = Vec::new();
            let mut byte = [0u8; 1];
            while !seen.ends_with(b"0\r\n\r\n") {
                if s.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                seen.push(byte[0]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
        })
        .await;
        let pool = Pool::new(
            addr.clone(),
            Duration::from_millis(200),
            Duration::from_secs(5),
        );
        // A body that takes longer than the upstream timeout to send.
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        tokio::spawn(async move {
            for piece in ["a", "b", "c"] {
                tokio::time::sleep(Duration::from_millis(150)).await;
                tx.send(Bytes::from_static(piece.as_bytes())).await.unwrap();
            }
        });
        let body = Piecewise(rx).boxed_unsync();
        let res = send(&pool, request(Method::POST, "/slow", &addr, body))
            .await
            .unwrap();
        assert_eq!(text(res).await.unwrap(), "ok");
        // The same upload to an upstream that never answers: a timeout.
        let (addr, _) = raw_upstream(|mut s, _| async move {
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
        })
        .await;
        let pool = Pool::new(
            addr.clone(),
            Duration::from_millis(200),
            Duration::from_secs(5),
        );
        let body = chunks(&[Ok("a")], None);
        let start = tokio::time::Instant::now();
        let res = send(&pool, request(Method::POST, "/slow", &addr, body)).await;
        assert!(matches!(res, Err(ForwardError::Timeout)));
        assert!(start.elapsed() >= Duration::from_millis(200));
    });
}

/// A body whose pieces come from a channel (ends when it closes).
struct Piecewise(tokio::sync::mpsc::Receiver<Bytes>);

impl HttpBody for Piecewise {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(http_body::Frame::data(b))))
    }
}
