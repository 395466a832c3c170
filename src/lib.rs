//! The `wabaflow` binary's library half: how roles become a running [`node::Node`], and the
//! [`demo`]. `src/main.rs` is only the CLI over these; integration tests start nodes in-process.

pub mod bench;
pub mod demo;
pub mod node;
pub mod recompute;
pub mod replay;
pub mod sim;
pub mod wallet;
