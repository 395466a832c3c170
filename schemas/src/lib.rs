//! Every shape that crosses a boundary of wabaflow: what Meta posts to us ([`meta`]), the
//! [`Envelope`] every pipeline event travels in, and the registry of [`topics`] that carry them.
//!
//! This crate has no I/O. Stages, sinks and external consumers of the delivery topics all agree on
//! the types here; a change to a topic's schema bumps its version (`.v2`), never edits `.v1` in place.

pub mod envelope;
pub mod flex;
pub mod meta;
pub mod topics;

pub use envelope::{ConversationKey, Envelope, Event, RawRef, SCHEMA_VERSION, Source};
pub use topics::Topic;
