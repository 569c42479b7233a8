//! Named admin tokens, so that each audit line says who made a change.
//!
//! `--admin-token` (and [`GatewayBuilder::admin_token`](crate::GatewayBuilder::admin_token))
//! takes `NAME=SECRET` or a plain `SECRET`, which is named `admin`. `NAME`
//! is 1 to 64 letters, digits, `-`, `_` or `.`; anything else before the
//! first `=` makes the whole text a plain token (so a base64 token ending in
//! `=` stays one; to give such a token a name, write `ops=abc==`). The
//! builder may be given several; each request's bearer token is compared in
//! constant time with every secret, and the name of the one it matches is
//! the `who` of the audit line.

use subtle::ConstantTimeEq;

/// The name of a token given without one.
pub(crate) const DEFAULT_NAME: &str = "admin";

/// One admin token: its name and its secret.
#[derive(Clone)]
pub(crate) struct AdminToken {
    pub(crate) name: String,
    secret: String,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("AdminToken")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl AdminToken {
    /// `NAME=SECRET` or a plain `SECRET` (named [`DEFAULT_NAME`]).
    pub(crate) fn parse(text: &str) -> Self {
        if let Some((name, secret)) = text.split_once('=') {
            let name_ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if name_ok && !secret.is_empty() && !secret.bytes().all(|b| b == b'=') {
                return AdminToken {
                    name: name.to_owned(),
                    secret: secret.to_owned(),
                };
            }
        }
        AdminToken {
            name: DEFAULT_NAME.to_owned(),
            secret: text.to_owned(),
        }
    }
}

impl AdminToken {
    /// The secret: what a client sends as its bearer token.
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }
}

/// Every admin token the gateway accepts.
#[derive(Clone, Debug, Default)]
pub(crate) struct AdminTokens(Vec<AdminToken>);

impl AdminTokens {
    /// The tokens, each `NAME=SECRET` or `SECRET`.
    pub(crate) fn new<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        AdminTokens(texts.into_iter().map(AdminToken::parse).collect())
    }

    /// The name of the token `given` is, compared in constant time with
    /// every secret (all are compared, whichever matches).
    pub(crate) fn find(&self, given: &str) -> Option<&str> {
        let mut found = None;
        for t in &self.0 {
            if bool::from(given.as_bytes().ct_eq(t.secret.as_bytes())) && found.is_none() {
                found = Some(t.name.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_before_the_first_equals_sign_when_they_look_like_names() {
        let t = AdminTokens::new([
            "ops=s3cret-ops",
            "plain-token-1",
            "abc==",
            "bad name=x",
            "ci=abc==",
        ]);
        assert_eq!(t.find("s3cret-ops"), Some("ops"));
        assert_eq!(t.find("plain-token-1"), Some("admin"));
        assert_eq!(t.find("abc=="), Some("admin"));
        assert_eq!(t.find("bad name=x"), Some("admin"));
        assert_eq!(t.find("ops=s3cret-ops"), None);
        assert_eq!(t.find("abc"), None);
        assert_eq!(t.find(""), None);
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(AdminToken::parse("ops=s3cret-ops").secret(), "s3cret-ops");
        assert_eq!(AdminToken::parse("plain").secret(), "plain");
    }
}
