//! Request heads on the wire, without I/O: which requests the gateway's
//! own HTTP/1.1 path answers, and where their parts are in the buffer.

use std::mem::MaybeUninit;

use http::header::HeaderName;
use http::Version;
use quota_transport::fields::HeaderFields;
use smallvec::SmallVec;

use super::edge::{self, Refusal};
use super::span::Span;

/// The most header fields a head the own path answers may have.
pub const MAX_HEADERS: usize = 64;

/// The longest head the own path waits for; a longer one goes to hyper.
pub const MAX_HEAD: usize = 16 * 1024;

/// What the start of the read buffer holds.
#[derive(Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // parsed once per request, never moved far; boxing would allocate
pub enum Parsed {
    /// Not a whole head yet: read more.
    Partial,
    /// A request the own path answers.
    Simple(Simple),
    /// Anything else (a body, an upgrade, HTTP/1.0, a malformed head, a
    /// head too long): the connection goes to hyper, from this request on.
    Other,
    /// A request refused at the edge ([`edge::check`]), whichever path
    /// would have served it: answered here, then the connection closes.
    Refused {
        /// Why.
        refusal: Refusal,
        /// It is a HEAD request: the answer has no body.
        head: bool,
    },
}

/// A request without a body, its parts as spans of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Simple {
    /// The method.
    pub method: Span,
    /// The request target, origin-form (`/path?query`).
    pub target: Span,
    /// The target's path (without the query).
    pub path: Span,
    /// Every field, in order: name and value.
    headers: SmallVec<[(Span, Span); 16]>,
    /// The head's length: the next request starts there.
    pub len: usize,
    /// Whether the client asked to close the connection after this one.
    pub close: bool,
}

impl Simple {
    /// The fields as byte slices of `buf` (the buffer parsed).
    pub fn fields<'b>(&self, buf: &'b [u8]) -> SmallVec<[(&'b [u8], &'b [u8]); 16]> {
        self.headers
            .iter()
            .map(|(n, v)| (n.of(buf), v.of(buf)))
            .collect()
    }
}

/// Parses the head at the start of `buf`.
///
/// Every whole head is first checked at the edge ([`edge::check`]), on
/// its bytes as sent (hyper would not show the gateway a fragment, nor
/// refuse a bad `Host`): a refused one is [`Parsed::Refused`], never
/// handed to hyper. A request is simple when it is HTTP/1.1, its target is
/// origin-form, and it has no body (no `Transfer-Encoding`, no
/// `Content-Length` but `0`), no `Expect` and no `Upgrade`. Anything else
/// is left to hyper, which answers malformed heads with 400 and 431 as it
/// always did.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Parsed::Partial,
        Ok(httparse::Status::Partial) | Err(_) => return Parsed::Other,
    };
    if len > MAX_HEAD {
        return Parsed::Other;
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Other;
    };
    let version = if minor == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let raw = RawFields(req.headers);
    if let Err(refusal) = edge::check(method.as_bytes(), target.as_bytes(), version, &raw) {
        let head = method == "HEAD";
        return Parsed::Refused { refusal, head };
    }
    if version != Version::HTTP_11 || !target.starts_with('/') {
        return Parsed::Other;
    }
    // Within the head, at most MAX_HEAD bytes (checked above).
    let span = |part: &[u8]| Span::of_part(buf, part);
    let mut close = false;
    let mut length_seen = false;
    let mut headers = SmallVec::new();
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            if length_seen || h.value.trim_ascii() != b"0" {
                return Parsed::Other;
            }
            length_seen = true;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Parsed::Other;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::Other;
                }
            }
        }
        headers.push((span(name), span(h.value)));
    }
    let target = target.as_bytes();
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    Parsed::Simple(Simple {
        method: span(method.as_bytes()),
        target: span(target),
        path: span(path),
        headers,
        len,
        close,
    })
}

/// A parsed head's fields, read by name (for [`edge::check`]).
struct RawFields<'h, 'b>(&'h [httparse::Header<'b>]);

impl HeaderFields for RawFields<'_, '_> {
    fn values_of<'a: 'n, 'n>(
        &'a self,
        name: &'n HeaderName,
    ) -> impl Iterator<Item = &'a [u8]> + 'n {
        let name = name.as_str();
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;
    use crate::http1::span::fixtures::{self, many_fields, texts};

    fn simple(bytes: &[u8]) -> Simple {
        match parse(bytes) {
            Parsed::Simple(s) => s,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(bytes)),
        }
    }

    #[test]
    fn many_fields_and_a_head_near_the_limit_keep_every_field_in_order() {
        let mut sent = vec![("Host".to_string(), "gw".to_string())];
        sent.extend(many_fields(MAX_HEAD - 2048));
        let head = fixtures::head(b"GET /v1/x HTTP/1.1\r\n", &sent);
        assert!(head.len() <= MAX_HEAD);
        let s = simple(&head);
        assert_eq!(texts(s.fields(&head).into_iter()), sent);
        assert_eq!(s.len, head.len());
    }

    #[test]
    fn a_get_is_simple_and_its_parts_are_found() {
        let buf = b"GET /v1/txt2img?a=b HTTP/1.1\r\nHost: gw\r\nX-API-Key: k\r\n\r\nGET /next";
        let s = simple(buf);
        assert_eq!(s.method.of(buf), b"GET");
        assert_eq!(s.target.of(buf), b"/v1/txt2img?a=b");
        assert_eq!(s.path.of(buf), b"/v1/txt2img");
        assert_eq!(
            s.fields(buf).as_slice(),
            &[(&b"Host"[..], &b"gw"[..]), (&b"X-API-Key"[..], &b"k"[..])]
        );
        assert_eq!(&buf[s.len..], b"GET /next");
        assert!(!s.close);
    }

    #[test]
    fn connection_close_and_a_zero_length_are_simple() {
        let s = simple(
            b"POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nConnection: keep-alive, Close\r\n\r\n",
        );
        assert!(s.close);
    }

    #[test]
    fn a_partial_head_asks_for_more() {
        assert_eq!(parse(b"GET /x HTTP/1.1\r\nHost: a\r\n"), Parsed::Partial);
        assert_eq!(parse(b""), Parsed::Partial);
    }

    #[test]
    fn bodies_upgrades_old_versions_and_odd_targets_go_to_hyper() {
        for head in [
            &b"POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello"[..],
            b"POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            b"POST /x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /x HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"GET /x HTTP/1.0\r\n\r\n",
            b"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: gw\r\n\r\n",
            b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n",
            b"\x01\x02 garbage\r\n\r\n",
        ] {
            assert_eq!(
                parse(head),
                Parsed::Other,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn heads_refused_at_the_edge_are_answered_here_even_with_a_body() {
        for (head, status) in [
            (&b"GET /x HTTP/1.1\r\n\r\n"[..], 400),
            (b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400),
            (b"GET /x HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (
                b"POST /x#f HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\n\r\nx",
                400,
            ),
            (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
            (b"TRACE /x HTTP/1.1\r\nHost: gw\r\n\r\n", 405),
            (b"CONNECT gw:443 HTTP/1.1\r\nHost: gw:443\r\n\r\n", 405),
            (
                b"POST /x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
            ),
        ] {
            match parse(head) {
                Parsed::Refused {
                    refusal,
                    head: false,
                } => {
                    assert_eq!(
                        refusal.status(),
                        status,
                        "{:?}",
                        String::from_utf8_lossy(head)
                    );
                }
                other => panic!("{other:?} for {:?}", String::from_utf8_lossy(head)),
            }
        }
        assert!(matches!(
            parse(b"HEAD /x HTTP/1.1\r\n\r\n"),
            Parsed::Refused { head: true, .. }
        ));
    }

    #[test]
    fn too_many_or_too_long_headers_go_to_hyper() {
        let mut many = b"GET /x HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Parsed::Other);
        let mut long = b"GET /x HTTP/1.1\r\nx-long: ".to_vec();
        long.resize(MAX_HEAD + 1, b'a');
        assert_eq!(parse(&long), Parsed::Other);
    }
}
