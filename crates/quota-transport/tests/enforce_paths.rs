//! What is charged is what is served: over arbitrary request paths, the
//! enforcement layer either refuses (4xx, the service never called) or hands
//! the service a path that is its own RFC 3986 normalization, charged as the
//! endpoint that path names. Through the tower layer and through
//! `check_head` (the gateway's own HTTP/1.1 path), under both path actions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use proptest::prelude::*;
use quota_core::account::{AccountAdmin, MemoryAccounts, NewAccount};
use quota_core::path::PathAction;
use quota_core::policy::{Money, Policy};
use quota_core::{MemoryStore, Timestamp};
use quota_transport::enforce::{EnforceLayer, HeadCheck, Observation, RequestBody};
use tower::{service_fn, Layer, ServiceExt};

#[path = "../../quota-core/tests/support/rfc3986.rs"]
mod rfc3986;
use rfc3986::rfc3986_normalize;

const KEY: &str = "k-premium";

/// Exact endpoints, `prompt/*` and `files/**` counted per matched path:
/// the shapes where a spelling that escapes its segment would be charged as
/// another endpoint, or get a budget of its own.
fn policy() -> Arc<Policy> {
    let toml = r#"
        [[endpoints]]
        path = "txt2img"
        [[endpoints]]
        path = "limits"
        [[endpoints]]
        path = "prompt/*"
        [[endpoints]]
        path = "files/**"
        [[tiers]]
        name = "premium"
        limits = [
          { endpoint = "txt2img", window = "1m", count = 1000 },
          { endpoint = "limits", window = "1m", count = 1000 },
          { endpoint = "prompt/*", window = "1m", count = 1000 },
          { endpoint = "files/**", window = "1m", count = 1000, per_match = true },
        ]
    "#;
    Arc::new(Policy::from_toml(toml).unwrap())
}

/// What one request came to: the status, the path the service saw (if it
/// was called) and the endpoint the layer charged (if any).
#[derive(Debug)]
struct Served {
    status: StatusCode,
    served: Option<String>,
    charged: Option<String>,
}

/// A layer over a fresh store and one Premium account; what it observed.
async fn layer(
    action: PathAction,
) -> (
    EnforceLayer<MemoryStore, MemoryAccounts>,
    Arc<Mutex<Vec<String>>>,
) {
    let accounts = MemoryAccounts::new();
    let new = NewAccount {
        id: "acct-premium".into(),
        api_key: KEY.into(),
        tier: "premium".into(),
        credit: Money::from_dollars(5),
    };
    accounts.create(new, Timestamp::EPOCH).await.unwrap();
    let charged = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&charged);
    let layer = EnforceLayer::new(policy(), Arc::new(MemoryStore::new()), Arc::new(accounts))
        .path_action(action)
        .clock(|| Timestamp::from_secs(1_700_000_000))
        .observer(move |o: &Observation<'_>| {
            if let (Some(endpoint), true) = (o.endpoint, o.status.is_success()) {
                seen.lock().unwrap().push(endpoint.to_owned());
            }
        });
    (layer, charged)
}

/// `path` through the tower layer (`None` when `http` cannot even parse it
/// as a request target: hyper answers those 400 before any layer).
async fn through_tower(path: &str, action: PathAction) -> Option<Served> {
    let req = Request::get(path)
        .header("x-api-key", KEY)
        .body(Full::new(Bytes::new()))
        .ok()?;
    let (layer, charged) = layer(action).await;
    let served = Arc::new(Mutex::new(None));
    let saw = Arc::clone(&served);
    let svc = layer.layer(service_fn(move |req: Request<RequestBody<Full<Bytes>>>| {
        *saw.lock().unwrap() = Some(req.uri().path().to_owned());
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
    }));
    let res = svc.oneshot(req).await.unwrap();
    let served = served.lock().unwrap().take();
    let charged = charged.lock().unwrap().pop();
    Some(Served {
        status: res.status(),
        served,
        charged,
    })
}

/// `path` through `check_head`, served (as the gateway's own path does)
/// under the admission's path, or the one given when that is `None`.
async fn through_check_head(path: &str, action: PathAction) -> Served {
    let (layer, charged) = layer(action).await;
    let headers = [(&b"x-api-key"[..], KEY.as_bytes())];
    let (status, served) = match layer.check_head(path, &headers[..]).await {
        HeadCheck::Admitted(a) => (StatusCode::OK, Some(a.path().unwrap_or(path).to_owned())),
        HeadCheck::Refused(res) => (res.status(), None),
    };
    let charged = charged.lock().unwrap().pop();
    Served {
        status,
        served,
        charged,
    }
}

/// The property, for one request's outcome.
fn holds(path: &str, s: &Served) -> Result<(), TestCaseError> {
    let policy = policy();
    if s.status.is_client_error() {
        prop_assert!(
            s.served.is_none(),
            "{path:?}: refused {} but served",
            s.status
        );
        return Ok(());
    }
    prop_assert!(s.status.is_success(), "{path:?}: {}", s.status);
    let served = s.served.as_deref().unwrap();
    let reference = rfc3986_normalize(served);
    prop_assert_eq!(
        reference.as_deref(),
        Some(served),
        "{:?} served as {:?}",
        path,
        served
    );
    let endpoint = served
        .strip_prefix("/v1/")
        .and_then(|name| policy.endpoint(name))
        .map(|e| e.path().to_owned());
    prop_assert_eq!(&s.charged, &endpoint, "{:?} served as {:?}", path, served);
    Ok(())
}

fn paths() -> impl Strategy<Value = String> {
    let start = prop_oneof![
        Just("/v1/"),
        Just("/v1/prompt/"),
        Just("/v1/files/"),
        Just("/")
    ];
    (start, rfc3986::path_pieces()).prop_map(|(s, p)| format!("{s}{p}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn what_is_charged_is_what_is_served(path in paths()) {
        let rt = runtime();
        for action in [PathAction::Refuse, PathAction::Normalize] {
            if let Some(s) = rt.block_on(through_tower(&path, action)) {
                holds(&path, &s)?;
            }
            let s = rt.block_on(through_check_head(&path, action));
            holds(&path, &s)?;
        }
    }
}

#[test]
fn the_spellings_of_the_report_are_refused_and_nothing_is_served() {
    let rt = runtime();
    for path in [
        "/v1/prompt/..%2ftxt2img",
        "/v1/prompt/..%2f..%2fadmin%2faccounts",
        "/v1/prompt/%2e%2e/txt2img",
        "/v1/prompt/../txt2img",
        "/v1/files/a/..%2f..%2ftxt2img",
        "/v1//txt2img",
    ] {
        let s = rt
            .block_on(through_tower(path, PathAction::Refuse))
            .unwrap();
        assert_eq!(
            (s.status, s.served.as_deref()),
            (StatusCode::BAD_REQUEST, None),
            "{path}"
        );
        let s = rt.block_on(through_check_head(path, PathAction::Refuse));
        assert_eq!(
            (s.status, s.served.as_deref()),
            (StatusCode::BAD_REQUEST, None),
            "{path}"
        );
    }
}

#[test]
fn normalize_serves_and_charges_the_resolved_path() {
    let rt = runtime();
    let s = rt
        .block_on(through_tower(
            "/v1/prompt/..%2ftxt2img?x=1",
            PathAction::Normalize,
        ))
        .unwrap();
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.served.as_deref(), Some("/v1/txt2img"));
    assert_eq!(s.charged.as_deref(), Some("txt2img"));
    // Climbing out of the prefix is refused even when normalizing.
    let s = rt
        .block_on(through_tower(
            "/v1/prompt/..%2f..%2fadmin%2faccounts",
            PathAction::Normalize,
        ))
        .unwrap();
    assert_eq!((s.status, s.served), (StatusCode::BAD_REQUEST, None));
    let s = rt.block_on(through_check_head("/v1/%74xt2img", PathAction::Refuse));
    assert_eq!(
        (s.served.as_deref(), s.charged.as_deref()),
        (Some("/v1/txt2img"), Some("txt2img"))
    );
}
