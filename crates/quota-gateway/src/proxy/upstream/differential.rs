//! The own upstream client's response parsing (`http1::client::parse_head` and
//! `http1::client::Decoder`) against hyper's HTTP/1.1 client, over a corpus of
//! answers (valid, malformed, ambiguous framing) and generated ones: an
//! answer the own client reads is one hyper reads too, with the same
//! status, the same end-to-end fields and the same body. The own client
//! may refuse more (an ambiguous answer it refuses becomes a 502, never a
//! body read the wrong way), never less.
//!
//! One difference is intended and left out: a `101` to a request that did
//! not ask to upgrade is refused by the own client (the gateway answers
//! 502), where hyper hands it to the caller.

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Method;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http1::client::{parse_head, Decoded, Decoder};
use crate::http1::hop;

/// What a client made of an answer.
#[derive(Debug, PartialEq, Eq)]
struct Read {
    status: u16,
    /// End-to-end fields (not hop-by-hop, not framing), lower-case names,
    /// in order per name.
    fields: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// The fields a proxy passes on: not hop-by-hop, not named by
/// `Connection` (RFC 9110, section 7.6.1), not framing.
fn end_to_end(fields: impl Iterator<Item = (String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    let fields: Vec<_> = fields.collect();
    let named: Vec<Vec<u8>> = fields
        .iter()
        .filter(|(n, _)| n == "connection")
        .flat_map(|(_, v)| hop::named_by_connection(v).map(<[u8]>::to_ascii_lowercase))
        .collect();
    let mut fields: Vec<_> = fields
        .into_iter()
        .filter(|(n, _)| {
            !hop::is_hop_by_hop(n.as_bytes())
                && n != "content-length"
                && n != "transfer-encoding"
                && !named.iter().any(|t| t == n.as_bytes())
        })
        .collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields
}

/// The own client's reading of `answer` to a `method` request, the
/// connection closed after it; `None` when it refuses it.
fn own(answer: &[u8], method: &Method) -> Option<Read> {
    let mut buf = BytesMut::from(answer);
    let head = parse_head(&mut buf, method).ok()??;
    let fields = end_to_end(
        head.fields()
            .map(|(n, v)| (String::from_utf8_lossy(n).to_ascii_lowercase(), v.to_vec())),
    );
    let mut decoder = Decoder::new(head.framing);
    let mut body = Vec::new();
    loop {
        match decoder.decode(&mut buf).ok()? {
            Decoded::Data(d) => body.extend_from_slice(&d),
            Decoded::End => break,
            Decoded::NeedMore => match decoder.eof().ok()? {
                Decoded::End => break,
                _ => return None,
            },
        }
    }
    Some(Read {
        status: head.status.as_u16(),
        fields,
        body,
    })
}

/// hyper's client reading of `answer` to a `method` request, the
/// connection closed after it; `None` when it refuses it.
async fn hyper(answer: &[u8], method: &Method) -> Option<Read> {
    let (client, mut server) = tokio::io::duplex(256 * 1024);
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client))
        .await
        .ok()?;
    let driver = tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method.clone())
        .uri("/x")
        .header("host", "up")
        .body(Empty::<Bytes>::new())
        .unwrap();
    // The upstream: reads the request head, then answers and closes.
    let answer = answer.to_vec();
    let upstream = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"\r\n\r\n") {
            if server.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            seen.push(byte[0]);
        }
        let _ = server.write_all(&answer).await;
        let _ = server.shutdown().await;
        // Kept open for reading until hyper is done.
        let _ = server.read_to_end(&mut seen).await;
    });
    let read = async {
        let res = send.send_request(req).await.ok()?;
        let status = res.status().as_u16();
        let fields = end_to_end(
            res.headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec())),
        );
        let body = res.into_body().collect().await.ok()?.to_bytes().to_vec();
        Some(Read {
            status,
            fields,
            body,
        })
    };
    let read = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()
        .flatten();
    driver.abort();
    upstream.abort();
    read
}

const CORPUS: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
    b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nConnection: close, X-Gone\r\nX-Gone: 1\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 599 Whatever\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 2\r\n\r\nok",
    // Ambiguous framing.
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw until close",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    // Malformed heads.
    b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: v\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX : v\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n",
    b"garbage\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The rule, for one answer to one method.
fn agree(rt: &tokio::runtime::Runtime, answer: &[u8], method: &Method) -> Result<(), String> {
    if answer.starts_with(b"HTTP/1.1 101") || answer.starts_with(b"HTTP/1.0 101") {
        return Ok(());
    }
    let Some(ours) = own(answer, method) else {
        return Ok(());
    };
    match rt.block_on(hyper(answer, method)) {
        Some(theirs) if theirs == ours => Ok(()),
        theirs => Err(format!("own {ours:?}, hyper {theirs:?}")),
    }
}

#[test]
fn the_own_client_reads_answers_as_hyper_does() {
    let rt = runtime();
    let mut read = 0;
    for answer in CORPUS {
        read += usize::from(own(answer, &Method::GET).is_some());
        for method in [Method::GET, Method::HEAD] {
            if let Err(e) = agree(&rt, answer, &method) {
                panic!("{method} {:?}: {e}", String::from_utf8_lossy(answer));
            }
        }
    }
    // The corpus exercises both sides of the rule.
    assert!(read >= 12, "only {read} answers read by the own client");
}

/// Answers made of pieces parsers are known to disagree on.
fn answers() -> impl Strategy<Value = Vec<u8>> {
    let status = prop_oneof![
        Just("200 OK"),
        Just("204 No Content"),
        Just("404 X"),
        Just("302 Found")
    ];
    let eol = prop_oneof![Just("\r\n"), Just("\n")];
    let field = prop_oneof![
        Just("Content-Length: 3"),
        Just("Content-Length: 0"),
        Just("Content-Length: 3, 3"),
        Just("Content-Length: 7"),
        Just("Transfer-Encoding: chunked"),
        Just("Transfer-Encoding: gzip"),
        Just("Connection: close"),
        Just("Connection: keep-alive, X-A"),
        Just("X-A: 1"),
        Just("Keep-Alive: timeout=5"),
    ];
    let body = prop_oneof![
        Just(""),
        Just("abc"),
        Just("3\r\nabc\r\n0\r\n\r\n"),
        Just("3\r\nabc\r\n"),
        Just("abcdefg"),
    ];
    (status, eol, prop::collection::vec(field, 0..4), body).prop_map(|(s, e, fields, b)| {
        let mut out = format!("HTTP/1.1 {s}{e}");
        for f in fields {
            out.push_str(f);
            out.push_str(e);
        }
        out.push_str(e);
        out.push_str(b);
        out.into_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_answers_agree(answer in answers(), head in any::<bool>()) {
        let rt = runtime();
        let method = if head { Method::HEAD } else { Method::GET };
        if let Err(e) = agree(&rt, &answer, &method) {
            prop_assert!(false, "{method} {:?}: {}", String::from_utf8_lossy(&answer), e);
        }
    }
}
