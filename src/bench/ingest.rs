//! Ingest: sustained webhooks/s of the Meta edge (signature check on the raw bytes, split into
//! events, Kafka ack before the 200) against a bare axum handler that answers 200 to the same
//! requests, each at its best over a sweep of connection counts; then latency p50/p99 of both at
//! half the edge's sustained rate.

use anyhow::{Context as _, ensure};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use wabaflow_pipeline::Config;

use super::rig::{self, Signed};
use super::{Bench, Outcome, Ratio, Target, scaled};
use crate::node::Role;
use crate::replay::{Report, client, open_loop};

/// Connections of the closed loop, tried in turn; each side's sustained rate is its best. The edge
/// answers only after the broker's ack, so at a given number of connections it cannot pass
/// connections / ack time, whatever its own cost: at 64 connections and a ~6 ms ack that was
/// ~10 k/s, and at 256 under load (acks of 13–16 ms) ~16–20 k/s. The bare handler, answering at
/// once, does the same at any of them. More connections than the edge needs cost it a little
/// (more sockets, more requests waiting), so a sweep finds where it is limited by its own work.
const CONNECTIONS: [usize; 3] = [256, 512, 1024];
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
    rig::saturate(&baseline, &warmup, CONNECTIONS[0]).await?;
    rig::saturate(&ours, &warmup, CONNECTIONS[0]).await?;

    let mut sweep = Vec::with_capacity(CONNECTIONS.len());
    for connections in CONNECTIONS {
        let load = rig::texts(n, 5_000);
        let (bare_ok, bare_took) = rig::saturate(&baseline, &load, connections).await?;
        let load = rig::texts(n, 5_000);
        let (ours_ok, ours_took) = rig::saturate(&ours, &load, connections).await?;
        ensure!(
            ours_ok == n && bare_ok == n,
            "not every webhook was accepted at {connections} connections: edge {ours_ok}/{n}, bare {bare_ok}/{n}"
        );
        sweep.push(Saturated {
            connections,
            ours: n as f64 / ours_took.as_secs_f64(),
            bare: n as f64 / bare_took.as_secs_f64(),
        });
    }
    let best = |rate: fn(&Saturated) -> f64| sweep.iter().map(rate).fold(0.0, f64::max);
    let (ours_rate, bare_rate) = (best(|s| s.ours), best(|s| s.bare));

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
            format!(
                "{n} webhooks a step, closed loop; webhooks/s at {}",
                sweep
                    .iter()
                    .map(|s| format!(
                        "{} connections: edge {:.0}, bare {:.0}",
                        s.connections, s.ours, s.bare
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
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

/// One step of the saturation sweep: each side's webhooks/s at `connections`.
struct Saturated {
    connections: usize,
    ours: f64,
    bare: f64,
}
