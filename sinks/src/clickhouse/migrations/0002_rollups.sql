-- Rollups. States of uniqExact over the event id (and of the distinct (unit, cost) pairs for
-- money) keep the rollups exact when a batch is inserted twice.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.message_volume_hourly
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, phone_number_id, direction, message_type, hour)
AS SELECT
    tenant,
    phone_number_id,
    direction,
    message_type,
    toStartOfHour(occurred_at) AS hour,
    uniqExactState(event_id) AS messages
FROM {db}.message_events
GROUP BY tenant, phone_number_id, direction, message_type, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.cost_daily
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, category, country, day)
AS SELECT
    tenant,
    category,
    country,
    day,
    groupUniqArrayState((unit, cost_micros)) AS units
FROM {db}.usage
GROUP BY tenant, category, country, day;
