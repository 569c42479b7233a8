//! [`ClientIp`]: callers counted by their network address, like
//! `tower_governor`'s peer-IP key, with no account and no API key.
//!
//! The address comes from the request's extensions, where the server put
//! the peer's address of the connection: a [`SocketAddr`] by default, or
//! any extension that dereferences to one (axum's
//! `ConnectInfo<SocketAddr>`, with
//! [`ClientIp::from_extension`]). Forwarded headers (`X-Forwarded-For`,
//! `Forwarded`) are never read: a client could write anything there. Behind
//! a proxy, put the address the proxy vouches for into an extension first.
//!
//! An IPv4 address is one caller. An IPv6 address is counted with its /64:
//! a single host usually holds a whole /64 and could otherwise take a fresh
//! budget for every address in it. An IPv4 address mapped into IPv6
//! (`::ffff:203.0.113.7`, as a dual-stack socket reports it) is the IPv4
//! address.
//!
//! ```
//! use std::net::SocketAddr;
//! use http::{Extensions, HeaderMap};
//! use quota_core::account::Identity;
//! use quota_transport::identity::{Caller, ClientIp, KeyExtractor, RequestView};
//!
//! let by_ip = ClientIp::new("basic");
//! let mut extensions = Extensions::new();
//! extensions.insert("[2001:db8:1:2:aaaa::1]:50000".parse::<SocketAddr>().unwrap());
//! let caller = by_ip.extract(&RequestView::new(&HeaderMap::new(), Some(&extensions))).unwrap();
//! assert_eq!(caller, Caller::Identity(Identity { account: "ip:2001:db8:1:2::/64".into(), tier: "basic".into() }));
//! ```

use core::ops::Deref;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::Extensions;
use quota_core::account::Identity;

use super::{Caller, ExtractError, KeyExtractor, RequestView};

/// Counts each client address (an IPv6 address by its /64) as a caller on
/// one tier: a [`KeyExtractor`] for
/// [`EnforceLayer::key`](crate::enforce::EnforceLayer::key). See the
/// [identity module docs](crate::identity).
///
/// A request with no address in its extensions is answered 500
/// ([`ExtractError::NoClientAddress`]): the server does not record it.
#[derive(Clone, Debug)]
pub struct ClientIp {
    tier: String,
    address: fn(&Extensions) -> Option<SocketAddr>,
}

impl ClientIp {
    /// Callers by address, each limited by the policy's tier `tier`, the
    /// address read from a [`SocketAddr`] extension.
    pub fn new(tier: impl Into<String>) -> Self {
        ClientIp {
            tier: tier.into(),
            address: socket_addr,
        }
    }

    /// Reads the address from an extension of type `T` that dereferences
    /// to a [`SocketAddr`] (axum's `ConnectInfo<SocketAddr>`), then from a
    /// [`SocketAddr`] extension.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use axum::extract::ConnectInfo;
    /// use http::{Extensions, HeaderMap};
    /// use quota_transport::identity::{Caller, ClientIp, KeyExtractor, RequestView};
    ///
    /// let by_ip = ClientIp::new("basic").from_extension::<ConnectInfo<SocketAddr>>();
    /// let mut extensions = Extensions::new(); // as axum's `into_make_service_with_connect_info` fills them
    /// extensions.insert(ConnectInfo("203.0.113.7:50000".parse::<SocketAddr>().unwrap()));
    /// let caller = by_ip.extract(&RequestView::new(&HeaderMap::new(), Some(&extensions))).unwrap();
    /// assert!(matches!(caller, Caller::Identity(who) if who.account == "ip:203.0.113.7"));
    /// ```
    #[must_use]
    pub fn from_extension<T>(self) -> Self
    where
        T: Deref<Target = SocketAddr> + Send + Sync + 'static,
    {
        ClientIp {
            address: deref_then_socket_addr::<T>,
            ..self
        }
    }

    /// The tier callers are limited on.
    pub fn tier(&self) -> &str {
        &self.tier
    }

    /// The account a client address is counted as: `ip:` and the IPv4
    /// address, or `ip:` and the IPv6 address's /64 network.
    ///
    /// ```
    /// use quota_transport::identity::ClientIp;
    /// assert_eq!(ClientIp::account_of("203.0.113.7".parse().unwrap()), "ip:203.0.113.7");
    /// assert_eq!(ClientIp::account_of("2001:db8::1234:5678".parse().unwrap()), "ip:2001:db8::/64");
    /// assert_eq!(ClientIp::account_of("::ffff:203.0.113.7".parse().unwrap()), "ip:203.0.113.7");
    /// ```
    pub fn account_of(ip: IpAddr) -> String {
        match ip.to_canonical() {
            IpAddr::V4(v4) => format!("ip:{v4}"),
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !(u128::MAX >> 64);
                format!("ip:{}/64", Ipv6Addr::from(network))
            }
        }
    }
}

impl KeyExtractor for ClientIp {
    fn extract(&self, request: &RequestView<'_>) -> Result<Caller, ExtractError> {
        let addr = request
            .extensions()
            .and_then(self.address)
            .ok_or(ExtractError::NoClientAddress)?;
        Ok(Caller::Identity(Identity {
            account: Self::account_of(addr.ip()),
            tier: self.tier.clone(),
        }))
    }
}

fn socket_addr(extensions: &Extensions) -> Option<SocketAddr> {
    extensions.get::<SocketAddr>().copied()
}

fn deref_then_socket_addr<T>(extensions: &Extensions) -> Option<SocketAddr>
where
    T: Deref<Target = SocketAddr> + Send + Sync + 'static,
{
    extensions
        .get::<T>()
        .map(|t| **t)
        .or_else(|| socket_addr(extensions))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use http::HeaderMap;

    use super::*;

    /// Stands in for axum's `ConnectInfo<SocketAddr>`.
    #[derive(Clone)]
    struct Connected(SocketAddr);

    impl Deref for Connected {
        type Target = SocketAddr;
        fn deref(&self) -> &SocketAddr {
            &self.0
        }
    }

    fn account(by: &ClientIp, extensions: &Extensions) -> Result<String, ExtractError> {
        match by.extract(&RequestView::new(&HeaderMap::new(), Some(extensions)))? {
            Caller::Identity(who) => {
                assert_eq!(who.tier, by.tier());
                Ok(who.account)
            }
            Caller::ApiKey(_) => panic!("an address is not an API key"),
        }
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_their_64() {
        let of = |s: &str| ClientIp::account_of(s.parse().unwrap());
        assert_eq!(
            of("2001:db8:1:2::1"),
            of("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(of("2001:db8:1:2::1"), of("2001:db8:1:3::1"));
        assert_eq!(of("2001:db8:1:2:3:4:5:6"), "ip:2001:db8:1:2::/64");
        assert_eq!(of("::1"), "ip:::/64");
        assert_ne!(of("203.0.113.7"), of("203.0.113.8"));
    }

    #[test]
    fn the_address_comes_from_the_configured_extension_then_a_socket_addr() {
        let plain = ClientIp::new("basic");
        let wrapped = ClientIp::new("basic").from_extension::<Connected>();
        let mut ext = Extensions::new();
        assert_eq!(account(&plain, &ext), Err(ExtractError::NoClientAddress));
        assert_eq!(account(&wrapped, &ext), Err(ExtractError::NoClientAddress));
        ext.insert("198.51.100.1:1".parse::<SocketAddr>().unwrap());
        assert_eq!(account(&wrapped, &ext).unwrap(), "ip:198.51.100.1");
        ext.insert(Connected("198.51.100.2:2".parse().unwrap()));
        assert_eq!(account(&wrapped, &ext).unwrap(), "ip:198.51.100.2");
        assert_eq!(account(&plain, &ext).unwrap(), "ip:198.51.100.1");
    }

    #[test]
    fn without_extensions_there_is_no_address() {
        let by = ClientIp::new("basic");
        assert_eq!(
            by.extract(&RequestView::new(&HeaderMap::new(), None)),
            Err(ExtractError::NoClientAddress)
        );
    }
}
