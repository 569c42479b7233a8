//! The one driver of the core's [`Admission`]: it reads the request's
//! facts from its headers, answers each step through the store and the
//! account source, and tells the observer. [`Enforce`](super::Enforce) and
//! [`EnforceLayer::check_head`](super::EnforceLayer::check_head) both run
//! it.

use core::error::Error;
use std::time::Instant;

use http::{Extensions, StatusCode};
use quota_core::account::{Accounts, Identity};
use quota_core::admission::{Admission, Reason, Refusal, RequestFacts, Step, Verdict};
use quota_core::policy::Money;
use quota_core::Store;

use super::answer::refusal_response;
use super::layer::Config;
use super::observe::{Observation, Outcome};
use super::policy::Loaded;
use crate::fields::HeaderFields;
use crate::identity::extract::{find_caller, ExtractError, Found};
use crate::upload::{declared_length, multipart_boundary};

/// What the admission of a request ended in.
pub(crate) struct Driven {
    pub(crate) verdict: Verdict,
    /// The caller, once resolved.
    pub(crate) identity: Option<Identity>,
}

/// Runs the admission of a request for `path` (without its query) with
/// `headers` (and, through tower, its `extensions`, for the layer's key
/// extractor) under `loaded`, to its verdict, and tells the observer.
pub(crate) async fn drive<S, A, H>(
    config: &Config<S, A>,
    loaded: &Loaded,
    path: &str,
    headers: &H,
    extensions: Option<&Extensions>,
) -> Driven
where
    S: Store,
    A: Accounts,
    H: HeaderFields + Sync + ?Sized,
{
    // Who the caller is: the API key headers, or the layer's extractor.
    let caller = find_caller(
        config.key.as_deref(),
        config.anonymous.as_deref(),
        config.key_headers,
        headers,
        extensions,
    );
    let length = declared_length(headers);
    let framing = multipart_boundary(headers).transpose();
    let body = Body {
        length: length.as_ref().map(|l| *l).map_err(as_error),
        framing: framing.as_ref().map(drop).map_err(as_error),
    };
    drive_caller(config, loaded, path, caller, body, 1).await
}

/// What a request declares of its body, for the admission.
pub(crate) struct Body<'a> {
    pub(crate) length: Result<Option<u64>, &'a (dyn Error + Send + Sync)>,
    pub(crate) framing: Result<(), &'a (dyn Error + Send + Sync)>,
}

impl Body<'_> {
    /// No body.
    pub(crate) const NONE: Body<'static> = Body {
        length: Ok(None),
        framing: Ok(()),
    };
}

/// Runs the admission of a request for `path` from `caller` (found in its
/// headers, or given by a front end that is not HTTP), declaring `body`,
/// using `cost` units, to its verdict, and tells the observer.
pub(crate) async fn drive_caller<S, A>(
    config: &Config<S, A>,
    loaded: &Loaded,
    path: &str,
    caller: Result<Found<'_>, ExtractError>,
    body: Body<'_>,
    cost: u64,
) -> Driven
where
    S: Store,
    A: Accounts,
{
    let started = config.observer.as_ref().map(|_| Instant::now());
    let key = match &caller {
        Ok(Found::ApiKey(key)) => Ok(&**key),
        // Known already: the resolve step is answered with it below.
        Ok(Found::Identity(who)) => Ok(who.account.as_str()),
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => Err(e),
        Err(e) => {
            return Driven {
                verdict: Verdict::Refuse(Refusal::new(Reason::UnknownCaller(e.to_string()))),
                identity: None,
            }
        }
    };
    let facts = RequestFacts {
        path,
        api_key: key.map_err(as_error),
        declared_length: body.length,
        framing: body.framing,
        cost,
    };
    let mut admission = Admission::new(&config.admission, &loaded.policy, facts);
    let verdict = loop {
        match admission.step() {
            Step::Resolve(key) => {
                let answer = match &caller {
                    Ok(Found::Identity(who)) => Ok(Some(who.clone())),
                    _ => config.accounts.resolve(key).await,
                };
                admission.resolved(answer);
            }
            Step::Charge { account, price } => {
                let answer = config.accounts.charge(account, price).await;
                admission.charged(answer);
            }
            Step::Decide(plan) => {
                let now = (config.clock)();
                let answer = config.store.decide_with_receipt(&plan, now).await;
                admission.decided(answer);
            }
            Step::Refund { account, amount } => {
                refund(&*config.accounts, account, amount).await;
                admission.refunded();
            }
            Step::Done(verdict) => break verdict,
        }
    };
    if let (Some(observer), Some(started)) = (&config.observer, started) {
        let (outcome, status, report) = match &verdict {
            Verdict::Refuse(refusal) => (
                outcome_of(&refusal.reason),
                refusal.status(),
                refusal.report.as_ref(),
            ),
            Verdict::Admit(admit) => match &admit.shadowed {
                Some(reason) => (outcome_of(reason), reason.status(), admit.report.as_ref()),
                None => (Outcome::Admitted, 200, admit.report.as_ref()),
            },
        };
        observer.observe(&Observation {
            tier: admission.identity().map(|i| i.tier.as_str()),
            account: admission.identity().map(|i| i.account.as_str()),
            endpoint: admission.endpoint(),
            outcome,
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            limit: report.and_then(|r| r.refused_by()).map(|l| &*l.name),
            latency: started.elapsed(),
            shadow: config.admission.is_shadow(),
        });
    }
    // A failure shadow mode lets through is still logged, as it is when
    // answered.
    if let Verdict::Admit(admit) = &verdict {
        if let Some(reason) = admit.shadowed.as_ref().filter(|r| r.is_server_error()) {
            drop(refusal_response(config, reason, None));
        }
    }
    Driven {
        verdict,
        identity: admission.take_identity(),
    }
}

fn as_error<E: Error + Send + Sync>(e: &E) -> &(dyn Error + Send + Sync) {
    e
}

fn outcome_of(reason: &Reason) -> Outcome {
    if reason.is_server_error() {
        Outcome::Error
    } else {
        Outcome::Refused
    }
}

/// Gives a charge back; a failure is logged (the refusal stands).
pub(crate) async fn refund<A: Accounts + ?Sized>(accounts: &A, account: &str, amount: Money) {
    if let Err(e) = accounts.refund(account, amount).await {
        tracing::warn!(account, %amount, error = %e, "cannot refund a refused request");
    }
}
