//! `sink:archive`: raw webhook bodies (`webhooks.raw.v1`) → S3, in batches.
//!
//! A batch becomes one object per (bucket, tenant, partition): Meta bodies go to bucket
//! `webhooks-inbound`, Genesys bodies to `webhooks-outbound`. The key is
//! `{tenant}/{yyyy}/{mm}/{dd}/{hh}/{partition}-{first offset}.ndjson` — time from the first
//! record's `wabaflow-received-at`, tenant from `wabaflow-tenant` (`_unrouted` when the webhook
//! URL named none). Each line is one request: `{request_id, received_at, source, signature,
//! body}` with the body exactly as received (a JSON string of the raw bytes, so its signature can
//! be checked again). Objects are named after their first offset, so a batch replayed after a
//! crash overwrites the same object instead of writing a second copy.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::json;
use wabaflow_pipeline::{BatchSink, RawRecord, StageError};
use wabaflow_schemas::Topic;
use wabaflow_schemas::topics::WEBHOOKS_RAW;
use wabaflow_store::objects::{ObjectError, ObjectStore};

/// Raw Meta webhooks.
pub const WEBHOOKS_INBOUND_BUCKET: &str = "webhooks-inbound";
/// Raw Genesys webhooks.
pub const WEBHOOKS_OUTBOUND_BUCKET: &str = "webhooks-outbound";

/// Headers the edges put on raw records.
pub const SOURCE_HEADER: &str = "wabaflow-source";
pub const RECEIVED_AT_HEADER: &str = "wabaflow-received-at";
pub const TENANT_HEADER: &str = "wabaflow-tenant";
const SIGNATURE_HEADER: &str = "x-hub-signature-256";

pub struct ArchiveSink {
    objects: Arc<dyn ObjectStore>,
}

impl ArchiveSink {
    pub fn new(objects: Arc<dyn ObjectStore>) -> Self {
        Self { objects }
    }
}

/// Where one record goes.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Group {
    bucket: &'static str,
    tenant: String,
    partition: i32,
}

#[async_trait]
impl BatchSink for ArchiveSink {
    type Batch = Vec<RawRecord>;

    fn name(&self) -> &'static str {
        "archive"
    }

    fn input(&self) -> Topic {
        WEBHOOKS_RAW
    }

    fn batch(&self, records: usize) -> Vec<RawRecord> {
        Vec::with_capacity(records)
    }

    /// The archive writes each record whole: the batch keeps them.
    fn add(&self, batch: &mut Vec<RawRecord>, record: RawRecord) -> Result<(), StageError> {
        batch.push(record);
        Ok(())
    }

    async fn write(&self, batch: &mut Vec<RawRecord>) -> Result<(), StageError> {
        let mut groups: BTreeMap<Group, Vec<&RawRecord>> = BTreeMap::new();
        for record in batch.iter() {
            let bucket = match record.header(SOURCE_HEADER) {
                Some("genesys") => WEBHOOKS_OUTBOUND_BUCKET,
                _ => WEBHOOKS_INBOUND_BUCKET,
            };
            let tenant = record
                .header(TENANT_HEADER)
                .filter(|t| !t.is_empty() && !t.contains('/'))
                .unwrap_or("_unrouted")
                .to_owned();
            groups
                .entry(Group {
                    bucket,
                    tenant,
                    partition: record.origin.partition,
                })
                .or_default()
                .push(record);
        }
        for (group, records) in groups {
            let first = records[0];
            let at = first
                .header(RECEIVED_AT_HEADER)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(Utc::now);
            let key = format!(
                "{}/{:04}/{:02}/{:02}/{:02}/{}-{:020}.ndjson",
                group.tenant,
                at.year(),
                at.month(),
                at.day(),
                at.hour(),
                group.partition,
                first.origin.offset
            );
            let mut body = Vec::new();
            for record in records {
                let line = json!({
                    "request_id": record.key.as_deref().map(String::from_utf8_lossy),
                    "received_at": record.header(RECEIVED_AT_HEADER),
                    "source": record.header(SOURCE_HEADER),
                    "signature": record.header(SIGNATURE_HEADER),
                    "body": String::from_utf8_lossy(&record.payload),
                });
                body.extend_from_slice(line.to_string().as_bytes());
                body.push(b'\n');
            }
            self.objects
                .put(group.bucket, &key, body.into(), "application/x-ndjson")
                .await
                .map_err(|err| match err {
                    ObjectError::Unavailable(reason) => StageError::Unavailable(reason),
                    other => StageError::Internal(other.to_string()),
                })?;
        }
        Ok(())
    }
}
