//! `transform`: customer messages become Genesys Open Messaging inbound messages.
//! `wa.inbound.enriched.v1` → `delivery.genesys.v1`.
//!
//! Every message type becomes a Genesys message ([`normalize`]): none is dropped. What is not a
//! customer message is discarded *with a counted reason*
//! (`wabaflow_stage_discarded_events_total{stage="transform",reason}`): `status` (delivery
//! statuses of our own sends; they become Genesys receipts with the outbound flow), `error`
//! (value-level Meta errors, for alerting) and `change` (template, account and quality updates).

mod normalize;

use async_trait::async_trait;
use wabaflow_pipeline::{Context, Outcome, Stage, StageError};
use wabaflow_schemas::topics::{DELIVERY_GENESYS, Topic, WA_INBOUND_ENRICHED};
use wabaflow_schemas::{Envelope, Event};
use wabaflow_store::tenants::TenantRegistry;

pub use normalize::{NormalizeError, normalize};

use crate::map::tenant_error;

pub struct TransformStage {
    tenants: TenantRegistry,
}

impl TransformStage {
    pub fn new(tenants: TenantRegistry) -> Self {
        Self { tenants }
    }
}

#[async_trait]
impl Stage for TransformStage {
    type Receipt = ();

    fn name(&self) -> &'static str {
        "transform"
    }

    fn input(&self) -> Topic {
        WA_INBOUND_ENRICHED
    }

    fn output(&self) -> Option<Topic> {
        Some(DELIVERY_GENESYS)
    }

    async fn process(&self, envelope: Envelope, _cx: &Context) -> Result<Outcome<()>, StageError> {
        let Event::MetaMessage {
            contact,
            message,
            media,
            ..
        } = &envelope.event
        else {
            return Ok(Outcome::Discard(envelope.event.kind()));
        };
        let tenant_id = envelope
            .tenant
            .as_deref()
            .ok_or_else(|| StageError::Invalid("message without a tenant (not mapped)".into()))?;
        let tenant = self
            .tenants
            .get(tenant_id)
            .await
            .map_err(tenant_error)?
            .ok_or_else(|| StageError::Unavailable(format!("tenant {tenant_id} disappeared")))?;
        let normalized = normalize(
            message,
            contact.as_ref(),
            media.as_ref(),
            envelope.received_at,
        )
        .map_err(|err| StageError::Invalid(err.to_string()))?;
        let mut out = Envelope::new(
            envelope.source,
            envelope.conversation_key.clone(),
            envelope.occurred_at,
            envelope.received_at,
            envelope.raw,
            Event::GenesysInbound {
                integration_id: tenant.genesys.integration_id.clone(),
                wamid: message.id.clone(),
                message: Box::new(normalized),
            },
        );
        out.tenant = envelope.tenant.clone();
        Ok(Outcome::Emit(vec![out], ()))
    }
}
