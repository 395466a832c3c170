//! [`KeyedQueue`]: lets the [`StageRunner`](crate::StageRunner) work on many conversations at once
//! while each conversation's records stay in offset order.
//!
//! A key is *busy* from the moment one of its records is handed out until the runner says that
//! record is finished; records arriving for a busy key wait here, in arrival order, and are handed
//! out one at a time. A wait on one conversation (a `Retry-After`, a pair limit) therefore holds
//! back only that conversation.

use std::collections::VecDeque;
use std::hash::Hash;

#[derive(Debug)]
pub struct KeyedQueue<K, T> {
    /// Busy keys, each with the records waiting behind the one being worked on.
    waiting: foldhash::HashMap<K, VecDeque<T>>,
}

impl<K: Hash + Eq + Clone, T> Default for KeyedQueue<K, T> {
    fn default() -> Self {
        Self {
            waiting: Default::default(),
        }
    }
}

impl<K: Hash + Eq + Clone, T> KeyedQueue<K, T> {
    /// Returns `item` when `key` is free (it is now busy and `item` may start); otherwise queues it.
    pub fn admit(&mut self, key: K, item: T) -> Option<T> {
        match self.waiting.get_mut(&key) {
            Some(queue) => {
                queue.push_back(item);
                None
            }
            None => {
                self.waiting.insert(key, VecDeque::new());
                Some(item)
            }
        }
    }

    /// The work on `key` finished: returns its next record (the key stays busy) or frees the key.
    pub fn finish(&mut self, key: &K) -> Option<T> {
        let queue = self.waiting.get_mut(key)?;
        let next = queue.pop_front();
        if next.is_none() {
            self.waiting.remove(key);
        }
        next
    }

    /// Keys with a record in progress.
    pub fn busy(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_per_key_at_a_time_in_arrival_order() {
        let mut keys = KeyedQueue::default();
        assert_eq!(keys.admit("a", 1), Some(1));
        assert_eq!(keys.admit("b", 2), Some(2), "another key does not wait");
        assert_eq!(keys.admit("a", 3), None);
        assert_eq!(keys.admit("a", 4), None);
        assert_eq!(keys.busy(), 2);

        assert_eq!(keys.finish(&"a"), Some(3));
        assert_eq!(keys.finish(&"b"), None, "b is free again");
        assert_eq!(keys.admit("b", 5), Some(5));
        assert_eq!(keys.finish(&"a"), Some(4));
        assert_eq!(keys.finish(&"a"), None);
        assert_eq!(keys.admit("a", 6), Some(6));
    }
}
