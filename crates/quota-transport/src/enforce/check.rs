//! [`Enforce`](super::Enforce)'s checks of one request: the core's
//! admission, driven; then the request as the inner service gets it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use http_body::Body;
use quota_core::account::Accounts;
use quota_core::admission::{UpstreamResult, Verdict};
use quota_core::policy::Money;
use quota_core::upload::UploadRules;
use quota_core::Store;

use super::answer::refusal_response;
use super::body::RequestBody;
use super::drive::{drive, drive_at_once, refund, Driven};
use super::guard::guard;
use super::layer::Config;
use super::policy::Loaded;
use super::refund::{may_refund, Settle};
use crate::response::{json_message, RateHeaders};
use crate::upload::Verdict as UploadVerdict;

/// What the checks decided.
#[allow(clippy::large_enum_variant)] // `Proceed` is the common case; boxing it would allocate per request
pub(crate) enum Checked<B> {
    /// Call the service with this request, then add what `pass` says.
    Proceed { req: Request<B>, pass: Pass },
    /// Answer this instead; the service is never called.
    Refuse(Response<Bytes>),
    /// Give the charge back, then answer this; the service is never called.
    RefundThenRefuse(Refund, Response<Bytes>),
}

/// A give-back running.
pub(crate) type BoxRefund = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Gives a charge back, if the upload is refused after the service ran.
pub(crate) type Refund = Box<dyn FnOnce() -> BoxRefund + Send>;

/// Gives back what the request took if the upstream's result calls for it
/// (the layer's `RefundOn`): `None` when it does not.
pub(crate) type Settler = Box<dyn FnOnce(UpstreamResult) -> Option<BoxRefund> + Send>;

/// What an admitted request carries to its response.
#[derive(Default)]
pub(crate) struct Pass {
    /// What the decision reports, rendered for the response's headers
    /// before the report went to the service (none for an unmetered
    /// endpoint, or a refusal shadow mode lets through).
    pub(crate) headers: Option<RateHeaders>,
    /// Whether the guarded body broke a rule, read after the service ran.
    pub(crate) verdict: Option<UploadVerdict>,
    /// The charge to give back when it did.
    pub(crate) refund: Option<Refund>,
    /// What the request took, to give back when the upstream failed.
    pub(crate) settle: Option<Settler>,
}

/// Runs every check on `req` (see the module docs of `enforce` for the order).
///
/// The future is boxed per request, so its size matters: the request is
/// split here and its parts captured once (an `async fn` would keep a second
/// copy of its argument).
pub(crate) fn check<S, A, B>(
    config: Arc<Config<S, A>>,
    req: Request<B>,
) -> impl Future<Output = Checked<RequestBody<B>>> + Send
where
    S: Store + 'static,
    A: Accounts + 'static,
    B: Body + Send,
{
    let (parts, body) = req.into_parts();
    async move {
        let loaded = config.policy.load_full();
        let driven = drive(
            &config,
            &loaded,
            parts.uri.path(),
            &parts.headers,
            Some(&parts.extensions),
        )
        .await;
        checked(&config, loaded, parts, body, driven)
    }
}

/// [`check`], for a store and an account source that answer at once: run
/// in place, with no future (see [`drive_at_once`]).
pub(crate) fn check_at_once<S, A, B>(
    config: &Arc<Config<S, A>>,
    req: Request<B>,
) -> Checked<RequestBody<B>>
where
    S: Store + 'static,
    A: Accounts + 'static,
    B: Body + Send,
{
    let (parts, body) = req.into_parts();
    let loaded = config.policy.load_full();
    let driven = drive_at_once(
        config,
        &loaded,
        parts.uri.path(),
        &parts.headers,
        Some(&parts.extensions),
    );
    checked(config, loaded, parts, body, driven)
}

/// What the checks decided, from the admission's end: the request as the
/// service gets it (its canonical path, the identity and the report in its
/// extensions, its body guarded), and what its answer needs.
fn checked<S, A, B>(
    config: &Arc<Config<S, A>>,
    loaded: Arc<Loaded>,
    mut parts: Parts,
    body: B,
    mut driven: Driven,
) -> Checked<RequestBody<B>>
where
    S: Store + 'static,
    A: Accounts + 'static,
    B: Body + Send,
{
    // Read in place: the verdict is large, and only its report moves on.
    let identity = driven.identity.take();
    let admit = match &mut driven.verdict {
        Verdict::Admit(admit) => admit,
        Verdict::Refuse(refusal) => {
            let res = refusal_response(config, &refusal.reason, refusal.report.as_ref());
            return Checked::Refuse(res);
        }
    };
    // Only a charged request needs its account again, to give back.
    let refund_of = |price: Money| -> Option<Refund> {
        let accounts = Arc::clone(&config.accounts);
        let account = identity.as_ref()?.account.clone();
        Some(Box::new(move || {
            Box::pin(async move { refund(&*accounts, &account, price).await })
        }))
    };
    if let Some(path) = &admit.path {
        // The service sees the path that was checked and charged.
        match with_path(&parts.uri, path) {
            Ok(uri) => parts.uri = uri,
            Err(res) => {
                return match admit.charged.and_then(refund_of) {
                    Some(give_back) => Checked::RefundThenRefuse(give_back, res),
                    None => Checked::Refuse(res),
                };
            }
        }
    }
    let refund = admit.charged.and_then(refund_of);
    let taken = admit.take();
    let endpoint = parts
        .uri
        .path()
        .get(config.admission.prefix_str().len()..)
        .unwrap_or_default();
    let settle = match &identity {
        Some(who) if may_refund(config.admission.refunds(), &taken) => {
            let settle = Settle {
                config: Arc::clone(config),
                loaded: Arc::clone(&loaded),
                who: who.clone(),
                endpoint: endpoint.into(),
                taken,
            };
            Some(Box::new(move |result| {
                let reason = settle.reason(result)?;
                Some(Box::pin(settle.give_back(reason)) as BoxRefund)
            }) as Settler)
        }
        _ => None,
    };
    if let Some(identity) = identity {
        parts.extensions.insert(identity);
    }
    // The headers are rendered now, so the report itself goes to the
    // service (no copy of it is kept).
    let headers = admit.report.take().map(|report| {
        let headers = RateHeaders::new(&report);
        parts.extensions.insert(report);
        headers
    });
    let rules: Option<Arc<UploadRules>> = admit.guard_body.then(|| Arc::clone(&loaded.uploads));
    let (body, verdict) = guard(body, &parts.headers, endpoint, rules);
    let pass = Pass {
        headers,
        verdict,
        refund,
        settle,
    };
    Checked::Proceed {
        req: Request::from_parts(parts, body),
        pass,
    }
}

/// `uri` with its path replaced by `path` (the query kept).
#[allow(clippy::result_large_err)] // the error is the response itself, answered once
fn with_path(uri: &Uri, path: &str) -> Result<Uri, Response<Bytes>> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        PathAndQuery::try_from(pq)
            .map_err(|_| json_message(StatusCode::BAD_REQUEST, "invalid request path"))?,
    );
    Uri::from_parts(parts)
        .map_err(|_| json_message(StatusCode::BAD_REQUEST, "invalid request path"))
}
