//! `wabaflow replay`: replays Meta webhook bodies against a running wabaflow at a fixed arrival
//! rate — open loop: a request leaves on schedule whether or not earlier ones were answered, so
//! a slow server shows up as latency, not as a politely lowered load (the coordinated-omission
//! trap of closed-loop tools).
//!
//! Bodies come from files or directories of JSON webhooks (the shared fixtures work, and so do the
//! golden cases in `tests/golden/meta`). Each copy is
//! made to belong to the target tenant — every `metadata.phone_number_id` is rewritten — and every
//! message and status id is made unique per copy, so dedupe lets them through; then it is signed
//! with the tenant's app secret, as Meta would. The report: sent, accepted (2xx), rejected (other
//! statuses), failed (no answer), skipped (more than `max_in_flight` awaiting answers) and the
//! latency distribution (HDR histogram, microsecond precision), measured from when each request
//! was due. [`open_loop`] is the engine; `wabaflow bench` drives it too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};
use wabaflow_ingest::meta::{SIGNATURE_HEADER, sign};

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Webhook JSON files, or directories of them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The tenant's Meta webhook URL, e.g. http://127.0.0.1:8080/webhooks/meta/acme.
    #[arg(long)]
    pub url: String,
    /// The tenant's app secret (signs each body).
    #[arg(long, env = "WABAFLOW_REPLAY_SECRET")]
    pub secret: String,
    /// The tenant's phone number id, written into every body.
    #[arg(long)]
    pub phone_number_id: String,
    /// Requests per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Requests in total (the bodies are cycled).
    #[arg(long, default_value_t = 1_000)]
    pub count: u64,
    /// Requests awaiting an answer before new ones are skipped (and counted as such).
    #[arg(long, default_value_t = 2_048)]
    pub max_in_flight: usize,
    /// No progress bar (logs, CI).
    #[arg(long)]
    pub quiet: bool,
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct Report {
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub failed: u64,
    pub skipped: u64,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
}

impl Report {
    /// Requests per second actually sent.
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn percentile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1_000.0
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} in {:.1} s ({:.0}/s): accepted {}, rejected {}, failed {}, skipped {}; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.accepted,
            self.rejected,
            self.failed,
            self.skipped,
            self.percentile_ms(0.50),
            self.percentile_ms(0.90),
            self.percentile_ms(0.99),
            self.latency_us.max() as f64 / 1_000.0
        )
    }
}

/// Every webhook body under `paths` that has at least one message or status.
pub fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<Value>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path.clone());
        }
    }
    let bodies: Vec<Value> = files
        .iter()
        .filter_map(|path| read(path).ok())
        .filter(|body| ids(body) > 0)
        .collect();
    if bodies.is_empty() {
        bail!("no webhook with a message or a status under the given paths");
    }
    Ok(bodies)
}

/// A webhook body, or the `request` of one of the project's golden cases (`tests/golden/meta`).
fn read(path: &Path) -> anyhow::Result<Value> {
    let json: Value = serde_json::from_slice(&std::fs::read(path)?)?;
    Ok(match json.get("request") {
        Some(request) if request.get("entry").is_some() => request.clone(),
        _ => json,
    })
}

/// How many messages and statuses a body carries.
fn ids(body: &Value) -> usize {
    values(body)
        .map(|v| {
            v["messages"].as_array().map_or(0, Vec::len)
                + v["statuses"].as_array().map_or(0, Vec::len)
        })
        .sum()
}

fn values(body: &Value) -> impl Iterator<Item = &Value> {
    body["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["changes"].as_array().into_iter().flatten())
        .map(|c| &c["value"])
}

/// A copy of `body` for the target number, with ids unique to copy number `n`.
pub fn personalize(body: &Value, phone_number_id: &str, n: u64) -> Vec<u8> {
    let mut body = body.clone();
    let mut i = 0;
    for entry in body["entry"].as_array_mut().into_iter().flatten() {
        for change in entry["changes"].as_array_mut().into_iter().flatten() {
            let value = &mut change["value"];
            if value.get("metadata").is_some() {
                value["metadata"]["phone_number_id"] = Value::from(phone_number_id);
            }
            for list in ["messages", "statuses"] {
                for item in value[list].as_array_mut().into_iter().flatten() {
                    i += 1;
                    item["id"] = Value::from(format!("wamid.REPLAY.{n}.{i}"));
                }
            }
        }
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

pub async fn run(args: &ReplayArgs) -> anyhow::Result<Report> {
    if !args.rate.is_finite() || args.rate <= 0.0 {
        bail!("--rate must be positive");
    }
    let bodies = load(&args.paths)?;
    let http = client(args.max_in_flight)?;
    let progress = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(args.count)
    };
    let report = open_loop(args.rate, args.count, args.max_in_flight, &progress, |n| {
        let body = personalize(
            &bodies[(n as usize) % bodies.len()],
            &args.phone_number_id,
            n,
        );
        let signature = sign(args.secret.as_bytes(), &body);
        http.post(&args.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
    })
    .await?;
    progress.finish_and_clear();
    Ok(report)
}

/// An HTTP client for load: no idle-pool limit below the load's concurrency.
pub fn client(max_in_flight: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(max_in_flight)
        .build()?)
}

/// Sends `count` requests made by `request(n)` at `rate` per second, open loop: request `n` is due
/// at `started + n / rate` and its latency is measured from then, so a server (or a load tool)
/// that falls behind shows up as latency. A request that would exceed `max_in_flight` unanswered
/// ones is skipped and counted.
pub async fn open_loop(
    rate: f64,
    count: u64,
    max_in_flight: usize,
    progress: &indicatif::ProgressBar,
    request: impl Fn(u64) -> reqwest::RequestBuilder,
) -> anyhow::Result<Report> {
    let latency = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?,
    ));
    let (accepted, rejected, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut skipped = 0;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..count {
        let due = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        progress.inc(1);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let request = request(n);
        let (latency, accepted, rejected, failed) = (
            latency.clone(),
            accepted.clone(),
            rejected.clone(),
            failed.clone(),
        );
        tasks.spawn(async move {
            let outcome = request.send().await;
            let took = due.elapsed().as_micros().max(1) as u64;
            drop(slot);
            match outcome {
                Ok(response) if response.status().is_success() => {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let _ = latency.lock().await.record(took.min(60_000_000));
                }
                Ok(_) => {
                    rejected.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let latency_us = latency.lock().await.clone();
    Ok(Report {
        sent: count - skipped,
        accepted: accepted.load(Ordering::Relaxed),
        rejected: rejected.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        skipped,
        elapsed: started.elapsed(),
        latency_us,
    })
}
