//! Any text as a request path: canonicalizing never panics, what it gives
//! is canonical (a fixed point under both actions) and holds nothing a
//! server could read as another path; refusing only ever decodes (the same
//! result as normalizing, when both succeed).
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use quota_core::path::{canonicalize, is_canonical, PathAction};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let refused = canonicalize(path, PathAction::Refuse);
    let normalized = canonicalize(path, PathAction::Normalize);
    if let Ok(out) = &refused {
        assert_eq!(normalized.as_deref(), Ok(&**out));
    }
    let Ok(out) = normalized else {
        return;
    };
    assert!(is_canonical(&out), "{path:?} -> {out:?}");
    assert!(matches!(canonicalize(&out, PathAction::Normalize), Ok(Cow::Borrowed(_))));
    assert!(out.starts_with('/') && out.is_ascii());
    let upper = out.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00", "\\", "//", "#", " "] {
        assert!(!upper.contains(bad), "{path:?} -> {out:?}");
    }
    for seg in out.split('/') {
        assert!(seg != "." && seg != "..", "{path:?} -> {out:?}");
    }
});
