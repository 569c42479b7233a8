//! The admin API: create accounts, record payments, look accounts up.
//!
//! Every route needs `Authorization: Bearer <admin token>`, compared in
//! constant time. API keys are returned once, at creation, and never logged.
//!
//! | route | does |
//! |---|---|
//! | `POST /admin/accounts` | creates an account on the policy's signup tier with $5 credit; `201 {"id","key","tier","credit"}` |
//! | `GET /admin/accounts/{id}` | the account: tier, credit, paid, spent, requests, and its limits now |
//! | `POST /admin/accounts/{id}/payments` `{"amount":"10.00"}` | adds the amount to the credit and moves the account to the policy's payment tier at once |

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use quota_core::account::{Account, AccountAdmin, AccountError, Identity, NewAccount};
use quota_core::policy::Money;
use quota_transport::response::RequestId;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::accounts::{new_account_id, new_api_key};
use super::respond::{json, message, server_error, Body, BoxError, TEMPORARILY_UNAVAILABLE};
use super::{limits, now, Shared};

/// The credit of a new account: $5 (SPEC: "given automatically at sign-up, with $5 of free credit").
pub(crate) const SIGNUP_CREDIT: Money = Money::from_dollars(5);

/// Largest admin request body.
const MAX_BODY: usize = 64 * 1024;

/// Whether `headers` carry the admin token.
fn authorized(expected: &str, headers: &http::HeaderMap) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, token)) = given.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && bool::from(token.trim().as_bytes().ct_eq(expected.as_bytes()))
}

/// Answers one `/admin/...` request.
pub(crate) async fn handle<B>(shared: &Shared, req: Request<B>) -> Response<Body>
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
    if !authorized(token, req.headers()) {
        tracing::warn!(
            path = req.uri().path(),
            "admin request with a missing or wrong token"
        );
        let mut res = message(
            StatusCode::UNAUTHORIZED,
            "admin token required: send `Authorization: Bearer TOKEN`",
        );
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        return res;
    }
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    match (method, segments.as_slice()) {
        (Method::POST, ["admin", "accounts"]) => create(shared).await,
        (Method::GET, ["admin", "accounts", id]) => show(shared, id).await,
        (Method::POST, ["admin", "accounts", id, "payments"]) => {
            let id = (*id).to_owned();
            match read_json::<PaymentBody, B>(req.into_body()).await {
                Ok(p) => pay(shared, &id, p.amount).await,
                Err(res) => res,
            }
        }
        (
            _,
            ["admin", "accounts"] | ["admin", "accounts", _] | ["admin", "accounts", _, "payments"],
        ) => message(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this admin route",
        ),
        _ => message(StatusCode::NOT_FOUND, "no such admin route"),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentBody {
    amount: Money,
}

async fn read_json<T: serde::de::DeserializeOwned, B>(body: B) -> Result<T, Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Err(message(
                StatusCode::PAYLOAD_TOO_LARGE,
                "admin request body too large (64 KiB at most)",
            ))
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        message(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body: {e} (expected {{\"amount\": \"10.00\"}})"),
        )
    })
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

async fn pay(shared: &Shared, id: &str, amount: Money) -> Response<Body> {
    if amount == Money::ZERO {
        return message(StatusCode::BAD_REQUEST, "a payment must be more than 0");
    }
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
        assert!(authorized("s3cret-token", &headers("Bearer s3cret-token")));
        assert!(authorized(
            "s3cret-token",
            &headers("bearer  s3cret-token ")
        ));
        assert!(!authorized("s3cret-token", &headers("Bearer s3cret-toke")));
        assert!(!authorized(
            "s3cret-token",
            &headers("Bearer s3cret-token2")
        ));
        assert!(!authorized("s3cret-token", &headers("Basic s3cret-token")));
        assert!(!authorized("s3cret-token", &http::HeaderMap::new()));
    }
}
