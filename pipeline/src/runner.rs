//! [`StageRunner`]: drives a [`Stage`] from its input topic to its output topic, at least once.
//!
//! The rules it owns (docs/component.md):
//! - records with the same Kafka key (a conversation) are processed one after another, in offset
//!   order; records of different keys are processed concurrently, up to `max_in_flight` in all
//!   ([`KeyedQueue`]), so a wait on one conversation never holds back the others;
//! - records read together (whatever librdkafka had fetched when the runner last read) start
//!   together, as one group, through [`Stage::process_all`], and those finished together are
//!   settled through one [`Stage::acked_all`]: a stage can make one store round trip for the
//!   group, and the runner's own work (futures, offsets) is paid per group rather than per
//!   record. Each record's result still counts on its own: it frees its key when it comes, and a
//!   record that meets an unavailable service is retried alone;
//! - a record's outputs are enqueued to the producer before the next record of its key is
//!   processed (so they keep their order per key), and it is finished only after every output was
//!   acked and [`Stage::acked`] ran; a partition's offset is stored only up to its oldest
//!   unfinished record ([`OffsetTracker`]), so nothing unfinished is ever committed;
//! - offsets are auto-committed from that store every second, synchronously committed when
//!   partitions are revoked and on shutdown;
//! - an undecodable record or a [`StageError::Invalid`] goes to the input's `.dlq` twin with the
//!   original bytes and the reason; [`StageError::Unavailable`] is retried with backoff and never
//!   skipped; [`StageError::Internal`] stops the runner;
//! - when `max_in_flight` records are open (read, offset not yet stored) the runner stops polling
//!   until the oldest is done;
//!   librdkafka's bounded prefetch queue then fills and it stops fetching (backpressure, no drops).
//!   When the producer's queue is full, a record's outputs wait for room, in order ([`Group`]).
//!   Explicit `pause()`/`resume()` was tried and dropped: against tansu 0.6 with librdkafka 2.12
//!   a resumed partition never fetched again;
//! - a failed produce restarts the consumer from the last committed offset.

mod group;

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, SelectAll, StreamExt};
use prometheus::IntCounter;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, TopicPartitionList};
use tracing::{debug, error, info, warn};
use wabaflow_schemas::envelope::EnvelopeError;

use crate::backoff::Backoff;
use crate::config::KafkaConfig;
use crate::consumed::RawRecord;
use crate::kafka::consumer_config;
use crate::keyed::KeyedQueue;
use crate::offsets::OffsetTracker;
use crate::producer::{Pending, ProduceError, Producer, Record};
use crate::shutdown::Shutdown;
use crate::stage::{Context, Input, Origin, Outcome, Stage, StageError};
use crate::telemetry::{Health, metrics};
use group::Group;

/// Header naming the record an output (or a dead letter) was made from.
pub const ORIGIN_HEADER: &str = "wabaflow-origin";
/// Header carrying the reason a record was dead-lettered.
pub const ERROR_HEADER: &str = "wabaflow-error";
/// Header naming the stage that dead-lettered a record.
pub const STAGE_HEADER: &str = "wabaflow-stage";

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("an output was not acknowledged: {0}")]
    Produce(#[from] ProduceError),
    #[error("stage {stage} failed: {reason}")]
    Internal { stage: &'static str, reason: String },
}

pub struct StageRunner<S: Stage> {
    stage: Arc<S>,
    kafka: KafkaConfig,
    producer: Producer,
    health: Health,
    /// The output topic's full name; `None` for a sink.
    output: Option<Arc<str>>,
    /// This stage's counters, looked up once rather than per record.
    consumed: IntCounter,
    emitted: IntCounter,
}

/// What retrying a record came to: its outputs in flight, or `None` when shutdown cut the retry.
type Handled<R> = Result<Option<InFlight<R>>, RunnerError>;

/// Where working on a group of records read together has got to.
enum Progress<R> {
    /// These keys' records are finished with (outputs enqueued, dead-lettered or discarded): each
    /// key's next record may start.
    Done(Vec<LaneKey>),
    /// This record met an unavailable service: it is retried on its own, with backoff, holding
    /// back only its conversation.
    Retry(LaneKey, RawRecord, StageError),
    /// Every record of the group has its result: the finished ones settle together.
    Settle(Vec<InFlight<R>>),
}

/// What the runner does with a record after the stage answered.
enum Finished<R> {
    /// Its outputs (none for a discarded record, the dead letter for an invalid one), to enqueue.
    Outputs(Outputs<R>),
    Retry(StageError),
}

/// A finished record's outputs, enqueued in their order; once all are, the record is in flight.
struct Outputs<R> {
    /// Those not yet enqueued.
    records: std::vec::IntoIter<Record>,
    /// How many of them are the stage's output (counted as emitted once all are enqueued).
    emits: usize,
    acks: Vec<Pending>,
    origin: Origin,
    receipt: Option<R>,
}

impl<R> Outputs<R> {
    /// Enqueues what is left, in order: `false` when the producer's queue filled up first.
    fn enqueue(&mut self, producer: &Producer) -> Result<bool, ProduceError> {
        while let Some(record) = self.records.as_slice().first() {
            match producer.enqueue(record) {
                Ok(ack) => {
                    self.acks.push(ack);
                    self.records.next();
                }
                Err(ProduceError::Backpressure) => return Ok(false),
                Err(err) => return Err(err),
            }
        }
        Ok(true)
    }

    fn in_flight(self) -> InFlight<R> {
        InFlight {
            origin: self.origin,
            acks: self.acks,
            receipt: self.receipt,
        }
    }
}

/// A processed record waiting for its outputs' acks.
struct InFlight<R> {
    origin: Origin,
    acks: Vec<Pending>,
    receipt: Option<R>,
}

impl<S: Stage> StageRunner<S> {
    pub fn new(stage: S, kafka: &KafkaConfig, producer: Producer, health: Health) -> Self {
        let name = [stage.name()];
        Self {
            output: stage
                .output()
                .map(|topic| Arc::from(topic.qualified(&kafka.topic_prefix))),
            consumed: metrics().stage_consumed.with_label_values(&name),
            emitted: metrics().stage_emitted.with_label_values(&name),
            stage: Arc::new(stage),
            kafka: kafka.clone(),
            producer,
            health,
        }
    }

    /// Runs until `shutdown`. Kafka and produce failures restart the consumer (with backoff) from
    /// the last committed offset; an internal error of the stage is returned.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), RunnerError> {
        let key = health_key(self.stage.name());
        restarting(&key, &self.health, &shutdown, || {
            self.run_consumer(&shutdown)
        })
        .await
    }

    async fn run_consumer(&self, shutdown: &Shutdown) -> Result<(), RunnerError> {
        let name = self.stage.name();
        let input = self.stage.input().qualified(&self.kafka.topic_prefix);
        let consumer: StreamConsumer<RunnerContext> =
            consumer_config(&self.kafka, &self.kafka.group_id(name), name)
                .create_with_context(RunnerContext { stage: name })?;
        consumer.subscribe(&[&input])?;
        let topic: Arc<str> = Arc::from(input.as_str());
        // The group join goes on meanwhile; no record is taken before its outputs can be acked.
        tokio::select! {
            _ = self.producer.ready() => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        self.health.set(&health_key(name), true);
        info!(stage = name, topic = %input, "consuming");

        let outcome = self.pump(&consumer, &topic, shutdown).await;
        // Whatever was stored is done, even when the pump failed: commit it.
        commit(&consumer, name);
        self.health.set(&health_key(name), false);
        outcome
    }

    /// Reads records and works on up to `max_in_flight` of them at once, one per conversation key
    /// at a time, storing each partition's offsets in order as records finish. Records read
    /// together start together, as one group ([`Stage::process_all`]).
    async fn pump(
        &self,
        consumer: &StreamConsumer<RunnerContext>,
        topic: &Arc<str>,
        shutdown: &Shutdown,
    ) -> Result<(), RunnerError> {
        let name = self.stage.name();
        let max_in_flight = self.kafka.max_in_flight.max(1);
        let mut keys = KeyedQueue::<LaneKey, RawRecord>::default();
        let mut offsets = OffsetTracker::default();
        // Records read whose key is free: they start together once nothing more can be read at once.
        let mut ready = Vec::new();
        // Groups being processed, each a stream of its records' progress.
        let mut groups = SelectAll::new();
        // Single records being retried after a service was unavailable.
        let mut retrying = FuturesUnordered::new();
        // Records whose outputs are enqueued: awaiting acks and the stage's `acked` hook.
        let mut settling = FuturesUnordered::new();
        let store = |offsets: &mut OffsetTracker, settled: Vec<Origin>| {
            for (origin, offset) in offsets.finish_all(&settled) {
                if let Err(err) = consumer.store_offset(&origin.topic, origin.partition, offset) {
                    // The partition was revoked meanwhile: its new owner reprocesses the record.
                    debug!(stage = name, %origin, error = %err, "offset not stored");
                }
            }
        };

        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        // One stream for the pump's life: each `recv` would register and drop a waker of its own.
        let mut messages = consumer.stream();
        loop {
            let room = offsets.open() < max_in_flight;
            tokio::select! {
                biased;
                () = &mut cancelled => break,
                Some(settled) = settling.next() => store(&mut offsets, settled?),
                Some(progress) = groups.next() => match progress? {
                    Progress::Done(finished) => {
                        for key in finished {
                            if let Some(next) = keys.finish(&key) {
                                ready.push((key, next));
                            }
                        }
                    }
                    Progress::Retry(key, record, err) => {
                        retrying.push(self.retry(key, record, err, shutdown));
                    }
                    Progress::Settle(items) => settling.push(self.settle(items)),
                },
                Some((key, handled)) = retrying.next() => {
                    let Some(item) = handled? else { break };
                    settling.push(self.settle(vec![item]));
                    if let Some(next) = keys.finish(&key) {
                        ready.push((key, next));
                    }
                }
                // Not polling while the window is full is the backpressure: librdkafka's prefetch
                // queue (bounded by `queued.max.messages.kbytes`) fills and it stops fetching.
                Some(message) = messages.next(), if room => {
                    let mut message = Some(message);
                    // What librdkafka already holds is taken too, up to the window, before the
                    // pump goes round again.
                    while let Some(read) = message.take() {
                        let record = match read {
                            Ok(read) => RawRecord::read(&read, topic),
                            Err(err) => {
                                // librdkafka reports broker trouble here and recovers by itself.
                                warn!(stage = name, error = %err, "consumer error");
                                break;
                            }
                        };
                        offsets.start(&record.origin);
                        let key = LaneKey::of(&record);
                        if let Some(record) = keys.admit(key, record) {
                            ready.push((key, record));
                        }
                        if offsets.open() == max_in_flight {
                            metrics().stage_backpressure_waits.with_label_values(&[name]).inc();
                            break;
                        }
                        message = messages.next().now_or_never().flatten();
                    }
                }
                // Nothing more can be read at once: what was read starts, as one group.
                () = std::future::ready(()), if !ready.is_empty() => {
                    groups.push(self.handle_all(std::mem::take(&mut ready), shutdown));
                }
                else => break,
            }
        }

        // Shutdown: start nothing new, let running records finish (a retry wait ends at once),
        // and store what the broker acknowledged. Queued records are redelivered later. Every set
        // is polled together: they share resources (the state store connection's bounded request
        // queue), and a settling hook that was granted a place there but is not polled would hold
        // it while the records being processed wait behind it — until their timeouts.
        loop {
            tokio::select! {
                Some(progress) = groups.next() => {
                    // A record that would be retried is left unfinished, for its redelivery.
                    if let Progress::Settle(items) = progress? {
                        settling.push(self.settle(items));
                    }
                }
                Some((_, handled)) = retrying.next() => {
                    if let Some(item) = handled? {
                        settling.push(self.settle(vec![item]));
                    }
                }
                Some(settled) = settling.next() => store(&mut offsets, settled?),
                else => break,
            }
        }
        Ok(())
    }

    /// Decodes a group of records (each of a different key) and has the stage process them
    /// together; the [`Group`] reports each record's progress as its result comes.
    fn handle_all<'a>(
        &'a self,
        records: Vec<(LaneKey, RawRecord)>,
        shutdown: &'a Shutdown,
    ) -> Group<'a, S> {
        self.consumed.inc_by(records.len() as u64);
        let mut events = Vec::with_capacity(records.len());
        let mut read = Vec::with_capacity(records.len());
        let mut early = Vec::new();
        for (key, record) in records {
            match decode::<S::Input>(&record) {
                Ok(event) => {
                    let origin = record.origin.clone();
                    events.push((event, Context { origin }));
                    read.push(Some((key, record)));
                }
                Err(err) => early.push((key, self.dead_letter(&record, &err.to_string()))),
            }
        }
        Group::new(self, shutdown, self.stage.process_all(events), read, early)
    }

    /// Acts on what the stage said of a record: its outputs, its dead letter, nothing (discarded)
    /// — or a retry. A forwarded record's payload moves to its output.
    fn finish(
        &self,
        record: &mut RawRecord,
        result: Result<Outcome<S::Receipt>, StageError>,
    ) -> Result<Finished<S::Receipt>, RunnerError> {
        let outputs = match result {
            Ok(Outcome::Emit(events, receipt)) => {
                let records = events.iter().map(|event| {
                    (
                        Some(event.conversation_key.as_str().to_owned()),
                        event.to_json(),
                    )
                });
                self.outputs(records, receipt, &record.origin)?
            }
            Ok(Outcome::Forward(receipt)) => {
                let payload = std::mem::take(&mut record.payload);
                let records = std::iter::once((record.take_key_text(), payload));
                self.outputs(records, receipt, &record.origin)?
            }
            Ok(Outcome::Discard(reason)) => {
                metrics()
                    .stage_discarded
                    .with_label_values(&[self.stage.name(), reason])
                    .inc();
                self.nothing(&record.origin, None)
            }
            Err(StageError::Invalid(reason)) => self.dead_letter(record, &reason),
            Err(err @ (StageError::Unavailable(_) | StageError::RetryAfter { .. })) => {
                return Ok(Finished::Retry(err));
            }
            Err(StageError::Internal(reason)) => return Err(self.internal(reason)),
        };
        Ok(Finished::Outputs(outputs))
    }

    /// Retries one record on its own, with backoff, after `err`, until it finishes.
    fn retry<'a>(
        &'a self,
        key: LaneKey,
        mut record: RawRecord,
        err: StageError,
        shutdown: &'a Shutdown,
    ) -> BoxFuture<'a, (LaneKey, Handled<S::Receipt>)> {
        Box::pin(async move {
            let handled = self.retrying(&mut record, err, shutdown).await;
            (key, handled)
        })
    }

    /// `None` when shutdown interrupted the wait.
    async fn retrying(
        &self,
        record: &mut RawRecord,
        mut err: StageError,
        shutdown: &Shutdown,
    ) -> Handled<S::Receipt> {
        let name = self.stage.name();
        let cx = Context {
            origin: record.origin.clone(),
        };
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        loop {
            metrics().stage_retries.with_label_values(&[name]).inc();
            let delay = match &err {
                // Honour the service's wait, growing past it only if it keeps refusing.
                StageError::RetryAfter { after, .. } => backoff.next_delay().max(*after),
                _ => backoff.next_delay(),
            };
            warn!(stage = name, origin = %cx.origin, attempt = backoff.attempts(), ?delay, reason = %err, "retrying");
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                _ = tokio::time::sleep(delay) => {}
            }
            // It decoded when first read; decoding is deterministic, but a failure is still handled.
            let outputs = match decode::<S::Input>(record) {
                Ok(event) => {
                    let result = self.stage.process(event, &cx).await;
                    match self.finish(record, result)? {
                        Finished::Outputs(outputs) => outputs,
                        Finished::Retry(again) => {
                            err = again;
                            continue;
                        }
                    }
                }
                Err(decode) => self.dead_letter(record, &decode.to_string()),
            };
            return self.enqueued(outputs, shutdown).await.map(Some);
        }
    }

    fn internal(&self, reason: String) -> RunnerError {
        RunnerError::Internal {
            stage: self.stage.name(),
            reason,
        }
    }

    /// A processed record's outputs (key, payload), for the stage's output topic.
    fn outputs(
        &self,
        records: impl ExactSizeIterator<Item = (Option<String>, Vec<u8>)>,
        receipt: S::Receipt,
        origin: &Origin,
    ) -> Result<Outputs<S::Receipt>, RunnerError> {
        let emits = records.len();
        let topic = match &self.output {
            Some(topic) => topic,
            None if emits == 0 => return Ok(self.nothing(origin, Some(receipt))),
            None => return Err(self.internal("a sink emitted events".into())),
        };
        let records = records
            .map(|(key, payload)| {
                Record::new(Arc::clone(topic), key, payload).header(ORIGIN_HEADER, origin.text())
            })
            .collect::<Vec<_>>();
        Ok(Outputs {
            records: records.into_iter(),
            emits,
            acks: Vec::with_capacity(emits),
            origin: origin.clone(),
            receipt: Some(receipt),
        })
    }

    /// No outputs: the record is finished as soon as the stage answered.
    fn nothing(&self, origin: &Origin, receipt: Option<S::Receipt>) -> Outputs<S::Receipt> {
        Outputs {
            records: Vec::new().into_iter(),
            emits: 0,
            acks: Vec::new(),
            origin: origin.clone(),
            receipt,
        }
    }

    /// The original record, bytes and headers unchanged, for the input's dead-letter twin.
    fn dead_letter(&self, record: &RawRecord, reason: &str) -> Outputs<S::Receipt> {
        let name = self.stage.name();
        let origin = &record.origin;
        metrics()
            .stage_dead_lettered
            .with_label_values(&[name])
            .inc();
        // What the reason quotes of the record stays out of the log; the header keeps it whole.
        let logged = crate::redact::quoted_values(reason);
        warn!(stage = name, %origin, reason = %logged, "dead-lettering record");
        let mut dead = Record::new(
            self.stage.input().dlq(&self.kafka.topic_prefix),
            record.key_text(),
            record.payload.clone(),
        );
        dead.headers = record
            .headers
            .iter()
            .map(|(name, value)| (Cow::Owned(name.clone()), value.clone()))
            .collect();
        let dead = dead
            .header(ORIGIN_HEADER, origin.text())
            .header(STAGE_HEADER, name)
            .header(ERROR_HEADER, reason);
        Outputs {
            records: vec![dead].into_iter(),
            ..self.nothing(origin, None)
        }
    }

    /// Enqueues what is left of `outputs` now: `false` when the producer's queue is full.
    fn try_enqueue(&self, outputs: &mut Outputs<S::Receipt>) -> Result<bool, RunnerError> {
        let enqueued = outputs.enqueue(&self.producer)?;
        if enqueued {
            self.emitted.inc_by(outputs.emits as u64);
        } else {
            metrics()
                .stage_backpressure
                .with_label_values(&[self.stage.name()])
                .inc();
        }
        Ok(enqueued)
    }

    /// Enqueues `outputs`, waiting while the producer's queue is full (librdkafka drains it
    /// meanwhile).
    async fn enqueued(
        &self,
        mut outputs: Outputs<S::Receipt>,
        shutdown: &Shutdown,
    ) -> Result<InFlight<S::Receipt>, RunnerError> {
        let mut backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(500));
        while !self.try_enqueue(&mut outputs)? {
            tokio::select! {
                _ = shutdown.cancelled() => return Err(ProduceError::Closed.into()),
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
        Ok(outputs.in_flight())
    }

    /// Awaits the acks of records processed together, then runs the stage's `acked_all` hook on
    /// them. Resolves to the records' origins, whose offsets may then be stored; a failed ack
    /// fails the consumer (nothing after it may be committed, so it restarts from the last
    /// committed offset).
    fn settle(
        &self,
        items: Vec<InFlight<S::Receipt>>,
    ) -> BoxFuture<'_, Result<Vec<Origin>, RunnerError>> {
        Box::pin(async move {
            let name = self.stage.name();
            let mut origins = Vec::with_capacity(items.len());
            let mut receipts = Vec::with_capacity(items.len());
            for item in items {
                for ack in item.acks {
                    if let Err(err) = ack.acked().await {
                        error!(stage = name, origin = %item.origin, error = %err, "output not acknowledged");
                        return Err(err.into());
                    }
                }
                if let Some(receipt) = item.receipt {
                    let cx = Context {
                        origin: item.origin.clone(),
                    };
                    receipts.push((receipt, cx));
                }
                origins.push(item.origin);
            }
            if !receipts.is_empty() {
                let records = receipts.len();
                match self.stage.acked_all(receipts).await {
                    Ok(()) => {}
                    Err(StageError::Internal(reason)) => return Err(self.internal(reason)),
                    // The outputs are durable; the hook only narrows replays. If it failed, a
                    // later redelivery of these records is recognised as resumed work and
                    // re-emitted.
                    Err(err) => warn!(stage = name, records, error = %err, "post-ack hook failed"),
                }
            }
            Ok(origins)
        })
    }
}

/// Runs `consumer` until it returns `Ok` (shutdown) or an internal error; Kafka and produce
/// failures restart it, with backoff, from the last committed offset. Shared by every runner.
pub(crate) async fn restarting<F, Fut>(
    component: &str,
    health: &Health,
    shutdown: &Shutdown,
    mut consumer: F,
) -> Result<(), RunnerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), RunnerError>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match consumer().await {
            Ok(()) => return Ok(()),
            Err(err @ RunnerError::Internal { .. }) => return Err(err),
            Err(err) => {
                health.set(component, false);
                warn!(component, error = %err, "restarting consumer from the last committed offset");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
}

/// What orders records: the Kafka key (the conversation), or the partition for unkeyed records.
///
/// A key is held as a 64-bit hash of its bytes rather than a copy of them: it is made for every
/// record and compared in the per-key queue. Two keys whose hashes collide share a lane, so their
/// records are processed one after the other — a loss of concurrency, never of order (records of
/// one key always share a lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LaneKey {
    Key(u64),
    Unkeyed(i32),
}

impl LaneKey {
    fn of(record: &RawRecord) -> Self {
        match &record.key {
            Some(key) => Self::Key(LANE_HASHER.hash_one(key.as_slice())),
            None => Self::Unkeyed(record.origin.partition),
        }
    }
}

/// Hashes keys into lanes; any fixed hasher will do, since a lane only lives in this process.
static LANE_HASHER: foldhash::quality::FixedState = foldhash::quality::FixedState::with_seed(0);

/// What the stage reads of `record`.
fn decode<I: Input>(record: &RawRecord) -> Result<I, EnvelopeError> {
    I::decode(&record.payload, |name| record.header_bytes(name))
}

fn health_key(stage: &str) -> String {
    format!("stage:{stage}")
}

pub(crate) fn commit<C: Consumer<RunnerContext>>(consumer: &C, stage: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(err) => warn!(stage, error = %err, "final commit failed"),
    }
}

/// Commits stored offsets synchronously before partitions move to another instance, so that the
/// new owner starts exactly after what this one finished.
pub struct RunnerContext {
    stage: &'static str,
}

impl RunnerContext {
    pub(crate) fn new(stage: &'static str) -> Self {
        Self { stage }
    }
}

impl ClientContext for RunnerContext {
    /// librdkafka's statistics: the consumer lag of every partition this consumer owns.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        metrics()
            .stage_lag
            .with_label_values(&[self.stage])
            .set(lag);
    }
}

impl ConsumerContext for RunnerContext {
    fn pre_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        if let Rebalance::Revoke(partitions) = rebalance {
            info!(
                stage = self.stage,
                partitions = partitions.count(),
                "partitions revoked; committing"
            );
            commit(consumer, self.stage);
        }
    }

    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        if let Rebalance::Assign(partitions) = rebalance {
            info!(stage = self.stage, partitions = %describe(partitions), "partitions assigned");
        }
    }
}

fn describe(partitions: &TopicPartitionList) -> String {
    partitions
        .elements()
        .iter()
        .map(|p| p.partition().to_string())
        .collect::<Vec<_>>()
        .join(",")
}
