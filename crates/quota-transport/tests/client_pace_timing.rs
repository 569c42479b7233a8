//! The pacing layer in virtual time (tokio's paused clock), over an
//! in-process service: no socket is involved, so no real time passes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use quota_core::client::PacedLimit;
use quota_core::Timestamp;
use quota_transport::pace::PaceLayer;
use tokio::time::Instant;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// 2023-11-14T22:13:20Z: 20 s into its UTC minute.
const T0: u64 = 1_700_000_000_000;

/// A clock that starts at `T0` and follows tokio's (paused) time.
fn virtual_clock() -> impl Fn() -> Timestamp + Send + Sync + 'static {
    let start = Instant::now();
    move || Timestamp::from_millis(T0 + start.elapsed().as_millis() as u64)
}

type Answer = (u16, Vec<(&'static str, &'static str)>);

/// When each call reached the API, in virtual time since the test began.
type SendTimes = Arc<Mutex<Vec<Duration>>>;

/// An API that records when each call arrived (virtual time since the test
/// began) and answers call `n` with `answer(n)`.
fn api(
    answer: impl Fn(usize) -> Answer + Clone + Send + 'static,
) -> (
    impl Service<Request<()>, Response = Response<String>, Error = &'static str, Future: Send> + Clone,
    SendTimes,
) {
    let start = Instant::now();
    let sent = SendTimes::default();
    let log = Arc::clone(&sent);
    let svc = service_fn(move |_req: Request<()>| {
        let n = {
            let mut log = log.lock().unwrap();
            log.push(start.elapsed());
            log.len() - 1
        };
        let (status, headers) = answer(n);
        let mut res = Response::builder().status(status);
        for (name, value) in headers {
            res = res.header(name, value);
        }
        std::future::ready(if status == 599 {
            Err("no answer")
        } else {
            Ok(res.body(format!("call {n}")).unwrap())
        })
    });
    (svc, sent)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test(start_paused = true)]
async fn requests_wait_for_a_known_limit() {
    let (inner, sent) = api(|_| (200, vec![]));
    let layer = PaceLayer::from_limits(&[PacedLimit::sliding(2, secs(10))])
        .unwrap()
        .clock(virtual_clock());
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);

    for _ in 0..3 {
        svc.ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
    }

    assert_eq!(*sent.lock().unwrap(), [secs(0), secs(0), secs(10)]);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_pacer_so_a_concurrent_burst_keeps_the_limit() {
    let (inner, sent) = api(|_| (200, vec![]));
    let layer = PaceLayer::from_limits(&[PacedLimit::sliding(3, secs(10))])
        .unwrap()
        .clock(virtual_clock());
    let svc = ServiceBuilder::new().layer(layer).service(inner);

    let tasks: Vec<_> = (0..9)
        .map(|_| tokio::spawn(svc.clone().oneshot(Request::new(()))))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status(), 200);
    }

    let mut sent = sent.lock().unwrap().clone();
    sent.sort();
    let expected: Vec<Duration> = [0, 0, 0, 10, 10, 10, 20, 20, 20]
        .into_iter()
        .map(secs)
        .collect();
    assert_eq!(sent, expected);
}

#[tokio::test(start_paused = true)]
async fn a_429_holds_later_requests_for_its_retry_after() {
    let (inner, sent) = api(|n| {
        if n == 0 {
            (429, vec![("Retry-After", "7")])
        } else {
            (200, vec![])
        }
    });
    let layer = PaceLayer::new().clock(virtual_clock());
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);

    let first = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let second = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();

    // The pacer does not retry: the 429 comes back as it was.
    assert_eq!(first.status(), 429);
    assert_eq!(first.headers()["retry-after"], "7");
    assert_eq!(second.status(), 200);
    assert_eq!(*sent.lock().unwrap(), [secs(0), secs(7)]);
}

#[tokio::test(start_paused = true)]
async fn a_spent_ratelimit_budget_holds_requests_until_its_reset() {
    let spent = (
        200,
        vec![
            ("RateLimit", r#""burst";r=0;t=4"#),
            ("X-RateLimit-Remaining", "0"),
        ],
    );
    let (inner, sent) = api(move |n| if n == 0 { spent.clone() } else { (200, vec![]) });
    let mut svc = ServiceBuilder::new()
        .layer(PaceLayer::new().clock(virtual_clock()))
        .service(inner);

    for _ in 0..2 {
        svc.ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
    }

    // The IETF field's `t` wins over the seed header's minute boundary (40 s).
    assert_eq!(*sent.lock().unwrap(), [secs(0), secs(4)]);
}

#[tokio::test(start_paused = true)]
async fn a_spent_seed_budget_holds_requests_until_the_next_utc_minute() {
    let (inner, sent) = api(|n| {
        if n == 0 {
            (200, vec![("X-RateLimit-Remaining", "0")])
        } else {
            (200, vec![])
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(PaceLayer::new().clock(virtual_clock()))
        .service(inner);

    for _ in 0..2 {
        svc.ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
    }

    // T0 is 20 s into its minute.
    assert_eq!(*sent.lock().unwrap(), [secs(0), secs(40)]);
}

#[tokio::test(start_paused = true)]
async fn a_request_held_longer_than_max_delay_is_sent_at_once() {
    // A daily 429 without Retry-After holds requests until UTC midnight.
    let (inner, sent) = api(|n| {
        if n == 0 {
            (429, vec![("X-RateLimit-Type", "daily")])
        } else {
            (200, vec![])
        }
    });
    let layer = PaceLayer::new().clock(virtual_clock()).max_delay(secs(60));
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);

    for _ in 0..2 {
        svc.ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
    }

    assert_eq!(*sent.lock().unwrap(), [secs(0), secs(0)]);
}

#[tokio::test(start_paused = true)]
async fn each_hold_is_reported_to_the_hook() {
    let delays = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&delays);
    let layer = PaceLayer::from_limits(&[PacedLimit::sliding(1, secs(3))])
        .unwrap()
        .clock(virtual_clock())
        .on_delay(move |d| log.lock().unwrap().push(d));
    let (inner, _) = api(|_| (200, vec![]));
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);

    for _ in 0..3 {
        svc.ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
    }

    assert_eq!(*delays.lock().unwrap(), [secs(3), secs(3)]);
}

#[tokio::test(start_paused = true)]
async fn responses_and_errors_pass_through_unchanged() {
    let (inner, _) = api(|n| {
        if n == 0 {
            (418, vec![("X-Custom", "tea")])
        } else {
            (599, vec![])
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(PaceLayer::new().clock(virtual_clock()))
        .service(inner);

    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();

    assert_eq!(res.status(), 418);
    assert_eq!(res.headers()["x-custom"], "tea");
    assert_eq!(res.into_body(), "call 0");
    assert_eq!(err, "no answer");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_held_request_is_never_sent() {
    let (inner, sent) = api(|_| (200, vec![]));
    let layer = PaceLayer::from_limits(&[PacedLimit::sliding(1, secs(10))])
        .unwrap()
        .clock(virtual_clock());
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    svc.ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();

    let held = svc.ready().await.unwrap().call(Request::new(()));
    assert!(tokio::time::timeout(secs(2), held).await.is_err());
    tokio::time::sleep(secs(30)).await;

    assert_eq!(sent.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_absurd_retry_after_holds_without_overflowing() {
    let (inner, sent) = api(|n| {
        if n == 0 {
            (429, vec![("Retry-After", "18446744073709551615")])
        } else {
            (200, vec![])
        }
    });
    let layer = PaceLayer::new().clock(virtual_clock());
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    svc.ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();

    let held = svc.ready().await.unwrap().call(Request::new(()));
    assert!(tokio::time::timeout(secs(86_400), held).await.is_err());

    assert_eq!(sent.lock().unwrap().len(), 1);
}
