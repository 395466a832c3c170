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

use super::rows::{Analytics, Row};
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
        let envelopes: Vec<Analytics<'_>> = batch
            .iter()
            .filter_map(|record| match Analytics::decode(&record.payload) {
                Ok(envelope) => Some(envelope),
                // Our own topics hold our own envelopes; one that does not decode was
                // dead-lettered upstream already and is not analytics data.
                Err(err) => {
                    tracing::warn!(origin = %record.origin, error = %err, "skipping an undecodable record");
                    None
                }
            })
            .collect();
        let mut tables: BTreeMap<&'static str, Vec<Row<'_>>> = BTreeMap::new();
        for row in envelopes.iter().filter_map(|envelope| envelope.row(now)) {
            tables.entry(row.table()).or_default().push(row);
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
