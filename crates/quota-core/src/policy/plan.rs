//! From a request to the limits that apply to it.

use super::{Endpoint, Policy, PolicyLimit, Rule, Scope, Tier};
use crate::memory::MAX_KEY_PART;

/// One request to decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The account the request is counted against.
    pub account: &'a str,
    /// The account's tier (from the account, never from the client).
    pub tier: &'a str,
    /// The endpoint path after the API prefix (`txt2img`, `prompt/enhance`).
    pub endpoint: &'a str,
    /// Units the request uses (1 for one request).
    pub cost: u64,
}

/// Why a request cannot be planned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The tier is not in the policy.
    #[error("unknown tier {0:?}")]
    UnknownTier(String),
    /// No endpoint or pattern of the policy matches.
    #[error("unknown endpoint {0:?}")]
    UnknownEndpoint(String),
    /// The account or the endpoint path is longer than a store keys
    /// (65,535 bytes).
    #[error("the {what} is {len} bytes long; at most 65535 bytes are accepted")]
    TooLong {
        /// `account` or `endpoint`.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The cost exceeds a limit's whole count, so no window could ever admit it.
    #[error("cost {cost} exceeds the {name} limit of {count}; it can never be admitted")]
    CostExceedsLimit {
        /// The cost asked.
        cost: u64,
        /// The limit's name.
        name: String,
        /// The limit's count.
        count: u64,
    },
}

/// The limits that apply to one request, grouped into buckets.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    account: &'a str,
    /// The request's endpoint path: the scope of per-match buckets.
    path: &'a str,
    cost: u64,
    tier: &'a Tier,
    endpoint: &'a Endpoint,
    rules: &'a [Rule],
}

/// Limits that share one scope for one account: a store keeps their states
/// together under `(account, scope)`.
#[derive(Clone, Copy, Debug)]
pub struct Bucket<'a> {
    scope: &'a str,
    limits: &'a [PolicyLimit],
}

/// The buckets of a [`Plan`], in a fixed order ([`Plan::buckets`]).
#[derive(Clone, Debug)]
pub struct Buckets<'a> {
    rules: core::slice::Iter<'a, Rule>,
    path: &'a str,
}

impl<'a> Iterator for Buckets<'a> {
    type Item = Bucket<'a>;

    #[inline]
    fn next(&mut self) -> Option<Bucket<'a>> {
        let rule = self.rules.next()?;
        Some(Bucket {
            scope: match rule.scope {
                Scope::PerMatch(_) => self.path,
                Scope::Tier | Scope::Endpoint(_) => {
                    rule.limits.first().map_or("*", |l| &l.scope_key)
                }
            },
            limits: &rule.limits,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.rules.size_hint()
    }
}

impl ExactSizeIterator for Buckets<'_> {}

impl<'a> Bucket<'a> {
    /// The scope: the endpoint (`txt2img`), the shared pattern (`prompt/*`),
    /// the matched path for a per-match pattern (`prompt/enhance`), or `*`
    /// for the whole tier.
    pub fn scope(&self) -> &'a str {
        self.scope
    }
    /// The limits of this bucket.
    pub fn limits(&self) -> &'a [PolicyLimit] {
        self.limits
    }
}

impl Policy {
    /// The plan for a request: which limits apply, in a fixed order.
    ///
    /// # Errors
    /// [`PlanError`] for an unknown tier or endpoint, or a cost no window of
    /// an applicable limit can ever hold.
    pub fn plan<'a>(&'a self, req: &Request<'a>) -> Result<Plan<'a>, PlanError> {
        let tier = self
            .tier(req.tier)
            .ok_or_else(|| PlanError::UnknownTier(req.tier.to_owned()))?;
        let ei = self
            .endpoint_index(req.endpoint)
            .ok_or_else(|| PlanError::UnknownEndpoint(req.endpoint.to_owned()))?;
        self.plan_at(tier, ei, req)
            .map(|p| p.with_names(req.account, req.endpoint))
    }

    /// The plan for `req` whose tier is `tier` and whose endpoint is the
    /// policy's endpoint `ei` (both found already), with no account and no
    /// path yet: [`Plan::with_names`] gives it the request's. What
    /// [`Policy::plan`] checks after the look-ups, in the same order.
    pub(crate) fn plan_at<'p>(
        &'p self,
        tier: &'p Tier,
        ei: usize,
        req: &Request<'_>,
    ) -> Result<Plan<'p>, PlanError> {
        if req.account.len() > MAX_KEY_PART || req.endpoint.len() > MAX_KEY_PART {
            return Err(too_long(req));
        }
        let (Some(rules), Some(&max_cost), Some(endpoint)) = (
            tier.rules.get(ei),
            tier.max_cost.get(ei),
            self.endpoints.get(ei),
        ) else {
            return Err(PlanError::UnknownEndpoint(req.endpoint.to_owned()));
        };
        if req.cost > max_cost {
            if let Some(l) = rules
                .iter()
                .flat_map(|r| &r.limits)
                .find(|l| req.cost > l.limit.count())
            {
                return Err(PlanError::CostExceedsLimit {
                    cost: req.cost,
                    name: l.name.to_string(),
                    count: l.limit.count(),
                });
            }
        }
        Ok(Plan {
            account: "",
            path: "",
            cost: req.cost,
            tier,
            endpoint,
            rules,
        })
    }
}

#[cold]
fn too_long(req: &Request<'_>) -> PlanError {
    let (what, len) = if req.account.len() > MAX_KEY_PART {
        ("account", req.account.len())
    } else {
        ("endpoint", req.endpoint.len())
    };
    PlanError::TooLong { what, len }
}

impl<'a> Plan<'a> {
    /// The same plan for `account` on the endpoint path `path`: what a
    /// plan built once (by [`Policy::plan_at`]) is handed to a store and
    /// to a decision with, at no cost.
    pub(crate) fn with_names<'b>(&self, account: &'b str, path: &'b str) -> Plan<'b>
    where
        'a: 'b,
    {
        Plan {
            account,
            path,
            cost: self.cost,
            tier: self.tier,
            endpoint: self.endpoint,
            rules: self.rules,
        }
    }

    /// The account.
    pub fn account(&self) -> &'a str {
        self.account
    }
    /// The cost.
    pub fn cost(&self) -> u64 {
        self.cost
    }
    /// The tier.
    pub fn tier(&self) -> &'a Tier {
        self.tier
    }
    /// The endpoint the request resolved to.
    pub fn endpoint(&self) -> &'a Endpoint {
        self.endpoint
    }
    /// The buckets, in a fixed order.
    #[inline]
    pub fn buckets(&self) -> Buckets<'a> {
        Buckets {
            rules: self.rules.iter(),
            path: self.path,
        }
    }
    /// Every applicable limit, bucket by bucket: the order of a store's outcomes.
    pub fn limits(&self) -> impl Iterator<Item = &'a PolicyLimit> + '_ {
        self.rules.iter().flat_map(|r| r.limits.iter())
    }
    /// How many limits apply.
    pub fn len(&self) -> usize {
        self.rules.iter().map(|r| r.limits.len()).sum()
    }
    /// True when no limit applies (the request is always admitted).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}
