//! The gateway embedded in a program of its own: the seed's policy, the
//! in-memory store and accounts, in front of the API at `UPSTREAM` (default
//! `http://127.0.0.1:9000`), on 127.0.0.1:8080 until Ctrl-C.
//!
//! ```text
//! cargo run -p quota-gateway --example embed
//! ```

use quota_core::policy::Policy;
use quota_gateway::{shutdown_signal, Gateway};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = std::env::var("UPSTREAM").unwrap_or_else(|_| "http://127.0.0.1:9000".into());
    let gateway = Gateway::builder(Policy::seed())
        .upstream(upstream.parse()?)
        .build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    gateway.serve(listener, shutdown_signal()).await?;
    Ok(())
}
