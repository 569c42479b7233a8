//! The access log: one JSON line per request, on every path (the own
//! HTTP/1.1 path and hyper's, HTTP/2, the gateway's own routes, edge
//! refusals), with the right fields, never the key, flushed at shutdown.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use quota_gateway::{AccessLog, Http1};
use serde_json::Value;
use support::{early_in_window, h2_client, raw, setup, status_of, Http, TempDir, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The line of the one record matching every `(field, value)` of `want`.
fn find<'a>(lines: &'a [Value], want: &[(&str, Value)]) -> &'a Value {
    let found: Vec<&Value> = lines
        .iter()
        .filter(|l| want.iter().all(|(k, v)| &l[*k] == v))
        .collect();
    assert_eq!(found.len(), 1, "{want:?} in:\n{lines:#?}");
    found[0]
}

fn absent(line: &Value, field: &str) {
    assert!(line.get(field).is_none(), "{field} in {line}");
}

/// Every request of the suite once, on `http1`; then the log, line by line.
async fn one_of_each(http1: Http1) {
    let up = Upstream::start().await;
    let dir = TempDir::new("access-log");
    let path = dir.path().join("access.log");
    let log = AccessLog::file(&path).unwrap();
    let mut gw = setup(&up.url())
        .with(move |b| b.http1(http1).workers(2).access_log(log))
        .start()
        .await;
    let http = Http::default();
    let (id, key) = http.create_account(&gw).await;
    let mut requests = 1;

    // Admitted: a GET (bodiless: the own path takes it when it is on).
    early_in_window(60_000, Duration::from_secs(10)).await;
    let get = http.get(&gw.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(get.status, 200);
    // Two more, then the minute limit refuses.
    for _ in 0..2 {
        assert_eq!(
            http.get(&gw.url("/v1/txt2img"), Some(&key)).await.status,
            200
        );
    }
    let refused = http.get(&gw.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(refused.status, 429);
    requests += 4;

    // Admitted: a POST with a body (hyper's path).
    let auth = format!("Bearer {key}");
    let post = http
        .send(
            Method::POST,
            &gw.url("/v1/slow"),
            &[("authorization", &auth)],
            "hello body",
        )
        .await;
    assert_eq!(post.status, 200);
    requests += 1;

    // 401 (no key), 404, 402 (two paid, then no credit).
    assert_eq!(http.post(&gw.url("/v1/txt2img"), None).await.status, 401);
    assert_eq!(
        http.get(&gw.url("/v1/not-an-endpoint"), Some(&key))
            .await
            .status,
        404
    );
    for _ in 0..2 {
        assert_eq!(http.post(&gw.url("/v1/paid"), Some(&key)).await.status, 200);
    }
    assert_eq!(http.post(&gw.url("/v1/paid"), Some(&key)).await.status, 402);
    requests += 5;

    // 413: a declared body over the upload limit, answered before a byte.
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /v1/txt2img HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Length: 200000000\r\nContent-Type: image/png\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 413"));
    drop(s);
    requests += 1;

    // An edge refusal: HTTP/1.1 without Host.
    let edge = raw(
        gw.addr,
        b"GET /v1/txt2img HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&edge), 400);
    requests += 1;

    // The gateway's own routes.
    let health = http.get(&gw.url("/healthz"), None).await;
    assert_eq!(health.status, 200);
    let metrics = http.get(&gw.url("/metrics"), None).await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        text.contains("quota_access_log_dropped_total 0\n"),
        "{text}"
    );
    requests += 2;

    // HTTP/2.
    let h2 = h2_client();
    let req = Request::get(gw.url("/v1/slow?h2=1"))
        .header("x-api-key", &key)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), h2.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), 200);
    let h2_body = res.into_body().collect().await.unwrap().to_bytes();
    requests += 1;

    // Stopped: every line is in the file (flushed at shutdown).
    gw.stopped(Duration::from_secs(15)).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(&key),
        "the API key is in the access log:\n{text}"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), requests, "{text}");
    for l in &lines {
        let time = l["time"].as_str().unwrap();
        assert!(
            time.len() == 24 && time.ends_with('Z') && &time[10..11] == "T",
            "{l}"
        );
        let rid = l["request_id"].as_str().unwrap();
        assert!(
            rid.len() == 16 && rid.bytes().all(|b| b.is_ascii_hexdigit()),
            "{l}"
        );
        assert_eq!(l["client"], "127.0.0.1", "{l}");
    }

    let account = Value::from(id.as_str());
    let admitted = Value::from("admitted");
    let get_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| l["endpoint"] == "txt2img" && l["decision"] == admitted)
        .collect();
    assert_eq!(get_lines.len(), 3, "{lines:#?}");
    for l in get_lines {
        assert_eq!(l["method"], "GET");
        assert_eq!(l["route"], "proxy");
        assert_eq!(l["account"], account);
        assert_eq!(l["tier"], "basic");
        assert_eq!(l["status"], 200);
        assert_eq!(l["bytes_in"], 0);
        assert_eq!(l["bytes_out"], get.body.len());
        assert!(l["upstream_ms"].as_f64().unwrap() >= 0.0, "{l}");
    }
    let l = find(&lines, &[("decision", "refused:minute".into())]);
    assert_eq!(l["status"], 429);
    assert_eq!(l["account"], account);
    assert_eq!(l["endpoint"], "txt2img");
    assert_eq!(l["bytes_out"], refused.body.len());
    absent(l, "upstream_ms");

    let l = find(
        &lines,
        &[("endpoint", "slow".into()), ("method", "POST".into())],
    );
    assert_eq!(l["decision"], admitted);
    assert_eq!(l["status"], 200);
    assert_eq!(l["bytes_in"], 10);
    assert_eq!(l["bytes_out"], post.body.len());
    assert!(l["upstream_ms"].as_f64().is_some(), "{l}");

    let l = find(&lines, &[("decision", "401".into())]);
    assert_eq!(l["status"], 401);
    assert_eq!(l["method"], "POST");
    absent(l, "account");
    absent(l, "tier");
    absent(l, "upstream_ms");

    let l = find(&lines, &[("decision", "404".into())]);
    assert_eq!(l["status"], 404);
    assert_eq!(l["account"], account);
    absent(l, "upstream_ms");

    let l = find(&lines, &[("decision", "402".into())]);
    assert_eq!(l["status"], 402);
    assert_eq!(l["endpoint"], "paid");
    assert_eq!(l["account"], account);
    let paid = lines
        .iter()
        .filter(|l| l["endpoint"] == "paid" && l["decision"] == admitted)
        .count();
    assert_eq!(paid, 2, "{lines:#?}");

    let l = find(&lines, &[("decision", "413".into())]);
    assert_eq!(l["status"], 413);
    assert_eq!(l["route"], "proxy");
    assert_eq!(l["bytes_in"], 0);
    assert!(l["bytes_out"].as_u64().unwrap() > 0, "{l}");
    absent(l, "upstream_ms");

    let l = find(&lines, &[("route", "edge".into())]);
    assert_eq!(l["status"], 400);
    assert_eq!(l["decision"], "400");
    assert_eq!(l["method"], "GET");
    absent(l, "account");

    let l = find(&lines, &[("route", "healthz".into())]);
    assert_eq!(l["status"], 200);
    assert_eq!(l["decision"], admitted);
    assert_eq!(l["bytes_out"], health.body.len());
    let l = find(&lines, &[("route", "metrics".into())]);
    assert_eq!(l["bytes_out"], metrics.body.len());
    let l = find(&lines, &[("route", "admin".into())]);
    assert_eq!(l["status"], 201);
    assert_eq!(l["method"], "POST");

    let l = find(
        &lines,
        &[("endpoint", "slow".into()), ("method", "GET".into())],
    );
    assert_eq!(l["status"], 200);
    assert_eq!(l["account"], account);
    assert_eq!(l["bytes_out"], h2_body.len());
    assert!(l["upstream_ms"].as_f64().is_some(), "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_per_request_with_its_fields_on_the_own_http1_path() {
    one_of_each(Http1::Own).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_per_request_with_its_fields_on_hypers_http1_path() {
    one_of_each(Http1::Hyper).await;
}

/// A 502 the gateway answers itself: its line has the answer's request id.
async fn a_502_is_logged_with_its_request_id(http1: Http1) {
    // Nothing listens on the upstream's port.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dir = TempDir::new("access-log-502");
    let path = dir.path().join("access.log");
    let log = AccessLog::file(&path).unwrap();
    let mut gw = setup(&upstream)
        .with(move |b| b.http1(http1).access_log(log))
        .start()
        .await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let res = http.get(&gw.url("/v1/slow"), Some(&key)).await;
    assert_eq!(res.status, 502);
    let id = res.header("x-request-id").unwrap().to_owned();
    gw.stopped(Duration::from_secs(15)).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let l = find(&lines, &[("status", 502.into())]);
    assert_eq!(l["request_id"], id.as_str());
    // Admitted, then given back what it took (`--refund-on unreachable`).
    assert_eq!(l["decision"], "refunded");
    assert!(l["upstream_ms"].as_f64().is_some(), "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_502_is_logged_with_its_request_id_on_the_own_http1_path() {
    a_502_is_logged_with_its_request_id(Http1::Own).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_502_is_logged_with_its_request_id_on_hypers_http1_path() {
    a_502_is_logged_with_its_request_id(Http1::Hyper).await;
}
