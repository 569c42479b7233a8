//! `GET /v1/limits`: the caller's tier and, for every endpoint, its limits,
//! what remains and when each window resets (like GitHub's `/rate_limit`).
//!
//! The answer keeps the order a reader needs: `account`, `tier`, `credit`,
//! `time`, then `resources` with the endpoints in the policy's order, each
//! limit's fields from its name to its algorithm. `?endpoint=NAME` answers
//! for that endpoint alone (a name the policy does not have is a 404 naming
//! it).
//!
//! Nothing is consumed: the store is asked with `peek`. The request itself
//! is not counted against any limit.

use quota_core::account::{Account, Identity};
use quota_core::policy::{Policy, Request, Scope};
use quota_core::{Store, StoreError, Timestamp};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};

/// The answer of `/v1/limits`, in the order it is written.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Report {
    account: String,
    tier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    credit: Option<String>,
    time: u64,
    resources: Resources,
}

/// Endpoints in the policy's order, written as one JSON object.
#[derive(Debug)]
struct Resources(Vec<(String, Resource)>);

impl Serialize for Resources {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, resource) in &self.0 {
            map.serialize_entry(name, resource)?;
        }
        map.end()
    }
}

#[derive(Debug, serde::Serialize)]
struct Resource {
    price: String,
    limits: Vec<LimitNow>,
}

/// One limit of an endpoint, now.
#[derive(Debug, serde::Serialize)]
struct LimitNow {
    name: String,
    limit: u64,
    remaining: u64,
    used: u64,
    window_seconds: Value,
    reset_after_seconds: u64,
    reset: u64,
    scope: &'static str,
    algorithm: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    per_match: bool,
}

/// `?endpoint=NAME` names an endpoint the policy does not have.
#[derive(Debug)]
pub(crate) struct UnknownEndpoint(pub(crate) String);

impl std::fmt::Display for UnknownEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no endpoint {:?} in the policy", self.0)
    }
}

/// The endpoint a `/v1/limits` query asks for (`endpoint=NAME`,
/// percent-decoded), if it asks for one.
pub(crate) fn asked_endpoint(query: Option<&str>) -> Option<String> {
    let value = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("endpoint="))?;
    let out = crate::percent::decode_bytes(value, false);
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The report for one account: every endpoint, or only `only`.
pub(crate) async fn report_of<S: Store>(
    policy: &Policy,
    store: &S,
    who: &Identity,
    account: Option<&Account>,
    now: Timestamp,
    only: Option<&str>,
) -> Result<Result<Report, UnknownEndpoint>, StoreError> {
    if let Some(name) = only.filter(|n| !policy.endpoints().iter().any(|e| e.path() == *n)) {
        return Ok(Err(UnknownEndpoint(name.to_owned())));
    }
    let mut resources = Vec::new();
    for endpoint in policy.endpoints() {
        if only.is_some_and(|n| n != endpoint.path()) {
            continue;
        }
        let req = Request {
            account: &who.account,
            tier: &who.tier,
            endpoint: endpoint.path(),
            cost: 1,
        };
        // An endpoint whose limits cannot be planned (an unknown tier) is left out.
        let Ok(plan) = policy.plan(&req) else {
            continue;
        };
        let outcomes = store.peek(&plan, now).await?;
        let limits = plan
            .limits()
            .zip(outcomes.iter())
            .map(|(limit, o)| {
                let count = limit.limit().count();
                // A peek answers as if this request were made: add it back.
                let remaining = if o.admits {
                    o.remaining.saturating_add(1).min(count)
                } else {
                    o.remaining
                };
                let reset_ms = now.as_millis().saturating_add(o.reset_after_ms);
                LimitNow {
                    name: limit.name().to_owned(),
                    limit: count,
                    remaining,
                    used: count.saturating_sub(remaining),
                    window_seconds: seconds(limit.limit().window_ms()),
                    reset_after_seconds: o.reset_after_ms.div_ceil(1000),
                    reset: reset_ms.div_ceil(1000),
                    scope: if limit.scope() == Scope::Tier {
                        "tier"
                    } else {
                        "endpoint"
                    },
                    algorithm: limit.limit().algorithm().as_str(),
                    per_match: matches!(limit.scope(), Scope::PerMatch(_)),
                }
            })
            .collect();
        let price = endpoint.price().to_string();
        resources.push((endpoint.path().to_owned(), Resource { price, limits }));
    }
    Ok(Ok(Report {
        account: who.account.clone(),
        tier: who.tier.clone(),
        credit: account.map(|a| a.credit.to_string()),
        time: now.as_millis() / 1000,
        resources: Resources(resources),
    }))
}

/// The report for one account, every endpoint, as a JSON value.
pub(crate) async fn report<S: Store>(
    policy: &Policy,
    store: &S,
    who: &Identity,
    account: Option<&Account>,
    now: Timestamp,
) -> Result<Value, StoreError> {
    let report = report_of(policy, store, who, account, now, None).await?;
    Ok(report.map_or(Value::Null, |r| {
        serde_json::to_value(r).unwrap_or(Value::Null)
    }))
}

/// Whole seconds as an integer, otherwise a fraction.
fn seconds(ms: u64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use quota_core::MemoryStore;

    #[tokio::test]
    async fn report_shows_remaining_without_consuming() {
        let policy = Policy::seed();
        let store = MemoryStore::new();
        let now = Timestamp::from_secs(1_700_000_020);
        let req = Request {
            account: "a",
            tier: "basic",
            endpoint: "txt2img",
            cost: 1,
        };
        store.check(&policy, &req, now).unwrap();
        let who = Identity {
            account: "a".into(),
            tier: "basic".into(),
        };
        for _ in 0..2 {
            let r = report(&policy, &store, &who, None, now).await.unwrap();
            let minute = &r["resources"]["txt2img"]["limits"][0];
            assert_eq!(minute["name"], "minute");
            assert_eq!(minute["limit"], 3);
            assert_eq!(minute["remaining"], 2);
            assert_eq!(minute["reset_after_seconds"], 20);
            assert_eq!(minute["reset"], 1_700_000_040);
            assert_eq!(r["resources"]["txt2video"]["limits"][0]["remaining"], 1);
        }
    }

    #[tokio::test]
    async fn spent_limit_reports_zero_remaining() {
        let policy = Policy::seed();
        let store = MemoryStore::new();
        let now = Timestamp::from_secs(1_700_000_000);
        let req = Request {
            account: "a",
            tier: "basic",
            endpoint: "txt2video",
            cost: 1,
        };
        store.check(&policy, &req, now).unwrap();
        let who = Identity {
            account: "a".into(),
            tier: "basic".into(),
        };
        let r = report(&policy, &store, &who, None, now).await.unwrap();
        assert_eq!(r["resources"]["txt2video"]["limits"][0]["remaining"], 0);
        assert_eq!(r["resources"]["txt2video"]["limits"][1]["remaining"], 14);
    }

    #[tokio::test]
    async fn fields_and_endpoints_keep_their_order() {
        let policy = Policy::seed();
        let who = Identity {
            account: "a".into(),
            tier: "basic".into(),
        };
        let now = Timestamp::from_secs(1_700_000_000);
        let r = report_of(&policy, &MemoryStore::new(), &who, None, now, None)
            .await
            .unwrap()
            .unwrap();
        let text = serde_json::to_string(&r).unwrap();
        let at = |s: &str| text.find(s).unwrap();
        assert!(
            at("\"account\"") < at("\"tier\"") && at("\"tier\"") < at("\"time\""),
            "{text}"
        );
        assert!(at("\"time\"") < at("\"resources\""), "{text}");
        // The policy's order: txt2img first, then img2img, not alphabetical.
        assert!(at("\"txt2img\"") < at("\"img2img\""), "{text}");
        assert!(
            at("\"name\"") < at("\"limit\"") && at("\"remaining\"") < at("\"algorithm\""),
            "{text}"
        );
    }

    #[test]
    fn the_endpoint_asked_for_is_percent_decoded() {
        assert_eq!(asked_endpoint(None), None);
        assert_eq!(asked_endpoint(Some("x=1")), None);
        assert_eq!(
            asked_endpoint(Some("x=1&endpoint=txt2img")).as_deref(),
            Some("txt2img")
        );
        assert_eq!(
            asked_endpoint(Some("endpoint=videos%2Freplace")).as_deref(),
            Some("videos/replace")
        );
        assert_eq!(
            asked_endpoint(Some("endpoint=100%")).as_deref(),
            Some("100%")
        );
    }
}
