//! Envoy's rate limit service (`--grpc-listen`), end to end over loopback
//! with tonic's client and envoy-types' generated stubs: the answers for
//! each kind of descriptor, and one budget shared with the HTTP gateway.
//! (`tests/rls_python.rs` talks to it with Python's grpcio.)
#![cfg(feature = "grpc")]
// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../quota-redis/tests/common/private_redis.rs"]
mod private_redis;
mod support;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{rate_limit::Unit, Code};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use private_redis::PrivateRedis;
use quota_redis::FailurePolicy;
use support::{setup, Gw, Http, Upstream};
use tonic::transport::Channel;

const DOMAIN: &str = "quota";

async fn client(gw: &Gw) -> RateLimitServiceClient<Channel> {
    let addr = gw
        .grpc_addr
        .expect("the gateway serves the rate limit service");
    RateLimitServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: (*k).to_owned(),
                value: (*v).to_owned(),
            })
            .collect(),
        ..RateLimitDescriptor::default()
    }
}

fn request(entries: &[(&str, &str)]) -> RateLimitRequest {
    RateLimitRequest {
        domain: DOMAIN.to_owned(),
        descriptors: vec![descriptor(entries)],
        hits_addend: 0,
    }
}

async fn ask(c: &mut RateLimitServiceClient<Channel>, req: RateLimitRequest) -> RateLimitResponse {
    c.should_rate_limit(req).await.unwrap().into_inner()
}

fn header<'a>(res: &'a RateLimitResponse, name: &str) -> Option<&'a str> {
    res.response_headers_to_add
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(bytes)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admitted_then_refused_with_the_seeds_answer() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).grpc(DOMAIN).start().await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let mut c = client(&gw).await;

    for remaining in [2, 1, 0] {
        let res = ask(
            &mut c,
            request(&[("api_key", &key), ("endpoint", "txt2img")]),
        )
        .await;
        assert_eq!(res.overall_code, Code::Ok as i32, "{res:?}");
        let status = &res.statuses[0];
        assert_eq!(status.code, Code::Ok as i32);
        let limit = status.current_limit.as_ref().unwrap();
        assert_eq!(
            (limit.requests_per_unit, limit.unit),
            (3, Unit::Minute as i32)
        );
        assert_eq!(limit.name, "minute");
        assert_eq!(status.limit_remaining, remaining);
        assert!(status.duration_until_reset.is_some());
        assert_eq!(header(&res, "x-ratelimit-limit"), Some("3"));
        assert_eq!(
            header(&res, "x-ratelimit-remaining"),
            Some(remaining.to_string().as_str())
        );
        assert!(res.raw_body.is_empty());
    }
    let refused = ask(
        &mut c,
        request(&[("api_key", &key), ("endpoint", "txt2img")]),
    )
    .await;
    assert_eq!(refused.overall_code, Code::OverLimit as i32);
    assert_eq!(refused.statuses[0].code, Code::OverLimit as i32);
    assert_eq!(refused.statuses[0].limit_remaining, 0);
    assert_eq!(
        header(&refused, "x-quota-status"),
        None,
        "a 429 is Envoy's own status"
    );

    // The gateway's own 429 for the same caller, right after: the same
    // body, the same headers (Envoy sends `raw_body` and these headers).
    let http_refusal = http.post(&gw.url("/v1/txt2img"), Some(&key)).await;
    assert_eq!(http_refusal.status, 429);
    assert_eq!(json(&refused.raw_body), http_refusal.json());
    for name in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "retry-after",
        "content-type",
    ] {
        assert_eq!(
            header(&refused, name).is_some(),
            http_refusal.header(name).is_some(),
            "{name}"
        );
    }
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(
        header(&refused, "content-length"),
        None,
        "Envoy sets its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_budget_through_envoy_and_through_the_proxy() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).grpc(DOMAIN).start().await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let mut c = client(&gw).await;

    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
        200
    );
    // Envoy's `:path`, with a query and an escaped letter: the same
    // endpoint under the gateway's canonical-path rules.
    let res = ask(
        &mut c,
        request(&[("api_key", &key), ("path", "/v1/%74xt2img?n=1")]),
    )
    .await;
    assert_eq!(res.overall_code, Code::Ok as i32, "{res:?}");
    assert_eq!(res.statuses[0].limit_remaining, 1);
    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
        200
    );
    let res = ask(
        &mut c,
        request(&[("api_key", &key), ("endpoint", "txt2img")]),
    )
    .await;
    assert_eq!(res.overall_code, Code::OverLimit as i32);
    assert_eq!(
        http.post(&gw.url("/v1/txt2img"), Some(&key)).await.status,
        429
    );
    // Only what the proxy admitted reached the upstream.
    assert_eq!(up.seen().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_addend_is_the_cost_and_a_refusal_consumes_nothing() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).grpc(DOMAIN).start().await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let mut c = client(&gw).await;

    let mut req = request(&[("api_key", &key), ("endpoint", "txt2img")]);
    req.hits_addend = 2;
    let res = ask(&mut c, req.clone()).await;
    assert_eq!(res.overall_code, Code::Ok as i32);
    assert_eq!(res.statuses[0].limit_remaining, 1);
    // Two more do not fit in the one left: refused, and nothing taken.
    let res = ask(&mut c, req.clone()).await;
    assert_eq!(res.overall_code, Code::OverLimit as i32);
    // The descriptor's own hits_addend wins over the request's.
    req.descriptors[0].hits_addend = Some(UInt64Value { value: 1 });
    let res = ask(&mut c, req).await;
    assert_eq!(res.overall_code, Code::Ok as i32, "{res:?}");
    assert_eq!(res.statuses[0].limit_remaining, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_resolved_upstream_of_envoy() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).grpc(DOMAIN).start().await;
    let mut c = client(&gw).await;
    let entries = [
        ("account", "acct-envoy"),
        ("tier", "premium"),
        ("endpoint", "txt2img"),
    ];
    let res = ask(&mut c, request(&entries)).await;
    assert_eq!(res.overall_code, Code::Ok as i32, "{res:?}");
    let limit = res.statuses[0].current_limit.as_ref().unwrap();
    assert_eq!(limit.requests_per_unit, 300);
    assert_eq!(res.statuses[0].limit_remaining, 299);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_gateway_refuses_is_over_limit_with_its_answer() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).grpc(DOMAIN).start().await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let mut c = client(&gw).await;

    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("api_key", "qk_nobody"), ("endpoint", "txt2img")], "401"),
        (
            &[("api_key", &key), ("endpoint", "no-such-endpoint")],
            "404",
        ),
        (&[("api_key", &key), ("endpoint", "../admin")], "400"),
    ];
    for (entries, status) in cases {
        let res = ask(&mut c, request(entries)).await;
        assert_eq!(res.overall_code, Code::OverLimit as i32, "{entries:?}");
        assert_eq!(header(&res, "x-quota-status"), Some(status), "{entries:?}");
        assert!(json(&res.raw_body)["message"].is_string(), "{entries:?}");
        assert_eq!(header(&res, "content-type"), Some("application/json"));
        assert!(res.statuses[0].current_limit.is_none());
    }
    // None of it was charged.
    let res = ask(
        &mut c,
        request(&[("api_key", &key), ("endpoint", "txt2img")]),
    )
    .await;
    assert_eq!(res.statuses[0].limit_remaining, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_envoy_should_not_send_are_invalid_arguments() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).grpc(DOMAIN).start().await;
    let mut c = client(&gw).await;
    let ok = [("api_key", "k"), ("endpoint", "txt2img")];

    let mut wrong_domain = request(&ok);
    wrong_domain.domain = "other".into();
    let mut none = request(&ok);
    none.descriptors.clear();
    let mut seventeen = request(&ok);
    seventeen.descriptors = vec![descriptor(&ok); 17];
    let mut negative = request(&ok);
    negative.descriptors[0].is_negative_hits = true;
    let cases = [
        (wrong_domain, "domain"),
        (none, "no descriptor"),
        (seventeen, "at most 16"),
        (negative, "negative"),
        (
            request(&[("api-key", "k"), ("endpoint", "txt2img")]),
            "\"api-key\"",
        ),
        (request(&[("endpoint", "txt2img")]), "caller"),
        (request(&[("api_key", "k")]), "endpoint"),
        (
            request(&[("account", "a"), ("tier", "gold"), ("endpoint", "txt2img")]),
            "tier \"gold\"",
        ),
    ];
    for (req, says) in cases {
        let status = c.should_rate_limit(req).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains(says),
            "{:?} lacks {says:?}",
            status.message()
        );
    }
    assert!(gw.logs().contains("a request Envoy should not send"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_answer_follows_the_failure_policy() {
    let up = Upstream::start().await;
    let mut redis = tokio::task::block_in_place(PrivateRedis::start);
    let gw = setup(&up.url())
        .redis(&redis.url(), None, FailurePolicy::Closed)
        .grpc(DOMAIN)
        .start()
        .await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let mut c = client(&gw).await;
    let entries = [("api_key", key.as_str()), ("endpoint", "txt2img")];
    assert_eq!(
        ask(&mut c, request(&entries)).await.overall_code,
        Code::Ok as i32
    );

    tokio::task::block_in_place(|| redis.kill());
    // Fail closed: refused (Envoy must not let it through), with the
    // gateway's 503 answer.
    let res = ask(&mut c, request(&entries)).await;
    assert_eq!(res.overall_code, Code::OverLimit as i32, "{res:?}");
    assert_eq!(header(&res, "x-quota-status"), Some("503"));
    assert!(json(&res.raw_body)["message"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_descriptors_are_decided_all_or_nothing() {
    let up = Upstream::start().await;
    let gw = setup(&up.url()).grpc(DOMAIN).start().await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let mut c = client(&gw).await;
    let txt2img = [("api_key", key.as_str()), ("endpoint", "txt2img")];
    // `burst`: 1 per 2 s.
    let burst = [("api_key", key.as_str()), ("endpoint", "burst")];
    let both = RateLimitRequest {
        domain: DOMAIN.to_owned(),
        descriptors: vec![descriptor(&txt2img), descriptor(&burst)],
        hits_addend: 0,
    };

    let res = ask(&mut c, both.clone()).await;
    assert_eq!(res.overall_code, Code::Ok as i32, "{res:?}");
    assert_eq!(res.statuses.len(), 2);
    assert_eq!(res.statuses[0].limit_remaining, 2);
    assert_eq!(res.statuses[1].limit_remaining, 0);
    // The headers are the tightest descriptor's.
    assert_eq!(header(&res, "x-ratelimit-limit"), Some("1"));

    // `burst` is spent: the second descriptor is refused, and the first
    // gives back what it took.
    let res = ask(&mut c, both).await;
    assert_eq!(res.overall_code, Code::OverLimit as i32, "{res:?}");
    let codes: Vec<i32> = res.statuses.iter().map(|s| s.code).collect();
    assert_eq!(codes, [Code::Ok as i32, Code::OverLimit as i32]);
    assert_eq!(
        res.statuses[1]
            .current_limit
            .as_ref()
            .unwrap()
            .requests_per_unit,
        1
    );
    let res = ask(&mut c, request(&txt2img)).await;
    assert_eq!(
        res.statuses[0].limit_remaining, 1,
        "one unit taken, not two"
    );

    // A refused first descriptor: the ones after it are not checked.
    let mut refused_first = request(&burst);
    refused_first.descriptors.push(descriptor(&txt2img));
    let res = ask(&mut c, refused_first).await;
    let codes: Vec<i32> = res.statuses.iter().map(|s| s.code).collect();
    assert_eq!(codes, [Code::OverLimit as i32, Code::Unknown as i32]);
    let res = ask(&mut c, request(&txt2img)).await;
    assert_eq!(res.statuses[0].limit_remaining, 0);

    let metrics =
        String::from_utf8_lossy(&http.get(&gw.url("/metrics"), None).await.body).into_owned();
    assert!(
        metrics.contains("quota_refunds_total{reason=\"withdrawn\"} 1"),
        "{metrics}"
    );
}
