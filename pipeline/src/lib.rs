//! The runtime every wabaflow role shares: configuration ([`config`]), the Kafka [`producer`] and
//! the stage [`runner`] and the [`batch`] runner that own all consumer mechanics, [`telemetry`] (metrics, `/healthz`,
//! `/readyz`), [`shutdown`], topic administration ([`topics`]) and reasons fit for logs ([`redact`]).
//!
//! Components (edges, stages, sinks) never touch rdkafka: an edge hands [`producer::Record`]s to
//! the [`producer::Producer`]; a stage implements [`stage::Stage`] and a runner drives it.

pub mod backoff;
pub mod batch;
pub mod config;
pub mod consumed;
pub mod kafka;
pub mod keyed;
pub mod offsets;
pub mod producer;
pub mod redact;
pub mod runner;
pub mod shutdown;
pub mod stage;
pub mod telemetry;
pub mod topics;

pub use batch::{BatchLimits, BatchRunner, BatchSink};
pub use config::Config;
pub use consumed::RawRecord;
pub use producer::{ProduceError, Producer, Record};
pub use runner::{RunnerError, StageRunner};
pub use shutdown::Shutdown;
pub use stage::{Context, Input, Origin, Outcome, Processed, Stage, StageError};
