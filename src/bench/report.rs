//! `wabaflow bench --json FILE`: the outcomes as one JSON document, to keep and compare across
//! commits and machines — every run's value of each ratio beside the median reported, the
//! supporting details, and what the numbers depend on (the machine, the Kafka settings, the scale).

use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use wabaflow_pipeline::config::KafkaConfig;

use super::{Outcome, Ratio};

#[derive(Debug, Serialize)]
pub struct Report {
    pub started_at: DateTime<Utc>,
    pub machine: Machine,
    pub kafka: KafkaSettings,
    pub scale: f64,
    pub rounds: usize,
    pub benchmarks: Vec<BenchReport>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: Option<u64>,
    /// `uname -sr`, as `/proc/sys/kernel/{ostype,osrelease}` give it.
    pub kernel: Option<String>,
}

impl Machine {
    pub fn this() -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().to_owned())
        };
        let memory_bytes = read("/proc/meminfo").and_then(|info| {
            let line = info.lines().find(|line| line.starts_with("MemTotal:"))?;
            let kib = line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
            Some(kib * 1024)
        });
        let kernel = match (
            read("/proc/sys/kernel/ostype"),
            read("/proc/sys/kernel/osrelease"),
        ) {
            (Some(os), Some(release)) => Some(format!("{os} {release}")),
            _ => None,
        };
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_bytes,
            kernel,
        }
    }
}

/// The settings every benchmark's consumers and producers ran with.
#[derive(Debug, Serialize)]
pub struct KafkaSettings {
    pub fetch_wait_max_ms: u32,
    pub linger_ms: u32,
    /// `None`: the registry's own partition counts.
    pub partitions: Option<u16>,
}

impl From<&KafkaConfig> for KafkaSettings {
    fn from(kafka: &KafkaConfig) -> Self {
        Self {
            fetch_wait_max_ms: kafka.fetch_wait_max_ms,
            linger_ms: kafka.linger_ms,
            partitions: kafka.partitions.map(|p| p.get()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// The benchmark's name as `wabaflow bench` takes it (`ingest`, `stage`, …).
    pub bench: String,
    pub ratios: Vec<RatioReport>,
    /// As printed: every run's ratios, then the median run's supporting numbers.
    pub details: Vec<String>,
}

impl BenchReport {
    /// `outcome` is the median of `runs` ([`Outcome::median`]).
    pub fn new(outcome: &Outcome, runs: &[Outcome]) -> Self {
        let ratios = outcome
            .ratios
            .iter()
            .enumerate()
            .map(|(index, ratio)| RatioReport::new(ratio, runs, index))
            .collect();
        Self {
            bench: format!("{:?}", outcome.bench).to_lowercase(),
            ratios,
            details: outcome.details.clone(),
        }
    }
}

/// A ratio as [`Ratio`] serializes it (what, ours, baseline, unit, target), with its value,
/// whether it met its target, and its value in every run.
#[derive(Debug, Serialize)]
pub struct RatioReport {
    #[serde(flatten)]
    pub median: Ratio,
    pub ratio: f64,
    pub met: bool,
    /// This ratio in every run, in the order they ran.
    pub runs: Vec<f64>,
}

impl RatioReport {
    fn new(ratio: &Ratio, runs: &[Outcome], index: usize) -> Self {
        Self {
            median: ratio.clone(),
            ratio: ratio.value(),
            met: ratio.met(),
            runs: runs
                .iter()
                .filter_map(|run| run.ratios.get(index))
                .map(Ratio::value)
                .collect(),
        }
    }
}

impl Report {
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self).context("encoding the benchmark report")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
    }
}
