//! The ClickHouse sink against the real server (`WABAFLOW_CLICKHOUSE_URL`, default
//! `http://127.0.0.1:8123`, ClickHouse 18.16 from `scripts/services.sh up`): migrations apply once,
//! a batch replayed after a crash changes no count and no sum, in the tables or the rollups.

use chrono::{TimeZone, Utc};
use serde_json::json;
use wabaflow_pipeline::config::ClickHouseConfig;
use wabaflow_pipeline::{BatchSink, Origin, RawRecord, StageError};
use wabaflow_schemas::billing::UsageRecord;
use wabaflow_schemas::{ConversationKey, Envelope, Event, Source};
use wabaflow_sinks::clickhouse::{ClickHouseClient, ClickHouseSink, Feed, MIGRATIONS};

/// Writes `records` as one batch, gathered as the runner gathers one.
async fn write(sink: &ClickHouseSink, records: &[RawRecord]) -> Result<(), StageError> {
    let mut batch = sink.gather(records.to_vec())?;
    sink.write(&mut batch).await
}

fn client() -> ClickHouseClient {
    let config = ClickHouseConfig {
        url: std::env::var("WABAFLOW_CLICKHOUSE_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:8123".into()),
        database: format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[20..]),
        ..ClickHouseConfig::default()
    };
    ClickHouseClient::new(&config).expect("client")
}

fn record(offset: i64, envelope: &Envelope) -> RawRecord {
    RawRecord {
        origin: Origin {
            topic: "t".into(),
            partition: 0,
            offset,
        },
        key: None,
        payload: envelope.to_json(),
        headers: Vec::new(),
    }
}

fn message(i: u32) -> Envelope {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 20, 10, i % 60, 0)
        .single()
        .expect("time");
    let message = serde_json::from_value(json!({
        "from": "5511987654321", "id": format!("wamid.CH{i}"), "timestamp": at.timestamp().to_string(),
        "type": if i.is_multiple_of(2) { "text" } else { "image" },
    }))
    .expect("message");
    let mut envelope = Envelope::new(
        Source::Meta,
        ConversationKey::conversation("1065", "5511987654321"),
        Some(at),
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

fn usage(i: u32, cost_micros: i64) -> Envelope {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 20, 12, 0, 0)
        .single()
        .expect("time");
    let record = UsageRecord {
        tenant: "acme".into(),
        phone_number_id: "1065".into(),
        wamid: format!("wamid.U{i}"),
        conversation_id: None,
        pricing_model: "PMP".into(),
        category: "marketing".into(),
        pricing_type: Some("regular".into()),
        billable: true,
        country: "BR".into(),
        recipient: "5511987654321".into(),
        occurred_at: at,
        day: at.date_naive(),
        cost_micros,
        currency: "USD".into(),
        price_valid_from: None,
    };
    Envelope::new(
        Source::Meta,
        ConversationKey::conversation("1065", "5511987654321"),
        Some(at),
        Utc::now(),
        None,
        Event::Usage {
            usage: Box::new(record),
        },
    )
}

#[tokio::test]
async fn migrations_apply_once_and_replayed_batches_count_once() {
    let client = client();
    let (major, _) = client
        .version()
        .await
        .expect("ClickHouse answers (scripts/services.sh up)");
    assert!(major >= 18);
    let applied = client.migrate().await.expect("migrates");
    assert_eq!(applied.len(), MIGRATIONS.len());
    assert!(
        client.migrate().await.expect("migrates again").is_empty(),
        "nothing new to apply"
    );

    let messages: Vec<RawRecord> = (0..40).map(|i| record(i64::from(i), &message(i))).collect();
    let inbound = ClickHouseSink::new(client.clone(), Feed::Inbound);
    write(&inbound, &messages).await.expect("written");
    // A crash after the insert, before the offsets were committed: the same records again, in
    // a batch of their own.
    write(&inbound, &messages).await.expect("written again");

    let costs = [62_500i64, 62_500, 25_000];
    let usages: Vec<RawRecord> = costs
        .iter()
        .enumerate()
        .map(|(i, cost)| record(i as i64, &usage(i as u32, *cost)))
        .collect();
    let meter = ClickHouseSink::new(client.clone(), Feed::Usage);
    write(&meter, &usages).await.expect("written");
    write(&meter, &usages).await.expect("written again");

    let db = client.database().to_owned();
    let number = |sql: String| {
        let client = client.clone();
        async move {
            client
                .query(&sql)
                .await
                .expect("query")
                .trim()
                .parse::<i64>()
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    };
    assert_eq!(
        number(format!("SELECT count() FROM {db}.message_events")).await,
        80,
        "rows are inserted twice"
    );
    assert_eq!(
        number(format!(
            "SELECT uniqExact(event_id) FROM {db}.message_events"
        ))
        .await,
        40
    );
    assert_eq!(
        number(format!(
            "SELECT uniqExactMerge(messages) FROM {db}.message_volume_hourly WHERE tenant = 'acme'"
        ))
        .await,
        40,
        "the hourly rollup counts each message once"
    );
    assert_eq!(
        number(format!(
            "SELECT uniqExactMerge(messages) FROM {db}.message_volume_hourly WHERE message_type = 'image'"
        ))
        .await,
        20
    );
    assert_eq!(
        number(format!(
            "SELECT arraySum(arrayMap(x -> x.2, groupUniqArrayMerge(units))) FROM {db}.cost_daily WHERE tenant = 'acme'"
        ))
        .await,
        150_000,
        "the daily cost rollup sums each unit once"
    );
    client
        .query(&format!("DROP DATABASE {db}"))
        .await
        .expect("dropped");
}
