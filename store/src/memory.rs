//! The in-memory store: for `wabaflow demo` and unit tests. State dies with the process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::{Claim, StateStore, StoreError, classify, completed, pending};

/// Expired entries are swept after this many writes, so memory stays bounded by the live keys.
const SWEEP_EVERY: usize = 4096;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, (String, Instant)>,
    writes: usize,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner, Instant) -> T) -> T {
        // A poisoned lock means a panic while holding it; the map itself is still consistent.
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut inner, Instant::now())
    }
}

impl Inner {
    fn live(&self, key: &str, now: Instant) -> Option<&str> {
        self.entries
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(v, _)| v.as_str())
    }

    fn written(&mut self, now: Instant) {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            self.entries.retain(|_, (_, expires)| *expires > now);
        }
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn claim(&self, key: &str, owner: &str, ttl: Duration) -> Result<Claim, StoreError> {
        Ok(self.with(|inner, now| {
            let found = classify(inner.live(key, now), owner);
            if found == Claim::New {
                inner
                    .entries
                    .insert(key.to_owned(), (pending(owner), now + ttl));
                inner.written(now);
            }
            found
        }))
    }

    async fn complete(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.with(|inner, now| {
            if let Some((value, expires)) = inner.entries.get_mut(key)
                && *expires > now
                && *value == pending(owner)
            {
                *value = completed(owner);
            }
        });
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
