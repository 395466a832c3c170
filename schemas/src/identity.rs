//! An event's identity: the idempotency key that every copy of the same fact shares.
//!
//! [`Event::idempotency_key`](crate::Event::idempotency_key) gives it for a decoded event;
//! [`IdempotencyKey::from_json`] reads it from an envelope's bytes without decoding the rest — the
//! dedupe stage needs nothing else, and decoding a whole envelope (every string of the Meta
//! message allocated, both timestamps parsed) costs about three times as many instructions.
//! Both build an [`Identity`], so the key is spelled in one place.
//!
//! The edges also write each event's key in a record header, [`IDEMPOTENCY_HEADER`]:
//! [`IdempotencyKey::from_record`] takes it from there and reads no JSON at all.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::Error as _;

use crate::envelope::{EnvelopeError, SCHEMA_VERSION};

/// What identifies an event, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity<'a> {
    /// A customer's message: its wamid.
    Message(&'a str),
    /// A delivery status: a `delivered` and a `read` of one message are different facts.
    Status {
        wamid: &'a str,
        status: &'a str,
    },
    GenesysInbound {
        wamid: &'a str,
    },
    GenesysOutbound {
        message_id: &'a str,
    },
    Send {
        send_key: &'a str,
    },
    SendResult {
        send_key: &'a str,
    },
    Receipt {
        id: &'a str,
        status: &'a str,
    },
    /// Metered usage: per conversation (CBP) or per message (PMP).
    Usage {
        conversation: Option<&'a str>,
        wamid: &'a str,
    },
}

impl Identity<'_> {
    pub fn key(&self) -> String {
        // `concat` sizes the key once and copies its parts; `format!` goes through the
        // formatting machinery for what is only text (about a third of the instructions).
        match self {
            Identity::Message(wamid) => ["wa:msg:", wamid].concat(),
            Identity::Status { wamid, status } => ["wa:status:", wamid, ":", status].concat(),
            Identity::GenesysInbound { wamid } => ["genesys:in:", wamid].concat(),
            Identity::GenesysOutbound { message_id } => ["genesys:out:", message_id].concat(),
            Identity::Send { send_key } => (*send_key).to_owned(),
            Identity::SendResult { send_key } => ["result:", send_key].concat(),
            Identity::Receipt { id, status } => ["genesys:receipt:", id, ":", status].concat(),
            Identity::Usage {
                conversation: Some(conversation),
                ..
            } => ["usage:conversation:", conversation].concat(),
            Identity::Usage {
                conversation: None,
                wamid,
            } => ["usage:message:", wamid].concat(),
        }
    }
}

/// The record header in which an edge writes an event's idempotency key, as
/// [`Identity::key`] spells it; absent for an event without one.
pub const IDEMPOTENCY_HEADER: &str = "wabaflow-idempotency-key";

/// An envelope read for its idempotency key only; `None` for events without one (value-level
/// errors, other changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    /// From the record's [`IDEMPOTENCY_HEADER`] when it has one (the payload is then not read, nor
    /// checked: the stages after dedupe decode it), else from its payload ([`Self::from_json`]) —
    /// records written by other producers, or by an edge older than the header.
    pub fn from_record(header: Option<&[u8]>, payload: &[u8]) -> Result<Self, EnvelopeError> {
        match header.map(std::str::from_utf8) {
            Some(Ok(key)) if !key.is_empty() => Ok(Self(Some(key.to_owned()))),
            _ => Self::from_json(payload),
        }
    }

    /// Refuses what [`Envelope::from_json`](crate::Envelope::from_json) refuses for the parts it
    /// reads: bad JSON, a newer schema version, an unknown kind, a kind without its identifying
    /// fields. The rest of the envelope is checked by the stages that decode it.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let view: EnvelopeView<'_> = crate::json::from_bytes(bytes)?;
        if view.schema_version > SCHEMA_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(view.schema_version));
        }
        Ok(Self(view.event.identity()?.map(|identity| identity.key())))
    }
}

#[derive(Deserialize)]
struct EnvelopeView<'a> {
    schema_version: u16,
    #[serde(borrow)]
    event: EventView<'a>,
}

/// The identifying fields of every kind of event, each read where its kind keeps it.
#[derive(Deserialize)]
struct EventView<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    message: Option<Identified<'a>>,
    #[serde(borrow, default)]
    status: Option<Stated<'a>>,
    #[serde(borrow, default)]
    receipt: Option<Stated<'a>>,
    #[serde(borrow, default)]
    wamid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    send_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    usage: Option<Metered<'a>>,
}

#[derive(Deserialize)]
struct Identified<'a> {
    /// Optional like the Meta message's id (an empty one is dead-lettered by the edge).
    #[serde(borrow, default)]
    id: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Stated<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Metered<'a> {
    #[serde(borrow)]
    wamid: Cow<'a, str>,
    #[serde(borrow, default)]
    conversation_id: Option<Cow<'a, str>>,
}

impl EventView<'_> {
    fn identity(&self) -> Result<Option<Identity<'_>>, serde_json::Error> {
        let missing = |field: &str| {
            serde_json::Error::custom(format!("a {} event without its {field}", self.kind))
        };
        let identity = match &*self.kind {
            "meta_message" => {
                Identity::Message(&self.message.as_ref().ok_or_else(|| missing("message"))?.id)
            }
            "meta_status" => {
                let status = self.status.as_ref().ok_or_else(|| missing("status"))?;
                Identity::Status {
                    wamid: &status.id,
                    status: &status.status,
                }
            }
            "genesys_inbound" => Identity::GenesysInbound {
                wamid: self.wamid.as_deref().ok_or_else(|| missing("wamid"))?,
            },
            "genesys_outbound" => Identity::GenesysOutbound {
                message_id: &self.message.as_ref().ok_or_else(|| missing("message"))?.id,
            },
            "whatsapp_send" => Identity::Send {
                send_key: self
                    .send_key
                    .as_deref()
                    .ok_or_else(|| missing("send_key"))?,
            },
            "send_result" => Identity::SendResult {
                send_key: self
                    .send_key
                    .as_deref()
                    .ok_or_else(|| missing("send_key"))?,
            },
            "genesys_receipt" => {
                let receipt = self.receipt.as_ref().ok_or_else(|| missing("receipt"))?;
                Identity::Receipt {
                    id: &receipt.id,
                    status: &receipt.status,
                }
            }
            "usage" => {
                let usage = self.usage.as_ref().ok_or_else(|| missing("usage"))?;
                Identity::Usage {
                    conversation: usage.conversation_id.as_deref(),
                    wamid: &usage.wamid,
                }
            }
            "meta_error" | "meta_change" => return Ok(None),
            other => {
                return Err(serde_json::Error::custom(format!(
                    "unknown event kind {other:?}"
                )));
            }
        };
        Ok(Some(identity))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::Envelope;

    #[test]
    fn every_identity_spells_its_key() {
        // These keys are stored (dedupe claims) and hashed into event ids: they never change.
        let cases = [
            (Identity::Message("wamid.M"), "wa:msg:wamid.M"),
            (
                Identity::Status {
                    wamid: "wamid.S",
                    status: "read",
                },
                "wa:status:wamid.S:read",
            ),
            (
                Identity::GenesysInbound { wamid: "wamid.G" },
                "genesys:in:wamid.G",
            ),
            (
                Identity::GenesysOutbound { message_id: "m-1" },
                "genesys:out:m-1",
            ),
            (
                Identity::Send {
                    send_key: "send:api:k",
                },
                "send:api:k",
            ),
            (
                Identity::SendResult {
                    send_key: "send:api:k",
                },
                "result:send:api:k",
            ),
            (
                Identity::Receipt {
                    id: "r-1",
                    status: "Delivered",
                },
                "genesys:receipt:r-1:Delivered",
            ),
            (
                Identity::Usage {
                    conversation: Some("c-1"),
                    wamid: "wamid.U",
                },
                "usage:conversation:c-1",
            ),
            (
                Identity::Usage {
                    conversation: None,
                    wamid: "wamid.U",
                },
                "usage:message:wamid.U",
            ),
        ];
        for (identity, key) in cases {
            assert_eq!(identity.key(), key, "{identity:?}");
        }
    }

    fn envelope(event: Value) -> Vec<u8> {
        json!({
            "event_id": "0b7c1c2e-6a55-5b7e-9c1d-1f2e3d4c5b6a",
            "conversation_key": "1065:16505551234",
            "source": "meta",
            "schema_version": SCHEMA_VERSION,
            "received_at": "2026-11-23T10:00:00.123456Z",
            "event": event,
        })
        .to_string()
        .into_bytes()
    }

    fn usage(conversation: Option<&str>) -> Value {
        let mut usage = json!({
            "tenant": "acme", "phone_number_id": "1065", "wamid": "wamid.U", "pricing_model": "CBP",
            "category": "service", "billable": true, "country": "GB", "recipient": "16505551234",
            "occurred_at": "2026-11-23T10:00:00Z", "day": "2026-11-23", "cost_micros": 0,
            "currency": "USD"
        });
        if let Some(conversation) = conversation {
            usage["conversation_id"] = conversation.into();
        }
        json!({"kind": "usage", "usage": usage})
    }

    #[test]
    fn reads_the_key_the_whole_envelope_gives() {
        let events = [
            json!({"kind": "meta_message", "phone_number_id": "1065", "message": {
                "from": "16505551234", "id": "wamid.M\u{e9}\"1", "timestamp": "1749416383",
                "type": "text", "text": {"body": "hi"}}}),
            json!({"kind": "meta_status", "phone_number_id": "1065", "status": {
                "id": "wamid.S", "status": "read", "timestamp": 1749416383,
                "recipient_id": "16505551234"}}),
            json!({"kind": "meta_change", "waba_id": "102", "field": "account_update",
                "value": {"event": "VERIFIED_ACCOUNT"}}),
            json!({"kind": "meta_error", "phone_number_id": "1065", "error": {
                "code": 131000, "title": "Something went wrong"}}),
            // What dedupe-outbound reads: an agent's reply as the Genesys edge split it.
            json!({"kind": "genesys_outbound", "integration_id": "int-1", "message": {
                "id": "g-1", "channel": {"to": {"id": "16505551234"}}, "type": "Text",
                "text": "Your order has shipped"}}),
            usage(Some("conv.1")),
            usage(None),
        ];
        let mut keys = Vec::new();
        for event in events {
            let bytes = envelope(event);
            let whole = Envelope::from_json(&bytes).expect("a valid envelope");
            let read = IdempotencyKey::from_json(&bytes).expect("its key");
            assert_eq!(read.0, whole.event.idempotency_key());
            keys.push(read.0);
        }
        assert_eq!(
            keys,
            [
                Some("wa:msg:wamid.M\u{e9}\"1".to_owned()),
                Some("wa:status:wamid.S:read".to_owned()),
                None,
                None,
                Some("genesys:out:g-1".to_owned()),
                Some("usage:conversation:conv.1".to_owned()),
                Some("usage:message:wamid.U".to_owned()),
            ]
        );
    }

    #[test]
    fn the_header_stands_for_the_payload_when_present() {
        let bytes = envelope(
            json!({"kind": "meta_status", "phone_number_id": "1065", "status": {
            "id": "wamid.S", "status": "read", "timestamp": 1749416383}}),
        );
        let from_payload = Some("wa:status:wamid.S:read".to_owned());
        assert_eq!(
            IdempotencyKey::from_record(Some(b"wa:msg:wamid.H"), b"not read at all")
                .expect("from the header")
                .0
                .as_deref(),
            Some("wa:msg:wamid.H")
        );
        for header in [None, Some(&b""[..]), Some(&b"\xff\xfe"[..])] {
            assert_eq!(
                IdempotencyKey::from_record(header, &bytes)
                    .expect("from the payload")
                    .0,
                from_payload,
                "{header:?}"
            );
        }
        assert!(IdempotencyKey::from_record(None, b"{").is_err());
    }

    #[test]
    fn refuses_what_it_cannot_identify() {
        let refused = [
            envelope(json!({"kind": "meta_status", "phone_number_id": "1065"})),
            envelope(json!({"kind": "meta_status", "status": {"id": "wamid.S"}})),
            envelope(json!({"kind": "telepathy", "message": {"id": "x"}})),
            envelope(json!({"phone_number_id": "1065"})),
            b"{\"schema_version\": 1, \"event\": ".to_vec(),
        ];
        for bytes in refused {
            assert!(
                matches!(
                    IdempotencyKey::from_json(&bytes),
                    Err(EnvelopeError::Invalid(_))
                ),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            assert!(Envelope::from_json(&bytes).is_err());
        }
        let mut newer: Value = serde_json::from_slice(&envelope(usage(None))).expect("json");
        newer["schema_version"] = (SCHEMA_VERSION + 1).into();
        assert!(matches!(
            IdempotencyKey::from_json(newer.to_string().as_bytes()),
            Err(EnvelopeError::UnsupportedVersion(v)) if v == SCHEMA_VERSION + 1
        ));
    }
}
