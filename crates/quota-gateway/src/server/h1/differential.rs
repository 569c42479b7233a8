//! The own path's request parsing against hyper's HTTP/1.1 server, over a
//! corpus of heads (valid, malformed, ambiguous framing) and generated ones:
//! a head the own path takes ([`request::parse`] gives `Simple` and
//! [`Exchange::new`] keeps it) is one hyper accepts too, with the same
//! method, target and fields; a head hyper refuses is never taken by the
//! own path (it goes to hyper, which refuses it as it always did).

// tests may panic
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Exchange;
use crate::http1::request::{self, Parsed};

/// What a parser made of a head: the method, the target and the fields
/// (lower-case names, in order per name).
#[derive(Debug, PartialEq, Eq)]
struct Parts {
    method: String,
    target: String,
    fields: Vec<(String, Vec<u8>)>,
}

fn sorted(mut fields: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    // Stable: values of one name keep their order, as a header map does.
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields
}

/// The own path's verdict: `Some` when it serves the head itself.
fn own(head: &[u8]) -> Option<Parts> {
    let Parsed::Simple(simple) = request::parse(head) else {
        return None;
    };
    let exchange = Exchange::new(head, &simple)?;
    Some(Parts {
        method: exchange.method.as_str().to_owned(),
        target: exchange.target.to_owned(),
        fields: sorted(
            exchange
                .fields
                .iter()
                .map(|(n, v)| (String::from_utf8_lossy(n).to_ascii_lowercase(), v.to_vec()))
                .collect(),
        ),
    })
}

/// hyper's verdict: `Some` when its server calls the service with the
/// head's request (the connection is closed after the head).
async fn hyper(head: &[u8]) -> Option<Parts> {
    let (mut client, server) = tokio::io::duplex(256 * 1024);
    let seen = Arc::new(Mutex::new(None));
    let saw = Arc::clone(&seen);
    let svc = service_fn(move |req: Request<Incoming>| {
        let fields = req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        *saw.lock().unwrap() = Some(Parts {
            method: req.method().as_str().to_owned(),
            target: req.uri().to_string(),
            fields: sorted(fields),
        });
        async { Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())) }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(server), svc);
    let served = tokio::spawn(conn);
    client.write_all(head).await.unwrap();
    client.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
    served.abort();
    let parts = seen.lock().unwrap().take();
    parts
}

/// Heads that matter: the ordinary ones, and every kind of malformed or
/// ambiguous one we know of.
const CORPUS: &[&[u8]] = &[
    b"GET /v1/txt2img HTTP/1.1\r\nHost: gw\r\nX-API-Key: k\r\n\r\n",
    b"GET /v1/txt2img?a=b&c=%20 HTTP/1.1\r\nHost: gw\r\nAccept: */*\r\nAccept: text/plain\r\n\r\n",
    b"HEAD /v1/x HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"DELETE /v1/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nhost: gw\r\nx-empty:\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nX-Tab:\tv\t\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
    b"GET /v1/x HTTP/1.1\nHost: gw\n\n",
    b"get /v1/x HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    // Malformed.
    b"GET /v1/x HTTP/1.1\r\nHost : gw\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\n folded\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nBad Header: v\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nX: a\rb\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    b"GET  /v1/x HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/x  HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/x HTTP/1.1 \r\nHost: gw\r\n\r\n",
    b"GET /v1/x HTTP/2.0\r\nHost: gw\r\n\r\n",
    b"GET /v1/x HTTP/1.0\r\nHost: gw\r\n\r\n",
    b"GET /v1/x\r\nHost: gw\r\n\r\n",
    b"G\x00T /v1/x HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/caf\xc3\xa9 HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/\xff HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/a b HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/a#frag HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/a\"b HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/a{b} HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/a|b^c`d HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/a\\b HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/x?a|b HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/x?a^b`c HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/x?a{\"b\"} HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/x?caf\xc3\xa9 HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/x?a%2 HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET /v1/x?q=%41&r=/?:@ HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET http://gw/v1/x HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"CONNECT gw:443 HTTP/1.1\r\nHost: gw:443\r\n\r\n",
    // Ambiguous framing.
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 0, 0\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nContent-Length: +0\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 00\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nContent-Length:  0 \r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\n\r\n",
    b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The rule, for one head.
fn agree(rt: &tokio::runtime::Runtime, head: &[u8]) -> Result<(), String> {
    let Some(own) = own(head) else {
        return Ok(());
    };
    match rt.block_on(hyper(head)) {
        Some(theirs) if theirs == own => Ok(()),
        Some(theirs) => Err(format!("own {own:?}, hyper {theirs:?}")),
        None => Err(format!("own path takes it ({own:?}), hyper refuses it")),
    }
}

#[test]
fn the_own_path_takes_only_heads_hyper_reads_the_same_way() {
    let rt = runtime();
    let mut taken = 0;
    for head in CORPUS {
        if let Err(e) = agree(&rt, head) {
            panic!("{:?}: {e}", String::from_utf8_lossy(head));
        }
        taken += usize::from(own(head).is_some());
    }
    // The corpus exercises both sides of the rule.
    assert!(taken >= 8, "only {taken} heads taken by the own path");
}

/// Heads made of pieces that parsers are known to disagree on.
fn heads() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        Just("GET"),
        Just("HEAD"),
        Just("get"),
        Just("G(T"),
        Just("DELETE")
    ];
    let target = prop_oneof![
        Just("/v1/x"),
        Just("/v1/x?q=1"),
        Just("/v1/x?q=a|b"),
        Just("/v1/x?q={}"),
        Just("/v1/%41"),
        Just("/v1/a b"),
        Just("/v1/\u{e9}"),
        Just("/v1/a#b"),
        Just("/"),
        Just("*"),
        Just("http://h/x"),
    ];
    let version = prop_oneof![
        Just("HTTP/1.1"),
        Just("HTTP/1.0"),
        Just("HTTP/1.2"),
        Just("http/1.1")
    ];
    let eol = prop_oneof![Just("\r\n"), Just("\n"), Just("\r")];
    let name = prop_oneof![
        Just("Host"),
        Just("X-API-Key"),
        Just("Content-Length"),
        Just("Transfer-Encoding"),
        Just("Connection"),
        Just("X a"),
        Just("X:"),
        Just(""),
    ];
    let value = prop_oneof![
        Just("gw"),
        Just("0"),
        Just("chunked"),
        Just("close"),
        Just(" 0 "),
        Just("a\u{0}b"),
        Just("\u{e9}"),
        Just(""),
    ];
    let field = (name, value, eol.clone()).prop_map(|(n, v, e)| format!("{n}: {v}{e}"));
    (
        method,
        target,
        version,
        eol.clone(),
        prop::collection::vec(field, 0..5),
        eol,
    )
        .prop_map(|(m, t, v, e1, fields, e2)| {
            format!("{m} {t} {v}{e1}{}{e2}", fields.concat()).into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_heads_agree(head in heads()) {
        let rt = runtime();
        if let Err(e) = agree(&rt, &head) {
            prop_assert!(false, "{:?}: {}", String::from_utf8_lossy(&head), e);
        }
    }
}
