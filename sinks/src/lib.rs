//! Sinks: where the pipeline's events leave Kafka. Nouns, one module each.
//!
//! - [`genesys`]: `delivery.genesys.v1` → Genesys Cloud Open Messaging (a [`wabaflow_pipeline::Stage`]
//!   without output, driven by the stage runner);
//! - [`whatsapp`]: `wa.send.v1` → the Cloud API → `wa.send-results.v1`;
//! - [`archive`]: `webhooks.raw.v1` → S3, batched (a [`wabaflow_pipeline::BatchSink`]);
//! - [`clickhouse`]: messages, statuses and usage → ClickHouse, batched.

pub mod archive;
pub mod clickhouse;
pub mod genesys;
pub mod whatsapp;

pub use archive::ArchiveSink;
pub use genesys::{GenesysError, GenesysService, GenesysSink};
pub use whatsapp::{WhatsAppService, WhatsAppSink};
