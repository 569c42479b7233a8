//! The policy document as written in TOML or JSON: plain data, no checks.
//! [`Policy::new`](super::Policy::new) validates it.

use super::units::{Count, Money, WindowLength};
use crate::algorithm::Algorithm;

/// A whole policy file.
///
/// ```toml
/// [[endpoints]]
/// path = "txt2img"
/// price = "0.01"
///
/// [[endpoints]]
/// path = "prompt/*"          # a pattern: every endpoint one segment under prompt/
///
/// [[tiers]]
/// name = "basic"
/// granted = "signup"
/// limits = [
///   { endpoint = "txt2img", window = "1m", count = 3 },
///   { endpoint = "txt2img", window = "1d", count = 100 },
///   { endpoint = "prompt/*", window = "1m", count = 10 },   # one budget for all of prompt/*
/// ]
///
/// [[tiers]]
/// name = "premium"
/// granted = "payment"
/// limits = [ { window = "1m", count = 300 } ]               # no endpoint: tier-wide
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct PolicySpec {
    /// Every endpoint the API serves (exact names and patterns). A request
    /// whose endpoint matches none of them is unknown (404 at the gateway).
    #[cfg_attr(feature = "serde", serde(default))]
    pub endpoints: Vec<EndpointSpec>,
    /// The tiers and their limits.
    #[cfg_attr(feature = "serde", serde(default))]
    pub tiers: Vec<TierSpec>,
    /// Upload size and duration rules; the seed's when absent.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub uploads: Option<crate::upload::UploadRules>,
}

/// One endpoint or endpoint pattern.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct EndpointSpec {
    /// The endpoint's path after the API prefix: `txt2img`, `videos/replace`,
    /// or a pattern whose segments may be `*` (exactly one segment) and, as
    /// the last segment, `**` (one or more segments): `prompt/*`.
    pub path: String,
    /// What one request costs, taken from the account's credit. Free when absent.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub price: Option<Money>,
    /// Picks between two patterns that claim the same path: the higher
    /// priority wins. Exact endpoints always win over patterns.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub priority: Option<i32>,
}

/// How accounts come to be on a tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Granted {
    /// Every new account starts on this tier.
    Signup,
    /// An account moves to this tier when it makes any payment.
    Payment,
    /// Callers without an API key: a gateway limits each client address
    /// (an IPv6 address by its /64) on this tier, instead of answering 401.
    /// Such callers have no account, so a priced endpoint still needs a key.
    Anonymous,
}

/// One tier and its limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct TierSpec {
    /// The tier's name (`basic`, `premium`).
    pub name: String,
    /// When accounts get this tier, if the gateway assigns it.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub granted: Option<Granted>,
    /// The tier's limits. A request must satisfy every limit that applies to
    /// its endpoint.
    #[cfg_attr(feature = "serde", serde(default))]
    pub limits: Vec<LimitSpec>,
}

/// One limit of a tier.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct LimitSpec {
    /// The endpoint (or pattern) this limit applies to, exactly as declared in
    /// `endpoints`; absent: every request of the tier, one shared budget.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub endpoint: Option<String>,
    /// For a pattern: give each matching endpoint its own budget instead of
    /// one budget shared by all of them.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub per_match: bool,
    /// The limit's name, reported in `X-RateLimit-Type` and the IETF headers.
    /// Default: `minute` (60 s), `daily` (1 d), `second`, `hour`, `week`, or
    /// the window itself (`90s`). Lowercase letters, digits, `-` and `_`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub name: Option<String>,
    /// The window length.
    pub window: WindowLength,
    /// Units per window, or `"unlimited"`.
    pub count: Count,
    /// The counting algorithm (default `fixed_window`).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "is_default_algorithm")
    )]
    pub algorithm: Algorithm,
}

#[cfg(feature = "serde")]
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(feature = "serde")]
fn is_default_algorithm(a: &Algorithm) -> bool {
    *a == Algorithm::FixedWindow
}

impl LimitSpec {
    /// A fixed-window limit of `count` per `window` on `endpoint` (`None`:
    /// tier-wide), with the default name.
    pub fn new(endpoint: Option<&str>, window: WindowLength, count: u64) -> Self {
        LimitSpec {
            endpoint: endpoint.map(str::to_owned),
            per_match: false,
            name: None,
            window,
            count: Count::Limited(count),
            algorithm: Algorithm::FixedWindow,
        }
    }
}
