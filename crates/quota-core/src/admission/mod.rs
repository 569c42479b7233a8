//! Admission: the checks of one request, in order, as a sans-IO state
//! machine.
//!
//! An [`Admission`] is made from what a transport read of the request
//! ([`RequestFacts`]: its path, its API key, its declared body) under a
//! gateway's [`AdmissionConfig`] and [`Policy`]. It never waits and never
//! reads a clock: [`Admission::step`] says what it needs next, the driver
//! (the tower layer in `quota-transport`, a test with fakes) does that and
//! hands the answer back, until the [`Verdict`]:
//!
//! | [`Step`] | the driver | hands back |
//! |---|---|---|
//! | [`Step::Resolve`]`(key)` | [`Accounts::resolve`](crate::account::Accounts::resolve) | [`Admission::resolved`] |
//! | [`Step::Charge`]` { account, price }` | [`Accounts::charge`](crate::account::Accounts::charge) | [`Admission::charged`] |
//! | [`Step::Decide`]`(plan)` | [`Store::decide_with_receipt`](crate::Store::decide_with_receipt) at its clock's `now` | [`Admission::decided`] |
//! | [`Step::Refund`]` { account, amount }` | [`Accounts::refund`](crate::account::Accounts::refund) | [`Admission::refunded`] |
//! | [`Step::Done`]`(verdict)` | serves the request, or answers the refusal | |
//!
//! # The checks, in order
//! The first that fails answers (`docs/contract.md`, section 4.4):
//!
//! 0. **Path**: made canonical once ([`crate::path`]); one that cannot be,
//!    or that climbs above the API prefix, is **400**. Everything below
//!    uses only the canonical path.
//! 1. **Key**: no usable API key is **401**; the key is resolved to an
//!    [`Identity`]: unknown is **401**, an account source that fails **503**.
//! 2. **Endpoint**: the path after the prefix; outside the prefix, or no
//!    endpoint of the policy, is **404**. An unmetered endpoint
//!    ([`AdmissionConfig::unmetered`]) is admitted here, with no report.
//! 3. **Declared body**: an unreadable `Content-Length` or content type is
//!    **400**, a length over the endpoint's largest body **413**
//!    ([`UploadRules::check_body_size`](crate::upload::UploadRules::check_body_size)).
//! 4. **Credit**: a priced endpoint is charged; credit that cannot pay is
//!    **402**, a failure **503**. A caller on the policy's anonymous tier
//!    ([`Policy::anonymous_tier`]: no key, no account) is **401** there.
//! 5. **Rate limits**: the [`Plan`] (a tier missing from the policy is
//!    **500**) is decided by the store (a failure is **503**, whatever the
//!    store's own failure policy let through); refused is **429** with the
//!    [`RateReport`].
//!
//! A charge followed by any refusal is given back ([`Step::Refund`]) before
//! the verdict. In shadow mode ([`AdmissionConfig::shadow`]) nothing is
//! charged, no body is checked, and every refusal but the path's becomes an
//! admission that carries it ([`Admit::shadowed`]).
//!
//! # After the answer
//! An admitted request carries what it took ([`Admit::receipt`],
//! [`Admit::charged`]: a [`Taken`]). When its upstream fails to answer it,
//! the driver gives both back as [`RefundOn`] says (module [`refund`]).
//!
//! ```
//! use quota_core::account::Identity;
//! use quota_core::admission::{Admission, AdmissionConfig, RequestFacts, Step, Verdict};
//! use quota_core::policy::Policy;
//! use quota_core::{MemoryStore, Receipt, Timestamp};
//!
//! let (policy, config, store) = (Policy::seed(), AdmissionConfig::default(), MemoryStore::new());
//! let now = Timestamp::from_secs(1_700_000_000);
//! let facts = RequestFacts::new("/v1/txt2img", Ok("k-1"));
//! let mut admission = Admission::new(&config, &policy, facts);
//! let verdict = loop {
//!     match admission.step() {
//!         Step::Resolve(key) => {
//!             assert_eq!(key, "k-1");
//!             let who = Identity { account: "acct-1".into(), tier: "basic".into() };
//!             admission.resolved(Ok(Some(who)));
//!         }
//!         Step::Decide(plan) => {
//!             let outcomes = store.decide_now(&plan, now);
//!             admission.decided(Ok(Receipt::new(outcomes, now)));
//!         }
//!         Step::Done(verdict) => break verdict,
//!         other => unreachable!("a free endpoint: {other:?}"),
//!     }
//! };
//! let Verdict::Admit(admit) = verdict else { panic!("refused") };
//! assert_eq!(admit.report.unwrap().minute().unwrap().remaining, 2); // 3 a minute on Basic
//! assert_eq!(admission.identity().unwrap().account, "acct-1");
//! ```

mod config;
pub mod refund;
mod verdict;

use core::error::Error;
use std::borrow::Cow;

pub use config::AdmissionConfig;
pub use refund::{RefundOn, RefundOnError, RefundReason, Taken, UpstreamResult};
pub use verdict::{Admit, DecideError, Reason, Refusal, Verdict};

use crate::account::{AccountError, Charge, Identity};
use crate::decision::Decision;
use crate::path::canonicalize;
use crate::policy::{Money, Plan, PlanError, Policy, Request};
use crate::report::RateReport;
use crate::store::{Receipt, StoreError};

/// What a transport read of a request, for an [`Admission`]. No method: a
/// gateway that limits by method chooses its endpoints by path.
///
/// The errors are the transport's own (borrowed, so nothing is allocated
/// for an admitted request); their text becomes the refusal's message.
#[derive(Clone, Copy, Debug)]
pub struct RequestFacts<'a> {
    /// The request's path as the client sent it, without the query.
    pub path: &'a str,
    /// The API key, or why the request carries no usable one (**401**).
    pub api_key: Result<&'a str, &'a (dyn Error + Send + Sync)>,
    /// The declared body length (`Content-Length`), if any, or why it
    /// cannot be read (**400**).
    pub declared_length: Result<Option<u64>, &'a (dyn Error + Send + Sync)>,
    /// Why the declared content type cannot frame the body (a multipart
    /// type without a boundary: **400**), if it cannot.
    pub framing: Result<(), &'a (dyn Error + Send + Sync)>,
    /// The units the request uses on each of its limits: 1 for one HTTP
    /// request; a front end that decides several hits at once (Envoy's
    /// `hits_addend`) says how many. A cost no window can ever admit is
    /// refused with **500** ([`PlanError::CostExceedsLimit`]); 0 only reports.
    pub cost: u64,
}

impl<'a> RequestFacts<'a> {
    /// A request for `path` with `api_key`, declaring no body.
    pub fn new(path: &'a str, api_key: Result<&'a str, &'a (dyn Error + Send + Sync)>) -> Self {
        RequestFacts {
            path,
            api_key,
            declared_length: Ok(None),
            framing: Ok(()),
            cost: 1,
        }
    }

    /// The same request, using `cost` units instead of one.
    #[must_use]
    pub fn with_cost(mut self, cost: u64) -> Self {
        self.cost = cost;
        self
    }
}

/// What an [`Admission`] needs next. Borrowed from it: answer, then ask
/// again.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // `Done` comes once; boxing it would allocate per request
pub enum Step<'s> {
    /// Resolve this API key to an identity, then [`Admission::resolved`].
    Resolve(&'s str),
    /// Charge `price` to `account`, then [`Admission::charged`].
    Charge {
        /// The account to charge.
        account: &'s str,
        /// The endpoint's price.
        price: Money,
    },
    /// Decide this plan in the store, then [`Admission::decided`].
    Decide(Plan<'s>),
    /// Give `amount` back to `account` (the request is refused after its
    /// charge), then [`Admission::refunded`].
    Refund {
        /// The account charged.
        account: &'s str,
        /// What it was charged.
        amount: Money,
    },
    /// The end. The admission has nothing more to say.
    Done(Verdict),
}

/// The checks of one request, as a state machine. See the
/// [module docs](self).
///
/// Answers given out of turn (a `charged` while it waits for `resolved`)
/// are ignored.
#[derive(Debug)]
pub struct Admission<'a> {
    config: &'a AdmissionConfig,
    policy: &'a Policy,
    facts: RequestFacts<'a>,
    /// The canonical path, once made.
    path: Cow<'a, str>,
    identity: Option<Identity>,
    endpoint: Option<&'a str>,
    /// The index of the policy's endpoint, once found.
    endpoint_index: usize,
    /// The plan, built once when the metering checks pass, without the
    /// account and the path it borrows from this admission: they are put
    /// back into it ([`Plan::with_names`]) for the store and the decision.
    plan: Option<Plan<'a>>,
    price: Money,
    charged: Option<Money>,
    state: State,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // the verdict is built in place; boxing it would allocate per request
enum State {
    /// Nothing checked yet.
    Start,
    /// Waiting for [`Admission::resolved`].
    Resolving,
    /// The key resolved: the endpoint, the body and the price to check.
    Metering,
    /// Waiting for [`Admission::charged`].
    Charging,
    /// Waiting for [`Admission::decided`] (the plan is known to build).
    Deciding,
    /// Waiting for [`Admission::refunded`], then this refusal.
    Refunding(Refusal),
    /// The verdict, not yet handed out.
    Done(Verdict),
    /// The verdict was handed out.
    Spent,
}

impl<'a> Admission<'a> {
    /// The admission of the request `facts` describes, under `config` and
    /// `policy`.
    pub fn new(config: &'a AdmissionConfig, policy: &'a Policy, facts: RequestFacts<'a>) -> Self {
        Admission {
            config,
            policy,
            facts,
            path: Cow::Borrowed(facts.path),
            identity: None,
            endpoint: None,
            endpoint_index: 0,
            plan: None,
            price: Money::ZERO,
            charged: None,
            state: State::Start,
        }
    }

    /// What to do next.
    ///
    /// # Panics
    /// When called again after it returned [`Step::Done`].
    pub fn step(&mut self) -> Step<'_> {
        self.advance();
        if let State::Done(_) = self.state {
            if let State::Done(verdict) = core::mem::replace(&mut self.state, State::Spent) {
                return Step::Done(verdict);
            }
        }
        match self.state {
            State::Resolving => Step::Resolve(self.facts.api_key.unwrap_or_default()),
            State::Charging => Step::Charge {
                account: account_of(self.identity.as_ref()),
                price: self.price,
            },
            State::Deciding => match &self.plan {
                Some(plan) => Step::Decide(plan.with_names(
                    account_of(self.identity.as_ref()),
                    endpoint_name(&self.path, self.config),
                )),
                // The plan is made before this state is entered, so this
                // does not happen. Were it to, refuse rather than guess.
                None => {
                    self.state = State::Spent;
                    let name = endpoint_name(&self.path, self.config).to_owned();
                    Step::Done(Verdict::Refuse(Refusal::new(Reason::Plan(
                        PlanError::UnknownEndpoint(name),
                    ))))
                }
            },
            State::Refunding(_) => Step::Refund {
                account: account_of(self.identity.as_ref()),
                amount: self.charged.unwrap_or(Money::ZERO),
            },
            State::Spent => panic!("Admission::step called after its verdict"),
            State::Start | State::Metering | State::Done(_) => {
                unreachable!("advance() leaves no check pending and the verdict was handed out")
            }
        }
    }

    /// The answer to [`Step::Resolve`]: the identity behind the key (`None`
    /// for a key no account has), or why the account source could not
    /// tell.
    pub fn resolved(&mut self, answer: Result<Option<Identity>, AccountError>) {
        if !matches!(self.state, State::Resolving) {
            return;
        }
        match answer {
            Ok(Some(who)) => {
                self.identity = Some(who);
                self.state = State::Metering;
            }
            Ok(None) => self.refuse(Reason::UnknownKey),
            Err(e) => self.refuse(Reason::ResolveFailed(e)),
        }
    }

    /// The answer to [`Step::Charge`].
    pub fn charged(&mut self, answer: Result<Charge, AccountError>) {
        if !matches!(self.state, State::Charging) {
            return;
        }
        match answer {
            Ok(Charge::Charged { .. }) => {
                self.charged = Some(self.price);
                self.plan_or_refuse();
            }
            Ok(Charge::Insufficient { credit, price }) => {
                let endpoint = endpoint_name(&self.path, self.config).to_owned();
                self.refuse(Reason::InsufficientCredit {
                    endpoint,
                    price,
                    credit,
                });
            }
            Err(e) => self.refuse(Reason::ChargeFailed(e)),
        }
    }

    /// The answer to [`Step::Decide`]: the store's receipt of its decision
    /// of the plan ([`Store::decide_with_receipt`](crate::Store::decide_with_receipt);
    /// its outcomes are what [`Store::decide`](crate::Store::decide)
    /// answers), or why it could not decide.
    pub fn decided(&mut self, answer: Result<Receipt, StoreError>) {
        if !matches!(self.state, State::Deciding) {
            return;
        }
        let ietf = self.config.reports_ietf_headers();
        let mut kept = None;
        let report = match answer {
            Err(e) => Err(Reason::DecideFailed(DecideError::Store(e))),
            Ok(receipt) => {
                let name = endpoint_name(&self.path, self.config);
                let report = match &self.plan {
                    Some(plan) => {
                        let plan = plan.with_names(account_of(self.identity.as_ref()), name);
                        Decision::from_outcomes(&plan, &receipt.outcomes)
                            .map(|d| RateReport::new(&d).with_ietf(ietf))
                            .map_err(|e| Reason::DecideFailed(DecideError::Mismatch(e)))
                    }
                    None => Err(Reason::Plan(PlanError::UnknownEndpoint(name.to_owned()))),
                };
                kept = Some(receipt);
                report
            }
        };
        match report {
            Err(reason) => self.refuse(reason),
            Ok(report) if report.is_admitted() => {
                self.state = State::Done(Verdict::Admit(Admit {
                    report: Some(report),
                    path: self.rewritten_path(),
                    guard_body: !self.config.is_shadow(),
                    charged: self.charged,
                    receipt: kept.and_then(Taken::counted),
                    cost: self.facts.cost,
                    shadowed: None,
                }));
            }
            Ok(report) => self.refuse_with(Refusal {
                reason: Reason::TooManyRequests,
                report: Some(report),
            }),
        }
    }

    /// The answer to [`Step::Refund`] (whether the refund succeeded is the
    /// driver's to log: the refusal stands either way).
    pub fn refunded(&mut self) {
        if let State::Refunding(_) = self.state {
            if let State::Refunding(refusal) = core::mem::replace(&mut self.state, State::Spent) {
                self.state = State::Done(Verdict::Refuse(refusal));
            }
        }
    }

    /// The caller, once the key resolved.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The caller, taken out (for the request's extensions).
    pub fn take_identity(&mut self) -> Option<Identity> {
        self.identity.take()
    }

    /// The policy endpoint the request resolved to (`prompt/*`, not the
    /// path), or the unmetered name: a label of bounded cardinality.
    pub fn endpoint(&self) -> Option<&'a str> {
        self.endpoint
    }

    /// The canonical path, once made (the path as sent before that, or
    /// when it has none).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Runs the checks that need no answer until one is needed.
    fn advance(&mut self) {
        loop {
            match self.state {
                State::Start => self.start(),
                State::Metering => self.meter(),
                _ => return,
            }
        }
    }

    /// 0 and the first half of 1: the path, and whether there is a key.
    fn start(&mut self) {
        let prefix = self.config.prefix_str();
        match canonicalize(self.facts.path, self.config.action()) {
            Err(e) => return self.refuse_path(Reason::InvalidPath(e)),
            // Resolving `..` may leave the prefix: `/v1/../admin` is not an endpoint.
            Ok(canonical)
                if self.facts.path.starts_with(prefix) && !canonical.starts_with(prefix) =>
            {
                return self.refuse_path(Reason::PathAbovePrefix {
                    prefix: prefix.into(),
                });
            }
            Ok(canonical) => self.path = canonical,
        }
        match self.facts.api_key {
            Ok(_) => self.state = State::Resolving,
            Err(e) => self.refuse(Reason::UnusableKey(e.to_string())),
        }
    }

    /// 2 to 4: the endpoint, the declared body, the price.
    fn meter(&mut self) {
        let config = self.config;
        let shadow = config.is_shadow();
        let Some(name) = self.path.strip_prefix(config.prefix_str()) else {
            let reason = Reason::OutsidePrefix {
                path: self.path.to_string(),
                prefix: config.prefix_str().into(),
            };
            return self.refuse(reason);
        };
        if let Some(exempt) = config.unmetered_names().iter().find(|u| ***u == *name) {
            self.endpoint = Some(exempt);
            self.state = State::Done(Verdict::Admit(Admit {
                path: self.rewritten_path(),
                ..Admit::default()
            }));
            return;
        }
        let Some((index, endpoint)) = self.policy.endpoint_with_index(name) else {
            let reason = Reason::UnknownEndpoint(name.to_owned());
            return self.refuse(reason);
        };
        self.endpoint = Some(endpoint.path());
        self.endpoint_index = index;
        if !shadow {
            let body = match self.facts.declared_length {
                Err(e) => Err(Reason::MalformedBody(e.to_string())),
                Ok(Some(length)) => self
                    .policy
                    .uploads()
                    .check_body_size(name, length)
                    .map_err(Reason::BodyTooLarge),
                Ok(None) => Ok(()),
            }
            .and_then(|()| {
                self.facts
                    .framing
                    .map_err(|e| Reason::MalformedBody(e.to_string()))
            });
            if let Err(reason) = body {
                return self.refuse(reason);
            }
        }
        let price = endpoint.price();
        if price > Money::ZERO && self.is_anonymous() {
            // No account to charge: the caller needs a key.
            let endpoint = endpoint_name(&self.path, self.config).to_owned();
            return self.refuse(Reason::KeyRequired { endpoint });
        }
        if price > Money::ZERO && !shadow {
            self.price = price;
            self.state = State::Charging;
        } else {
            self.plan_or_refuse();
        }
    }

    /// Whether the caller is on the policy's anonymous tier (a caller
    /// without a key, counted by its address: it has no account).
    fn is_anonymous(&self) -> bool {
        match (self.policy.anonymous_tier(), &self.identity) {
            (Some(tier), Some(who)) => tier.name() == who.tier,
            _ => false,
        }
    }

    /// 5, first half: the plan must build before the store is asked. It
    /// is built here, once, and kept.
    fn plan_or_refuse(&mut self) {
        let policy = self.policy;
        let (account, tier) = self
            .identity
            .as_ref()
            .map_or(("", ""), |who| (who.account.as_str(), who.tier.as_str()));
        let req = Request {
            account,
            tier,
            endpoint: endpoint_name(&self.path, self.config),
            cost: self.facts.cost,
        };
        let planned = match policy.tier(tier) {
            Some(found) => policy.plan_at(found, self.endpoint_index, &req),
            None => Err(PlanError::UnknownTier(tier.to_owned())),
        };
        match planned {
            Ok(plan) => {
                self.plan = Some(plan);
                self.state = State::Deciding;
            }
            Err(e) => self.refuse(Reason::Plan(e)),
        }
    }

    /// A refused path: refused even in shadow mode, since serving it would
    /// serve what was not checked.
    fn refuse_path(&mut self, reason: Reason) {
        self.state = State::Done(Verdict::Refuse(Refusal::new(reason)));
    }

    fn refuse(&mut self, reason: Reason) {
        self.refuse_with(Refusal::new(reason));
    }

    /// Refuses: in shadow mode an admission that carries the refusal (and
    /// a 429's report); otherwise after the refund of a charge.
    fn refuse_with(&mut self, mut refusal: Refusal) {
        self.state = if self.config.is_shadow() {
            State::Done(Verdict::Admit(Admit {
                report: refusal.report.take(),
                path: self.rewritten_path(),
                shadowed: Some(refusal.reason),
                ..Admit::default()
            }))
        } else if self.charged.is_some() {
            State::Refunding(refusal)
        } else {
            State::Done(Verdict::Refuse(refusal))
        };
    }

    /// The canonical path when it is not the one sent.
    fn rewritten_path(&self) -> Option<Box<str>> {
        match &self.path {
            Cow::Owned(p) => Some(p.as_str().into()),
            Cow::Borrowed(_) => None,
        }
    }
}

/// The endpoint name: the canonical path after the prefix (the metering
/// checks ran only for a path under it).
fn endpoint_name<'p>(path: &'p str, config: &AdmissionConfig) -> &'p str {
    path.get(config.prefix_str().len()..).unwrap_or_default()
}

fn account_of(identity: Option<&Identity>) -> &str {
    identity.map_or("", |who| who.account.as_str())
}
