//! Where the parts of a parsed head are: small ranges of its bytes.
//!
//! Both HTTP/1.1 parsers of the gateway (the own path's requests, the
//! upstream client's responses) keep the parts they find (each field's name
//! and value; a request's method, target and path) as [`Span`]s into the
//! head's bytes instead of slices, so that the parsed head can be moved
//! without borrowing the buffer. A head is at most a few dozen KiB, so `u32`
//! is plenty, and the smaller values are cheaper to move through the layers
//! of a request's future than `Range<usize>`s.

/// A range of a head's bytes: where it starts and how long it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// Where `part` (a slice of `head`, or empty) is in `head`. Parsers call
    /// it on heads they have checked to be at most their size limit, far
    /// below 4 GiB; past that it would be empty.
    pub fn of_part(head: &[u8], part: &[u8]) -> Span {
        if part.is_empty() {
            return Span { start: 0, len: 0 };
        }
        let start = (part.as_ptr() as usize).saturating_sub(head.as_ptr() as usize);
        match (u32::try_from(start), u32::try_from(part.len())) {
            (Ok(start), Ok(len)) => Span { start, len },
            _ => Span { start: 0, len: 0 },
        }
    }

    /// The bytes of `head` this span covers.
    pub fn of<'b>(&self, head: &'b [u8]) -> &'b [u8] {
        let start = self.start as usize;
        &head[start..start + self.len as usize]
    }
}

/// Test fixtures: a head's worth of fields.
#[cfg(test)]
pub(crate) mod fixtures {
    /// Forty small fields, then one of `big` bytes: more fields than either
    /// parser keeps inline, and a head near its size limit.
    pub(crate) fn many_fields(big: usize) -> Vec<(String, String)> {
        let mut fields: Vec<_> = (0..40)
            .map(|i| (format!("X-Field-{i}"), format!("value {i}")))
            .collect();
        fields.push(("X-Big".to_string(), "b".repeat(big)));
        fields
    }

    /// `first` (a start line with its CRLF), `fields`, and the blank line.
    pub(crate) fn head(first: &[u8], fields: &[(String, String)]) -> Vec<u8> {
        let mut head = first.to_vec();
        for (name, value) in fields {
            head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    /// Fields as text, to compare with what was sent.
    pub(crate) fn texts<'a>(
        fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Vec<(String, String)> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        fields.map(|(n, v)| (text(n), text(v))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_finds_its_part_again_and_an_empty_part_is_empty() {
        let head = b"Name: value";
        let span = Span::of_part(head, &head[6..]);
        assert_eq!(span.of(head), b"value");
        assert_eq!(Span::of_part(head, &head[..4]).of(head), b"Name");
        assert_eq!(Span::of_part(head, b"").of(head), b"");
    }
}
