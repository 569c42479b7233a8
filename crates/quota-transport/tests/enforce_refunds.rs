//! Refunds through the tower layer: an embedder's service marks its answer
//! with `UpstreamFailure` (or answers a 5xx) and the layer gives the
//! request's units and credit back, as `RefundOn` says; the answer then
//! carries no rate-limit headers; the observer is told.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use quota_core::account::{AccountAdmin, MemoryAccounts, NewAccount};
use quota_core::policy::{EndpointSpec, Money, Policy};
use quota_core::{MemoryStore, Timestamp};
use quota_transport::enforce::{
    EnforceLayer, Observation, Observer, RefundOn, Refunded, UpstreamFailure,
};
use tower::{service_fn, Layer, ServiceExt};

/// The seed, plus `paid` at $2 a request.
fn policy() -> Policy {
    let mut spec = Policy::seed().spec().clone();
    spec.endpoints.push(EndpointSpec {
        path: "paid".into(),
        price: Some(Money::from_dollars(2)),
        priority: None,
    });
    let basic = spec.tiers.iter_mut().find(|t| t.name == "basic").unwrap();
    basic.limits.push(quota_core::policy::LimitSpec::new(
        Some("paid"),
        quota_core::policy::WindowLength::from_secs(60),
        3,
    ));
    Policy::new(spec).unwrap()
}

/// The reasons of the refunds observed.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<&'static str>>>);

impl Observer for Seen {
    fn observe(&self, _: &Observation<'_>) {}
    fn refunded(&self, r: &Refunded<'_>) {
        assert_eq!((r.account, r.tier), ("acct-1", "basic"));
        self.0.lock().unwrap().push(r.reason.as_str());
    }
}

/// A layer at a fixed time, on fresh memory state, with $5 of credit.
async fn layer(
    on: RefundOn,
    seen: &Seen,
) -> (
    EnforceLayer<MemoryStore, MemoryAccounts>,
    Arc<MemoryAccounts>,
) {
    let accounts = MemoryAccounts::new();
    let new = NewAccount {
        id: "acct-1".into(),
        api_key: "k-1".into(),
        tier: "basic".into(),
        credit: Money::from_dollars(5),
    };
    accounts.create(new, Timestamp::EPOCH).await.unwrap();
    let accounts = Arc::new(accounts);
    let layer = EnforceLayer::new(
        policy(),
        Arc::new(MemoryStore::new()),
        Arc::clone(&accounts),
    )
    .clock(|| Timestamp::from_secs(1_700_000_000))
    .refund_on(on)
    .observer(seen.clone());
    (layer, accounts)
}

/// Calls `path` through `layer` in front of a service answering `status`,
/// marked with `failure` if any: the status and the remaining header.
async fn call(
    layer: &EnforceLayer<MemoryStore, MemoryAccounts>,
    path: &str,
    status: u16,
    failure: Option<UpstreamFailure>,
) -> (u16, Option<String>) {
    let service = layer.layer(service_fn(move |_req: Request<_>| async move {
        let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(f) = failure {
            res.extensions_mut().insert(f);
        }
        Ok::<_, std::convert::Infallible>(res)
    }));
    let req = Request::post(path)
        .header("x-api-key", "k-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = service.oneshot(req).await.unwrap();
    let remaining = res
        .headers()
        .get("x-ratelimit-remaining")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status().as_u16(), remaining)
}

#[tokio::test]
async fn a_marked_failure_gives_back_units_and_credit_and_drops_the_headers() {
    let seen = Seen::default();
    let (layer, accounts) = layer(RefundOn::default(), &seen).await;
    // 3 a minute on Basic: five failures leave all 3.
    for failure in [UpstreamFailure::Unreachable, UpstreamFailure::TimedOut] {
        for _ in 0..5 {
            let got = call(&layer, "/v1/txt2img", 502, Some(failure)).await;
            assert_eq!(got, (502, None), "{failure:?}");
        }
    }
    for _ in 0..2 {
        assert_eq!(
            call(&layer, "/v1/paid", 504, Some(UpstreamFailure::TimedOut))
                .await
                .0,
            504
        );
    }
    let account = accounts.get("acct-1").await.unwrap().unwrap();
    assert_eq!(
        (account.credit, account.requests),
        (Money::from_dollars(5), 0)
    );
    for left in ["2", "1", "0"] {
        assert_eq!(
            call(&layer, "/v1/txt2img", 200, None).await,
            (200, Some(left.into()))
        );
    }
    assert_eq!(call(&layer, "/v1/txt2img", 200, None).await.0, 429);
    let reasons = seen.0.lock().unwrap().clone();
    assert_eq!(reasons.len(), 12);
    assert_eq!(reasons.iter().filter(|r| **r == "timeout").count(), 7);
}

#[tokio::test]
async fn a_5xx_is_refunded_only_with_server_errors_and_nothing_with_never() {
    let seen = Seen::default();
    // Default: the service's own 500 (unmarked) is spent.
    let (layer_default, _) = layer(RefundOn::Unreachable, &seen).await;
    for left in ["2", "1", "0"] {
        assert_eq!(
            call(&layer_default, "/v1/txt2img", 500, None).await,
            (500, Some(left.into()))
        );
    }
    // ServerErrors: refunded, headers dropped.
    let (layer_5xx, accounts) = layer(RefundOn::ServerErrors, &seen).await;
    for _ in 0..4 {
        assert_eq!(
            call(&layer_5xx, "/v1/txt2img", 503, None).await,
            (503, None)
        );
    }
    assert_eq!(call(&layer_5xx, "/v1/paid", 500, None).await, (500, None));
    // A 4xx of the service is an answer: spent.
    assert_eq!(
        call(&layer_5xx, "/v1/paid", 404, None).await,
        (404, Some("2".into()))
    );
    let account = accounts.get("acct-1").await.unwrap().unwrap();
    assert_eq!(account.credit, Money::from_dollars(3));
    // Never: even a marked failure is spent.
    let (layer_never, _) = layer(RefundOn::Never, &seen).await;
    for left in ["2", "1", "0"] {
        let got = call(
            &layer_never,
            "/v1/txt2img",
            502,
            Some(UpstreamFailure::Unreachable),
        )
        .await;
        assert_eq!(got, (502, Some(left.into())));
    }
    assert_eq!(seen.0.lock().unwrap().as_slice(), ["5xx"; 5]);
}
