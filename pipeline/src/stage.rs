//! The [`Stage`] trait: a function from one input event to output events, with injected state.
//!
//! A stage knows nothing of Kafka. A sink is a stage without an output topic: its effect is the
//! call it makes (e.g. to Genesys), and the runner's offset rules apply to it unchanged.
//! The runner decodes the record into the stage's [`Input`] (an [`Envelope`], or a part of one when
//! that is all the stage reads), calls [`Stage::process`], produces what it returns to
//! [`Stage::output`], and only after the broker acked those outputs calls [`Stage::acked`] and
//! stores the input's offset.
//!
//! Records that are read together, each of a different conversation, reach the stage together
//! ([`Stage::process_all`], [`Stage::acked_all`]): by default each still goes through `process`
//! and `acked` on its own, concurrently; a stage that makes a store round trip per record (dedupe's
//! claim and completion) overrides them to make one for the group.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use futures::stream::{BoxStream, FuturesUnordered, StreamExt};
use wabaflow_schemas::envelope::EnvelopeError;
use wabaflow_schemas::{Envelope, IDEMPOTENCY_HEADER, IdempotencyKey, Topic};

/// Where the input record came from. Stable across redeliveries of the same record, which makes
/// it the natural owner of an idempotency claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Shared by the records a runner reads from the same topic.
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

impl Origin {
    /// `{topic}/{partition}@{offset}`, as [`Display`](fmt::Display) writes it, built without the
    /// formatting machinery: it is written for every record (an output's header, a claim's owner).
    pub fn text(&self) -> String {
        let (mut partition, mut offset) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (partition, offset) = (partition.format(self.partition), offset.format(self.offset));
        let mut text = String::with_capacity(self.topic.len() + partition.len() + offset.len() + 2);
        text.push_str(&self.topic);
        text.push('/');
        text.push_str(partition);
        text.push('@');
        text.push_str(offset);
        text
    }

    /// Whether `other` is a record of the same topic partition.
    pub fn same_partition(&self, other: &Origin) -> bool {
        self.partition == other.partition
            && (Arc::ptr_eq(&self.topic, &other.topic) || self.topic == other.topic)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// What a stage sees besides the event.
#[derive(Debug, Clone)]
pub struct Context {
    pub origin: Origin,
}

/// What to do with an input event.
#[derive(Debug)]
pub enum Outcome<R> {
    /// Produce these events (possibly none) to the stage's output; then call
    /// [`Stage::acked`] with the receipt.
    Emit(Vec<Envelope>, R),
    /// Produce the input record itself to the stage's output, its bytes unchanged (a filter, such as
    /// dedupe, passing an event on): nothing is encoded again. Then call [`Stage::acked`].
    Forward(R),
    /// Produce nothing, on purpose, for a low-cardinality `reason` (it becomes a metric label).
    Discard(&'static str),
}

/// Who is at fault, and therefore what the runner does.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The input can never be processed: dead-letter it with this reason and move on.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// An external service failed: retry with backoff, never skip the event.
    #[error("external service unavailable: {0}")]
    Unavailable(String),
    /// An external service asked us to wait (HTTP 429 / 503 with `Retry-After`): retry no sooner.
    #[error("external service throttled us for {after:?}: {reason}")]
    RetryAfter { reason: String, after: Duration },
    /// Our own bug: stop the runner (the process restarts it from the last committed offset).
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a stage reads from each input record, given its payload and a lookup of its headers. A
/// record that does not decode is dead-lettered with the error as its reason.
pub trait Input: Sized + Send + 'static {
    fn decode<'r>(
        payload: &'r [u8],
        header: impl Fn(&str) -> Option<&'r [u8]>,
    ) -> Result<Self, EnvelopeError>;
}

impl Input for Envelope {
    fn decode<'r>(
        payload: &'r [u8],
        _header: impl Fn(&str) -> Option<&'r [u8]>,
    ) -> Result<Self, EnvelopeError> {
        Envelope::from_json(payload)
    }
}

/// Only the event's idempotency key, from the header the edge wrote when there is one: for a filter
/// that forwards the record's bytes unchanged.
impl Input for IdempotencyKey {
    fn decode<'r>(
        payload: &'r [u8],
        header: impl Fn(&str) -> Option<&'r [u8]>,
    ) -> Result<Self, EnvelopeError> {
        IdempotencyKey::from_record(header(IDEMPOTENCY_HEADER), payload)
    }
}

/// What processing one record of a group came to: its index among the group's events, and the
/// result [`Stage::process`] would have given for it alone.
pub type Processed<R> = (usize, Result<Outcome<R>, StageError>);

#[async_trait]
pub trait Stage: Send + Sync + 'static {
    /// What each input record is decoded into: [`Envelope`] for most stages.
    type Input: Input;
    /// Handed back after the outputs are acked (e.g. the claim to complete).
    type Receipt: Send + 'static;

    /// A verb: `dedupe`, `map`, `transform`. Names the consumer group and metric labels.
    fn name(&self) -> &'static str;
    fn input(&self) -> Topic;
    /// Where emitted events go; `None` for a sink, whose effect is outside Kafka.
    fn output(&self) -> Option<Topic>;

    async fn process(
        &self,
        event: Self::Input,
        cx: &Context,
    ) -> Result<Outcome<Self::Receipt>, StageError>;

    /// Called once the outputs of an event are durable, before its offset is stored.
    async fn acked(&self, _receipt: Self::Receipt, _cx: &Context) -> Result<(), StageError> {
        Ok(())
    }

    /// Processes records read together, each of a different conversation, and yields each one's
    /// result as soon as it is known — in any order, each index once, as
    /// [`process`](Self::process) would have answered for it alone (a record that gets a
    /// [`StageError::Unavailable`] is retried on its own). The default runs `process` on all of
    /// them concurrently, so a slow call holds back only its own conversation.
    fn process_all<'a>(
        &'a self,
        events: Vec<(Self::Input, Context)>,
    ) -> BoxStream<'a, Processed<Self::Receipt>> {
        events
            .into_iter()
            .enumerate()
            .map(|(index, (event, cx))| async move { (index, self.process(event, &cx).await) })
            .collect::<FuturesUnordered<_>>()
            .boxed()
    }

    /// Called once the outputs of records processed together are durable, before their offsets
    /// are stored. The default runs [`acked`](Self::acked) for each, concurrently, and reports an
    /// [`StageError::Internal`] if any, else the first error.
    async fn acked_all(&self, receipts: Vec<(Self::Receipt, Context)>) -> Result<(), StageError> {
        let results = join_all(
            receipts
                .into_iter()
                .map(|(receipt, cx)| async move { self.acked(receipt, &cx).await }),
        )
        .await;
        let mut outcome = Ok(());
        for result in results {
            match result {
                Err(err @ StageError::Internal(_)) => return Err(err),
                Err(err) if outcome.is_ok() => outcome = Err(err),
                _ => {}
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origins_text_is_what_display_writes() {
        let topic: Arc<str> = Arc::from("wabaflow.wa.inbound.v1");
        for (partition, offset) in [(0, 0), (11, 7_345_901), (-1, -1001), (i32::MAX, i64::MIN)] {
            let origin = Origin {
                topic: Arc::clone(&topic),
                partition,
                offset,
            };
            assert_eq!(origin.text(), origin.to_string());
        }
    }
}
