//! quota-gateway: the `quota` gateway as a library.
//!
//! So far it holds the gateway's HTTP/1.1 codec, [`http1`]: the parts of the
//! gateway's own HTTP/1.1 server path and upstream client that do no I/O
//! (no sockets, no tokio), so that they can be fuzzed (`fuzz/`) and tested
//! byte for byte, and held to hyper's parser by the gateway's differential
//! tests. The server, the proxy and the admin API live in the `quota`
//! binary (`crates/quota-cli`) for now.
//!
//! ```
//! use quota_gateway::http1::request::{parse, Parsed};
//!
//! let head = b"GET /v1/txt2img?n=1 HTTP/1.1\r\nHost: gw\r\nX-API-Key: k\r\n\r\n";
//! let Parsed::Simple(simple) = parse(head) else { panic!("a plain GET") };
//! assert_eq!(simple.path.of(head), b"/v1/txt2img");
//! assert_eq!(simple.len, head.len());
//!
//! // Refused at the edge, whichever path would serve it: no Host.
//! assert!(matches!(parse(b"GET /v1/x HTTP/1.1\r\n\r\n"), Parsed::Refused { .. }));
//! ```

pub mod http1;

/// This crate's README, its examples compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
