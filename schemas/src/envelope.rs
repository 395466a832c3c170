//! The [`Envelope`]: how every event travels between stages, on every conversation topic.
//!
//! Encoded as JSON (one envelope per Kafka record) so that consumers in any language can read the
//! delivery topics; the record key is the envelope's [`ConversationKey`], which keeps one
//! conversation in one partition and therefore in order.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha1::{Digest, Sha1};
use uuid::Uuid;

use crate::billing::UsageRecord;
use crate::genesys::{InboundMessage, OutboundMessage, Receipt};
use crate::identity::Identity;
use crate::meta::{Contact, Message, MetaError, Status};
use crate::rfc3339;
use crate::tag_first::tag_first;
use crate::whatsapp::SendRequest;

/// Version of the envelope schema written by this build. Readers accept this version and below.
pub const SCHEMA_VERSION: u16 = 1;

/// Namespace for event ids derived from an idempotency key (UUID v5).
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x7761_6261_666c_6f77_8000_0000_0000_0001);

/// The version 5 (name-based) UUID of `name` in [`EVENT_ID_NAMESPACE`], as `Uuid::new_v5` makes
/// it, hashed by the `sha1` crate, which uses the CPU's SHA instructions where it has them (a
/// third of the time of uuid's portable SHA-1): every event a stage or an edge makes gets one.
fn name_based_id(name: &[u8]) -> Uuid {
    let mut sha1 = Sha1::new();
    sha1.update(EVENT_ID_NAMESPACE.as_bytes());
    sha1.update(name);
    let digest = sha1.finalize();
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// `{phone_number_id}:{user}`, where `user` is the wa_id or, when Meta withholds the phone
/// number, the business-scoped user id. Events that concern a number rather than a user (value-level
/// errors) use `{phone_number_id}`; account-level changes use `waba:{waba_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct ConversationKey(String);

impl ConversationKey {
    pub fn conversation(phone_number_id: &str, user: &str) -> Self {
        Self(format!("{phone_number_id}:{user}"))
    }

    pub fn number(phone_number_id: &str) -> Self {
        Self(phone_number_id.to_owned())
    }

    pub fn account(waba_id: &str) -> Self {
        Self(format!("waba:{waba_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an event entered wabaflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Meta,
    Genesys,
    Api,
    Campaign,
}

/// Which raw request an event was split from: the record key of that body in `webhooks.raw.v1`
/// and the event's position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RawRef {
    pub request_id: Uuid,
    pub index: u32,
}

/// One event on a conversation topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Envelope {
    /// Derived from the idempotency key when the event has one, so every copy of the same
    /// Meta update (Meta retries for 7 days) carries the same id; random (v7) otherwise.
    pub event_id: Uuid,
    /// Set by the edge when the webhook URL names the tenant; resolved (and checked) by the
    /// mapping stage from the phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub conversation_key: ConversationKey,
    pub source: Source,
    pub schema_version: u16,
    /// When the event happened according to its source (Meta's `timestamp`).
    #[serde(
        default,
        deserialize_with = "rfc3339::optional",
        serialize_with = "rfc3339::write_optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub occurred_at: Option<DateTime<Utc>>,
    /// When wabaflow's edge received the request.
    #[serde(deserialize_with = "rfc3339::time", serialize_with = "rfc3339::write")]
    pub received_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawRef>,
    pub event: Event,
}

tag_first! {
    tag = "kind";
    /// What happened. Written with its `kind` first, and read tag first ([`tag_first!`]).
    #[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
    #[schemars(description = "What happened; `kind` tells the kinds apart and is written first.")]
    #[serde(tag = "kind", rename_all = "snake_case")]
    pub enum Event {
        /// A customer's message to a business number.
        MetaMessage {
            phone_number_id: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            display_phone_number: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            contact: Option<Contact>,
            message: Box<Message>,
            /// The message's media, downloaded from Meta and stored by the media stage.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            media: Option<StoredMedia>,
        },
        /// A delivery status of a message the business sent.
        MetaStatus {
            phone_number_id: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            contact: Option<Contact>,
            status: Box<Status>,
        },
        /// A value-level (system/app) error about a number.
        MetaError {
            phone_number_id: String,
            error: MetaError,
        },
        /// Any other webhook field (template, account, quality, preferences, echoes, …).
        MetaChange {
            waba_id: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            field: Option<String>,
            value: Value,
        },
        /// A customer message, normalized for Genesys, ready for `sink:genesys`.
        GenesysInbound {
            integration_id: String,
            /// The wamid it was made from (also `message.channel.messageId`).
            wamid: String,
            message: Box<InboundMessage>,
        },
        /// An agent's reply, as Genesys posted it; `reply` is filled by the (outbound) mapping stage.
        GenesysOutbound {
            integration_id: String,
            message: Box<OutboundMessage>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            reply: Option<Reply>,
            /// The attachment, fetched from Genesys and stored by the media stage.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            media: Option<StoredMedia>,
        },
        /// A message to send through the Cloud API (`wa.send.v1`).
        WhatsAppSend {
            phone_number_id: String,
            /// The effect's identity: `send:genesys:{genesys message id}` for agent replies.
            send_key: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            genesys_message_id: Option<String>,
            /// Whether the 24-hour customer-service window was open when the reply was mapped.
            window_open: bool,
            request: Box<SendRequest>,
        },
        /// What became of a send (`wa.send-results.v1`).
        SendResult {
            phone_number_id: String,
            send_key: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            genesys_message_id: Option<String>,
            recipient: String,
            /// The send's `type` (`text`, `template`, `document`, …).
            #[serde(default)]
            message_type: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            wamid: Option<String>,
            outcome: SendOutcome,
        },
        /// A delivery receipt for Genesys (`delivery.genesys.v1`).
        GenesysReceipt {
            integration_id: String,
            receipt: Box<Receipt>,
        },
        /// A metered unit of usage (`billing.usage.v1`).
        Usage { usage: Box<UsageRecord> },
    }
}

/// Where an agent's reply goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reply {
    pub phone_number_id: String,
    /// The customer: wa_id (or BSUID).
    pub user: String,
    pub window_open: bool,
    #[serde(
        default,
        deserialize_with = "rfc3339::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_inbound_at: Option<DateTime<Utc>>,
}

/// The result of one send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SendOutcome {
    /// Meta accepted it (`message_status`); delivery comes with status webhooks.
    Accepted { message_status: Option<String> },
    /// Not sent, or refused by Meta, for good: `code` is Meta's error code when Meta refused,
    /// `receipt_reason` the Genesys reason code to report.
    Failed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i64>,
        reason: String,
        receipt_reason: String,
    },
}

/// A media file wabaflow stored in its object store, with a URL a third party may fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StoredMedia {
    pub bucket: String,
    pub key: String,
    /// Presigned GET URL, valid until `url_expires_at`.
    pub url: String,
    #[serde(deserialize_with = "rfc3339::time")]
    pub url_expires_at: DateTime<Utc>,
    pub mime_type: String,
    /// Lowercase hex SHA-256 of the stored bytes.
    pub sha256: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

impl Event {
    /// The key under which this event's effects are made idempotent: the wamid for a message,
    /// `(wamid, status)` for a status. Errors and other changes carry no identity of their own.
    pub fn idempotency_key(&self) -> Option<String> {
        self.identity().map(|identity| identity.key())
    }

    /// What identifies this event ([`Identity`]).
    pub fn identity(&self) -> Option<Identity<'_>> {
        Some(match self {
            Event::MetaMessage { message, .. } => Identity::Message(&message.id),
            Event::MetaStatus { status, .. } => Identity::Status {
                wamid: &status.id,
                status: &status.status,
            },
            Event::GenesysInbound { wamid, .. } => Identity::GenesysInbound { wamid },
            Event::GenesysOutbound { message, .. } => Identity::GenesysOutbound {
                message_id: &message.id,
            },
            Event::WhatsAppSend { send_key, .. } => Identity::Send { send_key },
            Event::SendResult { send_key, .. } => Identity::SendResult { send_key },
            Event::GenesysReceipt { receipt, .. } => Identity::Receipt {
                id: &receipt.id,
                status: &receipt.status,
            },
            Event::Usage { usage } => Identity::Usage {
                conversation: usage.conversation_id.as_deref(),
                wamid: &usage.wamid,
            },
            Event::MetaError { .. } | Event::MetaChange { .. } => return None,
        })
    }

    /// A short, low-cardinality name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::MetaMessage { .. } => "message",
            Event::MetaStatus { .. } => "status",
            Event::MetaError { .. } => "error",
            Event::MetaChange { .. } => "change",
            Event::GenesysInbound { .. } => "genesys_inbound",
            Event::GenesysOutbound { .. } => "genesys_outbound",
            Event::WhatsAppSend { .. } => "whatsapp_send",
            Event::SendResult { .. } => "send_result",
            Event::GenesysReceipt { .. } => "genesys_receipt",
            Event::Usage { .. } => "usage",
        }
    }
}

impl Envelope {
    /// A new envelope at schema [`SCHEMA_VERSION`], with its event id derived as documented.
    pub fn new(
        source: Source,
        conversation_key: ConversationKey,
        occurred_at: Option<DateTime<Utc>>,
        received_at: DateTime<Utc>,
        raw: Option<RawRef>,
        event: Event,
    ) -> Self {
        let event_id = match event.idempotency_key() {
            Some(key) => name_based_id(key.as_bytes()),
            None => Uuid::now_v7(),
        };
        Self {
            event_id,
            tenant: None,
            conversation_key,
            source,
            schema_version: SCHEMA_VERSION,
            occurred_at,
            received_at,
            raw,
            event,
        }
    }

    /// The event a stage makes from this one: same conversation, source, times, raw body and
    /// tenant; its own event id (from `event`'s idempotency key).
    pub fn follow(&self, event: Event) -> Self {
        let mut next = Self::new(
            self.source,
            self.conversation_key.clone(),
            self.occurred_at,
            self.received_at,
            self.raw,
            event,
        );
        next.tenant = self.tenant.clone();
        next
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Room for a typical envelope (600–900 bytes) from the start: grown by doubling from
        // empty, the vector was reallocated and copied seven times or more per envelope.
        let mut json = Vec::with_capacity(1024);
        // An envelope holds only strings, numbers and JSON values: encoding cannot fail.
        crate::json::to_writer(&mut json, self).expect("envelope serializes to JSON");
        json
    }

    /// Decodes a record payload, refusing envelopes written by a newer schema version.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let envelope: Envelope = crate::json::from_bytes(bytes)?;
        if envelope.schema_version > SCHEMA_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(envelope.schema_version));
        }
        Ok(envelope)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a valid envelope: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error("envelope schema version {0} is newer than this build understands ({SCHEMA_VERSION})")]
    UnsupportedVersion(u16),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, state: &str) -> Event {
        let status = serde_json::from_value(serde_json::json!({
            "id": id, "status": state, "timestamp": "1749416383", "recipient_id": "16505551234"
        }))
        .expect("status");
        Event::MetaStatus {
            phone_number_id: "1065".into(),
            contact: None,
            status: Box::new(status),
        }
    }

    #[test]
    fn event_ids_are_the_name_based_uuids_uuid_makes() {
        for name in [
            "",
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQz",
            "send:genesys:g-1:sent",
        ] {
            let expected = Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes());
            assert_eq!(name_based_id(name.as_bytes()), expected, "{name:?}");
        }
        // Longer than one SHA-1 block with the namespace.
        let long = "x".repeat(200);
        assert_eq!(
            name_based_id(long.as_bytes()),
            Uuid::new_v5(&EVENT_ID_NAMESPACE, long.as_bytes())
        );
    }

    #[test]
    fn copies_of_one_update_share_an_event_id() {
        let key = ConversationKey::conversation("1065", "16505551234");
        let at = Utc::now();
        let wrap = |event| Envelope::new(Source::Meta, key.clone(), None, at, None, event);
        let a = wrap(status("wamid.A", "read"));
        let b = wrap(status("wamid.A", "read"));
        let c = wrap(status("wamid.A", "delivered"));
        assert_eq!(a.event_id, b.event_id);
        assert_ne!(a.event_id, c.event_id);
    }

    #[test]
    fn round_trips_and_refuses_newer_versions() {
        let key = ConversationKey::conversation("1065", "16505551234");
        let mut envelope = Envelope::new(
            Source::Meta,
            key,
            None,
            Utc::now(),
            None,
            status("wamid.A", "sent"),
        );
        let decoded = Envelope::from_json(&envelope.to_json()).expect("decodes");
        assert_eq!(decoded, envelope);
        envelope.schema_version = SCHEMA_VERSION + 1;
        assert!(matches!(
            Envelope::from_json(&envelope.to_json()),
            Err(EnvelopeError::UnsupportedVersion(v)) if v == SCHEMA_VERSION + 1
        ));
    }
}
