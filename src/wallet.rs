//! Wallet top-ups: the credit moves the balance in the state store (once per reference) and is
//! recorded in ClickHouse, where the Cost dashboard computes balances from credits and metered
//! costs.

use anyhow::Context as _;
use chrono::Utc;
use serde_json::json;
use wabaflow_pipeline::Config;
use wabaflow_sinks::clickhouse::ClickHouseClient;
use wabaflow_store::wallet::{Movement, Wallets};

/// Credits `amount_micros` to `tenant` under `reference`. The analytics copy is best effort: a
/// ClickHouse outage leaves the balance right and the dashboard short of this credit (it says so).
pub async fn credit(
    config: &Config,
    tenant: &str,
    reference: &str,
    amount_micros: i64,
) -> anyhow::Result<Movement> {
    let wallets = Wallets::new(crate::node::open_store(config).await?);
    let movement = wallets
        .credit(tenant, reference, amount_micros)
        .await
        .context("crediting the wallet")?;
    let now = Utc::now();
    let row = json!({
        "tenant": tenant, "reference": reference, "amount_micros": amount_micros.abs(),
        "at": now.format("%Y-%m-%d %H:%M:%S").to_string(), "day": now.format("%Y-%m-%d").to_string(),
    });
    let recorded = async {
        let clickhouse = ClickHouseClient::new(&config.clickhouse)?;
        clickhouse.migrate().await?;
        clickhouse.insert("wallet_credits", &[row]).await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(err) = recorded {
        tracing::warn!(
            error = format!("{err:#}"),
            "credit applied; not recorded in ClickHouse, dashboards will not show it"
        );
    }
    Ok(movement)
}
