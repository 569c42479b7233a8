//! Replaying a trace of requests through a policy, offline: what the
//! policy would have admitted and refused, per endpoint and per limit.
//!
//! Each request is decided by a fresh [`MemoryStore`] at its own timestamp
//! (the same engine as the gateway's), in the order given, so a trace
//! should be in time order. `quota simulate` reads such traces from CSV.
//!
//! ```
//! use quota_core::policy::Policy;
//! use quota_core::replay::{replay, Row};
//!
//! let at = 1_700_000_020_000; // 40 s into a minute: four requests in one second
//! let rows: Vec<Row> = (0..4).map(|i| Row { at: at + i, key: "k".into(), endpoint: "txt2img".into(), tier: None }).collect();
//! let summary = replay(&Policy::seed(), &rows, "basic", || {});
//! assert_eq!((summary.total.admitted, summary.total.refused), (3, 1));
//! assert_eq!(summary.total.refused_by["minute"], 1);
//! ```

use std::collections::BTreeMap;

use crate::policy::{PlanError, Policy, Request};
use crate::{MemoryStore, Timestamp};

/// One row of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Milliseconds since the epoch.
    pub at: u64,
    /// The account key.
    pub key: String,
    /// The endpoint (after the prefix).
    pub endpoint: String,
    /// The tier, when the row names one.
    pub tier: Option<String>,
}

/// Counts for one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Counts {
    /// Admitted requests.
    pub admitted: u64,
    /// Refused requests.
    pub refused: u64,
    /// Refused requests by the limit reported (`minute`, `daily`).
    pub refused_by: BTreeMap<String, u64>,
}

/// The result of a replay.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Summary {
    /// Rows replayed.
    pub requests: u64,
    /// Per endpoint.
    pub endpoints: BTreeMap<String, Counts>,
    /// All endpoints together.
    pub total: Counts,
    /// Rows that could not be decided (unknown endpoint or tier), by reason.
    pub errors: BTreeMap<String, u64>,
    /// `(time since the first row in ms, admitted)` for the plot.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub timeline: Vec<(u64, bool)>,
}

/// Replays `rows` through `policy`, calling `progress` after each.
pub fn replay(
    policy: &Policy,
    rows: &[Row],
    default_tier: &str,
    mut progress: impl FnMut(),
) -> Summary {
    let store = MemoryStore::new();
    let mut s = Summary::default();
    let start = rows.first().map_or(0, |r| r.at);
    for row in rows {
        s.requests += 1;
        let tier = row.tier.as_deref().unwrap_or(default_tier);
        let req = Request {
            account: &row.key,
            tier,
            endpoint: &row.endpoint,
            cost: 1,
        };
        match store.check(policy, &req, Timestamp::from_millis(row.at)) {
            Ok(d) => {
                let admitted = d.is_admitted();
                let counts = s.endpoints.entry(row.endpoint.clone()).or_default();
                for c in [counts, &mut s.total] {
                    if admitted {
                        c.admitted += 1;
                    } else {
                        c.refused += 1;
                        let by = d.refused_by().map_or("unknown", |r| r.name());
                        *c.refused_by.entry(by.to_owned()).or_default() += 1;
                    }
                }
                s.timeline.push((row.at.saturating_sub(start), admitted));
            }
            Err(e) => {
                let reason = match e {
                    PlanError::UnknownEndpoint(_) => "unknown endpoint".to_owned(),
                    PlanError::UnknownTier(t) => format!("unknown tier {t:?}"),
                    other => other.to_string(),
                };
                *s.errors.entry(reason).or_default() += 1;
            }
        }
        progress();
    }
    s
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn row(at: u64, endpoint: &str) -> Row {
        Row {
            at,
            key: "k".into(),
            endpoint: endpoint.into(),
            tier: None,
        }
    }

    #[test]
    fn replay_counts_minute_refusals_per_endpoint() {
        let base = 1_700_000_020_000; // 40 s into a UTC minute: five rows in one second
        let rows: Vec<Row> = (0..5)
            .map(|i| row(base + i, "txt2img"))
            .chain([row(base, "nope")])
            .collect();
        let s = replay(&Policy::seed(), &rows, "basic", || {});
        let c = &s.endpoints["txt2img"];
        assert_eq!((c.admitted, c.refused), (3, 2));
        assert_eq!(c.refused_by["minute"], 2);
        assert_eq!(s.errors["unknown endpoint"], 1);
        assert_eq!(s.total.admitted, 3);
    }
}
