//! [`HeaderFields`]: read access to a request's header fields, from an
//! `http::HeaderMap` or straight from a parsed head.
//!
//! The checks ([`identity::api_key`](crate::identity::api_key),
//! [`upload::precheck`](crate::upload::precheck),
//! [`EnforceLayer::check_head`](crate::enforce::EnforceLayer::check_head))
//! read a few fields by name; a server that parses heads itself hands them
//! its fields as they are, without building a header map.
//!
//! ```
//! use quota_transport::fields::HeaderFields;
//! use quota_transport::identity::{api_key, KeyHeaders};
//!
//! // Name and value bytes as a parser found them (any case).
//! let fields: &[(&[u8], &[u8])] = &[(b"Host", b"api.example"), (b"X-API-Key", b"k-1")];
//! assert_eq!(api_key(fields, KeyHeaders::BOTH), Ok("k-1"));
//! let host: Vec<&[u8]> = fields.values_of(&http::header::HOST).collect();
//! assert_eq!(host, [&b"api.example"[..]]);
//! ```

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// A request's header fields, read by name.
pub trait HeaderFields {
    /// Every value of the fields named `name` (any case), in order.
    fn values_of<'a: 'n, 'n>(&'a self, name: &'n HeaderName)
        -> impl Iterator<Item = &'a [u8]> + 'n;

    /// The first value of the fields named `name`.
    fn value_of<'a>(&'a self, name: &HeaderName) -> Option<&'a [u8]> {
        self.values_of(name).next()
    }
}

impl HeaderFields for HeaderMap {
    fn values_of<'a: 'n, 'n>(
        &'a self,
        name: &'n HeaderName,
    ) -> impl Iterator<Item = &'a [u8]> + 'n {
        self.get_all(name).iter().map(HeaderValue::as_bytes)
    }
}

/// Fields as a parser found them: name and value bytes, names in any case.
impl HeaderFields for [(&[u8], &[u8])] {
    fn values_of<'a: 'n, 'n>(
        &'a self,
        name: &'n HeaderName,
    ) -> impl Iterator<Item = &'a [u8]> + 'n {
        let name = name.as_str().as_bytes();
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// A field value as text, when it is what `HeaderValue::to_str` accepts:
/// visible ASCII, spaces and tabs.
///
/// ```
/// use quota_transport::fields::text;
/// assert_eq!(text(b"Bearer k-1"), Some("Bearer k-1"));
/// assert_eq!(text(b"caf\xc3\xa9"), None);
/// ```
pub fn text(value: &[u8]) -> Option<&str> {
    if value.iter().all(|&b| b == b'\t' || (32..127).contains(&b)) {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;

    #[test]
    fn a_map_and_raw_fields_give_the_same_values_in_order() {
        let mut map = HeaderMap::new();
        map.append("x-a", HeaderValue::from_static("1"));
        map.append("x-b", HeaderValue::from_static("2"));
        map.append("x-a", HeaderValue::from_static("3"));
        let raw: &[(&[u8], &[u8])] = &[(b"X-A", b"1"), (b"x-b", b"2"), (b"x-A", b"3")];
        let name = HeaderName::from_static("x-a");
        let from_map: Vec<&[u8]> = map.values_of(&name).collect();
        let from_raw: Vec<&[u8]> = raw.values_of(&name).collect();
        assert_eq!(from_map, from_raw);
        assert_eq!(
            raw.value_of(&HeaderName::from_static("x-b")),
            Some(&b"2"[..])
        );
        assert_eq!(raw.value_of(&HeaderName::from_static("x-c")), None);
    }

    #[test]
    fn text_is_what_to_str_accepts() {
        for bytes in [&b"abc def"[..], b"a\tb", b"caf\xc3\xa9", b"\x80", b""] {
            let value = HeaderValue::from_bytes(bytes).unwrap();
            assert_eq!(text(bytes), value.to_str().ok(), "{bytes:?}");
        }
        // Not a header value at all (`http` refuses it), nor text.
        assert_eq!(text(b"a\x7fb"), None);
    }
}
