//! The admin API: create accounts, record payments, look accounts up.
//!
//! Every route needs `Authorization: Bearer <admin token>`, compared in
//! constant time. Wrong tokens are limited per client address
//! ([`AdminGuard`](guard::AdminGuard)): past the limit, 429
//! with `Retry-After`, whatever the token. API keys are returned once, at
//! creation, and never logged.
//!
//! | route | does |
//! |---|---|
//! | `POST /admin/accounts` | creates an account on the policy's signup tier with $5 credit; `201 {"id","key","tier","credit"}` |
//! | `GET /admin/accounts/{id}` | the account: tier, credit, paid, spent, requests, and its limits now |
//! | `POST /admin/accounts/{id}/payments` `{"amount":"10.00"}` | adds the amount to the credit and moves the account to the policy's payment tier at once |

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use quota_core::account::{Account, AccountAdmin, AccountError, Identity, NewAccount};
use quota_core::policy::Money;
use quota_transport::response::RequestId;
use serde::Deserialize as _;
use serde_json::json;
use subtle::ConstantTimeEq;

pub(crate) mod guard;

use crate::ids::{new_account_id, new_api_key};
use crate::limits;
use crate::respond::{self, json, message, server_error, Body, BoxError};
use crate::shared::{now, Shared};

use quota_transport::response::TEMPORARILY_UNAVAILABLE;

/// The credit of a new account: $5, given at sign-up (`docs/contract.md`, section 6).
pub(crate) const SIGNUP_CREDIT: Money = Money::from_dollars(5);

/// Largest admin request body.
const MAX_BODY: usize = 64 * 1024;

/// What a request's `Authorization` says about the admin token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    /// The admin token.
    Granted,
    /// No `Authorization` header.
    Missing,
    /// A token that is not the admin token (or another scheme).
    Wrong,
}

/// Whether `headers` carry the admin token (compared in constant time).
fn authorized(expected: &str, headers: &http::HeaderMap) -> Auth {
    let Some(given) = headers.get(header::AUTHORIZATION) else {
        return Auth::Missing;
    };
    let Some((scheme, token)) = given.to_str().ok().and_then(|g| g.trim().split_once(' ')) else {
        return Auth::Wrong;
    };
    if scheme.eq_ignore_ascii_case("bearer")
        && bool::from(token.trim().as_bytes().ct_eq(expected.as_bytes()))
    {
        Auth::Granted
    } else {
        Auth::Wrong
    }
}

/// A 401 with `msg` and `WWW-Authenticate: Bearer`.
fn unauthorized(msg: &str) -> Response<Body> {
    let mut res = message(StatusCode::UNAUTHORIZED, msg);
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    res
}

/// The 429 for an address with too many failed authentications, with
/// `Retry-After` (whole seconds, at least 1).
fn too_many_failures(wait: Duration) -> Response<Body> {
    let secs = u64::try_from(wait.as_millis().div_ceil(1000).max(1)).unwrap_or(u64::MAX);
    let mut res = message(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many failed admin authentications from this address; try again in {secs} s"),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, http::HeaderValue::from(secs));
    res
}

/// Answers one `/admin/...` request from `client` (the address failed
/// authentications are counted by).
pub(crate) async fn handle<B>(shared: &Shared, req: Request<B>, client: IpAddr) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Some(token) = shared.admin_token.as_deref() else {
        return message(
            StatusCode::FORBIDDEN,
            "the admin API is disabled: start quota serve with --admin-token",
        );
    };
    let auth = authorized(token, req.headers());
    // Limited per address: a wrong token is counted, and past the limit
    // every request from there is refused, whatever its token.
    if let Err(wait) = shared
        .admin_guard
        .check_attempt(client, auth == Auth::Wrong, now())
    {
        tracing::debug!(%client, path = req.uri().path(), "admin request refused: too many failed authentications");
        return too_many_failures(wait);
    }
    match auth {
        Auth::Granted => {}
        Auth::Missing => {
            return unauthorized("admin token required: send `Authorization: Bearer TOKEN`")
        }
        Auth::Wrong => {
            tracing::warn!(%client, path = req.uri().path(), "admin request with a wrong token");
            return unauthorized("wrong admin token");
        }
    }
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    match (method, segments.as_slice()) {
        (Method::POST, ["admin", "accounts"]) => create(shared).await,
        (Method::GET, ["admin", "accounts", id]) => show(shared, id).await,
        (Method::POST, ["admin", "accounts", id, "payments"]) => {
            let id = (*id).to_owned();
            let body = match read_body(req.into_body()).await {
                Ok(b) => b,
                Err(res) => return res,
            };
            match payment_amount(&body) {
                Ok(amount) => pay(shared, &id, amount).await,
                Err(why) => message(StatusCode::BAD_REQUEST, why),
            }
        }
        (_, ["admin", "accounts"] | ["admin", "accounts", _, "payments"]) => {
            method_not_allowed("POST")
        }
        (_, ["admin", "accounts", _]) => method_not_allowed("GET"),
        _ => message(StatusCode::NOT_FOUND, "no such admin route"),
    }
}

/// A 405 naming the one method the route answers, in `Allow` too.
fn method_not_allowed(allow: &'static str) -> Response<Body> {
    respond::method_not_allowed(
        format!("method not allowed on this admin route: use {allow}"),
        allow,
    )
}

/// The largest payment accepted at once: $1,000,000,000. A larger one is
/// surely a mistake, and credit stays far from the largest amount.
pub(crate) const MAX_PAYMENT: Money = Money::from_dollars(1_000_000_000);

/// What a payment body shows: `{"amount": "10.00"}` or `{"amount": 10}`.
const PAYMENT_EXAMPLE: &str = r#"expected {"amount": "10.00"}"#;

/// The amount of a payment body, exact and in range; otherwise why not,
/// for a 400.
fn payment_amount(body: &[u8]) -> Result<Money, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        // serde_json refuses a number beyond any f64 (`1e309`) while it
        // parses, and says so only in its message.
        if e.to_string().starts_with("number out of range") {
            "invalid payment: the amount is too large".to_owned()
        } else {
            format!("invalid payment: the body is not JSON ({e}); {PAYMENT_EXAMPLE}")
        }
    })?;
    let serde_json::Value::Object(fields) = value else {
        return Err(format!(
            "invalid payment: the body is not a JSON object; {PAYMENT_EXAMPLE}"
        ));
    };
    if let Some(other) = fields.keys().find(|k| *k != "amount") {
        return Err(format!(
            "invalid payment: unknown field {other:?}; {PAYMENT_EXAMPLE}"
        ));
    }
    let Some(amount) = fields.get("amount") else {
        return Err(format!(
            "invalid payment: the amount is missing; {PAYMENT_EXAMPLE}"
        ));
    };
    // Exact or refused, never saturated (see `Money`'s `Deserialize`).
    let amount = Money::deserialize(amount).map_err(|e| format!("invalid payment: {e}"))?;
    if amount == Money::ZERO {
        return Err("invalid payment: the amount must be more than 0".to_owned());
    }
    if amount > MAX_PAYMENT {
        return Err(format!(
            "invalid payment: amount {amount} is too large (at most {MAX_PAYMENT} at once)"
        ));
    }
    Ok(amount)
}

/// A request body of at most [`MAX_BODY`] bytes, or the 413.
async fn read_body<B>(body: B) -> Result<Bytes, Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "admin request body too large (64 KiB at most)",
        )),
    }
}

fn account_error(e: &AccountError) -> Response<Body> {
    match e {
        AccountError::NotFound(id) => {
            message(StatusCode::NOT_FOUND, format!("account {id:?} not found"))
        }
        AccountError::Exists(id) => message(
            StatusCode::CONFLICT,
            format!("account {id:?} already exists"),
        ),
        other => {
            let id = RequestId::new();
            tracing::error!(request_id = %id, error = %other, "account store failed");
            server_error(StatusCode::SERVICE_UNAVAILABLE, TEMPORARILY_UNAVAILABLE, id)
        }
    }
}

fn account_json(a: &Account) -> serde_json::Value {
    json!({
        "id": a.id,
        "tier": a.tier,
        "credit": a.credit.to_string(),
        "paid": a.paid.to_string(),
        "spent": a.spent.to_string(),
        "requests": a.requests,
        "created_at": a.created_at.as_millis() / 1000,
    })
}

async fn create(shared: &Shared) -> Response<Body> {
    let policy = shared.policy.load();
    let Some(tier) = policy.signup_tier().map(|t| t.name().to_owned()) else {
        return message(
            StatusCode::CONFLICT,
            "the policy has no signup tier (granted = \"signup\"): cannot create accounts",
        );
    };
    let (id, key) = (new_account_id(), new_api_key());
    let new = NewAccount {
        id: id.clone(),
        api_key: key.clone(),
        tier: tier.clone(),
        credit: SIGNUP_CREDIT,
    };
    match shared.accounts.create(new, now()).await {
        Ok(a) => {
            tracing::info!(account = %a.id, tier = %a.tier, "account created");
            let mut body = account_json(&a);
            body["key"] = json!(key);
            json(StatusCode::CREATED, &body)
        }
        Err(e) => account_error(&e),
    }
}

async fn show(shared: &Shared, id: &str) -> Response<Body> {
    let account = match shared.accounts.get(id).await {
        Ok(Some(a)) => a,
        Ok(None) => return account_error(&AccountError::NotFound(id.to_owned())),
        Err(e) => return account_error(&e),
    };
    let mut body = account_json(&account);
    let policy = shared.policy.load();
    let who = Identity {
        account: account.id.clone(),
        tier: account.tier.clone(),
    };
    match limits::report(&policy, &*shared.store, &who, Some(&account), now()).await {
        Ok(report) => body["limits"] = report["resources"].clone(),
        Err(e) => {
            shared.metrics.record_store_error();
            let id = RequestId::new();
            tracing::error!(request_id = %id, error = %e, "cannot read an account's limits");
            body["limits_error"] = json!(TEMPORARILY_UNAVAILABLE);
            body["request_id"] = json!(id.to_string());
        }
    }
    json(StatusCode::OK, &body)
}

/// Records a payment of `amount` (more than 0, checked by [`payment_amount`]).
async fn pay(shared: &Shared, id: &str, amount: Money) -> Response<Body> {
    let policy = shared.policy.load();
    let tier = match policy.payment_tier() {
        Some(t) => t.name().to_owned(),
        // No tier is granted on payment: the account keeps its tier.
        None => match shared.accounts.get(id).await {
            Ok(Some(a)) => a.tier,
            Ok(None) => return account_error(&AccountError::NotFound(id.to_owned())),
            Err(e) => return account_error(&e),
        },
    };
    match shared.accounts.record_payment(id, amount, &tier).await {
        Ok(a) => {
            tracing::info!(account = %a.id, amount = %amount, tier = %a.tier, "payment recorded");
            json(StatusCode::OK, &account_json(&a))
        }
        Err(e) => account_error(&e),
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn headers(v: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let t = "s3cret-token";
        assert_eq!(
            authorized(t, &headers("Bearer s3cret-token")),
            Auth::Granted
        );
        assert_eq!(
            authorized(t, &headers("bearer  s3cret-token ")),
            Auth::Granted
        );
        assert_eq!(authorized(t, &headers("Bearer s3cret-toke")), Auth::Wrong);
        assert_eq!(authorized(t, &headers("Bearer s3cret-token2")), Auth::Wrong);
        assert_eq!(authorized(t, &headers("Basic s3cret-token")), Auth::Wrong);
        assert_eq!(authorized(t, &headers("s3cret-token")), Auth::Wrong);
        assert_eq!(authorized(t, &http::HeaderMap::new()), Auth::Missing);
    }

    #[test]
    fn payments_are_exact_positive_and_in_range() {
        let ok = |body: &str| payment_amount(body.as_bytes()).unwrap();
        assert_eq!(ok(r#"{"amount": "10.00"}"#), Money::from_dollars(10));
        assert_eq!(ok(r#"{"amount": 10}"#), Money::from_dollars(10));
        assert_eq!(ok(r#"{"amount": 0.5}"#), Money::from_micros(500_000));
        assert_eq!(ok(r#"{"amount": "1000000000"}"#), MAX_PAYMENT);
        let refused = |body: &str, says: &str| {
            let why = payment_amount(body.as_bytes()).unwrap_err();
            assert!(
                why.contains("payment") && why.contains(says),
                "{body}: {why}"
            );
        };
        refused("[1]", "not a JSON object");
        refused("1", "not a JSON object");
        refused("nonsense", "not JSON");
        refused(r#"{"amount": 1e30}"#, "too large");
        refused(r#"{"amount": 1e309}"#, "too large");
        refused(r#"{"amount": 18446744073710}"#, "too large");
        refused(r#"{"amount": "1000000000.01"}"#, "too large");
        refused(r#"{"amount": -5}"#, "negative");
        refused(r#"{"amount": "-5"}"#, "negative");
        refused(r#"{"amount": -0.5}"#, "negative");
        refused(r#"{"amount": "abc"}"#, "invalid amount");
        refused(r#"{"amount": 0.0000001}"#, "at most 6 decimals");
        refused(r#"{"amount": 0}"#, "must be more than 0");
        refused(r#"{"amount": "0.00"}"#, "must be more than 0");
        refused(r#"{"amount": [1]}"#, "invalid type");
        refused(r#"{}"#, "missing");
        refused(r#"{"amount": 1, "tip": 2}"#, "unknown field");
    }
}
