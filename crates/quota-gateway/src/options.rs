//! How the gateway serves: which code serves HTTP/1.1, and the
//! connection, timeout and thread settings the builder collects.

use std::time::Duration;

/// Which code serves HTTP/1.1 connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Http1 {
    /// The gateway's own path (see [`crate::http1`]) for the requests it
    /// takes (bodiless, canonical targets), handing the connection to hyper
    /// for anything else. The default: it wins the load bench.
    #[default]
    Own,
    /// hyper's HTTP/1.1 server for every request.
    Hyper,
}

impl std::str::FromStr for Http1 {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "own" => Ok(Http1::Own),
            "hyper" => Ok(Http1::Hyper),
            other => Err(format!(
                "unknown HTTP/1.1 server {other:?}: use own or hyper"
            )),
        }
    }
}

impl std::fmt::Display for Http1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Http1::Own => "own",
            Http1::Hyper => "hyper",
        })
    }
}

/// How the gateway serves: connections, timeouts, threads.
#[derive(Clone, Debug)]
pub(crate) struct Serving {
    pub(crate) upstream_timeout: Duration,
    pub(crate) client_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) workers: usize,
    pub(crate) http1: Http1,
    /// TLS termination: the certificate in force, if any.
    pub(crate) tls: Option<crate::tls::TlsConfig>,
}
