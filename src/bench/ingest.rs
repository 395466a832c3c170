//! Ingest: sustained webhooks/s of the Meta edge (signature check on the raw bytes, split into
//! events, Kafka ack before the 200) against a bare axum handler that answers 200 to the same
//! requests; then latency p50/p99 of both at half the edge's sustained rate.

use std::sync::Arc;

use anyhow::{Context as _, ensure};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use wabaflow_pipeline::{Config, Record};
use wabaflow_schemas::topics::{WA_INBOUND, WEBHOOKS_RAW};

use super::rig::{self, Signed};
use super::{Bench, Outcome, Ratio, Target, scaled};
use crate::node::Role;
use crate::replay::{Report, client, open_loop};

/// Connections of the closed loop. Enough that each side is limited by its own work rather than
/// by waiting: at 64, an edge answering after the broker's ack (~6 ms) could not pass 64 / 6 ms
/// ≈ 10 k/s whatever it cost, and the bare producer below stopped there too (10 k/s at 64, 20 k at
/// 256, 61 k at 512 in one run); the bare handler, answering at once, does the same 30–40 k/s at
/// 64, 256 or 512.
const CONCURRENCY: usize = 256;
/// The absolute goal on a 2-core machine.
const GOAL_PER_SEC: f64 = 25_000.0;

pub async fn run(base: &Config, scale: f64) -> anyhow::Result<Outcome> {
    let mut config = rig::isolated(base, "ingest");
    let sims = rig::Sims::start().await?;
    sims.wire(&mut config);
    wabaflow_pipeline::topics::create_all(&config.kafka).await?;
    let node = rig::node(&config, &[Role::Ingest]).await?;
    let ours = rig::webhook_url(&node)?;
    let baseline = bare_handler().await?;

    let n = scaled(20_000.0, scale, 200);
    let warmup = rig::texts(200, 50);
    rig::saturate(&baseline, &warmup, CONCURRENCY).await?;
    rig::saturate(&ours, &warmup, CONCURRENCY).await?;

    let load = rig::texts(n, 5_000);
    let (bare_ok, bare_took) = rig::saturate(&baseline, &load, CONCURRENCY).await?;
    let load = rig::texts(n, 5_000);
    let (ours_ok, ours_took) = rig::saturate(&ours, &load, CONCURRENCY).await?;
    ensure!(
        ours_ok == n && bare_ok == n,
        "not every webhook was accepted: edge {ours_ok}/{n}, bare {bare_ok}/{n}"
    );
    let ours_rate = n as f64 / ours_took.as_secs_f64();
    let bare_rate = n as f64 / bare_took.as_secs_f64();

    let ceiling = produce_ceiling(&config, &rig::texts(n, 5_000)).await?;

    let half = ours_rate / 2.0;
    let count = scaled(half * 5.0, scale.min(1.0), 100);
    let at_half_ours = at_rate(&ours, half, count).await?;
    let at_half_bare = at_rate(&baseline, half, count).await?;
    ensure!(
        at_half_ours.accepted == count,
        "at half load the edge accepted {} of {count} ({at_half_ours})",
        at_half_ours.accepted
    );
    rig::stop(node).await?;

    Ok(Outcome {
        bench: Bench::Ingest,
        ratios: vec![
            Ratio {
                what: "Meta edge vs bare axum handler".into(),
                ours: ours_rate,
                baseline: bare_rate,
                unit: "webhooks/s",
                target: Target::AtLeast(0.3),
            },
            Ratio {
                what: "Meta edge vs the absolute goal".into(),
                ours: ours_rate,
                baseline: GOAL_PER_SEC,
                unit: "webhooks/s",
                target: Target::AtLeast(1.0),
            },
        ],
        details: vec![
            format!("{n} webhooks each, {CONCURRENCY} connections, closed loop"),
            format!(
                "a bare producer, {CONCURRENCY} at a time, gets the same records acked (raw body + event per webhook) at {:.0} webhooks/s: the broker's ceiling for the edge",
                n as f64 / ceiling.as_secs_f64()
            ),
            format!(
                "at half load ({half:.0}/s, open loop, {count} requests): edge p50 {:.2} ms p99 {:.2} ms; bare p50 {:.2} ms p99 {:.2} ms",
                at_half_ours.percentile_ms(0.5),
                at_half_ours.percentile_ms(0.99),
                at_half_bare.percentile_ms(0.5),
                at_half_bare.percentile_ms(0.99),
            ),
        ],
    })
}

/// An axum server whose one handler reads the body and answers 200: what any edge costs at least.
async fn bare_handler() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let router = Router::new().route(
        "/webhooks/meta/{tenant}",
        post(|_body: bytes::Bytes| async { StatusCode::OK }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(format!("http://{addr}/webhooks/meta/{}", rig::TENANT))
}

/// Open loop at `rate` with fresh webhooks.
async fn at_rate(url: &str, rate: f64, count: u64) -> anyhow::Result<Report> {
    let webhooks: Vec<Signed> = rig::texts(count, 5_000);
    let http = client(4_096)?;
    open_loop(rate, count, 4_096, &indicatif::ProgressBar::hidden(), |n| {
        let webhook = &webhooks[n as usize];
        webhook.post(&http, url)
    })
    .await
    .context("open-loop load")
}

/// What the broker allows: the edge's two records per webhook (the raw body and the event), sent
/// `CONCURRENCY` webhooks at a time, each waiting for its acks, with no HTTP and no decoding.
async fn produce_ceiling(
    config: &Config,
    webhooks: &[Signed],
) -> anyhow::Result<std::time::Duration> {
    use futures::StreamExt;
    let producer = wabaflow_pipeline::Producer::new(&config.kafka)?;
    let events = rig::events(webhooks)?;
    let raw: Arc<str> = WEBHOOKS_RAW.qualified(&config.kafka.topic_prefix).into();
    let inbound: Arc<str> = WA_INBOUND.qualified(&config.kafka.topic_prefix).into();
    let pairs: Vec<[Record; 2]> = webhooks
        .iter()
        .zip(&events)
        .map(|(webhook, event)| {
            let key = Some(event.conversation_key.to_string());
            [
                Record::new(Arc::clone(&raw), key.clone(), webhook.body.to_vec()),
                Record::new(Arc::clone(&inbound), key, event.to_json()),
            ]
        })
        .collect();
    let started = std::time::Instant::now();
    let failed = std::sync::atomic::AtomicU64::new(0);
    futures::stream::iter(&pairs)
        .for_each_concurrent(CONCURRENCY, |pair| {
            let (producer, failed) = (&producer, &failed);
            async move {
                if producer.send_all(pair).await.is_err() {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
        .await;
    let took = started.elapsed();
    ensure!(
        failed.into_inner() == 0,
        "the broker refused records in the ceiling run"
    );
    Ok(took)
}
