//! When an HTTP/2 connection has been idle long enough to close.
//!
//! hyper closes an idle HTTP/1.1 connection after the client timeout (its
//! header read timeout runs between requests, and the own path keeps the
//! same rule), but an HTTP/2 connection has no such timer: a client could
//! keep one open, idle, for ever, holding one of the gateway's
//! `--max-connections` slots. [`counted`] wraps a connection's service to
//! note when its requests start and finish ([`Busy`]), and
//! [`idle_or_closing`] resolves once no request has been in flight for the
//! client timeout, or once the gateway shuts down; the caller then shuts the
//! connection down gracefully (a GOAWAY: streams already started still
//! finish).

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::Service;
use tokio::sync::watch;
use tokio::time::Instant;

/// The requests of one connection: how many are being answered, and when
/// the last one was done.
pub(crate) struct Busy {
    origin: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `origin` to when the last request was done (or to
    /// the connection's start).
    last_ms: AtomicU64,
}

impl Busy {
    /// A connection opened at `origin` (its accept), with no request yet.
    pub(crate) fn since(origin: Instant) -> Arc<Busy> {
        Arc::new(Busy {
            origin,
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    /// Since when the connection has had no request in flight; `None`
    /// while one is.
    fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.origin + Duration::from_millis(self.last_ms.load(Ordering::Acquire)))
    }

    fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }
}

/// A request being answered; done when dropped (answered or abandoned).
struct InFlight(Arc<Busy>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let busy = &self.0;
        let ms = u64::try_from(busy.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        busy.last_ms.fetch_max(ms, Ordering::AcqRel);
        busy.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `service`, noting in `busy` when each request starts and when its
/// answer's head is ready.
pub(crate) fn counted<S>(service: S, busy: Arc<Busy>) -> Counted<S> {
    Counted { service, busy }
}

/// A service whose requests are counted in a [`Busy`]; see [`counted`].
pub(crate) struct Counted<S> {
    service: S,
    busy: Arc<Busy>,
}

impl<S, R> Service<R> for Counted<S>
where
    S: Service<R, Future: Send + 'static>,
{
    type Response = S::Response;
    type Error = S::Error;
    /// Boxed (one allocation per HTTP/2 request) to keep the count with
    /// the answer without pin projections.
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, req: R) -> Self::Future {
        let in_flight = self.busy.enter();
        let answer = self.service.call(req);
        Box::pin(async move {
            let res = answer.await;
            drop(in_flight);
            res
        })
    }
}

/// Resolves once the connection `busy` counts has had no request in flight
/// for `idle`, or once `closing` turns true (the gateway shuts down).
pub(crate) async fn idle_or_closing(
    busy: &Busy,
    idle: Duration,
    closing: &mut watch::Receiver<bool>,
) {
    let mut shutdown = pin!(closing.wait_for(|closing| *closing));
    // Idle since the connection opened (its accept), until a request comes.
    let mut timer = pin!(tokio::time::sleep_until(busy.origin + idle));
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            () = &mut timer => {
                let now = Instant::now();
                // While a request is in flight, look again an `idle` later.
                let due = busy.idle_since().map_or(now + idle, |since| since + idle);
                if due <= now {
                    return;
                }
                timer.as_mut().reset(due);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;
    use std::convert::Infallible;

    /// Answers `d` after `d` seconds.
    struct Sleeper;

    impl Service<u64> for Sleeper {
        type Response = u64;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<u64, Infallible>> + Send>>;

        fn call(&self, d: u64) -> Self::Future {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(d)).await;
                Ok(d)
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_closes_an_idle_period_after_its_last_request() {
        let busy = Busy::since(Instant::now());
        let (_tx, mut closing) = watch::channel(false);
        let svc = counted(Sleeper, Arc::clone(&busy));
        let start = Instant::now();
        let idle = Duration::from_secs(10);
        // A request of 25 s from the start: in flight when the first
        // deadline comes, so the connection stays until 10 s after it.
        let watch = async {
            idle_or_closing(&busy, idle, &mut closing).await;
            start.elapsed()
        };
        let request = async {
            assert!(busy.idle_since().is_some());
            let answer = svc.call(25).await.unwrap();
            assert_eq!(answer, 25);
            assert!(busy.idle_since().is_some());
        };
        let (closed_after, ()) = tokio::join!(watch, request);
        assert!(
            closed_after >= Duration::from_secs(35) && closed_after <= Duration::from_secs(46),
            "{closed_after:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_with_no_request_closes_after_the_idle_time_and_at_shutdown_at_once() {
        let busy = Busy::since(Instant::now());
        let (tx, mut closing) = watch::channel(false);
        let start = Instant::now();
        idle_or_closing(&busy, Duration::from_secs(10), &mut closing).await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));

        let busy = Busy::since(Instant::now());
        let _in_flight = busy.enter();
        let start = Instant::now();
        let shut = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            tx.send_replace(true);
        };
        tokio::join!(
            idle_or_closing(&busy, Duration::from_secs(10), &mut closing),
            shut
        );
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }
}
