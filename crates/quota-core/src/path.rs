//! Canonical request paths: the one spelling of a path that selects the
//! endpoint, is charged, and is forwarded.
//!
//! A rate limiter that matches one spelling of a path and forwards another
//! has no limit at all: `/v1/prompt/..%2ftxt2img` matches `prompt/*` here,
//! and most servers (nginx, every framework that decodes before routing)
//! serve it as `/v1/txt2img`. So every front end (the tower layer, the
//! gateway's own HTTP/1.1 path, a gRPC front end) passes the request's path
//! through [`canonicalize`] once, and uses only what it returns.
//!
//! ```
//! use quota_core::path::{canonicalize, PathAction, PathError};
//!
//! // Already canonical: returned as it is, nothing allocated.
//! assert_eq!(canonicalize("/v1/txt2img", PathAction::Refuse).unwrap(), "/v1/txt2img");
//! // Encoded unreserved characters are decoded; other escapes get upper-case hex.
//! assert_eq!(canonicalize("/v1/txt%32img%3f", PathAction::Refuse).unwrap(), "/v1/txt2img%3F");
//! // What servers would read as another path is refused by default...
//! assert_eq!(
//!     canonicalize("/v1/prompt/..%2ftxt2img", PathAction::Refuse),
//!     Err(PathError::EncodedSeparator)
//! );
//! // ...or made canonical, and only that form is used and forwarded.
//! assert_eq!(
//!     canonicalize("/v1/prompt/..%2ftxt2img", PathAction::Normalize).unwrap(),
//!     "/v1/txt2img"
//! );
//! ```
//!
//! # The rules
//! The path (the request target up to `?`) must start with `/`. Then, as
//! RFC 3986 (section 6.2.2) normalizes a path and as Envoy's `normalize_path`,
//! `merge_slashes` and `path_with_escaped_slashes_action` and nginx treat it:
//!
//! | spelling | [`PathAction::Refuse`] (default) | [`PathAction::Normalize`] |
//! |---|---|---|
//! | `%41`-style escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) | decoded | decoded |
//! | other escapes (`%3f`) | kept, hex upper-cased (`%3F`) | the same |
//! | a dot-segment, `.` or `..`, also as `%2e` | refused | resolved (RFC 3986 5.2.4) |
//! | an encoded separator, `%2F` | refused | decoded, then a separator |
//! | `//` (an empty segment inside the path) | refused | merged into one `/` |
//! | a segment that starts `..;` or `.;` (Tomcat reads it as a dot-segment) | refused | refused |
//! | `\` or `%5C`, a NUL (`%00`), any control byte, space, `#`, a byte above 127, a `%` not followed by two hex digits | refused | refused |
//! | `..` above the root | refused | refused |
//!
//! Why refusal is the default: a path that needs any of these changes is not
//! sent by a well-behaved client; it is a probe or a bug. Forwarding a
//! normalized form would be safe (the upstream gets what was charged), but
//! it hides the probe from the client's logs and serves a request its sender
//! did not spell; a `400` says plainly what happened. `Normalize` is for
//! upstreams whose clients are known to send such paths.
//!
//! A canonical path is a fixed point: `canonicalize` returns it unchanged
//! (borrowed) under either action.

use std::borrow::Cow;

/// What to do with a path that is not canonical beyond the harmless
/// decoding of unreserved characters (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PathAction {
    /// Refuse it (`400` at an HTTP edge). The default.
    #[default]
    Refuse,
    /// Resolve dot-segments, decode `%2F` and merge slashes, and use that
    /// form (never the one the client sent).
    Normalize,
}

impl std::str::FromStr for PathAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "refuse" => Ok(PathAction::Refuse),
            "normalize" => Ok(PathAction::Normalize),
            other => Err(format!(
                "unknown path action {other:?} (expected refuse or normalize)"
            )),
        }
    }
}

impl std::fmt::Display for PathAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathAction::Refuse => "refuse",
            PathAction::Normalize => "normalize",
        })
    }
}

/// Why a path has no canonical form that may be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the path must start with '/'")]
    NotAbsolute,
    /// A byte no path may hold raw (not an RFC 3986 `pchar`): a control
    /// byte, space, `#`, `\`, `"`, `{`, `|`, a byte above 127, ...
    #[error("the path holds a byte that is not allowed in a path ({0:#04x})")]
    BadByte(u8),
    /// A `%` not followed by two hex digits.
    #[error("the path holds a '%' that is not followed by two hex digits")]
    BadEscape,
    /// `%00`.
    #[error("the path holds an encoded NUL (%00)")]
    Nul,
    /// `%2F` (under [`PathAction::Refuse`]) or `%5C`.
    #[error("the path holds an encoded '/' or '\\' (%2F, %5C)")]
    EncodedSeparator,
    /// A `.` or `..` segment (under [`PathAction::Refuse`]), or one that
    /// starts `.;` or `..;`.
    #[error("the path holds a '.' or '..' segment")]
    DotSegment,
    /// An empty segment inside the path (`//`, under [`PathAction::Refuse`]).
    #[error("the path holds an empty segment ('//')")]
    EmptySegment,
    /// `..` climbing above the root.
    #[error("the path climbs above the root")]
    AboveRoot,
}

/// The canonical form of `path` (the request target's path, without the
/// query), or why there is none. Borrowed when `path` is canonical already.
///
/// See the [module docs](self) for the rules; the result holds only
/// unreserved characters, sub-delimiters, `:`, `@`, `/` and upper-case
/// escapes of other bytes (never of `/`, `\`, NUL or an unreserved one),
/// and no dot-segment or empty segment but a trailing `/`.
pub fn canonicalize(path: &str, action: PathAction) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // The common case: one pass that finds nothing to change.
    let mut simple = true;
    let mut prev = 0u8;
    for &b in bytes {
        match class(b) {
            Class::Plain => {}
            Class::Percent => simple = false,
            Class::Dot if prev == b'/' => simple = false,
            Class::Dot => {}
            Class::Slash if prev == b'/' => simple = false,
            Class::Slash => {}
            Class::Bad => return Err(PathError::BadByte(b)),
        }
        prev = b;
    }
    if simple {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(bytes, action)?;
    let resolved = resolve(&decoded, action)?;
    if resolved == path {
        Ok(Cow::Borrowed(path))
    } else {
        Ok(Cow::Owned(resolved))
    }
}

/// Whether `path` is canonical: [`canonicalize`] would return it as it is.
pub fn is_canonical(path: &str) -> bool {
    matches!(canonicalize(path, PathAction::Refuse), Ok(Cow::Borrowed(_)))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Kept as it is.
    Plain,
    Percent,
    Dot,
    Slash,
    /// Never allowed raw.
    Bad,
}

/// RFC 3986 `pchar` (less `%`, `.`) and `/`: the only bytes a path may
/// hold raw. Anything else (`\`, which some servers read as `/`; `#`;
/// `"`, `<`, `{`, `|`, ...; controls and bytes above 127) is refused, as
/// hyper refuses most of them: a byte that one parser takes and another
/// does not is a byte two parsers may read differently.
fn class(b: u8) -> Class {
    CLASSES[usize::from(b)]
}

/// [`class`] of every byte, worked out once: the scan of a canonical path
/// (every request's) is one table look-up per byte.
const CLASSES: [Class; 256] = {
    let mut table = [Class::Bad; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = match c {
            b'%' => Class::Percent,
            b'.' => Class::Dot,
            b'/' => Class::Slash,
            c if is_unreserved(c) || is_sub_delim(c) || c == b':' || c == b'@' => Class::Plain,
            _ => Class::Bad,
        };
        b += 1;
    }
    table
};

/// Whether `b` is one of RFC 3986's `sub-delims` (`!$&'()*+,;=`).
pub const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Whether `query` (the request target after `?`) is an RFC 3986 query:
/// `pchar`, `/` and `?`, with every `%` the start of an escape. A server
/// that forwards the query as it is should forward only such a one.
pub fn is_query(query: &str) -> bool {
    let b = query.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let escape = b.get(i + 1..i + 3);
                if !escape.is_some_and(|e| e.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
            }
            b'/' | b'?' | b'.' => i += 1,
            c if class(c) == Class::Plain => i += 1,
            _ => return false,
        }
    }
    true
}

/// Whether `b` is one of RFC 3986's unreserved characters (letters,
/// digits, `-`, `.`, `_`, `~`).
pub const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The path with unreserved escapes decoded, other escapes upper-cased
/// and (under `Normalize`) `%2F` decoded to `/`. The result is ASCII: an
/// escape's `%` stands only before two upper-case hex digits.
fn decode(bytes: &[u8], action: PathAction) -> Result<String, PathError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            if class(b) == Class::Bad {
                return Err(PathError::BadByte(b));
            }
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::BadEscape);
        };
        let c = hi << 4 | lo;
        match c {
            0 => return Err(PathError::Nul),
            b'\\' => return Err(PathError::EncodedSeparator),
            b'/' if action == PathAction::Refuse => return Err(PathError::EncodedSeparator),
            b'/' => out.push('/'),
            c if is_unreserved(c) => out.push(char::from(c)),
            c => {
                out.push('%');
                out.push(char::from(HEX[usize::from(c >> 4)]));
                out.push(char::from(HEX[usize::from(c & 15)]));
            }
        }
        i += 3;
    }
    Ok(out)
}

/// Dot-segments and empty segments of a decoded path: refused, or
/// resolved as RFC 3986 (5.2.4) does, empty segments merged.
fn resolve(decoded: &str, action: PathAction) -> Result<String, PathError> {
    // After the leading '/'.
    let rest = decoded.get(1..).unwrap_or_default();
    let parts: Vec<&str> = rest.split('/').collect();
    let last = parts.len() - 1;
    let mut kept: Vec<&str> = Vec::with_capacity(parts.len());
    // Whether the path ends with '/' (an empty last segment, or a last
    // dot-segment: `/a/.` is `/a/`).
    let mut trailing = false;
    for (i, seg) in parts.iter().enumerate() {
        let base = seg.split(';').next().unwrap_or_default();
        let dot = matches!(base, "." | "..");
        if dot && base.len() != seg.len() {
            return Err(PathError::DotSegment);
        }
        match *seg {
            "" if i == last => trailing = true,
            "" => {
                if action == PathAction::Refuse {
                    return Err(PathError::EmptySegment);
                }
            }
            "." | ".." if action == PathAction::Refuse => return Err(PathError::DotSegment),
            "." => trailing |= i == last,
            ".." => {
                if kept.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing |= i == last;
            }
            seg => kept.push(seg),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for seg in &kept {
        out.push('/');
        out.push_str(seg);
    }
    if trailing || kept.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Whether a path segment could be read as another path by a server that
/// decodes or resolves it: empty, `.`, `..`, or holding an encoded `/` or
/// `\`. Such a segment is never what a wildcard stands for.
pub(crate) fn is_unsafe_segment(seg: &str) -> bool {
    if seg.is_empty() || seg == "." || seg == ".." {
        return true;
    }
    let b = seg.as_bytes();
    b.windows(3).any(|w| {
        w[0] == b'%' && w[1] == b'2' && matches!(w[2], b'f' | b'F')
            || w[0] == b'%' && w[1] == b'5' && matches!(w[2], b'c' | b'C')
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may panic

    use super::*;

    fn refuse(p: &str) -> Result<Cow<'_, str>, PathError> {
        canonicalize(p, PathAction::Refuse)
    }

    fn normalize(p: &str) -> Result<Cow<'_, str>, PathError> {
        canonicalize(p, PathAction::Normalize)
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for p in [
            "/",
            "/v1/txt2img",
            "/v1/prompt/enhance",
            "/v1/a.b/c..d/.e/",
            "/v1/x:y@z!$&'()*+,;=",
        ] {
            assert!(matches!(refuse(p), Ok(Cow::Borrowed(q)) if q == p), "{p}");
            assert!(
                matches!(normalize(p), Ok(Cow::Borrowed(q)) if q == p),
                "{p}"
            );
            assert!(is_canonical(p));
        }
    }

    #[test]
    fn the_issues_spellings_are_refused_by_default() {
        assert_eq!(
            refuse("/v1/prompt/..%2ftxt2img"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(
            refuse("/v1/prompt/..%2f..%2fadmin%2faccounts"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(refuse("/v1/prompt/../txt2img"), Err(PathError::DotSegment));
        assert_eq!(
            refuse("/v1/prompt/%2e%2e/txt2img"),
            Err(PathError::DotSegment)
        );
        assert_eq!(
            refuse("/v1/prompt/%2E./txt2img"),
            Err(PathError::DotSegment)
        );
        assert_eq!(refuse("/v1/./txt2img"), Err(PathError::DotSegment));
        assert_eq!(refuse("/v1/prompt/..;/txt2img"), Err(PathError::DotSegment));
        assert_eq!(refuse("/v1/a%5cb"), Err(PathError::EncodedSeparator));
        assert_eq!(refuse("/v1/a\\b"), Err(PathError::BadByte(b'\\')));
        assert_eq!(refuse("/v1/a%00b"), Err(PathError::Nul));
        assert_eq!(refuse("/v1/a\0b"), Err(PathError::BadByte(0)));
        assert_eq!(refuse("/v1//txt2img"), Err(PathError::EmptySegment));
        assert_eq!(refuse("/v1/a b"), Err(PathError::BadByte(b' ')));
        assert_eq!(refuse("/v1/a#b"), Err(PathError::BadByte(b'#')));
        assert_eq!(refuse("/v1/caf\u{e9}"), Err(PathError::BadByte(0xc3)));
        assert_eq!(refuse("/v1/a%2"), Err(PathError::BadEscape));
        assert_eq!(refuse("/v1/a%zz"), Err(PathError::BadEscape));
        for b in ['"', '<', '>', '^', '`', '{', '|', '}', '[', ']'] {
            assert_eq!(
                refuse(&format!("/v1/a{b}")),
                Err(PathError::BadByte(b as u8))
            );
        }
        assert_eq!(refuse("v1/a"), Err(PathError::NotAbsolute));
        assert_eq!(refuse(""), Err(PathError::NotAbsolute));
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        assert_eq!(refuse("/v1/txt%32img").unwrap(), "/v1/txt2img");
        assert_eq!(refuse("/v1/%7euser%2D1").unwrap(), "/v1/~user-1");
        assert_eq!(refuse("/v1/a%3fb%c3%a9").unwrap(), "/v1/a%3Fb%C3%A9");
        assert_eq!(refuse("/v1/a%25b").unwrap(), "/v1/a%25b");
        assert!(matches!(refuse("/v1/a%3Fb"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn normalize_resolves_what_refuse_refuses() {
        assert_eq!(normalize("/v1/prompt/..%2ftxt2img").unwrap(), "/v1/txt2img");
        assert_eq!(
            normalize("/v1/prompt/..%2f..%2fadmin%2faccounts").unwrap(),
            "/admin/accounts"
        );
        assert_eq!(normalize("/v1/./a/../b").unwrap(), "/v1/b");
        assert_eq!(normalize("/v1//a///b").unwrap(), "/v1/a/b");
        assert_eq!(normalize("/v1/a/.").unwrap(), "/v1/a/");
        assert_eq!(normalize("/v1/a/..").unwrap(), "/v1/");
        assert_eq!(normalize("/..").unwrap_err(), PathError::AboveRoot);
        assert_eq!(normalize("/v1/../../x").unwrap_err(), PathError::AboveRoot);
        assert_eq!(
            normalize("/v1/a%5cb").unwrap_err(),
            PathError::EncodedSeparator
        );
        assert_eq!(normalize("/v1/..;/x").unwrap_err(), PathError::DotSegment);
        assert_eq!(
            normalize("/v1/a\\b").unwrap_err(),
            PathError::BadByte(b'\\')
        );
    }

    #[test]
    fn unsafe_segments_are_recognised() {
        for s in ["", ".", "..", "a%2fb", "%2F", "x%5c", "%5Cy"] {
            assert!(is_unsafe_segment(s), "{s}");
        }
        for s in ["a", "...", ".a", "a%25", "%2", "%3F"] {
            assert!(!is_unsafe_segment(s), "{s}");
        }
    }

    #[test]
    fn queries_are_rfc_3986_queries() {
        for q in ["", "a=b&c=d", "x=%20%2F/?:@!$'()*+,;=", "a.b~c"] {
            assert!(is_query(q), "{q}");
        }
        for q in [
            "a b",
            "a|b",
            "a^b",
            "a\"b",
            "a{b}",
            "a%2",
            "a%zz",
            "caf\u{e9}",
            "a#b",
        ] {
            assert!(!is_query(q), "{q}");
        }
    }

    #[test]
    fn actions_parse_and_print() {
        for a in [PathAction::Refuse, PathAction::Normalize] {
            assert_eq!(a.to_string().parse::<PathAction>().unwrap(), a);
        }
        assert!("strict".parse::<PathAction>().is_err());
    }
}
