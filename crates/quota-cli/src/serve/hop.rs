//! Hop-by-hop headers (RFC 9110, section 7.6.1), which concern one
//! connection only and are never forwarded, and the edits the gateway makes
//! to a request's headers on the way to the upstream.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;

/// Headers that concern one connection only, never forwarded.
pub(crate) const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers, and every header `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds which hop-by-hop headers are there:
    // usually none in a request, and only `Connection: keep-alive` in a
    // response. Each removal below is then a hash lookup that finds something.
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // `Connection` (the first in the table) names more: remove those that
    // are there (its usual `keep-alive` or `close` names nothing else).
    if present & 1 != 0 {
        for name in HeaderEdits::connection_named(headers) {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Whether `name` (as sent, in any case) is a hop-by-hop header.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    // Most names have none of the table's lengths: no comparison at all.
    if !matches!(name.len(), 2 | 7 | 10 | 16..=19) {
        return false;
    }
    HOP_BY_HOP
        .iter()
        .any(|h| h.as_str().len() == name.len() && h.as_str().as_bytes().eq_ignore_ascii_case(name))
}

/// The names a `Connection` header's `value` lists, besides the hop-by-hop
/// ones (its usual `keep-alive`; `close` names no header in practice).
pub(crate) fn named_by_connection(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty() && !is_hop_by_hop(t))
}

/// What a request's headers become on the way to the upstream: its own
/// headers without the hop-by-hop ones, without those its `Connection`
/// names, without those in [`HeaderEdits::dropped`] and without those the
/// gateway sets; then the ones it sets ([`HeaderEdits::set`]), in order.
#[derive(Debug, Default)]
pub(crate) struct HeaderEdits {
    /// Headers the gateway sets, replacing any the client sent.
    pub(crate) set: SmallVec<[(HeaderName, HeaderValue); 6]>,
    /// More headers the client's request loses.
    pub(crate) dropped: SmallVec<[HeaderName; 4]>,
}

impl HeaderEdits {
    /// Whether a header of the client's request named `name` goes to the
    /// upstream (`named` are the names its `Connection` header lists).
    pub(crate) fn keeps(&self, name: &HeaderName, named: &[HeaderName]) -> bool {
        !HOP_BY_HOP.contains(name)
            && !self.set.iter().any(|(n, _)| n == name)
            && !self.dropped.contains(name)
            && !named.contains(name)
    }

    /// The names `headers`' `Connection` header lists (usually none).
    pub(crate) fn connection_named(headers: &HeaderMap) -> SmallVec<[HeaderName; 2]> {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| named_by_connection(v.as_bytes()))
            .filter_map(|t| HeaderName::from_bytes(t).ok())
            .collect()
    }

    /// Makes the edits in `headers` (for a request handed to hyper's client).
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        strip_hop_by_hop(headers);
        for name in &self.dropped {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hop_by_hop_name_is_found_in_any_case() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name.as_str().as_bytes()));
            assert!(is_hop_by_hop(name.as_str().to_ascii_uppercase().as_bytes()));
        }
        for name in ["host", "x-api-key", "content-type", "tes", "upgrades"] {
            assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("close, X-Secret-Hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("proxy-authorization", HeaderValue::from_static("x"));
        h.insert("x-end-to-end", HeaderValue::from_static("kept"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-end-to-end"]);
    }

    #[test]
    fn a_usual_response_loses_only_its_connection_header() {
        let mut h = HeaderMap::new();
        h.insert("server", HeaderValue::from_static("nginx"));
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        h.insert("content-length", HeaderValue::from_static("11"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["server", "content-length"]);

        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Keep-Alive, X-HOP"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
    }
}
