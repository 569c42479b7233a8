//! Who the client is, when the gateway may sit behind proxies of its own.
//!
//! The connection's peer is the client, and whatever it says in
//! `X-Forwarded-For` is its own claim, not believed. Only a peer inside
//! `--trusted-proxies` (a load balancer in front of the gateway) is
//! believed about the addresses before it: the client is then the rightmost
//! address of its `X-Forwarded-For` chain that is not itself a trusted
//! proxy ([`TrustedProxies::client`]), the address the gateway logs and
//! limits by.
//!
//! ```text
//! peer 10.0.0.5 (trusted), X-Forwarded-For: 6.6.6.6, 203.0.113.7, 10.0.0.9
//!   -> 10.0.0.9 is trusted too, 203.0.113.7 is the client (6.6.6.6 is its claim)
//! peer 198.51.100.1 (not trusted), X-Forwarded-For: 1.2.3.4
//!   -> 198.51.100.1
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// A block of addresses: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The first address (host bits cleared).
    net: IpAddr,
    /// How many leading bits every address of the block shares.
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_v4(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_v6(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// An IPv4 netmask of `prefix` bits (at most 32).
fn mask_v4(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

/// An IPv6 netmask of `prefix` bits (at most 128).
fn mask_v6(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let bad = |why: &str| {
            format!("invalid address block {s:?}: {why} (e.g. 10.0.0.0/8, fd00::/8 or 192.0.2.1)")
        };
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(bad(&format!("the prefix length must be 0 to {max}"))),
            },
        };
        let net = match net {
            IpAddr::V4(n) => IpAddr::V4((u32::from(n) & mask_v4(prefix)).into()),
            IpAddr::V6(n) => IpAddr::V6((u128::from(n) & mask_v6(prefix)).into()),
        };
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` the gateway believes
/// (`--trusted-proxies`); none by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// The blocks `list` names (`10.0.0.0/8`, `::1`, ...); blank entries are
    /// skipped.
    ///
    /// # Errors
    /// The first entry that is not an address block, and why.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Self, String> {
        list.iter()
            .map(AsRef::as_ref)
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client of a request from `peer` whose `X-Forwarded-For` fields
    /// are `xff` (every value, in order): `peer` unless it is trusted;
    /// otherwise, walking the chain from the right, the first address that
    /// is not trusted. An entry that is not an address ends the walk at the
    /// trusted hop that passed it on; a chain of trusted addresses only
    /// gives its leftmost.
    pub fn client<'a>(&self, peer: IpAddr, xff: impl Iterator<Item = &'a [u8]>) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let entries: Vec<&[u8]> = xff
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .collect();
        let mut nearest = peer;
        for entry in entries.into_iter().rev() {
            let Some(ip) = parse_entry(entry) else {
                return nearest;
            };
            if !self.contains(ip) {
                return ip;
            }
            nearest = ip;
        }
        nearest
    }
}

impl fmt::Display for TrustedProxies {
    /// The blocks, comma-separated (`none` when there are none).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// One `X-Forwarded-For` entry: an address, or an address and port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(entry).ok()?;
    s.parse::<IpAddr>()
        .or_else(|_| s.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    fn client(t: &TrustedProxies, peer: &str, xff: &[&str]) -> IpAddr {
        t.client(ip(peer), xff.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn blocks_are_parsed_with_their_host_bits_cleared() {
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "192.0.2.7".parse::<Cidr>().unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!("fd00::1/8".parse::<Cidr>().unwrap().to_string(), "fd00::/8");
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "ten", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let err = TrustedProxies::parse(&["10.0.0.0/8", "nope"]).unwrap_err();
        assert!(err.contains("\"nope\""), "{err}");
        assert_eq!(
            TrustedProxies::parse(&["", " "]).unwrap().to_string(),
            "none"
        );
        assert_eq!(
            TrustedProxies::parse(&["10.1.0.0/16", "::1"])
                .unwrap()
                .to_string(),
            "10.1.0.0/16,::1/128"
        );
    }

    #[test]
    fn a_block_contains_its_addresses_and_mapped_ones() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(!c.contains(ip("::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::5")));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let none = TrustedProxies::default();
        assert_eq!(
            client(&none, "198.51.100.1", &["1.2.3.4"]),
            ip("198.51.100.1")
        );
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            client(&t, "198.51.100.1", &["10.0.0.1"]),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_address_is_the_client() {
        let t = trusted(&["10.0.0.0/8", "127.0.0.1"]);
        // Split over several fields and entries alike.
        assert_eq!(
            client(&t, "10.0.0.5", &["6.6.6.6, 203.0.113.7", "10.0.0.9"]),
            ip("203.0.113.7")
        );
        assert_eq!(client(&t, "127.0.0.1", &["203.0.113.7"]), ip("203.0.113.7"));
        // Ports and brackets.
        assert_eq!(
            client(&t, "10.0.0.5", &["[2001:db8::1]:4711, 10.0.0.2:80"]),
            ip("2001:db8::1")
        );
        // No chain: the proxy itself.
        assert_eq!(client(&t, "10.0.0.5", &[]), ip("10.0.0.5"));
        // Only trusted addresses: the leftmost.
        assert_eq!(
            client(&t, "10.0.0.5", &["10.0.0.1, 10.0.0.2"]),
            ip("10.0.0.1")
        );
        // Garbage ends the walk at the trusted hop that passed it on.
        assert_eq!(
            client(&t, "10.0.0.5", &["1.2.3.4, unknown, 10.0.0.3"]),
            ip("10.0.0.3")
        );
        assert_eq!(client(&t, "10.0.0.5", &[""]), ip("10.0.0.5"));
    }
}
