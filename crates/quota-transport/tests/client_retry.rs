//! The retry layer over hyper-util's client against a real hyper server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod client_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use quota_transport::retry::{GiveUp, LimitType, RetryLayer, RetryOutcome, RetryPolicy, RetryWait};
use tower::{ServiceBuilder, ServiceExt};

use client_support::{body_of, client, ok, respond, too_many, ScriptServer};

/// The seed's strategy with a 10 ms backoff unit, so waits stay short.
const QUICK: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(10),
    ..RetryPolicy::SEED
};

/// A retry layer that records every wait it reports.
fn recording(policy: RetryPolicy) -> (RetryLayer, Arc<Mutex<Vec<RetryWait>>>) {
    let waits = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&waits);
    let layer = RetryLayer::new(policy)
        .jitter_seed(1)
        .on_wait(move |w| log.lock().unwrap().push(*w));
    (layer, waits)
}

fn post(server: &ScriptServer, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(server.url("/v1/txt2img"))
        .header("x-api-key", "k-1")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn outcome<B>(res: &http::Response<B>) -> RetryOutcome {
    *res.extensions()
        .get::<RetryOutcome>()
        .expect("the layer records its outcome")
}

#[tokio::test]
async fn minute_429_is_retried_after_retry_after_and_the_success_returned() {
    let server = ScriptServer::start(|n, _| {
        if n == 0 {
            too_many("minute", "1")
        } else {
            ok("a picture")
        }
    })
    .await;
    let (layer, waits) = recording(QUICK);
    let api = ServiceBuilder::new().layer(layer).service(client());

    let started = Instant::now();
    let res = api.oneshot(post(&server, "{}")).await.unwrap();
    let elapsed = started.elapsed();

    assert_eq!(res.status(), 200);
    let out = outcome(&res);
    assert_eq!(
        (out.attempts, out.gave_up, out.waited),
        (2, None, Duration::from_secs(1))
    );
    assert_eq!(body_of(res).await, "a picture");
    let received = server.received();
    assert_eq!(received.len(), 2);
    // max(Retry-After 1 s, 10 ms * (2^0 + jitter)) = 1 s between the attempts.
    let gap = received[1].at - received[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(elapsed < Duration::from_millis(1_800), "took {elapsed:?}");
    let waits = waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 1);
    assert_eq!((waits[0].attempt, waits[0].max_attempts), (1, 5));
    assert_eq!(waits[0].limit_type, LimitType::Minute);
    assert_eq!(waits[0].wait, Duration::from_secs(1));
}

#[tokio::test]
async fn daily_429_is_returned_at_once_without_a_retry() {
    let server = ScriptServer::start(|_, _| too_many("daily", "3600")).await;
    let (layer, waits) = recording(QUICK);
    let api = ServiceBuilder::new().layer(layer).service(client());

    let started = Instant::now();
    let res = api.oneshot(post(&server, "{}")).await.unwrap();

    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["x-ratelimit-type"], "daily");
    assert_eq!(res.headers()["retry-after"], "3600");
    let out = outcome(&res);
    let daily = GiveUp::DailyLimit {
        retry_after: Some(Duration::from_secs(3600)),
    };
    assert_eq!(
        (out.attempts, out.gave_up, out.waited),
        (1, Some(daily), Duration::ZERO)
    );
    assert_eq!(body_of(res).await, r#"{"message":"Too Many Attempts."}"#);
    assert_eq!(server.received().len(), 1);
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn five_minute_429s_give_up_after_the_fifth_attempt() {
    let server = ScriptServer::start(|_, _| too_many("minute", "0")).await;
    let (layer, waits) = recording(QUICK);
    let api = ServiceBuilder::new().layer(layer).service(client());

    let res = api.oneshot(post(&server, "{}")).await.unwrap();

    assert_eq!(res.status(), 429);
    let out = outcome(&res);
    assert_eq!(out.attempts, 5);
    assert_eq!(out.gave_up, Some(GiveUp::AttemptsExhausted { attempts: 5 }));
    let received = server.received();
    assert_eq!(received.len(), 5, "no sixth attempt");
    let waits = waits.lock().unwrap().clone();
    assert_eq!(
        waits.iter().map(|w| w.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    for (i, w) in waits.iter().enumerate() {
        // Retry-After 0, so the backoff rules: 10 ms * (2^a + jitter), jitter in [0, 1).
        let unit = 10 * (1u64 << i);
        let wait = w.wait.as_millis() as u64;
        assert!((unit..=unit + 10).contains(&wait), "wait {i}: {wait} ms");
        let gap = received[i + 1].at - received[i].at;
        assert!(
            gap >= w.wait,
            "attempt {} sent {gap:?} after the previous, before its wait",
            i + 2
        );
    }
    assert_eq!(out.waited, waits.iter().map(|w| w.wait).sum::<Duration>());
}

#[tokio::test]
async fn server_error_is_returned_without_a_retry() {
    let server = ScriptServer::start(|_, _| respond(500, &[("Retry-After", "0")], "boom")).await;
    let (layer, waits) = recording(QUICK);
    let api = ServiceBuilder::new().layer(layer).service(client());

    let res = api.oneshot(post(&server, "{}")).await.unwrap();

    assert_eq!(res.status(), 500);
    assert_eq!(outcome(&res).gave_up, Some(GiveUp::Status(500)));
    assert_eq!(body_of(res).await, "boom");
    assert_eq!(server.received().len(), 1);
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn connection_error_is_returned_as_the_clients_error_without_a_retry() {
    // A port nothing listens on any more.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (layer, waits) = recording(QUICK);
    let api = ServiceBuilder::new().layer(layer).service(client());
    let req = Request::get(format!("http://{addr}/v1/txt2img"))
        .body(Full::new(Bytes::new()))
        .unwrap();

    let err: hyper_util::client::legacy::Error = api.oneshot(req).await.unwrap_err();

    assert!(err.is_connect(), "{err:?}");
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn request_is_replayed_identically_on_each_retry() {
    let server = ScriptServer::start(|n, _| {
        if n < 2 {
            too_many("minute", "0")
        } else {
            ok("done")
        }
    })
    .await;
    let (layer, _) = recording(QUICK);
    let api = ServiceBuilder::new().layer(layer).service(client());
    let body: Bytes = (0..100_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let req = Request::put(server.url("/v1/videos/replace?x=1"))
        .header("x-api-key", "k-1")
        .header("content-type", "application/octet-stream")
        .body(Full::new(body.clone()))
        .unwrap();

    let res = api.oneshot(req).await.unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(outcome(&res).attempts, 3);
    let received = server.received();
    assert_eq!(received.len(), 3);
    for r in &received {
        assert_eq!(r.path, "/v1/videos/replace");
        assert_eq!(r.headers["x-api-key"], "k-1");
        assert_eq!(r.headers["content-type"], "application/octet-stream");
        assert_eq!(r.headers["content-length"], "100000");
        assert_eq!(r.body, body);
    }
}

#[tokio::test]
async fn concurrent_requests_through_clones_retry_independently() {
    // The first attempt of each request id is refused, the second admitted.
    let seen = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let server = ScriptServer::start(move |_, req| {
        let id = req.headers["x-id"].to_str().unwrap().to_owned();
        if seen.lock().unwrap().insert(id.clone()) {
            too_many("minute", "0")
        } else {
            ok(&id)
        }
    })
    .await;
    let (layer, waits) = recording(QUICK);
    let api = ServiceBuilder::new().layer(layer).service(client());

    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let api = api.clone();
            let req = Request::post(server.url("/v1/txt2img"))
                .header("x-id", i.to_string())
                .body(Full::new(Bytes::new()));
            tokio::spawn(async move {
                let res = api.oneshot(req.unwrap()).await.unwrap();
                (res.status(), outcome(&res).attempts, body_of(res).await)
            })
        })
        .collect();

    for (i, task) in tasks.into_iter().enumerate() {
        let (status, attempts, body) = task.await.unwrap();
        assert_eq!((status.as_u16(), attempts), (200, 2));
        assert_eq!(body, i.to_string());
    }
    assert_eq!(server.received().len(), 16);
    assert_eq!(waits.lock().unwrap().len(), 8);
}
