//! A policy in words, for people: `quota policy show` and `validate`.

use std::fmt::Write as _;

use super::compile::default_name;
use super::{Count, Granted, Policy};
use crate::upload::FileKind;

/// `n` and the noun, plural unless `n` is 1: `1 endpoint`, `18 endpoints`.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

impl Policy {
    /// How many endpoints and tiers: `18 endpoints, 2 tiers`.
    ///
    /// ```
    /// assert_eq!(quota_core::policy::Policy::seed().census(), "18 endpoints, 2 tiers");
    /// ```
    pub fn census(&self) -> String {
        format!(
            "{}, {}",
            counted(self.endpoints().len(), "endpoint"),
            counted(self.tiers().len(), "tier")
        )
    }

    /// The policy as readable tables: endpoints, each tier's limits, uploads.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Endpoints ({})", self.endpoints().len());
        let _ = writeln!(s, "  {:<24} {:>10}  kind", "path", "price");
        for e in self.endpoints() {
            let price = match e.price().micros() {
                0 => "free".to_owned(),
                _ => format!("${}", e.price()),
            };
            let kind = if e.is_pattern() { "pattern" } else { "exact" };
            let _ = writeln!(s, "  {:<24} {:>10}  {kind}", e.path(), price);
        }
        for tier in &self.spec().tiers {
            let granted = match tier.granted {
                Some(Granted::Signup) => " (granted at sign-up)",
                Some(Granted::Payment) => " (granted on payment)",
                Some(Granted::Anonymous) => " (callers without a key, by address)",
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
                let name = l.name.clone().unwrap_or_else(|| default_name(l.window));
                let count = match l.count {
                    Count::Limited(n) => n.to_string(),
                    Count::Unlimited => "unlimited".to_owned(),
                };
                let _ = writeln!(
                    s,
                    "  {endpoint:<24} {name:<10} {count:>10} {:>8}  {}",
                    l.window.to_string(),
                    l.algorithm.as_str()
                );
            }
        }
        let u = self.uploads();
        let _ = writeln!(s, "\nUploads");
        for kind in FileKind::ALL {
            let _ = writeln!(s, "  {:<8} up to {}", kind.as_str(), u.default_limit(kind));
        }
        let minutes = u.max_duration.as_secs() / 60;
        let _ = writeln!(s, "  audio and video up to {minutes} minutes");
        for (endpoint, o) in &u.endpoints {
            let sizes = [
                ("image", o.image),
                ("audio", o.audio),
                ("video", o.video),
                ("other", o.other),
                ("body", o.max_body),
            ];
            let parts: Vec<String> = sizes
                .iter()
                .filter_map(|(kind, v)| v.map(|v| format!("{kind} up to {v}")))
                .collect();
            let _ = writeln!(s, "  {endpoint}: {}", parts.join(", "));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn seed_table_lists_every_endpoint_and_both_tiers() {
        let text = Policy::seed().describe();
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

    #[test]
    fn census_says_one_endpoint_not_one_endpoints() {
        let p =
            Policy::from_toml("[[endpoints]]\npath = \"a\"\n[[tiers]]\nname = \"t\"\n").unwrap();
        assert_eq!(p.census(), "1 endpoint, 1 tier");
    }
}
