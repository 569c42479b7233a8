//! `quota simulate`: replay a CSV trace through a policy offline.
//!
//! Each row is `timestamp_ms,key,endpoint[,tier]` (a header line is skipped;
//! rows are replayed in file order, so they should be in time order). Every
//! request goes through the same engine as the gateway (`quota_core::replay`) at
//! the row's timestamp, and the decisions are counted per endpoint and per
//! refusing limit.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quota_core::replay::{replay, Counts, Row, Summary};

use crate::cli::SimulateArgs;
use quota_gateway::policy_file;

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
