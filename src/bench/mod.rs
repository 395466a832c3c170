//! `wabaflow bench`: how fast wabaflow is on this machine, each number next to a baseline measured
//! in the same run, on the same services, with the same load tool.
//!
//! | benchmark    | wabaflow                                   | baseline                             | target          |
//! |--------------|--------------------------------------------|--------------------------------------|-----------------|
//! | `ingest`     | Meta edge: webhooks/s (signature, split, Kafka ack) | bare axum handler answering 200 | ≥ 0.3×, ≥ 25 000/s |
//! | `stage`      | dedupe (Redis) and transform: events per CPU-second | consume → produce copy, same topics | ≥ 0.5×     |
//! | `e2e`        | webhook → Genesys simulator: events/s; p99 at half of it | the 50 ms target            | p99 ≤ 50 ms     |
//! | `sender`     | `sink:whatsapp` sends/s against the Meta simulator | bare HTTP client loop, same endpoint | ≥ 0.25×   |
//! | `clickhouse` | `sink:clickhouse` rows/s                    | `clickhouse-client` inserting the same rows | ≥ 0.6×    |
//! | `memory`     | peak RSS of every role, one process each, under load | 64 MiB                      | ≤ 1×            |
//!
//! The simulators' rate limits are raised so that wabaflow, not a simulator, is measured. Every
//! benchmark checks that its work was done (every event arrived) before it reports a number.
//! `--scale` multiplies the volumes: `cargo test` runs them all at a tiny scale so they cannot rot;
//! `scripts/bench.sh` runs them at full scale on a release build.
//!
//! This machine's host is shared, and one run of a benchmark can move by half from the next one
//! (a pass of the stage benchmark's copy takes a tenth of a CPU-second), so each benchmark runs
//! `--rounds` times (3 by default; `scripts/bench.sh` restarts the services before each run) and
//! reports, for each ratio, the run with the median value, after printing every run.

mod clickhouse;
mod e2e;
mod ingest;
mod memory;
mod report;
mod rig;
mod sender;
mod stage;
mod threads;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use wabaflow_pipeline::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bench {
    Ingest,
    Stage,
    E2e,
    Sender,
    Clickhouse,
    Memory,
}

impl Bench {
    pub const ALL: [Bench; 6] = [
        Bench::Ingest,
        Bench::Stage,
        Bench::E2e,
        Bench::Sender,
        Bench::Clickhouse,
        Bench::Memory,
    ];
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Benchmarks to run (all when none is named).
    #[arg(value_enum)]
    pub only: Vec<Bench>,
    /// Multiplies every volume: 1 is the published run, 0.02 a smoke run.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// The wabaflow binary the memory benchmark starts once per role (default: this one).
    #[arg(long)]
    pub exe: Option<PathBuf>,
    /// Runs of each benchmark; each ratio reported is the median run's.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// A shell command run before every run of every benchmark (`scripts/bench.sh` restarts the
    /// services with it: tansu slows down as it fills, so runs sharing one broker are not alike).
    #[arg(long)]
    pub before_each: Option<String>,
    /// Also writes the outcomes to FILE as JSON: each ratio's median and its value in every run,
    /// the details, the machine and the Kafka settings — to compare across commits.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Which way a ratio must go; in JSON `{"at_least": 0.5}` or `{"at_most": 1.0}`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Target::AtLeast(limit) => value >= limit,
            Target::AtMost(limit) => value <= limit,
        }
    }
}

/// One compared number: wabaflow's against its baseline's.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ratio {
    pub what: String,
    pub ours: f64,
    pub baseline: f64,
    pub unit: &'static str,
    pub target: Target,
}

impl Ratio {
    pub fn value(&self) -> f64 {
        self.ours / self.baseline.max(f64::MIN_POSITIVE)
    }

    pub fn met(&self) -> bool {
        self.target.met(self.value())
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sign, limit) = match self.target {
            Target::AtLeast(limit) => ("≥", limit),
            Target::AtMost(limit) => ("≤", limit),
        };
        write!(
            f,
            "{}: {} vs {} {}: ratio {:.3}× (target {sign} {limit}×) {}",
            self.what,
            human(self.ours),
            human(self.baseline),
            self.unit,
            self.value(),
            if self.met() { "met" } else { "MISSED" }
        )
    }
}

/// What one benchmark measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub bench: Bench,
    pub ratios: Vec<Ratio>,
    /// Supporting numbers (rates, percentiles, volumes), one per line.
    pub details: Vec<String>,
}

impl Outcome {
    /// One outcome for several runs of a benchmark: each ratio is the run's with the median value
    /// of that ratio (of an even number of runs, the upper of the middle two); the details are
    /// every run's ratios, then the details of the run with the first ratio's median.
    fn median(mut runs: Vec<Outcome>) -> anyhow::Result<Outcome> {
        let first = runs.first().context("no run")?;
        let (bench, count) = (first.bench, first.ratios.len());
        if runs.len() == 1 {
            return Ok(runs.remove(0));
        }
        let mut ratios = Vec::with_capacity(count);
        let mut details = Vec::new();
        let mut representative = 0;
        for index in 0..count {
            let mut order: Vec<usize> = (0..runs.len()).collect();
            order.sort_by(|&a, &b| {
                let value = |run: usize| runs[run].ratios.get(index).map_or(f64::NAN, Ratio::value);
                value(a).total_cmp(&value(b))
            });
            let median = order[order.len() / 2];
            let each: Vec<String> = runs
                .iter()
                .filter_map(|run| run.ratios.get(index))
                .map(|ratio| format!("{:.3}×", ratio.value()))
                .collect();
            let ratio = runs[median]
                .ratios
                .get(index)
                .context("a run lacks a ratio")?;
            details.push(format!(
                "{}: the median of {} runs ({})",
                ratio.what,
                runs.len(),
                each.join(", ")
            ));
            ratios.push(ratio.clone());
            if index == 0 {
                representative = median;
            }
        }
        details.push(format!(
            "the run with the median of the first ratio, run {}:",
            representative + 1
        ));
        details.append(&mut runs[representative].details);
        Ok(Outcome {
            bench,
            ratios,
            details,
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[{:?}]", self.bench)?;
        for ratio in &self.ratios {
            writeln!(f, "  {ratio}")?;
        }
        for detail in &self.details {
            writeln!(f, "    {detail}")?;
        }
        Ok(())
    }
}

/// Runs the chosen benchmarks against the services in `config` (Kafka, Redis, ClickHouse, S3),
/// printing each outcome as it completes.
pub async fn run(args: &BenchArgs, config: &Config) -> anyhow::Result<Vec<Outcome>> {
    let chosen: Vec<Bench> = if args.only.is_empty() {
        Bench::ALL.to_vec()
    } else {
        args.only.clone()
    };
    let scale = args.scale.clamp(0.001, 100.0);
    let exe = match &args.exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe().context("locating this binary")?,
    };
    let rounds = args.rounds.max(1);
    let kafka = &config.kafka;
    println!(
        "kafka: fetch.wait.max.ms {}, linger.ms {}, partitions {}",
        kafka.fetch_wait_max_ms,
        kafka.linger_ms,
        kafka.partitions.map_or_else(
            || "as registered (12, raw webhooks 6)".into(),
            |p| p.to_string()
        ),
    );
    let mut report = report::Report {
        started_at: chrono::Utc::now(),
        machine: report::Machine::this(),
        kafka: kafka.into(),
        scale,
        rounds,
        benchmarks: Vec::new(),
    };
    let mut outcomes = Vec::new();
    for bench in chosen {
        let mut runs = Vec::with_capacity(rounds);
        for round in 1..=rounds {
            if let Some(command) = &args.before_each {
                before(command).await?;
            }
            let outcome = match bench {
                Bench::Ingest => ingest::run(config, scale).await,
                Bench::Stage => stage::run(config, scale).await,
                Bench::E2e => e2e::run(config, scale).await,
                Bench::Sender => sender::run(config, scale).await,
                Bench::Clickhouse => clickhouse::run(config, scale).await,
                Bench::Memory => memory::run(config, scale, &exe).await,
            }
            .with_context(|| format!("benchmark {bench:?}, run {round}"))?;
            if rounds > 1 {
                println!("run {round} of {rounds}: {outcome}");
            }
            runs.push(outcome);
        }
        let outcome = Outcome::median(runs.clone())?;
        println!("{outcome}");
        report
            .benchmarks
            .push(report::BenchReport::new(&outcome, &runs));
        // Rewritten after each benchmark: a run cut short keeps what it measured.
        if let Some(path) = &args.json {
            report.write(path)?;
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Runs `command` with `sh -c`; fails unless it exits 0.
async fn before(command: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .await
        .with_context(|| format!("running `{command}`"))?;
    anyhow::ensure!(status.success(), "`{command}` failed: {status}");
    Ok(())
}

/// `n` scaled, never below `floor`.
fn scaled(n: f64, scale: f64, floor: u64) -> u64 {
    ((n * scale) as u64).max(floor)
}

/// CPU time (user + system) this process has used, every thread's, those that ended included, to
/// the nanosecond (`CLOCK_PROCESS_CPUTIME_ID`): `/proc`'s 10 ms ticks were a tenth of a 0.1 s pass.
fn cpu_seconds() -> f64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// Peak resident set size of a process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmHWM")?;
    Ok(kib * 1024)
}

/// 12345.6 → "12 346"; small numbers keep two decimals.
fn human(value: f64) -> String {
    if value.abs() >= 100.0 {
        let digits = format!("{:.0}", value);
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 && c != '-' {
                out.push(' ');
            }
            out.push(c);
        }
        out
    } else {
        format!("{value:.2}")
    }
}

/// Polls `condition` every few milliseconds until it holds; fails after `limit`.
async fn until(
    what: &str,
    limit: Duration,
    mut condition: impl FnMut() -> bool,
) -> anyhow::Result<tokio::time::Instant> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition() {
            return Ok(tokio::time::Instant::now());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Where the benchmark's scratch files go.
fn scratch(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("wabaflow-bench-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_read_both_ways() {
        let faster = Ratio {
            what: "x".into(),
            ours: 30.0,
            baseline: 100.0,
            unit: "/s",
            target: Target::AtLeast(0.3),
        };
        assert!(faster.met());
        let smaller = Ratio {
            target: Target::AtMost(0.25),
            ..faster.clone()
        };
        assert!(!smaller.met());
        assert_eq!(human(1_234_567.0), "1 234 567");
        assert_eq!(human(0.5), "0.50");
    }

    #[test]
    fn several_runs_report_each_ratios_median() {
        let run = |first: f64, second: f64, note: &str| Outcome {
            bench: Bench::Stage,
            ratios: vec![
                Ratio {
                    what: "a".into(),
                    ours: first,
                    baseline: 1.0,
                    unit: "/s",
                    target: Target::AtLeast(0.5),
                },
                Ratio {
                    what: "b".into(),
                    ours: second,
                    baseline: 1.0,
                    unit: "/s",
                    target: Target::AtLeast(0.5),
                },
            ],
            details: vec![note.into()],
        };
        let merged = Outcome::median(vec![
            run(0.2, 0.9, "first"),
            run(0.6, 0.1, "second"),
            run(0.4, 0.5, "third"),
        ])
        .expect("merged");
        let values: Vec<f64> = merged.ratios.iter().map(Ratio::value).collect();
        assert_eq!(values, [0.4, 0.5], "each ratio's own median");
        assert_eq!(merged.details.last().map(String::as_str), Some("third"));
        assert!(
            merged.details[0].contains("0.200×, 0.600×, 0.400×"),
            "{:?}",
            merged.details
        );

        let single = Outcome::median(vec![run(0.2, 0.9, "only")]).expect("one run");
        assert_eq!(single.details, ["only"], "one run is reported as it is");
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let before = cpu_seconds();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds() > before);
        assert!(peak_rss(std::process::id()).expect("readable") > 1024 * 1024);
    }
}
