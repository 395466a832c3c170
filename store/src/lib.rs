//! Hot state behind one trait, [`StateStore`], with a Redis ([`RedisStore`]) and an in-memory
//! ([`MemoryStore`]) implementation; ScyllaDB joins them behind the same trait and the same
//! conformance suite (`tests/conformance.rs`).
//!
//! It holds *claims* (a claim makes a key's effect happen once even though Kafka delivers at least
//! once — see [`Claim`]), plain values with an optional expiry (tenant records, cached tokens) and
//! *records*: field maps where each writer sets only its own fields (a conversation mapping is
//! written by the mapping stage and by the Genesys sink without either overwriting the other).
//! On top of it: [`tenants`] (encrypted credentials), [`tokens`] (OAuth token cache),
//! [`records`] (mappings, message tracking), and the [`objects`] store for raw payloads and media.

mod memory;
pub mod objects;
mod pipelining;
pub mod records;
mod redis_store;
pub mod sends;
pub mod tenants;
pub mod tokens;
pub mod wallet;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

pub use memory::MemoryStore;
pub use redis_store::RedisStore;

/// What [`StateStore::claim`] found.
///
/// The owner is the identity of the *record* doing the work (topic, partition, offset), so a record
/// that Kafka redelivers after a crash is recognised as the same owner, while a second copy of the
/// same update (Meta retrying a webhook) is a different record and therefore a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody held the key: it is now ours, pending.
    New,
    /// We claimed it before and never completed: a crash interrupted us, do the work again.
    Resumed,
    /// We claimed and completed it before: this is a redelivery of finished work.
    Completed,
    /// Another owner holds it: a duplicate.
    Taken,
}

impl Claim {
    /// Whether the caller should perform the effect.
    pub fn proceeds(self) -> bool {
        matches!(self, Claim::New | Claim::Resumed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing service did not answer or refused: retrying later can help.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
}

/// Hot conversation state. Every method is atomic with respect to other callers.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// Claims `key` for `owner` for `ttl`, atomically. See [`Claim`].
    async fn claim(&self, key: &str, owner: &str, ttl: Duration) -> Result<Claim, StoreError>;

    /// Claims `key` like [`claim`](Self::claim) and, when the claim proceeds, reads every field
    /// of the record at `record` in the same atomic step (one round trip for a sender that
    /// needs both). The fields are empty for a claim that does not proceed.
    async fn claim_with_fields(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        record: &str,
    ) -> Result<(Claim, HashMap<String, String>), StoreError> {
        let claim = self.claim(key, owner, ttl).await?;
        let fields = match claim.proceeds() {
            true => self.fields(record).await?,
            false => HashMap::new(),
        };
        Ok((claim, fields))
    }

    /// Marks `owner`'s claim on `key` as completed, keeping its expiry. A claim held by another
    /// owner is left alone.
    async fn complete(&self, key: &str, owner: &str) -> Result<(), StoreError>;

    /// Claims each `(key, owner)` in turn, as [`claim`](Self::claim) would one after another (a
    /// key given twice by two owners is `Taken` the second time), and answers in the same order
    /// — in one round trip where the backend allows: a stage claims a whole poll's records at once.
    async fn claim_all(
        &self,
        claims: &[(String, String)],
        ttl: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut found = Vec::with_capacity(claims.len());
        for (key, owner) in claims {
            found.push(self.claim(key, owner, ttl).await?);
        }
        Ok(found)
    }

    /// Completes each `(key, owner)` claim as [`complete`](Self::complete) would, in one round
    /// trip where the backend allows.
    async fn complete_all(&self, claims: &[(String, String)]) -> Result<(), StoreError> {
        for (key, owner) in claims {
            self.complete(key, owner).await?;
        }
        Ok(())
    }

    /// The value at `key`, if any and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Sets `key` to `value`, expiring after `ttl` when given (a plain value replaces a record).
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError>;

    /// Removes `key` (a value or a record); absent keys are fine.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Every field of the record at `key` (empty when there is none).
    async fn fields(&self, key: &str) -> Result<HashMap<String, String>, StoreError>;

    /// Sets these fields of the record at `key`, leaving its other fields alone, atomically.
    /// With `ttl` the record then expires that long after this write (every write with a `ttl`
    /// renews it); without, its expiry stays as it was (none for a new record).
    async fn set_fields(
        &self,
        key: &str,
        fields: &[(&str, &str)],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;

    /// Adds `delta` to the integer at `counter` unless `marker` exists, and creates `marker`, in
    /// one atomic step: the same movement (a wallet debit for one message) applies once however
    /// often it is retried. Returns whether it applied and the counter's value afterwards.
    async fn add_once(
        &self,
        marker: &str,
        counter: &str,
        delta: i64,
    ) -> Result<(bool, i64), StoreError>;

    /// Adds `delta` to the integer at `counter` (0 when absent); returns the new value.
    async fn add(&self, counter: &str, delta: i64) -> Result<i64, StoreError>;

    /// A short name for logs and metrics (`memory`, `redis`).
    fn backend(&self) -> &'static str;
}

/// The prefixes of the encoded claim values, shared by the implementations (and the Redis
/// scripts, which build the values themselves) so that they agree byte for byte.
macro_rules! pending_prefix {
    () => {
        "pending:"
    };
}
macro_rules! completed_prefix {
    () => {
        "done:"
    };
}
pub(crate) use {completed_prefix, pending_prefix};

fn pending(owner: &str) -> String {
    [pending_prefix!(), owner].concat()
}

fn completed(owner: &str) -> String {
    [completed_prefix!(), owner].concat()
}

fn classify(current: Option<&str>, owner: &str) -> Claim {
    match current {
        None => Claim::New,
        Some(value) if value == pending(owner) => Claim::Resumed,
        Some(value) if value == completed(owner) => Claim::Completed,
        Some(_) => Claim::Taken,
    }
}
