//! The pages: sign-in, Now, the accounts, one account.

use std::fmt::Write as _;

use http::StatusCode;
use quota_core::account::{Account, AccountAdmin, AccountError, Identity};

use super::html::{self, ago, date, esc, url};
use super::session::Session;
use super::svg;
use crate::activity::{AccountView, Category, CATEGORIES};
use crate::limits;
use crate::shared::{now, Shared};

/// Accounts per page of the accounts table.
pub(crate) const PAGE: usize = 50;
/// Accounts read at most for one page of a search.
pub(crate) const SEARCH_SCAN: usize = 10_000;
/// Rows of the most refused accounts.
const TOP: usize = 10;

/// The sign-in form, with `error` if the last try failed.
pub(crate) fn login(error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| {
        format!(r#"<p id="error" role="alert">{}</p>"#, esc(e))
    });
    html::page(
        "Sign in",
        None,
        &format!(
            r#"<h1>Sign in</h1>{error}<form id="signin" method="post" action="/admin/ui/login"><label for="token">Admin token</label> <input id="token" name="token" type="password" autocomplete="current-password" required autofocus> <button type="submit">Sign in</button></form><p class="note">The admin token the gateway was started with (<code>--admin-token</code>).</p>"#
        ),
    )
}

/// The word for the store's state: `ok`, `degraded` (a fallback on this
/// node) or `down`.
fn store_word(mode: &str) -> &'static str {
    match mode {
        "ok" => "ok",
        "fallback" => "degraded",
        _ => "down",
    }
}

/// The Now page's chart of the last hour, per minute (`svg#chart-now`).
pub(crate) fn hour_chart(shared: &Shared) -> String {
    svg::traffic("chart-now", &shared.activity.per_minute(now()), 60)
}

/// The Now page's chart of the last 5 minutes, per 5 seconds
/// (`svg#chart-recent`).
pub(crate) fn recent_chart(shared: &Shared) -> String {
    svg::traffic("chart-recent", &shared.activity.per_bucket(now(), 5, 60), 5)
}

/// The Now page.
pub(crate) async fn now_page(shared: &Shared, session: &Session) -> String {
    let at = now();
    let now_ms = at.as_millis();
    let a = &shared.activity;
    let per_minute = a.per_minute(at);
    let minute = a.total(at, 60);
    let hour = a.total(at, crate::activity::SECONDS);
    let mut main = String::with_capacity(32 * 1024);
    main.push_str(r#"<h1>Now</h1><p class="note">Charts and counts marked <em>this node</em> are what this gateway decided (kept in its memory for an hour); with several gateways on one store, each shows its own. Accounts, credit and limits are the store's, for the whole fleet.</p>"#);
    let _ = write!(
        main,
        r#"<section><h2>Requests per minute, last hour <span class="scope">this node</span></h2><div id="chart-now-box" class="chart" data-refresh="/admin/ui/now.svg">{}</div></section><section><h2>Requests per 5 seconds, last 5 minutes <span class="scope">this node</span></h2><div id="chart-recent-box" class="chart" data-refresh="/admin/ui/now.svg?range=5m">{}</div></section>"#,
        svg::traffic("chart-now", &per_minute, 60),
        recent_chart(shared)
    );
    // Totals.
    main.push_str(r#"<section><h2>Totals <span class="scope">this node</span></h2><table id="totals"><thead><tr><th></th><th>last minute</th><th>last hour</th></tr></thead><tbody>"#);
    for c in Category::ALL {
        let _ = write!(
            main,
            r#"<tr data-category="{}"><td><svg class="swatch" width="10" height="10" viewBox="0 0 10 10"><rect width="10" height="10" fill="{}"/></svg> {}</td><td>{}</td><td>{}</td></tr>"#,
            esc(c.label()),
            svg::color(c),
            esc(c.label()),
            minute[c as usize],
            hour[c as usize]
        );
    }
    let sum = |c: &[u32; CATEGORIES]| -> u64 { c.iter().map(|&n| u64::from(n)).sum() };
    let refused = |c: &[u32; CATEGORIES]| -> u64 {
        Category::ALL
            .iter()
            .filter(|k| k.is_limit())
            .map(|&k| u64::from(c[k as usize]))
            .sum()
    };
    let _ = write!(
        main,
        r#"</tbody><tfoot><tr><th>all</th><td>{}</td><td>{}</td></tr><tr><th>429 share</th><td>{}</td><td>{}</td></tr></tfoot></table></section>"#,
        sum(&minute),
        sum(&hour),
        share(refused(&minute), sum(&minute)),
        share(refused(&hour), sum(&hour)),
    );
    // The most refused accounts.
    let top = a.most_refused(at, TOP, |_| true);
    main.push_str(r#"<section><h2>Most refused accounts, last hour <span class="scope">this node</span></h2><table id="top-refused"><thead><tr><th>account</th><th>429s last hour</th><th>by limit</th><th>requests</th><th>last seen</th></tr></thead><tbody>"#);
    if top.is_empty() {
        main.push_str(r#"<tr class="empty"><td colspan="5">No account was refused in the last hour.</td></tr>"#);
    }
    for v in &top {
        let _ = write!(
            main,
            r#"<tr data-account="{id}"><td><a class="account" href="/admin/ui/accounts/{u}">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            v.refusals_hour,
            by_limit(v),
            v.requests,
            ago(v.last_seen_ms, now_ms),
            id = esc(&v.id),
            u = url(&v.id),
        );
    }
    main.push_str("</tbody></table></section>");
    // The store.
    shared.store.probe().await;
    let mode = shared.store.mode();
    let word = store_word(mode);
    let latency = match a.latency() {
        Some((p50, p99, max, n)) => format!(
            "decision time over the last {n} decisions: median {} µs, 99th percentile {} µs, largest {} µs",
            p50.as_micros(),
            p99.as_micros(),
            max.as_micros()
        ),
        None => "no decision yet".to_owned(),
    };
    let mut store = format!(
        "backend {}, mode {}",
        esc(shared.store.backend()),
        esc(mode)
    );
    if let Some(h) = shared.store.redis_health() {
        let _ = write!(
            store,
            ", Redis {}{}, failure policy {}",
            if h.redis_ok {
                "answering"
            } else {
                "not answering"
            },
            if h.cluster { " (cluster)" } else { "" },
            esc(&h.failure_policy.to_string())
        );
    }
    let _ = write!(
        main,
        r#"<section><h2>Store</h2><p id="store-health" class="health-{word}"><strong>{word}</strong>: {store}; accounts in {}.</p><p id="latency">{} <span class="scope">this node</span></p></section>"#,
        esc(shared.accounts.backend()),
        esc(&latency)
    );
    // The policy.
    let policy = shared.policy.load();
    let tiers: Vec<String> = policy.tiers().iter().map(|t| esc(t.name())).collect();
    let _ = write!(
        main,
        r#"<section><h2>Policy and node</h2><p id="policy">{} endpoints, tiers {}; in force since {} ({}).</p><p id="node">This node started {} (up {}); it tracks {} accounts (at most {}). Its ring of counters takes {} bytes ({} seconds of {} bytes), each tracked account about {} bytes.</p></section>"#,
        policy.endpoints().len(),
        tiers.join(", "),
        date(a.policy_loaded_ms()),
        ago(a.policy_loaded_ms(), now_ms),
        date(a.started_ms()),
        html::span(now_ms.saturating_sub(a.started_ms()) / 1000),
        a.accounts_tracked(),
        crate::activity::MAX_ACCOUNTS,
        crate::activity::SECONDS * crate::activity::SLOT_BYTES,
        crate::activity::SECONDS,
        crate::activity::SLOT_BYTES,
        crate::activity::ACCOUNT_BYTES,
    );
    html::page("Now", Some(session), &main)
}

fn share(part: u64, all: u64) -> String {
    if all == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / all as f64)
    }
}

/// How full a limit of `/v1/limits`' report is: used over limit (a
/// limit of 0 counts as full).
fn fullness(l: &serde_json::Value) -> f64 {
    let used = l["used"].as_u64().unwrap_or(0);
    match l["limit"].as_u64().unwrap_or(0) {
        0 => 1.0,
        // Counts stay far below 2^52: exact as f64.
        #[allow(clippy::cast_precision_loss)]
        limit => used as f64 / limit as f64,
    }
}

/// The last hour's 429s of an account by limit kind, as a small stacked
/// bar and its words (`minute 13, daily 2`): which limit refuses it, at a
/// glance.
fn by_limit(v: &AccountView) -> String {
    let mut kinds = [0u64; CATEGORIES];
    for minute in &v.refusals_per_minute {
        for (k, n) in kinds.iter_mut().zip(minute) {
            *k += u64::from(*n);
        }
    }
    let total: u64 = kinds.iter().sum();
    if total == 0 {
        return String::new();
    }
    const WIDTH: u64 = 120;
    let mut bar = format!(
        r#"<svg class="by-limit" width="{WIDTH}" height="10" viewBox="0 0 {WIDTH} 10" role="img">"#
    );
    let mut words = Vec::new();
    let mut x = 0;
    for c in Category::ALL.into_iter().filter(|c| c.is_limit()) {
        let n = kinds[c as usize];
        if n == 0 {
            continue;
        }
        let w = (n * WIDTH).div_ceil(total).min(WIDTH - x);
        let _ = write!(
            bar,
            r#"<rect x="{x}" width="{w}" height="10" fill="{}"/>"#,
            svg::color(c)
        );
        x += w;
        words.push(format!("{} {n}", c.label().trim_start_matches("429 ")));
    }
    bar.push_str("</svg>");
    format!(r#"{bar} <small class="kinds">{}</small>"#, words.join(", "))
}

/// One row of the accounts table.
fn account_row(out: &mut String, a: &Account, v: Option<&AccountView>, now_ms: u64) {
    let (requests, refusals, seen, kinds) = match v {
        Some(v) => (
            v.requests.to_string(),
            v.refusals_hour,
            ago(v.last_seen_ms, now_ms),
            by_limit(v),
        ),
        None => (
            "0".to_owned(),
            0,
            "not since this node started".to_owned(),
            String::new(),
        ),
    };
    let _ = write!(
        out,
        r#"<tr data-account="{id}"{cls}><td><a class="account" href="/admin/ui/accounts/{u}">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{requests}</td><td>{refusals}</td><td>{}</td><td>{kinds}</td></tr>"#,
        esc(&a.tier),
        esc(&a.credit.to_string()),
        a.requests,
        esc(&seen),
        id = esc(&a.id),
        u = url(&a.id),
        cls = if refusals > 0 {
            r#" class="refused""#
        } else {
            ""
        },
    );
}

/// The accounts page: `?q=` (a substring of the id) and `?cursor=` (the
/// last id read for the page before).
pub(crate) async fn accounts(
    shared: &Shared,
    session: &Session,
    query: &str,
) -> (StatusCode, String) {
    let fields = html::form(query);
    let q = html::field(&fields, "q").unwrap_or("").trim().to_owned();
    let cursor = html::field(&fields, "cursor")
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let at = now();
    let now_ms = at.as_millis();
    let activity = &shared.activity;
    // The accounts refused in the last hour first (on the first page),
    // then the rest in id order, a page at a time.
    let top: Vec<AccountView> = activity.most_refused(at, PAGE, |id| id.contains(q.as_str()));
    let mut rows: Vec<(Account, Option<AccountView>)> = Vec::new();
    if cursor.is_none() {
        for v in &top {
            match shared.accounts.get(&v.id).await {
                Ok(Some(a)) => rows.push((a, Some(v.clone()))),
                Ok(None) => {}
                Err(e) => return store_error(session, &e),
            }
        }
    }
    let mut page = Vec::new();
    let mut after = cursor.clone();
    let mut scanned = 0;
    let mut next = None;
    loop {
        let batch = match shared.accounts.list(after.as_deref(), 200, None).await {
            Ok(b) => b,
            Err(e) => return store_error(session, &e),
        };
        let full = batch.len() == 200;
        for a in batch {
            scanned += 1;
            after = Some(a.id.clone());
            if !a.id.contains(q.as_str()) || top.iter().any(|v| v.id == a.id) {
                continue;
            }
            page.push(a);
            if page.len() == PAGE {
                break;
            }
        }
        if page.len() == PAGE || scanned >= SEARCH_SCAN {
            next = after.clone();
            break;
        }
        if !full {
            break;
        }
    }
    let mut rest: Vec<(Account, Option<AccountView>)> = page
        .into_iter()
        .map(|a| {
            let v = activity.account(&a.id, at);
            (a, v)
        })
        .collect();
    // Within the page: the most refused first, then the busiest on this
    // node, then by id.
    rest.sort_by(|(a, va), (b, vb)| {
        let key =
            |v: &Option<AccountView>| v.as_ref().map_or((0, 0), |v| (v.refusals_hour, v.requests));
        key(vb).cmp(&key(va)).then(a.id.cmp(&b.id))
    });
    rows.extend(rest);
    let mut main = String::with_capacity(16 * 1024);
    let _ = write!(
        main,
        r#"<h1>Accounts</h1><form id="search" method="get" action="/admin/ui/accounts"><label for="q">Account id contains</label> <input id="q" name="q" type="search" value="{}"> <button type="submit">Search</button></form><p class="note">Accounts refused in the last hour come first, the most refused first; then the rest in id order, each page sorted by refusals, then by requests on this node. Tier, credit and charged requests (all time) are the store's, for the whole fleet; <em>node requests</em> (since this node started), <em>429s last hour</em> and <em>last seen</em> are this node's.</p>"#,
        esc(&q)
    );
    main.push_str(r#"<table id="accounts"><thead><tr><th>account</th><th>tier</th><th>credit</th><th>charged requests</th><th>node requests</th><th>429s last hour</th><th>last seen</th><th>429s by limit</th></tr></thead><tbody>"#);
    if rows.is_empty() {
        main.push_str(r#"<tr class="empty"><td colspan="8">No account matches.</td></tr>"#);
    }
    for (a, v) in &rows {
        account_row(&mut main, a, v.as_ref(), now_ms);
    }
    main.push_str("</tbody></table>");
    if let Some(next) = next {
        let _ = write!(
            main,
            r#"<p><a id="next" href="/admin/ui/accounts?q={}&amp;cursor={}">Next page</a></p>"#,
            url(&q),
            url(&next)
        );
    }
    (StatusCode::OK, html::page("Accounts", Some(session), &main))
}

fn store_error(session: &Session, e: &AccountError) -> (StatusCode, String) {
    tracing::error!(error = %e, "operator's page: cannot read the accounts");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        html::page(
            "Unavailable",
            Some(session),
            r#"<h1>Unavailable</h1><p id="error">The accounts cannot be read now; try again.</p>"#,
        ),
    )
}

/// What an action left to show on the account's page.
#[derive(Debug, Default)]
pub(crate) struct Flash {
    /// What happened, or why not.
    pub(crate) message: String,
    /// Whether it failed.
    pub(crate) error: bool,
    /// A new key, shown once.
    pub(crate) new_key: Option<String>,
}

/// One account's page (`flash`: after an action).
pub(crate) async fn account(
    shared: &Shared,
    session: &Session,
    id: &str,
    flash: Option<Flash>,
) -> (StatusCode, String) {
    let policy = shared.policy.load();
    // A caller without a key has no account, but limits on the anonymous
    // tier, counted by its address (`anonymous:ADDRESS`).
    let anonymous_tier = id
        .starts_with("anonymous:")
        .then(|| policy.anonymous_tier().map(|t| t.name().to_owned()))
        .flatten();
    let (account, tier) = match shared.accounts.get(id).await {
        Ok(Some(a)) => {
            let tier = a.tier.clone();
            (Some(a), tier)
        }
        Ok(None) if anonymous_tier.is_some() => (None, anonymous_tier.unwrap_or_default()),
        Ok(None) => {
            let mut main = String::new();
            if let Some(f) = &flash {
                flash_html(&mut main, f);
            }
            let _ = write!(
                main,
                r#"<h1>No account {}</h1><p><a href="/admin/ui/accounts">All accounts</a></p>"#,
                esc(id)
            );
            return (
                StatusCode::NOT_FOUND,
                html::page("No such account", Some(session), &main),
            );
        }
        Err(e) => return store_error(session, &e),
    };
    let at = now();
    let now_ms = at.as_millis();
    let view = shared.activity.account(id, at);
    let mut main = String::with_capacity(32 * 1024);
    let _ = write!(main, r#"<h1>Account <code>{}</code></h1>"#, esc(id));
    if let Some(f) = &flash {
        flash_html(&mut main, f);
    }
    match &account {
        Some(account) => {
            let _ = write!(
                main,
                r#"<p id="summary">Tier <strong>{}</strong>, credit <strong>{}</strong> (paid {}, spent {}), {} charged requests in all <span class="scope">fleet</span>. "#,
                esc(&account.tier),
                esc(&account.credit.to_string()),
                esc(&account.paid.to_string()),
                esc(&account.spent.to_string()),
                account.requests
            );
        }
        None => {
            let _ = write!(
                main,
                r#"<p id="summary">A caller without a key, counted by its address on the anonymous tier <strong>{}</strong>; it has no account, keys or credit. "#,
                esc(&tier)
            );
        }
    }
    match &view {
        Some(v) => {
            let _ = write!(
                main,
                r#"{} requests since this node started, {} refused (429) in the last hour, last seen {} <span class="scope">this node</span>.</p>"#,
                v.requests,
                v.refusals_hour,
                ago(v.last_seen_ms, now_ms)
            );
        }
        None => main.push_str(
            r#"Not seen by this node since it started <span class="scope">this node</span>.</p>"#,
        ),
    }
    // Limits: the numbers of /v1/limits.
    let who = Identity {
        account: id.to_owned(),
        tier: tier.clone(),
    };
    main.push_str(
        r#"<section><h2>Limits now <span class="scope">fleet</span></h2><div id="limits">"#,
    );
    match limits::report(&policy, &*shared.store, &who, account.as_ref(), at).await {
        Ok(report) => {
            // The fullest first (a spent limit on top), then by endpoint.
            let mut rows: Vec<(&str, &serde_json::Value)> = report["resources"]
                .as_object()
                .into_iter()
                .flatten()
                .flat_map(|(endpoint, r)| {
                    r["limits"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(move |l| (endpoint.as_str(), l))
                })
                .collect();
            rows.sort_by(|a, b| fullness(b.1).total_cmp(&fullness(a.1)));
            let any = !rows.is_empty();
            {
                for (endpoint, l) in rows {
                    {
                        let used = l["used"].as_u64().unwrap_or(0);
                        let limit = l["limit"].as_u64().unwrap_or(0);
                        let name = l["name"].as_str().unwrap_or("");
                        let scope = l["scope"].as_str().unwrap_or("");
                        let reset = l["reset_after_seconds"].as_u64().unwrap_or(0);
                        let cls = if limit > 0 && used >= limit {
                            " over"
                        } else if limit > 0 && used * 5 >= limit * 4 {
                            " near"
                        } else {
                            ""
                        };
                        let _ = write!(
                            main,
                            r#"<div class="limit{cls}" data-endpoint="{e}" data-limit="{n}"><span class="what">{e} <small>{n}{tier}</small></span> {} <span class="used">{used}/{limit}</span> <small>resets in {}</small></div>"#,
                            svg::bar(used, limit),
                            html::span(reset),
                            e = esc(endpoint),
                            n = esc(name),
                            tier = if scope == "tier" { ", tier-wide" } else { "" },
                        );
                    }
                }
            }
            if !any {
                main.push_str(r#"<p class="note">No limit applies to this account's tier.</p>"#);
            }
        }
        Err(e) => {
            shared.metrics.record_store_error();
            tracing::error!(error = %e, "operator's page: cannot read an account's limits");
            main.push_str(
                r#"<p id="error">The limits cannot be read now (the store did not answer).</p>"#,
            );
        }
    }
    main.push_str("</div></section>");
    // Refusals over the hour.
    let per_minute = view.as_ref().map_or_else(
        || vec![[0; CATEGORIES]; 60],
        |v| v.refusals_per_minute.clone(),
    );
    let _ = write!(
        main,
        r#"<section><h2>Refusals, last hour <span class="scope">this node</span></h2>{}</section>"#,
        svg::refusals("chart-refusals", &per_minute)
    );
    if let Some(account) = &account {
        keys_and_changes(&mut main, shared, session, account, now_ms).await;
    }
    recent_requests(&mut main, view.as_ref(), now_ms);
    (StatusCode::OK, html::page(id, Some(session), &main))
}

/// An account's keys (each with its forms) and the tier and credit forms.
async fn keys_and_changes(
    main: &mut String,
    shared: &Shared,
    session: &Session,
    account: &Account,
    now_ms: u64,
) {
    let id = account.id.as_str();
    let at = quota_core::Timestamp::from_millis(now_ms);
    let policy = shared.policy.load();
    // Keys.
    let csrf = html::csrf(session);
    let base = format!("/admin/ui/accounts/{}", url(id));
    main.push_str(r#"<section><h2>Keys</h2><table id="keys"><thead><tr><th>name</th><th>id</th><th>created</th><th>last used</th><th>expires</th><th></th></tr></thead><tbody>"#);
    match shared.accounts.list_keys(id, at).await {
        Ok(keys) => {
            if keys.is_empty() {
                main.push_str(r#"<tr class="empty"><td colspan="6">No key works.</td></tr>"#);
            }
            for k in keys {
                let _ = write!(
                    main,
                    r#"<tr data-key="{kid}"><td>{}</td><td><code>{kid}</code></td><td>{}</td><td>{}</td><td>{}</td><td class="actions"><form class="revoke" method="post" action="{base}/keys/{ku}/revoke">{csrf}<button type="submit">Revoke</button></form><form class="rotate" method="post" action="{base}/keys/{ku}/rotate">{csrf}<label>grace <input name="grace_seconds" type="number" min="0" value="3600" size="6"> s</label> <button type="submit">Rotate</button></form></td></tr>"#,
                    esc(&k.name),
                    date(k.created.as_millis()),
                    k.last_used
                        .map_or("never".to_owned(), |t| ago(t.as_millis(), now_ms)),
                    k.expires
                        .map_or("never".to_owned(), |t| date(t.as_millis())),
                    kid = esc(&k.id),
                    ku = url(&k.id),
                );
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "operator's page: cannot read an account's keys");
            main.push_str(r#"<tr><td colspan="6">The keys cannot be read now.</td></tr>"#);
        }
    }
    main.push_str("</tbody></table></section>");
    // Tier and credit.
    let mut options = String::new();
    for t in policy.tiers() {
        let _ = write!(
            options,
            r#"<option value="{n}"{sel}>{n}</option>"#,
            n = esc(t.name()),
            sel = if t.name() == account.tier {
                " selected"
            } else {
                ""
            }
        );
    }
    let _ = write!(
        main,
        r#"<section><h2>Change</h2><form id="tier" method="post" action="{base}/tier">{csrf}<label>Tier <select name="tier">{options}</select></label> <button type="submit">Set tier</button></form><form id="credit" method="post" action="{base}/credit">{csrf}<label>Credit <input name="credit" value="{}" inputmode="decimal" size="10"></label> <button type="submit">Set credit</button></form></section>"#,
        esc(account.credit.to_string().trim_start_matches('$'))
    );
}

/// The requests this node saw last of an account (`view`).
fn recent_requests(main: &mut String, view: Option<&AccountView>, now_ms: u64) {
    main.push_str(r#"<section><h2>Recent requests <span class="scope">this node</span></h2><table id="recent"><thead><tr><th>when</th><th>endpoint</th><th>decision</th><th>status</th></tr></thead><tbody>"#);
    let recent = view.map(|v| v.recent.as_slice()).unwrap_or(&[]);
    if recent.is_empty() {
        main.push_str(
            r#"<tr class="empty"><td colspan="4">None since this node started.</td></tr>"#,
        );
    }
    for r in recent {
        let _ = write!(
            main,
            r#"<tr><td>{}</td><td>{}</td><td class="decision{}">{}</td><td class="status">{}</td></tr>"#,
            ago(r.at_ms, now_ms),
            esc(r.endpoint()),
            match r.category {
                Category::Admitted => "",
                c if c.is_limit() => " refused",
                _ => " error",
            },
            esc(r.category.label()),
            r.status
        );
    }
    main.push_str("</tbody></table></section>");
}

fn flash_html(out: &mut String, f: &Flash) {
    let _ = write!(
        out,
        r#"<p id="flash" class="{}" role="status">{}</p>"#,
        if f.error { "error" } else { "ok" },
        esc(&f.message)
    );
    if let Some(key) = &f.new_key {
        let _ = write!(
            out,
            r#"<p class="new-key">The new key, shown once: <code id="new-key">{}</code></p>"#,
            esc(key)
        );
    }
}
