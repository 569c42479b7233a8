//! Properties of `quota_core::path::canonicalize` over arbitrary paths,
//! against a reference written from RFC 3986 (sections 2.3, 6.2.2 and
//! 5.2.4) independently of the implementation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::borrow::Cow;

use proptest::prelude::*;
use quota_core::path::{canonicalize, is_canonical, PathAction};

#[path = "support/rfc3986.rs"]
mod rfc3986;
use rfc3986::{remove_dot_segments, rfc3986_normalize};

/// Paths made of the pieces that matter: separators, dots, escapes of
/// separators, dots, NUL and unreserved characters, other escapes, bytes no
/// path may hold, and plain text.
fn path() -> impl Strategy<Value = String> {
    rfc3986::path_pieces().prop_map(|p| format!("/{p}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// What comes out is its own RFC 3986 normalization, a fixed point of
    /// both actions, and holds no dot-segment, empty segment, encoded or
    /// raw backslash, encoded slash or NUL.
    #[test]
    fn the_result_is_canonical(p in path()) {
        for action in [PathAction::Refuse, PathAction::Normalize] {
            let Ok(out) = canonicalize(&p, action) else { continue };
            let reference = rfc3986_normalize(&out);
            prop_assert_eq!(reference.as_deref(), Some(&*out));
            prop_assert!(is_canonical(&out), "{out:?} from {p:?}");
            prop_assert!(matches!(canonicalize(&out, PathAction::Normalize), Ok(Cow::Borrowed(_))));
            let segments: Vec<&str> = out[1..].split('/').collect();
            let last = segments.len() - 1;
            for (i, seg) in segments.iter().enumerate() {
                prop_assert!(*seg != "." && *seg != "..", "{out:?}");
                prop_assert!(!seg.is_empty() || i == last, "{out:?}");
            }
            let upper = out.to_ascii_uppercase();
            for bad in ["%2F", "%5C", "%00", "\\", "#", " "] {
                prop_assert!(!upper.contains(bad), "{out:?} holds {bad}");
            }
            prop_assert!(out.is_ascii());
        }
    }

    /// Refusing changes nothing but what RFC 3986 calls equivalent: the
    /// result is the input's own normalization (so a server reads both as
    /// the same path), and normalizing the same input gives the same path.
    #[test]
    fn refuse_only_decodes(p in path()) {
        if let Ok(out) = canonicalize(&p, PathAction::Refuse) {
            let reference = rfc3986_normalize(&p);
            prop_assert_eq!(reference.as_deref(), Some(&*out));
            let normalized = canonicalize(&p, PathAction::Normalize);
            prop_assert_eq!(normalized.as_deref(), Ok(&*out));
        }
    }

    /// Normalizing is what a decoding server does: escapes of `/` become
    /// separators, runs of `/` merge, then RFC 3986 removes dot-segments.
    #[test]
    fn normalize_is_what_a_decoding_server_reads(p in path()) {
        if let Ok(out) = canonicalize(&p, PathAction::Normalize) {
            let slashes = p.replace("%2f", "/").replace("%2F", "/");
            let mut merged = String::new();
            for c in slashes.chars() {
                if !(c == '/' && merged.ends_with('/')) {
                    merged.push(c);
                }
            }
            let reference = rfc3986_normalize(&merged);
            prop_assert_eq!(reference.as_deref(), Some(&*out));
        }
    }
}

#[test]
fn the_reference_follows_the_rfcs_examples() {
    // RFC 3986 section 5.2.4's examples.
    assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
    assert_eq!(remove_dot_segments("mid/content=5/../6"), "mid/6");
    assert_eq!(rfc3986_normalize("/%7Euser/a%2fb").unwrap(), "/~user/a%2Fb");
}
