//! ClickHouse sink: rows/s of `sink:clickhouse` (the inbound feed: customer messages into
//! `message_events`, batches of `clickhouse.batch_max_rows` over HTTP, offsets after the insert)
//! against `clickhouse-client` inserting the very same rows (JSONEachRow, native protocol) into an
//! identical table. The sink is timed from its first consumed record to the moment the table
//! holds every row.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use wabaflow_pipeline::Config;
use wabaflow_pipeline::telemetry::metrics;
use wabaflow_schemas::topics::WA_INBOUND_MAPPED;
use wabaflow_sinks::clickhouse::{Analytics, ClickHouseClient};

use super::rig;
use super::{Bench, Outcome, Ratio, Target, scaled, until};
use crate::node::Role;

pub async fn run(base: &Config, scale: f64) -> anyhow::Result<Outcome> {
    let mut config = rig::isolated(base, "clickhouse");
    let sims = rig::Sims::start().await?;
    sims.wire(&mut config);
    wabaflow_pipeline::topics::create_all(&config.kafka).await?;
    let n = scaled(100_000.0, scale, 500);
    let events = rig::events(&rig::texts(n, 5_000))?;

    // Baseline: the same rows through clickhouse-client into a twin database.
    let mut twin = config.clickhouse.clone();
    twin.database = format!("{}_client", config.clickhouse.database);
    let twin = ClickHouseClient::new(&twin)?;
    twin.migrate()
        .await
        .context("migrating the baseline database")?;
    let now = chrono::Utc::now();
    let mut body = Vec::new();
    for event in &events {
        let bytes = event.to_json();
        if let Some(row) = Analytics::decode(&bytes)?.row(now) {
            serde_json::to_writer(&mut body, &row)?;
            body.push(b'\n');
        }
    }
    let host = url::Url::parse(&config.clickhouse.url)?
        .host_str()
        .unwrap_or("127.0.0.1")
        .to_owned();
    let started = Instant::now();
    let mut client = tokio::process::Command::new("clickhouse-client")
        .args([
            "--host",
            &host,
            "--database",
            twin.database(),
            "--query",
            "INSERT INTO message_events FORMAT JSONEachRow",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running clickhouse-client (apt install clickhouse-client)")?;
    let mut stdin = client.stdin.take().context("clickhouse-client stdin")?;
    stdin.write_all(&body).await?;
    drop(stdin);
    let output = client.wait_with_output().await?;
    let baseline = started.elapsed();
    if !output.status.success() {
        bail!(
            "clickhouse-client failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    ensure!(
        count(&twin).await? == n,
        "clickhouse-client did not insert every row"
    );

    // wabaflow: the events on the sink's topic, then the sink.
    rig::preload(
        &config,
        &WA_INBOUND_MAPPED.qualified(&config.kafka.topic_prefix),
        &events,
    )
    .await?;
    let topic = WA_INBOUND_MAPPED.qualified(&config.kafka.topic_prefix);
    let ceiling = rig::read_ceiling(&config, &topic, n).await?;
    let ours = ClickHouseClient::new(&config.clickhouse)?;
    let consumed = || {
        metrics()
            .stage_consumed
            .with_label_values(&["clickhouse-inbound"])
            .get()
    };
    let before = consumed();
    let written = || {
        metrics()
            .batch_records
            .with_label_values(&["clickhouse-inbound"])
            .get()
    };
    let written_before = written();
    let node = rig::node(&config, &[Role::ClickHouse]).await?;
    let first = until("the sink's first record", Duration::from_secs(60), || {
        consumed() > before
    })
    .await?;
    // Done when ClickHouse acknowledged the insert of every row, as clickhouse-client is done
    // when its insert is acknowledged; the rows are counted once afterwards (counting while the
    // sink inserts would load the server: ClickHouse 18 reads a column to count them).
    let done = until(
        "every row acknowledged by ClickHouse",
        Duration::from_secs(600),
        || written() >= written_before + n,
    )
    .await?;
    let took = done - first;
    rig::stop(node).await?;
    let held = count(&ours).await?;
    ensure!(
        held == n,
        "the sink acknowledged every row but ClickHouse holds {held} of {n}"
    );
    for client in [&ours, &twin] {
        client
            .query(&format!("DROP DATABASE IF EXISTS {}", client.database()))
            .await?;
    }

    let rate = |took: Duration| n as f64 / took.as_secs_f64().max(1e-6);
    Ok(Outcome {
        bench: Bench::Clickhouse,
        ratios: vec![Ratio {
            what: "sink:clickhouse vs clickhouse-client".into(),
            ours: rate(took),
            baseline: rate(baseline),
            unit: "rows/s",
            target: Target::AtLeast(0.6),
        }],
        details: vec![
            format!(
                "{n} message_events rows; the sink in batches of up to {} rows (or {} ms), clickhouse-client in one insert",
                config.clickhouse.batch_max_rows, config.clickhouse.batch_max_age_ms
            ),
            format!(
                "a bare consumer reads the same topic at {:.0} records/s: the broker's ceiling for any sink",
                rate(ceiling)
            ),
        ],
    })
}

/// Rows in the client's database's `message_events`.
pub(super) async fn count(client: &ClickHouseClient) -> anyhow::Result<u64> {
    Ok(client
        .query(&format!(
            "SELECT count() FROM {}.message_events",
            client.database()
        ))
        .await?
        .trim()
        .parse()?)
}
