//! The Genesys Cloud sink: [`GenesysService`] is the client and its retry table,
//! [`GenesysSink`] the stage that delivers `delivery.genesys.v1`.

mod service;
mod sink;

pub use service::{GenesysError, GenesysService};
pub use sink::GenesysSink;
