//! [`BatchRunner`]: drives a [`BatchSink`] — a sink that writes many records at once (the S3
//! archive now, ClickHouse next) — at least once, with offsets that never pass an unwritten record.
//!
//! Records accumulate until `max_records` or until the oldest is `max_age` old; the batch is then
//! written while the next one gathers — one write at a time, so batches are written and their
//! offsets stored in order. A write is retried with backoff while the service is unavailable (once
//! the next batch is full too the runner stops reading: backpressure, nothing skipped), and only
//! after it succeeded are the offsets of its records stored (auto-committed every second,
//! committed synchronously on revoke and shutdown). A crash replays the records since the last
//! commit, so a sink's write must be idempotent for the same records — the archive writes the
//! same object key again.
//!
//! A retry that lasts longer than `max.poll.interval.ms` (5 minutes) makes librdkafka leave the
//! group; the partitions then move, and the records are written by their next owner.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use wabaflow_schemas::Topic;

use crate::backoff::Backoff;
use crate::config::KafkaConfig;
use crate::kafka::consumer_config;
use crate::runner::{RunnerContext, RunnerError, commit, restarting};
use crate::shutdown::Shutdown;
use crate::stage::{Origin, StageError};
use crate::telemetry::{Health, metrics};

/// A record as consumed, bytes and headers untouched.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub origin: Origin,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RawRecord {
    fn from_message(message: &BorrowedMessage<'_>) -> Self {
        Self {
            origin: Origin {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
            },
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The first header called `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }
}

#[async_trait]
pub trait BatchSink: Send + Sync + 'static {
    /// A noun: `archive`, `clickhouse`. Names the consumer group and metric labels.
    fn name(&self) -> &'static str;
    fn input(&self) -> Topic;
    /// Writes every record of `batch`. Must be idempotent: after a crash the same records come
    /// again. [`StageError::Unavailable`] / [`StageError::RetryAfter`] are retried; anything
    /// else stops the runner (a batch sink has no dead-letter path for single records).
    async fn write(&self, batch: &[RawRecord]) -> Result<(), StageError>;
}

/// When a batch is written.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_records: usize,
    pub max_age: Duration,
}

pub struct BatchRunner<S: BatchSink> {
    sink: Arc<S>,
    kafka: KafkaConfig,
    limits: BatchLimits,
    health: Health,
}

impl<S: BatchSink> BatchRunner<S> {
    pub fn new(sink: S, kafka: &KafkaConfig, limits: BatchLimits, health: Health) -> Self {
        Self {
            sink: Arc::new(sink),
            kafka: kafka.clone(),
            limits,
            health,
        }
    }

    /// Runs until `shutdown`; Kafka errors restart the consumer from the last commit.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), RunnerError> {
        let key = health_key(self.sink.name());
        restarting(&key, &self.health, &shutdown, || {
            self.run_consumer(&shutdown)
        })
        .await
    }

    async fn run_consumer(&self, shutdown: &Shutdown) -> Result<(), RunnerError> {
        let name = self.sink.name();
        let input = self.sink.input().qualified(&self.kafka.topic_prefix);
        let consumer: StreamConsumer<RunnerContext> =
            consumer_config(&self.kafka, &self.kafka.group_id(name), name)
                .create_with_context(RunnerContext::new(name))?;
        consumer.subscribe(&[&input])?;
        self.health.set(&health_key(name), true);
        info!(sink = name, topic = %input, "consuming in batches");

        let mut batch: Vec<RawRecord> = Vec::new();
        let mut oldest: Option<Instant> = None;
        // The previous batch's write, running while the next batch is gathered. One at a time,
        // so batches are written, and their offsets stored, in order.
        let mut writing: Option<BoxFuture<'_, Result<bool, RunnerError>>> = None;
        let outcome = loop {
            let deadline = oldest.map(|at| at + self.limits.max_age);
            let trigger = tokio::select! {
                biased;
                _ = shutdown.cancelled() => "shutdown",
                written = async { writing.as_mut().expect("guarded").await }, if writing.is_some() => {
                    writing = None;
                    match written {
                        Ok(true) => continue,
                        // Interrupted by shutdown: that batch stays unwritten and uncommitted.
                        Ok(false) => break Ok(()),
                        Err(err) => break Err(err),
                    }
                }
                _ = sleep_until(deadline) => "age",
                message = consumer.recv() => match message {
                    Ok(message) => {
                        metrics().stage_consumed.with_label_values(&[name]).inc();
                        batch.push(RawRecord::from_message(&message));
                        oldest.get_or_insert_with(Instant::now);
                        if batch.len() < self.limits.max_records {
                            continue;
                        }
                        "size"
                    }
                    Err(err) => {
                        warn!(sink = name, error = %err, "consumer error");
                        continue;
                    }
                },
            };
            // A batch is ready: wait for the write before it (reading stops meanwhile), then
            // write this one while the next is gathered.
            if let Some(previous) = writing.take() {
                match previous.await {
                    Ok(true) => {}
                    Ok(false) => break Ok(()),
                    Err(err) => break Err(err),
                }
            }
            if trigger == "shutdown" {
                if batch.is_empty() {
                    break Ok(());
                }
                match self.flush(&consumer, &batch, trigger, shutdown).await {
                    Ok(true) => {}
                    Ok(false) => {
                        debug!(
                            sink = name,
                            records = batch.len(),
                            "shutdown left a batch unwritten"
                        )
                    }
                    Err(err) => break Err(err),
                }
                break Ok(());
            }
            let ready = std::mem::take(&mut batch);
            oldest = None;
            let consumer = &consumer;
            writing = Some(Box::pin(async move {
                self.flush(consumer, &ready, trigger, shutdown).await
            }));
        };
        commit(&consumer, name);
        self.health.set(&health_key(name), false);
        outcome
    }

    /// Writes the batch until it succeeds, then stores its offsets. `false` if shutdown came first.
    async fn flush(
        &self,
        consumer: &StreamConsumer<RunnerContext>,
        batch: &[RawRecord],
        trigger: &'static str,
        shutdown: &Shutdown,
    ) -> Result<bool, RunnerError> {
        let name = self.sink.name();
        let m = metrics();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            let delay = match self.sink.write(batch).await {
                Ok(()) => break,
                Err(StageError::Unavailable(reason)) => {
                    warn!(sink = name, records = batch.len(), %reason, "batch write failed; retrying");
                    backoff.next_delay()
                }
                Err(StageError::RetryAfter { reason, after }) => {
                    warn!(sink = name, records = batch.len(), %reason, "batch write throttled");
                    backoff.next_delay().max(after)
                }
                Err(err) => {
                    return Err(RunnerError::Internal {
                        stage: name,
                        reason: err.to_string(),
                    });
                }
            };
            m.stage_retries.with_label_values(&[name]).inc();
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(false),
                _ = tokio::time::sleep(delay) => {}
            }
        }
        m.batch_flushes.with_label_values(&[name, trigger]).inc();
        m.batch_records
            .with_label_values(&[name])
            .inc_by(batch.len() as u64);
        for record in batch {
            let Origin {
                topic,
                partition,
                offset,
            } = &record.origin;
            // Fails only for a partition revoked meanwhile; its new owner writes it again.
            let _ = consumer.store_offset(topic, *partition, *offset);
        }
        Ok(true)
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn health_key(sink: &str) -> String {
    format!("sink:{sink}")
}
