//! The policy the layer enforces, replaceable while it serves.

use std::sync::Arc;

use arc_swap::ArcSwap;
use quota_core::policy::Policy;
use quota_core::upload::UploadRules;

/// A shared, hot-swappable policy: the layer loads it once per request, and
/// [`PolicyHandle::replace`] takes effect for every request that starts
/// afterwards (requests in flight finish under the policy they started with).
///
/// Clones share the same slot, so keep one to reload the policy later.
///
/// ```
/// use quota_core::policy::Policy;
/// use quota_transport::enforce::PolicyHandle;
///
/// let handle = PolicyHandle::new(Policy::seed());
/// let layer_copy = handle.clone(); // what EnforceLayer::new keeps
/// handle.replace(Policy::seed());
/// assert!(layer_copy.load().endpoint("txt2img").is_some());
/// ```
#[derive(Clone, Debug)]
pub struct PolicyHandle(Arc<ArcSwap<Loaded>>);

/// A policy and its upload rules, shared (the body guard of every request
/// holds the rules; cloning them per request would copy their map).
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) policy: Arc<Policy>,
    pub(crate) uploads: Arc<UploadRules>,
}

impl Loaded {
    fn new(policy: Arc<Policy>) -> Arc<Self> {
        let uploads = Arc::new(policy.uploads().clone());
        Arc::new(Loaded { policy, uploads })
    }
}

impl PolicyHandle {
    /// A handle holding `policy`.
    pub fn new(policy: impl Into<Arc<Policy>>) -> Self {
        PolicyHandle(Arc::new(ArcSwap::new(Loaded::new(policy.into()))))
    }

    /// The policy now in force.
    pub fn load(&self) -> Arc<Policy> {
        Arc::clone(&self.0.load().policy)
    }

    /// Puts `policy` in force for every request that starts from now on.
    pub fn replace(&self, policy: impl Into<Arc<Policy>>) {
        self.0.store(Loaded::new(policy.into()));
    }

    /// The policy and its upload rules, as one request uses them.
    pub(crate) fn load_full(&self) -> Arc<Loaded> {
        self.0.load_full()
    }
}

impl From<Policy> for PolicyHandle {
    fn from(policy: Policy) -> Self {
        PolicyHandle::new(policy)
    }
}

impl From<Arc<Policy>> for PolicyHandle {
    fn from(policy: Arc<Policy>) -> Self {
        PolicyHandle::new(policy)
    }
}
