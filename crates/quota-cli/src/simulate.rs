//! `quota simulate`: replay a CSV trace through a policy offline.
//!
//! Each row is `timestamp_ms,key,endpoint[,tier]` (a header line is skipped;
//! rows are replayed in file order, so they should be in time order). Every
//! request goes through the same engine as the gateway (a [`MemoryStore`]) at
//! the row's timestamp, and the decisions are counted per endpoint and per
//! refusing limit.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quota_core::policy::{PlanError, Policy, Request};
use quota_core::{MemoryStore, Timestamp};
use serde::Serialize;

use crate::cli::SimulateArgs;
use crate::policy_file;

/// One row of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Row {
    /// Milliseconds since the epoch.
    pub(crate) at: u64,
    /// The account key.
    pub(crate) key: String,
    /// The endpoint (after the prefix).
    pub(crate) endpoint: String,
    /// The tier, when the row names one.
    pub(crate) tier: Option<String>,
}

/// Counts for one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Counts {
    /// Admitted requests.
    pub(crate) admitted: u64,
    /// Refused requests.
    pub(crate) refused: u64,
    /// Refused requests by the limit reported (`minute`, `daily`).
    pub(crate) refused_by: BTreeMap<String, u64>,
}

/// The result of a replay.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Summary {
    /// Rows replayed.
    pub(crate) requests: u64,
    /// Per endpoint.
    pub(crate) endpoints: BTreeMap<String, Counts>,
    /// All endpoints together.
    pub(crate) total: Counts,
    /// Rows that could not be decided (unknown endpoint or tier), by reason.
    pub(crate) errors: BTreeMap<String, u64>,
    /// `(time since the first row in ms, admitted)` for the plot.
    #[serde(skip)]
    pub(crate) timeline: Vec<(u64, bool)>,
}

/// Reads a trace file.
pub(crate) fn read_trace(path: &Path) -> anyhow::Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_path(path)
        .with_context(|| format!("cannot read trace {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: bad CSV", path.display()))?;
        let line = record.position().map_or(i as u64 + 1, |p| p.line());
        let field = |n: usize| record.get(n).unwrap_or("");
        let Ok(at) = field(0).parse::<u64>() else {
            if i == 0 {
                continue; // a header line
            }
            anyhow::bail!(
                "{}:{line}: timestamp {:?} is not a number of milliseconds",
                path.display(),
                field(0)
            );
        };
        if record.len() < 3 || field(1).is_empty() || field(2).is_empty() {
            anyhow::bail!(
                "{}:{line}: expected timestamp_ms,key,endpoint[,tier]",
                path.display()
            );
        }
        let tier = record.get(3).filter(|t| !t.is_empty()).map(str::to_owned);
        rows.push(Row {
            at,
            key: field(1).to_owned(),
            endpoint: field(2).trim_start_matches('/').to_owned(),
            tier,
        });
    }
    Ok(rows)
}

/// Replays `rows` through `policy`, calling `progress` after each.
pub(crate) fn replay(
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

/// The summary as a table.
pub(crate) fn table(s: &Summary) -> String {
    let mut limit_names: Vec<&String> = s.total.refused_by.keys().collect();
    limit_names.sort();
    let mut out = format!("{:<24} {:>10} {:>10}", "endpoint", "admitted", "refused");
    for n in &limit_names {
        out.push_str(&format!(" {:>12}", format!("refused:{n}")));
    }
    out.push('\n');
    let mut line = |name: &str, c: &Counts| {
        out.push_str(&format!("{name:<24} {:>10} {:>10}", c.admitted, c.refused));
        for n in &limit_names {
            out.push_str(&format!(
                " {:>12}",
                c.refused_by.get(*n).copied().unwrap_or(0)
            ));
        }
        out.push('\n');
    };
    for (endpoint, c) in &s.endpoints {
        line(endpoint, c);
    }
    line("TOTAL", &s.total);
    for (reason, n) in &s.errors {
        out.push_str(&format!("not decided ({reason}): {n}\n"));
    }
    out
}

/// Runs `quota simulate`.
pub(crate) fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let policy =
        policy_file::load_or_seed(args.policy.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let default_tier = match &args.tier {
        Some(t) => t.clone(),
        None => policy
            .signup_tier()
            .or_else(|| policy.tiers().first())
            .map(|t| t.name().to_owned())
            .ok_or_else(|| anyhow::anyhow!("the policy has no tier"))?,
    };
    let rows = read_trace(&args.trace)?;
    let bar = ProgressBar::with_draw_target(
        Some(rows.len() as u64),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} requests ({per_sec}, eta {eta})")
    {
        bar.set_style(style);
    }
    let mut n = 0u64;
    let summary = replay(&policy, &rows, &default_tier, || {
        n += 1;
        if n % 4096 == 0 {
            bar.set_position(n);
        }
    });
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", table(&summary));
    }
    if let Some(out) = &args.plot {
        crate::plot::draw(out, &summary.timeline)?;
        eprintln!("plot written to {}", out.display());
    }
    Ok(())
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
