//! HTML text: escaping, the page's frame, forms and times.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::session::Session;

/// `s` escaped for HTML text and attribute values (`&`, `<`, `>`, `"`, `'`).
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` percent-encoded for a URL path segment or a query value.
pub(crate) fn url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `s` percent-decoded (`plus`: `+` is a space, as in a form), or `None`
/// when the bytes are not UTF-8.
pub(crate) fn decode(s: &str, plus: bool) -> Option<String> {
    crate::percent::decode(s, plus)
}

/// The fields of an `application/x-www-form-urlencoded` body or a query.
pub(crate) fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(k, true)?, decode(v, true)?))
        })
        .collect()
}

/// The first value of `name` in `fields`.
pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A time (milliseconds since the epoch) as an HTTP date, in UTC.
pub(crate) fn date(ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

/// How long ago `then` was at `now` (milliseconds): `12 s`, `5 min`, `3 h`, `2 d`.
pub(crate) fn ago(then_ms: u64, now_ms: u64) -> String {
    span(now_ms.saturating_sub(then_ms) / 1000) + " ago"
}

/// A span of seconds, short.
pub(crate) fn span(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// A hidden `csrf` field for a form of `session`.
pub(crate) fn csrf(session: &Session) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        esc(&session.csrf)
    )
}

/// A whole page: `title`, and (signed in) the navigation and the sign-out
/// form around `main`.
pub(crate) fn page(title: &str, session: Option<&Session>, main: &str) -> String {
    let mut out = String::with_capacity(main.len() + 1024);
    let _ = write!(
        out,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{} · quota</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/admin/ui/assets/ui.css"><script src="/admin/ui/assets/ui.js" defer></script></head>
<body><header><span class="brand">quota</span>"#,
        esc(title)
    );
    if let Some(s) = session {
        let _ = write!(
            out,
            r#"<nav><a id="nav-now" href="/admin/ui/">Now</a><a id="nav-accounts" href="/admin/ui/accounts">Accounts</a></nav><form id="logout" method="post" action="/admin/ui/logout">{}<span class="who">signed in as {}</span><button type="submit">Sign out</button></form>"#,
            csrf(s),
            esc(&s.who)
        );
    }
    out.push_str("</header>\n<main>");
    out.push_str(main);
    out.push_str("</main></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_escaped_and_forms_are_decoded() {
        assert_eq!(
            esc(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(url("a b/c"), "a%20b%2Fc");
        let f = form("token=a+b%21&csrf=x&empty");
        assert_eq!(field(&f, "token"), Some("a b!"));
        assert_eq!(field(&f, "empty"), Some(""));
        assert_eq!(decode("%ff", false), None);
        assert_eq!(span(7200), "2 h");
    }
}
