//! The local fallback of [`FailurePolicy::Local`](crate::FailurePolicy::Local):
//! the same core arithmetic in memory, with every count divided by the
//! number of gateway nodes.

use quota_core::policy::Plan;
use quota_core::{MemoryStore, Outcomes, Receipt, Timestamp};

/// This node's shares of the limits, in the core's memory store.
#[derive(Debug)]
pub(crate) struct LocalFallback {
    nodes: u64,
    store: MemoryStore,
}

impl LocalFallback {
    pub(crate) fn new(nodes: u32) -> Self {
        LocalFallback {
            nodes: u64::from(nodes.max(1)),
            store: MemoryStore::with_shards(32),
        }
    }

    /// This node's share of `limit`: `count / nodes`, at least 1.
    #[cfg(test)]
    pub(crate) fn scale(
        &self,
        limit: &quota_core::algorithm::Limit,
    ) -> quota_core::algorithm::Limit {
        limit.share(self.nodes)
    }

    /// Decides (or, with `commit == false`, evaluates) `plan` at `now` over
    /// this node's shares of its limits.
    pub(crate) fn decide(&self, plan: &Plan<'_>, now: Timestamp, commit: bool) -> Outcomes {
        if commit {
            self.store.decide_share(plan, now, self.nodes)
        } else {
            self.store.peek_share(plan, now, self.nodes)
        }
    }

    /// Gives back what a decision of [`LocalFallback::decide`] counted.
    pub(crate) fn refund(&self, plan: &Plan<'_>, receipt: &Receipt, now: Timestamp) {
        self.store.refund_share(plan, receipt, now, self.nodes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quota_core::algorithm::{Algorithm, Limit};

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
