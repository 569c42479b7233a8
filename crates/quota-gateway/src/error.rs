//! Why a gateway could not be built or could not serve.

/// Why a gateway could not be built or could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No upstream was given ([`GatewayBuilder::upstream`](crate::GatewayBuilder::upstream)).
    #[error("no upstream: the gateway needs an upstream URL to forward to")]
    NoUpstream,
    /// The upstream URL cannot be forwarded to.
    #[error("upstream URL {url}: {reason}")]
    Upstream {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A route cannot be served ([`GatewayBuilder::route`](crate::GatewayBuilder::route)).
    #[error(transparent)]
    Route(#[from] crate::route_table::RouteError),
    /// A certificate, key or CA file cannot be used (TLS termination, or
    /// the upstream's CA).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The accounts database cannot be opened or migrated.
    #[error("{0}")]
    Accounts(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Something the gateway needs at start-up failed (a thread, a runtime,
    /// a socket).
    #[error("{0}")]
    Setup(String),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Setup(e.to_string())
    }
}
