//! Who a request is from: the API key of a request, or another key the
//! enforcement layer counts callers by.
//!
//! By default the key comes from `Authorization: Bearer KEY` or
//! `X-API-Key: KEY` ([`KeyHeaders`] says which are accepted). This module
//! only reads requests; the enforcement layer resolves the key to an
//! account through [`Accounts`](quota_core::account::Accounts), so a client
//! can never choose its own tier.
//!
//! A [`KeyExtractor`] replaces the headers
//! ([`EnforceLayer::key`](crate::enforce::EnforceLayer::key)): [`ClientIp`]
//! counts callers by their address on a tier it names, and any closure
//! `Fn(&RequestView<'_>) -> Option<Caller>` may name an API key or an
//! identity ([`extract`] has the details).
//!
//! ```
//! use http::HeaderMap;
//! use quota_transport::identity::{api_key, KeyError, KeyHeaders};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("authorization", "Bearer k-123".parse().unwrap());
//! assert_eq!(api_key(&headers, KeyHeaders::BOTH), Ok("k-123"));
//! assert_eq!(api_key(&headers, KeyHeaders::X_API_KEY), Err(KeyError::Missing(KeyHeaders::X_API_KEY)));
//! ```
//!
//! Rules, in order:
//! 1. An accepted header that is present but unreadable (not visible ASCII,
//!    empty, repeated, or `Authorization` with a scheme other than `Bearer`
//!    when `X-API-Key` supplies no key) is [`KeyError::Malformed`].
//! 2. Both headers present with different keys is [`KeyError::Conflicting`]:
//!    the request could be counted against either account.
//! 3. No accepted header is [`KeyError::Missing`].

use core::fmt;

use http::header::{HeaderName, AUTHORIZATION};

use crate::fields::{text, HeaderFields};

mod client_ip;
pub mod extract;

pub use client_ip::ClientIp;
pub use extract::{Caller, ExtractError, KeyExtractor, RequestView};

/// The `X-API-Key` header.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Which request headers may carry the API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyHeaders {
    bearer: bool,
    x_api_key: bool,
}

impl KeyHeaders {
    /// `Authorization: Bearer KEY` only.
    pub const BEARER: KeyHeaders = KeyHeaders {
        bearer: true,
        x_api_key: false,
    };
    /// `X-API-Key: KEY` only.
    pub const X_API_KEY: KeyHeaders = KeyHeaders {
        bearer: false,
        x_api_key: true,
    };
    /// Either header (the default).
    pub const BOTH: KeyHeaders = KeyHeaders {
        bearer: true,
        x_api_key: true,
    };

    /// Whether `Authorization: Bearer KEY` is accepted.
    pub const fn accepts_bearer(self) -> bool {
        self.bearer
    }

    /// Whether `X-API-Key: KEY` is accepted.
    pub const fn accepts_x_api_key(self) -> bool {
        self.x_api_key
    }
}

impl Default for KeyHeaders {
    fn default() -> Self {
        KeyHeaders::BOTH
    }
}

impl fmt::Display for KeyHeaders {
    /// How a client should send its key: `` `Authorization: Bearer KEY` or `X-API-Key: KEY` ``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.bearer, self.x_api_key) {
            (true, true) => f.write_str("`Authorization: Bearer KEY` or `X-API-Key: KEY`"),
            (true, false) => f.write_str("`Authorization: Bearer KEY`"),
            (false, true) => f.write_str("`X-API-Key: KEY`"),
            (false, false) => f.write_str("no header (none is accepted)"),
        }
    }
}

/// Why a request carries no usable API key. Each maps to HTTP 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No accepted header carries a key.
    #[error("missing API key: send {0}")]
    Missing(KeyHeaders),
    /// A key header is present but cannot be read.
    #[error("malformed {0} header: expected {1}")]
    Malformed(&'static str, KeyHeaders),
    /// `Authorization` and `X-API-Key` carry different keys.
    #[error("conflicting API keys in Authorization and X-API-Key")]
    Conflicting,
}

/// The API key of a request, read from the accepted headers.
///
/// # Errors
/// [`KeyError`]; see the [module docs](self) for the rules.
pub fn api_key<H: HeaderFields + ?Sized>(
    headers: &H,
    accepted: KeyHeaders,
) -> Result<&str, KeyError> {
    let from_x = if accepted.x_api_key {
        single(headers, &X_API_KEY, "X-API-Key", accepted)?
    } else {
        None
    };
    let from_x = match from_x {
        Some(v) => Some(token(v).ok_or(KeyError::Malformed("X-API-Key", accepted))?),
        None => None,
    };
    let from_bearer = if accepted.bearer {
        match single(headers, &AUTHORIZATION, "Authorization", accepted)? {
            Some(v) => match bearer(v) {
                Some(key) => {
                    Some(token(key).ok_or(KeyError::Malformed("Authorization", accepted))?)
                }
                // Another scheme may be meant for someone else (a proxy);
                // it is only an error when it is all the request carries.
                None if from_x.is_some() => None,
                None => return Err(KeyError::Malformed("Authorization", accepted)),
            },
            None => None,
        }
    } else {
        None
    };
    match (from_bearer, from_x) {
        (Some(a), Some(b)) if a != b => Err(KeyError::Conflicting),
        (Some(k), _) | (None, Some(k)) => Ok(k),
        (None, None) => Err(KeyError::Missing(accepted)),
    }
}

/// Whether a header value is a `Bearer` authorization (the scheme in any
/// case), the form in which `Authorization` carries an API key. A gateway
/// that hides credentials from its upstream removes such a header.
///
/// ```
/// use quota_transport::identity::is_bearer;
/// assert!(is_bearer(b"bearer qk_1"));
/// assert!(!is_bearer(b"Basic dXNlcjpwYXNz"));
/// ```
pub fn is_bearer(value: &[u8]) -> bool {
    text(value).and_then(bearer).is_some()
}

/// The one value of `name`, as text; an error when repeated or not visible ASCII.
fn single<'h, H: HeaderFields + ?Sized>(
    headers: &'h H,
    name: &HeaderName,
    display: &'static str,
    accepted: KeyHeaders,
) -> Result<Option<&'h str>, KeyError> {
    let mut values = headers.values_of(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(KeyError::Malformed(display, accepted));
    }
    text(first)
        .map(Some)
        .ok_or(KeyError::Malformed(display, accepted))
}

/// The credentials of a `Bearer` authorization (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest)
}

/// A key: non-empty, trimmed, no inner whitespace.
fn token(value: &str) -> Option<&str> {
    let t = value.trim();
    (!t.is_empty() && !t.contains(|c: char| c.is_ascii_whitespace())).then_some(t)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;
    use http::HeaderMap;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let h = headers(&[("authorization", "bearer  k1 ")]);
        assert_eq!(api_key(&h, KeyHeaders::BOTH), Ok("k1"));
    }

    #[test]
    fn x_api_key_is_read() {
        let h = headers(&[("x-api-key", "k2")]);
        assert_eq!(api_key(&h, KeyHeaders::BOTH), Ok("k2"));
        assert_eq!(
            api_key(&h, KeyHeaders::BEARER),
            Err(KeyError::Missing(KeyHeaders::BEARER))
        );
    }

    #[test]
    fn other_scheme_alone_is_malformed_but_ignored_beside_x_api_key() {
        let basic = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert!(matches!(
            api_key(&basic, KeyHeaders::BOTH),
            Err(KeyError::Malformed("Authorization", _))
        ));
        let both = headers(&[("authorization", "Basic dXNlcjpwYXNz"), ("x-api-key", "k3")]);
        assert_eq!(api_key(&both, KeyHeaders::BOTH), Ok("k3"));
    }

    #[test]
    fn empty_repeated_or_spaced_keys_are_malformed() {
        for h in [
            headers(&[("authorization", "Bearer ")]),
            headers(&[("authorization", "Bearer a b")]),
            headers(&[("x-api-key", "k"), ("x-api-key", "k")]),
            headers(&[("x-api-key", "")]),
        ] {
            assert!(
                matches!(api_key(&h, KeyHeaders::BOTH), Err(KeyError::Malformed(..))),
                "{h:?}"
            );
        }
    }

    #[test]
    fn two_different_keys_conflict_and_equal_keys_agree() {
        let h = headers(&[("authorization", "Bearer a"), ("x-api-key", "b")]);
        assert_eq!(api_key(&h, KeyHeaders::BOTH), Err(KeyError::Conflicting));
        let h = headers(&[("authorization", "Bearer a"), ("x-api-key", "a")]);
        assert_eq!(api_key(&h, KeyHeaders::BOTH), Ok("a"));
    }

    #[test]
    fn messages_name_the_accepted_headers() {
        assert_eq!(
            KeyError::Missing(KeyHeaders::BOTH).to_string(),
            "missing API key: send `Authorization: Bearer KEY` or `X-API-Key: KEY`"
        );
    }
}
