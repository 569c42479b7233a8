//! What every route of the gateway shares: the policy, the store, the
//! accounts, the metrics, the admin token and guard, the trusted proxies.

use std::sync::Arc;

use quota_core::Timestamp;
use quota_transport::enforce::PolicyHandle;

use crate::access_log::AccessLog;
use crate::admin::guard::AdminGuard;
use crate::backend::{GatewayAccounts, GatewayStore};
use crate::forwarded::TrustedProxies;
use crate::metrics::Metrics;

/// The time now, as the engine counts it.
pub(crate) fn now() -> Timestamp {
    quota_transport::enforce::system_clock()
}

/// What every route shares.
pub(crate) struct Shared {
    /// The policy in force (replaced on reload).
    pub(crate) policy: PolicyHandle,
    /// Limit counters.
    pub(crate) store: Arc<GatewayStore>,
    /// Accounts.
    pub(crate) accounts: Arc<GatewayAccounts>,
    /// Counters for `/metrics`.
    pub(crate) metrics: Arc<Metrics>,
    /// The admin tokens, if the admin API is on.
    pub(crate) admin_tokens: Option<crate::admin::tokens::AdminTokens>,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub(crate) trusted: Arc<TrustedProxies>,
    /// Failed admin authentications per client address.
    pub(crate) admin_guard: AdminGuard,
    /// Where each request's line goes, if anywhere.
    pub(crate) access_log: Option<AccessLog>,
    /// What this node saw lately, for the operator's page.
    pub(crate) activity: Arc<crate::activity::Activity>,
    /// The operator's page's sign-ins.
    pub(crate) ui_sessions: crate::ui::session::Sessions,
}
