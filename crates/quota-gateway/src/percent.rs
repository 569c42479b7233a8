//! Percent-decoding of what a query, a form or a path segment carries:
//! `%XX` to its byte, and (in a form) `+` to a space. A `%` not followed by
//! two hex digits stays as it is.
//!
//! ```text
//! decode_bytes("a%20b+c", true)  == b"a b c"
//! decode_bytes("100%", false)     == b"100%"
//! ```

/// `text` with its escapes decoded (`plus`: `+` is a space, as in a form).
pub(crate) fn decode_bytes(text: &str, plus: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) if plus => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// [`decode_bytes`] as text: `None` when the bytes are not UTF-8.
pub(crate) fn decode(text: &str, plus: bool) -> Option<String> {
    String::from_utf8(decode_bytes(text, plus)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_plus_are_decoded_and_a_lone_percent_kept() {
        assert_eq!(decode_bytes("a%20b+c", true), b"a b c");
        assert_eq!(decode_bytes("a%20b+c", false), b"a b+c");
        assert_eq!(decode_bytes("100%", false), b"100%");
        assert_eq!(decode_bytes("%4", false), b"%4");
        assert_eq!(decode_bytes("%zz", false), b"%zz");
        assert_eq!(decode("%ff", false), None);
        assert_eq!(decode("%C3%A9", false).as_deref(), Some("é"));
    }
}
