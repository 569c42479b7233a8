//! Any bytes as an upstream's answer: the upstream client's head parser and
//! body decoder never panic; a head's fields are inside its bytes; and the
//! body decodes to the same bytes, with the same verdict, whether the answer
//! arrives whole or in pieces (sizes taken from the input).
#![no_main]

use bytes::BytesMut;
use http::Method;
use libfuzzer_sys::fuzz_target;
use quota_gateway::http1::client::{parse_head, Decoded, Decoder, Framing};

/// The body after the head, fed in `pieces` (a size each, cycled; empty:
/// whole). `Err` when the decoder refuses it, `Ok(None)` when it is cut
/// short by the close, `Ok(Some(body))` when it ends.
fn decode(framing: Framing, rest: &[u8], pieces: &[u8]) -> Result<Option<Vec<u8>>, ()> {
    let mut decoder = Decoder::new(framing);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    let mut sizes = pieces.iter().map(|&p| usize::from(p) + 1).cycle();
    loop {
        match decoder.decode(&mut buf).map_err(|_| ())? {
            Decoded::Data(d) => {
                assert!(!d.is_empty());
                body.extend_from_slice(&d);
            }
            Decoded::End => return Ok(Some(body)),
            Decoded::NeedMore if fed < rest.len() => {
                let n = if pieces.is_empty() { rest.len() } else { sizes.next().unwrap_or(1) };
                let end = (fed + n).min(rest.len());
                buf.extend_from_slice(&rest[fed..end]);
                fed = end;
            }
            Decoded::NeedMore => {
                return match decoder.eof() {
                    Ok(Decoded::End) => Ok(Some(body)),
                    Ok(_) => Ok(None),
                    Err(_) => Err(()),
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(flags >> 2) % 16;
    let (pieces, answer) = rest.split_at(split.min(rest.len()));
    let method = if flags & 1 == 1 { Method::HEAD } else { Method::GET };
    let mut buf = BytesMut::from(answer);
    let Ok(Some(head)) = parse_head(&mut buf, &method) else {
        return;
    };
    assert!(!head.status.is_informational());
    for (name, _value) in head.fields() {
        assert!(!name.is_empty());
        assert!(!name.eq_ignore_ascii_case(b"connection"));
        assert!(!name.eq_ignore_ascii_case(b"transfer-encoding"));
    }
    let _ = head.header_map();
    let whole = decode(head.framing, &buf, &[]);
    let split = decode(head.framing, &buf, pieces);
    assert_eq!(whole, split);
    if let Ok(Some(body)) = whole {
        assert!(body.len() <= buf.len());
    }
});
