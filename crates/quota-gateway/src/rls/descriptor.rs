//! From Envoy's rate limit descriptors to what the enforcement layer
//! checks: who calls, which endpoint, how many units. No I/O.
//!
//! A descriptor is a list of `key = value` entries. quota reads these keys
//! (any other key is an error: a typo must not pass as "no limit"):
//!
//! | key | meaning |
//! |---|---|
//! | `api_key` | the caller's API key, resolved through the accounts as the gateway does |
//! | `account` and `tier` | the caller, already resolved upstream of Envoy (both or neither) |
//! | `endpoint` | the endpoint name after the API prefix (`txt2img`) |
//! | `path` | the request's path (`/v1/txt2img`, a query is dropped), under the gateway's canonical-path rules |
//!
//! Exactly one caller (`api_key`, or `account` with `tier`) and exactly
//! one of `endpoint` and `path`. The cost is the descriptor's own
//! `hits_addend` if set, else the request's, where 0 means 1 (as Envoy
//! sends it).

use std::borrow::Cow;

use quota_core::account::Identity;
use quota_transport::identity::Caller;

/// The most units one descriptor may ask for: more than any window of a
/// policy is refused as a plan error anyway; this bounds the arithmetic.
pub(crate) const MAX_COST: u64 = 1 << 32;

/// The most descriptors one request may carry (each is a decision; a
/// request is decided all or nothing).
pub const MAX_DESCRIPTORS: usize = 16;

/// One descriptor, read: borrowed from the request (nothing is copied but
/// the path built from an `endpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ask<'a> {
    /// Who the units are counted against.
    pub(crate) caller: Who<'a>,
    /// The path to check (the endpoint under the API prefix, or the path
    /// Envoy sent).
    pub(crate) path: Cow<'a, str>,
    /// The units.
    pub(crate) cost: u64,
}

/// The caller a descriptor names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who<'a> {
    /// `api_key`: resolved through the accounts.
    ApiKey(&'a str),
    /// `account` with `tier`: resolved upstream of Envoy.
    Identity {
        /// The account.
        account: &'a str,
        /// Its tier.
        tier: &'a str,
    },
}

impl Who<'_> {
    /// The caller as the enforcement layer takes it, owned.
    pub(crate) fn to_caller(self) -> Caller {
        match self {
            Who::ApiKey(key) => Caller::ApiKey(key.to_owned()),
            Who::Identity { account, tier } => Caller::Identity(Identity {
                account: account.to_owned(),
                tier: tier.to_owned(),
            }),
        }
    }
}

/// Why a descriptor cannot be read: the gRPC answer is
/// `INVALID_ARGUMENT` with this text (Envoy's configuration is wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DescriptorError {
    /// The request has no descriptor.
    #[error("the request has no descriptor")]
    NoDescriptor,
    /// More descriptors in one request than [`MAX_DESCRIPTORS`].
    #[error("{0} descriptors in one request; at most {MAX_DESCRIPTORS} are decided together")]
    TooManyDescriptors(usize),
    /// An entry quota does not read.
    #[error(
        "descriptor entry {key:?} is not one quota reads (api_key, account, tier, endpoint, path)"
    )]
    UnknownEntry {
        /// The entry's key.
        key: String,
    },
    /// An entry given twice.
    #[error("descriptor entry {0:?} appears twice")]
    Duplicate(&'static str),
    /// An entry with an empty value.
    #[error("descriptor entry {0:?} is empty")]
    Empty(&'static str),
    /// No caller, or two.
    #[error("the descriptor must name the caller: `api_key`, or `account` with `tier`")]
    Caller,
    /// No endpoint, or two.
    #[error("the descriptor must name the endpoint: `endpoint` or `path` (one of them)")]
    Endpoint,
    /// A `path` that is not an origin-form path.
    #[error("descriptor entry \"path\" must start with '/': {0:?}")]
    NotAPath(String),
    /// Envoy's per-descriptor limit override: the policy sets the limits.
    #[error("a descriptor's `limit` override is not accepted: the policy sets the limits")]
    LimitOverride,
    /// Negative hits (Envoy's way to give units back).
    #[error("negative hits are not accepted")]
    NegativeHits,
    /// More units than [`MAX_COST`].
    #[error("hits_addend {0} is too large")]
    TooManyHits(u64),
}

/// What a descriptor carries besides its entries.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extras {
    /// Envoy's `limit` override is set.
    pub(crate) limit_override: bool,
    /// The descriptor's own `hits_addend`, if set.
    pub(crate) hits_addend: Option<u64>,
    /// Envoy's `is_negative_hits`.
    pub(crate) negative: bool,
}

/// Reads one descriptor: its `entries` as `(key, value)` pairs and its
/// `extras`, under the API `prefix` (`/v1/`), with the request's
/// `hits_addend`.
pub(crate) fn read<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    extras: &Extras,
    request_hits: u32,
    prefix: &str,
) -> Result<Ask<'a>, DescriptorError> {
    if extras.limit_override {
        return Err(DescriptorError::LimitOverride);
    }
    if extras.negative {
        return Err(DescriptorError::NegativeHits);
    }
    let mut seen = Seen::default();
    for (key, value) in entries {
        let (slot, name) = match key {
            "api_key" => (&mut seen.api_key, "api_key"),
            "account" => (&mut seen.account, "account"),
            "tier" => (&mut seen.tier, "tier"),
            "endpoint" => (&mut seen.endpoint, "endpoint"),
            "path" => (&mut seen.path, "path"),
            other => {
                return Err(DescriptorError::UnknownEntry {
                    key: other.to_owned(),
                })
            }
        };
        if slot.is_some() {
            return Err(DescriptorError::Duplicate(name));
        }
        if value.is_empty() {
            return Err(DescriptorError::Empty(name));
        }
        *slot = Some(value);
    }
    let caller = match (seen.api_key, seen.account, seen.tier) {
        (Some(key), None, None) => Who::ApiKey(key),
        (None, Some(account), Some(tier)) => Who::Identity { account, tier },
        _ => return Err(DescriptorError::Caller),
    };
    let path = match (seen.endpoint, seen.path) {
        (Some(endpoint), None) => {
            let mut path = String::with_capacity(prefix.len() + endpoint.len());
            path.push_str(prefix);
            path.push_str(endpoint);
            Cow::Owned(path)
        }
        (None, Some(path)) => {
            // Envoy's `:path` carries the query (and a client may send a
            // fragment): the endpoint is chosen from the path alone.
            let path = path.split(['?', '#']).next().unwrap_or_default();
            if !path.starts_with('/') {
                return Err(DescriptorError::NotAPath(path.to_owned()));
            }
            Cow::Borrowed(path)
        }
        _ => return Err(DescriptorError::Endpoint),
    };
    let cost = match extras.hits_addend {
        Some(n) => n,
        None => u64::from(request_hits.max(1)),
    };
    if cost > MAX_COST {
        return Err(DescriptorError::TooManyHits(cost));
    }
    Ok(Ask { caller, path, cost })
}

#[derive(Default)]
struct Seen<'a> {
    api_key: Option<&'a str>,
    account: Option<&'a str>,
    tier: Option<&'a str>,
    endpoint: Option<&'a str>,
    path: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<'a>(
        pairs: &[(&'a str, &'a str)],
        extras: &Extras,
        request_hits: u32,
        prefix: &str,
    ) -> Result<Ask<'a>, DescriptorError> {
        super::read(pairs.iter().copied(), extras, request_hits, prefix)
    }

    const NONE: Extras = Extras {
        limit_override: false,
        hits_addend: None,
        negative: false,
    };

    #[test]
    fn an_api_key_and_an_endpoint() {
        let ask = read(
            &[("api_key", "k-1"), ("endpoint", "txt2img")],
            &NONE,
            0,
            "/v1/",
        );
        assert_eq!(
            ask,
            Ok(Ask {
                caller: Who::ApiKey("k-1"),
                path: "/v1/txt2img".into(),
                cost: 1,
            })
        );
        assert_eq!(Who::ApiKey("k-1").to_caller(), Caller::ApiKey("k-1".into()));
    }

    #[test]
    fn an_account_a_path_and_hits() {
        let pairs = [
            ("path", "/v1/img2img?size=big#x"),
            ("account", "acct-1"),
            ("tier", "premium"),
        ];
        assert_eq!(read(&pairs, &NONE, 3, "/v1/").map(|a| a.cost), Ok(3));
        let extras = Extras {
            hits_addend: Some(7),
            ..NONE
        };
        let ask = read(&pairs, &extras, 3, "/v1/");
        let who = Who::Identity {
            account: "acct-1",
            tier: "premium",
        };
        assert_eq!(
            ask,
            Ok(Ask {
                caller: who,
                path: "/v1/img2img".into(),
                cost: 7,
            })
        );
        assert_eq!(
            who.to_caller(),
            Caller::Identity(Identity {
                account: "acct-1".into(),
                tier: "premium".into()
            })
        );
    }

    #[test]
    fn malformed_descriptors_say_why() {
        let cases: &[(&[(&str, &str)], DescriptorError)] = &[
            (&[("endpoint", "txt2img")], DescriptorError::Caller),
            (
                &[
                    ("api_key", "k"),
                    ("account", "a"),
                    ("tier", "t"),
                    ("endpoint", "e"),
                ],
                DescriptorError::Caller,
            ),
            (
                &[("account", "a"), ("endpoint", "e")],
                DescriptorError::Caller,
            ),
            (&[("api_key", "k")], DescriptorError::Endpoint),
            (
                &[("api_key", "k"), ("endpoint", "e"), ("path", "/v1/e")],
                DescriptorError::Endpoint,
            ),
            (
                &[("api_key", "k"), ("api_key", "j"), ("endpoint", "e")],
                DescriptorError::Duplicate("api_key"),
            ),
            (
                &[("api_key", ""), ("endpoint", "e")],
                DescriptorError::Empty("api_key"),
            ),
            (
                &[("api-key", "k"), ("endpoint", "e")],
                DescriptorError::UnknownEntry {
                    key: "api-key".into(),
                },
            ),
            (
                &[("api_key", "k"), ("path", "v1/e")],
                DescriptorError::NotAPath("v1/e".into()),
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(
                read(pairs, &NONE, 1, "/v1/").as_ref(),
                Err(want),
                "{pairs:?}"
            );
        }
        let pairs = [("api_key", "k"), ("endpoint", "e")];
        let negative = Extras {
            negative: true,
            ..NONE
        };
        assert_eq!(
            read(&pairs, &negative, 1, "/v1/"),
            Err(DescriptorError::NegativeHits)
        );
        let limit_override = Extras {
            limit_override: true,
            ..NONE
        };
        assert_eq!(
            read(&pairs, &limit_override, 1, "/v1/"),
            Err(DescriptorError::LimitOverride)
        );
        let too_many = Extras {
            hits_addend: Some(u64::MAX),
            ..NONE
        };
        assert_eq!(
            read(&pairs, &too_many, 1, "/v1/"),
            Err(DescriptorError::TooManyHits(u64::MAX))
        );
    }

    #[test]
    fn an_endpoint_that_climbs_is_left_to_the_path_rules() {
        // `..` is not resolved here: the layer makes the path canonical and
        // refuses one that climbs above the prefix, as for HTTP.
        let ask = read(
            &[("api_key", "k"), ("endpoint", "../admin")],
            &NONE,
            1,
            "/v1/",
        );
        assert_eq!(ask.map(|a| a.path), Ok("/v1/../admin".into()));
    }
}
