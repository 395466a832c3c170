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
use chrono::Utc;
use wabaflow_pipeline::{BatchSink, RawRecord, StageError};
use wabaflow_schemas::topics::{BILLING_USAGE, Topic, WA_INBOUND_MAPPED, WA_SEND_RESULTS};

use super::rows::Analytics;
use super::service::{ClickHouseClient, ClickHouseError, JsonEachRow};

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
        // Each record's row is encoded as soon as it is read: the batch is never held a second
        // time as decoded envelopes and rows (two batch-sized vectors, megabytes of fresh pages
        // per batch, 17 % of the sink's profile in page faults).
        let mut tables: BTreeMap<&'static str, JsonEachRow> = BTreeMap::new();
        for record in batch {
            let analytics = match Analytics::decode(&record.payload) {
                Ok(analytics) => analytics,
                // Our own topics hold our own envelopes; one that does not decode was
                // dead-lettered upstream already and is not analytics data.
                Err(err) => {
                    tracing::warn!(origin = %record.origin, error = %err, "skipping an undecodable record");
                    continue;
                }
            };
            if let Some(row) = analytics.row(now) {
                tables
                    .entry(row.table())
                    .or_insert_with(|| JsonEachRow::with_capacity(batch.len() * ROW_BYTES))
                    .push(&row)
                    .map_err(stage_error)?;
            }
        }
        for (table, rows) in tables {
            self.client
                .insert_rows(table, rows)
                .await
                .map_err(stage_error)?;
        }
        Ok(())
    }
}

/// Room reserved per record in a table's body: more than a row takes, so the body is never copied
/// to grow (reserved pages cost nothing until written).
const ROW_BYTES: usize = 512;

/// Unavailable is retried; a refusal is our bug and stops the sink.
fn stage_error(err: ClickHouseError) -> StageError {
    match err {
        ClickHouseError::Unavailable(reason) => StageError::Unavailable(reason),
        refused => StageError::Internal(refused.to_string()),
    }
}
