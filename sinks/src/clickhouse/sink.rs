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

/// A batch of the analytics tables' rows, encoded as each record is read.
pub struct Rows {
    /// When the batch's first record was read: every row's `ingested_at`, the version a replay's
    /// copy replaces.
    now: Option<DateTime<Utc>>,
    /// Bytes reserved for each table's body.
    room: usize,
    tables: BTreeMap<&'static str, JsonEachRow>,
}

#[async_trait]
impl BatchSink for ClickHouseSink {
    type Batch = Rows;

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

    fn batch(&self, records: usize) -> Rows {
        Rows {
            now: None,
            room: records * ROW_BYTES,
            tables: BTreeMap::new(),
        }
    }

    /// Encodes the record's row at once: a batch holds its request bodies, not also the records
    /// (the envelopes are larger than their rows), nor decoded envelopes and rows (two
    /// batch-sized vectors, megabytes of fresh pages per batch, 17 % of the sink's profile in
    /// page faults when it did).
    fn add(&self, batch: &mut Rows, record: RawRecord) -> Result<(), StageError> {
        let analytics = match Analytics::decode(&record.payload) {
            Ok(analytics) => analytics,
            // Our own topics hold our own envelopes; one that does not decode was dead-lettered
            // upstream already and is not analytics data.
            Err(err) => {
                let error = wabaflow_pipeline::redact::quoted_values(&err.to_string()).into_owned();
                tracing::warn!(origin = %record.origin, %error, "skipping an undecodable record");
                return Ok(());
            }
        };
        let now = *batch.now.get_or_insert_with(Utc::now);
        if let Some(row) = analytics.row(now) {
            let room = batch.room;
            batch
                .tables
                .entry(row.table())
                .or_insert_with(|| JsonEachRow::with_capacity(room))
                .push(&row)
                .map_err(|err| StageError::Internal(err.to_string()))?;
        }
        Ok(())
    }

    async fn write(&self, batch: &mut Rows) -> Result<(), StageError> {
        for (table, rows) in &mut batch.tables {
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
