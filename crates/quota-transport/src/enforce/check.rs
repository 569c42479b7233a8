//! The checks of one request, in order, before the inner service sees it.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use http_body::Body;
use quota_core::account::{Accounts, Charge, Identity};
use quota_core::path::canonicalize;
use quota_core::policy::{Money, Plan, PlanError, Request as PlanRequest};
use quota_core::upload::UploadRules;
use quota_core::{Decision, Outcomes, RateReport, Store, StoreError};

use super::body::RequestBody;
use super::guard::guard;
use super::layer::Config;
use super::observe::{Observation, Outcome};
use super::policy::Loaded;
use crate::fields::HeaderFields;
use crate::identity::api_key;
use crate::response::{
    json_message, server_error, too_many_attempts, RequestId, TEMPORARILY_UNAVAILABLE,
};
use crate::upload::{precheck, Verdict};

/// What the checks decided.
#[allow(clippy::large_enum_variant)] // `Proceed` is the common case; boxing it would allocate per request
pub(crate) enum Checked<B> {
    /// Call the service with this request, then add what `pass` says.
    Proceed { req: Request<B>, pass: Pass },
    /// Answer this instead; the service is never called.
    Refuse(Response<Bytes>),
}

/// Gives a charge back, if the upload is refused after the service ran.
pub(crate) type Refund = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// What an admitted request carries to its response.
#[derive(Default)]
pub(crate) struct Pass {
    /// What the decision reports, for the response's headers (none for an
    /// unmetered endpoint, or a refusal shadow mode lets through).
    pub(crate) headers: Option<RateReport>,
    /// The rules the body is checked against while it streams.
    upload: Option<Arc<UploadRules>>,
    /// Whether the guarded body broke a rule, read after the service ran.
    pub(crate) verdict: Option<Verdict>,
    /// The charge to give back when it did.
    pub(crate) refund: Option<Refund>,
}

/// Labels gathered on the way, for the observer.
#[derive(Default)]
struct Trace<'p> {
    endpoint: Option<&'p str>,
    limit: Option<Cow<'static, str>>,
}

/// An admitted request: what goes to the response, what to the extensions.
pub(crate) type Admitted = (Pass, Option<RateReport>);

/// Runs every check on `req` (see the module docs of `enforce` for the order).
///
/// The future is boxed per request, so its size matters: the request is
/// split here and its parts captured once (an `async fn` would keep a second
/// copy of its argument), and every `await` below holds only small values.
pub(crate) fn check<S, A, B>(
    config: Arc<Config<S, A>>,
    req: Request<B>,
) -> impl Future<Output = Checked<RequestBody<B>>> + Send
where
    S: Store,
    A: Accounts + 'static,
    B: Body + Send,
{
    let (mut parts, body) = req.into_parts();
    async move {
        let decided = decide(&config, parts.uri.path(), &parts.headers, true).await;
        let (mut pass, summary) = match decided.result {
            Ok(admitted) => admitted,
            Err(res) => return Checked::Refuse(res),
        };
        if let Some(path) = decided.path {
            // The service sees the path that was checked and charged.
            match with_path(&parts.uri, &path) {
                Ok(uri) => parts.uri = uri,
                Err(res) => {
                    if let Some(refund) = pass.refund.take() {
                        refund().await;
                    }
                    return Checked::Refuse(res);
                }
            }
        }
        if let Some(identity) = decided.identity {
            parts.extensions.insert(identity);
        }
        if let Some(summary) = summary {
            parts.extensions.insert(summary);
        }
        let endpoint = parts
            .uri
            .path()
            .get(config.prefix.len()..)
            .unwrap_or_default();
        let (body, verdict) = guard(body, &parts.headers, endpoint, pass.upload.take());
        pass.verdict = verdict;
        Checked::Proceed {
            req: Request::from_parts(parts, body),
            pass,
        }
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

/// What [`decide`] found.
pub(crate) struct Decided {
    /// Admitted, or the answer instead.
    pub(crate) result: Result<Admitted, Response<Bytes>>,
    /// The caller, once resolved.
    pub(crate) identity: Option<Identity>,
    /// The canonical path, when it is not the path asked for: the request
    /// must be served under this one.
    pub(crate) path: Option<Box<str>>,
}

/// The request's path as the checks use it: canonical (see
/// [`quota_core::path`]), or the 400 that refuses it.
#[allow(clippy::result_large_err)] // the error is the response itself, answered once
fn canonical_path<'p, S, A>(
    config: &Config<S, A>,
    path: &'p str,
) -> Result<Cow<'p, str>, Response<Bytes>> {
    let canonical = canonicalize(path, config.path_action).map_err(|e| {
        json_message(
            StatusCode::BAD_REQUEST,
            &format!("invalid request path: {e}"),
        )
    })?;
    // Resolving `..` may leave the prefix: `/v1/../admin` is not an endpoint.
    let prefix = &*config.prefix;
    if path.starts_with(prefix) && !canonical.starts_with(prefix) {
        return Err(json_message(
            StatusCode::BAD_REQUEST,
            &format!("invalid request path: it climbs above {prefix:?}"),
        ));
    }
    Ok(canonical)
}

/// The checks of a request for `path` with `headers`, observed; in shadow
/// mode a refusal becomes an admission without headers (but a path that is
/// refused stays refused: serving it would serve what was not checked).
/// The decision is summarised for the request's extensions only when
/// `summarise`.
pub(crate) async fn decide<S, A, H>(
    config: &Config<S, A>,
    path: &str,
    headers: &H,
    summarise: bool,
) -> Decided
where
    S: Store,
    A: Accounts + 'static,
    H: HeaderFields + Sync + ?Sized,
{
    let started = config.observer.as_ref().map(|_| Instant::now());
    let loaded = config.policy.load_full();
    let mut identity = None;
    let mut trace = Trace::default();
    // 0. The path, made canonical once: everything below uses only this.
    let (result, canonical) = match canonical_path(config, path) {
        Ok(canonical) => {
            let result = run(
                config,
                &loaded,
                &canonical,
                headers,
                summarise,
                &mut identity,
                &mut trace,
            )
            .await;
            let owned = match canonical {
                Cow::Owned(p) => Some(p.into_boxed_str()),
                Cow::Borrowed(_) => None,
            };
            (result, Ok(owned))
        }
        Err(res) => (Err(res), Err(())),
    };
    if let (Some(observer), Some(started)) = (&config.observer, started) {
        let (outcome, status) = match &result {
            Ok((pass, _)) if pass.headers.as_ref().is_some_and(|r| !r.is_admitted()) => {
                (Outcome::Refused, StatusCode::TOO_MANY_REQUESTS)
            }
            Ok(_) => (Outcome::Admitted, StatusCode::OK),
            Err(res) if res.status().is_server_error() => (Outcome::Error, res.status()),
            Err(res) => (Outcome::Refused, res.status()),
        };
        observer.observe(&Observation {
            tier: identity.as_ref().map(|i: &Identity| i.tier.as_str()),
            endpoint: trace.endpoint,
            outcome,
            status,
            limit: trace.limit.as_deref(),
            latency: started.elapsed(),
            shadow: config.shadow,
        });
    }
    let Ok(path) = canonical else {
        return Decided {
            result,
            identity,
            path: None,
        };
    };
    let result = match result {
        Err(_) if config.shadow => Ok((Pass::default(), None)),
        other => other,
    };
    Decided {
        result,
        identity,
        path,
    }
}

/// The checks, then the refund of a charge when a later check refused.
async fn run<'p, S, A, H>(
    config: &'p Config<S, A>,
    loaded: &'p Loaded,
    path: &str,
    headers: &H,
    summarise: bool,
    identity: &mut Option<Identity>,
    trace: &mut Trace<'p>,
) -> Result<Admitted, Response<Bytes>>
where
    S: Store,
    A: Accounts + 'static,
    H: HeaderFields + Sync + ?Sized,
{
    let (refusal, charged) =
        match admit(config, loaded, path, headers, summarise, identity, trace).await {
            Ok(admitted) => return Ok(admitted),
            Err(refused) => refused,
        };
    if let (Some(price), Some(who)) = (charged, identity.as_ref()) {
        refund_to(&*config.accounts, &who.account, price).await;
    }
    Err(refusal)
}

/// The checks in order; a refusal carries the charge to give back, if any.
async fn admit<'p, S, A, H>(
    config: &'p Config<S, A>,
    loaded: &'p Loaded,
    path: &str,
    headers: &H,
    summarise: bool,
    identity: &mut Option<Identity>,
    trace: &mut Trace<'p>,
) -> Result<Admitted, (Response<Bytes>, Option<Money>)>
where
    S: Store,
    A: Accounts + 'static,
    H: HeaderFields + Sync + ?Sized,
{
    let policy = &*loaded.policy;
    // 1. Identity.
    let key = api_key(headers, config.key_headers)
        .map_err(|e| (unauthorized(config, &e.to_string()), None))?;
    let who = match config.accounts.resolve(key).await {
        Ok(Some(who)) => identity.insert(who),
        Ok(None) => return Err((unauthorized(config, "unknown API key"), None)),
        Err(e) => {
            return Err((
                unavailable(&format!("cannot resolve the API key: {e}")),
                None,
            ))
        }
    };

    // 2. Endpoint.
    let Some(name) = path.strip_prefix(&*config.prefix) else {
        let message = format!(
            "path {path:?} is not under the API prefix {:?}",
            &*config.prefix
        );
        return Err((json_message(StatusCode::NOT_FOUND, &message), None));
    };
    if let Some(exempt) = config.unmetered.iter().find(|u| ***u == *name) {
        trace.endpoint = Some(exempt);
        return Ok((Pass::default(), None));
    }
    let Some(endpoint) = policy.endpoint(name) else {
        return Err((
            json_message(StatusCode::NOT_FOUND, &format!("unknown endpoint {name:?}")),
            None,
        ));
    };
    trace.endpoint = Some(endpoint.path());

    // 3. Upload precheck: a declared length over the limit is refused unread.
    if !config.shadow {
        precheck(headers, name, &loaded.uploads).map_err(|e| (e.to_response::<Bytes>(), None))?;
    }

    // 4. Credit.
    let price = endpoint.price();
    let charged = if price > Money::ZERO && !config.shadow {
        match config.accounts.charge(&who.account, price).await {
            Ok(Charge::Charged { .. }) => Some(price),
            Ok(Charge::Insufficient { credit, price }) => {
                let message = format!(
                    "insufficient credit: {name} costs ${price}, the account has ${credit}"
                );
                return Err((json_message(StatusCode::PAYMENT_REQUIRED, &message), None));
            }
            Err(e) => {
                return Err((
                    unavailable(&format!("cannot charge the request: {e}")),
                    None,
                ))
            }
        }
    } else {
        None
    };

    // 5. Rate limits: all decided together; a refusal consumes nothing.
    let req = PlanRequest {
        account: &who.account,
        tier: &who.tier,
        endpoint: name,
        cost: 1,
    };
    let plan = policy.plan(&req).map_err(|e| (plan_error(&e), charged))?;
    let now = (config.clock)();
    let outcomes = config.store.decide(&plan, now).await;
    let rated = conclude(config, &plan, outcomes, summarise).map_err(|res| (res, charged))?;
    trace.limit = rated.report.refused_by().map(|l| l.name.clone());
    if let Some(refusal) = rated.refusal.filter(|_| !config.shadow) {
        return Err((refusal, charged));
    }
    let refund = charged.map(|price| -> Refund {
        let accounts = Arc::clone(&config.accounts);
        let account = who.account.clone();
        Box::new(move || Box::pin(async move { refund_to(&*accounts, &account, price).await }))
    });
    let pass = Pass {
        headers: Some(rated.report),
        upload: (!config.shadow).then(|| Arc::clone(&loaded.uploads)),
        verdict: None,
        refund,
    };
    Ok((pass, rated.summary))
}

/// A rate-limit decision, owned: nothing borrowed from the plan survives.
struct Rated {
    report: RateReport,
    summary: Option<RateReport>,
    /// The 429 when refused (built while the decision is at hand).
    refusal: Option<Response<Bytes>>,
}

/// Turns the store's answer into an owned decision, or a 503.
#[allow(clippy::result_large_err)] // the error is the response itself, answered once; boxing it gains nothing
fn conclude<S, A>(
    config: &Config<S, A>,
    plan: &Plan<'_>,
    outcomes: Result<Outcomes, StoreError>,
    summarise: bool,
) -> Result<Rated, Response<Bytes>> {
    let decision = match outcomes {
        Ok(outcomes) => Decision::from_outcomes(plan, &outcomes).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
    .map_err(|e| unavailable(&format!("cannot decide the request: {e}")))?;
    let report = RateReport::new(&decision).with_ietf(config.style.ietf_headers);
    Ok(Rated {
        summary: summarise.then(|| report.clone()),
        refusal: (!report.is_admitted())
            .then(|| too_many_attempts(&report, config.style.problem_json)),
        report,
    })
}

fn plan_error(e: &PlanError) -> Response<Bytes> {
    let status = match e {
        PlanError::UnknownEndpoint(_) => StatusCode::NOT_FOUND,
        PlanError::TooLong { .. } => StatusCode::BAD_REQUEST,
        // The account's tier is not in the policy: a configuration error,
        // told to the operator (the log) and not to the client.
        _ => {
            let id = RequestId::new();
            tracing::error!(request_id = %id, error = %e, "answering 500: cannot plan the request");
            return server_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the service cannot serve this request now; try again later",
                id,
            );
        }
    };
    json_message(status, &format!("cannot plan the request: {e}"))
}

fn unauthorized<S, A>(config: &Config<S, A>, message: &str) -> Response<Bytes> {
    let mut res = json_message(StatusCode::UNAUTHORIZED, message);
    if config.key_headers.accepts_bearer() {
        res.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

/// The 503 when the store or the accounts cannot answer: the client learns
/// only that, and a request id; `detail` (which may name the store, its
/// address or an OS error) is logged with the same id.
fn unavailable(detail: &str) -> Response<Bytes> {
    let id = RequestId::new();
    tracing::warn!(request_id = %id, error = detail, "answering 503: the store is unavailable");
    server_error(StatusCode::SERVICE_UNAVAILABLE, TEMPORARILY_UNAVAILABLE, id)
}

async fn refund_to<A: Accounts>(accounts: &A, account: &str, amount: Money) {
    if let Err(e) = accounts.refund(account, amount).await {
        tracing::warn!(account, %amount, error = %e, "cannot refund a refused request");
    }
}
