//! Conversation mappings and message tracking: the records stages and sinks share.
//!
//! - `mapping:wa:{conversation_key}` — one per conversation (`{phone_number_id}:{user}`): tenant,
//!   user (wa_id or BSUID), contact name, created / last activity / last inbound time (the start of
//!   the 24-hour customer-service window) and the Genesys conversation id once known. The user is
//!   qualified by the business number because one person may talk to several tenants.
//! - `mapping:conv:{genesys_conversation_id}` — the conversation key, for the reverse direction.
//!   Both expire [`MAPPING_TTL`] after the customer's last message (or the link to Genesys): a
//!   customer who writes again after that starts a fresh mapping, as a new conversation would.
//! - `track:wa:{wamid}` — one per message: direction, status, media type and URL, and the ids the
//!   other side gave it (Genesys message id and conversation id). It expires [`TRACKING_TTL`]
//!   after its last write, so Redis holds recent messages, not every message ever sent; usage and
//!   history live in ClickHouse.
//! - `send:{send key}` — one per message sent to Meta: see [`crate::sends`].
//!
//! Each writer sets only the fields it owns ([`StateStore::set_fields`]), so the mapping stage and
//! the Genesys sink never overwrite each other. Per conversation, writes come from one partition
//! in order, which is what makes "created if absent" a plain read-then-write.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::{StateStore, StoreError};

/// How long a message's tracking outlives its last write: statuses arrive within days (Meta
/// retries a webhook for up to 7 days), and a reply may quote a message some weeks old.
pub const TRACKING_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long a conversation mapping outlives the customer's last message: far beyond the 24-hour
/// window and any agent conversation, so that only abandoned conversations leave the hot store.
pub const MAPPING_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// Reads and writes mappings and tracking; cheap to clone.
#[derive(Clone)]
pub struct Records {
    store: Arc<dyn StateStore>,
}

/// What the mapping stage learns from one inbound message.
#[derive(Debug, Clone)]
pub struct InboundContact<'a> {
    pub tenant: &'a str,
    pub phone_number_id: &'a str,
    /// The conversation's user: wa_id, or the BSUID when Meta withholds the number.
    pub user: &'a str,
    pub wa_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub contact_name: Option<&'a str>,
    /// Meta's timestamp of the message.
    pub at: DateTime<Utc>,
}

/// A conversation mapping as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConversationMapping {
    pub tenant: String,
    pub phone_number_id: String,
    pub user: String,
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
    pub contact_name: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub last_activity_at: Option<DateTime<Utc>>,
    /// The customer's last message: the 24-hour window runs from here.
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub genesys_conversation_id: Option<String>,
}

/// Message tracking as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageTracking {
    pub conversation: Option<String>,
    pub tenant: Option<String>,
    pub direction: Option<String>,
    pub status: Option<String>,
    pub media_type: Option<String>,
    pub media_url: Option<String>,
    pub genesys_message_id: Option<String>,
    pub genesys_conversation_id: Option<String>,
}

impl Records {
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store }
    }

    /// The store underneath, for the other records kept through this handle ([`crate::sends`]).
    pub(crate) fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// Creates or refreshes a conversation's mapping for an inbound message; returns it.
    pub async fn touch_inbound(
        &self,
        conversation_key: &str,
        contact: &InboundContact<'_>,
    ) -> Result<ConversationMapping, StoreError> {
        let key = mapping_key(conversation_key);
        let current = self.store.fields(&key).await?;
        let at = timestamp(contact.at);
        let mut fields: Vec<(&str, &str)> = vec![
            ("tenant", contact.tenant),
            ("phone_number_id", contact.phone_number_id),
            ("user", contact.user),
        ];
        if !current.contains_key("created_at") {
            fields.push(("created_at", &at));
        }
        // Meta retries and reorders: the window starts at the *latest* customer message.
        let newer = |field: &str| {
            current
                .get(field)
                .and_then(|t| parse_time(t))
                .is_none_or(|previous| previous <= contact.at)
        };
        if newer("last_activity_at") {
            fields.push(("last_activity_at", &at));
        }
        if newer("last_inbound_at") {
            fields.push(("last_inbound_at", &at));
        }
        for (field, value) in [
            ("wa_id", contact.wa_id),
            ("user_id", contact.user_id),
            ("contact_name", contact.contact_name),
        ] {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                fields.push((field, value));
            }
        }
        self.store
            .set_fields(&key, &fields, Some(MAPPING_TTL))
            .await?;
        let mut merged = current;
        for (field, value) in fields {
            merged.insert(field.to_owned(), value.to_owned());
        }
        Ok(ConversationMapping::from_fields(merged))
    }

    pub async fn conversation(
        &self,
        conversation_key: &str,
    ) -> Result<Option<ConversationMapping>, StoreError> {
        let fields = self.store.fields(&mapping_key(conversation_key)).await?;
        Ok((!fields.is_empty()).then(|| ConversationMapping::from_fields(fields)))
    }

    /// Records the Genesys conversation a WhatsApp conversation joined, both ways.
    pub async fn link_genesys_conversation(
        &self,
        conversation_key: &str,
        genesys_conversation_id: &str,
    ) -> Result<(), StoreError> {
        self.store
            .set_fields(
                &mapping_key(conversation_key),
                &[("genesys_conversation_id", genesys_conversation_id)],
                Some(MAPPING_TTL),
            )
            .await?;
        self.store
            .put(
                &format!("mapping:conv:{genesys_conversation_id}"),
                conversation_key.as_bytes(),
                Some(MAPPING_TTL),
            )
            .await
    }

    /// The WhatsApp conversation key behind a Genesys conversation id.
    pub async fn conversation_by_genesys(
        &self,
        genesys_conversation_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .get(&format!("mapping:conv:{genesys_conversation_id}"))
            .await?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Sets tracking fields of a WhatsApp message (renewing its [`TRACKING_TTL`]).
    pub async fn track(&self, wamid: &str, fields: &[(&str, &str)]) -> Result<(), StoreError> {
        self.store
            .set_fields(&tracking_key(wamid), fields, Some(TRACKING_TTL))
            .await
    }

    pub async fn tracking(&self, wamid: &str) -> Result<Option<MessageTracking>, StoreError> {
        let mut fields = self.store.fields(&tracking_key(wamid)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let mut take = |field: &str| fields.remove(field);
        Ok(Some(MessageTracking {
            conversation: take("conversation"),
            tenant: take("tenant"),
            direction: take("direction"),
            status: take("status"),
            media_type: take("media_type"),
            media_url: take("media_url"),
            genesys_message_id: take("genesys_message_id"),
            genesys_conversation_id: take("genesys_conversation_id"),
        }))
    }
}

impl ConversationMapping {
    fn from_fields(mut fields: HashMap<String, String>) -> Self {
        let mut take = |field: &str| fields.remove(field);
        Self {
            tenant: take("tenant").unwrap_or_default(),
            phone_number_id: take("phone_number_id").unwrap_or_default(),
            user: take("user").unwrap_or_default(),
            wa_id: take("wa_id"),
            user_id: take("user_id"),
            contact_name: take("contact_name"),
            created_at: take("created_at").and_then(|t| parse_time(&t)),
            last_activity_at: take("last_activity_at").and_then(|t| parse_time(&t)),
            last_inbound_at: take("last_inbound_at").and_then(|t| parse_time(&t)),
            genesys_conversation_id: take("genesys_conversation_id"),
        }
    }
}

fn mapping_key(conversation_key: &str) -> String {
    format!("mapping:wa:{conversation_key}")
}

fn tracking_key(wamid: &str) -> String {
    format!("track:wa:{wamid}")
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::MemoryStore;

    fn contact(at: i64, name: Option<&'static str>) -> InboundContact<'static> {
        InboundContact {
            tenant: "acme",
            phone_number_id: "1065",
            user: "16505551234",
            wa_id: Some("16505551234"),
            user_id: None,
            contact_name: name,
            at: Utc.timestamp_opt(at, 0).single().expect("valid"),
        }
    }

    #[tokio::test]
    async fn the_window_starts_at_the_latest_message_even_when_retries_arrive_late() {
        let records = Records::new(Arc::new(MemoryStore::new()));
        let key = "1065:16505551234";
        let first = records
            .touch_inbound(key, &contact(1_000, Some("Sheena")))
            .await
            .expect("touch");
        assert_eq!(first.created_at, first.last_inbound_at);
        records
            .touch_inbound(key, &contact(2_000, None))
            .await
            .expect("touch");
        // An older message Meta retried late moves nothing back, and keeps the name.
        let late = records
            .touch_inbound(key, &contact(1_500, None))
            .await
            .expect("touch");
        assert_eq!(late.last_inbound_at.map(|t| t.timestamp()), Some(2_000));
        assert_eq!(late.created_at.map(|t| t.timestamp()), Some(1_000));
        assert_eq!(late.contact_name.as_deref(), Some("Sheena"));

        records
            .link_genesys_conversation(key, "conv-1")
            .await
            .expect("link");
        let mapping = records
            .conversation(key)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(mapping.genesys_conversation_id.as_deref(), Some("conv-1"));
        assert_eq!(mapping.last_inbound_at.map(|t| t.timestamp()), Some(2_000));
        assert_eq!(
            records
                .conversation_by_genesys("conv-1")
                .await
                .expect("read")
                .as_deref(),
            Some(key)
        );
    }
}
