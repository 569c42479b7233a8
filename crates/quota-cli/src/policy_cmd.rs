//! `quota policy show|validate|export`.

use std::fmt::Write as _;

use quota_core::policy::{Count, Granted, Policy};
use quota_core::upload::FileKind;

use crate::cli::{PolicyAction, PolicyFormat};
use quota_gateway::policy_file;

/// Runs a `quota policy` action; returns the process exit code.
pub(crate) fn run(action: &PolicyAction) -> i32 {
    match action {
        PolicyAction::Show { file } => match policy_file::load_or_seed(file.as_deref()) {
            Ok(p) => {
                print!("{}", show(&p));
                0
            }
            Err(e) => fail(&e),
        },
        PolicyAction::Validate { file } => match policy_file::load(file) {
            Ok(p) => {
                println!(
                    "{}: ok ({} endpoints, {} tiers)",
                    file.display(),
                    p.endpoints().len(),
                    p.tiers().len()
                );
                0
            }
            Err(e) => fail(&e),
        },
        PolicyAction::Export { file, format } => match policy_file::load_or_seed(file.as_deref()) {
            Ok(p) => {
                let out = match format {
                    PolicyFormat::Toml => p.to_toml(),
                    PolicyFormat::Json => p.to_json(),
                };
                print!("{out}");
                if !out.ends_with('\n') {
                    println!();
                }
                0
            }
            Err(e) => fail(&e),
        },
    }
}

fn fail(e: &dyn std::fmt::Display) -> i32 {
    eprintln!("{e}");
    1
}

/// The name a limit gets when its spec names none (mirrors the core's rule).
fn default_name(window_ms: u64, written: &str) -> String {
    match window_ms {
        1_000 => "second".into(),
        60_000 => "minute".into(),
        3_600_000 => "hour".into(),
        86_400_000 => "daily".into(),
        604_800_000 => "week".into(),
        _ => written.to_owned(),
    }
}

/// The policy as readable tables.
pub(crate) fn show(policy: &Policy) -> String {
    let mut s = String::new();
    let spec = policy.spec();
    let _ = writeln!(s, "Endpoints ({})", policy.endpoints().len());
    let _ = writeln!(s, "  {:<24} {:>10}  kind", "path", "price");
    for e in policy.endpoints() {
        let price = if e.price().micros() == 0 {
            "free".to_owned()
        } else {
            format!("${}", e.price())
        };
        let kind = if e.is_pattern() { "pattern" } else { "exact" };
        let _ = writeln!(s, "  {:<24} {:>10}  {kind}", e.path(), price);
    }
    for tier in &spec.tiers {
        let granted = match tier.granted {
            Some(Granted::Signup) => " (granted at sign-up)",
            Some(Granted::Payment) => " (granted on payment)",
            None => "",
        };
        let _ = writeln!(s, "\nTier {}{granted}", tier.name);
        let _ = writeln!(
            s,
            "  {:<24} {:<10} {:>10} {:>8}  algorithm",
            "endpoint", "limit", "count", "window"
        );
        for l in &tier.limits {
            let endpoint = match (&l.endpoint, l.per_match) {
                (Some(e), true) => format!("{e} (each)"),
                (Some(e), false) => e.clone(),
                (None, _) => "(all, shared)".to_owned(),
            };
            let window = l.window.to_string();
            let name = l
                .name
                .clone()
                .unwrap_or_else(|| default_name(l.window.as_millis(), &window));
            let count = match l.count {
                Count::Limited(n) => n.to_string(),
                Count::Unlimited => "unlimited".to_owned(),
            };
            let _ = writeln!(
                s,
                "  {endpoint:<24} {name:<10} {count:>10} {window:>8}  {}",
                l.algorithm.as_str()
            );
        }
    }
    let u = policy.uploads();
    let _ = writeln!(s, "\nUploads");
    for kind in FileKind::ALL {
        let _ = writeln!(s, "  {:<8} up to {}", kind.as_str(), u.default_limit(kind));
    }
    let _ = writeln!(
        s,
        "  audio and video up to {} minutes",
        u.max_duration.as_secs() / 60
    );
    for (endpoint, o) in &u.endpoints {
        let mut parts = Vec::new();
        for (kind, v) in [
            ("image", o.image),
            ("audio", o.audio),
            ("video", o.video),
            ("other", o.other),
            ("body", o.max_body),
        ] {
            if let Some(v) = v {
                parts.push(format!("{kind} up to {v}"));
            }
        }
        let _ = writeln!(s, "  {endpoint}: {}", parts.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn seed_table_lists_every_endpoint_and_both_tiers() {
        let text = show(&Policy::seed());
        assert!(text.contains("Endpoints (18)"), "{text}");
        assert!(text.contains("Tier basic (granted at sign-up)"));
        assert!(text.contains("Tier premium (granted on payment)"));
        assert!(text.contains("(all, shared)"));
        let txt2img_minute = text
            .lines()
            .find(|l| l.contains("txt2img") && l.contains("minute"))
            .unwrap();
        assert!(txt2img_minute.contains(" 3 "), "{txt2img_minute}");
        assert!(text.contains("unlimited"));
    }
}
