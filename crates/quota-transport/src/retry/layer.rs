//! [`RetryLayer`]: the retry strategy and its clock, jitter and wait hook.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use quota_core::client::RetryPolicy;
use quota_core::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tower_layer::Layer;

use super::event::RetryWait;
use super::strategy::RetryStrategy;
use super::Retry;

/// Where the jitter of the backoff comes from.
#[derive(Clone)]
enum Jitter {
    /// `rand::thread_rng()`, sampled on the thread that handles the 429.
    Thread,
    /// One generator shared by every clone of the layer and its services.
    Shared(Arc<Mutex<dyn RngCore + Send>>),
}

/// The time source of a layer.
type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The hook called before each wait.
type WaitHook = Arc<dyn Fn(&RetryWait) + Send + Sync>;

/// What a [`RetryLayer`] hands to each [`RetryStrategy`] it makes.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) policy: RetryPolicy,
    clock: Clock,
    jitter: Jitter,
    on_wait: Option<WaitHook>,
}

impl Config {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Config {
            policy,
            clock: Arc::new(crate::enforce::system_clock),
            jitter: Jitter::Thread,
            on_wait: None,
        }
    }

    /// The time a response is received at.
    pub(crate) fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// A jitter sample in `[0, 1)`.
    pub(crate) fn sample(&self) -> f64 {
        match &self.jitter {
            Jitter::Thread => rand::thread_rng().gen(),
            Jitter::Shared(rng) => {
                // A panic elsewhere cannot leave an RNG in a state worth refusing.
                let mut rng = rng.lock().unwrap_or_else(PoisonError::into_inner);
                rng.gen()
            }
        }
    }

    /// Reports a wait to the tracing subscriber and the hook.
    pub(crate) fn report(&self, wait: &RetryWait) {
        tracing::info!(
            target: "quota_transport::retry",
            attempt = wait.attempt,
            max_attempts = wait.max_attempts,
            limit_type = ?wait.limit_type,
            wait_ms = u64::try_from(wait.wait.as_millis()).unwrap_or(u64::MAX),
            "rate limited; waiting before the next attempt"
        );
        if let Some(hook) = &self.on_wait {
            hook(wait);
        }
    }
}

/// Applies [`Retry`] (tower's retry middleware following a [`RetryStrategy`])
/// to a service: the seed's retry strategy for 429s.
///
/// Built with [`RetryLayer::new`] and adjusted with the builder methods; every
/// service it makes shares one configuration (and one RNG, if one was set).
/// See the [module docs](super) for the strategy and an example.
///
/// ```
/// use quota_transport::retry::{RetryLayer, RetryPolicy};
/// use std::time::Duration;
///
/// let layer = RetryLayer::new(RetryPolicy { max_attempts: 3, ..RetryPolicy::SEED })
///     .jitter_seed(7)
///     .on_wait(|wait| eprintln!("{wait}"));
/// assert_eq!(layer.policy().max_attempts, 3);
/// ```
#[derive(Clone)]
pub struct RetryLayer {
    config: Arc<Config>,
}

impl RetryLayer {
    /// A layer that retries under `policy`, reading the wall clock and
    /// drawing jitter from `rand::thread_rng()`.
    pub fn new(policy: RetryPolicy) -> Self {
        RetryLayer {
            config: Arc::new(Config::new(policy)),
        }
    }

    fn edit(self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = Arc::unwrap_or_clone(self.config);
        f(&mut config);
        RetryLayer {
            config: Arc::new(config),
        }
    }

    /// Reads the time of each response from `clock` instead of the wall
    /// clock. The time matters only for a `Retry-After` given as an HTTP-date
    /// (the wait is the date minus this time); waits are slept on tokio's
    /// timer whatever the clock says.
    pub fn clock(self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        self.edit(|c| c.clock = Arc::new(clock))
    }

    /// Draws the backoff's jitter from `rng`, one generator shared by every
    /// service this layer makes (behind a mutex held only for the draw).
    pub fn rng(self, rng: impl RngCore + Send + 'static) -> Self {
        self.edit(|c| c.jitter = Jitter::Shared(Arc::new(Mutex::new(rng))))
    }

    /// Draws the jitter from a [`StdRng`] seeded with `seed`: the same seed
    /// and the same responses give the same waits.
    pub fn jitter_seed(self, seed: u64) -> Self {
        self.rng(StdRng::seed_from_u64(seed))
    }

    /// Calls `hook` before each wait, after the `tracing` event
    /// (`info` level, target `quota_transport::retry`). A command-line client
    /// prints it; [`RetryWait`] implements `Display`.
    pub fn on_wait(self, hook: impl Fn(&RetryWait) + Send + Sync + 'static) -> Self {
        self.edit(|c| c.on_wait = Some(Arc::new(hook)))
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.config.policy
    }
}

impl Default for RetryLayer {
    /// The seed's strategy ([`RetryPolicy::SEED`]).
    fn default() -> Self {
        RetryLayer::new(RetryPolicy::SEED)
    }
}

impl fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.config.policy)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(RetryStrategy::from_config(Arc::clone(&self.config)), inner)
    }
}
