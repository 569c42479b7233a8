//! Reading a trace: CSV text, one request per row, checked against a policy.
//!
//! A row is `timestamp_ms,key,endpoint[,tier]`. Blank lines and lines that
//! start with `#` are skipped, and so is a first line whose timestamp is not
//! a number (a header). Fields are trimmed and may be in double quotes (no
//! commas inside them). A trace is refused, with the line, when a row is
//! malformed, earlier than the row before it (the replay decides rows in
//! file order, so a trace out of order would be decided wrongly), or names
//! a tier the policy does not have.

use super::Row;
use crate::policy::Policy;

/// A trace, parsed and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// The rows, in time order.
    pub rows: Vec<Row>,
    /// The tier of rows that name none: the one asked for, else the
    /// policy's signup tier, else its first.
    pub default_tier: String,
    /// What looks wrong but is not refused.
    pub warnings: Vec<TraceWarning>,
}

/// Why a trace is refused. [`TraceError::line`] says where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// A timestamp that is not a whole number of milliseconds.
    #[error("timestamp {value:?} is not a whole number of milliseconds since the epoch")]
    BadTimestamp {
        /// The line, from 1.
        line: usize,
        /// What it says.
        value: String,
    },
    /// A row without its key or endpoint.
    #[error("expected timestamp_ms,key,endpoint[,tier]")]
    MissingField {
        /// The line, from 1.
        line: usize,
    },
    /// A row earlier than the row before it.
    #[error("rows must be in time order: {at} is earlier than {previous} on line {previous_line}")]
    OutOfOrder {
        /// The line, from 1.
        line: usize,
        /// Its timestamp.
        at: u64,
        /// The row before it.
        previous_line: usize,
        /// That row's timestamp.
        previous: u64,
    },
    /// A tier the policy does not have: in a row, or asked for (no line).
    #[error("unknown tier {tier:?}: the policy's tiers are {known}")]
    UnknownTier {
        /// The row's line, or `None` for the default tier asked for.
        line: Option<usize>,
        /// The tier.
        tier: String,
        /// The policy's tiers, comma-separated.
        known: String,
    },
    /// The policy has no tier for rows that name none.
    #[error("the policy has no tier")]
    NoTier,
}

impl TraceError {
    /// The line (from 1) the problem is on, if it is on one.
    pub fn line(&self) -> Option<usize> {
        match self {
            TraceError::BadTimestamp { line, .. }
            | TraceError::MissingField { line }
            | TraceError::OutOfOrder { line, .. } => Some(*line),
            TraceError::UnknownTier { line, .. } => *line,
            TraceError::NoTier => None,
        }
    }
}

/// What looks wrong in a trace but is replayed as read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceWarning {
    /// Every timestamp reads as a date before March 1973 in milliseconds but
    /// after 2001 in seconds: probably seconds.
    #[error("the timestamps look like seconds, not milliseconds: {first} read as milliseconds is {}; multiply them by 1000 if they are seconds", super::Chart::utc(*first))]
    LooksLikeSeconds {
        /// The first timestamp.
        first: u64,
    },
}

/// 2001-09-09 in seconds: a timestamp below it is not seconds since the epoch.
const SECONDS_FROM: u64 = 1_000_000_000;
/// 1973-03-03 in milliseconds: a trace entirely below it is hardly milliseconds since the epoch.
const MILLIS_FROM: u64 = 100_000_000_000;

impl Trace {
    /// Parses `src` and checks it against `policy`; `tier` is the tier of
    /// rows that name none (the policy's signup tier when `None`).
    ///
    /// # Errors
    /// The first problem, with its line: [`TraceError`].
    pub fn parse(src: &str, policy: &Policy, tier: Option<&str>) -> Result<Trace, TraceError> {
        let known = || {
            let names: Vec<&str> = policy.tiers().iter().map(|t| t.name()).collect();
            names.join(", ")
        };
        let default_tier = match tier {
            Some(t) if policy.tier(t).is_none() => {
                return Err(TraceError::UnknownTier {
                    line: None,
                    tier: t.to_owned(),
                    known: known(),
                })
            }
            Some(t) => t.to_owned(),
            None => policy
                .signup_tier()
                .or_else(|| policy.tiers().first())
                .map(|t| t.name().to_owned())
                .ok_or(TraceError::NoTier)?,
        };
        let mut rows: Vec<Row> = Vec::new();
        let mut previous = (0, 0); // (line, timestamp)
        for (i, text) in src.lines().enumerate() {
            let line = i + 1;
            let text = text.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let mut fields = text.split(',').map(|f| f.trim().trim_matches('"').trim());
            let stamp = fields.next().unwrap_or("");
            let Ok(at) = stamp.parse::<u64>() else {
                if rows.is_empty() && previous.0 == 0 {
                    previous.0 = line; // a header: only the first line may be one
                    continue;
                }
                return Err(TraceError::BadTimestamp {
                    line,
                    value: stamp.to_owned(),
                });
            };
            let (Some(key), Some(endpoint)) = (fields.next(), fields.next()) else {
                return Err(TraceError::MissingField { line });
            };
            let endpoint = endpoint.trim_start_matches('/');
            if key.is_empty() || endpoint.is_empty() {
                return Err(TraceError::MissingField { line });
            }
            let tier = fields.next().filter(|t| !t.is_empty());
            if let Some(t) = tier.filter(|t| policy.tier(t).is_none()) {
                return Err(TraceError::UnknownTier {
                    line: Some(line),
                    tier: t.to_owned(),
                    known: known(),
                });
            }
            if !rows.is_empty() && at < previous.1 {
                return Err(TraceError::OutOfOrder {
                    line,
                    at,
                    previous_line: previous.0,
                    previous: previous.1,
                });
            }
            previous = (line, at);
            rows.push(Row {
                at,
                key: key.to_owned(),
                endpoint: endpoint.to_owned(),
                tier: tier.map(str::to_owned),
            });
        }
        let mut warnings = Vec::new();
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            if first.at >= SECONDS_FROM && last.at < MILLIS_FROM {
                warnings.push(TraceWarning::LooksLikeSeconds { first: first.at });
            }
        }
        Ok(Trace {
            rows,
            default_tier,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(src: &str, tier: Option<&str>) -> Result<Trace, TraceError> {
        Trace::parse(src, &Policy::seed(), tier)
    }

    #[test]
    fn reads_rows_skipping_header_comments_and_blank_lines() {
        let t = parse(
            "timestamp_ms,key,endpoint,tier\n# a comment\n\n1000, \"k\" ,/txt2img\n1000,k,img2img,premium\n",
            None,
        )
        .unwrap();
        assert_eq!(t.default_tier, "basic");
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].endpoint, "txt2img");
        assert_eq!(t.rows[0].key, "k");
        assert_eq!(t.rows[1].tier.as_deref(), Some("premium"));
        assert!(t.warnings.is_empty());
    }

    #[test]
    fn refuses_rows_out_of_time_order_naming_both_lines() {
        let e = parse("1000,k,txt2img\n2000,k,txt2img\n1500,k,txt2img\n", None).unwrap_err();
        assert_eq!(e.line(), Some(3));
        assert!(
            matches!(
                e,
                TraceError::OutOfOrder {
                    previous_line: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("1500 is earlier than 2000 on line 2"),
            "{e}"
        );
    }

    #[test]
    fn refuses_an_unknown_tier_asked_for_or_in_a_row() {
        let e = parse("1000,k,txt2img\n", Some("gold")).unwrap_err();
        assert_eq!(e.line(), None);
        assert_eq!(
            e.to_string(),
            "unknown tier \"gold\": the policy's tiers are basic, premium"
        );
        let e = parse("1000,k,txt2img\n1001,k,txt2img,Basic\n", None).unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert!(matches!(e, TraceError::UnknownTier { .. }));
    }

    #[test]
    fn refuses_bad_timestamps_and_short_rows() {
        let e = parse("1000,k,txt2img\nsoon,k,txt2img\n", None).unwrap_err();
        assert!(matches!(e, TraceError::BadTimestamp { line: 2, .. }), "{e}");
        let e = parse("1000,k\n", None).unwrap_err();
        assert_eq!(e, TraceError::MissingField { line: 1 });
        let e = parse("1000,,txt2img\n", None).unwrap_err();
        assert_eq!(e, TraceError::MissingField { line: 1 });
    }

    #[test]
    fn warns_when_timestamps_look_like_seconds() {
        let t = parse("1700000020,k,txt2img\n1700000080,k,txt2img\n", None).unwrap();
        assert_eq!(
            t.warnings,
            [TraceWarning::LooksLikeSeconds {
                first: 1_700_000_020
            }]
        );
        assert!(
            t.warnings[0].to_string().contains("20 Jan 1970"),
            "{}",
            t.warnings[0]
        );
        // Milliseconds since the epoch, or since the trace's start: no warning.
        for src in [
            "1700000020000,k,txt2img\n",
            "0,k,txt2img\n60000,k,txt2img\n",
        ] {
            assert!(parse(src, None).unwrap().warnings.is_empty(), "{src}");
        }
    }
}
