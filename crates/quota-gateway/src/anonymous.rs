//! Callers without a key: limited by their address on the policy's
//! anonymous tier (`granted = "anonymous"`), when it has one.
//!
//! A request to a metered route (or `/v1/limits`) that carries no key
//! header at all is counted as the account `anonymous:ADDRESS` on that
//! tier: the client's IPv4 address, or its IPv6 address's /64 (one host
//! usually holds a whole /64). The address is the connection's peer, or,
//! when the peer is one of the `--trusted-proxies`, the client its
//! `X-Forwarded-For` names ([`TrustedProxies::client`]). A policy without
//! an anonymous tier leaves a missing key 401, and a malformed, conflicting
//! or unknown key is 401 whatever the policy: a key is never downgraded to
//! anonymous. Anonymous callers have no account: a priced endpoint is 401
//! for them (it needs a key).
//!
//! [`TrustedProxies::client`]: crate::forwarded::TrustedProxies::client

use std::net::IpAddr;

use http::header::AUTHORIZATION;
use http::Extensions;
use quota_core::account::Identity;
use quota_transport::enforce::PolicyHandle;
use quota_transport::fields::HeaderFields;
use quota_transport::identity::{
    Caller, ClientIp, ExtractError, KeyExtractor, RequestView, X_API_KEY,
};

/// The client's address as the gateway counts it (the peer, or the client a
/// trusted proxy names), in the extensions of a request without a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Client(pub(crate) IpAddr);

/// Names a caller without a key by its [`Client`] address on the anonymous
/// tier of the policy in force (the enforcement layer's
/// [`anonymous`](quota_transport::enforce::EnforceLayer::anonymous)).
pub(crate) struct Anonymous {
    pub(crate) policy: PolicyHandle,
}

impl KeyExtractor for Anonymous {
    fn extract(&self, request: &RequestView<'_>) -> Result<Caller, ExtractError> {
        let policy = self.policy.load();
        let tier = policy.anonymous_tier().ok_or(ExtractError::NoCredentials)?;
        let Client(ip) = request
            .extension::<Client>()
            .ok_or(ExtractError::NoClientAddress)?;
        Ok(Caller::Identity(Identity {
            account: account_of(*ip),
            tier: tier.name().to_owned(),
        }))
    }
}

/// The account an anonymous caller at `ip` is counted as:
/// `anonymous:203.0.113.7`, or `anonymous:2001:db8:1:2::/64`.
pub(crate) fn account_of(ip: IpAddr) -> String {
    let by_ip = ClientIp::account_of(ip);
    let address = by_ip.strip_prefix("ip:").unwrap_or(&by_ip);
    format!("anonymous:{address}")
}

/// Whether a request has no key header at all (only then can it be
/// anonymous: a bad key is 401).
pub(crate) fn has_no_key<H: HeaderFields + ?Sized>(headers: &H) -> bool {
    headers.values_of(&X_API_KEY).next().is_none()
        && headers.values_of(&AUTHORIZATION).next().is_none()
}

/// The extensions that tell [`Anonymous`] who a request without a key is.
pub(crate) fn extensions(client: IpAddr) -> Extensions {
    let mut extensions = Extensions::new();
    extensions.insert(Client(client));
    extensions
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;

    #[test]
    fn an_ipv6_caller_is_its_64_and_an_ipv4_one_its_address() {
        let of = |s: &str| account_of(s.parse().unwrap());
        assert_eq!(of("203.0.113.7"), "anonymous:203.0.113.7");
        assert_eq!(of("::ffff:203.0.113.7"), "anonymous:203.0.113.7");
        assert_eq!(of("2001:db8:1:2:aaaa::1"), "anonymous:2001:db8:1:2::/64");
        assert_eq!(of("2001:db8:1:2:aaaa::1"), of("2001:db8:1:2::ffff"));
        assert_ne!(of("2001:db8:1:2::1"), of("2001:db8:1:3::1"));
    }

    #[test]
    fn only_a_request_with_no_key_header_is_anonymous() {
        let mut h = http::HeaderMap::new();
        assert!(has_no_key(&h));
        h.insert("authorization", "Basic eDp5".parse().unwrap());
        assert!(!has_no_key(&h));
        let raw: &[(&[u8], &[u8])] = &[(b"X-Api-Key", b"")];
        assert!(!has_no_key(raw));
    }
}
