//! `map`: resolves the tenant of every unique event and keeps the conversation mapping current.
//!
//! Inbound (`map`): `wa.inbound.unique.v1` → `wa.inbound.mapped.v1`. Outbound (`map-outbound`):
//! `genesys.outbound.unique.v1` → `genesys.outbound.mapped.v1` — the tenant comes from the
//! integration id, the customer from `channel.to.id` (the id we gave Genesys: wa_id or BSUID),
//! and the reply learns whether the 24-hour customer-service window is open: Meta only lets
//! templates through once 24 hours passed since the customer's last message.
//!
//! The tenant comes from `metadata.phone_number_id` (Meta: route on it, not on the display
//! number). A number no tenant owns is dead-lettered with the reason; a number owned by another
//! tenant than the one whose webhook URL received the event (the edge sets `tenant` from the URL)
//! is dead-lettered too — that is a misconfigured callback, or a forgery with a leaked secret.
//! For a customer message the mapping records the user, their profile name and the message time,
//! which starts the 24-hour customer-service window; message tracking gets an `inbound` row.
//! Account-level changes carry no number and pass through unmapped.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use wabaflow_pipeline::{Context, Outcome, Stage, StageError};
use wabaflow_schemas::tenant::Tenant;
use wabaflow_schemas::topics::{
    GENESYS_OUTBOUND_MAPPED, GENESYS_OUTBOUND_UNIQUE, Topic, WA_INBOUND_MAPPED, WA_INBOUND_UNIQUE,
};
use wabaflow_schemas::{Envelope, Event, Reply};
use wabaflow_store::records::{InboundContact, Records};
use wabaflow_store::tenants::{TenantError, TenantRegistry};

/// The customer-service window: free-form messages only within 24 hours of the customer's last.
pub const SERVICE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Customer → agent.
    Inbound,
    /// Agent → customer.
    Outbound,
}

pub struct MapStage {
    tenants: TenantRegistry,
    records: Records,
    direction: Direction,
}

impl MapStage {
    pub fn new(tenants: TenantRegistry, records: Records) -> Self {
        Self::with_direction(tenants, records, Direction::Inbound)
    }

    pub fn outbound(tenants: TenantRegistry, records: Records) -> Self {
        Self::with_direction(tenants, records, Direction::Outbound)
    }

    fn with_direction(tenants: TenantRegistry, records: Records, direction: Direction) -> Self {
        Self {
            tenants,
            records,
            direction,
        }
    }

    async fn map_reply(&self, mut envelope: Envelope) -> Result<Outcome<()>, StageError> {
        let Event::GenesysOutbound {
            integration_id,
            message,
            reply,
            ..
        } = &mut envelope.event
        else {
            return Err(StageError::Invalid(format!(
                "{} event on the outbound Genesys topic",
                envelope.event.kind()
            )));
        };
        let tenant = self
            .tenants
            .by_integration(integration_id)
            .await
            .map_err(tenant_error)?
            .ok_or_else(|| {
                StageError::Invalid(format!(
                    "unknown Genesys integration {integration_id}: no tenant owns it"
                ))
            })?;
        if let Some(claimed) = &envelope.tenant
            && *claimed != tenant.id
        {
            return Err(StageError::Invalid(format!(
                "integration {integration_id} belongs to tenant {}, but arrived on tenant {claimed}'s webhook",
                tenant.id
            )));
        }
        let user = message.channel.to.id.clone();
        if user.is_empty() {
            return Err(StageError::Invalid("channel.to.id is empty".into()));
        }
        let key = format!("{}:{user}", tenant.phone_number_id);
        let mapping = self
            .records
            .conversation(&key)
            .await
            .map_err(|err| StageError::Unavailable(err.to_string()))?;
        let last_inbound_at = mapping.and_then(|m| m.last_inbound_at);
        *reply = Some(Reply {
            phone_number_id: tenant.phone_number_id.clone(),
            user,
            window_open: last_inbound_at.is_some_and(|at| Utc::now() - at < SERVICE_WINDOW),
            last_inbound_at,
        });
        envelope.tenant = Some(tenant.id.clone());
        Ok(Outcome::Emit(vec![envelope], ()))
    }
}

/// Store trouble waits and retries; a record that does not open (wrong key, corruption) is an
/// operator problem: the events wait for it too, rather than being dead-lettered en masse.
pub(crate) fn tenant_error(err: TenantError) -> StageError {
    StageError::Unavailable(err.to_string())
}

/// The tenant the mapping stage put on `envelope`.
pub(crate) async fn tenant_of(
    tenants: &TenantRegistry,
    envelope: &Envelope,
) -> Result<std::sync::Arc<Tenant>, StageError> {
    let id = envelope
        .tenant
        .as_deref()
        .ok_or_else(|| StageError::Invalid("event without a tenant (not mapped)".into()))?;
    tenants
        .get(id)
        .await
        .map_err(tenant_error)?
        .ok_or_else(|| StageError::Unavailable(format!("tenant {id} disappeared")))
}

#[async_trait]
impl Stage for MapStage {
    type Input = Envelope;
    type Receipt = ();

    fn name(&self) -> &'static str {
        match self.direction {
            Direction::Inbound => "map",
            Direction::Outbound => "map-outbound",
        }
    }

    fn input(&self) -> Topic {
        match self.direction {
            Direction::Inbound => WA_INBOUND_UNIQUE,
            Direction::Outbound => GENESYS_OUTBOUND_UNIQUE,
        }
    }

    fn output(&self) -> Option<Topic> {
        Some(match self.direction {
            Direction::Inbound => WA_INBOUND_MAPPED,
            Direction::Outbound => GENESYS_OUTBOUND_MAPPED,
        })
    }

    async fn process(
        &self,
        mut envelope: Envelope,
        _cx: &Context,
    ) -> Result<Outcome<()>, StageError> {
        if self.direction == Direction::Outbound {
            return self.map_reply(envelope).await;
        }
        let phone_number_id = match &envelope.event {
            Event::MetaMessage {
                phone_number_id, ..
            }
            | Event::MetaStatus {
                phone_number_id, ..
            }
            | Event::MetaError {
                phone_number_id, ..
            } => phone_number_id.clone(),
            Event::MetaChange { .. } => return Ok(Outcome::Emit(vec![envelope], ())),
            other => {
                return Err(StageError::Invalid(format!(
                    "{} event on the inbound Meta topic",
                    other.kind()
                )));
            }
        };
        let tenant = self
            .tenants
            .by_phone(&phone_number_id)
            .await
            .map_err(tenant_error)?
            .ok_or_else(|| {
                StageError::Invalid(format!(
                    "unknown phone number id {phone_number_id}: no tenant owns it"
                ))
            })?;
        if let Some(claimed) = &envelope.tenant
            && *claimed != tenant.id
        {
            return Err(StageError::Invalid(format!(
                "phone number id {phone_number_id} belongs to tenant {}, but arrived on tenant {claimed}'s webhook",
                tenant.id
            )));
        }

        if let Event::MetaMessage {
            contact, message, ..
        } = &envelope.event
        {
            let key = envelope.conversation_key.as_str();
            let user = message.sender().unwrap_or_default();
            let profile = contact.as_ref().and_then(|c| c.profile.as_ref());
            let at: DateTime<Utc> = envelope.occurred_at.unwrap_or(envelope.received_at);
            let contact = InboundContact {
                tenant: &tenant.id,
                phone_number_id: &phone_number_id,
                user,
                wa_id: message.from.as_deref(),
                user_id: message.from_user_id.as_deref(),
                contact_name: profile.and_then(|p| p.name.as_deref().or(p.username.as_deref())),
                at,
            };
            let media_type = message.media().map(|_| message.kind.as_str()).unwrap_or("");
            let mut fields = vec![
                ("conversation", key),
                ("tenant", tenant.id.as_str()),
                ("direction", "inbound"),
                ("status", "received"),
            ];
            if !media_type.is_empty() {
                fields.push(("media_type", media_type));
            }
            // Two independent records, written side by side: one round trip's wait, not two.
            futures::try_join!(
                self.records.touch_inbound(key, &contact),
                self.records.track(&message.id, &fields),
            )
            .map_err(|err| StageError::Unavailable(err.to_string()))?;
        }
        envelope.tenant = Some(tenant.id.clone());
        Ok(Outcome::Emit(vec![envelope], ()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wabaflow_pipeline::Origin;
    use wabaflow_schemas::tenant::{GenesysIntegration, Tenant};
    use wabaflow_schemas::{ConversationKey, Secret, Source};
    use wabaflow_store::tenants::EncryptionKey;
    use wabaflow_store::{MemoryStore, StateStore};

    use super::*;

    pub(crate) fn tenant(id: &str, phone: &str) -> Tenant {
        Tenant {
            id: id.into(),
            phone_number_id: phone.into(),
            display_phone_number: None,
            app_secret: Secret::new("s"),
            verify_token: Secret::new("v"),
            whatsapp_token: Secret::new("t"),
            genesys: GenesysIntegration {
                region: "mypurecloud.ie".into(),
                integration_id: format!("int-{id}"),
                client_id: "c".into(),
                client_secret: Secret::new("cs"),
                webhook_secret: Secret::default(),
            },
        }
    }

    fn message(phone: &str, wamid: &str, name: &str) -> Envelope {
        let contact = serde_json::from_value(serde_json::json!({
            "profile": {"name": name}, "wa_id": "16505551234"
        }))
        .expect("contact");
        let message = serde_json::from_value(serde_json::json!({
            "from": "16505551234", "id": wamid, "timestamp": "1749416383", "type": "text",
            "text": {"body": "hi"}
        }))
        .expect("message");
        Envelope::new(
            Source::Meta,
            ConversationKey::conversation(phone, "16505551234"),
            chrono::DateTime::from_timestamp(1_749_416_383, 0),
            Utc::now(),
            None,
            Event::MetaMessage {
                phone_number_id: phone.into(),
                display_phone_number: None,
                contact: Some(contact),
                message: Box::new(message),
                media: None,
            },
        )
    }

    async fn stage() -> (MapStage, Records) {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let tenants = TenantRegistry::new(store.clone(), &EncryptionKey::generate());
        tenants.put(&tenant("acme", "1065")).await.expect("put");
        tenants.put(&tenant("globex", "2077")).await.expect("put");
        let records = Records::new(store);
        (MapStage::new(tenants, records.clone()), records)
    }

    fn cx() -> Context {
        Context {
            origin: Origin {
                topic: "wa.inbound.unique.v1".into(),
                partition: 0,
                offset: 1,
            },
        }
    }

    #[tokio::test]
    async fn a_message_gets_its_tenant_mapping_and_tracking() {
        let (stage, records) = stage().await;
        let Outcome::Emit(out, ()) = stage
            .process(message("1065", "wamid.A", "Sheena"), &cx())
            .await
            .expect("processed")
        else {
            panic!("discarded")
        };
        assert_eq!(out[0].tenant.as_deref(), Some("acme"));
        let mapping = records
            .conversation("1065:16505551234")
            .await
            .expect("read")
            .expect("mapped");
        assert_eq!(mapping.tenant, "acme");
        assert_eq!(mapping.contact_name.as_deref(), Some("Sheena"));
        assert_eq!(
            mapping.last_inbound_at.map(|t| t.timestamp()),
            Some(1_749_416_383)
        );
        let tracking = records
            .tracking("wamid.A")
            .await
            .expect("read")
            .expect("tracked");
        assert_eq!(tracking.direction.as_deref(), Some("inbound"));
        assert_eq!(tracking.conversation.as_deref(), Some("1065:16505551234"));
    }

    #[tokio::test]
    async fn unknown_and_foreign_numbers_are_dead_lettered_with_a_reason() {
        let (stage, _) = stage().await;
        let err = stage
            .process(message("999", "wamid.B", "X"), &cx())
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, StageError::Invalid(r) if r.contains("unknown phone number id 999")),
            "{err}"
        );

        let mut foreign = message("2077", "wamid.C", "X");
        foreign.tenant = Some("acme".into());
        let err = stage.process(foreign, &cx()).await.expect_err("refused");
        assert!(
            matches!(&err, StageError::Invalid(r) if r.contains("belongs to tenant globex")),
            "{err}"
        );
    }
}
