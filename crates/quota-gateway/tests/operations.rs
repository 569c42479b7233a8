//! Running the gateway: metrics, health, shadow mode, client timeouts and
//! the connection limit, edge refusals counted, and a graceful shutdown
//! through the future given to `serve`. (Signals, restarts and policy
//! reload are the binary's: `crates/quota-cli/tests/operations.rs`.)

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::{early_in_window, gateway, Http};

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_decisions_by_outcome_and_limit_type() {
    let (up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    early_in_window(60_000, Duration::from_secs(5)).await;
    for _ in 0..4 {
        http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
    }
    http.post(&gw.url("/v1/txt2img"), None).await;
    let res = http.get(&gw.url("/metrics"), None).await;
    assert_eq!(res.status, 200);
    assert!(res
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8_lossy(&res.body).into_owned();
    let admitted = r#"quota_decisions_total{tier="basic",endpoint="txt2img",outcome="admitted",limit_type="none"}"#;
    let refused = r#"quota_decisions_total{tier="basic",endpoint="txt2img",outcome="refused",limit_type="minute"}"#;
    let unauthorized = r#"quota_decisions_total{tier="unknown",endpoint="unknown",outcome="unauthorized",limit_type="none"}"#;
    assert_eq!(metric(&text, admitted), 3, "{text}");
    assert_eq!(metric(&text, refused), 1, "{text}");
    assert_eq!(metric(&text, unauthorized), 1, "{text}");
    assert_eq!(
        metric(&text, "quota_decision_duration_seconds_count"),
        5,
        "{text}"
    );
    assert_eq!(metric(&text, "quota_store_errors_total"), 0);
    assert!(text.contains("quota_store_info{backend=\"memory\",mode=\"ok\"} 1"));

    http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
    let again =
        String::from_utf8_lossy(&http.get(&gw.url("/metrics"), None).await.body).into_owned();
    assert_eq!(metric(&again, refused), 2, "the counter moves");

    let health = http.get(&gw.url("/healthz"), None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(health.json()["store"]["backend"], "memory");

    // The gateway's own routes answer only their methods, and are never
    // proxied.
    let seen = up.seen().len();
    for path in ["/healthz", "/metrics"] {
        let post = http.post(&gw.url(path), Some(&key)).await;
        assert_eq!(post.status, 405, "{path}");
        assert_eq!(post.header("allow"), Some("GET, HEAD"), "{path}");
    }
    assert_eq!(up.seen().len(), seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_sends_headers_and_counts_but_never_refuses() {
    let (up, gw) = gateway(|b| b.shadow(true)).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    early_in_window(60_000, Duration::from_secs(5)).await;
    for _ in 0..5 {
        let res = http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.header("x-ratelimit-limit"), Some("3"));
    }
    assert_eq!(up.seen().len(), 5);
    let text =
        String::from_utf8_lossy(&http.get(&gw.url("/metrics"), None).await.body).into_owned();
    let shadow = r#"quota_decisions_total{tier="basic",endpoint="txt2img",outcome="shadow_refused",limit_type="minute"}"#;
    assert_eq!(metric(&text, shadow), 2, "{text}");
}

/// Reads from `s` until the gateway closes it; how long that took.
async fn closed_after(mut s: tokio::net::TcpStream) -> Duration {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the connection was not closed within 10 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_slow_and_idle_clients_are_closed_after_the_client_timeout() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let (_up, gw) = gateway(|b| b.client_timeout(Duration::from_millis(500))).await;
    // Connects and sends nothing.
    let silent = TcpStream::connect(gw.addr).await.unwrap();
    // Sends half a request head, then nothing.
    let mut slow = TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Sends one whole request, is answered, then keeps the connection idle.
    let mut idle = TcpStream::connect(gw.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (silent, slow, idle) =
        tokio::join!(closed_after(silent), closed_after(slow), closed_after(idle));
    for (who, after) in [("silent", silent), ("slow", slow), ("idle", idle)] {
        assert!(
            after >= Duration::from_millis(400) && after < Duration::from_secs(5),
            "{who} client closed after {after:?}"
        );
    }
    // Clients that keep to the time are served as before.
    let ok = Http::default().get(&gw.url("/healthz"), None).await;
    assert_eq!(ok.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_after_the_client_timeout_but_a_slow_answer_is_not_cut()
{
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::net::TcpStream;
    let (_up, gw) = gateway(|b| b.client_timeout(Duration::from_millis(500))).await;
    let (_id, key) = Http::default().create_account(&gw).await;
    // A client that speaks HTTP/2 from its first byte, on a connection of
    // its own whose end the test sees.
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let opened = Instant::now();
    let driver = tokio::spawn(async move {
        let ended = conn.await;
        (ended, opened.elapsed())
    });
    // The upstream answers after 1.5 s, three client timeouts: the answer
    // still comes whole.
    let req = http::Request::get(gw.url("/v1/slow?delay_ms=1500"))
        .header("x-api-key", &key)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
        .await
        .expect("answered within 10 s")
        .expect("the request went through");
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("/v1/slow"),
        "{body:?}"
    );
    let answered = opened.elapsed();
    assert!(answered >= Duration::from_millis(1400), "{answered:?}");
    // Then idle: the gateway closes it (GOAWAY) about a client timeout later.
    let (ended, closed_at) = tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("the idle connection was closed within 10 s")
        .unwrap();
    assert!(ended.is_ok(), "{ended:?}");
    let idle = closed_at.saturating_sub(answered);
    assert!(
        idle >= Duration::from_millis(400) && idle < Duration::from_secs(5),
        "closed {idle:?} after the answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_a_new_client_waits_until_one_closes() {
    use tokio::net::TcpStream;
    let (_up, gw) = gateway(|b| b.max_connections(2).client_timeout(Duration::from_secs(1))).await;
    // Two clients take both slots and send nothing.
    let a = TcpStream::connect(gw.addr).await.unwrap();
    let b = TcpStream::connect(gw.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A third is answered only once the client timeout has closed one of them.
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        Http::default().get(&gw.url("/healthz"), None),
    )
    .await
    .expect("answered within 10 s");
    let waited = started.elapsed();
    assert_eq!(answer.status, 200);
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "the third client waited {waited:?}"
    );
    drop((a, b));
    gw.wait_log("connection limit reached", Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_refusals_are_counted_by_status() {
    let (up, gw) = gateway(|b| b).await;
    let send = |raw: &'static [u8]| async move {
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, raw)
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut answer),
        )
        .await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    // The own path: no Host (400), TRACE (405), gzip before chunked (501).
    assert!(send(b"GET /v1/txt2img HTTP/1.1\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 400"));
    assert!(send(b"TRACE /v1/txt2img HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 405"));
    let coded = b"POST /v1/txt2img HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
    assert!(send(coded).await.starts_with("HTTP/1.1 501"));
    // A connection handed to hyper: a body first, then a bad method.
    let handed = b"POST /v1/nothing HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\n{}PROPFIND /v1/x HTTP/1.1\r\nHost: gw\r\n\r\n";
    let answers = send(handed).await;
    assert!(answers.contains("HTTP/1.1 405"), "{answers}");

    let text = String::from_utf8_lossy(&Http::default().get(&gw.url("/metrics"), None).await.body)
        .into_owned();
    assert_eq!(
        metric(&text, "quota_edge_refusals_total{status=\"400\"}"),
        1,
        "{text}"
    );
    assert_eq!(
        metric(&text, "quota_edge_refusals_total{status=\"405\"}"),
        2,
        "{text}"
    );
    assert_eq!(
        metric(&text, "quota_edge_refusals_total{status=\"501\"}"),
        1,
        "{text}"
    );
    assert!(up.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish_then_serve_returns() {
    // Time to drain enough for the requests below (the harness's is short).
    let (_up, mut gw) = gateway(|b| b.shutdown_timeout(Duration::from_secs(10))).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let url = gw.url("/v1/slow?delay_ms=1500");
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            tokio::spawn(async move { http.post(&url, Some(&key)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let started = Instant::now();
    gw.begin_shutdown();
    gw.wait_log("shutting down", Duration::from_secs(5)).await;
    // A new connection is refused while the old ones drain.
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "still accepting after the shutdown began"
    );
    for t in in_flight {
        let res = t.await.unwrap();
        assert_eq!(res.status, 200, "{:?}", res.body);
    }
    assert_eq!(gw.stopped(Duration::from_secs(10)).await, Ok(()));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "serve returned before the requests finished"
    );
    let log = gw.logs();
    assert!(log.contains("accounts flushed"), "{log}");
    // The clients' kept-alive connections, idle by then, closed at once.
    assert!(log.contains("all connections drained"), "{log}");
}
