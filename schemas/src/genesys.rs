//! Genesys Cloud Open Messaging shapes (WIRE.md §3).
//!
//! [`InboundMessage`] is what we POST to
//! `/api/v2/conversations/messages/{integrationId}/inbound/open/message` (Genesys' SDK calls it
//! `OpenInboundNormalizedMessage`); [`InboundResponse`] is the normalized message Genesys answers
//! with. The Genesys simulator decodes requests into the same types, so both sides agree on the
//! field names byte for byte. Unknown fields are kept (`extra`) because Genesys adds fields freely.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The customer message posted to the inbound endpoint. Genesys rejects a message with neither
/// `text` nor `content` ("should have required property 'content', should have required property
/// '.text'").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InboundMessage {
    pub channel: InboundChannel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Content>,
    /// Free-form string pairs Genesys keeps with the message (we put the WhatsApp type and
    /// interactive payloads here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboundChannel {
    /// The provider's id of the message: the wamid. Genesys uses it to recognise a repeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub from: Party,
    /// ISO-8601 with milliseconds and `Z`, as Genesys writes it (`2021-02-01T15:04:05.123Z`).
    #[serde(serialize_with = "iso_millis", deserialize_with = "iso")]
    pub time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A participant: the customer on inbound messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    pub id: String,
    pub id_type: IdType,
    /// Real captures spell it `nickname`; go-gcloudcx fixtures `nickName`. We write `nickname`.
    #[serde(default, alias = "nickName", skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum IdType {
    Email,
    Phone,
    Opaque,
}

/// One content item. Inbound we only send attachments; outbound webhooks also carry
/// `Notification` (templates) and structured content, kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Content {
    pub const ATTACHMENT: &'static str = "Attachment";

    pub fn attachment(attachment: Attachment) -> Self {
        Self {
            content_type: Self::ATTACHMENT.into(),
            attachment: Some(attachment),
            extra: Map::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub media_type: MediaType,
    /// Must be publicly reachable: Genesys downloads it (we give a presigned S3 URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_size_bytes: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ContentAttachment.mediaType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum MediaType {
    Image,
    Video,
    Audio,
    File,
    Link,
}

/// What the inbound endpoint answers: the normalized message with Genesys' own `id`, and with
/// `?prefetchConversationId=true` the conversation it joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundResponse {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /oauth/token` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

/// What Genesys posts to the integration's outbound webhook when an agent (or bot) replies
/// (`OpenOutboundNormalizedMessage`, WIRE.md §3.3). `id` is the Genesys message id that receipts
/// refer to; `channel.to.id` is the customer id we sent inbound (the wa_id or BSUID).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboundMessage {
    pub id: String,
    pub channel: OutboundChannel,
    /// `Text`, `Structured`, `Receipt` or `Event`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originating_entity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboundChannel {
    /// The integration id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub to: Recipient,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_type: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `content[].template` of a `Notification`: for WhatsApp, `id` is `namespace@name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NotificationTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<TemplatePart>,
    pub body: TemplatePart,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TemplatePart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TemplateParameter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Attachment>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TemplateParameter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub text: String,
}

impl Content {
    /// The `template` of a `Notification` content item.
    pub fn template(&self) -> Option<NotificationTemplate> {
        serde_json::from_value(self.extra.get("template")?.clone()).ok()
    }
}

/// Delivery status of an agent's message, posted to `/inbound/open/receipt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// The Genesys message id from the outbound webhook.
    pub id: String,
    pub channel: ReceiptChannel,
    /// `Sent`, `Delivered`, `Read`, `Failed`, `Published`, `Removed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<ReceiptReason>,
    pub is_final_receipt: bool,
    pub direction: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReceiptChannel {
    pub to: Recipient,
    #[serde(serialize_with = "iso_millis", deserialize_with = "iso")]
    pub time: DateTime<Utc>,
}

/// `code` from Genesys' enum: `MessageExpired`, `RateLimited`, `MessageNotAllowed`, `GeneralError`,
/// `UnsupportedMessage`, `UnknownMessage`, `InvalidMessageStructure`, `InvalidDestination`,
/// `ServerError`, `MediaTypeNotAllowed`, `InvalidMediaContentLength`, `RecipientOptedOut`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReceiptReason {
    pub code: String,
    pub message: String,
}

/// Genesys' reason code (`OpenOutboundNormalizedMessage` enum) for a Meta error code.
pub fn failure_reason(code: Option<i64>) -> &'static str {
    match code {
        Some(131047) => "MessageExpired",
        Some(130429 | 131048 | 131056 | 4 | 80007) => "RateLimited",
        Some(131026 | 131021 | 133010) => "InvalidDestination",
        Some(131050) => "RecipientOptedOut",
        Some(131049 | 131031 | 131005 | 130472) => "MessageNotAllowed",
        Some(131051) => "UnsupportedMessage",
        Some(131052 | 131053) => "MediaTypeNotAllowed",
        Some(100 | 131008 | 131009 | 132000..=132999) => "InvalidMessageStructure",
        Some(131000 | 131016) => "ServerError",
        _ => "GeneralError",
    }
}

fn iso_millis<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    crate::rfc3339::write_as(time, SecondsFormat::Millis, serializer)
}

fn iso<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|err| serde::de::Error::custom(format!("time {text:?} is not ISO-8601: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_shared_inbound_samples_and_writes_millisecond_times() {
        let text = serde_json::json!({
            "channel": {"messageId": "wamid.A", "from": {"id": "16505551234", "idType": "Phone", "nickName": "Sheena"},
                        "time": "2021-02-01T15:04:05Z"},
            "text": "hi"
        });
        let message: InboundMessage = serde_json::from_value(text).expect("decodes");
        assert_eq!(message.channel.from.nickname.as_deref(), Some("Sheena"));
        let back = serde_json::to_value(&message).expect("encodes");
        assert_eq!(back["channel"]["time"], "2021-02-01T15:04:05.000Z");
        assert_eq!(back["channel"]["from"]["nickname"], "Sheena");
        assert!(back.get("content").is_none());
    }

    #[test]
    fn refuses_a_time_that_is_not_iso() {
        let bad = serde_json::json!({
            "channel": {"from": {"id": "1", "idType": "Phone"}, "time": "yesterday"}, "text": "hi"
        });
        let err = serde_json::from_value::<InboundMessage>(bad).expect_err("refused");
        assert!(err.to_string().contains("ISO-8601"), "{err}");
    }
}
