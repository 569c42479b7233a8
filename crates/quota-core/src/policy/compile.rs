//! Validation: from a [`PolicySpec`] to the compiled [`Policy`].

use std::collections::HashMap;
use std::sync::Arc;

use super::error::{DocPath, PolicyError};
use super::pattern::Pattern;
use super::spec::{Granted, LimitSpec, PolicySpec};
use super::units::{Count, Money, WindowLength};
use super::{Endpoint, Policy, PolicyLimit, Rule, Scope, Tier};
use crate::algorithm::{Limit, LimitError};

pub(super) fn compile(spec: PolicySpec) -> Result<Policy, PolicyError> {
    if spec.tiers.is_empty() {
        return Err(PolicyError::NoTiers);
    }
    let endpoints = compile_endpoints(&spec)?;
    let exact: HashMap<Box<str>, usize, foldhash::fast::RandomState> = endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| e.pattern.is_exact())
        .map(|(i, e)| (Box::from(&*e.path), i))
        .collect();
    let mut patterns: Vec<usize> = (0..endpoints.len())
        .filter(|&i| !endpoints[i].pattern.is_exact())
        .collect();
    patterns.sort_by_key(|&i| core::cmp::Reverse(endpoints[i].priority));

    let mut tiers = Vec::with_capacity(spec.tiers.len());
    let mut tier_index = HashMap::with_hasher(foldhash::fast::RandomState::default());
    let mut granted: [Option<(usize, &str)>; 3] = [None, None, None];
    for (ti, t) in spec.tiers.iter().enumerate() {
        let at = DocPath::tier(ti);
        if t.name.is_empty()
            || !t
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(PolicyError::BadTierName {
                at: at.key("name"),
                name: t.name.clone(),
            });
        }
        if tier_index.insert(Box::from(t.name.as_str()), ti).is_some() {
            return Err(PolicyError::DuplicateTier {
                at: at.key("name"),
                name: t.name.clone(),
            });
        }
        if let Some(g) = t.granted {
            let (slot, event) = match g {
                Granted::Signup => (0, "signup"),
                Granted::Payment => (1, "payment"),
                Granted::Anonymous => (2, "anonymous"),
            };
            if let Some((_, first)) = granted[slot] {
                return Err(PolicyError::DuplicateGrant {
                    at: at.key("granted"),
                    event,
                    first: first.to_owned(),
                    second: t.name.clone(),
                });
            }
            granted[slot] = Some((ti, &t.name));
        }
        tiers.push(compile_tier(ti, &t.name, &t.limits, &endpoints)?);
    }
    let uploads = spec
        .uploads
        .clone()
        .unwrap_or_else(crate::upload::UploadRules::seed);
    Ok(Policy {
        signup_tier: granted[0].map(|(i, _)| i),
        payment_tier: granted[1].map(|(i, _)| i),
        anonymous_tier: granted[2].map(|(i, _)| i),
        spec,
        endpoints,
        exact,
        patterns,
        tiers,
        tier_index,
        uploads,
    })
}

fn compile_endpoints(spec: &PolicySpec) -> Result<Vec<Endpoint>, PolicyError> {
    let mut out: Vec<Endpoint> = Vec::with_capacity(spec.endpoints.len());
    for (i, e) in spec.endpoints.iter().enumerate() {
        let at = DocPath::endpoint(i).key("path");
        let pattern = Pattern::parse(&e.path).map_err(|reason| PolicyError::BadPath {
            at: at.clone(),
            path: e.path.clone(),
            reason: reason.to_string(),
        })?;
        if let Some(first) = out.iter().position(|o| o.path.as_ref() == e.path) {
            return Err(PolicyError::DuplicateEndpoint {
                at,
                path: e.path.clone(),
                first: DocPath::endpoint(first).key("path"),
            });
        }
        let priority = e.priority.unwrap_or(0);
        if !pattern.is_exact() {
            for o in out
                .iter()
                .filter(|o| !o.pattern.is_exact() && o.priority == priority)
            {
                if o.pattern.overlaps(&pattern) {
                    return Err(PolicyError::AmbiguousPatterns {
                        at,
                        a: o.path.to_string(),
                        b: e.path.clone(),
                        example: example_overlap(&o.path, &e.path),
                    });
                }
            }
        }
        out.push(Endpoint {
            path: Arc::from(e.path.as_str()),
            pattern,
            price: e.price.unwrap_or(Money::ZERO),
            priority,
        });
    }
    Ok(out)
}

/// A path that both (overlapping) patterns match, for the error message.
fn example_overlap(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    let mut out = Vec::new();
    for i in 0..a.len().max(b.len()) {
        let seg = match (a.get(i), b.get(i)) {
            (Some(&"**"), Some(s)) | (Some(s), Some(&"**")) | (Some(s), None) | (None, Some(s)) => {
                *s
            }
            (Some(&"*"), Some(s)) | (Some(s), Some(&"*")) => *s,
            (Some(s), Some(_)) => *s,
            (None, None) => break,
        };
        out.push(if seg == "*" || seg == "**" { "x" } else { seg });
        if a.get(i) == Some(&"**") || b.get(i) == Some(&"**") {
            break;
        }
    }
    out.join("/")
}

/// The default name of a limit from its window.
pub(super) fn default_name(window: WindowLength) -> String {
    match window.as_millis() {
        1000 => "second".into(),
        60_000 => "minute".into(),
        3_600_000 => "hour".into(),
        86_400_000 => "daily".into(),
        604_800_000 => "weekly".into(),
        _ => window.to_string(),
    }
}

/// The most limits one tier may declare (a store keeps the states of one
/// bucket together, and a bucket can hold every limit of its tier).
pub(crate) const MAX_LIMITS_PER_TIER: usize = 1024;

fn compile_tier(
    ti: usize,
    name: &str,
    limits: &[LimitSpec],
    endpoints: &[Endpoint],
) -> Result<Tier, PolicyError> {
    if limits.len() > MAX_LIMITS_PER_TIER {
        return Err(PolicyError::TooManyLimits {
            at: DocPath::tier(ti).key("limits"),
            count: limits.len(),
            max: MAX_LIMITS_PER_TIER,
        });
    }
    let mut compiled: Vec<(usize, PolicyLimit)> = Vec::new();
    for (li, l) in limits.iter().enumerate() {
        let at = DocPath::limit(ti, li);
        let count = match l.count {
            Count::Unlimited => None,
            Count::Limited(n) => Some(n),
        };
        let endpoint = match &l.endpoint {
            None => None,
            Some(ep) => {
                let idx = endpoints
                    .iter()
                    .position(|e| &*e.path == ep)
                    .ok_or_else(|| PolicyError::UnknownEndpoint {
                        at: at.clone().key("endpoint"),
                        endpoint: ep.clone(),
                    })?;
                if l.per_match && endpoints[idx].pattern.is_exact() {
                    return Err(PolicyError::PerMatchOnExact {
                        at: at.key("per_match"),
                        endpoint: ep.clone(),
                    });
                }
                Some(idx)
            }
        };
        if l.per_match && endpoint.is_none() {
            return Err(PolicyError::PerMatchOnExact {
                at: at.key("per_match"),
                endpoint: "(whole tier)".into(),
            });
        }
        let limit_name = l.name.clone().unwrap_or_else(|| default_name(l.window));
        if limit_name.is_empty()
            || !limit_name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(PolicyError::BadLimitName {
                at: at.key("name"),
                name: limit_name,
            });
        }
        let scope = match (endpoint, l.per_match) {
            (None, _) => Scope::Tier,
            (Some(e), false) => Scope::Endpoint(e),
            (Some(e), true) => Scope::PerMatch(e),
        };
        if let Some((first, _)) = compiled
            .iter()
            .find(|(_, c)| c.scope == scope && *c.name == limit_name)
        {
            return Err(PolicyError::DuplicateLimit {
                at,
                name: limit_name,
                scope: scope.describe(endpoints),
                first: DocPath::limit(ti, *first),
            });
        }
        let Some(count) = count else {
            // Unlimited: validated, never counted, no header.
            continue;
        };
        let limit =
            Limit::from_millis(count, l.window.as_millis(), l.algorithm).map_err(|e| match e {
                LimitError::ZeroCount => PolicyError::ZeroCount {
                    at: at.clone().key("count"),
                },
                LimitError::ZeroWindow => PolicyError::ZeroWindow {
                    at: at.clone().key("window"),
                },
                LimitError::TooLarge { count, window_ms } => PolicyError::LimitTooLarge {
                    at: at.clone(),
                    count,
                    window_ms,
                },
            })?;
        let daily = limit_name == "daily" || l.window.as_millis() >= 86_400_000;
        let scope_key: Arc<str> = match scope {
            Scope::Tier => Arc::from("*"),
            Scope::Endpoint(e) | Scope::PerMatch(e) => endpoints[e].path.clone(),
        };
        let id = format!(
            "{name}/{scope}{pm}/{limit_name}/{count}/{window}/{alg}",
            scope = scope_key,
            pm = if l.per_match { "+each" } else { "" },
            window = l.window.as_millis(),
            alg = l.algorithm.as_str()
        );
        let fingerprint = fnv1a(id.as_bytes());
        compiled.push((
            li,
            PolicyLimit {
                id: id.into(),
                fingerprint,
                cell_tag: crate::memory::cell_tag(fingerprint, limit.algorithm()),
                name: limit_name.into(),
                limit,
                daily,
                scope,
                scope_key,
            },
        ));
    }
    // For every endpoint, the rules that apply, grouped by scope.
    let mut rules = Vec::with_capacity(endpoints.len());
    for (ei, _) in endpoints.iter().enumerate() {
        let mut groups: Vec<Rule> = Vec::new();
        for (_, l) in &compiled {
            let applies = match l.scope {
                Scope::Tier => true,
                Scope::Endpoint(e) | Scope::PerMatch(e) => e == ei,
            };
            if !applies {
                continue;
            }
            match groups.iter_mut().find(|g| g.scope == l.scope) {
                Some(g) => g.limits.push(l.clone()),
                None => groups.push(Rule {
                    scope: l.scope,
                    limits: vec![l.clone()],
                }),
            }
        }
        rules.push(groups);
    }
    let max_cost = rules
        .iter()
        .map(|groups| {
            groups
                .iter()
                .flat_map(|g| &g.limits)
                .map(|l| l.limit.count())
                .min()
                .unwrap_or(u64::MAX)
        })
        .collect();
    Ok(Tier {
        name: Arc::from(name),
        limits: compiled.into_iter().map(|(_, l)| l).collect(),
        rules,
        max_cost,
    })
}

/// FNV-1a, 64 bit: a stable fingerprint of a limit's definition (the same in
/// every process, unlike the standard hasher).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
