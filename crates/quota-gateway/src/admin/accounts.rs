//! The account routes: create, list, show, update, delete, pay, reset usage.

use http::{Response, StatusCode};
use quota_core::account::{
    first_key_id, key_digest, Account, AccountAdmin, AccountError, AccountUpdate, Identity,
    NewAccount,
};
use quota_core::policy::Money;
use quota_transport::response::{RequestId, TEMPORARILY_UNAVAILABLE};
use serde_json::json;

use super::{account_error, query, Admin, SIGNUP_CREDIT};
use crate::ids::{new_account_id, new_api_key};
use crate::limits;
use crate::respond::{json, message, server_error, Body};
use crate::shared::now;

/// An account as every admin answer shows it.
pub(crate) fn account_json(a: &Account) -> serde_json::Value {
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

/// A 204.
pub(crate) fn no_content() -> Response<Body> {
    let mut res = Response::new(crate::respond::full(bytes::Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

/// `POST /admin/accounts`.
pub(crate) async fn create(admin: &Admin<'_>) -> Response<Body> {
    let shared = admin.shared;
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
    let created = now();
    match shared.accounts.create(new, created).await {
        Ok(a) => {
            // Every store names an account's first key so.
            let key_id = first_key_id(&key_digest(&key));
            tracing::info!(account = %a.id, tier = %a.tier, "account created");
            admin.audit("account.create", &a.id, Some(&key_id));
            let mut body = account_json(&a);
            body["key"] = json!(key);
            body["key_id"] = json!(key_id);
            json(StatusCode::CREATED, &body)
        }
        Err(e) => account_error(&e),
    }
}

/// `GET /admin/accounts?limit=&cursor=&tier=`: a page in id order; the
/// cursor is the last id of the page before (opaque to callers).
pub(crate) async fn list(admin: &Admin<'_>, raw_query: Option<&str>) -> Response<Body> {
    let q = match query::list_query(raw_query) {
        Ok(q) => q,
        Err(why) => return message(StatusCode::BAD_REQUEST, why),
    };
    // One more than asked: whether there is a next page.
    let mut page = match admin
        .shared
        .accounts
        .list(q.cursor.as_deref(), q.limit + 1, q.tier.as_deref())
        .await
    {
        Ok(p) => p,
        Err(e) => return account_error(&e),
    };
    let more = page.len() > q.limit;
    page.truncate(q.limit);
    let next = if more {
        page.last().map(|a| a.id.clone())
    } else {
        None
    };
    let accounts: Vec<_> = page.iter().map(account_json).collect();
    json(
        StatusCode::OK,
        &json!({ "accounts": accounts, "next_cursor": next }),
    )
}

/// `GET /admin/accounts/{id}`.
pub(crate) async fn show(admin: &Admin<'_>, id: &str) -> Response<Body> {
    let shared = admin.shared;
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

/// `PATCH /admin/accounts/{id}`: the tier (one of the policy's: 422
/// otherwise, naming them) and/or the credit.
pub(crate) async fn update(admin: &Admin<'_>, id: &str, body: &[u8]) -> Response<Body> {
    let patch = match query::patch(body) {
        Ok(p) => p,
        Err(why) => return message(StatusCode::BAD_REQUEST, why),
    };
    if let Some(tier) = &patch.tier {
        let policy = admin.shared.policy.load();
        let known: Vec<String> = policy.tiers().iter().map(|t| t.name().to_owned()).collect();
        if !known.contains(tier) {
            return json(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({
                    "message": format!("unknown tier {tier:?}: the policy's tiers are {}", known.join(", ")),
                    "known_tiers": known,
                }),
            );
        }
    }
    let change = AccountUpdate {
        tier: patch.tier.clone(),
        credit: patch.credit,
    };
    match admin.shared.accounts.update(id, change).await {
        Ok(a) => {
            let what = match (&patch.tier, patch.credit) {
                (Some(_), Some(_)) => "account.update tier credit",
                (Some(_), None) => "account.update tier",
                _ => "account.update credit",
            };
            admin.audit(what, &a.id, None);
            json(StatusCode::OK, &account_json(&a))
        }
        Err(e) => account_error(&e),
    }
}

/// `DELETE /admin/accounts/{id}`: the account and its keys, at once.
pub(crate) async fn delete(admin: &Admin<'_>, id: &str) -> Response<Body> {
    match admin.shared.accounts.delete(id).await {
        Ok(()) => {
            admin.audit("account.delete", id, None);
            no_content()
        }
        Err(e) => account_error(&e),
    }
}

/// `POST /admin/accounts/{id}/payments`: records a payment of `amount`
/// (more than 0, checked by the caller).
pub(crate) async fn pay(admin: &Admin<'_>, id: &str, amount: Money) -> Response<Body> {
    let shared = admin.shared;
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
            admin.audit("account.payment", &a.id, None);
            json(StatusCode::OK, &account_json(&a))
        }
        Err(e) => account_error(&e),
    }
}

/// `DELETE /admin/accounts/{id}/usage`: every rate-limit counter of the
/// account starts again (its credit and ledger are not touched).
pub(crate) async fn reset_usage(admin: &Admin<'_>, id: &str) -> Response<Body> {
    let shared = admin.shared;
    match shared.accounts.get(id).await {
        Ok(Some(_)) => {}
        Ok(None) => return account_error(&AccountError::NotFound(id.to_owned())),
        Err(e) => return account_error(&e),
    }
    match shared.store.reset_account(id).await {
        Ok(()) => {
            admin.audit("account.usage.reset", id, None);
            no_content()
        }
        Err(e) => {
            shared.metrics.record_store_error();
            let rid = RequestId::new();
            tracing::error!(request_id = %rid, error = %e, "cannot reset an account's usage");
            server_error(
                StatusCode::SERVICE_UNAVAILABLE,
                TEMPORARILY_UNAVAILABLE,
                rid,
            )
        }
    }
}
