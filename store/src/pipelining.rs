//! [`Pipeliner`]: the Redis commands a process issues concurrently, sent as pipelines.
//!
//! A runner keeps up to `max_in_flight` records in flight and each makes its own calls (a claim, a
//! read, a completion). Sent one by one, every call pays redis-rs' whole request path — a response
//! timer, a hop to the connection's task, a reply channel, a write — and the dedupe stage spent
//! about 30 % of its CPU there. Calls queue here instead; a driver task takes everything queued
//! since it last ran and sends it as one pipeline over the multiplexed connection (what ioredis
//! calls auto-pipelining): a lone call still leaves at once, a burst shares one request.
//!
//! Redis runs a pipeline's commands one after another, each as if sent alone, so every script
//! keeps its atomicity; the commands are independent, and one that fails fails only its caller.
//! An `EVALSHA` answered `NOSCRIPT` (Redis restarted, or its script cache was flushed) ran nothing:
//! the driver loads the scripts and sends those commands again.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::{
    Cmd, ErrorKind, FromRedisValue, RedisError, RedisResult, Script, ServerErrorKind, Value,
};
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;

/// The most commands in one pipeline.
const MAX_PIPELINE: usize = 512;

/// One caller's command and where its answer goes.
struct Call {
    command: Cmd,
    answer: oneshot::Sender<RedisResult<Value>>,
}

/// A cheap handle; the driver task stops when the last one is dropped.
#[derive(Clone)]
pub(crate) struct Pipeliner {
    calls: mpsc::UnboundedSender<Call>,
}

impl Pipeliner {
    /// Starts the driver on the current Tokio runtime. `scripts` are the scripts the commands may
    /// call by hash, loaded again when Redis has forgotten them.
    pub(crate) fn start(connection: ConnectionManager, scripts: Vec<Script>) -> Self {
        let (calls, queued) = mpsc::unbounded_channel();
        tokio::spawn(drive(connection, scripts.into(), queued));
        Self { calls }
    }

    /// Sends `command` with whatever else is queued, and reads its answer as a `T`.
    pub(crate) async fn query<T: FromRedisValue>(&self, command: Cmd) -> Result<T, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.calls
            .send(Call { command, answer })
            .map_err(|_| stopped())?;
        let value = answered
            .await
            .map_err(|_| stopped())?
            .map_err(unavailable)?;
        redis::from_redis_value(value).map_err(|err| StoreError::Unavailable(err.to_string()))
    }
}

/// `EVALSHA` of `script` with `keys`; the caller adds the arguments.
pub(crate) fn evalsha(script: &Script, keys: &[impl AsRef<str>]) -> Cmd {
    let mut command = redis::cmd("EVALSHA");
    command.arg(script.get_hash()).arg(keys.len());
    for key in keys {
        command.arg(key.as_ref());
    }
    command
}

async fn drive(
    connection: ConnectionManager,
    scripts: Arc<[Script]>,
    mut queued: mpsc::UnboundedReceiver<Call>,
) {
    // `recv_many` sizes an empty vector to what has queued (at most MAX_PIPELINE).
    let mut batch = Vec::new();
    while queued.recv_many(&mut batch, MAX_PIPELINE).await > 0 {
        let calls = std::mem::take(&mut batch);
        // Each pipeline on its own task: the next one is gathered while Redis answers this one.
        tokio::spawn(send(connection.clone(), scripts.clone(), calls));
    }
}

/// Sends `calls` as one pipeline and hands every caller its own answer.
async fn send(mut connection: ConnectionManager, scripts: Arc<[Script]>, calls: Vec<Call>) {
    let mut pipeline = pipeline();
    let mut answers = Vec::with_capacity(calls.len());
    for call in calls {
        pipeline.add_command(call.command);
        answers.push(call.answer);
    }
    let mut results: Vec<RedisResult<Value>> = match pipeline.query_async(&mut connection).await {
        Ok(results) => results,
        Err(err) => {
            for answer in answers {
                let _ = answer.send(Err(err.clone()));
            }
            return;
        }
    };
    let forgotten: Vec<usize> = (0..results.len())
        .filter(|&i| matches!(&results[i], Err(err) if is_noscript(err)))
        .collect();
    if !forgotten.is_empty() {
        let commands: Vec<&Cmd> = pipeline.cmd_iter().collect();
        let again = forgotten.iter().map(|&i| commands[i].clone());
        match resend(&mut connection, &scripts, again).await {
            Ok(retried) => {
                for (&i, result) in forgotten.iter().zip(retried) {
                    results[i] = result;
                }
            }
            Err(err) => {
                for &i in &forgotten {
                    results[i] = Err(err.clone());
                }
            }
        }
    }
    for (answer, result) in answers.into_iter().zip(results) {
        // A caller that stopped waiting (shutdown) needs no answer.
        let _ = answer.send(result);
    }
}

/// Loads every script, then sends `commands` (answered `NOSCRIPT`, so they ran nothing) again.
async fn resend(
    connection: &mut ConnectionManager,
    scripts: &[Script],
    commands: impl Iterator<Item = Cmd>,
) -> RedisResult<Vec<RedisResult<Value>>> {
    for script in scripts {
        script.load_async(connection).await?;
    }
    let mut again = pipeline();
    for command in commands {
        again.add_command(command);
    }
    again.query_async(connection).await
}

/// A pipeline that answers every command with its own result, errors included.
fn pipeline() -> redis::Pipeline {
    let mut pipeline = redis::pipe();
    pipeline.ignore_errors();
    pipeline
}

fn is_noscript(err: &RedisError) -> bool {
    err.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

pub(crate) fn unavailable(err: RedisError) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the Redis pipeline stopped".into())
}
