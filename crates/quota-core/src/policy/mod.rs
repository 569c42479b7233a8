//! Policies: tiers, endpoints and limits, validated and compiled.
//!
//! A [`PolicySpec`] is the document as written (TOML or JSON, through serde).
//! [`Policy::new`] validates it and compiles it into a [`Policy`], which
//! turns a [`Request`] into a [`Plan`]: the limits that apply to it, grouped
//! into the buckets a store keeps state in.
//!
//! ```
//! use quota_core::policy::{Policy, Request};
//!
//! let policy = Policy::seed();
//! let plan = policy
//!     .plan(&Request { account: "acct-1", tier: "basic", endpoint: "txt2img", cost: 1 })
//!     .unwrap();
//! let limits: Vec<_> = plan.limits().map(|l| (l.name(), l.limit().count())).collect();
//! assert_eq!(limits, [("minute", 3), ("daily", 100)]);
//!
//! // prompt/* is one budget shared by every endpoint under prompt/
//! let a = policy.plan(&Request { account: "a", tier: "basic", endpoint: "prompt/enhance", cost: 1 }).unwrap();
//! assert_eq!(a.buckets().next().unwrap().scope(), "prompt/*");
//! ```

mod compile;
mod describe;
mod error;
mod pattern;
mod plan;
mod seed;
mod spec;
mod units;

use std::collections::HashMap;
use std::sync::Arc;

pub use error::{DocPath, LineCol, PathStep, PolicyError};
pub use plan::{Bucket, Buckets, Plan, PlanError, Request};
pub use spec::{EndpointSpec, Granted, LimitSpec, PolicySpec, TierSpec};
pub use units::{Count, Money, UnitError, WindowLength};

use crate::algorithm::Limit;
use crate::upload::UploadRules;
use pattern::Pattern;

/// A validated, compiled policy. Cheap to share behind an `Arc`; reloading a
/// policy means building a new one.
#[derive(Debug, Clone)]
pub struct Policy {
    spec: PolicySpec,
    endpoints: Vec<Endpoint>,
    exact: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    /// Pattern endpoints, highest priority first.
    patterns: Vec<usize>,
    tiers: Vec<Tier>,
    tier_index: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    signup_tier: Option<usize>,
    payment_tier: Option<usize>,
    anonymous_tier: Option<usize>,
    uploads: UploadRules,
}

/// A declared endpoint (or pattern).
#[derive(Debug, Clone)]
pub struct Endpoint {
    path: Arc<str>,
    pattern: Pattern,
    price: Money,
    priority: i32,
}

impl Endpoint {
    /// The declared path or pattern (`txt2img`, `prompt/*`).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The price of one request.
    pub fn price(&self) -> Money {
        self.price
    }
    /// Whether this is a pattern rather than one exact endpoint.
    pub fn is_pattern(&self) -> bool {
        !self.pattern.is_exact()
    }
}

/// A compiled tier.
#[derive(Debug, Clone)]
pub struct Tier {
    name: Arc<str>,
    limits: Vec<PolicyLimit>,
    /// Per endpoint index: the buckets that apply.
    rules: Vec<Vec<Rule>>,
    /// Per endpoint index: the largest cost every applicable limit can hold
    /// (the smallest count), so planning checks a cost with one comparison.
    max_cost: Vec<u64>,
}

impl Tier {
    /// The tier's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Every counted limit of the tier (unlimited ones are left out).
    pub fn limits(&self) -> &[PolicyLimit] {
        &self.limits
    }
}

/// What a limit is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every request of the tier, one budget.
    Tier,
    /// One endpoint, or every endpoint a pattern matches sharing one budget.
    Endpoint(usize),
    /// Every endpoint a pattern matches, each with its own budget.
    PerMatch(usize),
}

impl Scope {
    fn describe(self, endpoints: &[Endpoint]) -> String {
        match self {
            Scope::Tier => "the whole tier".into(),
            Scope::Endpoint(e) => format!("endpoint {:?}", &*endpoints[e].path),
            Scope::PerMatch(e) => format!("each match of {:?}", &*endpoints[e].path),
        }
    }
}

/// Limits of one tier that share a scope (and so a store bucket).
#[derive(Debug, Clone)]
struct Rule {
    scope: Scope,
    limits: Vec<PolicyLimit>,
}

/// One compiled limit of a tier.
#[derive(Debug, Clone)]
pub struct PolicyLimit {
    id: Arc<str>,
    fingerprint: u64,
    /// The memory store's tag for this limit's cell (its fingerprint's low
    /// bits and its algorithm), worked out once here rather than per decision.
    cell_tag: u64,
    name: Arc<str>,
    limit: Limit,
    daily: bool,
    scope: Scope,
    scope_key: Arc<str>,
}

impl PolicyLimit {
    /// A stable, readable identity of the limit's definition (tier, scope,
    /// name, count, window, algorithm). Stores key state by it, so a reloaded
    /// policy keeps the counts of every limit whose definition did not change.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// A 64-bit fingerprint of [`PolicyLimit::id`] (FNV-1a, stable across processes).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
    /// The memory store's cell tag ([`PolicyLimit::fingerprint`] and algorithm).
    #[inline]
    pub(crate) fn cell_tag(&self) -> u64 {
        self.cell_tag
    }
    /// The name reported in `X-RateLimit-Type` (`minute`, `daily`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The numbers and algorithm.
    pub fn limit(&self) -> &Limit {
        &self.limit
    }
    /// Whether this limit is reported in the `X-RateLimit-Daily-*` headers
    /// (named `daily`, or a window of a day or more) rather than the
    /// `X-RateLimit-Limit`/`-Remaining` pair.
    pub fn is_daily(&self) -> bool {
        self.daily
    }
    /// What the limit counts per.
    pub fn scope(&self) -> Scope {
        self.scope
    }
    /// The endpoint path or pattern of the scope, `*` for the whole tier.
    pub fn scope_key(&self) -> &str {
        &self.scope_key
    }
}

impl Policy {
    /// Validates and compiles a policy document.
    ///
    /// # Errors
    /// The first [`PolicyError`] found, with where it is.
    pub fn new(spec: PolicySpec) -> Result<Self, PolicyError> {
        compile::compile(spec)
    }

    /// The seed policy: the tiers of the source page (see `docs/contract.md`,
    /// section 1).
    pub fn seed() -> Self {
        seed::seed_policy()
    }

    /// The document this policy was built from.
    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// The upload rules.
    pub fn uploads(&self) -> &UploadRules {
        &self.uploads
    }

    /// Every declared endpoint.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Every tier.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// A tier by name.
    #[inline]
    pub fn tier(&self, name: &str) -> Option<&Tier> {
        // A few tiers are found faster by comparing names than by hashing.
        if self.tiers.len() <= 8 {
            let name = name.as_bytes();
            return self
                .tiers
                .iter()
                .find(|t| crate::bytes::eq(t.name.as_bytes(), name));
        }
        self.tier_index.get(name).map(|&i| &self.tiers[i])
    }

    /// The tier new accounts get (`granted = "signup"`).
    pub fn signup_tier(&self) -> Option<&Tier> {
        self.signup_tier.map(|i| &self.tiers[i])
    }

    /// The tier a payment gives (`granted = "payment"`).
    pub fn payment_tier(&self) -> Option<&Tier> {
        self.payment_tier.map(|i| &self.tiers[i])
    }

    /// The tier callers without an API key are limited on, each client
    /// address apart (`granted = "anonymous"`); none: a missing key is 401.
    pub fn anonymous_tier(&self) -> Option<&Tier> {
        self.anonymous_tier.map(|i| &self.tiers[i])
    }

    /// The endpoint a request path (after the API prefix) resolves to: an
    /// exact endpoint first, then the highest-priority matching pattern.
    pub fn endpoint(&self, path: &str) -> Option<&Endpoint> {
        self.endpoint_index(path).map(|i| &self.endpoints[i])
    }

    /// [`Policy::endpoint`] with its index, for [`Policy::plan_at`]: the
    /// endpoint looked up once serves the check and the plan.
    pub(crate) fn endpoint_with_index(&self, path: &str) -> Option<(usize, &Endpoint)> {
        let i = self.endpoint_index(path)?;
        self.endpoints.get(i).map(|e| (i, e))
    }

    #[inline]
    pub(crate) fn endpoint_index(&self, path: &str) -> Option<usize> {
        // A few endpoints are found faster by comparing paths than by hashing.
        if self.endpoints.len() <= 16 {
            if let Some(i) = self.endpoints.iter().position(|e| {
                crate::bytes::eq(e.path.as_bytes(), path.as_bytes()) && e.pattern.is_exact()
            }) {
                return Some(i);
            }
        } else if let Some(&i) = self.exact.get(path) {
            return Some(i);
        }
        self.patterns
            .iter()
            .copied()
            .find(|&i| self.endpoints[i].pattern.matches(path))
    }
}

#[cfg(feature = "serde")]
mod formats;
