//! `sink:genesys`: `delivery.genesys.v1` → Genesys Cloud, one event at a time per conversation
//! (the runner's per-key order; different conversations go on at once), so a conversation's
//! messages reach the agent in order: customer messages to `/inbound/open/message`,
//! delivery receipts of agents' messages to `/inbound/open/receipt`.
//!
//! Exactly once, as far as we can make it: a message whose tracking already holds a Genesys
//! message id was delivered before (a replay after a crash) and is skipped. The call itself is
//! retried until Genesys accepts or rejects it — the runner never stores an offset past a
//! message that is still waiting — and its answer (message id, conversation id) is written to
//! message tracking and to the conversation mapping before the offset moves. The remaining
//! window for a duplicate is a crash between Genesys' answer and that write.

use std::time::Duration;

use async_trait::async_trait;
use wabaflow_pipeline::backoff::Backoff;
use wabaflow_pipeline::{Context, Outcome, Stage, StageError};
use wabaflow_schemas::topics::{DELIVERY_GENESYS, Topic};
use wabaflow_schemas::{Envelope, Event};
use wabaflow_store::StoreError;
use wabaflow_store::records::Records;
use wabaflow_store::tenants::TenantRegistry;

use super::service::{GenesysError, GenesysService};

/// Attempts at recording Genesys' answer before the event is retried (and re-sent).
const RECORD_ATTEMPTS: u32 = 8;

pub struct GenesysSink {
    service: GenesysService,
    tenants: TenantRegistry,
    records: Records,
}

impl GenesysSink {
    pub fn new(service: GenesysService, tenants: TenantRegistry, records: Records) -> Self {
        Self {
            service,
            tenants,
            records,
        }
    }

    /// Records what Genesys answered, retrying the store briefly: failing here means sending the
    /// message again, which is worse than waiting a little.
    async fn record(
        &self,
        conversation_key: &str,
        wamid: &str,
        genesys_id: &str,
        conversation_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut fields = vec![("genesys_message_id", genesys_id), ("status", "delivered")];
            if let Some(conversation_id) = conversation_id {
                fields.push(("genesys_conversation_id", conversation_id));
            }
            let written = async {
                self.records.track(wamid, &fields).await?;
                if let Some(conversation_id) = conversation_id {
                    self.records
                        .link_genesys_conversation(conversation_key, conversation_id)
                        .await?;
                }
                Ok(())
            }
            .await;
            match written {
                Err(err) if attempt < RECORD_ATTEMPTS => {
                    tracing::warn!(error = %err, attempt, "recording a Genesys delivery failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                other => return other,
            }
        }
    }
}

/// The retry table's verdict as the runner understands it.
fn stage_error(err: GenesysError) -> StageError {
    match err {
        GenesysError::Throttled { after } => StageError::RetryAfter {
            reason: "Genesys rate limit".into(),
            after,
        },
        GenesysError::Rejected { .. } => StageError::Invalid(err.to_string()),
        GenesysError::Unavailable(_) | GenesysError::Unauthorized(_) => {
            StageError::Unavailable(err.to_string())
        }
    }
}

#[async_trait]
impl Stage for GenesysSink {
    type Input = Envelope;
    type Receipt = ();

    fn name(&self) -> &'static str {
        "genesys"
    }

    fn input(&self) -> Topic {
        DELIVERY_GENESYS
    }

    fn output(&self) -> Option<Topic> {
        None
    }

    async fn process(&self, envelope: Envelope, _cx: &Context) -> Result<Outcome<()>, StageError> {
        let tenant_id = envelope
            .tenant
            .as_deref()
            .ok_or_else(|| StageError::Invalid("delivery without a tenant".into()))?;
        let tenant = self
            .tenants
            .get(tenant_id)
            .await
            .map_err(|err| StageError::Unavailable(err.to_string()))?
            .ok_or_else(|| StageError::Unavailable(format!("tenant {tenant_id} disappeared")))?;
        let (wamid, message) = match &envelope.event {
            Event::GenesysInbound { wamid, message, .. } => (wamid, message),
            Event::GenesysReceipt { receipt, .. } => {
                // Receipts are made monotonic upstream (transform); a replay repeats one at most.
                self.service
                    .send_receipt(&tenant, receipt)
                    .await
                    .map_err(stage_error)?;
                return Ok(Outcome::Emit(Vec::new(), ()));
            }
            other => {
                return Err(StageError::Invalid(format!(
                    "{} event on the Genesys delivery topic",
                    other.kind()
                )));
            }
        };
        let unavailable = |err: StoreError| StageError::Unavailable(err.to_string());
        let tracking = self.records.tracking(wamid).await.map_err(unavailable)?;
        if tracking.is_some_and(|t| t.genesys_message_id.is_some()) {
            return Ok(Outcome::Discard("already_delivered"));
        }
        let accepted = self
            .service
            .send_inbound(&tenant, message)
            .await
            .map_err(stage_error)?;
        self.record(
            envelope.conversation_key.as_str(),
            wamid,
            &accepted.id,
            accepted.conversation_id.as_deref(),
        )
        .await
        .map_err(unavailable)?;
        Ok(Outcome::Emit(Vec::new(), ()))
    }
}
