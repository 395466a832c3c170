//! The Redis store: single-node production and the store the integration tests run against.
//!
//! Claims are one Lua script (GET, then SET … PX if absent; optionally reading a record too), so
//! concurrent claimers on any number of wabaflow processes see exactly one `New`. Values are
//! strings, records are hashes (HSET sets only the given fields; with a TTL, HSET and PEXPIRE in
//! one script). Keys are namespaced by a prefix. Calls made concurrently travel together, as one
//! pipeline ([`Pipeliner`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use crate::pipelining::{Pipeliner, evalsha, unavailable};
use crate::{Claim, StateStore, StoreError, completed_prefix, pending_prefix};

/// The claim's step as a Lua function, shared by the scripts that claim: the owner's claim
/// values are built here, as `pending()` and `completed()` build them, so each owner crosses the
/// wire once; answers 0 (new, now claimed), 1 (resumed), 2 (completed) or 3 (taken).
macro_rules! claim_function {
    () => {
        concat!(
            "
local function claim(key, owner, ttl)
  local mine = '",
            pending_prefix!(),
            "' .. owner
  local current = redis.call('GET', key)
  if not current then
    redis.call('SET', key, mine, 'PX', ttl)
    return 0
  elseif current == mine then return 1
  elseif current == '",
            completed_prefix!(),
            "' .. owner then return 2
  end
  return 3
end
"
        )
    };
}

/// The claim of every key of KEYS in turn: ARGV[1] is the expiry in ms, ARGV[i + 1] the owner
/// claiming KEYS[i]. Answers each key's `found` as one digit of a string (one bulk reply to read,
/// where an array would be a reply per key). All keys in one script: for one Redis node, not a
/// cluster.
const CLAIM_ALL: &str = concat!(
    claim_function!(),
    r"
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = claim(key, ARGV[i + 1], ARGV[1])
end
return table.concat(found)
"
);

/// A claim by ARGV[1] with expiry ARGV[2] and, when it proceeds, the record of KEYS[2].
const CLAIM_WITH_FIELDS: &str = concat!(
    claim_function!(),
    r"
local found = claim(KEYS[1], ARGV[1], ARGV[2])
if found > 1 then return {found, {}} end
return {found, redis.call('HGETALL', KEYS[2])}
"
);

const ADD_ONCE: &str = r"
if redis.call('SET', KEYS[1], '1', 'NX') then
  return {1, redis.call('INCRBY', KEYS[2], ARGV[1])}
end
return {0, tonumber(redis.call('GET', KEYS[2]) or '0')}
";

/// HSET of ARGV[2..] and PEXPIRE ARGV[1] on KEYS[1]: one command, never a record without expiry.
const SET_FIELDS_EXPIRING: &str = r"
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0
";

/// The completion of every key of KEYS by its owner ARGV[i]; a claim held by another owner is
/// left alone.
const COMPLETE_ALL: &str = concat!(
    "
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == '",
    pending_prefix!(),
    "' .. ARGV[i] then
    redis.call('SET', key, '",
    completed_prefix!(),
    "' .. ARGV[i], 'KEEPTTL')
  end
end
return 0
"
);

#[derive(Clone)]
pub struct RedisStore {
    pipeliner: Pipeliner,
    prefix: String,
    scripts: Arc<Scripts>,
}

/// The Lua scripts, by purpose: commands call them by hash (`EVALSHA`), and the pipeline loads
/// them all again when Redis has forgotten them.
struct Scripts {
    claim_all: Script,
    claim_with_fields: Script,
    complete_all: Script,
    add_once: Script,
    set_fields_expiring: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            claim_all: Script::new(CLAIM_ALL),
            claim_with_fields: Script::new(CLAIM_WITH_FIELDS),
            complete_all: Script::new(COMPLETE_ALL),
            add_once: Script::new(ADD_ONCE),
            set_fields_expiring: Script::new(SET_FIELDS_EXPIRING),
        }
    }

    fn all(&self) -> Vec<Script> {
        [
            &self.claim_all,
            &self.claim_with_fields,
            &self.complete_all,
            &self.add_once,
            &self.set_fields_expiring,
        ]
        .into_iter()
        .cloned()
        .collect()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://127.0.0.1:6379`); every key is stored under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        // redis-rs answers "timed out" after 500 ms by default. One multiplexed connection carries
        // every concurrent call of a process (a runner keeps up to `max_in_flight` conversations
        // in flight), and under a CPU-bound load replies queue up longer than that: the sender
        // benchmark saw dozens of spurious timeouts, each a retry. 5 s still catches a dead Redis.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(5)));
        let connection = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(unavailable)?;
        let scripts = Scripts::new();
        Ok(Self {
            pipeliner: Pipeliner::start(connection, scripts.all()),
            prefix: prefix.to_owned(),
            scripts: Arc::new(scripts),
        })
    }

    fn key(&self, key: &str) -> String {
        [self.prefix.as_str(), key].concat()
    }
}

/// What the claim step's `found` means.
fn claim_of(found: i64) -> Claim {
    match found {
        0 => Claim::New,
        1 => Claim::Resumed,
        2 => Claim::Completed,
        _ => Claim::Taken,
    }
}

#[async_trait]
impl StateStore for RedisStore {
    async fn claim(&self, key: &str, owner: &str, ttl: Duration) -> Result<Claim, StoreError> {
        let found = self
            .claim_all(&[(key.to_owned(), owner.to_owned())], ttl)
            .await?;
        found
            .first()
            .copied()
            .ok_or_else(|| StoreError::Unavailable("a claim went unanswered".into()))
    }

    async fn claim_with_fields(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        record: &str,
    ) -> Result<(Claim, HashMap<String, String>), StoreError> {
        let mut command = evalsha(
            &self.scripts.claim_with_fields,
            &[&self.key(key), &self.key(record)],
        );
        command.arg(owner).arg(ttl_ms(ttl));
        let (found, fields) = self.pipeliner.query(command).await?;
        Ok((claim_of(found), fields))
    }

    async fn complete(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.complete_all(&[(key.to_owned(), owner.to_owned())])
            .await
    }

    async fn claim_all(
        &self,
        claims: &[(String, String)],
        ttl: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = claims.iter().map(|(key, _)| self.key(key)).collect();
        let mut command = evalsha(&self.scripts.claim_all, &keys);
        command.arg(ttl_ms(ttl));
        for (_, owner) in claims {
            command.arg(owner);
        }
        let found: Vec<u8> = self.pipeliner.query(command).await?;
        if found.len() != claims.len() || !found.iter().all(u8::is_ascii_digit) {
            return Err(StoreError::Unavailable(format!(
                "{} claims answered for {} keys",
                found.len(),
                claims.len()
            )));
        }
        Ok(found
            .into_iter()
            .map(|digit| claim_of(i64::from(digit - b'0')))
            .collect())
    }

    async fn complete_all(&self, claims: &[(String, String)]) -> Result<(), StoreError> {
        if claims.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = claims.iter().map(|(key, _)| self.key(key)).collect();
        let mut command = evalsha(&self.scripts.complete_all, &keys);
        for (_, owner) in claims {
            command.arg(owner);
        }
        self.pipeliner.query::<i64>(command).await.map(drop)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.pipeliner.query(redis::Cmd::get(self.key(key))).await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let key = self.key(key);
        let command = match ttl {
            Some(ttl) => redis::Cmd::pset_ex(key, value, ttl_ms(ttl)),
            None => redis::Cmd::set(key, value),
        };
        self.pipeliner.query(command).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.pipeliner.query(redis::Cmd::del(self.key(key))).await
    }

    async fn fields(&self, key: &str) -> Result<HashMap<String, String>, StoreError> {
        self.pipeliner
            .query(redis::Cmd::hgetall(self.key(key)))
            .await
    }

    async fn set_fields(
        &self,
        key: &str,
        fields: &[(&str, &str)],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        if fields.is_empty() {
            return Ok(());
        }
        let key = self.key(key);
        let command = match ttl {
            None => redis::Cmd::hset_multiple(key, fields),
            Some(ttl) => {
                let mut command = evalsha(&self.scripts.set_fields_expiring, &[&key]);
                command.arg(ttl_ms(ttl));
                for (field, value) in fields {
                    command.arg(*field).arg(*value);
                }
                command
            }
        };
        self.pipeliner.query(command).await
    }

    async fn add_once(
        &self,
        marker: &str,
        counter: &str,
        delta: i64,
    ) -> Result<(bool, i64), StoreError> {
        let mut command = evalsha(
            &self.scripts.add_once,
            &[&self.key(marker), &self.key(counter)],
        );
        command.arg(delta);
        let (applied, value): (i64, i64) = self.pipeliner.query(command).await?;
        Ok((applied == 1, value))
    }

    async fn add(&self, counter: &str, delta: i64) -> Result<i64, StoreError> {
        self.pipeliner
            .query(redis::Cmd::incr(self.key(counter), delta))
            .await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    ttl.as_millis().max(1) as u64
}
