//! [`RedisStore`]: the [`Store`] shared by a fleet of gateways.

use std::sync::Arc;

use quota_core::algorithm::LimitOutcome;
use quota_core::policy::Plan;
use quota_core::{Counted, Outcomes, Receipt, Store, StoreError, Timestamp};

use crate::conn::{millis, Conn};
use crate::health::{Health, StoreHealth};
use crate::local::LocalFallback;
use crate::script::{self, Mode};
use crate::{Clock, Error, FailurePolicy, KeySpace, RedisAccounts, RedisConfig};

/// Limit state in Redis: every decision is one atomic script call.
///
/// Cheap to clone (the connection and counters are shared). See the
/// [crate docs](crate) for the clock, the key layout, TTLs and failure policies.
#[derive(Clone, Debug)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    conn: Conn,
    keys: KeySpace,
    config: RedisConfig,
    script: redis::Script,
    give_back: redis::Script,
    local: Option<LocalFallback>,
    health: Health,
}

/// Who answered a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// Redis, atomically, shared with every node.
    Redis,
    /// [`FailurePolicy::Open`]: admitted without counting.
    Open,
    /// [`FailurePolicy::Local`]: this node's share, counted in memory.
    Local,
}

/// A decision's outcomes with the time and source that produced them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// One outcome per limit, in plan order.
    pub outcomes: Outcomes,
    /// The time the decision was made at: Redis `TIME` with [`Clock::Redis`]
    /// when Redis answered, the caller's `now` otherwise.
    pub now: Timestamp,
    /// Who answered.
    pub source: Source,
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://[user:password@]host:port[/db]`,
    /// `rediss://` needs a TLS feature of the `redis` crate), or on the Redis
    /// Cluster at `redis+cluster://[user:password@]host:port[,host:port...]`
    /// (any of its nodes; the others are found from them).
    ///
    /// Never blocks for long: the connection is made lazily, and one ping
    /// (bounded by [`RedisConfig::connect_timeout`]) warms it and loads the
    /// script. An unreachable Redis is not an error here; it is logged, and
    /// decisions follow the failure policy until Redis answers. Must be
    /// called inside a Tokio runtime ([`Error::NoRuntime`] otherwise).
    ///
    /// # Errors
    /// [`Error`] for a malformed URL, a prefix with `{` or `}`,
    /// `FailurePolicy::Local { nodes: 0 }`, or no Tokio runtime.
    pub async fn connect(url: &str, config: RedisConfig) -> Result<Self, Error> {
        let store = Self::lazy(url, config)?;
        let limit = store.inner.config.connect_timeout;
        let warm = async {
            store.inner.conn.ping(limit).await?;
            store.inner.conn.load(&store.inner.script, limit).await
        };
        match warm.await {
            Ok(()) => store.inner.health.record_ok(false),
            Err(e) => store.inner.health.record_error(&e),
        }
        Ok(store)
    }

    /// Like [`RedisStore::connect`] without the warm-up ping: returns at once.
    /// Must be called inside a Tokio runtime ([`Error::NoRuntime`] otherwise).
    ///
    /// # Errors
    /// As [`RedisStore::connect`].
    pub fn lazy(url: &str, config: RedisConfig) -> Result<Self, Error> {
        let keys = KeySpace::new(&config.prefix)?;
        let local = match config.failure {
            FailurePolicy::Local { nodes: 0 } => return Err(Error::ZeroNodes),
            FailurePolicy::Local { nodes } => Some(LocalFallback::new(nodes)),
            FailurePolicy::Closed | FailurePolicy::Open => None,
        };
        let conn = Conn::lazy(url, &config)?;
        let health = Health::new(config.failure, millis(config.probe_interval));
        Ok(RedisStore {
            inner: Arc::new(Inner {
                conn,
                keys,
                script: redis::Script::new(script::DECIDE_LUA),
                give_back: redis::Script::new(script::GIVE_BACK_LUA),
                local,
                health,
                config,
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The key layout.
    pub fn keys(&self) -> &KeySpace {
        &self.inner.keys
    }

    /// Whether Redis answers, and what the failure policy did so far.
    pub fn health(&self) -> StoreHealth {
        StoreHealth {
            cluster: self.inner.conn.is_cluster(),
            ..self.inner.health.snapshot()
        }
    }

    /// Accounts in the same Redis, over the same connection and prefix.
    pub fn accounts(&self) -> RedisAccounts {
        RedisAccounts::from_parts(self.inner.conn.clone(), self.inner.keys.clone())
    }

    /// Checks that Redis answers within [`RedisConfig::timeout`] (on a
    /// cluster: every master).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Timeout`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        let r = self.inner.conn.ping(self.inner.conn.timeout()).await;
        match &r {
            Ok(()) => self.inner.health.record_ok(false),
            Err(e) => self.inner.health.record_error(e),
        }
        r
    }

    /// Decides every limit of `plan` (commits all if all admit, nothing
    /// otherwise) and says when and by whom. With [`Clock::Redis`], `now` is
    /// used only by the local fallback.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Timeout`] when Redis cannot
    /// answer and the policy is [`FailurePolicy::Closed`];
    /// [`StoreError::Protocol`] when Redis refuses the script (whatever the policy).
    pub async fn decide_detailed(
        &self,
        plan: &Plan<'_>,
        now: Timestamp,
    ) -> Result<Answer, StoreError> {
        self.run(plan, now, Mode::Decide).await
    }

    /// What [`RedisStore::decide_detailed`] would answer, changing nothing.
    ///
    /// # Errors
    /// As [`RedisStore::decide_detailed`].
    pub async fn peek_detailed(
        &self,
        plan: &Plan<'_>,
        now: Timestamp,
    ) -> Result<Answer, StoreError> {
        self.run(plan, now, Mode::Peek).await
    }

    /// Gives back what the decision `receipt` describes counted for `plan`
    /// (see [`Store::refund`]), in one atomic script call: in Redis when
    /// Redis counted it, in the local fallback when that did
    /// ([`Counted::Fallback`]), nowhere when the `open` policy admitted it
    /// uncounted. With [`Clock::Redis`], `now` is Redis `TIME`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Timeout`] when Redis
    /// cannot answer (whatever the failure policy: a refund is not a
    /// decision, and nothing is given back); [`StoreError::Protocol`] when
    /// Redis refuses the script.
    pub async fn refund_detailed(
        &self,
        plan: &Plan<'_>,
        receipt: &Receipt,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let inner = &*self.inner;
        if plan.is_empty() || !receipt.admitted() || receipt.outcomes.len() != plan.len() {
            return Ok(());
        }
        match receipt.counted {
            Counted::Store => {}
            Counted::Fallback => {
                if let Some(local) = &inner.local {
                    local.refund(plan, receipt, now);
                }
                return Ok(());
            }
            _ => return Ok(()),
        }
        let keys = self.plan_keys(plan);
        let caller_now = (inner.config.clock == Clock::Caller).then_some(now);
        let inv = script::prepare_refund(&inner.give_back, plan, &keys, receipt, caller_now);
        let reply = inner.conn.eval::<Vec<i64>>(&inv).await;
        match reply {
            Ok(r) if r.len() == 2 => Ok(()),
            Ok(r) => Err(StoreError::protocol(format!(
                "refund script: expected 2 numbers (reply {r:?})"
            ))),
            Err(e) => {
                inner.health.record_error(&e);
                Err(e)
            }
        }
    }

    /// The keys of `plan`'s limits, in plan order.
    pub fn plan_keys(&self, plan: &Plan<'_>) -> Vec<String> {
        let account = plan.account();
        plan.buckets()
            .flat_map(|b| b.limits().iter().map(move |l| (b.scope(), l.fingerprint())))
            .map(|(scope, fp)| self.inner.keys.limit_key(account, scope, fp))
            .collect()
    }

    async fn run(&self, plan: &Plan<'_>, now: Timestamp, mode: Mode) -> Result<Answer, StoreError> {
        let inner = &*self.inner;
        if plan.is_empty() {
            return Ok(Answer {
                outcomes: Outcomes::new(),
                now,
                source: Source::Redis,
            });
        }
        let keys = self.plan_keys(plan);
        let tried = inner.health.should_try();
        let error = if tried {
            let caller_now = (inner.config.clock == Clock::Caller).then_some(now);
            let inv = script::prepare(
                &inner.script,
                plan,
                &keys,
                mode,
                caller_now,
                millis(inner.config.ttl_grace),
            );
            let reply = inner.conn.eval::<Vec<i64>>(&inv).await;
            match reply.and_then(|r| script::parse(&r, keys.len())) {
                Ok((at, outcomes)) => {
                    inner.health.record_ok(mode == Mode::Decide);
                    return Ok(Answer {
                        outcomes,
                        now: at,
                        source: Source::Redis,
                    });
                }
                Err(e) => {
                    inner.health.record_error(&e);
                    // Only transient errors (connection trouble,
                    // timeouts) go to the failure policy.
                    if !e.is_transient() {
                        return Err(e);
                    }
                    e
                }
            }
        } else {
            StoreError::unavailable("redis is unreachable; waiting for the next probe")
        };
        match (inner.config.failure, &inner.local) {
            (FailurePolicy::Open, _) => {
                inner.health.record_fallback();
                let outcomes = plan
                    .limits()
                    .map(|l| LimitOutcome {
                        admits: true,
                        remaining: l.limit().count(),
                        reset_after_ms: 0,
                        retry_after_ms: 0,
                    })
                    .collect();
                Ok(Answer {
                    outcomes,
                    now,
                    source: Source::Open,
                })
            }
            (FailurePolicy::Local { .. }, Some(local)) => {
                inner.health.record_fallback();
                let outcomes = local.decide(plan, now, mode == Mode::Decide);
                Ok(Answer {
                    outcomes,
                    now,
                    source: Source::Local,
                })
            }
            _ => {
                if !tried {
                    inner.health.record_skipped();
                }
                Err(error)
            }
        }
    }
}

impl Store for RedisStore {
    async fn decide<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> Result<Outcomes, StoreError> {
        self.decide_detailed(plan, now).await.map(|a| a.outcomes)
    }

    async fn peek<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> Result<Outcomes, StoreError> {
        self.peek_detailed(plan, now).await.map(|a| a.outcomes)
    }

    async fn decide_with_receipt<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> Result<Receipt, StoreError> {
        let answer = self.decide_detailed(plan, now).await?;
        Ok(Receipt {
            outcomes: answer.outcomes,
            at: answer.now,
            counted: match answer.source {
                Source::Redis => Counted::Store,
                Source::Local => Counted::Fallback,
                Source::Open => Counted::Nothing,
            },
        })
    }

    async fn refund<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        receipt: &'a Receipt,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.refund_detailed(plan, receipt, now).await
    }
}
