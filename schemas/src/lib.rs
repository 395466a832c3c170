//! Every shape that crosses a boundary of wabaflow: what Meta posts to us ([`meta`]), what we
//! post to Genesys ([`genesys`]), the
//! [`Envelope`] every pipeline event travels in (and its JSON Schema, [`json_schema`]), and the
//! registry of [`topics`] that carry them.
//!
//! This crate has no I/O. Stages, sinks and external consumers of the delivery topics all agree on
//! the types here; a change to a topic's schema bumps its version (`.v2`), never edits `.v1` in place.

pub mod billing;
pub mod envelope;
pub mod flex;
pub mod genesys;
pub mod identity;
pub mod json;
pub mod json_schema;
pub mod meta;
pub mod rfc3339;
pub mod secret;
mod tag_first;
pub mod tenant;
pub mod topics;
pub mod whatsapp;

pub use envelope::{
    ConversationKey, Envelope, Event, RawRef, Reply, SCHEMA_VERSION, SendOutcome, Source,
    StoredMedia,
};
pub use identity::{IDEMPOTENCY_HEADER, IdempotencyKey, Identity};
pub use secret::Secret;
pub use topics::Topic;
