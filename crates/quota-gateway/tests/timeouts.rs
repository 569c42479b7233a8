//! Whose time is it: `--client-timeout` for what the client sends (its
//! first head measured from the accept, once), `--upstream-timeout` for
//! the upstream's answer once the request has been sent.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long after `start` the gateway closes `s` (reading what it sends).
async fn closed_after(s: &mut TcpStream, start: Instant) -> Duration {
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink))
        .await
        .expect("the connection was not closed");
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_head_gets_the_client_timeout_once_from_the_accept() {
    let (_up, gw) = gateway(|b| b.client_timeout(Duration::from_secs(1))).await;
    // Silent for most of the timeout, then one byte (an HTTP/1.1 request,
    // or maybe HTTP/2's preface), then nothing: closed a timeout after the
    // accept (1 s), not a timeout after the byte (1.7 s). The bounds leave
    // room for a loaded machine on both sides.
    for first in [&b"G"[..], b"P"] {
        let start = Instant::now();
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        s.write_all(first).await.unwrap();
        let after = closed_after(&mut s, start).await;
        assert!(
            after >= Duration::from_millis(950) && after < Duration::from_millis(1500),
            "{:?}: closed after {after:?}",
            String::from_utf8_lossy(first)
        );
    }
}

/// Sends a POST to `/v1/slow` with `framing` (a `Content-Length` or
/// chunked) and `body`, in `pieces` pieces `gap` apart (the first at
/// once), then reads the
/// answer until the gateway closes: its status, and how long it took.
async fn slow_upload(
    addr: std::net::SocketAddr,
    key: &str,
    body: &[u8],
    chunked: bool,
    pieces: usize,
    gap: Duration,
) -> (u16, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "POST /v1/slow HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\nConnection: close\r\n{framing}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let size = body.len().div_ceil(pieces);
    for (i, piece) in body.chunks(size).enumerate() {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        let sent = if chunked {
            let mut c = format!("{:x}\r\n", piece.len()).into_bytes();
            c.extend_from_slice(piece);
            c.extend_from_slice(b"\r\n");
            s.write_all(&c).await
        } else {
            s.write_all(piece).await
        };
        if sent.is_err() {
            break;
        }
    }
    if chunked {
        let _ = s.write_all(b"0\r\n\r\n").await;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
        .await
        .expect("no answer in time");
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an answer: {text:?}"));
    (status, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_timeout_starts_once_the_body_is_sent_so_a_slow_upload_is_served() {
    let (up, gw) = gateway(|b| {
        b.upstream_timeout(Duration::from_secs(1))
            .client_timeout(Duration::from_secs(2))
    })
    .await;
    let (_, key) = support::Http::default().create_account(&gw).await;
    // 2.25 s of upload against a 1 s upstream timeout: read whole (64 KiB),
    // streamed (96 KiB), and streamed with no length (chunked).
    for (size, chunked) in [(64 * 1024, false), (96 * 1024, false), (96 * 1024, true)] {
        let body = vec![b'x'; size];
        let (status, took) = slow_upload(
            gw.addr,
            &key,
            &body,
            chunked,
            10,
            Duration::from_millis(250),
        )
        .await;
        assert_eq!(
            status, 200,
            "{size} bytes, chunked {chunked}, after {took:?}"
        );
    }
    let lens: Vec<usize> = up.seen().iter().map(|s| s.body_len).collect();
    assert_eq!(lens, [64 * 1024, 96 * 1024, 96 * 1024]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_a_408_after_the_client_timeout_not_a_504() {
    let (_up, gw) = gateway(|b| {
        b.upstream_timeout(Duration::from_secs(1))
            .client_timeout(Duration::from_secs(1))
    })
    .await;
    let (_, key) = support::Http::default().create_account(&gw).await;
    // The first piece, then a stall of 3 s (the rest never comes in time).
    for (size, chunked) in [(1000, false), (96 * 1024, false), (96 * 1024, true)] {
        let body = vec![b'x'; size];
        let (status, took) = slow_upload(
            gw.addr,
            &key,
            &body,
            chunked,
            2,
            Duration::from_millis(3000),
        )
        .await;
        assert_eq!(
            status, 408,
            "{size} bytes, chunked {chunked}, after {took:?}"
        );
    }
}
