//! Dataflow stages: each one a [`wabaflow_pipeline::Stage`] from one topic to the next, with its
//! state injected (a [`wabaflow_store::StateStore`], the tenant registry, the object store).
//! Stages are verbs. The inbound chain:
//!
//! - [`dedupe`]: `wa.inbound.v1` → `wa.inbound.unique.v1`, each message and status once;
//! - [`map`]: → `wa.inbound.mapped.v1`, tenant resolved, conversation mapping current;
//! - [`media`]: → `wa.inbound.enriched.v1`, media copied from Meta to S3 with a presigned URL;
//! - [`transform`]: → `delivery.genesys.v1`, Genesys Open Messaging inbound messages, and
//!   receipts for the statuses of agents' messages.
//!
//! The outbound chain runs the same stages the other way (`*-outbound`): dedupe on the Genesys
//! message id, map (tenant, customer, 24-hour window), media (Genesys → S3), transform (→ Cloud API
//! send requests on `wa.send.v1`); [`receipts`] turns failed sends into Failed receipts.
//! [`meter`] prices the statuses' pricing objects onto `billing.usage.v1` and debits wallets.

pub mod dedupe;
pub mod map;
pub mod media;
pub mod meter;
pub mod receipts;
pub mod transform;

pub use dedupe::DedupeStage;
pub use map::MapStage;
pub use media::MediaStage;
pub use meter::MeterStage;
pub use receipts::ReceiptStage;
pub use transform::TransformStage;
