//! The operator's page: server-rendered HTML under `/admin/ui/`, for the
//! questions asked all day (who is being limited, by which limit, is the
//! 429 rate rising, is the store healthy, what did this account do).
//!
//! | route | does |
//! |---|---|
//! | `GET /admin/ui/login`, `POST /admin/ui/login` (`token`) | the sign-in form; the admin token opens a session (a cookie) |
//! | `POST /admin/ui/logout` | closes the session |
//! | `GET /admin/ui/` | Now: the traffic chart, totals, the most refused accounts, the store, the policy |
//! | `GET /admin/ui/now.svg`, `GET /admin/ui/now.svg?range=5m` | the Now charts alone, the last hour per minute or the last 5 minutes per 5 s (the page's script fetches them every 5 s) |
//! | `GET /admin/ui/accounts?q=&cursor=` | the accounts, searchable, a page at a time |
//! | `GET /admin/ui/accounts/{id}` | one account: limits, refusals, keys, recent requests |
//! | `POST /admin/ui/accounts/{id}/tier` (`tier`), `.../credit` (`credit`) | sets the tier or the credit |
//! | `POST /admin/ui/accounts/{id}/keys/{key_id}/revoke` | revokes the key |
//! | `POST /admin/ui/accounts/{id}/keys/{key_id}/rotate` (`grace_seconds`) | rotates the key; the new one is shown once |
//! | `GET /admin/ui/assets/ui.css`, `.../ui.js` | the page's style and script, compiled in |
//!
//! Sign-in: the form's token is compared like the admin API's bearer token
//! (constant time, named tokens); failed sign-ins count in the admin API's
//! [`AdminGuard`](crate::admin::guard::AdminGuard) (the same per-address
//! limit: past it, a 429 page with `Retry-After`). A session is a random
//! 128-bit id in the cookie `quota_ui` (`HttpOnly`, `SameSite=Strict`,
//! `Path=/admin/ui`, `Secure` on a TLS listener), held server-side
//! ([`session`]). Every POST but the sign-in carries the session's CSRF
//! token in a hidden `csrf` field (compared in constant time); a POST whose
//! `Origin` is not the gateway's own host is refused (403). Signed out, a
//! page is a 303 to the sign-in form, a POST a 403. The actions call the
//! admin API's own functions, so they check, change and audit (`who`: the
//! session's token name) exactly as the admin API does.
//!
//! Every answer carries a strict `Content-Security-Policy` (no inline
//! script or style), `X-Content-Type-Options: nosniff`,
//! `Referrer-Policy: same-origin` and `Cache-Control: no-store`. Without
//! an admin token the page is off, as the admin API is (403).

use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

mod actions;
pub(crate) mod html;
mod pages;
pub(crate) mod session;
pub(crate) mod svg;

use crate::respond::{full, message, Body, BoxError};
use crate::shared::{now, Shared};

/// The page's style sheet.
const CSS: &str = include_str!("assets/ui.css");
/// The page's script: the Now chart's live refresh.
const JS: &str = include_str!("assets/ui.js");

/// The session cookie's name.
const COOKIE: &str = "quota_ui";

/// Largest form body.
const MAX_BODY: usize = 16 * 1024;

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

/// Answers one `/admin/ui...` request from `client` (failed sign-ins are
/// counted by it); `https`: the connection is TLS (the cookie is `Secure`).
pub(crate) async fn handle<B>(
    shared: &Shared,
    req: Request<B>,
    client: IpAddr,
    https: bool,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut res = route(shared, req, client, https).await;
    let h = res.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// A path under `/admin/ui/`, split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page<'a> {
    Now,
    NowSvg,
    Login,
    Logout,
    Css,
    Js,
    Accounts,
    Account(&'a str),
    Tier(&'a str),
    Credit(&'a str),
    Revoke(&'a str, &'a str),
    Rotate(&'a str, &'a str),
}

impl<'a> Page<'a> {
    fn of(path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix("/admin/ui")?;
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let segments: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.trim_end_matches('/').split('/').collect()
        };
        Some(match segments.as_slice() {
            [] => Page::Now,
            ["now.svg"] => Page::NowSvg,
            ["login"] => Page::Login,
            ["logout"] => Page::Logout,
            ["assets", "ui.css"] => Page::Css,
            ["assets", "ui.js"] => Page::Js,
            ["accounts"] => Page::Accounts,
            ["accounts", id] => Page::Account(id),
            ["accounts", id, "tier"] => Page::Tier(id),
            ["accounts", id, "credit"] => Page::Credit(id),
            ["accounts", id, "keys", key, "revoke"] => Page::Revoke(id, key),
            ["accounts", id, "keys", key, "rotate"] => Page::Rotate(id, key),
            _ => return None,
        })
    }

    /// Whether it is a form's target (POST) rather than a page (GET).
    fn is_action(self) -> bool {
        matches!(
            self,
            Page::Logout | Page::Tier(_) | Page::Credit(_) | Page::Revoke(..) | Page::Rotate(..)
        )
    }
}

async fn route<B>(shared: &Shared, req: Request<B>, client: IpAddr, https: bool) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Some(tokens) = shared.admin_tokens.as_ref() else {
        return message(
            StatusCode::FORBIDDEN,
            "the operator's page is disabled: start quota serve with --admin-token",
        );
    };
    let path = req.uri().path().to_owned();
    let Some(page) = Page::of(&path) else {
        return html(StatusCode::NOT_FOUND, not_found("No such page."));
    };
    let method = req.method().clone();
    let is_post = method == Method::POST;
    let is_get = method == Method::GET || method == Method::HEAD;
    match page {
        Page::Css => return asset(is_get, CSS, "text/css; charset=utf-8"),
        Page::Js => return asset(is_get, JS, "text/javascript; charset=utf-8"),
        _ => {}
    }
    if page == Page::Login {
        return match (is_get, is_post) {
            (true, _) => html(StatusCode::OK, pages::login(None)),
            (_, true) => {
                if !same_origin(req.headers(), req.uri().authority()) {
                    return forbidden("This form was sent from another site.");
                }
                let body = match read_form(req.into_body()).await {
                    Ok(f) => f,
                    Err(res) => return res,
                };
                sign_in(shared, tokens, &body, client, https)
            }
            _ => allow_only("GET, HEAD, POST"),
        };
    }
    let sid = session_id(req.headers());
    let session = sid
        .as_deref()
        .and_then(|id| shared.ui_sessions.get(id, Instant::now()));
    if page.is_action() {
        if !is_post {
            return allow_only("POST");
        }
        let Some(session) = session else {
            return forbidden("Sign in first.");
        };
        if !same_origin(req.headers(), req.uri().authority()) {
            return forbidden("This form was sent from another site.");
        }
        let fields = match read_form(req.into_body()).await {
            Ok(f) => f,
            Err(res) => return res,
        };
        let given = html::field(&fields, "csrf").unwrap_or("");
        if !session.csrf_matches(given) {
            tracing::warn!(%client, path, "operator's page: a form without its CSRF token");
            return forbidden("This form has expired or was not sent by this page: reload the page and try again.");
        }
        if page == Page::Logout {
            if let Some(id) = &sid {
                shared.ui_sessions.close(id);
            }
            return see_other("/admin/ui/login");
        }
        return actions::act(shared, &session, page, &fields).await;
    }
    if !is_get {
        return allow_only("GET, HEAD");
    }
    let Some(session) = session else {
        return see_other("/admin/ui/login");
    };
    let query = req.uri().query().unwrap_or("");
    match page {
        Page::Now => html(StatusCode::OK, pages::now_page(shared, &session).await),
        Page::NowSvg => {
            let chart = if query == "range=5m" {
                pages::recent_chart(shared)
            } else {
                pages::hour_chart(shared)
            };
            let mut res = Response::new(full(chart));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            );
            res
        }
        Page::Accounts => {
            let (status, body) = pages::accounts(shared, &session, query).await;
            html(status, body)
        }
        Page::Account(id) => match html::decode(id, false) {
            Some(id) => {
                let (status, body) = pages::account(shared, &session, &id, None).await;
                html(status, body)
            }
            None => html(StatusCode::NOT_FOUND, not_found("No such account.")),
        },
        _ => html(StatusCode::NOT_FOUND, not_found("No such page.")),
    }
}

/// Checks the form's token: a session and a 303 to the Now page, or the
/// form again with why not (401), or the 429 page.
fn sign_in(
    shared: &Shared,
    tokens: &crate::admin::tokens::AdminTokens,
    fields: &[(String, String)],
    client: IpAddr,
    https: bool,
) -> Response<Body> {
    let given = html::field(fields, "token").unwrap_or("").trim();
    let who = if given.is_empty() {
        None
    } else {
        tokens.find(given)
    };
    let failed = who.is_none();
    if let Err(wait) = shared.admin_guard.check_attempt(client, failed, now()) {
        let secs = u64::try_from(wait.as_millis().div_ceil(1000).max(1)).unwrap_or(u64::MAX);
        tracing::debug!(%client, "operator's page sign-in refused: too many failed authentications");
        let mut res = html(
            StatusCode::TOO_MANY_REQUESTS,
            pages::login(Some(&format!(
                "Too many failed sign-ins from this address: try again in {secs} s."
            ))),
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return res;
    }
    let Some(who) = who else {
        tracing::warn!(%client, "operator's page: a sign-in with a wrong token");
        return html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some("Wrong admin token.")),
        );
    };
    let id = shared.ui_sessions.open(who, Instant::now());
    tracing::info!(target: "quota::audit", who, what = "ui.sign_in", account = "", key_id = "", "admin change");
    let mut res = see_other("/admin/ui/");
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&id, https)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// The `Set-Cookie` value of session `id` (`https`: the listener has TLS).
fn session_cookie(id: &str, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/admin/ui; HttpOnly; SameSite=Strict{secure}")
}

/// The session cookie's value, if the request carries one.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_owned())
        })
}

/// Whether a POST's `Origin`, if it has one, is the gateway's own host
/// (the `Host` header, or HTTP/2's authority).
fn same_origin(headers: &HeaderMap, authority: Option<&http::uri::Authority>) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(origin) = origin.to_str().ok() else {
        return false;
    };
    let Some((_, origin_host)) = origin.split_once("://") else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| authority.map(http::uri::Authority::as_str));
    host.is_some_and(|h| h.eq_ignore_ascii_case(origin_host))
}

/// A form body (at most [`MAX_BODY`] bytes), its fields.
async fn read_form<B>(body: B) -> Result<Vec<(String, String)>, Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => {
            let bytes = c.to_bytes();
            Ok(html::form(&String::from_utf8_lossy(&bytes)))
        }
        Err(_) => Err(html(
            StatusCode::PAYLOAD_TOO_LARGE,
            not_found("This form is too large (16 KiB at most)."),
        )),
    }
}

/// An HTML answer.
pub(crate) fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}

fn asset(is_get: bool, body: &'static str, content_type: &'static str) -> Response<Body> {
    if !is_get {
        return allow_only("GET, HEAD");
    }
    let mut res = Response::new(full(body));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

fn see_other(to: &'static str) -> Response<Body> {
    let mut res = html(
        StatusCode::SEE_OTHER,
        format!(r#"<!doctype html><a href="{to}">continue</a>"#),
    );
    res.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    res
}

fn forbidden(why: &str) -> Response<Body> {
    html(StatusCode::FORBIDDEN, not_found(why))
}

fn allow_only(allow: &'static str) -> Response<Body> {
    let mut res = html(
        StatusCode::METHOD_NOT_ALLOWED,
        not_found(&format!("Use {allow}.")),
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// A short page saying `why`, with a way back.
fn not_found(why: &str) -> String {
    html::page(
        "quota",
        None,
        &format!(
            r#"<h1>quota</h1><p id="error">{}</p><p><a href="/admin/ui/">Back to the operator's page</a></p>"#,
            html::esc(why)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_has_one_path() {
        assert_eq!(Page::of("/admin/ui"), Some(Page::Now));
        assert_eq!(Page::of("/admin/ui/"), Some(Page::Now));
        assert_eq!(Page::of("/admin/ui/accounts/"), Some(Page::Accounts));
        assert_eq!(
            Page::of("/admin/ui/accounts/a%20b"),
            Some(Page::Account("a%20b"))
        );
        assert_eq!(
            Page::of("/admin/ui/accounts/a/keys/k/rotate"),
            Some(Page::Rotate("a", "k"))
        );
        assert_eq!(Page::of("/admin/ui/nope"), None);
        assert!(Page::of("/admin/ui/logout").is_some_and(Page::is_action));
    }

    #[test]
    fn the_cookie_is_secure_under_tls() {
        assert_eq!(
            session_cookie("ab", true),
            "quota_ui=ab; Path=/admin/ui; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(!session_cookie("ab", false).contains("Secure"));
    }

    #[test]
    fn origins_must_be_the_host() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h, None));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h, None));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h, None));
    }
}
