//! Dataflow stages: each one a [`wabaflow_pipeline::Stage`] from one topic to the next, with its
//! state injected as a [`wabaflow_store::StateStore`]. Stages are verbs.
//!
//! - [`dedupe`]: `wa.inbound.v1` → `wa.inbound.unique.v1`, each message and status once.

pub mod dedupe;

pub use dedupe::DedupeStage;
