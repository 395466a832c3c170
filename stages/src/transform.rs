//! `transform`: from one side's language to the other's.
//!
//! Inbound (`transform`): `wa.inbound.enriched.v1` → `delivery.genesys.v1`.
//! - Every customer message becomes a Genesys Open Messaging inbound message ([`normalize`]):
//!   none is dropped.
//! - A status of a message an agent sent becomes a Genesys receipt (Sent, Delivered, Read, Failed
//!   with a reason code) when it moves the message forward ([`receipt`]); message tracking keeps
//!   the furthest status. A late or repeated status is discarded as `stale_status`; a status of a
//!   message wabaflow does not track (sent by another tool on the same number) as `untracked_status`.
//!   The first status of a send whose call to Meta went unanswered finds no tracking: its
//!   `biz_opaque_callback_data` (the send key) confirms the send ([`Records::confirm_send`]), which
//!   starts the tracking, and the status goes on as any other.
//! - Value-level errors and other changes are discarded with a counted reason (`error`, `change`).
//!
//! Outbound (`transform-outbound`): `genesys.outbound.enriched.v1` → `wa.send.v1`: an agent's
//! reply becomes a Cloud API send request ([`reply`]) keyed `send:genesys:{genesys message id}`.

mod normalize;
pub mod receipt;
pub mod reply;

use std::task::Poll;

use async_trait::async_trait;
use chrono::Utc;
use futures::stream::{self, BoxStream, FuturesUnordered, StreamExt};
use tracing::info;
use wabaflow_pipeline::{Context, Outcome, Processed, Stage, StageError};
use wabaflow_schemas::genesys::{Receipt, ReceiptChannel, ReceiptReason, Recipient};
use wabaflow_schemas::meta::Status;
use wabaflow_schemas::topics::{
    DELIVERY_GENESYS, GENESYS_OUTBOUND_ENRICHED, Topic, WA_INBOUND_ENRICHED, WA_SEND,
};
use wabaflow_schemas::{Envelope, Event};
use wabaflow_store::records::Records;
use wabaflow_store::tenants::{Tenant, TenantRegistry};

pub use normalize::{NormalizeError, normalize};

use crate::map::{Direction, tenant_of};

pub struct TransformStage {
    tenants: TenantRegistry,
    records: Records,
    direction: Direction,
}

impl TransformStage {
    pub fn new(tenants: TenantRegistry, records: Records) -> Self {
        Self {
            tenants,
            records,
            direction: Direction::Inbound,
        }
    }

    pub fn outbound(tenants: TenantRegistry, records: Records) -> Self {
        Self {
            tenants,
            records,
            direction: Direction::Outbound,
        }
    }

    /// A customer message, as a Genesys inbound message to the integration of `tenant`.
    fn customer_message(
        &self,
        envelope: &Envelope,
        tenant: &Tenant,
    ) -> Result<Outcome<()>, StageError> {
        let Event::MetaMessage {
            contact,
            message,
            media,
            ..
        } = &envelope.event
        else {
            return Ok(Outcome::Discard(envelope.event.kind()));
        };
        let normalized = normalize(
            message,
            contact.as_ref(),
            media.as_ref(),
            envelope.received_at,
        )
        .map_err(|err| StageError::Invalid(err.to_string()))?;
        let out = envelope.follow(Event::GenesysInbound {
            integration_id: tenant.genesys.integration_id.clone(),
            wamid: message.id.clone(),
            message: Box::new(normalized),
        });
        Ok(Outcome::Emit(vec![out], ()))
    }

    /// What [`Stage::process`] answers for `envelope` when that needs no wait: an agent's reply,
    /// an event that is discarded, a customer message whose tenant this process has open. `None`
    /// for a status (it reads message tracking) or a tenant still to be read.
    fn at_once(&self, envelope: &Envelope) -> Option<Result<Outcome<()>, StageError>> {
        match (self.direction, &envelope.event) {
            (Direction::Outbound, _) => Some(self.reply(envelope)),
            (Direction::Inbound, Event::MetaStatus { .. }) => None,
            (Direction::Inbound, Event::MetaMessage { .. }) => {
                let tenant = self.tenants.cached(envelope.tenant.as_deref()?)?;
                Some(self.customer_message(envelope, &tenant))
            }
            (Direction::Inbound, event) => Some(Ok(Outcome::Discard(event.kind()))),
        }
    }

    async fn status(
        &self,
        envelope: &Envelope,
        status: &Status,
    ) -> Result<Outcome<()>, StageError> {
        let unavailable =
            |err: wabaflow_store::StoreError| StageError::Unavailable(err.to_string());
        let mut tracking = self
            .records
            .tracking(&status.id)
            .await
            .map_err(unavailable)?;
        if tracking.is_none()
            && let Some(send_key) = &status.biz_opaque_callback_data
        {
            // The first status of a send whose call went unanswered: Meta took it after all.
            tracking = self
                .records
                .confirm_send(send_key, &status.id)
                .await
                .map_err(unavailable)?;
            if tracking.is_some() {
                info!(wamid = %status.id, %send_key, "an unanswered send was confirmed by its status");
            }
        }
        let Some(tracking) = tracking.filter(|t| t.direction.as_deref() == Some("outbound")) else {
            return Ok(Outcome::Discard("untracked_status"));
        };
        if !receipt::advances(tracking.status.as_deref(), &status.status) {
            return Ok(Outcome::Discard("stale_status"));
        }
        self.records
            .track(&status.id, &[("status", status.status.as_str())])
            .await
            .map_err(unavailable)?;
        let (Some(genesys_id), Some(receipt_status)) = (
            tracking.genesys_message_id,
            receipt::receipt_status(&status.status),
        ) else {
            // Sent by the API or a campaign: tracked, but no agent waits for a receipt.
            return Ok(Outcome::Discard("no_receipt"));
        };
        let error = status.errors.as_ref().and_then(|e| e.first());
        let reasons = match error {
            Some(error) if status.status == "failed" => vec![ReceiptReason {
                code: receipt::failure_reason(error.code).into(),
                message: error
                    .error_data
                    .as_ref()
                    .and_then(|d| d.details.clone())
                    .or_else(|| error.message.clone())
                    .or_else(|| error.title.clone())
                    .unwrap_or_else(|| "WhatsApp could not deliver the message".into()),
            }],
            _ => Vec::new(),
        };
        let integration_id = tenant_of(&self.tenants, envelope)
            .await?
            .genesys
            .integration_id
            .clone();
        let receipt = Receipt {
            id: genesys_id,
            channel: ReceiptChannel {
                to: Recipient {
                    id: status.recipient().unwrap_or_default().to_owned(),
                    id_type: None,
                    extra: Default::default(),
                },
                time: status.timestamp.to_datetime().unwrap_or_else(Utc::now),
            },
            status: receipt_status.into(),
            reasons,
            is_final_receipt: matches!(receipt_status, "Read" | "Failed"),
            direction: "Outbound".into(),
        };
        let out = envelope.follow(Event::GenesysReceipt {
            integration_id,
            receipt: Box::new(receipt),
        });
        Ok(Outcome::Emit(vec![out], ()))
    }

    fn reply(&self, envelope: &Envelope) -> Result<Outcome<()>, StageError> {
        let Event::GenesysOutbound {
            message,
            reply: Some(reply),
            media,
            ..
        } = &envelope.event
        else {
            return Err(StageError::Invalid(format!(
                "{} event without its reply mapping on the outbound topic",
                envelope.event.kind()
            )));
        };
        let send_key = format!("send:genesys:{}", message.id);
        let request = reply::to_send_request(message, media.as_ref(), &reply.user, &send_key)
            .map_err(|err| StageError::Invalid(err.to_string()))?;
        let out = envelope.follow(Event::WhatsAppSend {
            phone_number_id: reply.phone_number_id.clone(),
            send_key,
            genesys_message_id: Some(message.id.clone()),
            window_open: reply.window_open,
            request: Box::new(request),
        });
        Ok(Outcome::Emit(vec![out], ()))
    }
}

#[async_trait]
impl Stage for TransformStage {
    type Input = Envelope;
    type Receipt = ();

    fn name(&self) -> &'static str {
        match self.direction {
            Direction::Inbound => "transform",
            Direction::Outbound => "transform-outbound",
        }
    }

    fn input(&self) -> Topic {
        match self.direction {
            Direction::Inbound => WA_INBOUND_ENRICHED,
            Direction::Outbound => GENESYS_OUTBOUND_ENRICHED,
        }
    }

    fn output(&self) -> Option<Topic> {
        Some(match self.direction {
            Direction::Inbound => DELIVERY_GENESYS,
            Direction::Outbound => WA_SEND,
        })
    }

    async fn process(&self, envelope: Envelope, _cx: &Context) -> Result<Outcome<()>, StageError> {
        if let Some(answer) = self.at_once(&envelope) {
            return answer;
        }
        match &envelope.event {
            Event::MetaStatus { status, .. } => self.status(&envelope, status).await,
            _ => {
                let tenant = tenant_of(&self.tenants, &envelope).await?;
                self.customer_message(&envelope, &tenant)
            }
        }
    }

    /// Answers each record it can at once, in turn, as the runner asks for the next result
    /// ([`Self::at_once`]): most of a group are customer messages of tenants already open, which
    /// need no future of their own (docs/benchmarks.md counts what that saves). The others
    /// (statuses, a tenant to read) go on concurrently, as by default, once those are answered.
    fn process_all<'a>(&'a self, events: Vec<(Envelope, Context)>) -> BoxStream<'a, Processed<()>> {
        let mut events = events.into_iter().enumerate();
        let mut waiting = FuturesUnordered::new();
        stream::poll_fn(move |task| {
            for (index, (envelope, cx)) in events.by_ref() {
                match self.at_once(&envelope) {
                    Some(result) => return Poll::Ready(Some((index, result))),
                    None => waiting.push(async move { (index, self.process(envelope, &cx).await) }),
                }
            }
            waiting.poll_next_unpin(task)
        })
        .boxed()
    }
}
