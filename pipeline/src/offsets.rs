//! [`OffsetTracker`]: decides which offset may be stored when records finish out of order.
//!
//! The [`StageRunner`](crate::StageRunner) works on several conversations of a partition at once,
//! so offset 7 can finish before offset 5. Kafka keeps one committed position per partition, and
//! everything before it counts as done; the position may therefore only move to the end of the
//! longest run of finished records from the oldest unfinished one.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::stage::Origin;

/// Every started and not yet stored offset of one partition, oldest first, and whether it
/// finished. A consumer reads a partition in offset order, so a record starting is nearly always
/// pushed at the back, and the oldest are popped from the front.
type Partition = VecDeque<(i64, bool)>;

#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// Per topic (a runner reads one) and partition.
    topics: Vec<(Arc<str>, foldhash::HashMap<i32, Partition>)>,
    /// Offsets started and not yet stored, over every partition.
    open: usize,
}

impl OffsetTracker {
    /// A record was read and its work is starting.
    pub fn start(&mut self, origin: &Origin) {
        let index = match self.topic(&origin.topic) {
            Some(index) => index,
            None => {
                self.topics
                    .push((Arc::clone(&origin.topic), Default::default()));
                self.topics.len() - 1
            }
        };
        let partition = self.topics[index].1.entry(origin.partition).or_default();
        match partition.back() {
            Some(&(last, _)) if last >= origin.offset => {
                // Read again (the partition was revoked and assigned back): known, or put in order.
                if let Err(at) = partition.binary_search_by_key(&origin.offset, |&(o, _)| o) {
                    partition.insert(at, (origin.offset, false));
                    self.open += 1;
                }
            }
            _ => {
                partition.push_back((origin.offset, false));
                self.open += 1;
            }
        }
    }

    /// A record's work is finished. Returns the offset to store for its partition, if the
    /// partition's oldest unfinished record moved.
    pub fn finish(&mut self, origin: &Origin) -> Option<i64> {
        let index = self.topic(&origin.topic)?;
        let offsets = self.topics[index].1.get_mut(&origin.partition)?;
        let at = offsets
            .binary_search_by_key(&origin.offset, |&(o, _)| o)
            .ok()?;
        offsets[at].1 = true;
        let mut stored = None;
        while let Some(&(offset, true)) = offsets.front() {
            offsets.pop_front();
            stored = Some(offset);
            self.open -= 1;
        }
        stored
    }

    /// Several records' work is finished: the offsets to store, one per partition whose oldest
    /// unfinished record moved (the furthest it moved), each with a record of that partition.
    pub fn finish_all<'o>(&mut self, origins: &'o [Origin]) -> Vec<(&'o Origin, i64)> {
        let mut stored: Vec<(&Origin, i64)> = Vec::new();
        for origin in origins {
            let Some(offset) = self.finish(origin) else {
                continue;
            };
            match stored
                .iter_mut()
                .find(|(seen, _)| seen.same_partition(origin))
            {
                // A partition's position only moves forward.
                Some(entry) => *entry = (origin, offset),
                None => stored.push((origin, offset)),
            }
        }
        stored
    }

    /// Records started and not yet finished or stored.
    pub fn open(&self) -> usize {
        self.open
    }

    fn topic(&self, topic: &Arc<str>) -> Option<usize> {
        self.topics
            .iter()
            .position(|(known, _)| Arc::ptr_eq(known, topic) || known == topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, offset: i64) -> Origin {
        Origin {
            topic: "t".into(),
            partition,
            offset,
        }
    }

    #[test]
    fn stores_only_the_end_of_the_finished_run() {
        let mut offsets = OffsetTracker::default();
        for offset in 5..=8 {
            offsets.start(&at(0, offset));
        }
        offsets.start(&at(1, 40));
        assert_eq!(offsets.finish(&at(0, 7)), None, "5 and 6 are still running");
        assert_eq!(
            offsets.finish(&at(1, 40)),
            Some(40),
            "partitions are independent"
        );
        assert_eq!(offsets.finish(&at(0, 5)), Some(5));
        assert_eq!(
            offsets.finish(&at(0, 6)),
            Some(7),
            "6 completes the run up to 7"
        );
        assert_eq!(offsets.open(), 1);
        assert_eq!(offsets.finish(&at(0, 8)), Some(8));
        assert_eq!(offsets.open(), 0);
    }

    #[test]
    fn records_finished_together_store_each_partition_once() {
        let mut offsets = OffsetTracker::default();
        for offset in 1..=4 {
            offsets.start(&at(0, offset));
            offsets.start(&at(1, offset));
        }
        let finished = [at(0, 2), at(1, 1), at(0, 1), at(1, 2), at(0, 4)];
        let mut stored: Vec<(i32, i64)> = offsets
            .finish_all(&finished)
            .into_iter()
            .map(|(origin, offset)| (origin.partition, offset))
            .collect();
        stored.sort();
        assert_eq!(stored, [(0, 2), (1, 2)], "0@4 waits for 0@3");
        assert_eq!(offsets.finish_all(&[at(0, 3)]).len(), 1);
        assert_eq!(offsets.open(), 2, "1@3 and 1@4");
    }

    #[test]
    fn records_read_again_out_of_order_are_tracked_once() {
        let mut offsets = OffsetTracker::default();
        for offset in [10, 11, 12, 11, 7, 12, 9] {
            offsets.start(&at(0, offset));
        }
        assert_eq!(offsets.open(), 5, "7, 9, 10, 11 and 12");
        assert_eq!(offsets.finish(&at(0, 10)), None, "7 and 9 are older");
        assert_eq!(offsets.finish(&at(0, 7)), Some(7));
        assert_eq!(offsets.finish(&at(0, 9)), Some(10));
        assert_eq!(offsets.finish(&at(0, 12)), None);
        assert_eq!(offsets.finish(&at(0, 11)), Some(12));
        assert_eq!(offsets.open(), 0);
        assert_eq!(offsets.finish(&at(0, 11)), None, "stored already");
    }

    #[test]
    fn unknown_records_change_nothing() {
        let mut offsets = OffsetTracker::default();
        offsets.start(&at(0, 1));
        assert_eq!(offsets.finish(&at(0, 2)), None);
        assert_eq!(offsets.finish(&at(3, 1)), None);
        assert_eq!(offsets.open(), 1);
    }
}
