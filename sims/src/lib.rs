//! Simulators of the two services wabaflow cannot reach in tests: Meta's WhatsApp Cloud API
//! ([`meta`]) and Genesys Cloud Open Messaging ([`genesys`]).
//!
//! They are strict on purpose (ARCHITECTURE.md, "Simulators"): they check auth, payload shapes and
//! limits the way the real services document them, misbehave the way the real ones do (5-minute
//! media URLs, 429 with Retry-After, duplicate and late webhook retries), and record what they
//! accepted so tests assert on effects. Every limit is configurable, so a benchmark can raise it
//! and measure wabaflow rather than the simulator. Run them alone with `wabaflow sim meta|genesys`,
//! or start them in-process with [`meta::MetaSim::start`] / [`genesys::GenesysSim::start`].

pub mod genesys;
pub mod meta;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Serves `router` on `listen` (port 0 picks a free port); returns the bound address.
pub(crate) async fn serve(
    listen: SocketAddr,
    router: axum::Router,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::error!(error = %err, "simulator stopped");
        }
    });
    Ok((addr, task))
}

/// The bearer token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}
