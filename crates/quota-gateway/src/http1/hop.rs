//! Hop-by-hop headers (RFC 9110, section 7.6.1), which concern one
//! connection only and are never forwarded, and the edits the gateway makes
//! to a request's headers on the way to the upstream.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use quota_transport::fields::HeaderFields;
use smallvec::SmallVec;

/// Headers that concern one connection only, never forwarded.
pub const HOP_BY_HOP: [HeaderName; 9] = [
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
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
        let named: SmallVec<[HeaderName; 2]> = connection_named(&*headers)
            .into_iter()
            .filter_map(|t| HeaderName::from_bytes(t).ok())
            .collect();
        for name in named {
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
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    // Most names have none of the table's lengths: no comparison at all.
    if !matches!(name.len(), 2 | 7 | 10 | 16..=19) {
        return false;
    }
    HOP_BY_HOP
        .iter()
        .any(|h| h.as_str().len() == name.len() && h.as_str().as_bytes().eq_ignore_ascii_case(name))
}

/// Whether a response field named `name` is a length that its message's
/// `Transfer-Encoding` (`transfer_encoding`: the message has one) overrides:
/// RFC 9112, section 6.3, item 3. The body is framed by the coding, so the
/// length is stale, and a client that trusted it would cut the body short:
/// such a field is never passed on (whichever client read the response).
pub fn is_stale_length(name: &[u8], transfer_encoding: bool) -> bool {
    transfer_encoding && name.eq_ignore_ascii_case(header::CONTENT_LENGTH.as_str().as_bytes())
}

/// Removes a response's hop-by-hop headers (see [`strip_hop_by_hop`]) and
/// a `Content-Length` its `Transfer-Encoding` overrides ([`is_stale_length`]).
pub fn strip_response_framing(headers: &mut HeaderMap) {
    if is_stale_length(
        header::CONTENT_LENGTH.as_str().as_bytes(),
        headers.contains_key(header::TRANSFER_ENCODING),
    ) {
        headers.remove(header::CONTENT_LENGTH);
    }
    strip_hop_by_hop(headers);
}

/// The names a `Connection` header's `value` lists, besides the hop-by-hop
/// ones (its usual `keep-alive`; `close` names no header in practice).
pub fn named_by_connection(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty() && !is_hop_by_hop(t))
}

/// Writes one field of an HTTP/1.1 head: `name: value` and CRLF.
#[inline]
pub fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A header map's fields as name and value bytes, in order.
pub fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
}

/// The names a request's `Connection` header lists (usually none).
pub fn connection_named<H: HeaderFields + ?Sized>(headers: &H) -> SmallVec<[&[u8]; 2]> {
    headers
        .values_of(&header::CONNECTION)
        .flat_map(named_by_connection)
        .collect()
}

/// A header the gateway sets: its name (lower case) and value.
pub type SetField<'a> = (&'static str, Cow<'a, [u8]>);

/// What a request's headers become on the way to the upstream: its own
/// headers without the hop-by-hop ones, without those its `Connection`
/// names, without those in [`HeaderEdits::dropped`] and without those the
/// gateway sets; then the ones it sets ([`HeaderEdits::set`]), in order.
/// The values it sets may borrow from the request (`'a`).
#[derive(Debug, Default)]
pub struct HeaderEdits<'a> {
    /// Headers the gateway sets (names in lower case), replacing any the
    /// client sent.
    pub set: SmallVec<[SetField<'a>; 8]>,
    /// More headers the client's request loses (names in lower case).
    pub dropped: SmallVec<[&'static str; 8]>,
}

impl<'a> HeaderEdits<'a> {
    /// Whether a header of the client's request named `name` (any case)
    /// goes to the upstream (`named` are the names its `Connection` header
    /// lists).
    pub fn keeps(&self, name: &[u8], named: &[&[u8]]) -> bool {
        let is = |n: &&str| name.eq_ignore_ascii_case(n.as_bytes());
        !is_hop_by_hop(name)
            && !self.set.iter().any(|(n, _)| is(n))
            && !self.dropped.iter().any(is)
            && !named.iter().any(|t| t.eq_ignore_ascii_case(name))
    }

    /// The request's `fields` (in order) as they go to the upstream:
    /// those it keeps, then those the gateway sets (`named`: what the
    /// request's `Connection` lists, [`connection_named`]).
    pub fn edited<'f, I>(
        &'f self,
        fields: I,
        named: &'f [&'f [u8]],
    ) -> impl Iterator<Item = (&'f [u8], &'f [u8])> + use<'a, 'f, I>
    where
        I: Iterator<Item = (&'f [u8], &'f [u8])>,
    {
        let set = self.set.iter().map(|(n, v)| (n.as_bytes(), &**v));
        fields.filter(move |(n, _)| self.keeps(n, named)).chain(set)
    }

    /// The same edits owning their values (for a request that outlives the
    /// headers they were read from).
    pub fn into_owned(self) -> HeaderEdits<'static> {
        HeaderEdits {
            set: self
                .set
                .into_iter()
                .map(|(n, v)| (n, Cow::Owned(v.into_owned())))
                .collect(),
            dropped: self.dropped,
        }
    }

    /// Makes the edits in `headers` (for a request handed to hyper's
    /// client). The values set were checked as header values when made.
    pub fn apply(&self, headers: &mut HeaderMap) {
        strip_hop_by_hop(headers);
        for name in &self.dropped {
            headers.remove(*name);
        }
        for (name, value) in &self.set {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
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
