//! An axum app with the enforcement layer keyed by client IP: every caller
//! is limited by its address (an IPv6 address by its /64) on the seed's
//! Basic tier, with no API key and no account.
//!
//! ```text
//! cargo run -p quota-transport --example axum_by_ip
//! curl -i -X POST http://127.0.0.1:3000/v1/txt2video   # 200, then 429 for the rest of the minute
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::routing::post;
use axum::Router;
use quota_core::account::MemoryAccounts;
use quota_core::policy::Policy;
use quota_core::MemoryStore;
use quota_transport::enforce::EnforceLayer;
use quota_transport::identity::ClientIp;

/// The app: every endpoint of the seed policy under `/v1/`, limited per
/// client address on the Basic tier.
pub(crate) fn app() -> Router {
    let by_ip = ClientIp::new("basic").from_extension::<ConnectInfo<SocketAddr>>();
    let limits = EnforceLayer::new(
        Policy::seed(),
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryAccounts::new()),
    )
    .key(by_ip);
    Router::new()
        .route("/v1/{*endpoint}", post(|| async { "generated\n" }))
        .layer(limits)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    // The peer's address goes into each request as `ConnectInfo<SocketAddr>`.
    axum::serve(
        listener,
        app().into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
