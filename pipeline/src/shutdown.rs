//! Graceful shutdown: one token, cancelled by SIGTERM or SIGINT (or by a test), that every edge,
//! runner and server of the process watches.

use tokio_util::sync::CancellationToken;
use tracing::info;

#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels on the first SIGTERM or SIGINT.
    pub fn on_signals(self) -> Self {
        let token = self.token.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("signal received; shutting down");
            token.cancel();
        });
        self
    }

    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
