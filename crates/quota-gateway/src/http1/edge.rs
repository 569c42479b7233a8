//! What the gateway refuses at the edge, before any route or check sees a
//! request: one function, [`check`], called by both HTTP/1.1 server paths
//! (the own path on the raw head, hyper's for what it parsed) and for
//! HTTP/2, so that every path gives the same answer.
//!
//! ```text
//! a target with a `#fragment` or bytes that are not ASCII    400
//! HTTP/1.1 without `Host`, two `Host`s, or one that is not
//!   `host[:port]` (HTTP/1.0: none is fine, a bad one is not)  400
//! `Transfer-Encoding` in an HTTP/1.0 request, or whose last
//!   coding is not `chunked` (the body's length is unknown)   400
//! codings before `chunked` (`gzip, chunked`, `chunked,
//!   chunked`)                                                 501
//! a method other than GET, HEAD, POST, PUT, PATCH, DELETE,
//!   OPTIONS (CONNECT, TRACE, ...)                             405 + Allow
//! ```
//!
//! The gateway answers every refusal with a JSON `{"message": ...}`
//! ([`Refusal::message`]) and, over HTTP/1.x, closes the connection after
//! it (the request's body, if any, is not read).

use http::header;
use http::{StatusCode, Version};
use quota_core::path::{is_sub_delim, is_unreserved};
use quota_transport::fields::HeaderFields;

/// The methods the gateway serves, as `Allow` lists them.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Why a request is refused at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400, with the reason.
    BadRequest(&'static str),
    /// 405, with `Allow`.
    MethodNotAllowed,
    /// 501, with the reason.
    NotImplemented(&'static str),
}

impl Refusal {
    /// The status it is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// What the answer's JSON `message` says.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::BadRequest(why) | Refusal::NotImplemented(why) => why,
            Refusal::MethodNotAllowed => "method not allowed",
        }
    }

    /// The `Allow` field the answer carries (a 405's), if any.
    pub fn allow(self) -> Option<&'static str> {
        (self == Refusal::MethodNotAllowed).then_some(ALLOWED_METHODS)
    }
}

/// Checks a request head: its `method` and `target` as sent (for a
/// request hyper parsed, the target it kept: the `http` crate drops a
/// fragment), its `version` and its `fields`.
pub fn check<H: HeaderFields + ?Sized>(
    method: &[u8],
    target: &[u8],
    version: Version,
    fields: &H,
) -> Result<(), Refusal> {
    if target.contains(&b'#') {
        return Err(Refusal::BadRequest("the request target has a fragment (#)"));
    }
    if !target.is_ascii() {
        return Err(Refusal::BadRequest(
            "the request target has bytes that are not ASCII",
        ));
    }
    let http1 = version == Version::HTTP_11 || version == Version::HTTP_10;
    if http1 {
        check_host(fields, version == Version::HTTP_11)?;
    }
    check_transfer_coding(fields, version == Version::HTTP_10)?;
    if !is_allowed_method(method) {
        return Err(Refusal::MethodNotAllowed);
    }
    Ok(())
}

/// One `Host`, a valid `host[:port]` (RFC 9112, section 3.2); required
/// (and not empty) in HTTP/1.1.
fn check_host<H: HeaderFields + ?Sized>(fields: &H, http11: bool) -> Result<(), Refusal> {
    let mut hosts = fields.values_of(&header::HOST);
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Err(Refusal::BadRequest("more than one Host header")),
        (None, None) if http11 => Err(Refusal::BadRequest("no Host header")),
        (None, None) => Ok(()),
        (Some(host), None) if host.is_empty() && !http11 => Ok(()),
        (Some(host), None) if is_host(host) => Ok(()),
        (Some(_), None) => Err(Refusal::BadRequest("invalid Host header")),
    }
}

/// `Transfer-Encoding`, if any, is `chunked` alone (RFC 9112, section
/// 6.3): one whose last coding is not `chunked` leaves the body's length
/// unknown (400, as hyper also answers), and codings before `chunked`
/// (`gzip, chunked`, even `chunked, chunked`) are not implemented (501, as
/// nginx answers). Never in HTTP/1.0 (section 6.1: the framing is faulty).
fn check_transfer_coding<H: HeaderFields + ?Sized>(
    fields: &H,
    http10: bool,
) -> Result<(), Refusal> {
    if fields.value_of(&header::TRANSFER_ENCODING).is_none() {
        return Ok(());
    }
    if http10 {
        return Err(Refusal::BadRequest(
            "Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
    let mut codings = fields
        .values_of(&header::TRANSFER_ENCODING)
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    let (count, last) = codings
        .by_ref()
        .fold((0usize, None), |(n, _), c| (n + 1, Some(c)));
    match last {
        Some(last) if last.eq_ignore_ascii_case(b"chunked") => {
            if count == 1 {
                Ok(())
            } else {
                Err(Refusal::NotImplemented(
                    "only the chunked transfer coding is supported",
                ))
            }
        }
        _ => Err(Refusal::BadRequest(
            "the request's last transfer coding is not chunked",
        )),
    }
}

/// Whether the gateway serves requests made with `method`.
fn is_allowed_method(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"POST" | b"PUT" | b"PATCH" | b"DELETE" | b"OPTIONS"
    )
}

/// Whether `value` is `host [ ":" port ]` (RFC 9110, section 7.2; RFC 3986,
/// section 3.2.2): an IP literal in brackets, or a reg-name / IPv4 address
/// (unreserved characters, sub-delims, `%XX`), not empty; no userinfo.
fn is_host(value: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..close];
        let ok = !literal.is_empty()
            && literal.iter().all(|&b| {
                b.is_ascii_hexdigit()
                    || b == b':'
                    || b == b'.'
                    || is_unreserved(b)
                    || is_sub_delim(b)
            });
        if !ok {
            return false;
        }
        match &rest[close + 1..] {
            [] => return true,
            [b':', port @ ..] => (&b"x"[..], port),
            _ => return false,
        }
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon + 1..]),
            None => (value, &b""[..]),
        }
    };
    !host.is_empty() && is_reg_name(host) && port.iter().all(u8::is_ascii_digit)
}

/// RFC 3986 `reg-name` (which covers IPv4 addresses): unreserved
/// characters, sub-delims and percent-encodings.
fn is_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = host.get(i) {
        if b == b'%' {
            let hex = host.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if is_unreserved(b) || is_sub_delim(b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fields<'a> = [(&'a [u8], &'a [u8])];

    fn head(
        method: &str,
        target: &str,
        version: Version,
        fields: &Fields<'_>,
    ) -> Result<(), Refusal> {
        check(method.as_bytes(), target.as_bytes(), version, fields)
    }

    const HOST: &[(&[u8], &[u8])] = &[(b"Host", b"gw.test")];

    #[test]
    fn a_usual_request_passes() {
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert_eq!(head(method, "/v1/x?a=b", Version::HTTP_11, HOST), Ok(()));
        }
        let chunked: &Fields<'_> = &[(b"host", b"gw"), (b"Transfer-Encoding", b" Chunked ")];
        assert_eq!(head("POST", "/v1/x", Version::HTTP_11, chunked), Ok(()));
        // HTTP/1.0 needs no Host; HTTP/2 has `:authority` instead.
        assert_eq!(head("GET", "/", Version::HTTP_10, &[]), Ok(()));
        assert_eq!(head("GET", "/", Version::HTTP_2, &[]), Ok(()));
    }

    #[test]
    fn methods_outside_the_list_are_405() {
        for method in ["CONNECT", "TRACE", "PROPFIND", "get", "BREW"] {
            assert_eq!(
                head(method, "/v1/x", Version::HTTP_11, HOST),
                Err(Refusal::MethodNotAllowed),
                "{method}"
            );
            assert_eq!(
                head(method, "/v1/x", Version::HTTP_2, &[]),
                Err(Refusal::MethodNotAllowed)
            );
        }
        let refusal = Refusal::MethodNotAllowed;
        assert_eq!(refusal.status(), 405);
        assert_eq!(refusal.allow(), Some(ALLOWED_METHODS));
        assert_eq!(Refusal::BadRequest("no Host header").allow(), None);
    }

    #[test]
    fn codings_before_chunked_are_501_and_a_last_one_not_chunked_is_400() {
        let status = |te: &[u8]| {
            let fields: &Fields<'_> = &[(b"Host", b"gw"), (b"Transfer-Encoding", te)];
            head("POST", "/v1/x", Version::HTTP_11, fields).map_err(Refusal::status)
        };
        for te in [
            &b"gzip, chunked"[..],
            b"identity, chunked",
            b"chunked, chunked",
            b"gzip,,chunked",
        ] {
            assert_eq!(
                status(te),
                Err(StatusCode::NOT_IMPLEMENTED),
                "{:?}",
                String::from_utf8_lossy(te)
            );
        }
        for te in [&b"gzip"[..], b"chunked, gzip", b"chunked;q=1", b"", b" , "] {
            assert_eq!(
                status(te),
                Err(StatusCode::BAD_REQUEST),
                "{:?}",
                String::from_utf8_lossy(te)
            );
        }
        // Split over two fields: still two codings.
        let two: &Fields<'_> = &[
            (b"Host", b"gw"),
            (b"Transfer-Encoding", b"gzip"),
            (b"transfer-encoding", b"chunked"),
        ];
        assert!(matches!(
            head("POST", "/", Version::HTTP_11, two),
            Err(Refusal::NotImplemented(_))
        ));
        let two_chunked: &Fields<'_> = &[
            (b"Host", b"gw"),
            (b"Transfer-Encoding", b"chunked"),
            (b"transfer-encoding", b"chunked"),
        ];
        assert!(matches!(
            head("POST", "/", Version::HTTP_11, two_chunked),
            Err(Refusal::NotImplemented(_))
        ));
        let old: &Fields<'_> = &[(b"Transfer-Encoding", b"chunked")];
        assert!(matches!(
            head("POST", "/", Version::HTTP_10, old),
            Err(Refusal::BadRequest(_))
        ));
    }

    #[test]
    fn a_missing_repeated_or_invalid_host_is_400() {
        let bad = |fields: &Fields<'_>, version| {
            matches!(
                head("GET", "/v1/x", version, fields),
                Err(Refusal::BadRequest(_))
            )
        };
        assert!(bad(&[], Version::HTTP_11));
        assert!(bad(&[(b"Host", b"a"), (b"host", b"a")], Version::HTTP_11));
        assert!(bad(&[(b"Host", b"a"), (b"host", b"a")], Version::HTTP_10));
        for host in [
            &b""[..],
            b"a b",
            b"@",
            b"user@host",
            b"a/b",
            b":80",
            b"host:8o",
            b"[::1",
            b"[]",
            b"[::1]x",
            b"a%zz",
            b"caf\xc3\xa9",
        ] {
            assert!(
                bad(&[(b"Host", host)], Version::HTTP_11),
                "{:?}",
                String::from_utf8_lossy(host)
            );
        }
        for host in [
            &b"gw.test"[..],
            b"gw.test:8080",
            b"127.0.0.1:80",
            b"[::1]:8080",
            b"[::1]",
            b"a%20b",
            b"xn--caf-dma.example",
            b"host:",
        ] {
            assert_eq!(
                head("GET", "/", Version::HTTP_11, &[(b"Host", host)]),
                Ok(()),
                "{:?}",
                String::from_utf8_lossy(host)
            );
        }
        // HTTP/1.0 may send an empty one.
        assert_eq!(
            head("GET", "/", Version::HTTP_10, &[(b"Host", b"")]),
            Ok(())
        );
    }

    #[test]
    fn a_fragment_or_bytes_beyond_ascii_in_the_target_are_400() {
        for target in [
            &b"/v1/x#frag"[..],
            b"/v1/x?a=b#",
            b"/v1/caf\xc3\xa9",
            b"/v1/\xff",
        ] {
            assert!(
                matches!(
                    check(b"GET", target, Version::HTTP_11, HOST),
                    Err(Refusal::BadRequest(_))
                ),
                "{:?}",
                String::from_utf8_lossy(target)
            );
        }
    }
}
