//! The admission machine driven synchronously by fakes, over random
//! requests and random answers: the order of the checks, refunds, shadow
//! mode, unmetered endpoints and store failures (`docs/contract.md`,
//! section 4.4; the module docs of `quota_core::admission`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use core::fmt;

use proptest::prelude::*;
use quota_core::account::{AccountError, Charge, Identity};
use quota_core::admission::{Admission, AdmissionConfig, Reason, RequestFacts, Step, Verdict};
use quota_core::algorithm::LimitOutcome;
use quota_core::path::PathAction;
use quota_core::policy::{EndpointSpec, LimitSpec, Money, Policy, WindowLength};
use quota_core::{Outcomes, Receipt, StoreError, Timestamp};

/// A transport's error, for the facts.
#[derive(Debug)]
struct Unreadable(&'static str);

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Unreadable {}

static NO_KEY: Unreadable = Unreadable("missing API key");
static BAD_LENGTH: Unreadable =
    Unreadable("malformed upload: content-length is not a number of bytes");
static BAD_FRAMING: Unreadable = Unreadable("malformed upload: content-type: no boundary");

const PRICE: Money = Money::from_dollars(2);

/// The seed, plus `paid` ($2 a request, 100 a minute on Basic).
fn policy() -> Policy {
    let mut spec = Policy::seed().spec().clone();
    spec.endpoints.push(EndpointSpec {
        path: "paid".into(),
        price: Some(PRICE),
        priority: None,
    });
    let basic = spec.tiers.iter_mut().find(|t| t.name == "basic").unwrap();
    basic.limits.push(LimitSpec::new(
        Some("paid"),
        WindowLength::from_secs(60),
        100,
    ));
    Policy::new(spec).unwrap()
}

/// One request and every answer the fakes will give.
#[derive(Clone, Debug)]
struct Case {
    path: PathKind,
    normalize: bool,
    key: KeyKind,
    resolve: ResolveKind,
    length: LengthKind,
    bad_framing: bool,
    charge: ChargeKind,
    store: StoreKind,
    shadow: bool,
    /// Ask for each step twice before answering it.
    ask_twice: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PathKind {
    Free,
    Paid,
    Unmetered,
    UnknownEndpoint,
    OutsidePrefix,
    /// `/v1/./txt2img`: refused, or resolved to `/v1/txt2img`.
    DotSegment,
    /// `/v1/../admin`: refused, or leaves the prefix.
    Climbing,
    /// `/v1/%zz`: no canonical form under either action.
    BadEscape,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Present,
    Unusable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResolveKind {
    Basic,
    /// An account whose tier the policy does not have.
    GhostTier,
    Unknown,
    Fails,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LengthKind {
    None,
    Small,
    TooLarge,
    Malformed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChargeKind {
    Charged,
    Insufficient,
    Fails,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StoreKind {
    Admits,
    /// The limit at this index (modulo the plan's length) refuses.
    Refuses(usize),
    Fails,
    /// One outcome too many.
    Mismatch,
}

fn case() -> impl Strategy<Value = Case> {
    let path = prop_oneof![
        3 => Just(PathKind::Free),
        3 => Just(PathKind::Paid),
        1 => Just(PathKind::Unmetered),
        1 => Just(PathKind::UnknownEndpoint),
        1 => Just(PathKind::OutsidePrefix),
        1 => Just(PathKind::DotSegment),
        1 => Just(PathKind::Climbing),
        1 => Just(PathKind::BadEscape),
    ];
    let key = prop_oneof![5 => Just(KeyKind::Present), 1 => Just(KeyKind::Unusable)];
    let resolve = prop_oneof![
        6 => Just(ResolveKind::Basic),
        1 => Just(ResolveKind::GhostTier),
        1 => Just(ResolveKind::Unknown),
        1 => Just(ResolveKind::Fails),
    ];
    let length = prop_oneof![
        4 => Just(LengthKind::None),
        2 => Just(LengthKind::Small),
        1 => Just(LengthKind::TooLarge),
        1 => Just(LengthKind::Malformed),
    ];
    let charge = prop_oneof![
        4 => Just(ChargeKind::Charged),
        1 => Just(ChargeKind::Insufficient),
        1 => Just(ChargeKind::Fails),
    ];
    let store = prop_oneof![
        4 => Just(StoreKind::Admits),
        2 => (0usize..4).prop_map(StoreKind::Refuses),
        1 => Just(StoreKind::Fails),
        1 => Just(StoreKind::Mismatch),
    ];
    (
        (path, any::<bool>(), key, resolve, length),
        (
            prop::bool::weighted(0.2),
            charge,
            store,
            prop::bool::weighted(0.3),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (path, normalize, key, resolve, length),
                (bad_framing, charge, store, shadow, ask_twice),
            )| Case {
                path,
                normalize,
                key,
                resolve,
                length,
                bad_framing,
                charge,
                store,
                shadow,
                ask_twice,
            },
        )
}

impl Case {
    fn path(&self) -> &'static str {
        match self.path {
            PathKind::Free => "/v1/txt2img",
            PathKind::Paid => "/v1/paid",
            PathKind::Unmetered => "/v1/limits",
            PathKind::UnknownEndpoint => "/v1/nothing-here",
            PathKind::OutsidePrefix => "/v2/txt2img",
            PathKind::DotSegment => "/v1/./txt2img",
            PathKind::Climbing => "/v1/../admin",
            PathKind::BadEscape => "/v1/%zz",
        }
    }

    fn config(&self) -> AdmissionConfig {
        let action = if self.normalize {
            PathAction::Normalize
        } else {
            PathAction::Refuse
        };
        AdmissionConfig::default()
            .path_action(action)
            .unmetered(["limits"])
            .shadow(self.shadow)
            .ietf_headers(true)
    }

    fn facts(&self) -> RequestFacts<'static> {
        let mut facts = RequestFacts::new(
            self.path(),
            match self.key {
                KeyKind::Present => Ok("k-1"),
                KeyKind::Unusable => Err(&NO_KEY),
            },
        );
        facts.declared_length = match self.length {
            LengthKind::None => Ok(None),
            LengthKind::Small => Ok(Some(1_000)),
            LengthKind::TooLarge => Ok(Some(100 << 20)),
            LengthKind::Malformed => Err(&BAD_LENGTH),
        };
        if self.bad_framing {
            facts.framing = Err(&BAD_FRAMING);
        }
        facts
    }

    /// The answer the contract gives, worked out from the case alone: the
    /// status of the first check that fails, in the documented order,
    /// whether the charge is asked for, and whether the store is.
    fn expected(&self) -> Expected {
        let refuse = |status: u16| Expected {
            status,
            asks_charge: false,
            decided: false,
        };
        // 0. Path.
        let endpoint = match (self.path, self.normalize) {
            (PathKind::BadEscape, _) | (PathKind::DotSegment | PathKind::Climbing, false) => {
                return refuse(400)
            }
            (PathKind::Climbing, true) => return refuse(400), // it leaves the prefix
            (PathKind::DotSegment, true) => PathKind::Free,
            (other, _) => other,
        };
        // 1. Key.
        if self.key == KeyKind::Unusable {
            return refuse(401);
        }
        match self.resolve {
            ResolveKind::Unknown => return refuse(401),
            ResolveKind::Fails => return refuse(503),
            ResolveKind::Basic | ResolveKind::GhostTier => {}
        }
        // 2. Endpoint.
        match endpoint {
            PathKind::OutsidePrefix | PathKind::UnknownEndpoint => return refuse(404),
            PathKind::Unmetered => return refuse(200),
            _ => {}
        }
        // 3. Declared body (not in shadow mode).
        if !self.shadow {
            match self.length {
                LengthKind::Malformed => return refuse(400),
                LengthKind::TooLarge => return refuse(413),
                LengthKind::None | LengthKind::Small => {}
            }
            if self.bad_framing {
                return refuse(400);
            }
        }
        // 4. Credit (not in shadow mode).
        let asks_charge = endpoint == PathKind::Paid && !self.shadow;
        if asks_charge {
            let status = match self.charge {
                ChargeKind::Insufficient => 402,
                ChargeKind::Fails => 503,
                ChargeKind::Charged => 0,
            };
            if status != 0 {
                return Expected {
                    status,
                    asks_charge,
                    decided: false,
                };
            }
        }
        // 5. Rate limits.
        if self.resolve == ResolveKind::GhostTier {
            return Expected {
                status: 500,
                asks_charge,
                decided: false,
            };
        }
        let status = match self.store {
            StoreKind::Admits => 200,
            StoreKind::Refuses(_) => 429,
            StoreKind::Fails | StoreKind::Mismatch => 503,
        };
        Expected {
            status,
            asks_charge,
            decided: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expected {
    /// 200 for an admission, else the refusal's status (in shadow mode,
    /// the status that was not enforced).
    status: u16,
    /// Whether the account is asked to pay.
    asks_charge: bool,
    /// Whether the store is asked to decide.
    decided: bool,
}

/// What the fakes were asked, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Resolve,
    Charge,
    Decide,
    Refund,
}

/// One admission, run to its verdict.
#[derive(Debug)]
struct Run {
    verdict: Verdict,
    seen: Vec<Seen>,
    identity: Option<Identity>,
}

/// Drives one admission to its verdict, the fakes answering each step as
/// `case` says; with `ask_twice`, every step but the verdict is asked for
/// twice first and must not change.
fn drive(case: &Case, policy: &Policy, ask_twice: bool) -> Run {
    let config = case.config();
    let mut admission = Admission::new(&config, policy, case.facts());
    let mut seen = Vec::new();
    loop {
        let asked = if ask_twice {
            match admission.step() {
                Step::Done(verdict) => {
                    let identity = admission.take_identity();
                    return Run {
                        verdict,
                        seen,
                        identity,
                    };
                }
                step => Some(format!("{step:?}")),
            }
        } else {
            None
        };
        let step = admission.step();
        if let Some(asked) = asked {
            assert_eq!(format!("{step:?}"), asked, "asking again changed the step");
        }
        match step {
            Step::Resolve(key) => {
                assert_eq!(key, "k-1");
                seen.push(Seen::Resolve);
                admission.resolved(match case.resolve {
                    ResolveKind::Basic => Ok(Some(identity("basic"))),
                    ResolveKind::GhostTier => Ok(Some(identity("ghost"))),
                    ResolveKind::Unknown => Ok(None),
                    ResolveKind::Fails => Err(AccountError::unavailable("down")),
                });
            }
            Step::Charge { account, price } => {
                assert_eq!((account, price), ("acct-1", PRICE));
                seen.push(Seen::Charge);
                admission.charged(match case.charge {
                    ChargeKind::Charged => Ok(Charge::Charged {
                        remaining: Money::from_dollars(3),
                    }),
                    ChargeKind::Insufficient => Ok(Charge::Insufficient {
                        credit: Money::from_dollars(1),
                        price,
                    }),
                    ChargeKind::Fails => Err(AccountError::unavailable("down")),
                });
            }
            Step::Decide(plan) => {
                seen.push(Seen::Decide);
                let answer = store_answer(case.store, plan.len());
                admission.decided(answer);
            }
            Step::Refund { account, amount } => {
                assert_eq!((account, amount), ("acct-1", PRICE));
                seen.push(Seen::Refund);
                admission.refunded();
            }
            Step::Done(verdict) => {
                let identity = admission.take_identity();
                return Run {
                    verdict,
                    seen,
                    identity,
                };
            }
        }
    }
}

/// The fake store's answer for a plan of `limits` limits.
fn store_answer(kind: StoreKind, limits: usize) -> Result<Receipt, StoreError> {
    let admitted = LimitOutcome {
        admits: true,
        remaining: 1,
        reset_after_ms: 20_000,
        retry_after_ms: 0,
    };
    let mut outcomes: Outcomes = (0..limits).map(|_| admitted).collect();
    match kind {
        StoreKind::Admits => {}
        StoreKind::Refuses(i) => {
            outcomes[i % limits] = LimitOutcome {
                admits: false,
                remaining: 0,
                reset_after_ms: 30_000,
                retry_after_ms: 30_000,
            };
        }
        StoreKind::Fails => return Err(StoreError::timeout(50)),
        StoreKind::Mismatch => outcomes.push(admitted),
    }
    Ok(Receipt::new(outcomes, Timestamp::from_secs(1_700_000_000)))
}

fn identity(tier: &str) -> Identity {
    Identity {
        account: "acct-1".into(),
        tier: tier.into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// The first failing check answers, in the documented order; a charge
    /// that ends in a refusal is given back exactly once; nothing is
    /// charged on 400/401/404/413; unmetered endpoints are neither charged
    /// nor decided; a store that fails is 503; shadow mode refuses nothing
    /// but a path, charges nothing, and still reports.
    #[test]
    fn the_first_failing_check_answers_and_every_refused_charge_is_refunded(case in case()) {
        let policy = policy();
        let Run { verdict, seen, identity } = drive(&case, &policy, false);
        let expected = case.expected();

        // The answer: in shadow mode only a path is refused, and the
        // refusal that was not enforced is the one that would have been.
        let path_refused = expected.status == 400 && seen.is_empty();
        match &verdict {
            Verdict::Refuse(refusal) => {
                prop_assert!(!case.shadow || path_refused, "shadow mode refused {:?}", refusal);
                prop_assert_eq!(refusal.status(), expected.status);
                prop_assert_eq!(refusal.report.is_some(), refusal.status() == 429);
            }
            Verdict::Admit(admit) => {
                let would_be = admit.shadowed.as_ref().map_or(200, Reason::status);
                prop_assert_eq!(would_be, expected.status, "{:?}", admit);
                prop_assert!(case.shadow || admit.shadowed.is_none());
            }
        }

        // Each fake is asked at most once, in this order.
        let order = [Seen::Resolve, Seen::Charge, Seen::Decide, Seen::Refund];
        let mut from = 0;
        for s in &seen {
            let Some(i) = order[from..].iter().position(|o| o == s) else {
                return Err(TestCaseError::fail(format!("{s:?} out of order in {seen:?}")));
            };
            from += i + 1;
        }
        prop_assert_eq!(seen.contains(&Seen::Charge), expected.asks_charge);
        prop_assert_eq!(seen.contains(&Seen::Decide), expected.decided);
        if matches!(expected.status, 400 | 401 | 404 | 413) {
            prop_assert!(!seen.contains(&Seen::Charge));
        }

        // Refunds: exactly once for a charge that ends refused, else never.
        let charged = expected.asks_charge && case.charge == ChargeKind::Charged;
        let refused = matches!(verdict, Verdict::Refuse(_));
        let refunds = seen.iter().filter(|s| **s == Seen::Refund).count();
        prop_assert_eq!(refunds, usize::from(charged && refused));

        if let Verdict::Admit(admit) = &verdict {
            // A charge kept is handed on, to give back if the body breaks a rule.
            prop_assert_eq!(admit.charged, charged.then_some(PRICE));
            // So is the store's receipt, when the decision counted the request.
            prop_assert_eq!(admit.receipt.is_some(), expected.decided && expected.status == 200);
            prop_assert_eq!(admit.guard_body, !case.shadow && expected.decided);
            // Reported whenever the limits were decided.
            prop_assert_eq!(admit.report.is_some(), expected.decided && matches!(expected.status, 200 | 429));
            if let Some(report) = &admit.report {
                prop_assert_eq!(report.is_admitted(), expected.status == 200);
                prop_assert!(report.ietf());
            }
            if expected.status == 429 {
                prop_assert_eq!(admit.report.as_ref().and_then(|r| r.retry_after_secs()), Some(30));
            }
            // Unmetered: the key is checked, nothing else.
            if case.path == PathKind::Unmetered && expected.status == 200 {
                prop_assert!(!expected.decided);
                prop_assert_eq!(&seen, &[Seen::Resolve]);
                prop_assert!(admit.report.is_none() && !admit.guard_body);
            }
            // The path served is the one checked.
            let rewritten = case.path == PathKind::DotSegment;
            prop_assert_eq!(admit.path.as_deref(), rewritten.then_some("/v1/txt2img"));
        }

        // The identity, once resolved, is the caller's.
        let resolved = seen.contains(&Seen::Resolve)
            && matches!(case.resolve, ResolveKind::Basic | ResolveKind::GhostTier);
        prop_assert_eq!(identity.is_some(), resolved);

        // Asking for a step again before answering it changes nothing.
        if case.ask_twice {
            let again = drive(&case, &policy, true);
            prop_assert_eq!(format!("{:?}", again.verdict), format!("{verdict:?}"));
            prop_assert_eq!(again.seen, seen);
        }
    }
}

/// Answers given out of turn are ignored.
#[test]
fn answers_out_of_turn_are_ignored() {
    let policy = policy();
    let config = AdmissionConfig::default();
    let mut admission = Admission::new(&config, &policy, RequestFacts::new("/v1/paid", Ok("k-1")));
    admission.charged(Ok(Charge::Charged {
        remaining: Money::ZERO,
    }));
    admission.decided(Err(StoreError::timeout(1)));
    admission.refunded();
    assert!(matches!(admission.step(), Step::Resolve("k-1")));
    admission.resolved(Ok(Some(identity("basic"))));
    admission.resolved(Ok(None));
    assert!(matches!(admission.step(), Step::Charge { .. }));
}

/// The messages of the refusals are the contract's.
#[test]
fn refusals_say_what_to_fix() {
    let policy = policy();
    let config = AdmissionConfig::default();
    let refusal =
        |path: &'static str,
         key: Result<&'static str, &'static (dyn std::error::Error + Send + Sync)>| {
            let mut admission = Admission::new(&config, &policy, RequestFacts::new(path, key));
            loop {
                match admission.step() {
                    Step::Resolve(_) => admission.resolved(Ok(Some(identity("basic")))),
                    Step::Done(Verdict::Refuse(r)) => break (r.status(), r.reason.to_string()),
                    other => panic!("{other:?}"),
                }
            }
        };
    assert_eq!(
        refusal("/v1/a//b", Ok("k")),
        (
            400,
            "invalid request path: the path holds an empty segment ('//')".into()
        )
    );
    assert_eq!(
        refusal("/v1/txt2img", Err(&NO_KEY)),
        (401, "missing API key".into())
    );
    assert_eq!(
        refusal("/v2/x", Ok("k")),
        (
            404,
            "path \"/v2/x\" is not under the API prefix \"/v1/\"".into()
        )
    );
    assert_eq!(
        refusal("/v1/nope", Ok("k")),
        (404, "unknown endpoint \"nope\"".into())
    );
    let insufficient = Reason::InsufficientCredit {
        endpoint: "paid".into(),
        price: PRICE,
        credit: Money::from_dollars(1),
    };
    assert_eq!(
        insufficient.to_string(),
        "insufficient credit: paid costs $2.00, the account has $1.00"
    );
    assert_eq!(insufficient.status(), 402);
}
