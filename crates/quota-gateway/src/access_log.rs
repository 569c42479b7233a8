//! The access log: one JSON line per request, written off the hot path.
//!
//! ```text
//! {"time":"2026-11-28T03:47:13.205Z","request_id":"5be3c0a1d2f49e07","client":"203.0.113.7","account":"acct_87834f324ad03729","tier":"basic","method":"POST","route":"proxy","endpoint":"txt2img","decision":"admitted","status":200,"upstream_ms":1.874,"bytes_in":11,"bytes_out":144}
//! ```
//!
//! Each request's serving code fills a small `Record` (its head when it
//! arrives, then what the enforcement layer decided, the upstream's time
//! and the bytes) and hands it, once the answer's body has been written
//! (or given up), to a bounded queue. A thread of its own owns the file (or
//! stdout) behind a `BufWriter`, turns each record into its line there, and
//! flushes at least once a second and at shutdown. A request never waits
//! for the log: when the queue is full the record is dropped and counted
//! (`quota_access_log_dropped_total`). With no access log configured none
//! of this runs (no record, no task-local, no clock read).
//!
//! Not recorded: heads hyper's server cannot parse, which it answers itself
//! (400, 431) before any request reaches the gateway.
//!
//! What the enforcement layer decided reaches the record through a
//! task-local (`Tally`) that the gateway's observer writes to: the
//! layer's tier, account, endpoint and verdict, on the request's own task.
//!
//! The fields, in order:
//!
//! | field | value |
//! |---|---|
//! | `time` | when the request arrived: RFC 3339, UTC, milliseconds |
//! | `request_id` | the `X-Request-Id` the gateway gave the answer (its 5xx answers carry one); else a random one |
//! | `client` | the client's address ([`TrustedProxies::client`](crate::forwarded::TrustedProxies::client)) |
//! | `account`, `tier` | the caller, once its key resolved (absent otherwise); never the key |
//! | `method` | the request's method (absent when an edge refusal had none readable) |
//! | `route` | `proxy`, `limits`, `admin`, `ui` (the operator's page), `healthz`, `metrics`, or `edge` for an edge refusal |
//! | `endpoint` | the policy's endpoint (`prompt/*`), when the path names one |
//! | `decision` | `admitted`, `refused:LIMIT` for a 429 (`refused` when no limit is named), or the refusing status as a word (`400`, `401`, `402`, `404`, `405`, `413`, `422`, `500`, `501`, `503`); `refunded` when the request was admitted and then given back its units and credit because the upstream failed (see `--refund-on`); in shadow mode a refusal not enforced is `shadow:` and what it would have been |
//! | `status` | the status answered |
//! | `upstream_ms` | milliseconds from handing the request to the upstream client until its response head (or the failure: a 502 or 504); absent when not forwarded |
//! | `bytes_in` | request body bytes read |
//! | `bytes_out` | response body bytes written (not the head, not chunked framing) |

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use quota_transport::enforce::{Observation, Outcome};
use quota_transport::response::RequestId;
use serde::Serialize;

use crate::routes::Route;

/// Records waiting for the writer at most; more are dropped and counted.
const QUEUE: usize = 16 * 1024;

/// The writer's buffer.
const BUFFER: usize = 64 * 1024;

/// A line written is on disk (flushed to the OS) within this.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// How long the shutdown waits for the writer to drain and flush.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Why an access log could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessLogError {
    /// The file cannot be opened for appending.
    #[error("cannot open the access log {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The writer's thread cannot start.
    #[error("cannot start the access log's writer: {0}")]
    Thread(#[source] io::Error),
}

/// An access log: a writer on a thread of its own, fed through a bounded
/// queue. Cheap to clone (one `Arc`); give it to
/// [`GatewayBuilder::access_log`](crate::GatewayBuilder::access_log).
///
/// ```no_run
/// use quota_gateway::{AccessLog, Gateway};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let log = AccessLog::file("/var/log/quota/access.log")?; // or AccessLog::stdout()?
/// let gateway = Gateway::builder(quota_core::policy::Policy::seed())
///     .upstream("http://127.0.0.1:9000".parse()?)
///     .access_log(log)
///     .build()?;
/// # drop(gateway);
/// # Ok(())
/// # }
/// ```
///
/// The writer stops, after writing and flushing every line queued, when
/// the gateway that uses it stops serving (or when the last clone is
/// dropped).
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Inner>,
}

struct Inner {
    queue: SyncSender<Msg>,
    /// Records dropped because the queue was full (or the writer gone).
    dropped: Counter,
    /// Where the lines go, for `Debug`.
    target: String,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("target", &self.inner.target)
            .field("dropped", &self.dropped())
            .finish()
    }
}

enum Msg {
    Record(Box<Record>),
    /// Write what is queued, flush, answer, stop.
    Close(tokio::sync::oneshot::Sender<io::Result<()>>),
}

impl AccessLog {
    /// An access log appending to the file at `path` (created if missing).
    ///
    /// # Errors
    /// [`AccessLogError::Open`] when the file cannot be opened for
    /// appending, [`AccessLogError::Thread`] when the writer cannot start.
    pub fn file(path: impl AsRef<Path>) -> Result<Self, AccessLogError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| AccessLogError::Open {
                path: path.to_owned(),
                source,
            })?;
        Self::start(Sink::File(file), path.display().to_string(), QUEUE)
    }

    /// An access log on the process's standard output.
    ///
    /// # Errors
    /// [`AccessLogError::Thread`] when the writer cannot start.
    pub fn stdout() -> Result<Self, AccessLogError> {
        Self::start(Sink::Stdout(io::stdout()), "stdout".to_owned(), QUEUE)
    }

    /// `-` for [`AccessLog::stdout`], anything else a file's path
    /// ([`AccessLog::file`]): what `quota serve --access-log` takes.
    ///
    /// # Errors
    /// As [`AccessLog::file`] and [`AccessLog::stdout`].
    pub fn open(target: &Path) -> Result<Self, AccessLogError> {
        if target.as_os_str() == "-" {
            Self::stdout()
        } else {
            Self::file(target)
        }
    }

    /// Records dropped so far because the writer fell behind (the queue
    /// was full): `quota_access_log_dropped_total`.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.get()
    }

    fn start(sink: Sink, target: String, capacity: usize) -> Result<Self, AccessLogError> {
        let (queue, rx) = mpsc::sync_channel(capacity);
        // The caller's log subscriber (an embedder's, or a test's) also
        // hears the writer's errors: a new thread would start with the
        // global one.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        std::thread::Builder::new()
            .name("quota-access-log".into())
            .spawn(move || {
                let _logs = tracing::dispatcher::set_default(&dispatch);
                write_lines(&rx, BufWriter::with_capacity(BUFFER, sink));
            })
            .map_err(AccessLogError::Thread)?;
        Ok(AccessLog {
            inner: Arc::new(Inner {
                queue,
                dropped: Counter::default(),
                target,
            }),
        })
    }

    /// The counter of dropped records, to register in `/metrics`.
    pub(crate) fn dropped_counter(&self) -> Counter {
        self.inner.dropped.clone()
    }

    /// Queues `record` for the writer; never waits: dropped (and counted)
    /// when the queue is full.
    fn send(&self, record: Box<Record>) {
        match self.inner.queue.try_send(Msg::Record(record)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.inner.dropped.inc();
            }
        }
    }

    /// Writes and flushes every record queued, then stops the writer
    /// (waiting at most [`CLOSE_WITHIN`]). Records sent afterwards are
    /// dropped.
    pub(crate) async fn close(&self) {
        let deadline = tokio::time::Instant::now() + CLOSE_WITHIN;
        let (ack, done) = tokio::sync::oneshot::channel();
        let mut msg = Msg::Close(ack);
        // The queue may be full: try again while the writer drains it.
        loop {
            match self.inner.queue.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(back)) => {
                    if tokio::time::Instant::now() >= deadline {
                        tracing::warn!(
                            "the access log's writer did not drain in time; lines may be lost"
                        );
                        return;
                    }
                    msg = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        match tokio::time::timeout_at(deadline, done).await {
            Ok(Ok(Ok(()))) => tracing::info!("access log flushed"),
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "cannot flush the access log"),
            Ok(Err(_)) => {}
            Err(_) => tracing::warn!("the access log was not flushed in time; lines may be lost"),
        }
    }
}

/// Where the lines go.
enum Sink {
    File(File),
    Stdout(io::Stdout),
    /// Tests: any writer.
    #[cfg(test)]
    Other(Box<dyn Write + Send>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Stdout(s) => s.write(buf),
            #[cfg(test)]
            Sink::Other(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Stdout(s) => s.flush(),
            #[cfg(test)]
            Sink::Other(w) => w.flush(),
        }
    }
}

/// The writer: formats and writes each record, flushes within
/// [`FLUSH_EVERY`] of a line and when told to close (or when every sender
/// is gone).
fn write_lines(rx: &Receiver<Msg>, mut out: BufWriter<Sink>) {
    let mut line = Line::default();
    // When the oldest line not yet flushed was written.
    let mut unflushed: Option<Instant> = None;
    let mut last_error: Option<Instant> = None;
    loop {
        let msg = match unflushed {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(since) => {
                rx.recv_timeout((since + FLUSH_EVERY).saturating_duration_since(Instant::now()))
            }
        };
        match msg {
            Ok(Msg::Record(record)) => {
                line.write(&record, &mut out, &mut last_error);
                let since = *unflushed.get_or_insert_with(Instant::now);
                if since.elapsed() >= FLUSH_EVERY {
                    flush(&mut out, &mut last_error);
                    unflushed = None;
                }
            }
            Ok(Msg::Close(ack)) => {
                // What was queued before the close is written too.
                while let Ok(Msg::Record(record)) = rx.try_recv() {
                    line.write(&record, &mut out, &mut last_error);
                }
                let _ = ack.send(out.flush());
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                flush(&mut out, &mut last_error);
                unflushed = None;
            }
            Err(RecvTimeoutError::Disconnected) => {
                flush(&mut out, &mut last_error);
                return;
            }
        }
    }
}

fn flush(out: &mut BufWriter<Sink>, last_error: &mut Option<Instant>) {
    if let Err(e) = out.flush() {
        report(&e, last_error);
    }
}

/// Logs a write error, at most once a minute.
fn report(e: &io::Error, last_error: &mut Option<Instant>) {
    if last_error.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
        *last_error = Some(Instant::now());
        tracing::error!(error = %e, "cannot write the access log; lines are lost");
    }
}

/// The writer's reusable buffers for one line's text fields.
#[derive(Default)]
struct Line {
    time: String,
    request_id: String,
    decision: String,
    json: Vec<u8>,
}

/// One line, as serialised.
#[derive(Serialize)]
struct Json<'a> {
    time: &'a str,
    request_id: &'a str,
    client: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tier: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    route: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<&'a str>,
    decision: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_ms: Option<f64>,
    bytes_in: u64,
    bytes_out: u64,
}

impl Line {
    /// Writes `r` as one line (and its newline) to `out`.
    fn write(&mut self, r: &Record, out: &mut impl Write, last_error: &mut Option<Instant>) {
        self.time.clear();
        rfc3339_millis(r.time, &mut self.time);
        self.request_id.clear();
        // Generated here, not on the request's task, when the answer had none.
        let id = r.facts.request_id.unwrap_or_else(rand::random);
        let _ = write!(self.request_id, "{id:016x}");
        self.decision.clear();
        r.decision().write_to(r.facts.shadow, &mut self.decision);
        let json = Json {
            time: &self.time,
            request_id: &self.request_id,
            client: r.client,
            account: r.facts.account.as_deref(),
            tier: r.facts.tier.as_deref(),
            method: r.method.as_ref().map(Method::as_str),
            route: r.route.as_str(),
            endpoint: r.facts.endpoint.as_deref(),
            decision: &self.decision,
            status: r.status,
            upstream_ms: r
                .facts
                .upstream
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX) as f64 / 1000.0),
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
        };
        self.json.clear();
        // Serialising these types into a `Vec` does not fail.
        if serde_json::to_writer(&mut self.json, &json).is_err() {
            return;
        }
        self.json.push(b'\n');
        if let Err(e) = out.write_all(&self.json) {
            report(&e, last_error);
        }
    }
}

/// `t` as RFC 3339 in UTC with milliseconds: `2026-11-28T03:47:13.205Z`.
fn rfc3339_millis(t: SystemTime, out: &mut String) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    let s = secs % 86_400;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        since.subsec_millis()
    );
}

/// The proleptic Gregorian date of day `z` since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // In range by construction: 1..=31 and 1..=12.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// Which route a record is of (`edge`: refused before any route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Where {
    /// A route of the table.
    Route(Route),
    /// Refused at the edge.
    Edge,
}

impl Where {
    fn as_str(self) -> &'static str {
        match self {
            Where::Route(Route::Proxy) => "proxy",
            Where::Route(Route::Limits) => "limits",
            Where::Route(Route::Admin) => "admin",
            Where::Route(Route::Ui) => "ui",
            Where::Route(Route::Health) => "healthz",
            Where::Route(Route::Metrics) => "metrics",
            Where::Edge => "edge",
        }
    }
}

/// What became of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Served (by the gateway's route, or forwarded).
    Admitted,
    /// A 429, by the limit named.
    Refused(Option<Box<str>>),
    /// Refused (or failed) with this status.
    Status(u16),
    /// Admitted, then given back what it took: the upstream failed.
    Refunded,
}

impl Decision {
    /// What a status the enforcement layer did not decide says.
    fn of_status(status: u16) -> Self {
        match status {
            ..400 => Decision::Admitted,
            429 => Decision::Refused(None),
            s => Decision::Status(s),
        }
    }

    fn write_to(&self, shadow: bool, out: &mut String) {
        if shadow {
            out.push_str("shadow:");
        }
        match self {
            Decision::Admitted => out.push_str("admitted"),
            Decision::Refused(None) => out.push_str("refused"),
            Decision::Refused(Some(limit)) => {
                out.push_str("refused:");
                out.push_str(limit);
            }
            Decision::Status(s) => {
                let _ = write!(out, "{s}");
            }
            Decision::Refunded => out.push_str("refunded"),
        }
    }
}

/// What is learnt about a request while it is served (the enforcement
/// layer's decision, the upstream's time, a request id).
#[derive(Debug, Default)]
pub(crate) struct Facts {
    account: Option<Box<str>>,
    tier: Option<Box<str>>,
    endpoint: Option<Box<str>>,
    /// The layer's decision (`None`: the layer did not decide it).
    decision: Option<Decision>,
    /// The decision was a refusal that shadow mode let through.
    shadow: bool,
    upstream: Option<Duration>,
    /// The id the answer carries, if the gateway gave it one.
    request_id: Option<u64>,
}

/// One request's record: what the writer makes a line of.
#[derive(Debug)]
pub(crate) struct Record {
    time: SystemTime,
    client: IpAddr,
    method: Option<Method>,
    route: Where,
    facts: Facts,
    status: u16,
    /// The answer is the gateway's own refusal (an upload rule broken while
    /// the body streamed, say), whatever the layer decided first.
    refusal: bool,
    bytes_in: u64,
    bytes_out: u64,
}

impl Record {
    /// The record of a request from `client` that arrived now.
    pub(crate) fn new(client: IpAddr, method: Option<Method>, route: Where) -> Box<Self> {
        Box::new(Record {
            time: SystemTime::now(),
            client,
            method,
            route,
            facts: Facts::default(),
            status: 0,
            refusal: false,
            bytes_in: 0,
            bytes_out: 0,
        })
    }

    fn decision(&self) -> Decision {
        match &self.facts.decision {
            None => Decision::of_status(self.status),
            // Admitted, then answered by a refusal of the gateway's own.
            Some(Decision::Admitted) if self.refusal && self.status >= 400 => {
                Decision::of_status(self.status)
            }
            Some(d) => d.clone(),
        }
    }

    /// The route, once known (the edge checks pass).
    pub(crate) fn set_route(&mut self, route: Where) {
        self.route = route;
    }
}

tokio::task_local! {
    /// The record being filled of the request this task serves.
    static REQUEST: Arc<Tally>;
}

/// What a request's serving code and the enforcement layer's observer
/// learn about it, shared with its request body (which another task may
/// read).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    bytes_in: AtomicU64,
    facts: Mutex<Facts>,
}

impl Tally {
    fn with(f: impl FnOnce(&mut Facts)) {
        let _ =
            REQUEST.try_with(|t| f(&mut t.facts.lock().unwrap_or_else(PoisonError::into_inner)));
    }

    /// Takes what was learnt into `record`, with the answer's `status` and
    /// whether it is the gateway's own refusal.
    pub(crate) fn finish(&self, record: &mut Record, status: u16, refusal: bool) {
        let mut facts = self.facts.lock().unwrap_or_else(PoisonError::into_inner);
        record.facts = std::mem::take(&mut *facts);
        record.status = status;
        record.refusal = refusal;
        // Refused after all (shadow mode does not let a bad path through).
        if refusal {
            record.facts.shadow = false;
        }
    }
}

/// Runs `f` (a request's serving) with `tally` as the request's record.
pub(crate) async fn scope<F: std::future::Future>(tally: Arc<Tally>, f: F) -> F::Output {
    REQUEST.scope(tally, f).await
}

/// The enforcement layer's decision, from its observer (on the request's
/// task): the caller, the endpoint and the verdict.
pub(crate) fn observed(o: &Observation<'_>) {
    Tally::with(|f| {
        f.account = o.account.map(Box::from);
        f.tier = o.tier.map(Box::from);
        f.endpoint = o.endpoint.map(Box::from);
        let status = o.status.as_u16();
        f.decision = Some(match o.outcome {
            Outcome::Admitted => Decision::Admitted,
            _ if status == 429 => Decision::Refused(o.limit.map(Box::from)),
            _ => Decision::Status(status),
        });
        f.shadow = o.shadow && o.outcome != Outcome::Admitted;
    });
}

/// The enforcement layer gave the request back what it took (its
/// upstream failed).
pub(crate) fn refunded() {
    Tally::with(|f| f.decision = Some(Decision::Refunded));
}

/// How long the upstream took to answer (or to fail).
pub(crate) fn upstream_took(took: Duration) {
    Tally::with(|f| f.upstream = Some(took));
}

/// The id the gateway gave the answer (a 5xx of its own).
pub(crate) fn request_id(id: RequestId) {
    Tally::with(|f| f.request_id = parse_id(id.to_string().as_bytes()));
}

/// The request id in the `X-Request-Id` of `headers` (an answer the
/// gateway made itself), if it has one.
pub(crate) fn id_in(headers: &HeaderMap) -> Option<u64> {
    parse_id(headers.get("x-request-id")?.as_bytes())
}

/// A request id as the gateway writes them: 16 hex digits.
fn parse_id(id: &[u8]) -> Option<u64> {
    if id.len() != 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(id).ok()?, 16).ok()
}

/// A request in flight, to be recorded once its answer is done.
pub(crate) struct Pending {
    log: AccessLog,
    record: Box<Record>,
    tally: Arc<Tally>,
}

impl Pending {
    /// `record`, to be sent to `log`, filled through `tally`.
    pub(crate) fn new(log: &AccessLog, record: Box<Record>, tally: Arc<Tally>) -> Self {
        Pending {
            log: log.clone(),
            record,
            tally,
        }
    }

    /// The record, to fill in.
    pub(crate) fn record(&mut self) -> &mut Record {
        &mut self.record
    }

    /// Takes what was learnt, with the answer's `status` (`refusal`: the
    /// gateway's own answer, not the upstream's).
    pub(crate) fn answered(&mut self, status: u16, refusal: bool) {
        self.tally.finish(&mut self.record, status, refusal);
    }

    /// Takes the request id from the `X-Request-Id` of `headers`, an
    /// answer the gateway made itself, if it has one.
    pub(crate) fn id_from(&mut self, headers: &HeaderMap) {
        if let Some(id) = id_in(headers) {
            self.record.facts.request_id = Some(id);
        }
    }

    /// The request id is `id`.
    pub(crate) fn set_id(&mut self, id: u64) {
        self.record.facts.request_id = Some(id);
    }

    /// Sends the record with `bytes_out` response body bytes written.
    pub(crate) fn done(mut self, bytes_out: u64) {
        self.record.bytes_out = bytes_out;
        self.record.bytes_in = self.tally.bytes_in.load(Ordering::Relaxed);
        self.log.send(self.record);
    }
}

/// A request body that counts its bytes into the request's [`Tally`]
/// (with no access log, it only passes the body on).
#[derive(Debug)]
pub(crate) struct CountedBody<B> {
    body: B,
    tally: Option<Arc<Tally>>,
}

impl<B> CountedBody<B> {
    /// `body`, counted into `tally` if any.
    pub(crate) fn new(body: B, tally: Option<Arc<Tally>>) -> Self {
        CountedBody { body, tally }
    }
}

impl<B> HttpBody for CountedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let (Some(tally), Poll::Ready(Some(Ok(frame)))) = (&this.tally, &polled) {
            if let Some(data) = frame.data_ref() {
                tally
                    .bytes_in
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body that counts what is written of it and, once it is done
/// (ended, failed or dropped), sends its request's record (with no access
/// log, it only passes the body on).
pub(crate) struct LoggedBody<B> {
    body: B,
    pending: Option<Pending>,
    written: u64,
}

impl<B> LoggedBody<B> {
    /// `body`, not logged.
    pub(crate) fn plain(body: B) -> Self {
        LoggedBody {
            body,
            pending: None,
            written: 0,
        }
    }

    /// `body`, whose written bytes complete `pending`.
    pub(crate) fn logged(body: B, pending: Pending) -> Self {
        LoggedBody {
            body,
            pending: Some(pending),
            written: 0,
        }
    }
}

impl<B> Drop for LoggedBody<B> {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.done(self.written);
        }
    }
}

impl<B> HttpBody for LoggedBody<B>
where
    B: HttpBody + Unpin,
    B::Data: bytes::Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let (Some(_), Poll::Ready(Some(Ok(frame)))) = (&this.pending, &polled) {
            if let Some(data) = frame.data_ref() {
                this.written += bytes::Buf::remaining(data) as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;

    fn record() -> Box<Record> {
        let mut r = Record::new(
            "203.0.113.7".parse().unwrap(),
            Some(Method::POST),
            Where::Route(Route::Proxy),
        );
        r.time = UNIX_EPOCH + Duration::from_millis(1_795_837_633_205);
        r
    }

    fn line_of(r: &Record) -> serde_json::Value {
        let mut out = Vec::new();
        Line::default().write(r, &mut out, &mut None);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(out.ends_with(b"\n"));
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_record_is_one_json_line_with_every_field() {
        let mut r = record();
        r.facts = Facts {
            account: Some("acct_1".into()),
            tier: Some("basic".into()),
            endpoint: Some("txt2img".into()),
            decision: Some(Decision::Admitted),
            shadow: false,
            upstream: Some(Duration::from_micros(1874)),
            request_id: Some(0x5be3_c0a1_d2f4_9e07),
        };
        r.status = 200;
        r.bytes_in = 11;
        r.bytes_out = 144;
        let v = line_of(&r);
        assert_eq!(
            v,
            serde_json::json!({
                "time": "2026-11-28T03:47:13.205Z", "request_id": "5be3c0a1d2f49e07",
                "client": "203.0.113.7", "account": "acct_1", "tier": "basic", "method": "POST",
                "route": "proxy", "endpoint": "txt2img", "decision": "admitted", "status": 200,
                "upstream_ms": 1.874, "bytes_in": 11, "bytes_out": 144
            })
        );
    }

    #[test]
    fn unknown_fields_are_left_out_and_an_id_is_made_up() {
        let mut r = record();
        r.route = Where::Edge;
        r.method = None;
        r.status = 400;
        let v = line_of(&r);
        let o = v.as_object().unwrap();
        for absent in ["account", "tier", "method", "endpoint", "upstream_ms"] {
            assert!(!o.contains_key(absent), "{absent}: {v}");
        }
        assert_eq!(v["decision"], "400");
        assert_eq!(v["route"], "edge");
        let id = v["request_id"].as_str().unwrap();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn decisions_are_words() {
        let word = |d: Decision, shadow| {
            let mut s = String::new();
            d.write_to(shadow, &mut s);
            s
        };
        assert_eq!(
            word(Decision::Refused(Some("minute".into())), false),
            "refused:minute"
        );
        assert_eq!(word(Decision::Refused(None), false), "refused");
        assert_eq!(word(Decision::Status(402), false), "402");
        assert_eq!(word(Decision::Refunded, false), "refunded");
        assert_eq!(
            word(Decision::Refused(Some("daily".into())), true),
            "shadow:refused:daily"
        );
        // Admitted by the layer, then refused while the body streamed.
        let mut r = record();
        r.facts.decision = Some(Decision::Admitted);
        r.status = 413;
        r.refusal = true;
        assert_eq!(r.decision(), Decision::Status(413));
        // Admitted, and the upstream said 404: still admitted.
        r.refusal = false;
        r.status = 404;
        assert_eq!(r.decision(), Decision::Admitted);
        // Not decided by the layer: the status says.
        r.facts.decision = None;
        assert_eq!(r.decision(), Decision::Status(404));
        r.status = 201;
        assert_eq!(r.decision(), Decision::Admitted);
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds_as_httpdate_has_the_day() {
        let mut s = String::new();
        rfc3339_millis(UNIX_EPOCH, &mut s);
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
        // Leap days, century years, the far future: the same day and time
        // as httpdate's formatter says.
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let mut t: u64 = 0;
        while t < 8_000_000_000 {
            let at = UNIX_EPOCH + Duration::from_secs(t);
            s.clear();
            rfc3339_millis(at, &mut s);
            // "Sat, 28 Nov 2026 03:47:13 GMT"
            let http = httpdate::fmt_http_date(at);
            let parts: Vec<&str> = http.split(' ').collect();
            let month = months.iter().position(|m| *m == parts[2]).unwrap() + 1;
            let expected = format!("{}-{month:02}-{}T{}.000Z", parts[3], parts[1], parts[4]);
            assert_eq!(s, expected, "{t}");
            t += 86_400 * 13 + 3_607;
        }
    }

    #[test]
    fn ids_are_sixteen_hex_digits() {
        assert_eq!(parse_id(b"00000000000000ff"), Some(255));
        assert_eq!(parse_id(b"ff"), None);
        assert_eq!(parse_id(b"zzzzzzzzzzzzzzzz"), None);
        let id = RequestId::new();
        assert_eq!(
            parse_id(id.to_string().as_bytes()).map(|n| format!("{n:016x}")),
            Some(id.to_string())
        );
    }

    /// A writer that blocks until it is let go.
    struct Gate(Arc<Mutex<()>>, Arc<Mutex<Vec<u8>>>);

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _open = self.0.lock().unwrap();
            self.1.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            let _open = self.0.lock().unwrap();
            Ok(())
        }
    }

    fn tallied(log: &AccessLog) -> Pending {
        Pending::new(log, record(), Arc::new(Tally::default()))
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_and_close_writes_the_rest() {
        let gate = Arc::new(Mutex::new(()));
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink::Other(Box::new(Gate(Arc::clone(&gate), Arc::clone(&written))));
        let log = AccessLog::start(sink, "test".into(), 2).unwrap();
        let held = gate.lock().unwrap();
        // The writer takes one and blocks writing it (its buffer is 64 KiB:
        // it blocks at the flush, within a second); the queue holds two.
        for _ in 0..2 {
            tallied(&log).done(1);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while log.dropped() == 0 {
            assert!(Instant::now() < deadline, "nothing was dropped");
            tallied(&log).done(1);
            // The writer is a thread: a blocking wait lets it run.
            std::thread::sleep(Duration::from_millis(10));
        }
        let dropped = log.dropped();
        drop(held);
        log.close().await;
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        assert!(text.lines().count() >= 2, "{text}");
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert_eq!(log.dropped(), dropped);
        // After the close, records are dropped.
        tallied(&log).done(1);
        let deadline = Instant::now() + Duration::from_secs(5);
        while log.dropped() == dropped {
            assert!(Instant::now() < deadline);
            tallied(&log).done(1);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn the_task_local_collects_what_the_layer_and_the_proxy_say() {
        let tally = Arc::new(Tally::default());
        scope(Arc::clone(&tally), async {
            upstream_took(Duration::from_millis(3));
        })
        .await;
        // Outside a scope: nothing, and no panic.
        upstream_took(Duration::from_millis(9));
        let mut r = record();
        tally.finish(&mut r, 502, false);
        assert_eq!(r.facts.upstream, Some(Duration::from_millis(3)));
        assert_eq!(r.status, 502);
        // A refusal shadow mode let through is `shadow:`; one it did not
        // (a path refused in shadow mode too) is not.
        let shadowed = |refusal| {
            let tally = Tally::default();
            tally.facts.lock().unwrap().shadow = true;
            let mut r = record();
            tally.finish(&mut r, 400, refusal);
            r.facts.shadow
        };
        assert!(shadowed(false));
        assert!(!shadowed(true));
    }
}
