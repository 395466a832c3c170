//! `statuses[]` and error objects (WIRE.md §1.4, §1.5).

use serde::{Deserialize, Serialize};

use super::Extra;
use super::message::non_empty;
use crate::flex::UnixTime;

/// The delivery status of a message the business sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Status {
    /// The wamid of the message this status is about.
    pub id: String,
    /// `sent`, `delivered`, `read`, `failed`, `played` — see [`Status::state`].
    #[schemars(
        description = "`sent`, `delivered`, `read`, `failed` or `played`, as Meta wrote it."
    )]
    pub status: String,
    pub timestamp: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_recipient_user_id: Option<String>,
    /// Echo of what we set on the send: our idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_participant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Conversation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<MetaError>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Status {
    /// The user the message went to: the wa_id when Meta gives one, else the BSUID.
    pub fn recipient(&self) -> Option<&str> {
        non_empty(self.recipient_id.as_deref()).or(non_empty(self.recipient_user_id.as_deref()))
    }

    pub fn state(&self) -> Option<DeliveryState> {
        DeliveryState::parse(&self.status)
    }
}

/// Delivery states in the order they may advance. A status never moves backwards; `failed` ends
/// the message; `read` may arrive without `delivered`; `played` (a voice note) follows `read`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Sent,
    Delivered,
    Read,
    Played,
    Failed,
}

impl DeliveryState {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "played" => Self::Played,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
            Self::Failed => "failed",
        }
    }
}

/// `conversation`: only within a free entry point window since v24.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Conversation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A string in Meta's docs, an integer in some SDK fixtures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_timestamp: Option<UnixTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<ConversationOrigin>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConversationOrigin {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Meta's pricing object: on `sent` **or** `delivered`, not both. `billable` is deprecated in
/// favour of `type` + `category`; `pricing_model` is `CBP` before 2025-07-01 and `PMP` after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Pricing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_model: Option<String>,
    /// `regular`, `free_customer_service`, `free_entry_point`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An error object, as found in `value.errors`, `messages[].errors` and `statuses[].errors`.
/// Build logic on `code` and `error_data.details`; titles are being deprecated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MetaError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<ErrorData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}
