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
    entries: HashMap<String, Entry>,
    writes: usize,
}

struct Entry {
    value: Value,
    expires: Option<Instant>,
}

enum Value {
    Bytes(Vec<u8>),
    Fields(HashMap<String, String>),
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
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
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Value> {
        self.entries
            .get_mut(key)
            .filter(|entry| entry.live(now))
            .map(|entry| &mut entry.value)
    }

    fn live_text(&mut self, key: &str, now: Instant) -> Option<String> {
        match self.live(key, now) {
            Some(Value::Bytes(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }

    fn insert(&mut self, key: &str, value: Value, expires: Option<Instant>, now: Instant) {
        self.entries
            .insert(key.to_owned(), Entry { value, expires });
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            self.entries.retain(|_, entry| entry.live(now));
        }
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn claim(&self, key: &str, owner: &str, ttl: Duration) -> Result<Claim, StoreError> {
        Ok(self.with(|inner, now| {
            let found = classify(inner.live_text(key, now).as_deref(), owner);
            if found == Claim::New {
                inner.insert(
                    key,
                    Value::Bytes(pending(owner).into_bytes()),
                    Some(now + ttl),
                    now,
                );
            }
            found
        }))
    }

    async fn complete(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.with(|inner, now| {
            if let Some(Value::Bytes(value)) = inner.live(key, now)
                && *value == pending(owner).as_bytes()
            {
                *value = completed(owner).into_bytes();
            }
        });
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|inner, now| match inner.live(key, now) {
            Some(Value::Bytes(bytes)) => Some(bytes.clone()),
            _ => None,
        }))
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.with(|inner, now| {
            inner.insert(
                key,
                Value::Bytes(value.to_vec()),
                ttl.map(|ttl| now + ttl),
                now,
            )
        });
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.with(|inner, _| inner.entries.remove(key));
        Ok(())
    }

    async fn fields(&self, key: &str) -> Result<HashMap<String, String>, StoreError> {
        Ok(self.with(|inner, now| match inner.live(key, now) {
            Some(Value::Fields(fields)) => fields.clone(),
            _ => HashMap::new(),
        }))
    }

    async fn set_fields(
        &self,
        key: &str,
        fields: &[(&str, &str)],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.with(|inner, now| {
            let expires = ttl.map(|ttl| now + ttl);
            if let Some(entry) = inner.entries.get_mut(key).filter(|e| e.live(now))
                && let Value::Fields(current) = &mut entry.value
            {
                for (field, value) in fields {
                    current.insert((*field).to_owned(), (*value).to_owned());
                }
                entry.expires = expires.or(entry.expires);
                return;
            }
            let record = fields
                .iter()
                .map(|(f, v)| ((*f).to_owned(), (*v).to_owned()))
                .collect();
            inner.insert(key, Value::Fields(record), expires, now);
        });
        Ok(())
    }

    async fn add_once(
        &self,
        marker: &str,
        counter: &str,
        delta: i64,
    ) -> Result<(bool, i64), StoreError> {
        Ok(self.with(|inner, now| {
            let applied = inner.live(marker, now).is_none();
            if applied {
                inner.insert(marker, Value::Bytes(b"1".to_vec()), None, now);
            }
            let current = inner
                .live_text(counter, now)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            let value = if applied { current + delta } else { current };
            if applied {
                inner.insert(
                    counter,
                    Value::Bytes(value.to_string().into_bytes()),
                    None,
                    now,
                );
            }
            (applied, value)
        }))
    }

    async fn add(&self, counter: &str, delta: i64) -> Result<i64, StoreError> {
        Ok(self.with(|inner, now| {
            let value = inner
                .live_text(counter, now)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
                + delta;
            inner.insert(
                counter,
                Value::Bytes(value.to_string().into_bytes()),
                None,
                now,
            );
            value
        }))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
