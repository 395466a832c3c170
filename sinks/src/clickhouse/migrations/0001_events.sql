-- Message, status and usage events, one row per event. Kafka is at least once: after a crash a
-- batch may be inserted again. Rows carry their event id (or metering unit), the tables collapse
-- repeats by it (ReplacingMergeTree, eventually), and every query the dashboards run counts
-- distinct ids or reads the latest row per id, so a repeat never shows twice in a number.
CREATE TABLE IF NOT EXISTS {db}.message_events (
    event_id String,
    tenant String,
    phone_number_id String,
    conversation_key String,
    direction String,
    message_type String,
    wamid String,
    genesys_message_id String,
    campaign String,
    occurred_at DateTime,
    ingested_at DateTime,
    day Date
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, phone_number_id, day, event_id);

CREATE TABLE IF NOT EXISTS {db}.status_events (
    event_id String,
    tenant String,
    phone_number_id String,
    conversation_key String,
    wamid String,
    status String,
    error_code Int32,
    pricing_model String,
    pricing_category String,
    pricing_type String,
    billable UInt8,
    occurred_at DateTime,
    ingested_at DateTime,
    day Date
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, phone_number_id, day, event_id);

CREATE TABLE IF NOT EXISTS {db}.usage (
    unit String,
    tenant String,
    phone_number_id String,
    wamid String,
    conversation_id String,
    pricing_model String,
    category String,
    pricing_type String,
    billable UInt8,
    country String,
    cost_micros Int64,
    currency String,
    occurred_at DateTime,
    ingested_at DateTime,
    day Date
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, day, unit);
