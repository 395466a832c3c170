//! `wabaflow meter recompute` against the real ClickHouse: a past period priced again with a new
//! price book, each unit once (a replayed batch included), volume tiers rebuilt in time order.

use chrono::{NaiveDate, TimeZone, Utc};
use wabaflow_pipeline::config::ClickHouseConfig;
use wabaflow_pipeline::{BatchSink, Origin, RawRecord, StageError};
use wabaflow_schemas::billing::UsageRecord;
use wabaflow_schemas::{ConversationKey, Envelope, Event, Source};
use wabaflow_sinks::clickhouse::{ClickHouseClient, ClickHouseSink, Feed};
use wabaflow_stages::meter::PriceBook;

/// Writes `records` as one batch, gathered as the runner gathers one.
async fn write(sink: &ClickHouseSink, records: &[RawRecord]) -> Result<(), StageError> {
    let mut batch = sink.gather(records.to_vec())?;
    sink.write(&mut batch).await
}

fn usage(i: u32, day: u32, country: &str, billable: bool) -> RawRecord {
    let at = Utc
        .with_ymd_and_hms(2026, 10, day, 12, 0, i)
        .single()
        .expect("time");
    let record = UsageRecord {
        tenant: "acme".into(),
        phone_number_id: "1065".into(),
        wamid: format!("wamid.R{i}"),
        conversation_id: None,
        pricing_model: "PMP".into(),
        category: "marketing".into(),
        pricing_type: Some(
            if billable {
                "regular"
            } else {
                "free_entry_point"
            }
            .into(),
        ),
        billable,
        country: country.into(),
        recipient: "x".into(),
        occurred_at: at,
        day: at.date_naive(),
        cost_micros: if billable { 25_000 } else { 0 },
        currency: "USD".into(),
        price_valid_from: None,
    };
    let envelope = Envelope::new(
        Source::Meta,
        ConversationKey::conversation("1065", "x"),
        Some(at),
        Utc::now(),
        None,
        Event::Usage {
            usage: Box::new(record),
        },
    );
    RawRecord {
        origin: Origin {
            topic: "billing.usage.v1".into(),
            partition: 0,
            offset: i64::from(i),
        },
        key: None,
        payload: envelope.to_json(),
        headers: Vec::new(),
    }
}

#[tokio::test]
async fn a_past_period_is_priced_again_with_a_new_book() {
    let config = ClickHouseConfig {
        url: std::env::var("WABAFLOW_CLICKHOUSE_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:8123".into()),
        database: format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[20..]),
        ..ClickHouseConfig::default()
    };
    let clickhouse = ClickHouseClient::new(&config).expect("client");
    clickhouse
        .migrate()
        .await
        .expect("migrated (scripts/services.sh up)");
    let batch = vec![
        usage(1, 1, "BR", true),
        usage(2, 1, "BR", true),
        usage(3, 1, "BR", true),
        usage(4, 2, "BR", false),
        usage(5, 2, "US", true),
    ];
    let sink = ClickHouseSink::new(clickhouse.clone(), Feed::Usage);
    write(&sink, &batch).await.expect("written");
    write(&sink, &batch).await.expect("replayed");

    // From the third BR marketing message of the month on, a volume tier applies.
    let book = PriceBook::parse(
        r#"
currency = "USD"
[[prices]]
category = "marketing"
market = "*"
valid_from = "2026-01-01"
price = "0.0300"
[[prices]]
category = "marketing"
market = "BR"
valid_from = "2026-01-01"
price = "0.0700"
[[prices]]
category = "marketing"
market = "BR"
valid_from = "2026-01-01"
min_monthly_volume = 2
price = "0.0500"
"#,
    )
    .expect("book");
    let day = |d| NaiveDate::from_ymd_opt(2026, 10, d).expect("date");
    let lines = wabaflow::recompute::recompute(&clickhouse, &book, day(1), day(31))
        .await
        .expect("recomputed");
    let summary: Vec<(NaiveDate, &str, u64, i64, i64)> = lines
        .iter()
        .map(|l| {
            (
                l.day,
                l.country.as_str(),
                l.units,
                l.billed_micros,
                l.recomputed_micros,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (day(1), "BR", 3, 75_000, 70_000 + 70_000 + 50_000),
            (day(2), "BR", 1, 0, 0),
            (day(2), "US", 1, 25_000, 30_000),
        ]
    );
    clickhouse
        .query(&format!("DROP DATABASE {}", config.database))
        .await
        .expect("dropped");
}
