//! The idempotent producer every role writes through.
//!
//! [`Producer::send_all`] enqueues a set of records and resolves when the broker acked *every* one
//! of them — the "durable before acknowledged" rule of the edges and the "offsets after outputs"
//! rule of the runners both rest on it. A full local queue is reported as
//! [`ProduceError::Backpressure`] at once rather than waited out.
//!
//! An idempotent producer can write only once the broker gave it a producer id, which librdkafka
//! asks for half a second after start; until then every record waits. [`Producer::ready`] resolves
//! once the id is assigned (read from librdkafka's statistics), so a runner does not take a window
//! of records it cannot yet acknowledge, and `/readyz` does not send traffic to an edge that would
//! hold it.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use futures::future::try_join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::{ClientConfig, ClientContext};
use serde::Deserialize;
use tokio::sync::watch;

use wabaflow_schemas::{Envelope, IDEMPOTENCY_HEADER};

use crate::config::KafkaConfig;
use crate::kafka::producer_config;

/// One record to write.
#[derive(Debug, Clone)]
pub struct Record {
    /// The full topic name (already prefixed).
    pub topic: Arc<str>,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    /// Names are nearly always wabaflow's own constants, borrowed rather than copied per record.
    pub headers: Vec<(Cow<'static, str>, Vec<u8>)>,
}

impl Record {
    pub fn new(topic: impl Into<Arc<str>>, key: Option<String>, payload: Vec<u8>) -> Self {
        Self {
            topic: topic.into(),
            key,
            payload,
            headers: Vec::new(),
        }
    }

    /// An event as it enters the pipeline: keyed by its conversation, with its idempotency key,
    /// when it has one, in [`IDEMPOTENCY_HEADER`] (dedupe then reads no JSON).
    pub fn event(topic: impl Into<Arc<str>>, event: &Envelope) -> Self {
        let record = Self::new(
            topic,
            Some(event.conversation_key.as_str().to_owned()),
            event.to_json(),
        );
        match event.event.idempotency_key() {
            Some(key) => record.header(IDEMPOTENCY_HEADER, key),
            None => record,
        }
    }

    pub fn header(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Where the broker put an acked record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The local queue is full: the broker is slower than the input. Not a failure; shed load.
    #[error("producer queue is full")]
    Backpressure,
    /// The broker did not take the record within `message.timeout.ms`, or refused it.
    #[error("kafka did not acknowledge a record: {0}")]
    Kafka(#[from] KafkaError),
    /// The producer was dropped while the record was in flight (shutdown).
    #[error("producer closed while a record was in flight")]
    Closed,
}

/// A cheaply clonable handle on one librdkafka producer.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer<IdempotenceWatch>,
    assigned: watch::Receiver<bool>,
}

/// Reads, from each statistics report, whether the producer has its producer id.
struct IdempotenceWatch {
    assigned: watch::Sender<bool>,
}

/// The part of librdkafka's statistics this reads.
#[derive(Deserialize)]
struct Statistics {
    eos: Option<Eos>,
}

#[derive(Deserialize)]
struct Eos {
    idemp_state: String,
}

impl ClientContext for IdempotenceWatch {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Ok(Statistics { eos: Some(eos) }) = serde_json::from_slice(statistics) {
            self.assigned.send_if_modified(|assigned| {
                let now = eos.idemp_state == "Assigned";
                std::mem::replace(assigned, now) != now
            });
        }
    }
}

/// A record on its way to the broker.
pub struct Pending(DeliveryFuture);

impl Pending {
    pub async fn acked(self) -> Result<Ack, ProduceError> {
        match self.0.await {
            Ok(Ok(delivery)) => Ok(Ack {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Ok(Err((err, _))) => Err(ProduceError::Kafka(err)),
            Err(_canceled) => Err(ProduceError::Closed),
        }
    }
}

impl Producer {
    pub fn new(kafka: &KafkaConfig) -> Result<Self, KafkaError> {
        Self::with_config(&producer_config(kafka))
    }

    /// A producer with librdkafka settings of the caller's own (start from [`producer_config`]).
    pub fn with_config(config: &ClientConfig) -> Result<Self, KafkaError> {
        let (assigned, watching) = watch::channel(false);
        Ok(Self {
            inner: config.create_with_context(IdempotenceWatch { assigned })?,
            assigned: watching,
        })
    }

    /// Resolves once the broker assigned this producer its id (at once while it has one):
    /// records produced from then on are acknowledged without waiting for it.
    pub async fn ready(&self) {
        let mut assigned = self.assigned.clone();
        // The sender lives in the producer this handle holds: the channel cannot close.
        let _ = assigned.wait_for(|assigned| *assigned).await;
    }

    /// Whether the producer has its id now.
    pub fn is_ready(&self) -> bool {
        *self.assigned.borrow()
    }

    /// Enqueues one record without waiting for the broker.
    pub fn enqueue(&self, record: &Record) -> Result<Pending, ProduceError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (name, value) in &record.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        let mut future = FutureRecord::to(&record.topic)
            .payload(&record.payload)
            .headers(headers);
        if let Some(key) = &record.key {
            future = future.key(key);
        }
        match self.inner.send_result(future) {
            Ok(delivery) => Ok(Pending(delivery)),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                Err(ProduceError::Backpressure)
            }
            Err((err, _)) => Err(ProduceError::Kafka(err)),
        }
    }

    /// Enqueues every record, then waits until the broker acked all of them. Acks come back in
    /// the order of `records`.
    pub async fn send_all(&self, records: &[Record]) -> Result<Vec<Ack>, ProduceError> {
        let pending = records
            .iter()
            .map(|r| self.enqueue(r))
            .collect::<Result<Vec<_>, _>>()?;
        try_join_all(pending.into_iter().map(Pending::acked)).await
    }

    /// Waits up to `timeout` for every queued record to be acked (on shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner.flush(timeout)
    }
}
