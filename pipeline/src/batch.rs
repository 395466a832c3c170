//! [`BatchRunner`]: drives a [`BatchSink`] — a sink that writes many records at once (the S3
//! archive, ClickHouse) — at least once, with offsets that never pass an unwritten record.
//!
//! Records accumulate until `max_records` or until the oldest is `max_age` old, each handed to the
//! sink as it is read ([`BatchSink::add`]: ClickHouse encodes its row there, so a batch holds the
//! bodies it will send and not also the records they were made from); the batch is then written
//! on its own task while the next one gathers, up to two writes at once. A write is retried with
//! backoff while the service is unavailable (once both writes are pending and the next batch is
//! full, the runner stops reading: backpressure, nothing skipped), and only after it and every
//! batch before it succeeded are the offsets of its records stored (auto-committed every second,
//! committed synchronously on revoke and shutdown). A crash replays the records since the last
//! commit, so a sink's write must be idempotent for the same records — the archive writes the
//! same object key again.
//!
//! A retry that lasts longer than `max.poll.interval.ms` (5 minutes) makes librdkafka leave the
//! group; the partitions then move, and the records are written by their next owner.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use wabaflow_schemas::Topic;

use crate::backoff::Backoff;
use crate::config::KafkaConfig;
use crate::consumed::RawRecord;
use crate::kafka::consumer_config;
use crate::runner::{RunnerContext, RunnerError, commit, restarting};
use crate::shutdown::Shutdown;
use crate::stage::{Origin, StageError};
use crate::telemetry::{Health, metrics};

#[async_trait]
pub trait BatchSink: Send + Sync + 'static {
    /// What a batch holds from its first record until it is written: what the write will send
    /// (ClickHouse's request bodies), or the records themselves when the write needs them whole.
    type Batch: Send + 'static;

    /// A noun: `archive`, `clickhouse`. Names the consumer group and metric labels.
    fn name(&self) -> &'static str;
    fn input(&self) -> Topic;
    /// An empty batch, for up to `records` records.
    fn batch(&self, records: usize) -> Self::Batch;
    /// Takes one record into `batch` as it is read. A record the sink cannot use is skipped here
    /// with a warning; an error is our own bug and stops the runner.
    fn add(&self, batch: &mut Self::Batch, record: RawRecord) -> Result<(), StageError>;
    /// Writes `batch`; called again with the same batch while the service is unavailable
    /// ([`StageError::Unavailable`], [`StageError::RetryAfter`]); anything else stops the runner
    /// (a batch sink has no dead-letter path for single records). Must be idempotent: after a
    /// crash the same records come again, in a batch of their own.
    async fn write(&self, batch: &mut Self::Batch) -> Result<(), StageError>;

    /// `records` gathered into one batch, as the runner would (tools and tests).
    fn gather(&self, records: Vec<RawRecord>) -> Result<Self::Batch, StageError> {
        let mut batch = self.batch(records.len());
        for record in records {
            self.add(&mut batch, record)?;
        }
        Ok(batch)
    }
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
                .set("queued.max.messages.kbytes", PREFETCH_KBYTES)
                .create_with_context(RunnerContext::new(name))?;
        consumer.subscribe(&[&input])?;
        let topic: Arc<str> = Arc::from(input.as_str());
        self.health.set(&health_key(name), true);
        info!(sink = name, topic = %input, "consuming in batches");

        let consumed = metrics().stage_consumed.with_label_values(&[name]);
        let mut batch = Gathering::new(self.sink.batch(self.limits.max_records));
        let mut oldest: Option<Instant> = None;
        // Batches being written, on their own tasks, oldest first.
        let mut writing: VecDeque<JoinHandle<Written>> = VecDeque::new();
        let mut offsets = Offsets {
            consumer: &consumer,
            sink: name,
            gap: false,
        };
        let outcome = loop {
            let deadline = oldest.map(|at| at + self.limits.max_age);
            let trigger = tokio::select! {
                biased;
                _ = shutdown.cancelled() => "shutdown",
                // The oldest write ended.
                written = async { writing.front_mut().expect("guarded").await },
                    if !writing.is_empty() =>
                {
                    writing.pop_front();
                    match offsets.store(written) {
                        Ok(true) => continue,
                        Ok(false) => break Ok(()),
                        Err(err) => break Err(err),
                    }
                }
                _ = sleep_until(deadline) => "age",
                message = consumer.recv() => match message {
                    Ok(message) => {
                        consumed.inc();
                        let record = RawRecord::read(&message, &topic);
                        batch.read(&record.origin);
                        if let Err(err) = self.sink.add(&mut batch.sink, record) {
                            break Err(RunnerError::Internal {
                                stage: name,
                                reason: err.to_string(),
                            });
                        }
                        oldest.get_or_insert_with(Instant::now);
                        if batch.records < self.limits.max_records {
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
            // A batch is ready. At the limit of writes in flight (or at shutdown, every write),
            // the oldest is waited for first: reading stops meanwhile, nothing is skipped.
            let wait_for = match trigger {
                "shutdown" => 0,
                _ => WRITES_IN_FLIGHT - 1,
            };
            let mut settled = Ok(true);
            while writing.len() > wait_for
                && let Ok(true) = settled
                && let Some(oldest) = writing.pop_front()
            {
                settled = offsets.store(oldest.await);
            }
            match settled {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(err) => break Err(err),
            }
            let ready = std::mem::replace(
                &mut batch,
                Gathering::new(self.sink.batch(self.limits.max_records)),
            );
            oldest = None;
            if ready.records == 0 {
                break Ok(());
            }
            let write = tokio::spawn(write(self.sink.clone(), ready, trigger, shutdown.clone()));
            if trigger == "shutdown" {
                // The last batch: written now if the service takes it at once, else left for the
                // next owner.
                let written = write.await;
                break offsets.store(written).map(|_| ());
            }
            writing.push_back(write);
        };
        // After a failure the writes still running are abandoned (the restarted consumer reads
        // their records again); at shutdown they are waited for (each returns once shutdown
        // stops its retries), their offsets stored only if every batch before them was.
        for still in writing {
            if outcome.is_err() {
                still.abort();
            } else if let Err(err) = offsets.store(still.await) {
                warn!(sink = name, error = %err, "a batch write failed while stopping");
            }
        }
        commit(&consumer, name);
        self.health.set(&health_key(name), false);
        outcome
    }
}

/// librdkafka's prefetch queue of a batch runner's consumer, a quarter of a stage runner's: the
/// batch being gathered is a sink's buffer, and a sink catching up on a backlog at full speed held
/// 16 MiB of fetched records on top of its batches (`sink:clickhouse` with 25 000-row batches:
/// 62 against 85 MiB at its peak; docs/benchmarks-log.md, 2 December).
const PREFETCH_KBYTES: &str = "4096";

/// How many batches are written at once: one whose write the service is working on while the
/// next is sent, as the next after them gathers.
const WRITES_IN_FLIGHT: usize = 2;

/// A batch being gathered: the sink's part, and what the runner keeps of its records — how many
/// there are and the last offset read of each partition, which is all storing offsets needs.
struct Gathering<B> {
    sink: B,
    records: usize,
    last: Vec<Origin>,
}

impl<B> Gathering<B> {
    fn new(sink: B) -> Self {
        Self {
            sink,
            records: 0,
            last: Vec::new(),
        }
    }

    /// A partition's records are read in offset order: the latest is its last.
    fn read(&mut self, origin: &Origin) {
        self.records += 1;
        match self
            .last
            .iter_mut()
            .find(|seen| seen.same_partition(origin))
        {
            Some(seen) => seen.offset = origin.offset,
            None => self.last.push(origin.clone()),
        }
    }
}

/// A batch whose write ended: `Ok(true)` written, `Ok(false)` stopped by shutdown.
struct Written {
    records: usize,
    /// The last record of each partition in the batch.
    last: Vec<Origin>,
    outcome: Result<bool, RunnerError>,
}

/// Writes the batch until it succeeds. `false` if shutdown came first.
async fn write<S: BatchSink>(
    sink: Arc<S>,
    batch: Gathering<S::Batch>,
    trigger: &'static str,
    shutdown: Shutdown,
) -> Written {
    let name = sink.name();
    let m = metrics();
    let Gathering {
        sink: mut written,
        records,
        last,
    } = batch;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let outcome = loop {
        let delay = match sink.write(&mut written).await {
            Ok(()) => break Ok(true),
            Err(StageError::Unavailable(reason)) => {
                warn!(sink = name, records, %reason, "batch write failed; retrying");
                backoff.next_delay()
            }
            Err(StageError::RetryAfter { reason, after }) => {
                warn!(sink = name, records, %reason, "batch write throttled");
                backoff.next_delay().max(after)
            }
            Err(err) => {
                break Err(RunnerError::Internal {
                    stage: name,
                    reason: err.to_string(),
                });
            }
        };
        m.stage_retries.with_label_values(&[name]).inc();
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(false),
            _ = tokio::time::sleep(delay) => {}
        }
    };
    if let Ok(true) = outcome {
        m.batch_flushes.with_label_values(&[name, trigger]).inc();
        m.batch_records
            .with_label_values(&[name])
            .inc_by(records as u64);
    }
    Written {
        records,
        last,
        outcome,
    }
}

/// Stores the offsets of written batches, given in batch order, until one is not written: from
/// that gap on nothing is stored, so a commit never passes an unwritten record.
struct Offsets<'c> {
    consumer: &'c StreamConsumer<RunnerContext>,
    sink: &'static str,
    gap: bool,
}

impl Offsets<'_> {
    /// `true` if the batch's offsets were stored; `false` after a gap (shutdown left this batch,
    /// or one before it, unwritten).
    fn store(&mut self, written: Result<Written, JoinError>) -> Result<bool, RunnerError> {
        let sink = self.sink;
        let written = written.map_err(|err| RunnerError::Internal {
            stage: sink,
            reason: format!("batch write task failed: {err}"),
        });
        let last = match written {
            Ok(Written {
                last,
                outcome: Ok(true),
                ..
            }) if !self.gap => last,
            Ok(Written {
                records,
                outcome: Ok(_),
                ..
            }) => {
                debug!(sink, records, "batch unwritten, or after one that is");
                self.gap = true;
                return Ok(false);
            }
            Ok(Written {
                outcome: Err(err), ..
            })
            | Err(err) => {
                self.gap = true;
                return Err(err);
            }
        };
        for Origin {
            topic,
            partition,
            offset,
        } in last
        {
            // Fails only for a partition revoked meanwhile; its new owner writes it again.
            let _ = self.consumer.store_offset(&topic, partition, offset);
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
