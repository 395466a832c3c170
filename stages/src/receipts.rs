//! `receipts`: sends that failed before Meta could deliver anything become Failed receipts for
//! the agent. `wa.send-results.v1` → `delivery.genesys.v1`.
//!
//! An accepted send needs nothing here: its statuses (sent, delivered, read) come back through
//! the inbound chain and `transform` turns them into receipts. A failed one — the 24-hour window
//! was closed, Meta refused the request, the send's outcome was lost in a crash — never gets a
//! status, so this stage tells Genesys, with the reason code and a sentence for the agent.

use async_trait::async_trait;
use chrono::Utc;
use wabaflow_pipeline::{Context, Outcome, Stage, StageError};
use wabaflow_schemas::genesys::{Receipt, ReceiptChannel, ReceiptReason, Recipient};
use wabaflow_schemas::topics::{DELIVERY_GENESYS, Topic, WA_SEND_RESULTS};
use wabaflow_schemas::{Envelope, Event, SendOutcome};
use wabaflow_store::tenants::TenantRegistry;

use crate::map::tenant_of;

pub struct ReceiptStage {
    tenants: TenantRegistry,
}

impl ReceiptStage {
    pub fn new(tenants: TenantRegistry) -> Self {
        Self { tenants }
    }
}

#[async_trait]
impl Stage for ReceiptStage {
    type Input = Envelope;
    type Receipt = ();

    fn name(&self) -> &'static str {
        "receipts"
    }

    fn input(&self) -> Topic {
        WA_SEND_RESULTS
    }

    fn output(&self) -> Option<Topic> {
        Some(DELIVERY_GENESYS)
    }

    async fn process(&self, envelope: Envelope, _cx: &Context) -> Result<Outcome<()>, StageError> {
        let Event::SendResult {
            genesys_message_id,
            recipient,
            outcome,
            ..
        } = &envelope.event
        else {
            return Err(StageError::Invalid(format!(
                "{} event on the send results topic",
                envelope.event.kind()
            )));
        };
        let SendOutcome::Failed {
            reason,
            receipt_reason,
            ..
        } = outcome
        else {
            return Ok(Outcome::Discard("accepted"));
        };
        let Some(genesys_id) = genesys_message_id else {
            return Ok(Outcome::Discard("no_receipt"));
        };
        let tenant = tenant_of(&self.tenants, &envelope).await?;
        let receipt = Receipt {
            id: genesys_id.clone(),
            channel: ReceiptChannel {
                to: Recipient {
                    id: recipient.clone(),
                    id_type: None,
                    extra: Default::default(),
                },
                time: Utc::now(),
            },
            status: "Failed".into(),
            reasons: vec![ReceiptReason {
                code: receipt_reason.clone(),
                message: reason.clone(),
            }],
            is_final_receipt: true,
            direction: "Outbound".into(),
        };
        let out = envelope.follow(Event::GenesysReceipt {
            integration_id: tenant.genesys.integration_id.clone(),
            receipt: Box::new(receipt),
        });
        Ok(Outcome::Emit(vec![out], ()))
    }
}
