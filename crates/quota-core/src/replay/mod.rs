//! Replaying a trace of requests through a policy, offline: what the
//! policy would have admitted and refused, per endpoint and per limit.
//!
//! A trace is read from CSV text by [`Trace::parse`], which refuses what
//! would make the replay wrong (rows out of time order, a tier the policy
//! does not have). Each request is then decided by a fresh [`MemoryStore`]
//! at its own timestamp (the same engine as the gateway's), and
//! [`Chart::build`] bins the decisions on the policy's windows for a plot.
//! `quota simulate` is these three steps and a table.
//!
//! ```
//! use quota_core::policy::Policy;
//! use quota_core::replay::{replay, Trace};
//!
//! let policy = Policy::seed();
//! // 40 s into a UTC minute: four requests in one second.
//! let csv = "timestamp_ms,key,endpoint\n1700000020000,k,txt2img\n1700000020001,k,txt2img\n\
//!            1700000020002,k,txt2img\n1700000020003,k,txt2img\n";
//! let trace = Trace::parse(csv, &policy, None).unwrap();
//! let summary = replay(&policy, &trace.rows, &trace.default_tier, || {});
//! assert_eq!((summary.total.admitted, summary.total.refused), (3, 1));
//! assert_eq!(summary.total.refused_by["minute"], 1);
//! ```

mod chart;
mod trace;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::policy::{PlanError, Policy, Request};
use crate::{MemoryStore, Timestamp};

pub use chart::{Bin, Chart, LimitLine, Panel, MAX_BINS, MAX_PANELS};
pub use trace::{Trace, TraceError, TraceWarning};

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

/// What happened to one decided row, for the plot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The row's index in the replayed rows.
    pub row: usize,
    /// `None` if admitted, else the refusing limit's index in
    /// [`Summary::limits`].
    pub refused_by: Option<usize>,
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
    /// Rows that could not be decided (unknown endpoint), by reason.
    pub errors: BTreeMap<String, u64>,
    /// The names of the limits that refused something, in the order first met.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub limits: Vec<String>,
    /// Every decided row, in order, for the plot.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub timeline: Vec<Event>,
}

impl Summary {
    /// The summary as a text table: a line per endpoint, then `TOTAL`, a
    /// column per refusing limit, then the rows not decided.
    pub fn table(&self) -> String {
        let mut names: Vec<&String> = self.total.refused_by.keys().collect();
        names.sort();
        let mut out = format!("{:<24} {:>10} {:>10}", "endpoint", "admitted", "refused");
        for n in &names {
            let _ = write!(out, " {:>12}", format!("refused:{n}"));
        }
        out.push('\n');
        let rows = self.endpoints.iter().map(|(e, c)| (e.as_str(), c));
        for (name, c) in rows.chain([("TOTAL", &self.total)]) {
            let _ = write!(out, "{name:<24} {:>10} {:>10}", c.admitted, c.refused);
            for n in &names {
                let _ = write!(out, " {:>12}", c.refused_by.get(*n).copied().unwrap_or(0));
            }
            out.push('\n');
        }
        for (reason, n) in &self.errors {
            let _ = writeln!(out, "not decided ({reason}): {n}");
        }
        out
    }
}

/// Replays `rows` through `policy`, calling `progress` after each. Rows that
/// name no tier are decided on `default_tier`.
pub fn replay(
    policy: &Policy,
    rows: &[Row],
    default_tier: &str,
    mut progress: impl FnMut(),
) -> Summary {
    let store = MemoryStore::new();
    let mut s = Summary::default();
    for (i, row) in rows.iter().enumerate() {
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
                let by = (!d.is_admitted()).then(|| d.refused_by().map_or("unknown", |r| r.name()));
                let counts = s.endpoints.entry(row.endpoint.clone()).or_default();
                for c in [counts, &mut s.total] {
                    match by {
                        None => c.admitted += 1,
                        Some(by) => {
                            c.refused += 1;
                            *c.refused_by.entry(by.to_owned()).or_default() += 1;
                        }
                    }
                }
                let refused_by = by.map(|name| {
                    s.limits.iter().position(|n| n == name).unwrap_or_else(|| {
                        s.limits.push(name.to_owned());
                        s.limits.len() - 1
                    })
                });
                s.timeline.push(Event { row: i, refused_by });
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

    pub(super) fn row(at: u64, endpoint: &str) -> Row {
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
            .chain([row(base + 5, "nope")])
            .collect();
        let s = replay(&Policy::seed(), &rows, "basic", || {});
        let c = &s.endpoints["txt2img"];
        assert_eq!((c.admitted, c.refused), (3, 2));
        assert_eq!(c.refused_by["minute"], 2);
        assert_eq!(s.errors["unknown endpoint"], 1);
        assert_eq!(s.total.admitted, 3);
        assert_eq!(s.limits, ["minute"]);
        assert_eq!(s.timeline.len(), 5);
        assert_eq!(
            s.timeline[3],
            Event {
                row: 3,
                refused_by: Some(0)
            }
        );
        let table = s.table();
        assert!(table.contains("refused:minute"), "{table}");
        assert!(
            table.contains("not decided (unknown endpoint): 1"),
            "{table}"
        );
    }
}
