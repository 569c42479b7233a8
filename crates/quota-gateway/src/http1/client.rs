//! HTTP/1.1 to the upstream on the wire, without I/O: the request head the
//! gateway writes, the response head it reads, and how the response body is
//! framed and decoded (RFC 9112).
//!
//! ```text
//! encode_request(..)            -> bytes to write
//! parse_head(&mut buf, method)  -> Ok(None): read more; Ok(Some(head)): the
//!                                  head is taken off `buf`, the body follows
//! Decoder::new(head.framing)    -> decode(&mut buf): Data / End / NeedMore;
//!                                  at end of stream, eof()
//! ```

use std::fmt;
use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Method, StatusCode};
use smallvec::SmallVec;

use super::hop;
use super::span::Span;

/// The longest response head read (status line and headers), in bytes.
pub const MAX_HEAD: usize = 64 * 1024;

/// The most response headers read.
pub const MAX_HEADERS: usize = 128;

/// Room made in a response's header map for the headers the gateway adds
/// (the rate-limit headers), so that adding them does not grow the map.
const ADDED_HEADERS: usize = 8;

/// The longest chunk-size line (with its extensions) read.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// The most bytes of trailer fields read (and dropped) after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

/// A response the gateway cannot read.
#[derive(Debug, PartialEq, Eq)]
pub enum WireError {
    /// The head is longer than [`MAX_HEAD`].
    HeadTooLarge,
    /// More headers than [`MAX_HEADERS`].
    TooManyHeaders,
    /// Not an HTTP/1.x response head.
    Malformed(httparse::Error),
    /// A header whose name or value the `http` crate refuses.
    BadHeader,
    /// `Content-Length` is not one number.
    BadContentLength,
    /// `101 Switching Protocols`: the gateway forwards no upgrades.
    SwitchingProtocols,
    /// A chunked body that breaks the chunked coding.
    BadChunk(&'static str),
    /// The connection closed before the body's end.
    Truncated,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::HeadTooLarge => write!(f, "response head over {MAX_HEAD} bytes"),
            WireError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} response headers"),
            WireError::Malformed(e) => write!(f, "malformed response head: {e}"),
            WireError::BadHeader => f.write_str("invalid response header"),
            WireError::BadContentLength => f.write_str("invalid Content-Length"),
            WireError::SwitchingProtocols => f.write_str("unexpected 101 Switching Protocols"),
            WireError::BadChunk(why) => write!(f, "invalid chunked body: {why}"),
            WireError::Truncated => f.write_str("connection closed before the end of the body"),
        }
    }
}

impl std::error::Error for WireError {}

/// Writes a request head to `out`: `target` is origin-form (`/path?query`).
/// `Content-Length` and `Transfer-Encoding` among `headers` are left out:
/// the body's length, when `Some`, is written as the one `Content-Length`.
pub fn encode_request<'h>(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    body_len: Option<u64>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str().as_bytes())
            || name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str().as_bytes())
        {
            continue;
        }
        // Names and values cannot hold CR or LF (the `http` crate and
        // `httparse` check).
        hop::write_field(out, name, value);
    }
    if let Some(len) = body_len {
        let mut digits = itoa::Buffer::new();
        hop::write_field(out, b"content-length", digits.format(len).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// How a response's body ends (RFC 9112, section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: a response to HEAD, a 204 or a 304, or a length of 0.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes the connection.
    Eof,
}

/// A response head, taken off the read buffer, without its hop-by-hop
/// headers.
#[derive(Debug)]
pub struct Head {
    /// The status (never 1xx: interim answers are dropped, 101 refused).
    pub status: StatusCode,
    /// The head's bytes, which the fields are ranges of.
    bytes: Bytes,
    fields: Fields,
    /// How the body ends.
    pub framing: Framing,
    /// Whether the connection can carry another request once the body is read.
    pub keep_alive: bool,
}

impl Head {
    /// The fields but the hop-by-hop ones, in order, as sent (names in
    /// their own case).
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|f| (f.name.of(&self.bytes), f.value.of(&self.bytes)))
    }

    /// The same fields as a header map, with room for the headers the
    /// gateway adds (the values share the head's bytes).
    pub fn header_map(&self) -> Result<HeaderMap, WireError> {
        let mut map = HeaderMap::with_capacity(self.fields.len() + ADDED_HEADERS);
        for (name, value) in self.fields() {
            let name = HeaderName::from_bytes(name).map_err(|_| WireError::BadHeader)?;
            let value = HeaderValue::from_maybe_shared(self.bytes.slice_ref(value))
                .map_err(|_| WireError::BadHeader)?;
            map.append(name, value);
        }
        Ok(map)
    }
}

/// A header's name and value, as byte ranges of the head.
#[derive(Clone, Copy, Debug)]
struct Field {
    name: Span,
    value: Span,
}

/// The fields of a usual API answer fit inline (no allocation); a head
/// with more spills to the heap.
type Fields = SmallVec<[Field; 12]>;

/// What the framing and connection headers of a head say.
#[derive(Default)]
struct FramingHeaders<'a> {
    content_length: Option<u64>,
    transfer_encoding: bool,
    chunked_last: bool,
    /// What `Connection` lists (but the hop-by-hop names): `close`, or
    /// headers that are not to be forwarded.
    connection: SmallVec<[&'a [u8]; 2]>,
}

impl<'a> FramingHeaders<'a> {
    fn read(&mut self, name: &str, value: &'a [u8]) -> Result<(), WireError> {
        if name.eq_ignore_ascii_case("content-length") {
            // `5` or a list of equal values (`5, 5`); anything else is refused.
            for part in value.split(|&b| b == b',') {
                let n = parse_decimal(part.trim_ascii()).ok_or(WireError::BadContentLength)?;
                if self.content_length.is_some_and(|m| m != n) {
                    return Err(WireError::BadContentLength);
                }
                self.content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            self.transfer_encoding = true;
            // The last coding of the last field decides.
            if let Some(last) = value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .rfind(|t| !t.is_empty())
            {
                self.chunked_last = last.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case("connection") {
            self.connection.extend(hop::named_by_connection(value));
        }
        Ok(())
    }

    /// Whether `Connection` says `close`.
    fn close(&self) -> bool {
        self.connection
            .iter()
            .any(|t| t.eq_ignore_ascii_case(b"close"))
    }

    /// Whether a header named `name` (as sent) stays with this connection:
    /// a hop-by-hop one, one `Connection` names, or a `Content-Length`
    /// beside `Transfer-Encoding` ([`hop::is_stale_length`]).
    fn is_hop_by_hop(&self, name: &[u8]) -> bool {
        hop::is_hop_by_hop(name)
            || hop::is_stale_length(name, self.transfer_encoding)
            || self.connection.iter().any(|t| t.eq_ignore_ascii_case(name))
    }
}

/// Parses the response head at the start of `buf`, for a request made with
/// `method`. `Ok(None)`: the head is not complete yet, read more. On success
/// the head is taken off `buf` (which then starts with the body). Interim
/// responses (`1xx` but `101`) are dropped on the way.
pub fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, WireError> {
    loop {
        // Uninitialised: a parse writes only the headers it finds (zeroing
        // the whole array cost more than the rest of the parse).
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut res,
            buf,
            &mut headers,
        );
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(WireError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(WireError::TooManyHeaders),
            Err(e) => return Err(WireError::Malformed(e)),
        };
        if len > MAX_HEAD {
            return Err(WireError::HeadTooLarge);
        }
        let code = res.code.unwrap_or(0);
        let status = StatusCode::from_u16(code)
            .map_err(|_| WireError::Malformed(httparse::Error::Status))?;
        if status.is_informational() {
            if code == 101 {
                return Err(WireError::SwitchingProtocols);
            }
            buf.advance(len);
            continue;
        }
        let http11 = res.version == Some(1);
        // Every non-empty name and value is a slice of the head, at most
        // MAX_HEAD bytes (checked above).
        let offset = |part: &[u8]| Span::of_part(buf, part);
        let mut framing = FramingHeaders::default();
        for h in res.headers.iter() {
            framing.read(h.name, h.value)?;
        }
        // Hop-by-hop headers (and those `Connection` names) stay here.
        let mut fields = Fields::new();
        for h in res.headers.iter() {
            let name = h.name.as_bytes();
            if framing.is_hop_by_hop(name) {
                continue;
            }
            fields.push(Field {
                name: offset(name),
                value: offset(h.value),
            });
        }
        let body_framing = if method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Framing::Empty
        } else if framing.transfer_encoding {
            if framing.chunked_last {
                Framing::Chunked
            } else {
                Framing::Eof
            }
        } else {
            match framing.content_length {
                Some(0) => Framing::Empty,
                Some(n) => Framing::Length(n),
                None => Framing::Eof,
            }
        };
        // Both Transfer-Encoding and Content-Length: the former wins, and
        // the connection is not trusted with another request (RFC 9112,
        // section 6.3, item 3).
        let ambiguous = framing.transfer_encoding && framing.content_length.is_some();
        let keep_alive = http11 && !framing.close() && !ambiguous && body_framing != Framing::Eof;
        // (The framing headers borrow `buf`, split below.)
        drop(framing);
        // httparse has checked the names (tokens) and values (no control
        // characters but tab): what `http`'s types accept.
        return Ok(Some(Head {
            status,
            bytes: buf.split_to(len).freeze(),
            fields,
            framing: body_framing,
            keep_alive,
        }));
    }
}

/// Digits only (no sign, no spaces), without overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        let d = char::from(b).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// What [`Decoder::decode`] found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes (never empty).
    Data(Bytes),
    /// The body has ended; what follows in the buffer is not its.
    End,
    /// More bytes are needed.
    NeedMore,
}

/// Takes a response body off the read buffer, as it arrives.
#[derive(Debug)]
pub struct Decoder(State);

#[derive(Debug)]
enum State {
    /// Bytes left of a `Content-Length` body.
    Length(u64),
    /// Before a chunk-size line.
    ChunkSize,
    /// Bytes left of a chunk's data.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer lines after the last chunk; bytes of them seen so far.
    Trailers(usize),
    /// Until the connection closes.
    Eof,
    Done,
}

impl Decoder {
    /// A decoder for a body framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        Decoder(match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Eof => State::Eof,
        })
    }

    /// Whether the whole body has been taken.
    pub fn is_done(&self) -> bool {
        matches!(self.0, State::Done)
    }

    /// Takes the next piece of body off `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, WireError> {
        loop {
            match &mut self.0 {
                State::Done => return Ok(Decoded::End),
                State::Length(left) | State::ChunkData(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                    *left -= take as u64;
                    if *left == 0 {
                        self.0 = match self.0 {
                            State::ChunkData(_) => State::ChunkEnd,
                            _ => State::Done,
                        };
                    }
                    return Ok(Decoded::Data(buf.split_to(take).freeze()));
                }
                State::Eof => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    return Ok(Decoded::Data(buf.split().freeze()));
                }
                State::ChunkSize => {
                    let Some(line) = take_line(buf, MAX_CHUNK_LINE, "chunk-size line too long")?
                    else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size = chunk_size(&line)?;
                    self.0 = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(WireError::BadChunk("no CRLF after chunk data"));
                    }
                    buf.advance(2);
                    self.0 = State::ChunkSize;
                }
                State::Trailers(seen) => {
                    let room = MAX_TRAILERS.saturating_sub(*seen);
                    let Some(line) = take_line(buf, room, "trailers too long")? else {
                        return Ok(Decoded::NeedMore);
                    };
                    if line.is_empty() {
                        self.0 = State::Done;
                    } else {
                        // Trailer fields are not forwarded.
                        *seen += line.len() + 2;
                    }
                }
            }
        }
    }

    /// The connection has closed: the end of a body read until then, an
    /// error for any other body not complete yet.
    pub fn eof(&mut self) -> Result<Decoded, WireError> {
        match self.0 {
            State::Eof | State::Done => {
                self.0 = State::Done;
                Ok(Decoded::End)
            }
            _ => Err(WireError::Truncated),
        }
    }
}

/// Takes one CRLF-terminated line off `buf` (without its CRLF); `None` when
/// no full line is there yet. Refuses a line (with its CRLF) over `max` bytes.
fn take_line(
    buf: &mut BytesMut,
    max: usize,
    too_long: &'static str,
) -> Result<Option<BytesMut>, WireError> {
    let window = &buf[..buf.len().min(max)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= max {
            Err(WireError::BadChunk(too_long))
        } else {
            Ok(None)
        };
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(WireError::BadChunk("line not ended by CRLF"));
    }
    let mut line = buf.split_to(lf + 1);
    line.truncate(lf - 1);
    Ok(Some(line))
}

/// The size of a chunk-size line: hex digits, then optional whitespace and
/// extensions (`;name=value`, ignored).
fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(WireError::BadChunk("no chunk size"));
    }
    if digits > 16 {
        return Err(WireError::BadChunk("chunk size too large"));
    }
    let rest = line[digits..].trim_ascii();
    if !rest.is_empty() && rest[0] != b';' {
        return Err(WireError::BadChunk("invalid chunk-size line"));
    }
    line[..digits].iter().try_fold(0u64, |n, &b| {
        let d = char::from(b)
            .to_digit(16)
            .ok_or(WireError::BadChunk("no chunk size"))?;
        n.checked_mul(16)
            .and_then(|n| n.checked_add(u64::from(d)))
            .ok_or(WireError::BadChunk("chunk size too large"))
    })
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::http1::hop::pairs;
    use crate::http1::span::fixtures::{self, many_fields, texts};

    fn head(bytes: &[u8], method: &Method) -> Result<Option<Head>, WireError> {
        parse_head(&mut BytesMut::from(bytes), method)
    }

    fn framing(bytes: &str) -> (Framing, bool) {
        let h = head(bytes.as_bytes(), &Method::GET).unwrap().unwrap();
        (h.framing, h.keep_alive)
    }

    /// Decodes `wire` fed in pieces of `step` bytes; the body and what is
    /// left in the buffer after its end.
    fn decode_in_steps(
        framing: Framing,
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), WireError> {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => {
                    assert!(!b.is_empty());
                    body.extend_from_slice(&b);
                }
                Decoded::End => return Ok((body, buf.to_vec())),
                Decoded::NeedMore if fed < wire.len() => {
                    let end = (fed + step).min(wire.len());
                    buf.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
                Decoded::NeedMore => {
                    d.eof()?;
                    return Ok((body, buf.to_vec()));
                }
            }
        }
    }

    #[test]
    fn a_request_head_carries_the_headers_and_one_content_length() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("up:80"));
        h.insert("content-length", HeaderValue::from_static("999"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let mut out = Vec::new();
        encode_request(&mut out, &Method::POST, "/v1/x?y=z", pairs(&h), Some(5));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /v1/x?y=z HTTP/1.1\r\nhost: up:80\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 5\r\n\r\n"
        );
        let mut out = Vec::new();
        encode_request(&mut out, &Method::GET, "/", pairs(&HeaderMap::new()), None);
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn a_head_is_taken_off_the_buffer_with_its_headers_in_order() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 201 Created\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 3\r\n\r\nabcNEXT"[..],
        );
        let h = parse_head(&mut buf, &Method::POST).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::CREATED);
        let map = h.header_map().unwrap();
        let xa: Vec<_> = map.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
        assert_eq!(h.framing, Framing::Length(3));
        assert!(h.keep_alive);
        assert_eq!(&buf[..], b"abcNEXT");
    }

    #[test]
    fn many_fields_and_a_head_near_the_limit_keep_every_field_in_order() {
        let mut sent = vec![("Content-Length".to_string(), "0".to_string())];
        sent.extend(many_fields(MAX_HEAD - 2048));
        let wire = fixtures::head(b"HTTP/1.1 200 OK\r\n", &sent);
        assert!(wire.len() <= MAX_HEAD);
        let h = head(&wire, &Method::GET).unwrap().unwrap();
        assert_eq!(texts(h.fields()), sent);
    }

    #[test]
    fn a_partial_head_asks_for_more_and_a_huge_one_is_refused() {
        assert!(head(b"HTTP/1.1 200 OK\r\nContent-Le", &Method::GET)
            .unwrap()
            .is_none());
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        while big.len() < MAX_HEAD {
            big.extend_from_slice(format!("x-filler: {}\r\n", "a".repeat(1000)).as_bytes());
        }
        assert_eq!(
            head(&big, &Method::GET).unwrap_err(),
            WireError::HeadTooLarge
        );
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            head(&many, &Method::GET).unwrap_err(),
            WireError::TooManyHeaders
        );
    }

    #[test]
    fn interim_responses_are_skipped_and_101_is_refused() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..],
        );
        let h = parse_head(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::OK);
        assert!(!h.header_map().unwrap().contains_key("link"));
        assert!(h.fields().all(|(n, _)| n != b"link"));
        assert!(buf.is_empty());
        assert_eq!(
            head(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
                &Method::GET
            )
            .unwrap_err(),
            WireError::SwitchingProtocols
        );
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            head(b"SSH-2.0-OpenSSH\r\n\r\n", &Method::GET),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            head(b"HTTP/1.1 2000 OK\r\n\r\n", &Method::GET),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn framing_follows_rfc_9112() {
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
            (Framing::Length(10), true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 10, 10\r\n\r\n"),
            (Framing::Length(10), true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            (Framing::Empty, true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            (Framing::Chunked, true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"),
            (Framing::Chunked, true)
        );
        // Chunked not last: the body runs to the close.
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            (Framing::Eof, false)
        );
        // Transfer-Encoding wins over Content-Length; the connection is not reused.
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            (Framing::Chunked, false)
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n"), (Framing::Eof, false));
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"),
            (Framing::Empty, true)
        );
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
            (Framing::Empty, true)
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: keep-alive, Close\r\n\r\n"
            ),
            (Framing::Length(4), false)
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\n"),
            (Framing::Length(4), false)
        );
        let h = head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            &Method::HEAD,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
    }

    #[test]
    fn a_length_beside_transfer_encoding_is_dropped_from_the_fields() {
        // RFC 9112, section 6.3: Transfer-Encoding wins; the stale length
        // must not reach the client, which would cut the body at it.
        for te in ["chunked", "gzip, chunked"] {
            let wire = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nTransfer-Encoding: {te}\r\n\r\n"
            );
            let h = head(wire.as_bytes(), &Method::GET).unwrap().unwrap();
            let names: Vec<&[u8]> = h.fields().map(|(n, _)| n).collect();
            assert_eq!(names, [&b"X-A"[..]], "{te}");
            assert!(!h.header_map().unwrap().contains_key("content-length"));
        }
        // Either order, and for a HEAD request too.
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
        let h = head(wire, &Method::HEAD).unwrap().unwrap();
        assert_eq!(h.fields().count(), 0);
    }

    #[test]
    fn a_content_length_that_is_not_one_number_is_refused() {
        for bad in ["-1", "1 0", "5, 6", "", "abc", "99999999999999999999999"] {
            let wire = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(
                head(wire.as_bytes(), &Method::GET).unwrap_err(),
                WireError::BadContentLength,
                "{bad}"
            );
        }
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert_eq!(
            head(two, &Method::GET).unwrap_err(),
            WireError::BadContentLength
        );
    }

    #[test]
    fn a_length_body_ends_at_its_length_in_any_split() {
        for step in [1, 2, 7, 1000] {
            let (body, rest) =
                decode_in_steps(Framing::Length(11), b"hello worldHTTP/1.1", step).unwrap();
            assert_eq!(body, b"hello world");
            assert!(b"HTTP/1.1".starts_with(&rest), "{rest:?}");
        }
        assert_eq!(
            decode_in_steps(Framing::Length(11), b"hello", 3).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn a_chunked_body_is_decoded_in_any_split() {
        let wire =
            b"5;ext=1\r\nhello\r\n6 \r\n world\r\nA\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 5, 8, 1000] {
            let (body, rest) = decode_in_steps(Framing::Chunked, wire, step).unwrap();
            assert_eq!(body, b"hello world0123456789");
            assert!(b"NEXT".starts_with(&rest), "{rest:?}");
        }
        let (body, _) = decode_in_steps(Framing::Chunked, b"0\r\n\r\n", 1).unwrap();
        assert!(body.is_empty());
    }

    #[test]
    fn a_broken_chunked_body_is_an_error() {
        let cases: [&[u8]; 7] = [
            b"zz\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"\r\n",
            b"5\r\nhel",
        ];
        for wire in cases {
            assert!(
                decode_in_steps(Framing::Chunked, wire, 2).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        let long = [b'1'; MAX_CHUNK_LINE + 1];
        assert!(decode_in_steps(Framing::Chunked, &long, 100).is_err());
        let mut trailers = b"0\r\n".to_vec();
        while trailers.len() < MAX_TRAILERS + 100 {
            trailers.extend_from_slice(b"x-t: aaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(decode_in_steps(Framing::Chunked, &trailers, 1000).is_err());
    }

    #[test]
    fn a_close_delimited_body_runs_to_the_end_of_the_stream() {
        let (body, rest) = decode_in_steps(Framing::Eof, b"all of this", 4).unwrap();
        assert_eq!(body, b"all of this");
        assert!(rest.is_empty());
        let (body, _) = decode_in_steps(Framing::Empty, b"", 4).unwrap();
        assert!(body.is_empty());
    }
}
