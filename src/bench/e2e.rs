//! End to end: customer webhook → Meta edge → dedupe → map → media → transform → `sink:genesys` →
//! Genesys simulator, all in one node. Sustained events/s (closed loop until the simulator holds
//! every message), then p50/p99 of webhook-due → Genesys-accepted at half of that rate (open loop),
//! and where that time goes: for each topic of the chain, how long after the edge received a
//! half-load event its record was written there (the record's timestamp against the envelope's
//! `received_at`). Before the sustained run, the same latency at a light 100/s: the pipeline's
//! floor when the machine has room to spare, against which the half-load figure shows what
//! contention adds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::time::Instant;
use wabaflow_pipeline::Config;
use wabaflow_schemas::Topic;
use wabaflow_schemas::topics::{
    DELIVERY_GENESYS, WA_INBOUND, WA_INBOUND_ENRICHED, WA_INBOUND_MAPPED, WA_INBOUND_UNIQUE,
};
use wabaflow_sims::genesys::GenesysSim;

use super::rig;
use super::{Bench, Outcome, Ratio, Target, scaled, until};
use crate::node::Role;
use crate::replay::{Report, client, open_loop};

const CONCURRENCY: usize = 64;
const P99_GOAL_MS: f64 = 50.0;
/// The light load's rate: well under what any run of this machine sustained.
const LIGHT_PER_SEC: f64 = 100.0;
const INBOUND_CHAIN: [Role; 6] = [
    Role::Ingest,
    Role::Dedupe,
    Role::Map,
    Role::Media,
    Role::Transform,
    Role::Genesys,
];

pub async fn run(base: &Config, scale: f64) -> anyhow::Result<Outcome> {
    let mut config = rig::isolated(base, "e2e");
    let sims = rig::Sims::start().await?;
    sims.wire(&mut config);
    wabaflow_pipeline::topics::create_all(&config.kafka).await?;
    let node = rig::node(&config, &INBOUND_CHAIN).await?;
    let url = rig::webhook_url(&node)?;
    let genesys = &sims.genesys;
    let arrived = |n: usize| move || genesys.message_count() >= n;

    // Warm up: consumer groups joined, token fetched, connections open.
    let warmup = rig::texts(200, 200);
    rig::saturate(&url, &warmup, CONCURRENCY).await?;
    until(
        "the warm-up messages",
        Duration::from_secs(120),
        arrived(200),
    )
    .await?;

    // The floor: a light load the machine carries with room to spare, so what remains is the
    // pipeline's own latency (its hops' fetch waits and batching) without contention.
    let light_count = scaled(LIGHT_PER_SEC * 5.0, scale.min(1.0), 50);
    let (light, _) = open_loop_at(&url, genesys, LIGHT_PER_SEC, light_count).await?;

    let n = scaled(10_000.0, scale, 200);
    let load = rig::texts(n, 2_000);
    let before = genesys.message_count();
    let started = Instant::now();
    let (accepted, _) = rig::saturate(&url, &load, CONCURRENCY).await?;
    ensure!(accepted == n, "the edge accepted {accepted} of {n}");
    let done = until(
        "every message at the Genesys simulator",
        Duration::from_secs(600),
        arrived(before + n as usize),
    )
    .await?;
    let sustained = n as f64 / (done - started).as_secs_f64();

    let half = sustained / 2.0;
    let half_load_from = chrono::Utc::now();
    let count = scaled(half * 10.0, scale.min(1.0), 100);
    let (latency, edge) = open_loop_at(&url, genesys, half, count).await?;
    rig::stop(node).await?;
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1_000.0;
    let mut hops = Vec::new();
    for topic in INBOUND_TOPICS {
        let topic = topic.qualified(&config.kafka.topic_prefix);
        let since = hop_latency(&config, &topic, half_load_from, count).await?;
        hops.push(format!(
            "{} p50 {:.0} p99 {:.0}",
            topic.trim_start_matches(&config.kafka.topic_prefix),
            since.value_at_quantile(0.5) as f64 / 1_000.0,
            since.value_at_quantile(0.99) as f64 / 1_000.0,
        ));
    }

    Ok(Outcome {
        bench: Bench::E2e,
        ratios: vec![Ratio {
            what: "webhook → Genesys p99 at half load vs the goal".into(),
            ours: ms(0.99),
            baseline: P99_GOAL_MS,
            unit: "ms",
            target: Target::AtMost(1.0),
        }],
        details: vec![
            format!(
                "sustained: {sustained:.0} events/s ({n} customer texts from 2 000 conversations, {CONCURRENCY} connections)"
            ),
            format!(
                "at half load ({half:.0}/s, {count} texts, open loop): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; edge answer p99 {:.2} ms",
                ms(0.5),
                ms(0.9),
                ms(0.99),
                latency.max() as f64 / 1_000.0,
                edge.percentile_ms(0.99)
            ),
            format!(
                "at a light {LIGHT_PER_SEC:.0}/s ({light_count} texts, before the sustained run): p50 {:.1} ms, p99 {:.1} ms",
                light.value_at_quantile(0.5) as f64 / 1_000.0,
                light.value_at_quantile(0.99) as f64 / 1_000.0,
            ),
            format!(
                "written to, ms after the edge received it: {}",
                hops.join(" · ")
            ),
        ],
    })
}

/// Posts `count` fresh texts at `rate` (open loop) and waits until the Genesys simulator holds
/// them all. Returns webhook-due → Genesys-accepted latency (microseconds) of each, and the
/// load tool's report of the edge's answers.
async fn open_loop_at(
    url: &str,
    genesys: &GenesysSim,
    rate: f64,
    count: u64,
) -> anyhow::Result<(Histogram<u64>, Report)> {
    let load = rig::texts(count, 2_000);
    let due: Mutex<HashMap<String, Instant>> = Mutex::new(HashMap::new());
    let http = client(4_096)?;
    let before = genesys.message_count();
    let report = open_loop(rate, count, 4_096, &indicatif::ProgressBar::hidden(), |i| {
        let webhook = &load[i as usize];
        due.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(webhook.wamid.clone(), Instant::now());
        webhook.post(&http, url)
    })
    .await?;
    ensure!(
        report.accepted == count,
        "at {rate:.0}/s the edge accepted {} of {count}",
        report.accepted
    );
    until(
        "every open-loop message at the Genesys simulator",
        Duration::from_secs(300),
        || genesys.message_count() >= before + count as usize,
    )
    .await?;
    let due = due.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).context("histogram")?;
    for message in genesys.messages() {
        let sent = message
            .message
            .channel
            .message_id
            .as_ref()
            .and_then(|wamid| due.get(wamid));
        if let Some(sent) = sent {
            latency.record((message.at - *sent).as_micros().max(1) as u64)?;
        }
    }
    ensure!(
        latency.len() == count,
        "{} of {count} open-loop messages matched",
        latency.len()
    );
    Ok((latency, report))
}

/// The topics a customer message crosses, in order; `sink:genesys` reads the last.
const INBOUND_TOPICS: [Topic; 5] = [
    WA_INBOUND,
    WA_INBOUND_UNIQUE,
    WA_INBOUND_MAPPED,
    WA_INBOUND_ENRICHED,
    DELIVERY_GENESYS,
];

/// How long after the edge received them the `expect` events it received since `since` were
/// written to `topic` (microseconds): each record's timestamp against its envelope's
/// `received_at`, both from this machine's clock.
async fn hop_latency(
    config: &Config,
    topic: &str,
    since: DateTime<Utc>,
    expect: u64,
) -> anyhow::Result<Histogram<u64>> {
    /// The one envelope field this reads.
    #[derive(serde::Deserialize)]
    struct Received {
        received_at: DateTime<Utc>,
    }
    let group = format!("{}bench-hops", config.kafka.topic_prefix);
    let consumer: StreamConsumer =
        wabaflow_pipeline::kafka::consumer_config(&config.kafka, &group, "hops").create()?;
    let partitions = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))?
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len() as i32);
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut since_received =
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).context("histogram")?;
    while since_received.len() < expect {
        let message = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
            .await
            .with_context(|| format!("{topic} ran dry at {} records", since_received.len()))??;
        let (Some(payload), Some(written)) = (message.payload(), message.timestamp().to_millis())
        else {
            continue;
        };
        let Ok(Received { received_at }) = serde_json::from_slice(payload) else {
            continue;
        };
        if received_at >= since {
            let micros = written * 1_000 - received_at.timestamp_micros();
            since_received.record(micros.max(1) as u64)?;
        }
    }
    Ok(since_received)
}
