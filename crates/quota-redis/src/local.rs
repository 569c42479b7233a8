//! The local fallback of [`FailurePolicy::Local`](crate::FailurePolicy::Local):
//! the same core arithmetic in memory, with every count divided by the
//! number of gateway nodes.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};

use quota_core::algorithm::{Limit, LimitOutcome, State};
use quota_core::policy::Plan;
use quota_core::{Outcomes, Timestamp};

const SHARDS: usize = 32;

/// Per-key states of the scaled limits, sharded by account (one lock per decision).
#[derive(Debug)]
pub(crate) struct LocalFallback {
    nodes: u64,
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

#[derive(Debug, Default)]
struct Shard {
    /// Redis key name -> (state, when it stops counting).
    states: HashMap<String, (State, u64)>,
    sweep_at_len: usize,
}

impl LocalFallback {
    pub(crate) fn new(nodes: u32) -> Self {
        LocalFallback {
            nodes: u64::from(nodes.max(1)),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        sweep_at_len: 64,
                        ..Shard::default()
                    })
                })
                .collect(),
            hasher: RandomState::new(),
        }
    }

    /// This node's share of `limit`: `count / nodes`, at least 1.
    pub(crate) fn scale(&self, limit: &Limit) -> Limit {
        let count = (limit.count() / self.nodes).max(1);
        // A smaller count keeps count * window within the validated bound.
        Limit::from_millis(count, limit.window_ms(), limit.algorithm()).unwrap_or(*limit)
    }

    /// Decides (or, with `commit == false`, evaluates) `plan` at `now` over the
    /// scaled limits. `keys` are the plan's limit keys, in plan order.
    pub(crate) fn decide(
        &self,
        plan: &Plan<'_>,
        keys: &[String],
        now: Timestamp,
        commit: bool,
    ) -> Outcomes {
        let mut outcomes = Outcomes::new();
        if keys.is_empty() {
            return outcomes;
        }
        let cost = plan.cost();
        let mut shard = self.shard(plan.account());
        let scaled: Vec<Limit> = plan.limits().map(|l| self.scale(l.limit())).collect();
        let mut all_admit = true;
        for (limit, key) in scaled.iter().zip(keys) {
            let state = shard.states.get(key).map_or(&State::Empty, |(s, _)| s);
            let outcome = if cost <= limit.count() {
                limit.evaluate(state, now, cost)
            } else {
                // A request larger than this node's share can never pass here
                // (and the core's arithmetic requires cost <= count).
                let mut o = limit.evaluate(state, now, 1);
                o.remaining = if o.admits {
                    o.remaining + 1
                } else {
                    o.remaining
                };
                LimitOutcome {
                    admits: false,
                    retry_after_ms: limit.window_ms().max(1),
                    ..o
                }
            };
            all_admit &= outcome.admits;
            outcomes.push(outcome);
        }
        if commit && all_admit {
            for (limit, key) in scaled.iter().zip(keys) {
                let entry = shard.states.entry(key.clone()).or_insert((State::Empty, 0));
                limit.commit(&mut entry.0, now, cost);
                entry.1 = limit.expires_at(&entry.0);
            }
            shard.maybe_sweep(now.as_millis());
        }
        outcomes
    }

    fn shard(&self, account: &str) -> MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(account) as usize) % self.shards.len();
        // A poisoned lock only means a thread panicked mid-decision; every
        // state is written whole, so the data is still consistent.
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shard {
    fn maybe_sweep(&mut self, now: u64) {
        if self.states.len() >= self.sweep_at_len {
            self.states.retain(|_, (_, expires_at)| *expires_at > now);
            self.sweep_at_len = (self.states.len() * 2).max(64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quota_core::algorithm::Algorithm;

    #[test]
    fn each_node_gets_its_share_and_at_least_one() {
        let local = LocalFallback::new(3);
        let l = |n| {
            Limit::from_millis(n, 60_000, Algorithm::FixedWindow).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(local.scale(&l(300)).count(), 100);
        assert_eq!(local.scale(&l(10)).count(), 3);
        assert_eq!(local.scale(&l(2)).count(), 1);
    }
}
