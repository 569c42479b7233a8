//! Endpoint paths and patterns: `txt2img`, `videos/replace`, `prompt/*`.
//!
//! A pattern is a `/`-separated list of segments. A segment is a literal,
//! `*` (exactly one segment) or, last only, `**` (one or more segments).
//! Wildcards are whole segments: `img-*` is not a pattern. A wildcard never
//! stands for a segment a server could read as another path: empty, `.`,
//! `..`, or holding an encoded `/` or `\\` (see [`crate::path`]).

use crate::path::is_unsafe_segment;

/// A parsed endpoint path or pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

/// Why a path is not a valid endpoint or pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PatternError {
    Empty,
    EmptySegment,
    BadChar(char),
    PartialWildcard(String),
    RestNotLast,
    DotSegment,
}

impl core::fmt::Display for PatternError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PatternError::Empty => f.write_str("the path is empty"),
            PatternError::EmptySegment => {
                f.write_str("the path has an empty segment (leading, trailing or double '/')")
            }
            PatternError::BadChar(c) => write!(
                f,
                "character {c:?} is not allowed (letters, digits, '-', '_', '.', '~' and '/')"
            ),
            PatternError::PartialWildcard(s) => write!(
                f,
                "segment {s:?}: a wildcard must be a whole segment ('*' or '**')"
            ),
            PatternError::RestNotLast => f.write_str("'**' may only be the last segment"),
            PatternError::DotSegment => f.write_str(
                "'.' and '..' are not endpoint segments (a request path never holds them)",
            ),
        }
    }
}

impl Pattern {
    pub(crate) fn parse(path: &str) -> Result<Self, PatternError> {
        if path.is_empty() {
            return Err(PatternError::Empty);
        }
        let parts: Vec<&str> = path.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let seg = match *part {
                "" => return Err(PatternError::EmptySegment),
                "." | ".." => return Err(PatternError::DotSegment),
                "*" => Segment::One,
                "**" if i + 1 == parts.len() => Segment::Rest,
                "**" => return Err(PatternError::RestNotLast),
                lit if lit.contains('*') => {
                    return Err(PatternError::PartialWildcard(lit.to_owned()))
                }
                lit => {
                    if let Some(c) = lit.chars().find(|c| !is_path_char(*c)) {
                        return Err(PatternError::BadChar(c));
                    }
                    Segment::Literal(lit.to_owned())
                }
            };
            segments.push(seg);
        }
        Ok(Pattern { segments })
    }

    /// True when the pattern has no wildcard.
    pub(crate) fn is_exact(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// Whether `path` (an endpoint name, no leading `/`) matches.
    pub(crate) fn matches(&self, path: &str) -> bool {
        let mut parts = path.split('/');
        for seg in &self.segments {
            match seg {
                Segment::Rest => {
                    let mut any = false;
                    for p in parts {
                        if is_unsafe_segment(p) {
                            return false;
                        }
                        any = true;
                    }
                    return any;
                }
                Segment::One => match parts.next() {
                    Some(p) if !is_unsafe_segment(p) => {}
                    _ => return false,
                },
                Segment::Literal(l) => match parts.next() {
                    Some(p) if p == l => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }

    /// Whether some path matches both patterns.
    pub(crate) fn overlaps(&self, other: &Pattern) -> bool {
        let (a, b) = (&self.segments, &other.segments);
        let mut i = 0;
        loop {
            match (a.get(i), b.get(i)) {
                (None, None) => return true,
                (Some(Segment::Rest), Some(_)) | (Some(_), Some(Segment::Rest)) => return true,
                (None, Some(_)) | (Some(_), None) => return false,
                (Some(Segment::Literal(x)), Some(Segment::Literal(y))) if x != y => return false,
                _ => i += 1,
            }
        }
    }
}

/// Characters allowed in an endpoint path segment (RFC 3986 unreserved).
pub(crate) fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may panic

    use super::*;

    #[test]
    fn one_segment_wildcard_matches_exactly_one_segment() {
        let p = Pattern::parse("prompt/*").unwrap();
        assert!(p.matches("prompt/enhance"));
        assert!(!p.matches("prompt"));
        assert!(!p.matches("prompt/a/b"));
        assert!(!p.matches("prompt/"));
        assert!(!p.matches("promptx/a"));
    }

    #[test]
    fn rest_wildcard_matches_one_or_more_segments() {
        let p = Pattern::parse("files/**").unwrap();
        assert!(p.matches("files/a"));
        assert!(p.matches("files/a/b/c"));
        assert!(!p.matches("files"));
    }

    #[test]
    fn wildcards_never_stand_for_segments_a_server_reads_as_another_path() {
        let one = Pattern::parse("prompt/*").unwrap();
        let rest = Pattern::parse("files/**").unwrap();
        for seg in [
            "",
            ".",
            "..",
            "..%2ftxt2img",
            "..%2Ftxt2img",
            "a%5cb",
            "%5C",
        ] {
            assert!(!one.matches(&format!("prompt/{seg}")), "{seg:?}");
            assert!(!rest.matches(&format!("files/{seg}")), "{seg:?}");
            assert!(!rest.matches(&format!("files/a/{seg}/b")), "{seg:?}");
        }
        assert!(one.matches("prompt/a%3Fb"));
        assert!(rest.matches("files/.hidden/x"));
    }

    #[test]
    fn partial_wildcards_and_empty_segments_are_rejected() {
        assert_eq!(
            Pattern::parse("img-*"),
            Err(PatternError::PartialWildcard("img-*".into()))
        );
        assert_eq!(Pattern::parse("a//b"), Err(PatternError::EmptySegment));
        assert_eq!(Pattern::parse("/a"), Err(PatternError::EmptySegment));
        assert_eq!(Pattern::parse("**/a"), Err(PatternError::RestNotLast));
        assert_eq!(Pattern::parse("a b"), Err(PatternError::BadChar(' ')));
        assert_eq!(Pattern::parse(""), Err(PatternError::Empty));
        assert_eq!(Pattern::parse("a/../b"), Err(PatternError::DotSegment));
        assert_eq!(Pattern::parse("./b"), Err(PatternError::DotSegment));
    }

    #[test]
    fn overlap_is_detected_segment_by_segment() {
        let p = |s| Pattern::parse(s).unwrap();
        assert!(p("prompt/*").overlaps(&p("*/enhance")));
        assert!(p("prompt/*").overlaps(&p("prompt/**")));
        assert!(!p("prompt/*").overlaps(&p("prompt/*/x")));
        assert!(!p("prompt/*").overlaps(&p("videos/*")));
        assert!(p("**").overlaps(&p("a/b/c")));
        assert!(!p("a/b").overlaps(&p("a/c")));
    }
}
