//! The retry layer's waits in virtual time (tokio's paused clock), over an
//! in-process service: no socket is involved, so no real time passes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use quota_core::Timestamp;
use quota_transport::retry::{GiveUp, RetryLayer, RetryOutcome, RetryPolicy, RetryWait};
use tokio::time::Instant;
use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};

/// An API answering call `n` (0-based) with `status(n)` and `headers(n)`,
/// counting its calls.
fn api(
    calls: Arc<AtomicUsize>,
    answer: impl Fn(usize) -> (u16, Vec<(&'static str, String)>) + Clone + Send + 'static,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send> + Clone
{
    service_fn(move |_req: Request<String>| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        let (status, headers) = answer(n);
        let mut res = Response::builder().status(status);
        for (name, value) in headers {
            res = res.header(name, value);
        }
        std::future::ready(Ok(res.body(String::new()).unwrap()))
    })
}

fn minute(retry_after: &str) -> (u16, Vec<(&'static str, String)>) {
    (
        429,
        vec![
            ("X-RateLimit-Type", "minute".into()),
            ("Retry-After", retry_after.into()),
        ],
    )
}

/// Sends one request through `layer` over `answer`; returns the outcome,
/// the reported waits, the calls made and the virtual time taken.
async fn run(
    layer: RetryLayer,
    answer: impl Fn(usize) -> (u16, Vec<(&'static str, String)>) + Clone + Send + 'static,
) -> (u16, RetryOutcome, Vec<Duration>, usize, Duration) {
    let waits = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&waits);
    let layer = layer.on_wait(move |w: &RetryWait| log.lock().unwrap().push(w.wait));
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(api(Arc::clone(&calls), answer));
    let started = Instant::now();
    let res = svc.oneshot(Request::new("body".to_owned())).await.unwrap();
    let outcome = *res.extensions().get::<RetryOutcome>().unwrap();
    let waits = waits.lock().unwrap().clone();
    (
        res.status().as_u16(),
        outcome,
        waits,
        calls.load(Ordering::SeqCst),
        started.elapsed(),
    )
}

#[tokio::test(start_paused = true)]
async fn seed_waits_are_the_longer_of_retry_after_and_the_backoff() {
    let layer = RetryLayer::new(RetryPolicy::SEED).jitter_seed(3);

    let (status, outcome, waits, calls, elapsed) = run(layer, |_| minute("3")).await;

    assert_eq!((status, calls), (429, 5));
    assert_eq!(
        outcome.gave_up,
        Some(GiveUp::AttemptsExhausted { attempts: 5 })
    );
    // max(3 s, 1 s + j), max(3 s, 2 s + j), max(3 s, 4 s + j), max(3 s, 8 s + j), j in [0, 1).
    assert_eq!(waits[..2], [Duration::from_secs(3), Duration::from_secs(3)]);
    assert!(
        waits[2] >= Duration::from_secs(4) && waits[2] < Duration::from_secs(5),
        "{waits:?}"
    );
    assert!(
        waits[3] >= Duration::from_secs(8) && waits[3] < Duration::from_secs(9),
        "{waits:?}"
    );
    let total: Duration = waits.iter().sum();
    assert_eq!(outcome.waited, total);
    assert!(
        elapsed >= total && elapsed < total + Duration::from_millis(5),
        "{elapsed:?} for {total:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn missing_retry_after_waits_the_policys_default() {
    let layer = RetryLayer::new(RetryPolicy::SEED);
    let bare = |n| if n == 0 { (429, vec![]) } else { (200, vec![]) };

    let (status, outcome, waits, calls, _) = run(layer, bare).await;

    assert_eq!((status, calls, outcome.attempts), (200, 2, 2));
    assert_eq!(waits, [Duration::from_secs(5)]);
}

#[tokio::test(start_paused = true)]
async fn http_date_retry_after_is_counted_from_the_layers_clock() {
    // Sun, 06 Nov 1994 08:49:37 GMT; the server asks for 10 s later.
    let now = Timestamp::from_secs(784_111_777);
    let layer = RetryLayer::new(RetryPolicy::SEED).clock(move || now);
    let dated = |n| {
        if n == 0 {
            minute("Sun, 06 Nov 1994 08:49:47 GMT")
        } else {
            (200, vec![])
        }
    };

    let (status, _, waits, _, elapsed) = run(layer, dated).await;

    assert_eq!(status, 200);
    assert_eq!(waits, [Duration::from_secs(10)]);
    assert!(elapsed >= Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn the_same_jitter_seed_gives_the_same_waits() {
    let policy = RetryPolicy {
        base: Duration::from_millis(100),
        ..RetryPolicy::SEED
    };
    let (_, _, first, _, _) = run(RetryLayer::new(policy).jitter_seed(42), |_| minute("0")).await;
    let (_, _, again, _, _) = run(RetryLayer::new(policy).jitter_seed(42), |_| minute("0")).await;
    let (_, _, other, _, _) = run(RetryLayer::new(policy).jitter_seed(43), |_| minute("0")).await;

    assert_eq!(first.len(), 4);
    assert_eq!(first, again);
    assert_ne!(first, other);
}

#[tokio::test(start_paused = true)]
async fn a_policy_of_one_attempt_never_retries() {
    let layer = RetryLayer::new(RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::SEED
    });

    let (status, outcome, waits, calls, _) = run(layer, |_| minute("1")).await;

    assert_eq!((status, calls), (429, 1));
    assert_eq!(
        outcome.gave_up,
        Some(GiveUp::AttemptsExhausted { attempts: 1 })
    );
    assert!(waits.is_empty());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_response_future_while_it_waits_sends_nothing_more() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::SEED))
        .service(api(Arc::clone(&calls), |_| minute("30")));

    let pending = svc.oneshot(Request::new(String::new()));
    let timed_out = tokio::time::timeout(Duration::from_secs(5), pending).await;
    tokio::time::sleep(Duration::from_secs(120)).await;

    assert!(timed_out.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_waits_for_the_inner_service_to_be_ready() {
    // The concurrency limit's clone has no permit until `poll_ready` gives
    // it one, and its `call` panics without: the retry must drive it ready.
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = api(Arc::clone(&calls), |n| {
        if n == 0 {
            minute("1")
        } else {
            (200, vec![])
        }
    });
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::SEED).jitter_seed(0))
        .concurrency_limit(1)
        .service(inner);

    let res = svc
        .oneshot(Request::new(String::new()))
        .await
        .map_err(BoxError::from)
        .unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn an_absurd_retry_after_waits_without_overflowing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::SEED))
        .service(api(Arc::clone(&calls), |_| minute("18446744073709551615")));

    let pending = svc.oneshot(Request::new(String::new()));
    assert!(tokio::time::timeout(Duration::from_secs(86_400), pending)
        .await
        .is_err());

    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
