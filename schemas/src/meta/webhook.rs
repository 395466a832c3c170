//! The webhook envelope: `object → entry[] → changes[] → {field, value}` (WIRE.md §1.1, §1.6).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Extra, Message, MetaError, Status};
use crate::flex::{Numeric, UnixTime};

/// `object` of every WhatsApp Business Account webhook.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

/// One POST body from Meta. Graph may batch up to 1000 updates into it, across entries and changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub object: String,
    pub entry: Vec<Entry>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One WhatsApp Business Account's updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The WABA id. Always sent by Meta; missing only in trimmed SDK fixtures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Present on non-`messages` fields, as an integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<UnixTime>,
    pub changes: Vec<Change>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `{field, value}` pair. The value is typed by `field`; unknown fields stay raw JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "IncomingChange", into = "RawChange")]
pub struct Change {
    /// Normally always present; some SDK fixtures omit it for `messages` values.
    pub field: Option<String>,
    pub value: ChangeValue,
    pub extra: Extra,
}

/// The `value` of a change, by its `field`.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeValue {
    /// `messages`: inbound messages, statuses of sent messages, or value-level errors.
    Messages(Box<MessagesValue>),
    /// `message_template_status_update`.
    TemplateStatus(TemplateStatusUpdate),
    /// `account_update`.
    Account(AccountUpdate),
    /// `phone_number_quality_update`.
    Quality(QualityUpdate),
    /// Any other field (`user_preferences`, `smb_message_echoes`, `history`, …), kept verbatim.
    Other(Value),
}

/// A change as written: what [`Change`] serializes through.
#[derive(Debug, Clone, Serialize)]
struct RawChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    value: Value,
    #[serde(flatten)]
    extra: Extra,
}

/// A change as read. Meta writes `value` before `field`, so the value is kept as its JSON text
/// until the field is known, then decoded once into its type — not built as a [`Value`] tree
/// first and converted, which took 22 % more instructions per webhook.
#[derive(Deserialize)]
struct IncomingChange {
    #[serde(default)]
    field: Option<String>,
    value: Box<RawValue>,
    #[serde(flatten)]
    extra: Extra,
}

impl TryFrom<IncomingChange> for Change {
    type Error = serde_json::Error;

    fn try_from(raw: IncomingChange) -> Result<Self, Self::Error> {
        let json = raw.value.get();
        let value = match raw.field.as_deref() {
            // A malformed `messages` value is an error: it is the traffic we exist for.
            Some("messages") => ChangeValue::Messages(Box::new(serde_json::from_str(json)?)),
            // Some SDK fixtures omit the field: a value that looks like messages is one.
            None => {
                let value: Value = serde_json::from_str(json)?;
                let looks_like_messages = ["messages", "statuses", "errors"]
                    .iter()
                    .any(|key| value.get(key).is_some());
                if looks_like_messages {
                    ChangeValue::Messages(Box::new(serde_json::from_value(value)?))
                } else {
                    ChangeValue::Other(value)
                }
            }
            // Administrative fields are typed when they match the documented shape, else kept raw.
            Some("message_template_status_update") => {
                typed_or_raw(json, ChangeValue::TemplateStatus)?
            }
            Some("account_update") => typed_or_raw(json, ChangeValue::Account)?,
            Some("phone_number_quality_update") => typed_or_raw(json, ChangeValue::Quality)?,
            Some(_) => ChangeValue::Other(serde_json::from_str(json)?),
        };
        Ok(Change {
            field: raw.field,
            value,
            extra: raw.extra,
        })
    }
}

/// `json` as a `T`, or kept raw when it does not have that shape.
fn typed_or_raw<T: serde::de::DeserializeOwned>(
    json: &str,
    wrap: fn(T) -> ChangeValue,
) -> Result<ChangeValue, serde_json::Error> {
    match serde_json::from_str::<T>(json) {
        Ok(typed) => Ok(wrap(typed)),
        Err(_) => serde_json::from_str(json).map(ChangeValue::Other),
    }
}

impl ChangeValue {
    /// The value as Meta sent it.
    pub fn to_value(&self) -> Value {
        match self {
            ChangeValue::Messages(v) => to_value(&**v),
            ChangeValue::TemplateStatus(v) => to_value(v),
            ChangeValue::Account(v) => to_value(v),
            ChangeValue::Quality(v) => to_value(v),
            ChangeValue::Other(v) => v.clone(),
        }
    }
}

impl From<Change> for RawChange {
    fn from(change: Change) -> Self {
        let value = match change.value {
            ChangeValue::Other(v) => v,
            typed => typed.to_value(),
        };
        RawChange {
            field: change.field,
            value,
            extra: change.extra,
        }
    }
}

fn to_value<T: Serialize>(typed: &T) -> Value {
    // Serializing these plain data types into a `Value` cannot fail: every map key is a string.
    serde_json::to_value(typed).expect("webhook types serialize to JSON")
}

/// The value of a `messages` change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_product: Option<String>,
    /// Always sent by Meta; without it a change cannot be routed (the edge dead-letters it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<Contact>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Message>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<Status>>,
    /// Value-level (system/app) errors, WIRE.md §1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<MetaError>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl MessagesValue {
    /// The contact whose `wa_id` or `user_id` matches `user`, else the only contact.
    pub fn contact_for(&self, user: Option<&str>) -> Option<&Contact> {
        let contacts = self.contacts.as_deref()?;
        let found = user.and_then(|user| {
            contacts
                .iter()
                .find(|c| c.wa_id.as_deref() == Some(user) || c.user_id.as_deref() == Some(user))
        });
        found.or(if contacts.len() == 1 {
            contacts.first()
        } else {
            None
        })
    }
}

/// The receiving business number. Route on `phone_number_id`, never on the display number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    pub phone_number_id: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The customer who wrote (or, on v25 BSUID statuses, who was written to).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// May be absent or empty once the user adopted a username (WIRE.md §1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// Business-scoped user id (BSUID), e.g. `US.13491208655302741918`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `message_template_status_update` (WIRE.md §1.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateStatusUpdate {
    /// APPROVED, REJECTED, PENDING, PAUSED, DISABLED, …
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_id: Option<Numeric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_category: Option<String>,
    /// `{reason, recommendation}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_info: Option<Value>,
    /// `{title: FIRST_PAUSE|SECOND_PAUSE|RATE_LIMITING_PAUSE|UNPAUSE|DISABLED, description}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_info: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `account_update`: PARTNER_ADDED, ACCOUNT_VIOLATION, DISABLED_UPDATE, ACCOUNT_RESTRICTION, …
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUpdate {
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waba_info: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ban_info: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restriction_info: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation_info: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `phone_number_quality_update`: FLAGGED, UNFLAGGED, THROUGHPUT_UPGRADE, ONBOARDING, …
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityUpdate {
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    /// TIER_50 … TIER_UNLIMITED; announced for removal in Feb 2026.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_conversations_per_business: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}
