//! The WhatsApp Cloud API sender: [`WhatsAppService`] is the client and its retry table,
//! [`WhatsAppSink`] the stage that sends `wa.send.v1` once each and reports on
//! `wa.send-results.v1`. Campaigns and the API will feed the same topic.

mod service;
mod sink;

pub use service::{SendError, WhatsAppService};
pub use sink::WhatsAppSink;
