//! The gateway's HTTP/1.1 codec, without I/O.
//!
//! - [`request`]: a request head at the start of a read buffer: whether the
//!   gateway's own path serves it, hands it to hyper, or refuses it, and
//!   where its parts are ([`span::Span`]s of the buffer).
//! - [`edge`]: what the gateway refuses at the edge (bad `Host`, target,
//!   transfer codings, methods), one check for every server path.
//! - [`answer`]: the head of an answer the gateway writes (status line,
//!   fields, `Date`, framing).
//! - [`client`]: the upstream client's side: request heads encoded with the
//!   gateway's header edits, response heads parsed (RFC 9112 framing), and
//!   bodies decoded (lengths, chunked, until close).
//! - [`hop`]: hop-by-hop fields and the header edits of a forwarded request.
//! - [`span`]: where a parsed head's parts are.

pub mod answer;
pub mod client;
pub mod edge;
pub mod hop;
pub mod request;
pub mod span;
