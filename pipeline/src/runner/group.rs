//! [`Group`]: the records read together, followed as the stage's results for them come in.
//!
//! Each result is acted on at once: a finished record's outputs are enqueued there and then (its
//! key is then free for its next record), a record that met an unavailable service leaves the
//! group to be retried alone, and once every record has its result the finished ones settle
//! together. Only a record whose outputs find the producer's queue full waits — and holds back
//! the rest of its group's results until there is room, as the queue holds back everything else.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, Stream, StreamExt};

use super::{Finished, InFlight, LaneKey, Outputs, Progress, RunnerError, StageRunner};
use crate::consumed::RawRecord;
use crate::shutdown::Shutdown;
use crate::stage::{Outcome, Processed, Stage, StageError};

/// A record's outputs being enqueued as the producer's queue makes room.
type Waiting<'a, R> = BoxFuture<'a, (LaneKey, Result<InFlight<R>, RunnerError>)>;

/// A group being processed: yields each record's [`Progress`], then the group's `Settle`.
pub(super) struct Group<'a, S: Stage> {
    runner: &'a StageRunner<S>,
    shutdown: &'a Shutdown,
    results: BoxStream<'a, Processed<S::Receipt>>,
    /// By the index of their event; taken when its result comes.
    records: Vec<Option<(LaneKey, RawRecord)>>,
    /// Records dead-lettered as they were read, which did not reach the stage.
    early: Vec<(LaneKey, Outputs<S::Receipt>)>,
    /// Finished records whose outputs are enqueued, to settle together.
    settled: Vec<InFlight<S::Receipt>>,
    /// A record whose outputs wait for room in the producer's queue.
    waiting: Option<Waiting<'a, S::Receipt>>,
    /// The stage gave every result it will give.
    answered: bool,
}

impl<'a, S: Stage> Group<'a, S> {
    pub(super) fn new(
        runner: &'a StageRunner<S>,
        shutdown: &'a Shutdown,
        results: BoxStream<'a, Processed<S::Receipt>>,
        records: Vec<Option<(LaneKey, RawRecord)>>,
        early: Vec<(LaneKey, Outputs<S::Receipt>)>,
    ) -> Self {
        Self {
            runner,
            shutdown,
            results,
            settled: Vec::with_capacity(records.len() + early.len()),
            records,
            early,
            waiting: None,
            answered: false,
        }
    }

    /// Enqueues a finished record's outputs: its key is done, or (queue full) it waits.
    fn enqueue(
        &mut self,
        key: LaneKey,
        mut outputs: Outputs<S::Receipt>,
    ) -> Option<Result<Progress<S::Receipt>, RunnerError>> {
        match self.runner.try_enqueue(&mut outputs) {
            Ok(true) => {
                self.settled.push(outputs.in_flight());
                Some(Ok(Progress::Done(key)))
            }
            Ok(false) => {
                let (runner, shutdown) = (self.runner, self.shutdown);
                self.waiting = Some(Box::pin(async move {
                    (key, runner.enqueued(outputs, shutdown).await)
                }));
                None
            }
            Err(err) => Some(Err(err)),
        }
    }

    /// The stage's result for the record at `index`.
    fn conclude(
        &mut self,
        index: usize,
        result: Result<Outcome<S::Receipt>, StageError>,
    ) -> Option<Result<Progress<S::Receipt>, RunnerError>> {
        let Some((key, mut record)) = self.records.get_mut(index).and_then(Option::take) else {
            self.answered = true;
            return Some(Err(self.runner.internal(format!(
                "record {index} of a group answered twice or never read"
            ))));
        };
        match self.runner.finish(&mut record, result) {
            Ok(Finished::Outputs(outputs)) => self.enqueue(key, outputs),
            Ok(Finished::Retry(err)) => Some(Ok(Progress::Retry(key, record, err))),
            Err(err) => Some(Err(err)),
        }
    }
}

// The group is never pinned in place: its fields are moved or boxed, never projected.
impl<S: Stage> Unpin for Group<'_, S> {}

impl<S: Stage> Stream for Group<'_, S> {
    type Item = Result<Progress<S::Receipt>, RunnerError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(waiting) = &mut this.waiting {
                let (key, enqueued) = ready!(waiting.poll_unpin(cx));
                this.waiting = None;
                return Poll::Ready(Some(enqueued.map(|item| {
                    this.settled.push(item);
                    Progress::Done(key)
                })));
            }
            if let Some((key, outputs)) = this.early.pop() {
                match this.enqueue(key, outputs) {
                    Some(step) => return Poll::Ready(Some(step)),
                    None => continue,
                }
            }
            if this.answered {
                return Poll::Ready(None);
            }
            match ready!(this.results.poll_next_unpin(cx)) {
                Some((index, result)) => match this.conclude(index, result) {
                    Some(step) => return Poll::Ready(Some(step)),
                    None => continue,
                },
                None => {
                    this.answered = true;
                    let step = if this.records.iter().any(Option::is_some) {
                        Err(this
                            .runner
                            .internal("the stage did not answer every record of a group".into()))
                    } else {
                        Ok(Progress::Settle(std::mem::take(&mut this.settled)))
                    };
                    return Poll::Ready(Some(step));
                }
            }
        }
    }
}
