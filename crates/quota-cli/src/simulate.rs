//! `quota simulate`: replay a CSV trace through a policy offline
//! (`quota_core::replay`: the trace's checks, the replay, the table, the
//! plot's bins), with a progress bar and the plot drawn by [`crate::plot`].

use std::io::IsTerminal;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quota_core::replay::{replay, Chart, Trace};

use crate::cli::SimulateArgs;
use quota_gateway::policy_file;

/// Runs `quota simulate`.
pub(crate) fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let policy =
        policy_file::load_or_seed(args.policy.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = args.trace.display();
    let src = std::fs::read_to_string(&args.trace)
        .with_context(|| format!("cannot read trace {path}"))?;
    let trace = Trace::parse(&src, &policy, args.tier.as_deref()).map_err(|e| match e.line() {
        Some(line) => anyhow::anyhow!("{path}:{line}: {e}"),
        None => anyhow::anyhow!("--tier: {e}"),
    })?;
    for warning in &trace.warnings {
        eprintln!("quota simulate: warning: {path}: {warning}");
    }
    let target = match std::io::stderr().is_terminal() {
        true => ProgressDrawTarget::stderr(),
        false => ProgressDrawTarget::hidden(),
    };
    let bar = ProgressBar::with_draw_target(Some(trace.rows.len() as u64), target);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} requests ({per_sec})") {
        bar.set_style(style);
    }
    let mut n = 0u64;
    let summary = replay(&policy, &trace.rows, &trace.default_tier, || {
        n += 1;
        if n % 4096 == 0 {
            bar.set_position(n);
        }
    });
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.table());
    }
    if let Some(out) = &args.plot {
        let chart = Chart::build(&policy, &trace.rows, &trace.default_tier, &summary);
        crate::plot::draw(out, &chart)?;
        eprintln!("plot written to {}", out.display());
    }
    Ok(())
}
