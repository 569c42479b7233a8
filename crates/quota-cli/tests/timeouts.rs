//! Whose time is it: `--client-timeout` for what the client sends (its
//! first head measured from the accept, once), `--upstream-timeout` for
//! the upstream's answer once the request has been sent.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::gateway;
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
    let (_up, gw, _dir) = gateway(&["--client-timeout", "0.5"]).await;
    // Silent for most of the timeout, then one byte (an HTTP/1.1 request,
    // or maybe HTTP/2's preface), then nothing.
    for first in [&b"G"[..], b"P"] {
        let start = Instant::now();
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        s.write_all(first).await.unwrap();
        let after = closed_after(&mut s, start).await;
        assert!(
            after >= Duration::from_millis(450) && after < Duration::from_millis(750),
            "{:?}: closed after {after:?}",
            String::from_utf8_lossy(first)
        );
    }
}
