//! Everything that can be wrong with a policy, with where it is.

use core::fmt;

/// One step of a path into the policy document: a key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathStep {
    /// A table key.
    Key(&'static str),
    /// An array index.
    Index(usize),
}

/// Where in the policy document a problem is, e.g. `tiers[0].limits[2].window`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocPath(pub Vec<PathStep>);

impl DocPath {
    pub(crate) fn tier(i: usize) -> Self {
        DocPath(vec![PathStep::Key("tiers"), PathStep::Index(i)])
    }
    pub(crate) fn limit(tier: usize, limit: usize) -> Self {
        DocPath(vec![
            PathStep::Key("tiers"),
            PathStep::Index(tier),
            PathStep::Key("limits"),
            PathStep::Index(limit),
        ])
    }
    pub(crate) fn endpoint(i: usize) -> Self {
        DocPath(vec![PathStep::Key("endpoints"), PathStep::Index(i)])
    }
    pub(crate) fn key(mut self, k: &'static str) -> Self {
        self.0.push(PathStep::Key(k));
        self
    }
}

impl fmt::Display for DocPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Key(k) if i == 0 => f.write_str(k)?,
                PathStep::Key(k) => write!(f, ".{k}")?,
                PathStep::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A line and column (both from 1) in a policy file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl LineCol {
    /// The line and column of byte `offset` in `src` (columns count
    /// characters; an offset past the end is the end).
    ///
    /// ```
    /// use quota_core::policy::LineCol;
    /// assert_eq!(LineCol::of("a = 1\nbé = x", 10), LineCol { line: 2, column: 4 });
    /// ```
    pub fn of(src: &str, offset: usize) -> LineCol {
        let before = src.get(..offset.min(src.len())).unwrap_or(src);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        LineCol { line, column }
    }
}

impl fmt::Display for LineCol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a policy is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file is not valid TOML or JSON.
    #[error("{format} syntax{}: {message}", at.map(|a| format!(" at {a}")).unwrap_or_default())]
    Syntax {
        /// `TOML` or `JSON`.
        format: &'static str,
        /// Where, when the parser knows.
        at: Option<LineCol>,
        /// The parser's message.
        message: String,
    },
    /// The file is valid TOML or JSON, but a key or a value is not one the
    /// policy has (an unknown key, a window length that is not one, a
    /// string where a number belongs).
    #[error("invalid policy{}: {message}", at.map(|a| format!(" at {a}")).unwrap_or_default())]
    Invalid {
        /// `TOML` or `JSON`.
        format: &'static str,
        /// Where, when the parser knows.
        at: Option<LineCol>,
        /// What is wrong, in the parser's words.
        message: String,
    },
    /// The policy declares no tier.
    #[error("the policy declares no tier")]
    NoTiers,
    /// A window of length zero.
    #[error("{at}: window must be longer than 0")]
    ZeroWindow {
        /// Where.
        at: DocPath,
    },
    /// A count of zero (write `"unlimited"` for no limit, or leave the endpoint out).
    #[error("{at}: count must be at least 1 (use \"unlimited\" for no limit)")]
    ZeroCount {
        /// Where.
        at: DocPath,
    },
    /// A count above `u32::MAX`, or `count * window` too large to count exactly.
    #[error(
        "{at}: {count} per {window_ms} ms is too large (count must be at most 4294967295 and count x window in ms at most 2^52)"
    )]
    LimitTooLarge {
        /// Where.
        at: DocPath,
        /// The count.
        count: u64,
        /// The window.
        window_ms: u64,
    },
    /// An endpoint path that is not a valid path or pattern.
    #[error("{at}: invalid endpoint path {path:?}: {reason}")]
    BadPath {
        /// Where.
        at: DocPath,
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The same endpoint declared twice.
    #[error("{at}: duplicate endpoint {path:?} (first declared at {first})")]
    DuplicateEndpoint {
        /// The second declaration.
        at: DocPath,
        /// The path.
        path: String,
        /// The first declaration.
        first: DocPath,
    },
    /// Two patterns that can match the same path, with the same priority.
    #[error("{at}: patterns {a:?} and {b:?} both match some paths (e.g. {example:?}); give one a higher `priority`")]
    AmbiguousPatterns {
        /// The later pattern's declaration.
        at: DocPath,
        /// One pattern.
        a: String,
        /// The other.
        b: String,
        /// A path both match.
        example: String,
    },
    /// A limit names an endpoint the policy does not declare.
    #[error("{at}: endpoint {endpoint:?} is not declared in `endpoints`")]
    UnknownEndpoint {
        /// Where.
        at: DocPath,
        /// The endpoint.
        endpoint: String,
    },
    /// `per_match` on something that is not a pattern.
    #[error("{at}: per_match needs a pattern endpoint, {endpoint:?} is exact")]
    PerMatchOnExact {
        /// Where.
        at: DocPath,
        /// The endpoint.
        endpoint: String,
    },
    /// A tier with more limits than a store keeps for one bucket.
    #[error("{at}: {count} limits; a tier may have at most {max}")]
    TooManyLimits {
        /// The tier.
        at: DocPath,
        /// Its limits.
        count: usize,
        /// The most allowed.
        max: usize,
    },
    /// Two tiers with one name.
    #[error("{at}: duplicate tier {name:?}")]
    DuplicateTier {
        /// The second tier.
        at: DocPath,
        /// The name.
        name: String,
    },
    /// An empty tier name or one with characters other than letters, digits, `-`, `_`.
    #[error("{at}: invalid tier name {name:?} (letters, digits, '-' and '_')")]
    BadTierName {
        /// Where.
        at: DocPath,
        /// The name.
        name: String,
    },
    /// Two limits of one tier with the same scope and name.
    #[error("{at}: duplicate limit {name:?} on {scope} (first at {first})")]
    DuplicateLimit {
        /// The second limit.
        at: DocPath,
        /// The limit name.
        name: String,
        /// The scope, e.g. `endpoint "txt2img"` or `the whole tier`.
        scope: String,
        /// The first limit.
        first: DocPath,
    },
    /// A limit name that cannot be a header value or an IETF policy name.
    #[error("{at}: invalid limit name {name:?} (lowercase letters, digits, '-' and '_')")]
    BadLimitName {
        /// Where.
        at: DocPath,
        /// The name.
        name: String,
    },
    /// Two tiers granted on the same event.
    #[error("{at}: tiers {first:?} and {second:?} are both granted on {event}")]
    DuplicateGrant {
        /// The second tier.
        at: DocPath,
        /// `signup`, `payment` or `anonymous`.
        event: &'static str,
        /// The first tier's name.
        first: String,
        /// The second tier's name.
        second: String,
    },
}

impl PolicyError {
    /// Where in the document the problem is, when it is a validation problem.
    pub fn doc_path(&self) -> Option<&DocPath> {
        match self {
            PolicyError::Syntax { .. } | PolicyError::Invalid { .. } | PolicyError::NoTiers => None,
            PolicyError::ZeroWindow { at }
            | PolicyError::ZeroCount { at }
            | PolicyError::LimitTooLarge { at, .. }
            | PolicyError::BadPath { at, .. }
            | PolicyError::DuplicateEndpoint { at, .. }
            | PolicyError::AmbiguousPatterns { at, .. }
            | PolicyError::UnknownEndpoint { at, .. }
            | PolicyError::PerMatchOnExact { at, .. }
            | PolicyError::TooManyLimits { at, .. }
            | PolicyError::DuplicateTier { at, .. }
            | PolicyError::BadTierName { at, .. }
            | PolicyError::DuplicateLimit { at, .. }
            | PolicyError::BadLimitName { at, .. }
            | PolicyError::DuplicateGrant { at, .. } => Some(at),
        }
    }
}
