//! Memory: peak RSS (`VmHWM`) of every role, each in a process of its own as in a deployment,
//! while a load crosses all of them: customer texts at a fixed rate (open loop) through the
//! inbound chain to the Genesys simulator, then agent replies through the outbound chain to the
//! Meta simulator, whose status webhooks come back through the edge to transform, receipts and
//! the meter; the ClickHouse and archive sinks follow along. Then a backlog: `sink:clickhouse`
//! started on rows already in its topic (as after its own outage, or ClickHouse's) reads them as
//! fast as it can, which holds more than following a steady load.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use futures::StreamExt;
use wabaflow_pipeline::Config;
use wabaflow_schemas::topics::WA_INBOUND_MAPPED;
use wabaflow_sims::genesys::agent::AgentDriver;
use wabaflow_sinks::clickhouse::ClickHouseClient;

use super::clickhouse::count;
use super::rig;
use super::{Bench, Outcome, Ratio, Target, peak_rss, scaled, scratch, until};
use crate::node::Role;
use crate::replay::{client, open_loop};

const LIMIT_BYTES: f64 = 64.0 * 1024.0 * 1024.0;
const RATE: f64 = 500.0;
const CUSTOMERS: u64 = 1_000;
/// Rows `sink:clickhouse` catches up on, at scale 1.
const BACKLOG_ROWS: f64 = 100_000.0;

/// Kills the role processes however the benchmark ends.
struct Children(Vec<(Role, tokio::process::Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.start_kill();
        }
    }
}

pub async fn run(base: &Config, scale: f64, exe: &std::path::Path) -> anyhow::Result<Outcome> {
    let mut config = rig::isolated(base, "memory");
    let sims = rig::Sims::start().await?;
    sims.wire(&mut config);
    config.archive.batch_max_age_ms = 200;
    let free = std::net::TcpListener::bind("127.0.0.1:0")?;
    config.ingest.listen = free.local_addr()?;
    drop(free);
    wabaflow_pipeline::topics::create_all(&config.kafka).await?;

    let dir = scratch("memory")?;
    let file = dir.join("wabaflow.toml");
    write_private(
        &file,
        &toml::to_string(&config).context("serialising the config")?,
    )?;
    let mut children = Children(Vec::new());
    // The edge first: the other roles' tenant registry is written by whoever starts first, and
    // the edge is the one the load needs.
    for role in Role::ALL {
        let log = dir.join(format!("{}.log", role.to_string().replace(':', "-")));
        children.0.push((role, start(exe, &file, role, &log)?));
    }

    let url = format!(
        "http://{}/webhooks/meta/{}",
        config.ingest.listen,
        rig::TENANT
    );
    let http = client(4_096)?;
    let probe = format!("{url}?hub.mode=subscribe&hub.verify_token=bench-verify&hub.challenge=1");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !http
        .get(&probe)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the edge did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sims.meta
        .subscribe(rig::PHONE_NUMBER_ID, &url, rig::APP_SECRET);

    // Customers write.
    let count = scaled(10_000.0, scale, 100);
    let texts = rig::texts(count, CUSTOMERS);
    let report = open_loop(RATE, count, 4_096, &indicatif::ProgressBar::hidden(), |i| {
        let webhook = &texts[i as usize];
        webhook.post(&http, &url)
    })
    .await?;
    ensure!(
        report.accepted == count,
        "the edge accepted {} of {count}",
        report.accepted
    );
    let genesys = &sims.genesys;
    until(
        "every text at the Genesys simulator",
        Duration::from_secs(600),
        || genesys.message_count() as u64 >= count,
    )
    .await?;

    // Agents answer; Meta's statuses come back.
    let replies = scaled(2_000.0, scale, 20).min(count);
    let agent = AgentDriver::new(
        format!(
            "http://{}/webhooks/genesys/{}",
            config.ingest.listen,
            rig::TENANT
        ),
        "bench-hook",
        &config.tenants[0].genesys.integration_id,
    );
    let customers: Vec<String> = texts
        .iter()
        .take(replies as usize)
        .map(|t| customer_of(&t.body))
        .collect::<anyhow::Result<_>>()?;
    futures::stream::iter(customers.iter().enumerate())
        .for_each_concurrent(16, |(i, to)| {
            let body = agent.text(to, &format!("Thanks, reply {i}"));
            let agent = &agent;
            async move {
                agent.post(&body).await;
            }
        })
        .await;
    let meta = &sims.meta;
    until(
        "every reply at the Meta simulator",
        Duration::from_secs(600),
        || meta.send_stats().accepted as u64 >= replies,
    )
    .await?;
    // Let the status webhooks of the replies cross transform, receipts and the meter.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut peaks = Vec::new();
    for (role, child) in &children.0 {
        let pid = child
            .id()
            .with_context(|| format!("{role} exited early; see {}", dir.display()))?;
        peaks.push((role.to_string(), peak_rss(pid)?));
    }
    drop(children);
    let backlog = scaled(BACKLOG_ROWS, scale, 500);
    let caught_up = catch_up(base, backlog, exe, &dir).await?;
    peaks.push((format!("{} catching up", Role::ClickHouse), caught_up));
    // The logs stay behind only when something failed (the early returns above).
    let _ = std::fs::remove_dir_all(&dir);
    let (worst_role, worst) = peaks
        .iter()
        .max_by_key(|(_, bytes)| *bytes)
        .cloned()
        .context("no role")?;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let mut details = vec![format!(
        "{count} customer texts at {RATE:.0}/s from {CUSTOMERS} customers, then {replies} agent replies and their statuses; one process per role; then {} catching up on {backlog} rows already in its topic",
        Role::ClickHouse
    )];
    details.extend(
        peaks
            .iter()
            .map(|(role, bytes)| format!("{role:<16} peak RSS {:>6.1} MiB", mib(*bytes))),
    );
    Ok(Outcome {
        bench: Bench::Memory,
        ratios: vec![Ratio {
            what: format!("largest role ({worst_role}) vs 64 MiB"),
            ours: mib(worst),
            baseline: LIMIT_BYTES / (1024.0 * 1024.0),
            unit: "MiB",
            target: Target::AtMost(1.0),
        }],
        details,
    })
}

/// Peak RSS of `sink:clickhouse` in a process of its own, started on `rows` customer messages
/// already in its topic, once ClickHouse holds every row. Its topics and database are its own:
/// no other role reads them.
async fn catch_up(base: &Config, rows: u64, exe: &Path, dir: &Path) -> anyhow::Result<u64> {
    let config = rig::isolated(base, "catchup");
    wabaflow_pipeline::topics::create_all(&config.kafka).await?;
    let events = rig::events(&rig::texts(rows, 5_000))?;
    let topic = WA_INBOUND_MAPPED.qualified(&config.kafka.topic_prefix);
    rig::preload(&config, &topic, &events).await?;
    let file = dir.join("catch-up.toml");
    write_private(
        &file,
        &toml::to_string(&config).context("serialising the config")?,
    )?;
    let role = Role::ClickHouse;
    let sink = start(exe, &file, role, &dir.join("catch-up.log"))?;
    let clickhouse = ClickHouseClient::new(&config.clickhouse)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    // The sink creates its database when it starts: until then there is nothing to count.
    while !count(&clickhouse).await.is_ok_and(|held| held >= rows) {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{role} did not write {rows} rows within 5 minutes; see {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let pid = sink
        .id()
        .with_context(|| format!("{role} exited early; see {}", dir.display()))?;
    let peak = peak_rss(pid)?;
    drop(sink);
    clickhouse
        .query(&format!(
            "DROP DATABASE IF EXISTS {}",
            clickhouse.database()
        ))
        .await?;
    Ok(peak)
}

/// `exe run --roles {role}` with the config in `file`, its log in `log`; killed when dropped.
fn start(exe: &Path, file: &Path, role: Role, log: &Path) -> anyhow::Result<tokio::process::Child> {
    tokio::process::Command::new(exe)
        .args(["--config"])
        .arg(file)
        .args(["run", "--roles", &role.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {role}"))
}

/// The customer (`from`) of a text webhook.
fn customer_of(body: &[u8]) -> anyhow::Result<String> {
    let json: serde_json::Value = serde_json::from_slice(body)?;
    json["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
        .as_str()
        .map(str::to_owned)
        .context("text webhook without a sender")
}

/// The config file holds credentials: readable by this user only.
fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
