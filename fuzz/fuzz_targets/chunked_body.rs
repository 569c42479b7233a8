//! Chunked bodies: any bytes decode (or are refused) the same way whole and
//! byte by byte, never to more bytes than came in; and any data, cut into
//! chunks (sizes from the input, with or without extensions and trailers)
//! and encoded, decodes back to exactly that data.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use quota_gateway::http1::client::{Decoded, Decoder, Framing};

/// Decodes `wire` fed `step` bytes at a time; `Err` when refused, `None`
/// when it needs more than there is.
fn decode(wire: &[u8], step: usize) -> Result<Option<Vec<u8>>, ()> {
    let mut decoder = Decoder::new(Framing::Chunked);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        match decoder.decode(&mut buf).map_err(|_| ())? {
            Decoded::Data(d) => body.extend_from_slice(&d),
            Decoded::End => return Ok(Some(body)),
            Decoded::NeedMore if fed < wire.len() => {
                let end = (fed + step).min(wire.len());
                buf.extend_from_slice(&wire[fed..end]);
                fed = end;
            }
            Decoded::NeedMore => return Ok(None),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Any bytes.
    let whole = decode(data, data.len().max(1));
    assert_eq!(whole, decode(data, 1));
    if let Ok(Some(body)) = &whole {
        assert!(body.len() <= data.len());
    }

    // A round trip: the data cut into chunks by its own bytes.
    let Some((&flags, payload)) = data.split_first() else {
        return;
    };
    let mut wire = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let n = (usize::from(rest[0]) % 37 + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        if flags & 1 == 1 {
            wire.extend_from_slice(format!("{n:X};name=\"v\"\r\n").as_bytes());
        } else {
            wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        }
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
        rest = tail;
    }
    wire.extend_from_slice(b"0\r\n");
    if flags & 2 == 2 {
        wire.extend_from_slice(b"X-Trailer: 1\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    assert_eq!(decode(&wire, 7), Ok(Some(payload.to_vec())));
});
