//! The gateway's own HTTP/1.1 path for the requests it proxies most:
//! requests without a body (see [`request::parse`]) to a route of the
//! table ([`RouteTable`]), metered or passthrough.
//!
//! A connection starts here. Each request is parsed where it was read,
//! checked by its metered route's enforcement layer
//! ([`EnforceLayer::check_head_with`], the same checks, answers and metrics
//! as the tower layer; a passthrough route's are not checked), forwarded with the
//! upstream client's raw path ([`Proxy::forward_head`](crate::proxy::Proxy::forward_head)) and answered in one
//! write with the upstream's fields and the rate-limit headers, without
//! building `http` requests and responses or going through hyper's
//! connection state machine. The first request this path does not answer
//! (a body, an upgrade, HTTP/1.0, a malformed head, the gateway's own
//! routes, a path that is not canonical or that no route takes) hands the connection, with the bytes already read, to hyper,
//! which serves it from then on exactly as it serves every other
//! connection.
//!
//! [`EnforceLayer::check_head_with`]: quota_transport::enforce::EnforceLayer::check_head_with

#[cfg(test)]
mod differential;
mod rewind;

use std::io::Write as _;
use std::pin::{pin, Pin};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Response, StatusCode};
use http_body::Body as HttpBody;
use http_body_util::{BodyExt, Full};
use quota_transport::enforce::{Admitted, HeadCheck, UpstreamFailure, UpstreamResult};
use quota_transport::fields::HeaderFields as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::access_log::{self, Pending, Record, Tally, Where};
use crate::anonymous;
use crate::handler::Handler;
use crate::http1::answer::{Framing, HeadWriter};
use crate::http1::edge::Refusal;
use crate::http1::hop::pairs;
use crate::http1::request::{self, Parsed, Simple};
use crate::respond::{BoxError, ClientAddr};
use crate::route_table::RouteTable;
use crate::routes::Route;
pub(crate) use rewind::Rewind;

use super::Io;

const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// How much the read buffer grows by.
const READ_CHUNK: usize = 8 * 1024;

/// A read buffer larger than this is let go once empty.
const KEEP_BUFFER: usize = 64 * 1024;

/// Answer bytes gathered before they are written (a larger body is
/// written as it comes).
const WRITE_AT: usize = 64 * 1024;

/// How a connection left the own path.
pub(crate) enum Ended<S> {
    /// It is closed (the client closed it, asked to, timed out, or the
    /// gateway is shutting down).
    Closed,
    /// Serve it with hyper, from the bytes put back in front of it.
    Handover(Rewind<S>),
}

/// Serves `stream` (from `client`, `accepted` then) until it closes or is
/// handed over. `closing` turns true when the gateway shuts down: a
/// connection waiting for a request then closes; one serving a request
/// finishes it first. `stream` is a TCP connection, or a TLS one over it.
pub(crate) async fn serve<S: Io>(
    mut stream: S,
    gw: &Handler,
    client: &ClientAddr,
    accepted: Instant,
    closing: &mut watch::Receiver<bool>,
) -> Ended<S> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Vec::with_capacity(1024);
    let timeout = gw.client_timeout;
    // One timer and one shutdown watch for the connection's life, not one
    // per request: the timer is moved on only when it fires early.
    let mut timer = pin!(tokio::time::sleep_until(accepted + timeout));
    let mut upstream_timer = pin!(tokio::time::sleep(gw.upstream_timeout));
    let mut shutdown = pin!(closing.wait_for(|closing| *closing));
    // A head is due within the client timeout from when the connection is
    // ready for one: accepted (the wait for its first byte included), or
    // done with the previous request.
    let mut waiting_since = accepted;
    loop {
        let simple = loop {
            if !buf.is_empty() {
                match request::parse(&buf) {
                    Parsed::Simple(s) => break s,
                    Parsed::Other => return handover(buf, stream),
                    Parsed::Refused { refusal, head } => {
                        gw.shared.metrics.record_edge_refusal(refusal);
                        let pending = gw.shared.access_log.as_ref().map(|log| {
                            let method = first_token(&buf);
                            let record = Record::new(client.peer, method, Where::Edge);
                            Pending::new(log, record, Arc::default())
                        });
                        refuse(refusal, head, stream, &mut out, pending).await;
                        return Ended::Closed;
                    }
                    Parsed::Partial => {}
                }
            }
            if buf.capacity() - buf.len() < READ_CHUNK / 8 {
                buf.reserve(READ_CHUNK);
            }
            let idle = buf.is_empty();
            // The read first: when it is ready (the usual wake-up) the
            // timer and the shutdown watch are not polled at all.
            let read = tokio::select! {
                biased;
                read = stream.read_buf(&mut buf) => read,
                () = &mut timer => {
                    let deadline = waiting_since + timeout;
                    if Instant::now() >= deadline {
                        return Ended::Closed;
                    }
                    timer.as_mut().reset(deadline);
                    continue;
                }
                // Shutting down: a connection between requests closes.
                _ = &mut shutdown, if idle => return Ended::Closed,
            };
            if !matches!(read, Ok(n) if n > 0) {
                return Ended::Closed;
            }
        };
        // A path no route takes is hyper's to refuse (404).
        let Some(exchange) = Exchange::new(&buf, &simple).and_then(|e| e.routed(&gw.table)) else {
            return handover(buf, stream);
        };
        out.clear();
        let open = match &gw.shared.access_log {
            None => {
                exchange
                    .answer(gw, client, upstream_timer.as_mut(), &mut stream, &mut out)
                    .await
                    .open
            }
            Some(log) => {
                let record = exchange.record(gw, client);
                let tally = Arc::new(Tally::default());
                let mut pending = Pending::new(log, record, Arc::clone(&tally));
                let answering =
                    exchange.answer(gw, client, upstream_timer.as_mut(), &mut stream, &mut out);
                let sent = access_log::scope(tally, answering).await;
                pending.answered(sent.status, sent.refusal);
                if let Some(id) = sent.id {
                    pending.set_id(id);
                }
                pending.done(sent.body);
                sent.open
            }
        };
        drop(exchange);
        buf.advance(simple.len);
        if !open || simple.close {
            let _ = stream.shutdown().await;
            return Ended::Closed;
        }
        if buf.is_empty() && buf.capacity() > KEEP_BUFFER {
            buf = BytesMut::with_capacity(READ_CHUNK);
        }
        if out.capacity() > KEEP_BUFFER {
            out = Vec::with_capacity(1024);
        }
        waiting_since = Instant::now();
    }
}

/// Answers a request refused at the edge, then closes the connection
/// (its body, if any, is not read: see [`linger`]); `pending` is its
/// access log record.
async fn refuse<S: Io>(
    refusal: Refusal,
    head: bool,
    mut stream: S,
    out: &mut Vec<u8>,
    pending: Option<Pending>,
) {
    let (parts, body) = crate::respond::refusal(refusal, true).into_parts();
    out.clear();
    let answer = Answer {
        status: parts.status,
        admission: None,
    };
    let sent = answer
        .write(pairs(&parts.headers), body, head, true, &mut stream, out)
        .await;
    if let Some(mut pending) = pending {
        pending.answered(sent.status, true);
        pending.done(sent.body);
    }
    if sent.open {
        linger(stream).await;
    }
}

/// The method of the request at the start of `buf`, if it is one.
fn first_token(buf: &[u8]) -> Option<Method> {
    let end = buf.iter().position(|&b| b == b' ')?;
    Method::from_bytes(&buf[..end]).ok()
}

/// Closes a connection whose client may still be sending (a body the
/// gateway did not read): the write side first, then what arrives is
/// read and dropped for a moment, so that the close does not reset the
/// connection (which could destroy the answer before the client reads it).
async fn linger<S: Io>(mut stream: S) {
    const LINGER: std::time::Duration = std::time::Duration::from_millis(500);
    const MAX_DRAINED: usize = 256 * 1024;
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 8 * 1024];
    let mut drained = 0;
    let deadline = Instant::now() + LINGER;
    while drained < MAX_DRAINED {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}

fn handover<S: Io>(buf: BytesMut, stream: S) -> Ended<S> {
    Ended::Handover(Rewind::new(buf.freeze(), stream))
}

/// One request of the own path, borrowed from the read buffer.
struct Exchange<'b> {
    method: Method,
    target: &'b str,
    path: &'b str,
    fields: smallvec::SmallVec<[(&'b [u8], &'b [u8]); 16]>,
    close: bool,
    /// Its route in the gateway's table.
    route: usize,
}

impl<'b> Exchange<'b> {
    /// The request `simple` found in `buf`; `None` for one the own path
    /// leaves to hyper.
    fn new(buf: &'b [u8], simple: &Simple) -> Option<Self> {
        let method = Method::from_bytes(simple.method.of(buf)).ok()?;
        let target = std::str::from_utf8(simple.target.of(buf)).ok()?;
        // The path is the target's start (cut before `?`, an ASCII byte).
        let path = target.get(..simple.path.of(buf).len())?;
        // The gateway's own routes, and paths that are not canonical (a
        // spelling the enforcement layer refuses or rewrites), go to hyper:
        // there the layer's canonical path is the request's URI, which the
        // routes and the proxy read.
        if Route::of(path).is_own() || !quota_core::path::is_canonical(path) {
            return None;
        }
        // A query forwarded as it is must be one hyper would take too.
        if let Some(query) = target.get(path.len() + 1..) {
            if !quota_core::path::is_query(query) {
                return None;
            }
        }
        Some(Exchange {
            method,
            target,
            path,
            fields: simple.fields(buf),
            close: simple.close,
            route: 0,
        })
    }

    /// The request with its route in `table`; `None` when none takes it.
    fn routed(mut self, table: &RouteTable) -> Option<Self> {
        self.route = table.find(self.path)?;
        Some(self)
    }

    /// The access log record of this request, from `client`, arriving now.
    fn record(&self, gw: &Handler, client: &ClientAddr) -> Box<Record> {
        let fields = &self.fields[..];
        let client = gw
            .shared
            .trusted
            .client(client.peer, fields.values_of(&X_FORWARDED_FOR));
        Record::new(
            client,
            Some(self.method.clone()),
            Where::Route(Route::Proxy),
        )
    }

    /// Checks, forwards and answers the request: what was sent.
    async fn answer<S: Io>(
        &self,
        gw: &Handler,
        client: &ClientAddr,
        upstream_timer: Pin<&mut Sleep>,
        stream: &mut S,
        out: &mut Vec<u8>,
    ) -> Sent {
        let upstream = &gw.routes[self.route];
        let admission = match &upstream.layer {
            // Passthrough: nothing to check.
            None => None,
            Some(layer) => {
                let fields = &self.fields[..];
                // Without a key, the client's address (for the anonymous tier).
                let anonymous = anonymous::has_no_key(fields).then(|| {
                    let ip = gw
                        .shared
                        .trusted
                        .client(client.peer, fields.values_of(&X_FORWARDED_FOR));
                    anonymous::extensions(ip)
                });
                match layer
                    .check_head_with(self.path, fields, anonymous.as_ref())
                    .await
                {
                    HeadCheck::Refused(res) => {
                        let id = gw
                            .shared
                            .access_log
                            .as_ref()
                            .and_then(|_| access_log::id_in(res.headers()));
                        let mut sent = self.reply(res.map(Full::new), None, stream, out).await;
                        sent.refusal = true;
                        sent.id = id;
                        return sent;
                    }
                    HeadCheck::Admitted(admission) => Some(admission),
                }
            }
        };
        let mut admission = admission;
        let caller = admission
            .as_ref()
            .and_then(Admitted::identity)
            .map(|i| (i.account.as_str(), i.tier.as_str()));
        // The path checked and charged is the one forwarded (the same as
        // the client's here: only canonical paths take this path).
        let rewritten;
        let target = match admission.as_ref().and_then(Admitted::path) {
            None => self.target,
            Some(path) => {
                rewritten = format!("{path}{}", &self.target[self.path.len()..]);
                &rewritten
            }
        };
        // The upstream's time, for the access log.
        let sent = gw.shared.access_log.is_some().then(std::time::Instant::now);
        let forwarded = upstream
            .proxy
            .forward_head(
                &self.method,
                target,
                &self.fields,
                client,
                caller,
                upstream_timer,
            )
            .await;
        if let Some(sent) = sent {
            access_log::upstream_took(sent.elapsed());
        }
        // The upstream failed (or, as configured, answered a 5xx): what
        // the request took is given back before the answer is written,
        // which then carries no rate-limit headers.
        let result = match &forwarded {
            Ok((up, _)) => UpstreamResult::Answered(up.status.as_u16()),
            Err(res) => UpstreamFailure::of(res),
        };
        if let (Some(layer), Some(admitted)) = (&upstream.layer, admission.as_mut()) {
            layer.settle(admitted, self.path, result).await;
        }
        match forwarded {
            Ok((up, body)) => {
                let answer = Answer {
                    status: up.status,
                    admission: admission.as_ref(),
                };
                let head = self.method == Method::HEAD;
                answer
                    .write(up.fields(), body, head, self.close, stream, out)
                    .await
            }
            Err(res) => self.reply(res, admission.as_ref(), stream, out).await,
        }
    }

    /// Writes the gateway's own answer `res` (a refusal, a 502 or 504) with
    /// `admission`'s headers, if any; what was sent as [`Answer::write`].
    async fn reply<B, S: Io>(
        &self,
        res: Response<B>,
        admission: Option<&Admitted>,
        stream: &mut S,
        out: &mut Vec<u8>,
    ) -> Sent
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = res.into_parts();
        let answer = Answer {
            status: parts.status,
            admission,
        };
        let head = self.method == Method::HEAD;
        let fields = pairs(&parts.headers);
        answer
            .write(fields, body, head, self.close, stream, out)
            .await
    }
}

/// What an answer sent.
struct Sent {
    /// Whether the connection can carry another request (false: a write
    /// failed, or the body failed midway).
    open: bool,
    /// Its status.
    status: u16,
    /// Body bytes written (the payload, not chunked framing).
    body: u64,
    /// The enforcement layer's refusal (or the edge's).
    refusal: bool,
    /// The request id of the enforcement layer's refusal (a 5xx), read
    /// only with an access log.
    id: Option<u64>,
}

/// An answer's status and the admission whose headers it carries.
struct Answer<'a> {
    status: StatusCode,
    /// Its fields replace the answer's own of the same names.
    admission: Option<&'a Admitted>,
}

impl Answer<'_> {
    /// Writes the answer with `fields` and its body: what was sent.
    async fn write<'f, B, S: Io>(
        &self,
        fields: impl Iterator<Item = (&'f [u8], &'f [u8])>,
        body: B,
        head: bool,
        close: bool,
        stream: &mut S,
        out: &mut Vec<u8>,
    ) -> Sent
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let framing = Framing::of(self.status, head, body.size_hint().exact());
        let mut w = HeadWriter::new(out, self.status, framing);
        match self.admission {
            Some(a) => {
                w.fields(fields.filter(|(name, _)| !a.sets(name)));
                a.encode_headers(w.raw());
            }
            None => w.fields(fields),
        }
        w.finish(close);
        let mut sent = Sent {
            open: false,
            status: self.status.as_u16(),
            body: 0,
            refusal: false,
            id: None,
        };
        if !framing.has_body() {
            sent.open = send(stream, out).await;
            return sent;
        }
        let chunked = framing == Framing::Chunked;
        let mut body = pin!(body);
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                // Cut short: the client sees the connection close.
                let _ = send(stream, out).await;
                return sent;
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            sent.body += data.len() as u64;
            if chunked {
                // Into the buffer (a `Vec` write cannot fail).
                let _ = write!(out, "{:x}\r\n", data.len());
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
            } else {
                out.extend_from_slice(&data);
            }
            if out.len() >= WRITE_AT {
                if !send(stream, out).await {
                    return sent;
                }
                out.clear();
            }
        }
        if chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        sent.open = send(stream, out).await;
        sent
    }
}

/// Writes `out` and flushes it (a TLS stream may hold written bytes until
/// flushed; a TCP one has nothing to flush); false when either fails.
async fn send<S: Io>(stream: &mut S, out: &[u8]) -> bool {
    stream.write_all(out).await.is_ok() && stream.flush().await.is_ok()
}
