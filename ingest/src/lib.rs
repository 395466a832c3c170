//! HTTP edges: where webhooks become durable Kafka events.
//!
//! An edge verifies, then decodes: the signature is checked on the raw bytes, then a pure decode
//! splits the body into events with their partition keys. The shared [`http`] runner owns body
//! limits, the "2xx only after every record is acked" rule, error bodies and metrics.
//!
//! - [`meta`]: WhatsApp Cloud API webhooks at `/webhooks/meta/{tenant}`;
//! - [`genesys`]: Genesys Open Messaging outbound webhooks at `/webhooks/genesys/{tenant}`.

pub mod genesys;
pub mod http;
pub mod meta;

pub use genesys::GenesysEdge;
pub use meta::MetaEdge;
