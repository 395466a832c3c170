//! [`Group`]: the records read together, followed as the stage's results for them come in.
//!
//! Each result is acted on at once: a finished record's outputs are enqueued there and then (its
//! key is then free for its next record; the keys freed by the results that came together are
//! reported together), a record that met an unavailable service leaves the group to be retried
//! alone, and once every record has its result the finished ones settle together. Only a record
//! whose outputs find the producer's queue full waits — and holds back the rest of its group's
//! results until there is room, as the queue holds back everything else.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

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
    /// The keys of records finished since the group last reported them.
    done: Vec<LaneKey>,
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
            done: Vec::new(),
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
    ) -> Result<(), RunnerError> {
        if self.runner.try_enqueue(&mut outputs)? {
            self.settled.push(outputs.in_flight());
            self.done.push(key);
        } else {
            let (runner, shutdown) = (self.runner, self.shutdown);
            self.waiting = Some(Box::pin(async move {
                (key, runner.enqueued(outputs, shutdown).await)
            }));
        }
        Ok(())
    }

    /// The stage's result for the record at `index`: a `Retry` to report, or nothing.
    fn conclude(
        &mut self,
        index: usize,
        result: Result<Outcome<S::Receipt>, StageError>,
    ) -> Result<Option<Progress<S::Receipt>>, RunnerError> {
        let Some((key, mut record)) = self.records.get_mut(index).and_then(Option::take) else {
            self.answered = true;
            return Err(self.runner.internal(format!(
                "record {index} of a group answered twice or never read"
            )));
        };
        match self.runner.finish(&mut record, result)? {
            Finished::Outputs(outputs) => self.enqueue(key, outputs).map(|()| None),
            Finished::Retry(err) => Ok(Some(Progress::Retry(key, record, err))),
        }
    }
}

// The group is never pinned in place: its fields are moved or boxed, never projected.
impl<S: Stage> Unpin for Group<'_, S> {}

impl<S: Stage> Stream for Group<'_, S> {
    type Item = Result<Progress<S::Receipt>, RunnerError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // Acts on everything that is ready, then reports the keys it freed meanwhile at once.
        loop {
            if let Some(waiting) = &mut this.waiting {
                let Poll::Ready((key, enqueued)) = waiting.poll_unpin(cx) else {
                    break;
                };
                this.waiting = None;
                match enqueued {
                    Ok(item) => this.settled.push(item),
                    Err(err) => return Poll::Ready(Some(Err(err))),
                }
                this.done.push(key);
                continue;
            }
            if let Some((key, outputs)) = this.early.pop() {
                if let Err(err) = this.enqueue(key, outputs) {
                    return Poll::Ready(Some(Err(err)));
                }
                continue;
            }
            if this.answered {
                break;
            }
            let Poll::Ready(result) = this.results.poll_next_unpin(cx) else {
                break;
            };
            let step = match result {
                Some((index, result)) => match this.conclude(index, result) {
                    Ok(None) => continue,
                    Ok(Some(retry)) => Ok(retry),
                    Err(err) => Err(err),
                },
                None => {
                    this.answered = true;
                    if this.records.iter().any(Option::is_some) {
                        Err(this
                            .runner
                            .internal("the stage did not answer every record of a group".into()))
                    } else {
                        Ok(Progress::Settle(std::mem::take(&mut this.settled)))
                    }
                }
            };
            return Poll::Ready(Some(step));
        }
        if !this.done.is_empty() {
            return Poll::Ready(Some(Ok(Progress::Done(std::mem::take(&mut this.done)))));
        }
        if this.answered {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}
