-- Wallet credits (top-ups), so the Cost dashboard can show balances: balance = distinct credits
-- minus distinct metered costs. One row per credit reference; repeats collapse like events do.
CREATE TABLE IF NOT EXISTS {db}.wallet_credits (
    tenant String,
    reference String,
    amount_micros Int64,
    at DateTime,
    day Date
) ENGINE = ReplacingMergeTree(at)
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, reference);
