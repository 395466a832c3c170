//! The pure half of the Meta edge: a decoded webhook → one [`Envelope`] per message, status,
//! value-level error and other change, each keyed by its conversation.
//!
//! A change that cannot be routed (no `metadata.phone_number_id`, a message without id or
//! sender) becomes a [`Rejected`] record for the dead-letter topic, with its reason: the rest of the
//! batch is still accepted, because refusing the request would make Meta retry it for 7 days.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use wabaflow_schemas::meta::{ChangeValue, MessagesValue, Webhook};
use wabaflow_schemas::{ConversationKey, Envelope, Event, RawRef, Source};

/// The events of one request, in body order.
#[derive(Debug, Default)]
pub struct Split {
    pub events: Vec<Envelope>,
    pub rejected: Vec<Rejected>,
}

/// A part of the body that cannot become an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub reason: String,
    /// Key for the dead-letter record (the WABA when known).
    pub key: Option<String>,
    /// The offending JSON.
    pub payload: Vec<u8>,
}

struct Splitter {
    request_id: Uuid,
    received_at: DateTime<Utc>,
    split: Split,
}

impl Splitter {
    fn push(&mut self, key: ConversationKey, occurred_at: Option<DateTime<Utc>>, event: Event) {
        let raw = RawRef {
            request_id: self.request_id,
            index: self.split.events.len() as u32,
        };
        let envelope = Envelope::new(
            Source::Meta,
            key,
            occurred_at,
            self.received_at,
            Some(raw),
            event,
        );
        self.split.events.push(envelope);
    }

    fn reject(
        &mut self,
        reason: impl Into<String>,
        key: Option<&str>,
        payload: &impl serde::Serialize,
    ) {
        self.split.rejected.push(Rejected {
            reason: reason.into(),
            key: key.map(str::to_owned),
            // Plain data always encodes.
            payload: serde_json::to_vec(payload).unwrap_or_default(),
        });
    }

    fn messages(
        &mut self,
        waba: Option<&str>,
        entry_time: Option<DateTime<Utc>>,
        value: &MessagesValue,
    ) {
        let Some(metadata) = &value.metadata else {
            self.reject(
                "messages change without metadata.phone_number_id",
                waba,
                value,
            );
            return;
        };
        let number = metadata.phone_number_id.as_str();
        for message in value.messages.iter().flatten() {
            let Some(user) = message.sender() else {
                self.reject(
                    "message without from or from_user_id",
                    Some(number),
                    message,
                );
                continue;
            };
            if message.id.is_empty() {
                self.reject("message without id", Some(number), message);
                continue;
            }
            let event = Event::MetaMessage {
                phone_number_id: number.to_owned(),
                display_phone_number: metadata.display_phone_number.clone(),
                contact: value.contact_for(Some(user)).cloned(),
                message: Box::new(message.clone()),
                media: None,
            };
            self.push(
                ConversationKey::conversation(number, user),
                message.timestamp.to_datetime(),
                event,
            );
        }
        for status in value.statuses.iter().flatten() {
            let Some(user) = status.recipient() else {
                self.reject(
                    "status without recipient_id or recipient_user_id",
                    Some(number),
                    status,
                );
                continue;
            };
            let event = Event::MetaStatus {
                phone_number_id: number.to_owned(),
                contact: value.contact_for(Some(user)).cloned(),
                status: Box::new(status.clone()),
            };
            self.push(
                ConversationKey::conversation(number, user),
                status.timestamp.to_datetime(),
                event,
            );
        }
        for error in value.errors.iter().flatten() {
            let event = Event::MetaError {
                phone_number_id: number.to_owned(),
                error: error.clone(),
            };
            self.push(ConversationKey::number(number), entry_time, event);
        }
    }
}

/// Splits a decoded webhook. Pure: the same input gives the same events (event ids included,
/// except for errors and changes, which get fresh v7 ids).
pub fn split(webhook: &Webhook, request_id: Uuid, received_at: DateTime<Utc>) -> Split {
    let mut splitter = Splitter {
        request_id,
        received_at,
        split: Split::default(),
    };
    for entry in &webhook.entry {
        let waba = entry.id.as_deref();
        let entry_time = entry.time.as_ref().and_then(|t| t.to_datetime());
        for change in &entry.changes {
            match (&change.value, waba) {
                (ChangeValue::Messages(value), _) => splitter.messages(waba, entry_time, value),
                (other, Some(waba)) => {
                    let event = Event::MetaChange {
                        waba_id: waba.to_owned(),
                        field: change.field.clone(),
                        value: other.to_value(),
                    };
                    splitter.push(ConversationKey::account(waba), entry_time, event);
                }
                (_, None) => splitter.reject("change without entry.id (WABA id)", None, change),
            }
        }
    }
    splitter.split
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::Value;

    use super::*;

    /// One test over every golden case in `tests/golden/meta/` (workspace root): each lists the
    /// events its request must become, in order.
    #[test]
    fn golden_cases_split_as_expected() {
        let dir = Path::new(
            &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
        )
        .join("../tests/golden/meta");
        let mut cases = 0;
        for entry in std::fs::read_dir(&dir).expect("golden dir") {
            let path = entry.expect("entry").path();
            let case: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
            let webhook: Webhook =
                serde_json::from_value(case["request"].clone()).expect("request decodes");
            let request_id = Uuid::now_v7();
            let split = split(&webhook, request_id, Utc::now());
            assert!(
                split.rejected.is_empty(),
                "{}: {:?}",
                path.display(),
                split.rejected
            );
            let actual: Vec<Value> = split
                .events
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "key": e.conversation_key.as_str(),
                        "kind": e.event.kind(),
                        "idempotency_key": e.event.idempotency_key(),
                        "occurred_at": e.occurred_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    })
                })
                .collect();
            assert_eq!(Value::Array(actual), case["expected"], "{}", path.display());
            for (index, event) in split.events.iter().enumerate() {
                assert_eq!(
                    event.raw,
                    Some(RawRef {
                        request_id,
                        index: index as u32
                    })
                );
            }
            cases += 1;
        }
        assert!(cases >= 3);
    }

    #[test]
    fn unroutable_changes_are_rejected_with_a_reason_and_the_rest_survives() {
        let webhook: Webhook = serde_json::from_value(serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "300", "changes": [
                { "field": "messages", "value": { "messages": [
                    { "from": "1", "id": "wamid.no-metadata", "timestamp": "1", "type": "text", "text": {"body": "x"} } ] } },
                { "field": "messages", "value": { "metadata": { "phone_number_id": "110" }, "messages": [
                    { "id": "wamid.no-sender", "timestamp": "1", "type": "text", "text": {"body": "x"} },
                    { "from": "", "id": "wamid.empty-sender", "timestamp": "1", "type": "text", "text": {"body": "x"} },
                    { "from": "44", "timestamp": "1", "type": "text", "text": {"body": "no id"} },
                    { "from": "44", "id": "wamid.ok", "timestamp": "1", "type": "text", "text": {"body": "fine"} } ] } }
            ] }]
        }))
        .expect("decodes");
        let split = split(&webhook, Uuid::now_v7(), Utc::now());
        let reasons: Vec<&str> = split.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "messages change without metadata.phone_number_id",
                "message without from or from_user_id",
                "message without from or from_user_id",
                "message without id"
            ]
        );
        assert_eq!(split.events.len(), 1);
        assert_eq!(split.events[0].conversation_key.as_str(), "110:44");
    }
}
