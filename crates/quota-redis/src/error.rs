//! Why a store cannot be built.

/// Why a [`RedisStore`](crate::RedisStore) or
/// [`RedisAccounts`](crate::RedisAccounts) cannot be built. Failures to reach
/// Redis are not errors here: connecting is lazy, and decisions report them
/// (as [`StoreError`](quota_core::StoreError)) through the failure policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a Redis URL (the URL itself is left out: it may hold a password).
    #[error("invalid redis url: {0}")]
    InvalidUrl(String),
    /// The key prefix contains `{` or `}`.
    #[error("invalid key prefix {0:?}: it may not contain '{{' or '}}' (they would break the per-account hash tag)")]
    InvalidPrefix(String),
    /// Called outside a Tokio runtime (the connection needs one to run).
    #[error("the redis store must be created inside a tokio runtime")]
    NoRuntime,
    /// `FailurePolicy::Local { nodes: 0 }`.
    #[error("invalid failure policy: a local fallback needs at least 1 node")]
    ZeroNodes,
}
