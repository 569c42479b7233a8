//! [`EnforceLayer`]: the configuration, and the tower `Layer`.

use core::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use quota_core::account::Accounts;
use quota_core::admission::{AdmissionConfig, RefundOn};
use quota_core::path::PathAction;
use quota_core::{Store, Timestamp};
use tower_layer::Layer;

use super::observe::Observer;
use super::policy::PolicyHandle;
use super::service::Enforce;
use crate::identity::{KeyExtractor, KeyHeaders};

/// A clock: the time of each decision.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock as a [`Timestamp`]: the default [`Clock`].
pub fn system_clock() -> Timestamp {
    Timestamp::from_unix_duration(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// Applies [`Enforce`] to a service: rate limits, credit and upload
/// prechecks in front of it. See the [module docs](super) for the checks.
///
/// Built with the policy, the store and the account source; every other
/// setting has a default and a builder method.
pub struct EnforceLayer<S, A> {
    pub(crate) config: Arc<Config<S, A>>,
}

pub(crate) struct Config<S, A> {
    pub(crate) policy: PolicyHandle,
    pub(crate) store: Arc<S>,
    pub(crate) accounts: Arc<A>,
    /// The prefix, path action, unmetered endpoints, shadow mode and IETF
    /// fields: what the core's admission runs under.
    pub(crate) admission: AdmissionConfig,
    pub(crate) key_headers: KeyHeaders,
    pub(crate) problem_json: bool,
    /// Who a request is counted against; `None`: the API key headers.
    pub(crate) key: Option<Arc<dyn KeyExtractor>>,
    /// Who a request without any API key header is counted against;
    /// `None`: nobody (401).
    pub(crate) anonymous: Option<Arc<dyn KeyExtractor>>,
    pub(crate) clock: Clock,
    pub(crate) observer: Option<Arc<dyn Observer>>,
}

impl<S: Store, A: Accounts> Config<S, A> {
    /// Whether the store and the account source both answer at once
    /// ([`Store::answers_at_once`], [`Accounts::answers_at_once`]): then
    /// the checks wait for nothing.
    pub(crate) fn answers_at_once(&self) -> bool {
        self.store.answers_at_once() && self.accounts.answers_at_once()
    }
}

impl<S, A> Clone for Config<S, A> {
    fn clone(&self) -> Self {
        Config {
            policy: self.policy.clone(),
            store: Arc::clone(&self.store),
            accounts: Arc::clone(&self.accounts),
            admission: self.admission.clone(),
            key_headers: self.key_headers,
            problem_json: self.problem_json,
            key: self.key.clone(),
            anonymous: self.anonymous.clone(),
            clock: Arc::clone(&self.clock),
            observer: self.observer.clone(),
        }
    }
}

impl<S, A> Clone for EnforceLayer<S, A> {
    fn clone(&self) -> Self {
        EnforceLayer {
            config: Arc::clone(&self.config),
        }
    }
}

impl<S, A> fmt::Debug for EnforceLayer<S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("EnforceLayer")
            .field("admission", &c.admission)
            .field("key_headers", &c.key_headers)
            .field("problem_json", &c.problem_json)
            .field("observer", &c.observer.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Store, A: Accounts> EnforceLayer<S, A> {
    /// A layer enforcing `policy` (a [`Policy`](quota_core::policy::Policy),
    /// an `Arc` of one, or a [`PolicyHandle`] to reload it later) with state
    /// in `store` and accounts from `accounts` (both shared: the gateway's
    /// admin API and `limits` endpoint use them too).
    ///
    /// Defaults: prefix `/v1/`, keys from either header
    /// ([`KeyHeaders::BOTH`]), the seed's headers only, enforcing (not
    /// shadow), the system clock, no observer, paths that are not
    /// canonical refused ([`PathAction::Refuse`]).
    pub fn new(policy: impl Into<PolicyHandle>, store: Arc<S>, accounts: Arc<A>) -> Self {
        EnforceLayer {
            config: Arc::new(Config {
                policy: policy.into(),
                store,
                accounts,
                admission: AdmissionConfig::default(),
                key_headers: KeyHeaders::BOTH,
                problem_json: false,
                key: None,
                anonymous: None,
                clock: Arc::new(system_clock),
                observer: None,
            }),
        }
    }
}

impl<S, A> EnforceLayer<S, A> {
    fn edit(mut self, f: impl FnOnce(&mut Config<S, A>)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    fn edit_admission(self, f: impl FnOnce(AdmissionConfig) -> AdmissionConfig) -> Self {
        self.edit(|c| c.admission = f(core::mem::take(&mut c.admission)))
    }

    /// The path prefix before endpoint names (default `/v1/`): with it,
    /// `/v1/prompt/enhance` is endpoint `prompt/enhance`. A path outside
    /// the prefix is 404. A missing trailing `/` is added.
    #[must_use]
    pub fn prefix(self, prefix: &str) -> Self {
        self.edit_admission(|a| a.prefix(prefix))
    }

    /// What to do with a request path that is not canonical (see
    /// [`quota_core::path`]): refuse it with 400 (the default), or resolve
    /// it and hand the service the canonical path in the request's URI.
    /// Either way the path the endpoint is chosen from, the one charged and
    /// the one the service sees are the same.
    #[must_use]
    pub fn path_action(self, action: PathAction) -> Self {
        self.edit_admission(|a| a.path_action(action))
    }

    /// Which headers may carry the API key (default: both).
    #[must_use]
    pub fn key_headers(self, accepted: KeyHeaders) -> Self {
        self.edit(|c| c.key_headers = accepted)
    }

    /// Who each request is counted against, instead of the API key headers
    /// (the default). The [`KeyExtractor`] names an API key (resolved
    /// through the accounts, as by default) or an identity already known
    /// (counted as that account on that tier, the accounts not asked):
    /// [`ClientIp`](crate::identity::ClientIp) limits callers by their
    /// address, and a closure `Fn(&RequestView<'_>) -> Option<Caller>` by
    /// anything in the request's headers or extensions (`None` is 401).
    /// See [`identity::extract`](crate::identity::extract).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use http::HeaderName;
    /// use quota_core::{account::{Identity, MemoryAccounts}, policy::Policy, MemoryStore};
    /// use quota_transport::enforce::EnforceLayer;
    /// use quota_transport::identity::{Caller, ClientIp, RequestView};
    ///
    /// let layer = || EnforceLayer::new(Policy::seed(), Arc::new(MemoryStore::new()), Arc::new(MemoryAccounts::new()));
    /// // By client address (IPv6 by /64), every caller on the Basic tier.
    /// let by_ip = layer().key(ClientIp::new("basic"));
    /// // By a header the service trusts (set by a proxy in front of it, say).
    /// let by_tenant = layer().key(|request: &RequestView<'_>| {
    ///     let tenant = request.header(&HeaderName::from_static("x-tenant"))?;
    ///     Some(Caller::Identity(Identity { account: format!("tenant:{tenant}"), tier: "premium".into() }))
    /// });
    /// ```
    #[must_use]
    pub fn key(self, extractor: impl KeyExtractor) -> Self {
        let extractor: Arc<dyn KeyExtractor> = Arc::new(extractor);
        self.edit(|c| c.key = Some(extractor))
    }

    /// Who a request that carries no API key header at all is counted
    /// against, instead of answering 401 (with the default key headers; a
    /// [`key`](Self::key) extractor decides that itself). A malformed,
    /// conflicting or unknown key is still 401: only a missing one falls
    /// back here. The extractor may answer
    /// [`ExtractError::NoCredentials`](crate::identity::ExtractError::NoCredentials)
    /// to leave the request's 401 as it was (a policy without an
    /// anonymous tier, say). The gateway counts such callers by their
    /// address on the policy's anonymous tier.
    #[must_use]
    pub fn anonymous(self, extractor: impl KeyExtractor) -> Self {
        let extractor: Arc<dyn KeyExtractor> = Arc::new(extractor);
        self.edit(|c| c.anonymous = Some(extractor))
    }

    /// Also send the IETF draft's `RateLimit-Policy` and `RateLimit` fields.
    #[must_use]
    pub fn ietf_headers(self, on: bool) -> Self {
        self.edit_admission(|a| a.ietf_headers(on))
    }

    /// Answer a 429 with the IETF `application/problem+json` body instead
    /// of the seed's `{"message":"Too Many Attempts."}`.
    #[must_use]
    pub fn problem_json(self, on: bool) -> Self {
        self.edit(|c| c.problem_json = on)
    }

    /// Shadow mode: decide and count every request, send the rate-limit
    /// headers and tell the observer, but refuse nothing. Requests that
    /// would be refused reach the service (observed as `Refused` with
    /// `shadow: true`); a would-be 429 still carries `X-RateLimit-Type` and
    /// `Retry-After` on the service's response. Credit is not charged and
    /// bodies are not limited.
    #[must_use]
    pub fn shadow(self, on: bool) -> Self {
        self.edit_admission(|a| a.shadow(on))
    }

    /// When an admitted request's units and credit are given back
    /// (default [`RefundOn::Unreachable`]): when the inner service marks
    /// its response with an [`UpstreamFailure`](super::UpstreamFailure)
    /// (its upstream could not be reached or timed out), also when it
    /// answers a 5xx ([`RefundOn::ServerErrors`]), or never. A refunded
    /// answer carries no rate-limit headers. See `docs/contract.md`.
    #[must_use]
    pub fn refund_on(self, on: RefundOn) -> Self {
        self.edit_admission(|a| a.refund_on(on))
    }

    /// The clock decisions are taken at (default [`system_clock`]); tests
    /// pass a virtual one.
    #[must_use]
    pub fn clock(self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        self.edit(|c| c.clock = Arc::new(clock))
    }

    /// A hook called with every decision's labels (for metrics).
    #[must_use]
    pub fn observer(self, observer: impl Observer) -> Self {
        self.edit(|c| c.observer = Some(Arc::new(observer)))
    }

    /// Endpoint names under the prefix that need a valid key but are not
    /// metered, charged or limited (a gateway's own `limits` endpoint). The
    /// resolved identity is still in the request's extensions.
    #[must_use]
    pub fn unmetered<I, T>(self, names: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.edit_admission(|a| a.unmetered(names))
    }

    /// The policy slot, to reload the policy while serving.
    pub fn policy(&self) -> &PolicyHandle {
        &self.config.policy
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.config.store
    }

    /// The account source.
    pub fn accounts(&self) -> &Arc<A> {
        &self.config.accounts
    }
}

impl<Inner, S, A> Layer<Inner> for EnforceLayer<S, A> {
    type Service = Enforce<Inner, S, A>;

    fn layer(&self, inner: Inner) -> Self::Service {
        Enforce::new(inner, self.clone())
    }
}
