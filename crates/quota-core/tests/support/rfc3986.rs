//! A reference for request paths, written from RFC 3986 (sections 2.3,
//! 6.2.2 and 5.2.4) independently of `quota_core::path`, and the strategy of
//! hostile paths the property tests draw from. Shared by quota-core's and
//! quota-transport's path properties (`#[path]` includes).
#![allow(dead_code, unreachable_pub)] // each includer uses a part

use proptest::prelude::*;

/// RFC 3986 section 6.2.2 (case and percent-encoding normalization, then
/// dot-segment removal) of a path made of ASCII, as a server that
/// normalizes would read it. `None` when a `%` is not an escape.
pub fn rfc3986_normalize(path: &str) -> Option<String> {
    let b = path.as_bytes();
    let mut decoded = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            let c = u8::from_str_radix(hex, 16).ok()?;
            if hex.starts_with('+') || hex.starts_with('-') {
                return None;
            }
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                decoded.push(char::from(c));
            } else {
                decoded.push_str(&format!("%{c:02X}"));
            }
            i += 3;
        } else {
            decoded.push(char::from(b[i]));
            i += 1;
        }
    }
    Some(remove_dot_segments(&decoded))
}

/// RFC 3986 section 5.2.4, step by step as the RFC writes it.
pub fn remove_dot_segments(input: &str) -> String {
    let mut input = input.to_owned();
    let mut output = String::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest.to_owned();
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest.to_owned();
        } else if input.starts_with("/./") {
            input = input[2..].to_owned();
        } else if input == "/." {
            input = "/".to_owned();
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." {
                "/".to_owned()
            } else {
                input[3..].to_owned()
            };
            match output.rfind('/') {
                Some(at) => output.truncate(at),
                None => output.clear(),
            }
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |e| e + start);
            output.push_str(&input[..end]);
            input = input[end..].to_owned();
        }
    }
    output
}

/// Text made of the pieces that matter in a path: separators, dots,
/// escapes of separators, dots, NUL and unreserved characters, other
/// escapes, bytes no path may hold, and plain words.
pub fn path_pieces() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/"),
        Just("/"),
        Just("."),
        Just(".."),
        Just("%2e"),
        Just("%2E"),
        Just("%2f"),
        Just("%2F"),
        Just("%5c"),
        Just("\\"),
        Just("%00"),
        Just("%41"),
        Just("%7e"),
        Just("%3f"),
        Just("%c3%a9"),
        Just("%"),
        Just("%g1"),
        Just(";"),
        Just("#"),
        Just(" "),
        Just("é"),
        Just("a"),
        Just("v1"),
        Just("txt2img"),
        Just("prompt"),
    ];
    prop::collection::vec(piece, 0..14).prop_map(|p| p.concat())
}
