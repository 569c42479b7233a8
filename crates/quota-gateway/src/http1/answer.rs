//! Response heads on the wire, without I/O: the status line, the fields,
//! `Date` when the answer has none, and the body's framing.

use std::cell::RefCell;
use std::time::SystemTime;

use http::StatusCode;

use super::hop::write_field;

/// How the body of an answer is framed to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length: n`, then `n` bytes.
    Length(u64),
    /// The chunked transfer coding (a body of unknown length).
    Chunked,
    /// No body, and the fields' own `Content-Length` (if any) kept as it
    /// is: the answer to a HEAD request, a 304.
    HeadOnly,
    /// No body and no length: a 204, or a 1xx.
    None,
}

impl Framing {
    /// The framing of a `status` answer to a request (`head`: a HEAD
    /// request) whose body has `exact` bytes when known.
    pub fn of(status: StatusCode, head: bool, exact: Option<u64>) -> Self {
        if status.is_informational() || status == StatusCode::NO_CONTENT {
            Framing::None
        } else if head || status == StatusCode::NOT_MODIFIED {
            Framing::HeadOnly
        } else {
            exact.map_or(Framing::Chunked, Framing::Length)
        }
    }

    /// Whether a body is written after the head.
    pub fn has_body(self) -> bool {
        matches!(self, Framing::Length(_) | Framing::Chunked)
    }
}

/// Writes a response head to `out`: the status line, then fields.
pub struct HeadWriter<'o> {
    out: &'o mut Vec<u8>,
    has_date: bool,
    framing: Framing,
}

impl<'o> HeadWriter<'o> {
    /// Starts a `status` head framed as `framing`.
    pub fn new(out: &'o mut Vec<u8>, status: StatusCode, framing: Framing) -> Self {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        HeadWriter {
            out,
            has_date: false,
            framing,
        }
    }

    /// Adds a field, unless it is one the framing sets (`Content-Length`,
    /// `Transfer-Encoding`) or `Connection` (hop-by-hop: set by [`finish`]).
    ///
    /// [`finish`]: HeadWriter::finish
    pub fn field(&mut self, name: &[u8], value: &[u8]) {
        if name.eq_ignore_ascii_case(b"content-length") {
            if self.framing != Framing::HeadOnly {
                return;
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"connection")
        {
            return;
        } else if name.eq_ignore_ascii_case(b"date") {
            self.has_date = true;
        }
        write_field(self.out, name, value);
    }

    /// Adds every field of `fields`.
    pub fn fields<'f>(&mut self, fields: impl Iterator<Item = (&'f [u8], &'f [u8])>) {
        for (name, value) in fields {
            self.field(name, value);
        }
    }

    /// The writer's buffer, for fields written another way (they must not
    /// be `Date`, `Connection` or framing fields).
    pub fn raw(&mut self) -> &mut Vec<u8> {
        self.out
    }

    /// Ends the head: `Date` if none was given, the framing, and
    /// `Connection: close` when `close`.
    pub fn finish(self, close: bool) {
        let out = self.out;
        if !self.has_date {
            DATE.with(|d| write_field(out, b"date", d.borrow_mut().now()));
        }
        match self.framing {
            Framing::Length(n) => {
                write_field(
                    out,
                    b"content-length",
                    itoa::Buffer::new().format(n).as_bytes(),
                );
            }
            Framing::Chunked => write_field(out, b"transfer-encoding", b"chunked"),
            Framing::HeadOnly | Framing::None => {}
        }
        if close {
            write_field(out, b"connection", b"close");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The current time as an HTTP date, formatted once a second per thread.
struct CachedDate {
    second: u64,
    text: String,
}

impl CachedDate {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        self.text.as_bytes()
    }
}

thread_local! {
    static DATE: RefCell<CachedDate> = const {
        RefCell::new(CachedDate { second: 0, text: String::new() })
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;

    fn written(
        status: StatusCode,
        framing: Framing,
        fields: &[(&str, &str)],
        close: bool,
    ) -> String {
        let mut out = Vec::new();
        let mut w = HeadWriter::new(&mut out, status, framing);
        for (n, v) in fields {
            w.field(n.as_bytes(), v.as_bytes());
        }
        w.finish(close);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_head_has_the_status_line_the_fields_and_its_length() {
        let head = written(
            StatusCode::OK,
            Framing::Length(11),
            &[
                ("content-type", "application/json"),
                ("Date", "x"),
                ("content-length", "99"),
            ],
            false,
        );
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nDate: x\r\ncontent-length: 11\r\n\r\n"
        );
    }

    #[test]
    fn a_date_is_added_when_missing_and_close_is_said() {
        let head = written(
            StatusCode::TOO_MANY_REQUESTS,
            Framing::Chunked,
            &[("connection", "keep-alive")],
            true,
        );
        assert!(
            head.starts_with("HTTP/1.1 429 Too Many Requests\r\ndate: "),
            "{head}"
        );
        assert!(
            head.ends_with(" GMT\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"),
            "{head}"
        );
    }

    #[test]
    fn head_answers_keep_their_length_and_204s_have_none() {
        let head = written(
            StatusCode::OK,
            Framing::of(StatusCode::OK, true, Some(0)),
            &[("content-length", "42"), ("date", "d")],
            false,
        );
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\ncontent-length: 42\r\ndate: d\r\n\r\n"
        );
        assert_eq!(
            Framing::of(StatusCode::NO_CONTENT, false, Some(0)),
            Framing::None
        );
        assert_eq!(
            Framing::of(StatusCode::NOT_MODIFIED, false, Some(0)),
            Framing::HeadOnly
        );
        assert_eq!(Framing::of(StatusCode::OK, false, None), Framing::Chunked);
        assert!(!Framing::HeadOnly.has_body());
    }
}
