//! Meta WhatsApp Cloud API webhook payloads (WIRE.md §1), typed.
//!
//! Every struct keeps the fields it does not know in `extra`, and every optional field keeps its
//! absence, so `decode → encode` reproduces the payload Meta sent (field order aside). New message
//! types and webhook fields therefore flow through the pipeline untouched until a stage learns them.

mod message;
mod status;
mod webhook;

pub use message::*;
pub use status::*;
pub use webhook::*;

/// Fields a struct does not model, kept verbatim.
pub type Extra = serde_json::Map<String, serde_json::Value>;
