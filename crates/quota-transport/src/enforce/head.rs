//! [`EnforceLayer::check_head`]: the same checks for a server that answers
//! requests without `tower` (the `quota` gateway's own HTTP/1.1 path).

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Extensions, Response};
use quota_core::account::{Accounts, Identity};
use std::sync::Arc;

use quota_core::admission::{Admit, RefundReason, Taken, UpstreamResult, Verdict};
use quota_core::{RateReport, Store};

use super::answer::refusal_response;
use super::drive::{drive, drive_caller, Body, Driven};
use super::layer::EnforceLayer;
use super::policy::Loaded;
use super::refund::{give_back, may_refund};
use crate::fields::HeaderFields;
use crate::identity::extract::Found;
use crate::identity::Caller;
use crate::response::write_rate_headers;

/// What [`EnforceLayer::check_head`] decided.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // `Admitted` is the common case; boxing it would allocate per request
pub enum HeadCheck {
    /// Serve the request, and add the admission's headers to the answer.
    Admitted(Admitted),
    /// Answer this instead (400, 401, 402, 404, 413, 429, 503, JSON body).
    Refused(Response<Bytes>),
}

/// An admitted request: who made it and the headers its answer carries.
///
/// In shadow mode a refused request is admitted with no headers at all,
/// as [`Enforce`](super::Enforce) does.
#[derive(Debug, Default)]
pub struct Admitted {
    identity: Option<Identity>,
    report: Option<RateReport>,
    path: Option<Box<str>>,
    /// What the request took, with the policy it was admitted under, when
    /// the layer may give it back ([`EnforceLayer::settle`]).
    taken: Option<(Taken, Arc<Loaded>)>,
}

impl Admitted {
    /// The caller (none for an unmetered endpoint reached without a key
    /// check, or in shadow mode before the key resolved).
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The canonical path (see [`quota_core::path`]) when it is not the
    /// path that was checked: the request was checked and charged under
    /// this one, so serve or forward this one (with the query as it was).
    /// `None` when the path checked was canonical already.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// What the rate-limit decision reports (none for an unmetered
    /// endpoint, or a refusal shadow mode lets through).
    pub fn report(&self) -> Option<&RateReport> {
        self.report.as_ref()
    }

    /// Sets the admission's headers in `headers`, replacing any of the
    /// same names: what [`Enforce`](super::Enforce) does to the inner
    /// service's response.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if let Some(report) = &self.report {
            write_rate_headers(report, headers);
        }
    }

    /// The same headers as `name: value` lines of an HTTP/1.1 head, each
    /// ended by CRLF, appended to `out`.
    ///
    /// ```
    /// let mut out = Vec::new();
    /// quota_transport::enforce::Admitted::default().encode_headers(&mut out);
    /// assert!(out.is_empty()); // nothing decided, nothing to say
    /// ```
    pub fn encode_headers(&self, out: &mut Vec<u8>) {
        if let Some(report) = &self.report {
            report.encode(out);
        }
    }

    /// Whether the admission sets a header named `name` (any case): a
    /// response header of that name is replaced by the admission's.
    pub fn sets(&self, name: &[u8]) -> bool {
        self.report.as_ref().is_some_and(|r| r.sets(name))
    }
}

/// What [`EnforceLayer::check_caller`] decided: a [`HeadCheck`]'s answer,
/// with a refusal's rate-limit report kept for a front end that reports
/// limits in its own terms.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // `Admitted` is the common case; boxing it would allocate per request
pub enum CallerCheck {
    /// Admitted: the caller, the report and the headers of the answer.
    Admitted(Admitted),
    /// Refused.
    Refused {
        /// The answer the layer would send (status, headers, JSON body).
        response: Response<Bytes>,
        /// The rate-limit report of a 429 (which limit refused, and when
        /// it has room again); `None` for the other refusals.
        report: Option<RateReport>,
    },
}

impl<S, A> EnforceLayer<S, A>
where
    S: Store + 'static,
    A: Accounts + 'static,
{
    /// Runs the layer's checks on a request for `path` (the target's path
    /// as the client sent it, without the query; it is made canonical
    /// first, see [`Admitted::path`]) that has **no body**, with the same configuration,
    /// order, answers and observations as [`Enforce`](super::Enforce).
    ///
    /// `headers` are the request's fields: a header map, or the name and
    /// value bytes of a head the server parsed itself (see
    /// [`HeaderFields`]); the checks read `X-API-Key`, `Authorization`,
    /// `Content-Length` and `Content-Type`. A request with a body goes
    /// through [`Enforce`](super::Enforce), whose upload rules watch the
    /// body while it streams.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use quota_core::{MemoryStore, policy::Policy, account::MemoryAccounts};
    /// # use quota_transport::enforce::{EnforceLayer, HeadCheck};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let accounts = Arc::new(MemoryAccounts::new());
    /// let layer = EnforceLayer::new(Policy::seed(), Arc::new(MemoryStore::new()), accounts);
    /// let headers = http::HeaderMap::new(); // no key
    /// match layer.check_head("/v1/txt2img", &headers).await {
    ///     HeadCheck::Refused(res) => assert_eq!(res.status(), 401),
    ///     HeadCheck::Admitted(_) => unreachable!(),
    /// }
    /// # });
    /// ```
    pub async fn check_head<H>(&self, path: &str, headers: &H) -> HeadCheck
    where
        H: HeaderFields + Sync + ?Sized,
    {
        self.check_head_with(path, headers, None).await
    }

    /// [`check_head`](Self::check_head), with `extensions` for the layer's
    /// key extractors to read (the client's address, say, for
    /// [`anonymous`](Self::anonymous) callers); `None` as `check_head`.
    pub async fn check_head_with<H>(
        &self,
        path: &str,
        headers: &H,
        extensions: Option<&Extensions>,
    ) -> HeadCheck
    where
        H: HeaderFields + Sync + ?Sized,
    {
        let loaded = self.config.policy.load_full();
        let driven = drive(&self.config, &loaded, path, headers, extensions).await;
        self.head_check(driven, loaded)
    }

    /// Runs the layer's checks on a request that is not an HTTP head: for
    /// `path` (as [`check_head`](Self::check_head) takes it), from `caller`
    /// (an API key to resolve, or an identity known already), using `cost`
    /// units of each limit, with no body. The same configuration, order,
    /// answers and observations as [`check_head`](Self::check_head): a
    /// front end that speaks another protocol (Envoy's rate limit service)
    /// turns the answer into its own.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use quota_core::{MemoryStore, policy::Policy, account::{Identity, MemoryAccounts}};
    /// # use quota_transport::enforce::{CallerCheck, EnforceLayer};
    /// # use quota_transport::identity::Caller;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let accounts = Arc::new(MemoryAccounts::new());
    /// let layer = EnforceLayer::new(Policy::seed(), Arc::new(MemoryStore::new()), accounts);
    /// let who = Caller::Identity(Identity { account: "acct-1".into(), tier: "basic".into() });
    /// match layer.check_caller("/v1/txt2img", who, 2).await {
    ///     CallerCheck::Admitted(ok) => assert_eq!(ok.report().unwrap().minute().unwrap().remaining, 1),
    ///     CallerCheck::Refused { .. } => unreachable!(),
    /// }
    /// # });
    /// ```
    pub async fn check_caller(&self, path: &str, caller: Caller, cost: u64) -> CallerCheck {
        let found = match caller {
            Caller::ApiKey(key) => Found::ApiKey(key.into()),
            Caller::Identity(who) => Found::Identity(who),
        };
        self.check_found(path, found, cost).await
    }

    /// [`check_caller`](Self::check_caller) for a caller known by its API
    /// key, borrowed: the same checks, with nothing copied.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use quota_core::{MemoryStore, policy::Policy, account::MemoryAccounts};
    /// # use quota_transport::enforce::{CallerCheck, EnforceLayer};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let accounts = Arc::new(MemoryAccounts::new());
    /// let layer = EnforceLayer::new(Policy::seed(), Arc::new(MemoryStore::new()), accounts);
    /// match layer.check_api_key("/v1/txt2img", "no-such-key", 1).await {
    ///     CallerCheck::Refused { response, .. } => assert_eq!(response.status(), 401),
    ///     CallerCheck::Admitted(_) => unreachable!(),
    /// }
    /// # });
    /// ```
    pub async fn check_api_key(&self, path: &str, api_key: &str, cost: u64) -> CallerCheck {
        self.check_found(path, Found::ApiKey(api_key.into()), cost)
            .await
    }

    async fn check_found(&self, path: &str, found: Found<'_>, cost: u64) -> CallerCheck {
        let loaded = self.config.policy.load_full();
        let Driven { verdict, identity } =
            drive_caller(&self.config, &loaded, path, Ok(found), Body::NONE, cost).await;
        match verdict {
            // Kept to give back whatever the refund setting: a front end
            // may withdraw it ([`withdraw`](Self::withdraw)).
            Verdict::Admit(admit) => {
                CallerCheck::Admitted(self.admitted(identity, admit, loaded, true))
            }
            Verdict::Refuse(refusal) => CallerCheck::Refused {
                response: refusal_response(&self.config, &refusal.reason, refusal.report.as_ref()),
                report: refusal.report,
            },
        }
    }

    /// Gives back everything `admitted` took (its units on every limit,
    /// its credit), whatever the layer's [`RefundOn`](quota_core::admission::RefundOn):
    /// for a front end that decides several checks of one request all or
    /// nothing, when a later check is refused. `path` is the path it was
    /// checked with. Returns whether anything was given back; the
    /// admission's headers are dropped. Call it once.
    pub async fn withdraw(&self, admitted: &mut Admitted, path: &str) -> bool {
        self.give_back_taken(admitted, path, RefundReason::Withdrawn)
            .await
    }

    /// Gives back what `admitted` took, for `reason`, and drops its
    /// headers; whether anything was kept to give back.
    async fn give_back_taken(
        &self,
        admitted: &mut Admitted,
        path: &str,
        reason: RefundReason,
    ) -> bool {
        let (Some(who), Some((taken, loaded))) = (&admitted.identity, admitted.taken.take()) else {
            return false;
        };
        let path = admitted.path.as_deref().unwrap_or(path);
        let endpoint = path
            .get(self.config.admission.prefix_str().len()..)
            .unwrap_or_default();
        give_back(&self.config, &loaded, who, endpoint, &taken, reason).await;
        admitted.report = None;
        true
    }

    /// An admitted request's [`Admitted`]: what it took is kept for a
    /// refund when one may come (`always`: whatever the refund setting).
    fn admitted(
        &self,
        identity: Option<Identity>,
        mut admit: Admit,
        loaded: Arc<Loaded>,
        always: bool,
    ) -> Admitted {
        let taken = admit.take();
        let keep = identity.is_some()
            && !taken.is_empty()
            && (always || may_refund(self.config.admission.refunds(), &taken));
        Admitted {
            identity,
            report: admit.report,
            path: admit.path,
            taken: keep.then_some((taken, loaded)),
        }
    }

    fn head_check(&self, Driven { verdict, identity }: Driven, loaded: Arc<Loaded>) -> HeadCheck {
        match verdict {
            Verdict::Admit(admit) => {
                HeadCheck::Admitted(self.admitted(identity, admit, loaded, false))
            }
            Verdict::Refuse(refusal) => HeadCheck::Refused(refusal_response(
                &self.config,
                &refusal.reason,
                refusal.report.as_ref(),
            )),
        }
    }
}

impl<S, A> EnforceLayer<S, A>
where
    S: Store + 'static,
    A: Accounts + 'static,
{
    /// Tells the layer how the upstream answered a request
    /// [`check_head`](EnforceLayer::check_head) admitted (`path` is the
    /// path it was checked with): when the layer's
    /// [`RefundOn`](quota_core::admission::RefundOn) calls for it, what the
    /// request took (its units on every limit, its credit) is given back
    /// now, the admission's headers are dropped (the answer then carries
    /// none: the budget they described was given back), and the reason is
    /// returned. What [`Enforce`](super::Enforce) does with a response
    /// marked [`UpstreamFailure`](super::UpstreamFailure), or a 5xx. Call
    /// it once, before answering.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use quota_core::{MemoryStore, policy::{Money, Policy}, account::{AccountAdmin, MemoryAccounts, NewAccount}, Timestamp};
    /// # use quota_transport::enforce::{EnforceLayer, HeadCheck, UpstreamResult};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let accounts = MemoryAccounts::new();
    /// let new = NewAccount { id: "acct-1".into(), api_key: "k-1".into(), tier: "basic".into(), credit: Money::ZERO };
    /// accounts.create(new, Timestamp::EPOCH).await.unwrap();
    /// let layer = EnforceLayer::new(Policy::seed(), Arc::new(MemoryStore::new()), Arc::new(accounts));
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-api-key", "k-1".parse().unwrap());
    /// let HeadCheck::Admitted(mut admitted) = layer.check_head("/v1/txt2img", &headers).await else { unreachable!() };
    /// assert_eq!(admitted.report().unwrap().minute().unwrap().remaining, 2);
    /// // The upstream could not be reached: the unit is given back.
    /// let reason = layer.settle(&mut admitted, "/v1/txt2img", UpstreamResult::Unreachable).await;
    /// assert_eq!(reason.unwrap().as_str(), "unreachable");
    /// assert!(admitted.report().is_none()); // no headers on the 502
    /// let HeadCheck::Admitted(again) = layer.check_head("/v1/txt2img", &headers).await else { unreachable!() };
    /// assert_eq!(again.report().unwrap().minute().unwrap().remaining, 2);
    /// # });
    /// ```
    pub async fn settle(
        &self,
        admitted: &mut Admitted,
        path: &str,
        result: UpstreamResult,
    ) -> Option<RefundReason> {
        let (taken, _) = admitted.taken.as_ref()?;
        let reason = taken.refund_for(self.config.admission.refunds(), result)?;
        self.give_back_taken(admitted, path, reason)
            .await
            .then_some(reason)
    }
}
