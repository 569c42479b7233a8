//! The page's forms, done by the admin API's own functions (the same
//! checks, the same changes, the same audit lines, `who` being the
//! session's token name); the answer is the account's page with what
//! happened in `#flash` (and a rotated key's new key, once, in `#new-key`).

use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::html::{self, field};
use super::pages::{self, Flash};
use super::session::Session;
use super::{html as answer, Page};
use crate::admin::{accounts as admin_accounts, keys as admin_keys, Admin};
use crate::respond::Body;
use crate::shared::Shared;

/// Does the form of `page` with `fields`, for `session`.
pub(crate) async fn act(
    shared: &Shared,
    session: &Session,
    page: Page<'_>,
    fields: &[(String, String)],
) -> Response<Body> {
    let admin = Admin {
        shared,
        who: &session.who,
    };
    let (raw_id, done) = match page {
        Page::Tier(id) => {
            let tier = field(fields, "tier").unwrap_or("");
            let Some(id) = html::decode(id, false) else {
                return missing();
            };
            let body = json!({ "tier": tier }).to_string();
            let res = admin_accounts::update(&admin, &id, body.as_bytes()).await;
            (id, outcome(res, format!("Tier set to {tier}.")).await)
        }
        Page::Credit(id) => {
            let credit = field(fields, "credit").unwrap_or("").trim();
            let credit = credit.strip_prefix('$').unwrap_or(credit);
            let Some(id) = html::decode(id, false) else {
                return missing();
            };
            let body = json!({ "credit": credit }).to_string();
            let res = admin_accounts::update(&admin, &id, body.as_bytes()).await;
            (id, outcome(res, format!("Credit set to {credit}.")).await)
        }
        Page::Revoke(id, key) => {
            let (Some(id), Some(key)) = (html::decode(id, false), html::decode(key, false)) else {
                return missing();
            };
            let res = admin_keys::revoke(&admin, &id, &key).await;
            let done = outcome(res, format!("Key {key} revoked.")).await;
            (id, done)
        }
        Page::Rotate(id, key) => {
            let (Some(id), Some(key)) = (html::decode(id, false), html::decode(key, false)) else {
                return missing();
            };
            let grace = field(fields, "grace_seconds").unwrap_or("0").trim();
            // A number as a number; anything else as given, for the admin
            // API to refuse with its message.
            let grace: Value = grace
                .parse::<u64>()
                .map_or_else(|_| json!(grace), |n| json!(n));
            let body = json!({ "grace_seconds": grace }).to_string();
            let res = admin_keys::rotate(&admin, &id, &key, body.as_bytes()).await;
            let mut done = outcome(res, String::new()).await;
            if !done.1.error {
                let new_id = done.2["id"].as_str().unwrap_or("").to_owned();
                done.1.new_key = done.2["key"].as_str().map(str::to_owned);
                let left = done.2["replaces"]["expires"].as_u64().map_or(0, |e| {
                    e.saturating_sub(crate::shared::now().as_millis() / 1000)
                });
                done.1.message = if left == 0 {
                    format!("Key {key} rotated: the new key is {new_id}; the old one is refused from now on.")
                } else {
                    format!("Key {key} rotated: the new key is {new_id}; the old one works for {left} s more.")
                };
            }
            (id, done)
        }
        _ => return missing(),
    };
    let (status, flash, _) = done;
    let (page_status, body) = pages::account(shared, session, &raw_id, Some(flash)).await;
    // The action's failure is the answer's status; otherwise the page's.
    let status = if status.is_success() {
        page_status
    } else {
        status
    };
    answer(status, body)
}

/// The admin function's answer: its status, the flash to show (its
/// `message` when it failed, `ok` otherwise), and its JSON.
async fn outcome(res: Response<Body>, ok: String) -> (StatusCode, Flash, Value) {
    let status = res.status();
    let bytes = match res.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => bytes::Bytes::new(),
    };
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let flash = if status.is_success() {
        Flash {
            message: ok,
            error: false,
            new_key: None,
        }
    } else {
        Flash {
            message: value["message"].as_str().map_or_else(
                || format!("Failed ({status})."),
                |m| format!("Not done: {m}."),
            ),
            error: true,
            new_key: None,
        }
    };
    (status, flash, value)
}

fn missing() -> Response<Body> {
    answer(
        StatusCode::NOT_FOUND,
        html::page(
            "Not found",
            None,
            r#"<h1>Not found</h1><p id="error">No such account or key.</p>"#,
        ),
    )
}
