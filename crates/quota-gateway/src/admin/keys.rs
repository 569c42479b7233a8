//! The key routes: create, list, revoke, rotate. A key is shown with its id,
//! name, creation, last use and expiry; the key itself only by the request
//! that creates it.

use std::time::Duration;

use http::{Response, StatusCode};
use quota_core::account::{AccountAdmin, KeyInfo, NewKey};
use quota_core::Timestamp;
use serde_json::json;

use super::accounts::no_content;
use super::{account_error, query, Admin};
use crate::ids::{new_api_key, new_key_id};
use crate::respond::{json, message, Body};
use crate::shared::now;

/// Seconds since the epoch, as every admin timestamp.
fn secs(t: Timestamp) -> u64 {
    t.as_millis() / 1000
}

/// A key as the admin API shows it (never the key itself).
pub(crate) fn key_json(k: &KeyInfo) -> serde_json::Value {
    json!({
        "id": k.id,
        "name": k.name,
        "created": secs(k.created),
        "last_used": k.last_used.map(secs),
        "expires": k.expires.map(secs),
    })
}

/// Adds a new key named `name` to `account`: its info and the key.
async fn add(
    admin: &Admin<'_>,
    account: &str,
    name: String,
) -> Result<(KeyInfo, String), Response<Body>> {
    let api_key = new_api_key();
    let new = NewKey {
        id: new_key_id(),
        name,
        api_key: api_key.clone(),
    };
    match admin.shared.accounts.add_key(account, new, now()).await {
        Ok(info) => Ok((info, api_key)),
        Err(e) => Err(account_error(&e)),
    }
}

/// `POST /admin/accounts/{id}/keys` `{"name": "ci"}`: 201 with the key, once.
pub(crate) async fn create(admin: &Admin<'_>, account: &str, body: &[u8]) -> Response<Body> {
    let name = match query::key_name(body) {
        Ok(n) => n,
        Err(why) => return message(StatusCode::BAD_REQUEST, why),
    };
    match add(admin, account, name).await {
        Ok((info, key)) => {
            admin.audit("key.create", account, Some(&info.id));
            let mut body = key_json(&info);
            body["key"] = json!(key);
            json(StatusCode::CREATED, &body)
        }
        Err(res) => res,
    }
}

/// `GET /admin/accounts/{id}/keys`: the keys that work, oldest first.
pub(crate) async fn list(admin: &Admin<'_>, account: &str) -> Response<Body> {
    match admin.shared.accounts.list_keys(account, now()).await {
        Ok(keys) => {
            let keys: Vec<_> = keys.iter().map(key_json).collect();
            json(StatusCode::OK, &json!({ "keys": keys }))
        }
        Err(e) => account_error(&e),
    }
}

/// `DELETE /admin/accounts/{id}/keys/{key_id}`: stops at once, on every
/// gateway sharing the store.
pub(crate) async fn revoke(admin: &Admin<'_>, account: &str, key: &str) -> Response<Body> {
    match admin.shared.accounts.revoke_key(account, key).await {
        Ok(()) => {
            admin.audit("key.revoke", account, Some(key));
            no_content()
        }
        Err(e) => account_error(&e),
    }
}

/// `POST /admin/accounts/{id}/keys/{key_id}/rotate` `{"grace_seconds": N}`:
/// a new key with the old one's name (201, the key shown once); the old one
/// works for the grace period (none: it stops at once), then stops.
pub(crate) async fn rotate(
    admin: &Admin<'_>,
    account: &str,
    key: &str,
    body: &[u8],
) -> Response<Body> {
    let grace = match query::grace(body) {
        Ok(g) => g,
        Err(why) => return message(StatusCode::BAD_REQUEST, why),
    };
    let at = now();
    let old = match admin.shared.accounts.list_keys(account, at).await {
        Ok(keys) => keys.into_iter().find(|k| k.id == key),
        Err(e) => return account_error(&e),
    };
    let Some(old) = old else {
        return account_error(&quota_core::account::AccountError::KeyNotFound {
            account: account.to_owned(),
            key: key.to_owned(),
        });
    };
    let (new, secret) = match add(admin, account, old.name.clone()).await {
        Ok(added) => added,
        Err(res) => return res,
    };
    let replaced = if grace == Duration::ZERO {
        admin
            .shared
            .accounts
            .revoke_key(account, key)
            .await
            .map(|()| KeyInfo {
                expires: Some(at),
                ..old
            })
    } else {
        admin
            .shared
            .accounts
            .expire_key(account, key, at.saturating_add(grace))
            .await
    };
    match replaced {
        Ok(replaced) => {
            admin.audit("key.rotate", account, Some(key));
            admin.audit("key.create", account, Some(&new.id));
            let mut body = key_json(&new);
            body["key"] = json!(secret);
            body["replaces"] = key_json(&replaced);
            json(StatusCode::CREATED, &body)
        }
        Err(e) => {
            // The old key is as it was: take the new one back.
            if let Err(undo) = admin.shared.accounts.revoke_key(account, &new.id).await {
                tracing::error!(error = %undo, account, key_id = %new.id, "cannot take back the key of a failed rotation");
            }
            account_error(&e)
        }
    }
}
