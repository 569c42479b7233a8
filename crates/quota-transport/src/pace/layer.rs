//! [`PaceLayer`]: one pacer shared by every service the layer makes.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use quota_core::client::{PaceError, PacedLimit, Pacer};
use quota_core::policy::Plan;
use quota_core::Timestamp;
use tower_layer::Layer;

use super::service::Pace;

/// The time source of a layer.
type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The hook called with each hold.
type DelayHook = Arc<dyn Fn(Duration) + Send + Sync>;

/// The pacer and the settings every clone of a [`Pace`] service shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) pacer: Arc<Mutex<Pacer>>,
    clock: Clock,
    max_delay: Option<Duration>,
    on_delay: Option<DelayHook>,
}

impl Shared {
    fn new(pacer: Pacer) -> Self {
        Shared {
            pacer: Arc::new(Mutex::new(pacer)),
            clock: Arc::new(crate::enforce::system_clock),
            max_delay: None,
            on_delay: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pacer> {
        // The pacer's state is valid after any panic (each call is one step).
        self.pacer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Releases a request now, recording it, or says how long to wait before
    /// asking again. Checking and recording happen under one lock, so
    /// concurrent requests never both take the last slot.
    pub(crate) fn try_release(&self) -> Duration {
        let now = (self.clock)();
        let mut pacer = self.lock();
        let delay = pacer.poll_delay(now);
        let too_long = self.max_delay.is_some_and(|max| delay > max);
        if delay.is_zero() || too_long {
            pacer.on_send(now);
            return Duration::ZERO;
        }
        drop(pacer);
        tracing::debug!(
            target: "quota_transport::pace",
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "pacing: holding the request"
        );
        if let Some(hook) = &self.on_delay {
            hook(delay);
        }
        delay
    }

    /// Feeds a response's status and headers to the pacer.
    pub(crate) fn observe(&self, status: u16, headers: &http::HeaderMap) {
        let now = (self.clock)();
        self.lock().observe(status, headers.iter(), now);
    }
}

/// Applies [`Pace`] to a service: requests wait until the pacer lets them
/// go, and every response teaches the pacer. See the [module docs](super).
///
/// Clones of the layer, and every service it makes (and their clones),
/// share one [`Pacer`]: build one layer per budget the server keeps.
///
/// ```
/// use quota_core::client::PacedLimit;
/// use quota_transport::pace::PaceLayer;
/// use std::time::Duration;
///
/// // 5 requests in any 2 seconds, plus whatever the responses' headers say.
/// let layer = PaceLayer::from_limits(&[PacedLimit::sliding(5, Duration::from_secs(2))])?;
/// let later = layer.clone().max_delay(Duration::from_secs(60));
/// assert!(std::sync::Arc::ptr_eq(layer.pacer(), later.pacer()));
/// # Ok::<(), quota_core::client::PaceError>(())
/// ```
#[derive(Clone)]
pub struct PaceLayer {
    shared: Arc<Shared>,
}

impl PaceLayer {
    /// A layer whose pacer knows no limits and learns them from the
    /// responses' `X-RateLimit-*`, `RateLimit` and `Retry-After` headers.
    pub fn new() -> Self {
        PaceLayer::from_pacer(Pacer::new())
    }

    /// A layer around `pacer`.
    pub fn from_pacer(pacer: Pacer) -> Self {
        PaceLayer {
            shared: Arc::new(Shared::new(pacer)),
        }
    }

    /// A layer that keeps to `limits` from the first request on
    /// ([`Pacer::from_limits`]), and also learns from responses.
    ///
    /// # Errors
    /// [`PaceError`] for a limit of 0 requests or a window under 1 ms.
    pub fn from_limits(limits: &[PacedLimit]) -> Result<Self, PaceError> {
        Pacer::from_limits(limits).map(PaceLayer::from_pacer)
    }

    /// A layer that keeps to every limit of a plan ([`Pacer::for_plan`]):
    /// a client that knows the policy meets no 429 with requests of cost 1.
    pub fn for_plan(plan: &Plan<'_>) -> Self {
        PaceLayer::from_pacer(Pacer::for_plan(plan))
    }

    fn edit(self, f: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        f(&mut shared);
        PaceLayer {
            shared: Arc::new(shared),
        }
    }

    /// Reads the time from `clock` instead of the wall clock. The pacer
    /// counts windows in this time (UTC-aligned, as servers do), while
    /// delays are slept on tokio's timer: with tokio's time paused in a test,
    /// give a clock that follows `tokio::time::Instant`.
    pub fn clock(self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        self.edit(|s| s.clock = Arc::new(clock))
    }

    /// Sends a request at once, without waiting, when the pacer would hold it
    /// longer than `max` (a daily budget spent until midnight, say): the
    /// server answers it, and a [`RetryLayer`](crate::retry::RetryLayer)
    /// outside this one handles the 429. Default: no maximum, every request
    /// waits as long as the pacer says.
    pub fn max_delay(self, max: Duration) -> Self {
        self.edit(|s| s.max_delay = Some(max))
    }

    /// Calls `hook` with the delay each time a request is held (a request
    /// may be held more than once when other requests take its slot). Each
    /// hold is also a `tracing` event (`debug`, target `quota_transport::pace`).
    pub fn on_delay(self, hook: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.edit(|s| s.on_delay = Some(Arc::new(hook)))
    }

    /// The shared pacer, e.g. to ask how long the next request would wait.
    pub fn pacer(&self) -> &Arc<Mutex<Pacer>> {
        &self.shared.pacer
    }
}

impl Default for PaceLayer {
    fn default() -> Self {
        PaceLayer::new()
    }
}

impl fmt::Debug for PaceLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaceLayer")
            .field("pacer", &self.shared.pacer)
            .field("max_delay", &self.shared.max_delay)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for PaceLayer {
    type Service = Pace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Pace::from_shared(inner, Arc::clone(&self.shared))
    }
}
