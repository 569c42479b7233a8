//! The admin API: accounts, their keys, payments, usage, and the OpenAPI
//! document of it all.
//!
//! Every route needs `Authorization: Bearer <admin token>`, compared in
//! constant time with each configured token ([`tokens`]). Wrong tokens are
//! limited per client address ([`AdminGuard`](guard::AdminGuard)): past the
//! limit, 429 with `Retry-After`, whatever the token. API keys are returned
//! once, by the request that creates them, and never logged. Every change
//! is logged as an audit line: a `tracing` event with target `quota::audit`
//! and the fields `who` (the admin token's name), `what`, `account` and
//! `key_id` where there is one.
//!
//! | route | does |
//! |---|---|
//! | `POST /admin/accounts` | creates an account on the policy's signup tier with $5 credit and its first key (`default`); `201 {"id","key","key_id","tier","credit",...}` |
//! | `GET /admin/accounts?limit=&cursor=&tier=` | accounts in id order, a page at a time: `{"accounts":[...],"next_cursor"}` |
//! | `GET /admin/accounts/{id}` | the account: tier, credit, paid, spent, requests, and its limits now |
//! | `PATCH /admin/accounts/{id}` `{"tier":"basic","credit":"2.50"}` | sets the tier (up or down) and/or the credit |
//! | `DELETE /admin/accounts/{id}` | deletes the account; its keys stop at once |
//! | `POST /admin/accounts/{id}/payments` `{"amount":"10.00"}` | adds the amount to the credit and moves the account to the policy's payment tier at once |
//! | `POST /admin/accounts/{id}/keys` `{"name":"ci"}` | a new key, returned once |
//! | `GET /admin/accounts/{id}/keys` | the keys: id, name, created, last used, expiry; never the key |
//! | `DELETE /admin/accounts/{id}/keys/{key_id}` | revokes the key at once |
//! | `POST /admin/accounts/{id}/keys/{key_id}/rotate` `{"grace_seconds":3600}` | a new key; the old one works for the grace period, then stops |
//! | `DELETE /admin/accounts/{id}/usage` | resets the account's rate-limit counters |
//! | `GET /admin/openapi.json` | the OpenAPI 3.1 document of these routes and `/v1/limits` |
//! | `/admin/ui/...` | the operator's page: HTML with its own sign-in (a session cookie), not this module (see `crate::ui`); left out of the OpenAPI document |

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use quota_core::account::AccountError;
use quota_core::policy::Money;
use quota_transport::response::RequestId;
use serde::Deserialize as _;

pub(crate) mod accounts;
pub(crate) mod guard;
pub(crate) mod keys;
mod query;
pub(crate) mod tokens;

use crate::respond::{self, message, server_error, Body, BoxError};
use crate::shared::{now, Shared};

use quota_transport::response::TEMPORARILY_UNAVAILABLE;

/// The credit of a new account: $5, given at sign-up (`docs/contract.md`, section 6).
pub(crate) const SIGNUP_CREDIT: Money = Money::from_dollars(5);

/// Largest admin request body.
const MAX_BODY: usize = 64 * 1024;

/// The OpenAPI 3.1 document of the admin API and `/v1/limits`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What a request's `Authorization` says about the admin token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth<'t> {
    /// An admin token: its name.
    Granted(&'t str),
    /// No `Authorization` header.
    Missing,
    /// A token that is not an admin token (or another scheme).
    Wrong,
}

/// Whether `headers` carry an admin token (compared in constant time).
fn authorized<'t>(tokens: &'t tokens::AdminTokens, headers: &http::HeaderMap) -> Auth<'t> {
    let Some(given) = headers.get(header::AUTHORIZATION) else {
        return Auth::Missing;
    };
    let Some((scheme, token)) = given.to_str().ok().and_then(|g| g.trim().split_once(' ')) else {
        return Auth::Wrong;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Auth::Wrong;
    }
    tokens.find(token.trim()).map_or(Auth::Wrong, Auth::Granted)
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

/// One authenticated admin request: who sent it, for the audit lines.
pub(crate) struct Admin<'a> {
    pub(crate) shared: &'a Shared,
    /// The admin token's name.
    pub(crate) who: &'a str,
}

impl Admin<'_> {
    /// Logs a change as an audit line (target `quota::audit`).
    pub(crate) fn audit(&self, what: &str, account: &str, key_id: Option<&str>) {
        tracing::info!(
            target: "quota::audit",
            who = %self.who,
            what,
            account,
            key_id = key_id.unwrap_or(""),
            "admin change"
        );
    }
}

/// Answers one `/admin/...` request from `client` (the address failed
/// authentications are counted by).
pub(crate) async fn handle<B>(shared: &Shared, req: Request<B>, client: IpAddr) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Some(tokens) = shared.admin_tokens.as_ref() else {
        return message(
            StatusCode::FORBIDDEN,
            "the admin API is disabled: start quota serve with --admin-token",
        );
    };
    let auth = authorized(tokens, req.headers());
    // Limited per address: a wrong token is counted, and past the limit
    // every request from there is refused, whatever its token.
    if let Err(wait) = shared
        .admin_guard
        .check_attempt(client, auth == Auth::Wrong, now())
    {
        tracing::debug!(%client, path = req.uri().path(), "admin request refused: too many failed authentications");
        return too_many_failures(wait);
    }
    let who = match auth {
        Auth::Granted(who) => who,
        Auth::Missing => {
            return unauthorized("admin token required: send `Authorization: Bearer TOKEN`")
        }
        Auth::Wrong => {
            tracing::warn!(%client, path = req.uri().path(), "admin request with a wrong token");
            return unauthorized("wrong admin token");
        }
    };
    let admin = Admin { shared, who };
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let query = req.uri().query().map(str::to_owned);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    let route = match Route::of(&segments) {
        Some(route) => route,
        None => return message(StatusCode::NOT_FOUND, "no such admin route"),
    };
    if !route.allows(&method) {
        return method_not_allowed(route.allow());
    }
    let body = if method == Method::POST || method == Method::PATCH {
        match read_body(req.into_body()).await {
            Ok(b) => b,
            Err(res) => return res,
        }
    } else {
        Bytes::new()
    };
    match (route, method) {
        (Route::OpenApi, _) => openapi(),
        (Route::Accounts, Method::POST) => accounts::create(&admin).await,
        (Route::Accounts, _) => accounts::list(&admin, query.as_deref()).await,
        (Route::Account(id), Method::GET | Method::HEAD) => accounts::show(&admin, id).await,
        (Route::Account(id), Method::PATCH) => accounts::update(&admin, id, &body).await,
        (Route::Account(id), _) => accounts::delete(&admin, id).await,
        (Route::Payments(id), _) => match payment_amount(&body) {
            Ok(amount) => accounts::pay(&admin, id, amount).await,
            Err(why) => message(StatusCode::BAD_REQUEST, why),
        },
        (Route::Usage(id), _) => accounts::reset_usage(&admin, id).await,
        (Route::Keys(id), Method::POST) => keys::create(&admin, id, &body).await,
        (Route::Keys(id), _) => keys::list(&admin, id).await,
        (Route::Key(id, key), _) => keys::revoke(&admin, id, key).await,
        (Route::Rotate(id, key), _) => keys::rotate(&admin, id, key, &body).await,
    }
}

/// A known admin path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route<'a> {
    OpenApi,
    Accounts,
    Account(&'a str),
    Payments(&'a str),
    Usage(&'a str),
    Keys(&'a str),
    Key(&'a str, &'a str),
    Rotate(&'a str, &'a str),
}

impl<'a> Route<'a> {
    fn of(segments: &[&'a str]) -> Option<Self> {
        Some(match segments {
            ["admin", "openapi.json"] => Route::OpenApi,
            ["admin", "accounts"] => Route::Accounts,
            ["admin", "accounts", id] => Route::Account(id),
            ["admin", "accounts", id, "payments"] => Route::Payments(id),
            ["admin", "accounts", id, "usage"] => Route::Usage(id),
            ["admin", "accounts", id, "keys"] => Route::Keys(id),
            ["admin", "accounts", id, "keys", key] => Route::Key(id, key),
            ["admin", "accounts", id, "keys", key, "rotate"] => Route::Rotate(id, key),
            _ => return None,
        })
    }

    /// The methods the path answers, as `Allow` says them.
    fn allow(self) -> &'static str {
        match self {
            Route::OpenApi => "GET, HEAD",
            Route::Accounts | Route::Keys(_) => "GET, HEAD, POST",
            Route::Account(_) => "GET, HEAD, PATCH, DELETE",
            Route::Payments(_) | Route::Rotate(..) => "POST",
            Route::Usage(_) | Route::Key(..) => "DELETE",
        }
    }

    fn allows(self, method: &Method) -> bool {
        // HEAD is answered as GET (the server drops the body).
        let name = if method == Method::HEAD {
            "HEAD"
        } else {
            method.as_str()
        };
        self.allow().split(", ").any(|m| m == name)
    }
}

/// `GET /admin/openapi.json`.
fn openapi() -> Response<Body> {
    let mut res = Response::new(respond::full(OPENAPI));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

/// A 405 naming the methods the route answers, in `Allow` too.
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

/// The answer for an account store's error: 404, 409, or 503 (logged).
pub(crate) fn account_error(e: &AccountError) -> Response<Body> {
    match e {
        AccountError::NotFound(id) => {
            message(StatusCode::NOT_FOUND, format!("account {id:?} not found"))
        }
        AccountError::KeyNotFound { account, key } => message(
            StatusCode::NOT_FOUND,
            format!("account {account:?} has no key {key:?}"),
        ),
        AccountError::Exists(id) => message(StatusCode::CONFLICT, format!("{id:?} already exists")),
        other => {
            let id = RequestId::new();
            tracing::error!(request_id = %id, error = %other, "account store failed");
            server_error(StatusCode::SERVICE_UNAVAILABLE, TEMPORARILY_UNAVAILABLE, id)
        }
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
        let t = tokens::AdminTokens::new(["s3cret-token", "ci=other-token"]);
        assert_eq!(
            authorized(&t, &headers("Bearer s3cret-token")),
            Auth::Granted("admin")
        );
        assert_eq!(
            authorized(&t, &headers("bearer  s3cret-token ")),
            Auth::Granted("admin")
        );
        assert_eq!(
            authorized(&t, &headers("Bearer other-token")),
            Auth::Granted("ci")
        );
        assert_eq!(authorized(&t, &headers("Bearer s3cret-toke")), Auth::Wrong);
        assert_eq!(
            authorized(&t, &headers("Bearer s3cret-token2")),
            Auth::Wrong
        );
        assert_eq!(
            authorized(&t, &headers("Bearer ci=other-token")),
            Auth::Wrong
        );
        assert_eq!(authorized(&t, &headers("Basic s3cret-token")), Auth::Wrong);
        assert_eq!(authorized(&t, &headers("s3cret-token")), Auth::Wrong);
        assert_eq!(authorized(&t, &http::HeaderMap::new()), Auth::Missing);
    }

    #[test]
    fn every_route_names_its_methods() {
        let r = Route::of(&["admin", "accounts", "a", "keys", "k", "rotate"]).unwrap();
        assert_eq!(r, Route::Rotate("a", "k"));
        assert!(r.allows(&Method::POST) && !r.allows(&Method::GET));
        let a = Route::of(&["admin", "accounts", "a"]).unwrap();
        assert!(a.allows(&Method::PATCH) && a.allows(&Method::HEAD) && !a.allows(&Method::PUT));
        assert_eq!(Route::of(&["admin", "accounts", "a", "nope"]), None);
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
