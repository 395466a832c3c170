//! `sink:clickhouse`: three batch feeds into the analytics tables.
//!
//! - `clickhouse-inbound` reads `wa.inbound.mapped.v1`: customer messages → `message_events`
//!   (direction `inbound`), statuses → `status_events` (with error code and pricing);
//! - `clickhouse-results` reads `wa.send-results.v1`: accepted sends → `message_events`
//!   (direction `outbound`, the Genesys message id alongside);
//! - `clickhouse-usage` reads `billing.usage.v1` → `usage`.
//!
//! A batch is inserted with one request per table; the runner retries while ClickHouse is away
//! and stores offsets only after every insert succeeded. A replay inserts the same rows again:
//! see `migrations/0001_events.sql` for why no dashboard number counts them twice.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wabaflow_pipeline::{BatchSink, RawRecord, StageError};
use wabaflow_schemas::topics::{BILLING_USAGE, Topic, WA_INBOUND_MAPPED, WA_SEND_RESULTS};
use wabaflow_schemas::{Envelope, Event, SendOutcome};

use super::service::{ClickHouseClient, ClickHouseError};

/// Which topic a sink instance reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    Inbound,
    Results,
    Usage,
}

impl Feed {
    pub const ALL: [Feed; 3] = [Feed::Inbound, Feed::Results, Feed::Usage];
}

pub struct ClickHouseSink {
    client: ClickHouseClient,
    feed: Feed,
}

impl ClickHouseSink {
    pub fn new(client: ClickHouseClient, feed: Feed) -> Self {
        Self { client, feed }
    }
}

/// ClickHouse's `DateTime` text form (UTC; the server's zone must be UTC, as in the images).
fn datetime(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// The rows one envelope becomes, by table.
pub fn rows(envelope: &Envelope, ingested_at: DateTime<Utc>) -> Vec<(&'static str, Value)> {
    let tenant = envelope.tenant.clone().unwrap_or_default();
    let occurred = envelope.occurred_at.unwrap_or(envelope.received_at);
    let base = |extra: Value| {
        let mut row = json!({
            "event_id": envelope.event_id.to_string(),
            "tenant": tenant,
            "conversation_key": envelope.conversation_key.as_str(),
            "occurred_at": datetime(occurred),
            "ingested_at": datetime(ingested_at),
            "day": day(occurred),
        });
        if let (Some(row), Value::Object(extra)) = (row.as_object_mut(), extra) {
            row.extend(extra);
        }
        row
    };
    match &envelope.event {
        Event::MetaMessage {
            phone_number_id,
            message,
            ..
        } => vec![(
            "message_events",
            base(json!({
                "phone_number_id": phone_number_id, "direction": "inbound",
                "message_type": message.kind, "wamid": message.id,
                "genesys_message_id": "", "campaign": "",
            })),
        )],
        Event::MetaStatus {
            phone_number_id,
            status,
            ..
        } => {
            let pricing = status.pricing.as_ref();
            let error_code = status
                .errors
                .as_ref()
                .and_then(|e| e.first())
                .and_then(|e| e.code)
                .unwrap_or(0);
            vec![(
                "status_events",
                base(json!({
                    "phone_number_id": phone_number_id, "wamid": status.id, "status": status.status,
                    "error_code": error_code,
                    "pricing_model": pricing.and_then(|p| p.pricing_model.clone()).unwrap_or_default(),
                    "pricing_category": pricing.and_then(|p| p.category.clone()).unwrap_or_default(),
                    "pricing_type": pricing.and_then(|p| p.kind.clone()).unwrap_or_default(),
                    "billable": u8::from(pricing.and_then(|p| p.billable).unwrap_or(false)),
                })),
            )]
        }
        Event::SendResult {
            phone_number_id,
            genesys_message_id,
            message_type,
            wamid: Some(wamid),
            outcome: SendOutcome::Accepted { .. },
            ..
        } => vec![(
            "message_events",
            base(json!({
                "phone_number_id": phone_number_id, "direction": "outbound",
                "message_type": message_type, "wamid": wamid,
                "genesys_message_id": genesys_message_id.clone().unwrap_or_default(), "campaign": "",
            })),
        )],
        Event::Usage { usage } => vec![(
            "usage",
            json!({
                "unit": match &usage.conversation_id {
                    Some(id) => format!("conversation:{id}"),
                    None => format!("message:{}", usage.wamid),
                },
                "tenant": usage.tenant, "phone_number_id": usage.phone_number_id,
                "wamid": usage.wamid, "conversation_id": usage.conversation_id.clone().unwrap_or_default(),
                "pricing_model": usage.pricing_model, "category": usage.category,
                "pricing_type": usage.pricing_type.clone().unwrap_or_default(),
                "billable": u8::from(usage.billable), "country": usage.country,
                "cost_micros": usage.cost_micros, "currency": usage.currency,
                "occurred_at": datetime(usage.occurred_at), "ingested_at": datetime(ingested_at),
                "day": usage.day.to_string(),
            }),
        )],
        _ => Vec::new(),
    }
}

#[async_trait]
impl BatchSink for ClickHouseSink {
    fn name(&self) -> &'static str {
        match self.feed {
            Feed::Inbound => "clickhouse-inbound",
            Feed::Results => "clickhouse-results",
            Feed::Usage => "clickhouse-usage",
        }
    }

    fn input(&self) -> Topic {
        match self.feed {
            Feed::Inbound => WA_INBOUND_MAPPED,
            Feed::Results => WA_SEND_RESULTS,
            Feed::Usage => BILLING_USAGE,
        }
    }

    async fn write(&self, batch: &[RawRecord]) -> Result<(), StageError> {
        let now = Utc::now();
        let mut tables: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
        for record in batch {
            match Envelope::from_json(&record.payload) {
                Ok(envelope) => {
                    for (table, row) in rows(&envelope, now) {
                        tables.entry(table).or_default().push(row);
                    }
                }
                // Our own topics hold our own envelopes; one that does not decode was dead-lettered
                // upstream already and is not analytics data.
                Err(err) => {
                    tracing::warn!(origin = %record.origin, error = %err, "skipping an undecodable record")
                }
            }
        }
        for (table, rows) in tables {
            self.client
                .insert(table, &rows)
                .await
                .map_err(|err| match err {
                    ClickHouseError::Unavailable(reason) => StageError::Unavailable(reason),
                    refused => StageError::Internal(refused.to_string()),
                })?;
        }
        Ok(())
    }
}
