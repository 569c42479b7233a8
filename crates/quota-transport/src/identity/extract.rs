//! The key extractor seam: who a request is counted against.
//!
//! By default the enforcement layer reads the API key from the request's
//! headers ([`api_key`]) and resolves it through the accounts. A
//! [`KeyExtractor`] set with
//! [`EnforceLayer::key`](crate::enforce::EnforceLayer::key) replaces that
//! first step: it looks at the request ([`RequestView`]: its headers and
//! extensions) and names the [`Caller`], either an API key (still resolved
//! through the accounts) or an [`Identity`] already known (an account id
//! and a tier, used as they are). [`ClientIp`](super::ClientIp) is one
//! such extractor; a closure
//! `Fn(&RequestView<'_>) -> Option<Caller>` is another.
//!
//! ```
//! use http::{HeaderMap, HeaderName};
//! use quota_core::account::Identity;
//! use quota_transport::identity::{Caller, KeyExtractor, RequestView};
//!
//! // Callers counted by a tenant header, all on the "basic" tier.
//! let by_tenant = |request: &RequestView<'_>| {
//!     let tenant = request.header(&HeaderName::from_static("x-tenant"))?;
//!     Some(Caller::Identity(Identity { account: format!("tenant:{tenant}"), tier: "basic".into() }))
//! };
//! let mut headers = HeaderMap::new();
//! headers.insert("x-tenant", "acme".parse().unwrap());
//! let caller = by_tenant.extract(&RequestView::new(&headers, None)).unwrap();
//! assert_eq!(caller, Caller::Identity(Identity { account: "tenant:acme".into(), tier: "basic".into() }));
//! // No header: 401.
//! let refused = by_tenant.extract(&RequestView::new(&HeaderMap::new(), None)).unwrap_err();
//! assert_eq!(refused.status(), 401);
//! ```

use std::borrow::Cow;
use std::net::SocketAddr;

use http::header::{HeaderMap, HeaderName};
use http::{Extensions, StatusCode};
use quota_core::account::Identity;

use super::{api_key, KeyError, KeyHeaders};
use crate::fields::{text, HeaderFields};

/// Who a request is from, as a [`KeyExtractor`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// An API key: resolved through the layer's accounts (an unknown key is 401).
    ApiKey(String),
    /// The caller already known: counted as this account on this tier,
    /// without asking the accounts. A priced endpoint still charges the
    /// account through them.
    Identity(Identity),
}

/// Why a [`KeyExtractor`] found no caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The API key headers are missing, malformed or conflicting (401).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The request carries nothing the extractor counts callers by (401):
    /// a closure answered `None`.
    #[error("missing credentials: the request carries none this service accepts")]
    NoCredentials,
    /// The request's extensions hold no client address (500: the server's
    /// configuration, not the client, is at fault). Serve with the peer's
    /// address recorded: axum's `into_make_service_with_connect_info`, or
    /// the accepted stream's `SocketAddr` inserted into each request.
    #[error("no client address in the request's extensions: the server does not record the peer's address")]
    NoClientAddress,
}

impl ExtractError {
    /// The status the layer answers with: 401, or 500 for
    /// [`ExtractError::NoClientAddress`].
    pub fn status(&self) -> StatusCode {
        match self {
            ExtractError::Key(_) | ExtractError::NoCredentials => StatusCode::UNAUTHORIZED,
            ExtractError::NoClientAddress => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Finds who a request is from; see the [module docs](self).
///
/// Implemented by [`ClientIp`](super::ClientIp) and by every closure
/// `Fn(&RequestView<'_>) -> Option<Caller> + Send + Sync + 'static`
/// (`None` is answered 401, [`ExtractError::NoCredentials`]). It runs on
/// every request, before anything else is looked up: keep it cheap.
pub trait KeyExtractor: Send + Sync + 'static {
    /// The caller of `request`, or why there is none.
    ///
    /// # Errors
    /// [`ExtractError`]: the layer answers with its
    /// [`status`](ExtractError::status).
    fn extract(&self, request: &RequestView<'_>) -> Result<Caller, ExtractError>;
}

impl<F> KeyExtractor for F
where
    F: Fn(&RequestView<'_>) -> Option<Caller> + Send + Sync + 'static,
{
    fn extract(&self, request: &RequestView<'_>) -> Result<Caller, ExtractError> {
        self(request).ok_or(ExtractError::NoCredentials)
    }
}

/// What a [`KeyExtractor`] sees of a request: its header fields and, when
/// the request went through a tower service, its extensions.
/// [`EnforceLayer::check_head`](crate::enforce::EnforceLayer::check_head)
/// has no extensions to offer.
pub struct RequestView<'r> {
    headers: &'r dyn Fields,
    extensions: Option<&'r Extensions>,
}

impl<'r> RequestView<'r> {
    /// A view of `headers` and `extensions` (to call an extractor outside
    /// the layer, in a test say).
    pub fn new(headers: &'r HeaderMap, extensions: Option<&'r Extensions>) -> Self {
        RequestView {
            headers,
            extensions,
        }
    }

    /// The value of the header `name` as text, when the request has exactly
    /// one and it is visible ASCII (spaces and tabs allowed, trimmed);
    /// `None` when it is absent, repeated or not text, so that a client
    /// cannot choose among two values.
    pub fn header(&self, name: &HeaderName) -> Option<&'r str> {
        self.headers.single(name).and_then(text).map(str::trim)
    }

    /// The API key from the `accepted` headers, by the rules of [`api_key`].
    ///
    /// # Errors
    /// [`KeyError`], as [`api_key`].
    pub fn api_key(&self, accepted: KeyHeaders) -> Result<&'r str, KeyError> {
        self.headers.api_key(accepted)
    }

    /// The request's extensions; `None` when the layer is used without a
    /// request ([`check_head`](crate::enforce::EnforceLayer::check_head)).
    pub fn extensions(&self) -> Option<&'r Extensions> {
        self.extensions
    }

    /// The extension of type `T`, if the request has one.
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&'r T> {
        self.extensions?.get::<T>()
    }

    /// The client's address, from a [`SocketAddr`] extension.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.extension::<SocketAddr>().copied()
    }
}

impl core::fmt::Debug for RequestView<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RequestView")
            .field("extensions", &self.extensions)
            .finish_non_exhaustive()
    }
}

/// The header reads a view offers, over any [`HeaderFields`] (a
/// `HeaderMap`, or the raw fields of a head), behind one pointer type.
trait Fields {
    /// The value of `name` when there is exactly one.
    fn single(&self, name: &HeaderName) -> Option<&[u8]>;
    /// [`api_key`] over these fields.
    fn api_key(&self, accepted: KeyHeaders) -> Result<&str, KeyError>;
}

impl<H: HeaderFields + ?Sized> Fields for H {
    fn single(&self, name: &HeaderName) -> Option<&[u8]> {
        let mut values = self.values_of(name);
        let first = values.next()?;
        values.next().is_none().then_some(first)
    }

    fn api_key(&self, accepted: KeyHeaders) -> Result<&str, KeyError> {
        api_key(self, accepted)
    }
}

/// A sized handle on fields that may be unsized (`[(&[u8], &[u8])]`), so
/// that they can be viewed through `&dyn Fields`.
struct FieldsRef<'h, H: ?Sized>(&'h H);

impl<H: HeaderFields + ?Sized> HeaderFields for FieldsRef<'_, H> {
    fn values_of<'a: 'n, 'n>(
        &'a self,
        name: &'n HeaderName,
    ) -> impl Iterator<Item = &'a [u8]> + 'n {
        self.0.values_of(name)
    }
}

/// What the layer does with a request's caller: resolve a key through the
/// accounts, or use the identity found.
#[derive(Debug)]
pub(crate) enum Found<'h> {
    /// An API key to resolve (borrowed from the headers on the default path).
    ApiKey(Cow<'h, str>),
    /// A caller the extractor already knows.
    Identity(Identity),
}

/// The caller of a request: by the API key headers when the layer has no
/// extractor (the default, and the hot path: nothing allocated, nothing
/// called through a pointer), else by `extractor`. Without an extractor,
/// a request with no key header at all is `anonymous`'s to name, if there
/// is one (its [`ExtractError::NoCredentials`] keeps the missing key's 401).
pub(crate) fn find_caller<'h, H>(
    extractor: Option<&dyn KeyExtractor>,
    anonymous: Option<&dyn KeyExtractor>,
    accepted: KeyHeaders,
    headers: &'h H,
    extensions: Option<&'h Extensions>,
) -> Result<Found<'h>, ExtractError>
where
    H: HeaderFields + ?Sized,
{
    let fields = FieldsRef(headers);
    let view = RequestView {
        headers: &fields,
        extensions,
    };
    let Some(extractor) = extractor else {
        return match (api_key(headers, accepted), anonymous) {
            (Ok(key), _) => Ok(Found::ApiKey(Cow::Borrowed(key))),
            (Err(missing @ KeyError::Missing(_)), Some(anonymous)) => {
                match anonymous.extract(&view) {
                    Err(ExtractError::NoCredentials) => Err(missing.into()),
                    found => found.map(Found::from),
                }
            }
            (Err(e), _) => Err(e.into()),
        };
    };
    extractor.extract(&view).map(Found::from)
}

impl From<Caller> for Found<'_> {
    fn from(caller: Caller) -> Self {
        match caller {
            Caller::ApiKey(key) => Found::ApiKey(Cow::Owned(key)),
            Caller::Identity(who) => Found::Identity(who),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;
    use http::header::HeaderValue;

    fn tenant(request: &RequestView<'_>) -> Option<Caller> {
        let t = request.header(&HeaderName::from_static("x-tenant"))?;
        Some(Caller::ApiKey(format!("tenant-{t}")))
    }

    #[test]
    fn the_default_reads_the_key_headers_and_borrows_the_key() {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "k-1".parse().unwrap());
        let found = find_caller(None, None, KeyHeaders::BOTH, &h, None).unwrap();
        assert!(matches!(found, Found::ApiKey(Cow::Borrowed("k-1"))));
        let missing =
            find_caller(None, None, KeyHeaders::BOTH, &HeaderMap::new(), None).unwrap_err();
        assert_eq!(
            missing,
            ExtractError::Key(KeyError::Missing(KeyHeaders::BOTH))
        );
        // The message is the key error's, word for word.
        assert_eq!(
            missing.to_string(),
            KeyError::Missing(KeyHeaders::BOTH).to_string()
        );
    }

    #[test]
    fn an_extractor_sees_raw_fields_and_no_extensions_without_a_request() {
        let raw: &[(&[u8], &[u8])] = &[(b"X-Tenant", b" acme ")];
        let found = find_caller(Some(&tenant), None, KeyHeaders::BOTH, raw, None).unwrap();
        assert!(matches!(found, Found::ApiKey(Cow::Owned(k)) if k == "tenant-acme"));
        let none: &[(&[u8], &[u8])] = &[];
        assert_eq!(
            find_caller(Some(&tenant), None, KeyHeaders::BOTH, none, None).unwrap_err(),
            ExtractError::NoCredentials
        );
    }

    #[test]
    fn only_a_missing_key_falls_back_to_the_anonymous_extractor() {
        let who = Identity {
            account: "anonymous:198.51.100.1".into(),
            tier: "free".into(),
        };
        let named = who.clone();
        let anonymous = move |_: &RequestView<'_>| Some(Caller::Identity(named.clone()));
        fn find<'h>(
            h: &'h HeaderMap,
            anonymous: Option<&dyn KeyExtractor>,
        ) -> Result<Found<'h>, ExtractError> {
            find_caller(None, anonymous, KeyHeaders::BOTH, h, None)
        }
        let none = HeaderMap::new();
        let found = find(&none, Some(&anonymous)).unwrap();
        assert!(matches!(found, Found::Identity(w) if w == who));
        // A key, good or bad, is never downgraded to anonymous.
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "k-1".parse().unwrap());
        assert!(matches!(
            find(&h, Some(&anonymous)).unwrap(),
            Found::ApiKey(_)
        ));
        h.insert("authorization", "Bearer k-2".parse().unwrap());
        assert!(matches!(
            find(&h, Some(&anonymous)).unwrap_err(),
            ExtractError::Key(KeyError::Conflicting)
        ));
        // An extractor that names nobody leaves the missing key's 401.
        let nobody = |_: &RequestView<'_>| None;
        assert_eq!(
            find(&none, Some(&nobody)).unwrap_err(),
            ExtractError::Key(KeyError::Missing(KeyHeaders::BOTH))
        );
    }

    #[test]
    fn a_repeated_or_binary_header_is_no_value() {
        let mut h = HeaderMap::new();
        h.append("x-tenant", "a".parse().unwrap());
        h.append("x-tenant", "b".parse().unwrap());
        let name = HeaderName::from_static("x-tenant");
        assert_eq!(RequestView::new(&h, None).header(&name), None);
        let mut h = HeaderMap::new();
        h.insert("x-tenant", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        assert_eq!(RequestView::new(&h, None).header(&name), None);
    }

    #[test]
    fn a_missing_credential_is_401_and_a_missing_address_500() {
        // The answers themselves (challenge, body, no detail on a 500) are
        // the enforcement layer's: tests/enforce_keys.rs.
        assert_eq!(ExtractError::NoCredentials.status(), 401);
        assert_eq!(ExtractError::NoClientAddress.status(), 500);
    }
}
