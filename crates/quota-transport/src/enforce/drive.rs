//! The one driver of the core's [`Admission`]: it reads the request's
//! facts from its headers, answers each step through the store and the
//! account source, and tells the observer. [`Enforce`](super::Enforce) and
//! [`EnforceLayer::check_head`](super::EnforceLayer::check_head) both run
//! it.
//!
//! One loop answers the steps ([`answer_steps`]), waiting for each answer
//! in one of two ways: `.await`, or, when the store and the account source
//! promise to answer at once (the memory ones), by polling each step's
//! future once in place: no step's future is kept then, and
//! [`drive_at_once`] runs the whole admission with no future at all (the
//! tower layer's path: its request needs no boxed future).

use core::error::Error;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use std::time::Instant;

use http::{Extensions, StatusCode};
use quota_core::account::{AccountError, Accounts, Identity};
use quota_core::admission::{Admission, Reason, Refusal, RequestFacts, Step, Verdict};
use quota_core::policy::Money;
use quota_core::{Store, StoreError};

use super::answer::refusal_response;
use super::layer::Config;
use super::observe::{Observation, Outcome};
use super::policy::Loaded;
use crate::fields::HeaderFields;
use crate::identity::extract::{find_caller, ExtractError, Found};
use crate::upload::{declared_length, multipart_boundary};

/// Answers every step of `$run`'s admission through `$config`'s store and
/// account source, waiting for each answer with `$wait!` (`.await`, or
/// [`at_once`]), to the verdict. One loop for both drivers.
macro_rules! answer_steps {
    ($config:expr, $run:ident, $wait:ident) => {
        loop {
            match $run.admission.step() {
                Step::Resolve(key) => {
                    let answer = match $run.caller {
                        Ok(Found::Identity(who)) => Ok(Some(who.clone())),
                        _ => $wait!($config.accounts.resolve(key)),
                    };
                    $run.admission.resolved(answer);
                }
                Step::Charge { account, price } => {
                    let answer = $wait!($config.accounts.charge(account, price));
                    $run.admission.charged(answer);
                }
                Step::Decide(plan) => {
                    let now = ($config.clock)();
                    let answer = $wait!($config.store.decide_with_receipt(&plan, now));
                    $run.admission.decided(answer);
                }
                Step::Refund { account, amount } => {
                    $wait!(refund(&*$config.accounts, account, amount));
                    $run.admission.refunded();
                }
                Step::Done(verdict) => break verdict,
            }
        }
    };
}
/// `.await`, for [`answer_steps`].
macro_rules! wait {
    ($future:expr) => {
        $future.await
    };
}

/// [`poll_at_once`], for [`answer_steps`].
macro_rules! at_once {
    ($future:expr) => {
        poll_at_once($future)
    };
}

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
    let caller = caller_of(config, headers, extensions);
    let (length, framing) = body_of(headers);
    drive_caller(config, loaded, path, caller, Body::of(&length, &framing), 1).await
}

/// [`drive`], for a store and an account source that answer at once
/// ([`Config::answers_at_once`]): every step's future is polled once, in
/// place, so the request needs no future of its own. ([`drive`] polls them
/// so too, inside its own future.)
pub(crate) fn drive_at_once<S, A, H>(
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
    let caller = caller_of(config, headers, extensions);
    let (length, framing) = body_of(headers);
    let body = Body::of(&length, &framing);
    let mut run = match Run::begin(config, loaded, path, &caller, body, 1) {
        Ok(run) => run,
        Err(unknown) => return unknown.into(),
    };
    let verdict = answer_steps!(config, run, at_once);
    run.end(config, verdict)
}

/// Who the caller is: the API key headers, or the layer's extractor.
fn caller_of<'h, S, A, H>(
    config: &Config<S, A>,
    headers: &'h H,
    extensions: Option<&'h Extensions>,
) -> Result<Found<'h>, ExtractError>
where
    H: HeaderFields + Sync + ?Sized,
{
    find_caller(
        config.key.as_deref(),
        config.anonymous.as_deref(),
        config.key_headers,
        headers,
        extensions,
    )
}

type Declared<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// What the headers declare of the body: its length, its multipart framing.
fn body_of<H>(headers: &H) -> (Declared<Option<u64>>, Declared<()>)
where
    H: HeaderFields + Sync + ?Sized,
{
    let length = declared_length(headers).map_err(|e| Box::new(e) as _);
    let framing = multipart_boundary(headers)
        .transpose()
        .map(drop)
        .map_err(|e| Box::new(e) as _);
    (length, framing)
}

/// What a request declares of its body, for the admission.
pub(crate) struct Body<'a> {
    pub(crate) length: Result<Option<u64>, &'a (dyn Error + Send + Sync)>,
    pub(crate) framing: Result<(), &'a (dyn Error + Send + Sync)>,
}

impl<'a> Body<'a> {
    /// No body.
    pub(crate) const NONE: Body<'static> = Body {
        length: Ok(None),
        framing: Ok(()),
    };

    fn of(length: &'a Declared<Option<u64>>, framing: &'a Declared<()>) -> Self {
        Body {
            length: length.as_ref().map(|l| *l).map_err(|e| &**e),
            framing: framing.as_ref().map(drop).map_err(|e| &**e),
        }
    }
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
    let mut run = match Run::begin(config, loaded, path, &caller, body, cost) {
        Ok(run) => run,
        Err(unknown) => return unknown.into(),
    };
    // Nothing to wait for: no step's future is kept in this one.
    let verdict = if config.answers_at_once() {
        answer_steps!(config, run, at_once)
    } else {
        answer_steps!(config, run, wait)
    };
    run.end(config, verdict)
}

/// A caller the layer's extractor could not name (not a missing key):
/// refused before any step, with this message.
struct UnknownCaller(String);

impl From<UnknownCaller> for Driven {
    fn from(UnknownCaller(message): UnknownCaller) -> Self {
        Driven {
            verdict: Verdict::Refuse(Refusal::new(Reason::UnknownCaller(message))),
            identity: None,
        }
    }
}

/// An admission under way, with what its end needs.
struct Run<'a> {
    admission: Admission<'a>,
    caller: &'a Result<Found<'a>, ExtractError>,
    started: Option<Instant>,
}

impl<'a> Run<'a> {
    /// The admission of a request for `path` from `caller`, or the caller
    /// the extractor could not name.
    fn begin<S, A>(
        config: &'a Config<S, A>,
        loaded: &'a Loaded,
        path: &'a str,
        caller: &'a Result<Found<'a>, ExtractError>,
        body: Body<'a>,
        cost: u64,
    ) -> Result<Self, UnknownCaller> {
        let started = config.observer.as_ref().map(|_| Instant::now());
        let key = match caller {
            Ok(Found::ApiKey(key)) => Ok(&**key),
            // Known already: the resolve step is answered with it.
            Ok(Found::Identity(who)) => Ok(who.account.as_str()),
            Err(e) if e.status() == StatusCode::UNAUTHORIZED => Err(as_error(e)),
            Err(e) => return Err(UnknownCaller(e.to_string())),
        };
        let facts = RequestFacts {
            path,
            api_key: key,
            declared_length: body.length,
            framing: body.framing,
            cost,
        };
        Ok(Run {
            admission: Admission::new(&config.admission, &loaded.policy, facts),
            caller,
            started,
        })
    }

    /// Tells the observer how the admission ended in `verdict`, and logs a
    /// failure shadow mode lets through.
    fn end<S, A>(&mut self, config: &Config<S, A>, verdict: Verdict) -> Driven {
        let admission = &mut self.admission;
        if let (Some(observer), Some(started)) = (&config.observer, self.started) {
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
}

/// What a step's answer is when its future, promised ready at once, was
/// not: a failure of the store or the account source.
trait Late {
    fn late() -> Self;
}

impl<T> Late for Result<T, StoreError> {
    fn late() -> Self {
        Err(StoreError::unavailable(LATE))
    }
}

impl<T> Late for Result<T, AccountError> {
    fn late() -> Self {
        Err(AccountError::unavailable(LATE))
    }
}

impl Late for () {
    fn late() {
        tracing::warn!("cannot refund a refused request: {LATE}");
    }
}

const LATE: &str = "the backend promised answers at once and did not answer at once";

/// `future`'s output, polled once in place: a store or account source that
/// answers at once is ready then. One that is not broke its promise, and
/// the step fails ([`Late`]); the future is dropped.
fn poll_at_once<F: Future>(future: F) -> F::Output
where
    F::Output: Late,
{
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => {
            tracing::error!("{LATE}");
            F::Output::late()
        }
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
