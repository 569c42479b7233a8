//! The rules of `docs/contract.md` sections 1.2 to 4 (Premium's shared
//! budget, endpoints, windows, the multi-limit decision, the headers), one
//! test each.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use quota_core::policy::{PlanError, Policy, Request};
use quota_core::{MemoryStore, Timestamp};

/// 2026-11-28T10:00:00Z, the start of a UTC minute (and 10 h into the UTC day).
const T0: u64 = 1_795_860_000_000;

fn at(ms_after: u64) -> Timestamp {
    Timestamp::from_millis(T0 + ms_after)
}

fn req<'a>(account: &'a str, tier: &'a str, endpoint: &'a str) -> Request<'a> {
    Request {
        account,
        tier,
        endpoint,
        cost: 1,
    }
}

fn header<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
}

#[test]
fn the_minute_window_is_the_utc_minute() {
    assert_eq!(T0 % 60_000, 0);
    let (p, s) = (Policy::seed(), MemoryStore::new());
    let r = req("a", "basic", "txt2video");
    assert!(s.check(&p, &r, at(59_000)).unwrap().is_admitted());
    let refused = s.check(&p, &r, at(59_999)).unwrap();
    assert_eq!(refused.retry_after_secs(), Some(1), "1 ms rounds up to 1 s");
    assert!(
        s.check(&p, &r, at(60_000)).unwrap().is_admitted(),
        "a new UTC minute"
    );
}

#[test]
fn the_daily_window_resets_at_midnight_utc() {
    let (p, s) = (Policy::seed(), MemoryStore::new());
    let r = req("a", "basic", "txt2video"); // 1/min, 15/day
    let midnight = T0 - T0 % 86_400_000 + 86_400_000;
    let start = midnight - 15 * 60_000;
    for i in 0..15 {
        assert!(s
            .check(
                &p,
                &r,
                Timestamp::from_millis(start + i * 60_000 - 15 * 60_000)
            )
            .unwrap()
            .is_admitted());
    }
    let d = s
        .check(&p, &r, Timestamp::from_millis(midnight - 1000))
        .unwrap();
    assert_eq!(d.refused_by().unwrap().name(), "daily");
    assert_eq!(d.retry_after_secs(), Some(1));
    assert!(s
        .check(&p, &r, Timestamp::from_millis(midnight))
        .unwrap()
        .is_admitted());
}

#[test]
fn refused_request_consumes_nothing() {
    let (p, s) = (Policy::seed(), MemoryStore::new());
    let r = req("a", "basic", "txt2img"); // 3/min, 100/day
    for _ in 0..3 {
        assert!(s.check(&p, &r, at(0)).unwrap().is_admitted());
    }
    for _ in 0..10 {
        assert!(!s.check(&p, &r, at(1000)).unwrap().is_admitted());
    }
    let next = s.check(&p, &r, at(60_000)).unwrap();
    assert!(next.is_admitted());
    assert_eq!(
        next.daily().unwrap().remaining(),
        96,
        "the ten refusals took nothing from the day"
    );
}

#[test]
fn a_daily_refusal_is_reported_over_a_minute_refusal() {
    let (p, s) = (Policy::seed(), MemoryStore::new());
    let r = req("a", "basic", "txt2video");
    for i in 0..15 {
        assert!(s.check(&p, &r, at(i * 60_000)).unwrap().is_admitted());
    }
    // Both the minute (1/min, used at 14 min) and the day refuse now.
    let d = s.check(&p, &r, at(14 * 60_000 + 10)).unwrap();
    assert_eq!(d.statuses().iter().filter(|st| !st.admits()).count(), 2);
    assert_eq!(d.refused_by().unwrap().name(), "daily");
    let h = d.headers();
    assert_eq!(header(&h, "X-RateLimit-Type"), Some("daily"));
    let until_midnight = (86_400_000 - (T0 + 14 * 60_000 + 10) % 86_400_000).div_ceil(1000);
    assert_eq!(
        header(&h, "Retry-After"),
        Some(until_midnight.to_string().as_str())
    );
}

#[test]
fn a_429_carries_the_six_headers_of_the_contract() {
    let (p, s) = (Policy::seed(), MemoryStore::new());
    let r = req("a", "basic", "txt2img");
    for _ in 0..3 {
        s.check(&p, &r, at(0)).unwrap();
    }
    let d = s.check(&p, &r, at(19_500)).unwrap();
    let h = d.headers();
    let names: Vec<&str> = h.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Daily-Limit",
            "X-RateLimit-Daily-Remaining",
            "X-RateLimit-Type",
            "Retry-After"
        ]
    );
    let values: Vec<&str> = h.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["3", "0", "100", "97", "minute", "41"]);
    assert_eq!(
        quota_core::TOO_MANY_ATTEMPTS_BODY,
        r#"{"message":"Too Many Attempts."}"#
    );
}

#[test]
fn retry_after_is_never_zero_on_a_refusal() {
    let (p, s) = (Policy::seed(), MemoryStore::new());
    let r = req("a", "basic", "txt2video");
    s.check(&p, &r, at(0)).unwrap();
    for ms in [59_001, 59_999] {
        assert_eq!(s.check(&p, &r, at(ms)).unwrap().retry_after_secs(), Some(1));
    }
}

#[test]
fn admitted_requests_carry_the_limit_and_remaining_headers() {
    let (p, s) = (Policy::seed(), MemoryStore::new());
    let d = s.check(&p, &req("a", "basic", "img2txt"), at(0)).unwrap();
    let h = d.headers();
    assert_eq!(header(&h, "X-RateLimit-Limit"), Some("5"));
    assert_eq!(header(&h, "X-RateLimit-Remaining"), Some("4"));
    assert_eq!(header(&h, "X-RateLimit-Daily-Limit"), Some("100"));
    assert_eq!(header(&h, "X-RateLimit-Daily-Remaining"), Some("99"));
    assert_eq!(header(&h, "X-RateLimit-Type"), None);
    assert_eq!(header(&h, "Retry-After"), None);
}

#[test]
fn an_unlimited_quantity_sends_no_header() {
    let (p, s) = (Policy::seed(), MemoryStore::new());
    let d = s.check(&p, &req("a", "premium", "txt2img"), at(0)).unwrap();
    let h = d.headers();
    assert_eq!(header(&h, "X-RateLimit-Limit"), Some("300"));
    assert_eq!(header(&h, "X-RateLimit-Daily-Limit"), None);
    assert_eq!(header(&h, "X-RateLimit-Daily-Remaining"), None);
}

#[test]
fn premium_shares_one_budget_across_all_endpoints() {
    let (p, s) = (Policy::seed(), MemoryStore::new());
    let endpoints = ["txt2img", "txt2video", "prompt/a", "videos/replace"];
    for i in 0..300 {
        assert!(s
            .check(&p, &req("a", "premium", endpoints[i % 4]), at(0))
            .unwrap()
            .is_admitted());
    }
    let d = s.check(&p, &req("a", "premium", "img2txt"), at(1)).unwrap();
    assert!(!d.is_admitted());
    assert_eq!(d.refused_by().unwrap().name(), "minute");
    assert!(
        s.check(&p, &req("b", "premium", "img2txt"), at(1))
            .unwrap()
            .is_admitted(),
        "other accounts are apart"
    );
}

#[test]
fn prompt_endpoints_share_one_budget() {
    let (p, s) = (Policy::seed(), MemoryStore::new());
    for i in 0..10 {
        let ep = format!("prompt/e{}", i % 3);
        assert!(s
            .check(&p, &req("a", "basic", &ep), at(0))
            .unwrap()
            .is_admitted());
    }
    assert!(!s
        .check(&p, &req("a", "basic", "prompt/other"), at(0))
        .unwrap()
        .is_admitted());
}

#[test]
fn a_per_match_pattern_gives_each_endpoint_its_own_budget() {
    let src = "[[endpoints]]\npath = \"prompt/*\"\n[[tiers]]\nname = \"t\"\nlimits = [{ endpoint = \"prompt/*\", per_match = true, window = \"1m\", count = 2 }]\n";
    let (p, s) = (Policy::from_toml(src).unwrap(), MemoryStore::new());
    for ep in ["prompt/a", "prompt/b"] {
        assert!(s
            .check(&p, &req("x", "t", ep), at(0))
            .unwrap()
            .is_admitted());
        assert!(s
            .check(&p, &req("x", "t", ep), at(0))
            .unwrap()
            .is_admitted());
        assert!(!s
            .check(&p, &req("x", "t", ep), at(0))
            .unwrap()
            .is_admitted());
    }
}

#[test]
fn a_tier_wide_limit_and_an_endpoint_limit_are_decided_together() {
    let src = "[[endpoints]]\npath = \"a\"\n[[endpoints]]\npath = \"b\"\n[[tiers]]\nname = \"t\"\nlimits = [\n{ window = \"1m\", count = 3, name = \"tier\" },\n{ endpoint = \"a\", window = \"1m\", count = 2 },\n]\n";
    let (p, s) = (Policy::from_toml(src).unwrap(), MemoryStore::new());
    assert!(s
        .check(&p, &req("x", "t", "a"), at(0))
        .unwrap()
        .is_admitted());
    assert!(s
        .check(&p, &req("x", "t", "a"), at(0))
        .unwrap()
        .is_admitted());
    let refused = s.check(&p, &req("x", "t", "a"), at(0)).unwrap();
    assert_eq!(refused.refused_by().unwrap().name(), "minute");
    // The refusal on `a` took nothing from the tier budget: one left for `b`.
    assert!(s
        .check(&p, &req("x", "t", "b"), at(0))
        .unwrap()
        .is_admitted());
    assert_eq!(
        s.check(&p, &req("x", "t", "b"), at(0))
            .unwrap()
            .refused_by()
            .unwrap()
            .name(),
        "tier"
    );
}

#[test]
fn unknown_endpoints_and_tiers_are_errors_not_admissions() {
    let (p, s) = (Policy::seed(), MemoryStore::new());
    assert_eq!(
        s.check(&p, &req("a", "basic", "nope"), at(0)).unwrap_err(),
        PlanError::UnknownEndpoint("nope".into())
    );
    assert_eq!(
        s.check(&p, &req("a", "gold", "txt2img"), at(0))
            .unwrap_err(),
        PlanError::UnknownTier("gold".into())
    );
}

#[test]
fn a_cost_larger_than_a_whole_window_is_an_error() {
    let p = Policy::seed();
    let e = p
        .plan(&Request {
            account: "a",
            tier: "basic",
            endpoint: "txt2video",
            cost: 2,
        })
        .unwrap_err();
    assert!(
        matches!(
            e,
            PlanError::CostExceedsLimit {
                cost: 2,
                count: 1,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn peek_reports_without_consuming() {
    let (p, s) = (Policy::seed(), MemoryStore::new());
    let r = req("a", "basic", "txt2img");
    let plan = p.plan(&r).unwrap();
    for _ in 0..5 {
        let o = s.peek_now(&plan, at(0));
        assert_eq!(o[0].remaining, 2);
    }
    assert_eq!(s.decide_now(&plan, at(0))[0].remaining, 2);
    assert_eq!(s.peek_now(&plan, at(0))[0].remaining, 1);
}

#[test]
fn ietf_headers_and_problem_body_follow_the_draft() {
    let (p, s) = (Policy::seed(), MemoryStore::new());
    let r = req("a", "basic", "txt2img");
    let d = s.check(&p, &r, at(19_000)).unwrap();
    let h = d.ietf_headers();
    assert_eq!(
        h[0],
        (
            "RateLimit-Policy",
            "\"minute\";q=3;w=60, \"daily\";q=100;w=86400".to_string()
        )
    );
    assert_eq!(h[1].0, "RateLimit");
    assert!(
        h[1].1.starts_with("\"minute\";r=2;t=41, \"daily\";r=99;t="),
        "{}",
        h[1].1
    );
    assert!(d.problem_body().is_none());
    s.check(&p, &r, at(19_000)).unwrap();
    s.check(&p, &r, at(19_000)).unwrap();
    let refused = s.check(&p, &r, at(19_000)).unwrap();
    let body: serde_json::Value = serde_json::from_str(&refused.problem_body().unwrap()).unwrap();
    assert_eq!(
        body["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    assert_eq!(body["status"], 429);
    assert_eq!(body["violated-policies"], serde_json::json!(["minute"]));
}

#[test]
fn the_memory_store_drops_buckets_whose_windows_have_passed() {
    let (p, s) = (Policy::seed(), MemoryStore::with_shards(1));
    for i in 0..1000 {
        s.check(&p, &req(&format!("acct-{i}"), "premium", "txt2img"), at(0))
            .unwrap();
    }
    assert_eq!(s.len(), 1000);
    s.sweep(at(59_999));
    assert_eq!(s.len(), 1000, "the minute is not over");
    s.sweep(at(60_000));
    assert!(s.is_empty());
    // And without an explicit sweep: traffic later in time sweeps as it goes.
    for i in 0..1000 {
        s.check(&p, &req(&format!("acct-{i}"), "premium", "txt2img"), at(0))
            .unwrap();
    }
    for i in 0..200 {
        s.check(
            &p,
            &req(&format!("late-{i}"), "premium", "txt2img"),
            at(120_000),
        )
        .unwrap();
    }
    assert!(s.len() <= 200, "expired buckets were swept: {}", s.len());
}

#[test]
fn a_key_decided_in_place_sweeps_the_others_as_time_passes() {
    let (p, s) = (Policy::seed(), MemoryStore::with_shards(1));
    for i in 0..1000 {
        s.check(&p, &req(&format!("acct-{i}"), "premium", "txt2img"), at(0))
            .unwrap();
    }
    s.check(&p, &req("hot", "premium", "txt2img"), at(0))
        .unwrap();
    assert_eq!(s.len(), 1001);
    // Only the one known key from now on: every decision is made in the
    // key's own record, and the clock alone makes the sweep due.
    s.check(&p, &req("hot", "premium", "txt2img"), at(120_000))
        .unwrap();
    assert_eq!(s.len(), 1, "expired buckets were swept");
}

#[test]
fn an_account_or_path_longer_than_a_store_keys_is_an_error() {
    let p = Policy::seed();
    let long = "k".repeat(70_000);
    let e = p.plan(&req(&long, "basic", "txt2img")).unwrap_err();
    assert_eq!(
        e,
        PlanError::TooLong {
            what: "account",
            len: 70_000
        }
    );
    let path = format!("prompt/{long}");
    let e = p.plan(&req("a", "basic", &path)).unwrap_err();
    assert!(
        matches!(
            e,
            PlanError::TooLong {
                what: "endpoint",
                ..
            }
        ),
        "{e}"
    );
    // Just under the bound still plans and decides.
    let ok = "k".repeat(65_535);
    assert!(MemoryStore::new()
        .check(&p, &req(&ok, "basic", "txt2img"), at(0))
        .unwrap()
        .is_admitted());
}
