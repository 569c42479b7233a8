//! `GET /v1/limits`: its fields and endpoints in the order a reader needs,
//! and `?endpoint=NAME` for one endpoint.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{gateway, Http};

/// Where `needle` is in `text`, or a panic naming both.
fn at(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("{needle} not in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_keep_the_account_first_and_the_policy_order_of_endpoints() {
    let (_up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let (_, key) = http.create_account(&gw).await;
    let res = http.get(&gw.url("/v1/limits"), Some(&key)).await;
    assert_eq!(res.status, 200);
    let text = String::from_utf8(res.body.to_vec()).unwrap();
    // account, tier, credit, time, then the endpoints.
    let fields = [
        "\"account\"",
        "\"tier\"",
        "\"credit\"",
        "\"time\"",
        "\"resources\"",
    ];
    for pair in fields.windows(2) {
        assert!(
            at(&text, pair[0]) < at(&text, pair[1]),
            "{pair:?} in {text}"
        );
    }
    // The test policy's order (txt2img, burst, paid, once, slow), not the alphabet's.
    let endpoints = [
        "\"txt2img\"",
        "\"burst\"",
        "\"paid\"",
        "\"once\"",
        "\"slow\"",
    ];
    for pair in endpoints.windows(2) {
        assert!(
            at(&text, pair[0]) < at(&text, pair[1]),
            "{pair:?} in {text}"
        );
    }
    // A limit's fields: its name first, its algorithm last.
    let limit = &text[at(&text, "\"limits\"")..];
    assert!(at(limit, "\"name\"") < at(limit, "\"limit\""), "{limit}");
    assert!(
        at(limit, "\"remaining\"") < at(limit, "\"algorithm\""),
        "{limit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_of_one_endpoint_and_a_404_naming_an_unknown_one() {
    let (_up, gw) = gateway(|b| b).await;
    let http = Http::default();
    let (id, key) = http.create_account(&gw).await;
    let res = http
        .get(&gw.url("/v1/limits?endpoint=paid"), Some(&key))
        .await;
    assert_eq!(res.status, 200);
    let v = res.json();
    assert_eq!(v["account"], id.as_str());
    let resources = v["resources"].as_object().unwrap();
    assert_eq!(resources.keys().collect::<Vec<_>>(), ["paid"]);
    assert_eq!(v["resources"]["paid"]["price"], "2.00");

    // Percent-encoded names are decoded; other parameters are ignored.
    let res = http
        .get(&gw.url("/v1/limits?x=1&endpoint=txt%32img"), Some(&key))
        .await;
    assert_eq!(res.status, 200);
    assert!(res.json()["resources"]["txt2img"]["limits"].is_array());

    let res = http
        .get(&gw.url("/v1/limits?endpoint=txt2imge"), Some(&key))
        .await;
    assert_eq!(res.status, 404);
    assert_eq!(
        res.json()["message"],
        "no endpoint \"txt2imge\" in the policy"
    );
    // Still a valid key first.
    let res = http.get(&gw.url("/v1/limits?endpoint=paid"), None).await;
    assert_eq!(res.status, 401);
}
