//! Stage: events per CPU-second of `stage:dedupe` (claims in Redis) and of `stage:transform`
//! (tenant lookup, normalisation to a Genesys message) against a plain consume → produce copy
//! between the same topics on the same broker, with the same consumer and producer settings and
//! the same at-least-once rule (offset stored after the output's ack).
//!
//! Both run in this process, one after the other, on a load produced beforehand; CPU time is the
//! process's (user + system) from each one's first record to its last, so the broker's and Redis'
//! work is not counted for either, nor is starting up (the stage's node connects to Redis and
//! loads tenants; the copy only creates a consumer). Each pass also prints where its CPU went by
//! thread ([`threads`](super::threads)): the runtime's workers against librdkafka's threads.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use wabaflow_pipeline::kafka::consumer_config;
use wabaflow_pipeline::telemetry::metrics;
use wabaflow_pipeline::{Config, Producer, Record};
use wabaflow_schemas::topics::{
    DELIVERY_GENESYS, Topic, WA_INBOUND, WA_INBOUND_ENRICHED, WA_INBOUND_UNIQUE,
};

use super::rig;
use super::{Bench, Outcome, Ratio, Target, cpu_seconds, scaled, threads, until};
use crate::node::Role;

/// One pass over the load.
struct Pass {
    events: u64,
    /// The input records' mean size.
    record_bytes: usize,
    cpu: f64,
    wall: Duration,
    /// Where the CPU went, by thread ([`threads::shares`]).
    threads: String,
}

impl Pass {
    fn per_cpu_second(&self) -> f64 {
        self.events as f64 / self.cpu.max(0.01)
    }

    fn per_second(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64().max(1e-6)
    }
}

pub async fn run(base: &Config, scale: f64) -> anyhow::Result<Outcome> {
    // Long enough that a pass is not mostly its start: at 20 000 records the copy used only
    // 50–70 ms of CPU (docs/benchmarks-log.md, "What changed on the fifth night").
    let n = scaled(60_000.0, scale, 200);
    let mut ratios = Vec::new();
    let mut details = vec![format!(
        "{n} customer texts per pass, from 2 000 conversations"
    )];
    for (role, name, input, output) in [
        (Role::Dedupe, "dedupe", WA_INBOUND, WA_INBOUND_UNIQUE),
        (
            Role::Transform,
            "transform",
            WA_INBOUND_ENRICHED,
            DELIVERY_GENESYS,
        ),
    ] {
        let (ours, copy) = measure(base, role, name, input, output, n).await?;
        ratios.push(Ratio {
            what: format!("{name} vs consume→produce copy"),
            ours: ours.per_cpu_second(),
            baseline: copy.per_cpu_second(),
            unit: "events per CPU-second",
            target: Target::AtLeast(0.5),
        });
        details.push(format!(
            "{name}: input records of {} bytes; {:.3} CPU-s, {:.0} events/s wall; copy: {:.3} CPU-s, {:.0} events/s wall",
            ours.record_bytes,
            ours.cpu,
            ours.per_second(),
            copy.cpu,
            copy.per_second()
        ));
        details.push(format!("{name}'s CPU by thread: {}", ours.threads));
        details.push(format!("the copy's CPU by thread: {}", copy.threads));
    }
    Ok(Outcome {
        bench: Bench::Stage,
        ratios,
        details,
    })
}

async fn measure(
    base: &Config,
    role: Role,
    name: &'static str,
    input: Topic,
    output: Topic,
    n: u64,
) -> anyhow::Result<(Pass, Pass)> {
    let mut config = rig::isolated(base, name);
    let sims = rig::Sims::start().await?;
    sims.wire(&mut config);
    wabaflow_pipeline::topics::create_all(&config.kafka).await?;
    let events = rig::events(&rig::texts(n, 2_000))?;
    let record_bytes =
        events.iter().map(|e| e.to_json().len()).sum::<usize>() / events.len().max(1);
    let input = input.qualified(&config.kafka.topic_prefix);
    let output = output.qualified(&config.kafka.topic_prefix);
    rig::preload(&config, &input, &events).await?;

    let copy = copy(&config, &input, &output, n).await?;

    let m = metrics();
    let consumed = || m.stage_consumed.with_label_values(&[name]).get();
    let emitted = || m.stage_emitted.with_label_values(&[name]).get();
    let (consumed_before, emitted_before) = (consumed(), emitted());
    let node = rig::node(&config, &[role]).await?;
    let first = until("the stage's first event", Duration::from_secs(60), || {
        consumed() > consumed_before
    })
    .await?;
    let (cpu_before, threads_before) = (cpu_seconds(), threads::snapshot());
    let done = until(
        "the stage to emit every event",
        Duration::from_secs(600),
        || emitted() - emitted_before >= n,
    )
    .await?;
    let cpu = cpu_seconds() - cpu_before;
    let threads = threads::shares(&threads_before, &threads::snapshot());
    rig::stop(node).await?;
    Ok((
        Pass {
            events: n,
            record_bytes,
            cpu,
            wall: done - first,
            threads,
        },
        Pass {
            record_bytes,
            ..copy
        },
    ))
}

/// The baseline: read `input`, write each record's key and bytes to `output`, store the offset
/// once the broker acked the copy — a stage that does nothing. Like a runner, it starts reading once
/// its producer can be acked.
async fn copy(config: &Config, input: &str, output: &str, n: u64) -> anyhow::Result<Pass> {
    let group = format!("{}bench-copy", config.kafka.topic_prefix);
    let consumer: StreamConsumer = consumer_config(&config.kafka, &group, "copy").create()?;
    consumer.subscribe(&[input])?;
    let producer = Producer::new(&config.kafka)?;
    // As a runner does: records produced before the broker assigned the idempotent producer its
    // id wait for it (about 0.5 s), which made every other copy idle through most of its run.
    tokio::time::timeout(Duration::from_secs(30), producer.ready())
        .await
        .context("the copy's producer got no id")?;
    // The process's CPU seconds and its threads' counters at the first record read.
    let mut before = None;
    let mut first = None;
    let mut pending = VecDeque::new();
    for _ in 0..n {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .context("the copy's input ran dry")??;
        if first.is_none() {
            first = Some(tokio::time::Instant::now());
            before = Some((cpu_seconds(), threads::snapshot()));
        }
        let record = Record::new(
            output,
            message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            message.payload().unwrap_or_default().to_vec(),
        );
        pending.push_back((
            producer.enqueue(&record)?,
            message.partition(),
            message.offset(),
        ));
        while pending.len() > config.kafka.max_in_flight {
            if let Some((ack, partition, offset)) = pending.pop_front() {
                ack.acked().await?;
                consumer.store_offset(input, partition, offset)?;
            }
        }
    }
    while let Some((ack, partition, offset)) = pending.pop_front() {
        ack.acked().await?;
        consumer.store_offset(input, partition, offset)?;
    }
    let (cpu_before, threads_before) = before.context("the copy read nothing")?;
    let cpu = cpu_seconds() - cpu_before;
    let threads = threads::shares(&threads_before, &threads::snapshot());
    let first = first.context("the copy read nothing")?;
    Ok(Pass {
        events: n,
        record_bytes: 0,
        cpu,
        wall: first.elapsed(),
        threads,
    })
}
