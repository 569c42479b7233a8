//! The query and bodies of the admin routes: read strictly, every mistake
//! said back (400), never a panic.

use std::time::Duration;

use quota_core::policy::Money;
use serde::Deserialize;

use super::MAX_PAYMENT;

/// The default page size of `GET /admin/accounts`.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// The largest page size.
pub(crate) const MAX_LIMIT: usize = 1000;
/// The longest grace period of a rotation: 30 days.
pub(crate) const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest key name.
pub(crate) const MAX_NAME: usize = 64;

/// `GET /admin/accounts`' query.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub(crate) limit: usize,
    pub(crate) cursor: Option<String>,
    pub(crate) tier: Option<String>,
}

/// Reads `limit` (1..=1000, default 100), `cursor` and `tier`.
pub(crate) fn list_query(query: Option<&str>) -> Result<ListQuery, String> {
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT,
        ..ListQuery::default()
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)
            .ok_or_else(|| format!("invalid query: {name:?} is not valid percent-encoded UTF-8"))?;
        match name {
            "limit" => {
                q.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        format!("invalid limit {value:?}: a whole number from 1 to {MAX_LIMIT}")
                    })?;
            }
            "cursor" if !value.is_empty() => q.cursor = Some(value),
            "tier" if !value.is_empty() => q.tier = Some(value),
            "cursor" | "tier" => return Err(format!("invalid query: {name} is empty")),
            other => {
                return Err(format!(
                    "unknown query parameter {other:?}: expected limit, cursor or tier"
                ))
            }
        }
    }
    Ok(q)
}

/// `%XX` and `+` decoded; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `PATCH /admin/accounts/{id}`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    tier: Option<String>,
    credit: Option<Money>,
}

/// What a PATCH sets.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Patch {
    pub(crate) tier: Option<String>,
    pub(crate) credit: Option<Money>,
}

const PATCH_EXAMPLE: &str = r#"expected {"tier": "premium"} and/or {"credit": "12.50"}"#;

/// Reads a PATCH body: a tier and/or a credit (a decimal amount, exact, at
/// most [`MAX_PAYMENT`]); at least one.
pub(crate) fn patch(body: &[u8]) -> Result<Patch, String> {
    let b: PatchBody = json_body(body, "update", PATCH_EXAMPLE)?;
    if b.tier.is_none() && b.credit.is_none() {
        return Err(format!(
            "invalid update: nothing to change; {PATCH_EXAMPLE}"
        ));
    }
    if let Some(c) = b.credit {
        if c > MAX_PAYMENT {
            return Err(format!(
                "invalid update: credit {c} is too large (at most {MAX_PAYMENT})"
            ));
        }
    }
    Ok(Patch {
        tier: b.tier,
        credit: b.credit,
    })
}

/// `POST .../keys`' body (may be empty).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyBody {
    name: Option<String>,
}

const KEY_EXAMPLE: &str = r#"expected {"name": "ci"} or no body"#;

/// The name of a new key: the body's (1 to 64 printable characters), or `key`.
pub(crate) fn key_name(body: &[u8]) -> Result<String, String> {
    let b: NewKeyBody = if body.iter().all(u8::is_ascii_whitespace) {
        NewKeyBody::default()
    } else {
        json_body(body, "key", KEY_EXAMPLE)?
    };
    let name = b.name.unwrap_or_else(|| "key".to_owned());
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(format!(
            "invalid key: the name must be 1 to {MAX_NAME} characters, none a control character"
        ));
    }
    Ok(name)
}

/// `POST .../rotate`'s body (may be empty).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    grace_seconds: Option<u64>,
}

const ROTATE_EXAMPLE: &str = r#"expected {"grace_seconds": 3600} or no body"#;

/// The grace period of a rotation: 0 (the old key stops at once) to 30 days.
pub(crate) fn grace(body: &[u8]) -> Result<Duration, String> {
    let b: RotateBody = if body.iter().all(u8::is_ascii_whitespace) {
        RotateBody::default()
    } else {
        json_body(body, "rotation", ROTATE_EXAMPLE)?
    };
    let grace = Duration::from_secs(b.grace_seconds.unwrap_or(0));
    if grace > MAX_GRACE {
        return Err(format!(
            "invalid rotation: grace_seconds is at most {} (30 days)",
            MAX_GRACE.as_secs()
        ));
    }
    Ok(grace)
}

/// A JSON object body as `T`, or why not.
fn json_body<T: for<'de> Deserialize<'de>>(
    body: &[u8],
    what: &str,
    example: &str,
) -> Result<T, String> {
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err(format!(
            "invalid {what}: the body is not a JSON object; {example}"
        ));
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid {what}: {e}; {example}"))
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn list_queries_are_bounded_and_strict() {
        assert_eq!(list_query(None).unwrap().limit, 100);
        let q = list_query(Some("limit=2&cursor=acct_%7Bx%7D&tier=premium")).unwrap();
        assert_eq!(
            q,
            ListQuery {
                limit: 2,
                cursor: Some("acct_{x}".into()),
                tier: Some("premium".into())
            }
        );
        assert_eq!(list_query(Some("limit=1000")).unwrap().limit, 1000);
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=-1",
            "limit=x",
            "limit=",
            "cursor=",
            "page=2",
            "cursor=%zz",
            "cursor=%ff",
        ] {
            assert!(list_query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn patches_need_a_field_and_read_credit_as_payments_do() {
        let p = patch(br#"{"tier":"basic","credit":"2.50"}"#).unwrap();
        assert_eq!(p.tier.as_deref(), Some("basic"));
        assert_eq!(p.credit, Some(Money::from_micros(2_500_000)));
        assert_eq!(patch(br#"{"credit":0}"#).unwrap().credit, Some(Money::ZERO));
        for bad in [
            &br#"{}"#[..],
            b"[]",
            b"x",
            br#"{"credit":"-1"}"#,
            br#"{"credit":"0.0000001"}"#,
            br#"{"credit":"1000000000.01"}"#,
            br#"{"tier":1}"#,
            br#"{"tiers":"a"}"#,
        ] {
            assert!(patch(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn key_names_and_grace_periods_are_checked() {
        assert_eq!(key_name(b"").unwrap(), "key");
        assert_eq!(key_name(br#"{"name":"ci"}"#).unwrap(), "ci");
        assert!(key_name(br#"{"name":""}"#).is_err());
        assert!(key_name(br#"{"name":"a\nb"}"#).is_err());
        assert!(key_name(&format!(r#"{{"name":"{}"}}"#, "x".repeat(65)).into_bytes()).is_err());
        assert!(key_name(br#"{"nom":"x"}"#).is_err());
        assert_eq!(grace(b"").unwrap(), Duration::ZERO);
        assert_eq!(
            grace(br#"{"grace_seconds":60}"#).unwrap(),
            Duration::from_secs(60)
        );
        assert!(grace(br#"{"grace_seconds":-1}"#).is_err());
        assert!(grace(br#"{"grace_seconds":2592001}"#).is_err());
    }
}
