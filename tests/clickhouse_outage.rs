//! ClickHouse goes away for 30 seconds in the middle of a run (its process is frozen with
//! SIGSTOP, so connections hang the way they do when a server or a network dies), and comes back:
//! every event written before, during and after the outage is in ClickHouse, and every count the
//! dashboards make counts it once. This file is its own test binary, so no other test shares the
//! frozen server.

mod support;

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use wabaflow::node::{Node, Role};
use wabaflow_pipeline::{Producer, Record, Shutdown};
use wabaflow_schemas::topics::WA_INBOUND_MAPPED;
use wabaflow_schemas::{ConversationKey, Envelope, Event, Source};
use wabaflow_sinks::clickhouse::ClickHouseClient;

fn message(i: usize) -> Envelope {
    let message = serde_json::from_value(json!({
        "from": "5511987654321", "id": format!("wamid.OUTAGE{i}"),
        "timestamp": Utc::now().timestamp().to_string(), "type": "text", "text": {"body": "hi"}
    }))
    .expect("message");
    let mut envelope = Envelope::new(
        Source::Meta,
        ConversationKey::conversation("1065", &format!("55119876{i:05}")),
        Some(Utc::now()),
        Utc::now(),
        None,
        Event::MetaMessage {
            phone_number_id: "1065".into(),
            display_phone_number: None,
            contact: None,
            message: Box::new(message),
            media: None,
        },
    );
    envelope.tenant = Some("acme".into());
    envelope
}

fn signal(signal: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_clickhouse_outage_loses_and_doubles_nothing() {
    let dir =
        std::env::var("WABAFLOW_SERVICES_DIR").unwrap_or_else(|_| "/tmp/wabaflow-services".into());
    let Ok(pid) = std::fs::read_to_string(format!("{dir}/clickhouse.pid")) else {
        panic!("ClickHouse is not managed by scripts/services.sh here ({dir}/clickhouse.pid)");
    };
    let pid = pid.trim().to_owned();
    let mut config = support::isolated_config();
    config.clickhouse.batch_max_age_ms = 200;
    config.clickhouse.timeout_ms = 2_000;
    support::create_topics(&config).await;
    let node = Node::start(&config, &[Role::ClickHouse], None, Shutdown::new())
        .await
        .expect("node starts");
    let clickhouse = ClickHouseClient::new(&config.clickhouse).expect("client");
    let db = config.clickhouse.database.clone();
    let producer = Producer::new(&config.kafka).expect("producer");
    let topic = WA_INBOUND_MAPPED.qualified(&config.kafka.topic_prefix);
    let produce = |range: std::ops::Range<usize>| {
        let records: Vec<Record> = range
            .map(|i| {
                let envelope = message(i);
                Record::new(
                    topic.as_str(),
                    Some(envelope.conversation_key.to_string()),
                    envelope.to_json(),
                )
            })
            .collect();
        let producer = producer.clone();
        async move { producer.send_all(&records).await.expect("produced") }
    };
    let distinct = |clickhouse: ClickHouseClient, sql: String| async move {
        clickhouse
            .query(&sql)
            .await
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0)
    };
    let count_sql = format!("SELECT uniqExact(event_id) FROM {db}.message_events");
    let wait_for = |want: usize| {
        let (clickhouse, sql) = (clickhouse.clone(), count_sql.clone());
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            loop {
                let got = distinct(clickhouse.clone(), sql.clone()).await;
                if got >= want || tokio::time::Instant::now() > deadline {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    produce(0..300).await;
    assert_eq!(wait_for(300).await, 300, "before the outage");

    signal("-STOP", &pid);
    produce(300..700).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    signal("-CONT", &pid);
    produce(700..1_000).await;

    assert_eq!(wait_for(1_000).await, 1_000, "every event arrived");
    // Settle: nothing more than the 1 000 distinct events ever shows, rollups included.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(distinct(clickhouse.clone(), count_sql.clone()).await, 1_000);
    assert_eq!(
        distinct(
            clickhouse.clone(),
            format!("SELECT uniqExactMerge(messages) FROM {db}.message_volume_hourly")
        )
        .await,
        1_000
    );
    let rows = distinct(
        clickhouse.clone(),
        format!("SELECT count() FROM {db}.message_events"),
    )
    .await;
    println!("1 000 events, {rows} rows inserted (repeats from retried batches are not counted)");
    node.shutdown.trigger();
    node.wait().await.expect("node stops");
    let _ = clickhouse.query(&format!("DROP DATABASE {db}")).await;
}
