//! The settings' values: their parsers and defaults.

use std::net::SocketAddr;
use std::time::Duration;

use http::Uri;

use super::StoreSetting;
use crate::route_table::check_upstream;

/// The listen address when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The accounts database folder when none is given.
pub const DEFAULT_DATA_DIR: &str = "quota-data";
/// The gRPC domain when none is given.
pub(super) const DEFAULT_GRPC_DOMAIN: &str = "quota";
/// Seconds to wait for an upstream's response headers unless configured.
pub(super) const DEFAULT_UPSTREAM_TIMEOUT: f64 = 30.0;
/// Seconds a client has to send a request head unless configured.
pub(super) const DEFAULT_CLIENT_TIMEOUT: f64 = 60.0;
/// Seconds in-flight requests get on shutdown unless configured.
pub(super) const DEFAULT_SHUTDOWN_TIMEOUT: f64 = 30.0;
/// Client connections open at once unless configured.
pub(super) const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// The most `max_connections` accepts (a semaphore's limit is far higher;
/// this keeps a typo from meaning "no limit").
pub(super) const MAX_MAX_CONNECTIONS: usize = 1_000_000;
/// The most worker threads accepted.
pub(super) const MAX_WORKERS: usize = 1024;

/// A value read by its type's `FromStr`.
pub(super) fn parsed<T: std::str::FromStr<Err = String>>(v: String) -> Result<T, String> {
    v.trim().parse()
}

pub(super) fn parse_listen(v: &str) -> Result<SocketAddr, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("invalid listen address {v:?}: expected IP:PORT, e.g. 127.0.0.1:8080"))
}

/// An upstream base URL, `http[s]://host[:port][/base]`, checked as the
/// gateway checks every upstream ([`check_upstream`]).
pub(super) fn parse_upstream(v: &str) -> Result<Uri, String> {
    let uri: Uri = v
        .trim()
        .parse()
        .map_err(|e| format!("invalid upstream URL {v:?}: {e}"))?;
    check_upstream(&uri).map_err(|reason| format!("upstream URL {v:?}: {reason}"))?;
    Ok(uri)
}

pub(super) fn parse_store(v: &str) -> Result<StoreSetting, String> {
    let t = v.trim();
    if t.eq_ignore_ascii_case("memory") {
        Ok(StoreSetting::Memory)
    } else if t.starts_with("redis://")
        || t.starts_with("rediss://")
        || t.starts_with("redis+unix://")
        || t.starts_with("redis+cluster://")
    {
        Ok(StoreSetting::Redis(t.to_owned()))
    } else {
        Err(format!(
            "invalid store {v:?}: expected `memory` or a Redis URL such as redis://127.0.0.1:6379 (a cluster: redis+cluster://host:port,host:port)"
        ))
    }
}

pub(super) fn parse_admin_token(v: String) -> Result<Option<String>, String> {
    match v.trim().len() {
        ..8 => Err("the admin token must be at least 8 characters".to_owned()),
        _ => Ok(Some(v)),
    }
}

pub(super) fn parse_grpc_domain(v: String) -> Result<String, String> {
    match v.trim() {
        "" => Err("the gRPC domain is empty".to_owned()),
        d => Ok(d.to_owned()),
    }
}

/// `n` if it is in `1..=max`.
pub(super) fn between_1_and(max: usize, n: usize) -> Result<usize, String> {
    if (1..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be between 1 and {max}, not {n}"))
    }
}

pub(super) fn seconds(v: f64) -> Result<Duration, String> {
    if v.is_finite() && v > 0.0 && v < 1e9 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!(
            "invalid number of seconds {v}: expected a positive number"
        ))
    }
}

/// A Redis URL without its password, for logs and errors.
pub(super) fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
