//! `GET /v1/limits`: the caller's tier and, for every endpoint, its limits,
//! what remains and when each window resets (like GitHub's `/rate_limit`).
//!
//! Nothing is consumed: the store is asked with `peek`. The request itself
//! is not counted against any limit.

use quota_core::account::{Account, Identity};
use quota_core::policy::{Policy, Request, Scope};
use quota_core::{Store, StoreError, Timestamp};
use serde_json::{json, Map, Value};

/// The report for one account.
pub(crate) async fn report<S: Store>(
    policy: &Policy,
    store: &S,
    who: &Identity,
    account: Option<&Account>,
    now: Timestamp,
) -> Result<Value, StoreError> {
    let mut resources = Map::new();
    for endpoint in policy.endpoints() {
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
        let limits: Vec<Value> = plan
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
                let mut v = json!({
                    "name": limit.name(),
                    "limit": count,
                    "remaining": remaining,
                    "used": count.saturating_sub(remaining),
                    "window_seconds": seconds(limit.limit().window_ms()),
                    "algorithm": limit.limit().algorithm().as_str(),
                    "scope": if limit.scope() == Scope::Tier { "tier" } else { "endpoint" },
                    "reset_after_seconds": o.reset_after_ms.div_ceil(1000),
                    "reset": reset_ms.div_ceil(1000),
                });
                if matches!(limit.scope(), Scope::PerMatch(_)) {
                    v["per_match"] = json!(true);
                }
                v
            })
            .collect();
        resources.insert(
            endpoint.path().to_owned(),
            json!({ "price": endpoint.price().to_string(), "limits": limits }),
        );
    }
    let mut out = json!({
        "account": who.account,
        "tier": who.tier,
        "time": now.as_millis() / 1000,
        "resources": resources,
    });
    if let Some(a) = account {
        out["credit"] = json!(a.credit.to_string());
    }
    Ok(out)
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
}
