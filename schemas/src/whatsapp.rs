//! What we POST to Meta's `/{version}/{phone-number-id}/messages` (WIRE.md §2.1) and what it
//! answers. The Meta simulator validates requests by decoding them into these same types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest text body Meta accepts.
pub const MAX_TEXT_CHARS: usize = 4_096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SendRequest {
    pub messaging_product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<String>,
    /// The customer's wa_id. BSUID-only customers are addressed with `recipient` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// Echoed in every status of this message: we put the send's idempotency key here, so a
    /// status can settle a send whose answer was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    #[serde(flatten)]
    pub body: SendBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SendBody {
    Text { text: TextBody },
    Image { image: MediaBody },
    Video { video: MediaBody },
    Audio { audio: MediaBody },
    Document { document: MediaBody },
    Sticker { sticker: MediaBody },
    Template { template: TemplateBody },
    Interactive { interactive: Value },
    Reaction { reaction: Value },
}

impl SendBody {
    /// `text`, `image`, … as in the request's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            SendBody::Text { .. } => "text",
            SendBody::Image { .. } => "image",
            SendBody::Video { .. } => "video",
            SendBody::Audio { .. } => "audio",
            SendBody::Document { .. } => "document",
            SendBody::Sticker { .. } => "sticker",
            SendBody::Template { .. } => "template",
            SendBody::Interactive { .. } => "interactive",
            SendBody::Reaction { .. } => "reaction",
        }
    }

    /// Only templates may be sent outside the 24-hour customer-service window.
    pub fn is_template(&self) -> bool {
        matches!(self, SendBody::Template { .. })
    }

    /// The media object of an image, video, audio, document or sticker send.
    pub fn media(&self) -> Option<&MediaBody> {
        match self {
            SendBody::Image { image: m }
            | SendBody::Video { video: m }
            | SendBody::Audio { audio: m }
            | SendBody::Document { document: m }
            | SendBody::Sticker { sticker: m } => Some(m),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TextBody {
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<bool>,
}

/// By uploaded `id` or by `link`, exactly one of them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MediaBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TemplateBody {
    pub name: String,
    pub language: TemplateLanguage,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TemplateLanguage {
    pub code: String,
}

/// HTTP 200 of a send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendResponse {
    pub messaging_product: String,
    #[serde(default)]
    pub contacts: Vec<Value>,
    pub messages: Vec<SentMessage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentMessage {
    pub id: String,
    /// `accepted`, `held_for_quality_assessment` or `paused`; absent in older answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_status: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_tag_names_the_payload() {
        let request: SendRequest = serde_json::from_value(serde_json::json!({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
            "type": "document", "document": {"link": "https://x/a.pdf", "filename": "a.pdf"}
        }))
        .expect("decodes");
        assert_eq!(request.body.kind(), "document");
        assert_eq!(
            request.body.media().and_then(|m| m.filename.as_deref()),
            Some("a.pdf")
        );
        let back = serde_json::to_value(&request).expect("encodes");
        assert_eq!(back["type"], "document");
        assert_eq!(back["document"]["link"], "https://x/a.pdf");
        assert!(
            serde_json::from_value::<SendRequest>(serde_json::json!({
                "messaging_product": "whatsapp", "to": "1", "type": "fax", "fax": {}
            }))
            .is_err()
        );
    }
}
