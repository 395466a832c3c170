//! `wabaflow meter recompute`: prices a past period again from the metered events in ClickHouse,
//! with the current price book or another one — for a corrected rate card, a dispute, or a
//! what-if. Each unit (message or conversation) counts once, volume tiers are rebuilt in time
//! order per tenant, month, category and country, exactly as the meter builds them.

use std::collections::BTreeMap;

use anyhow::Context as _;
use chrono::{Datelike, NaiveDate};
use wabaflow_sinks::clickhouse::ClickHouseClient;
use wabaflow_stages::meter::PriceBook;

/// One line of the result: a tenant's cost for a day, category and country.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Line {
    pub tenant: String,
    pub day: NaiveDate,
    pub category: String,
    pub country: String,
    pub units: u64,
    /// What the meter charged at the time.
    pub billed_micros: i64,
    /// What `book` charges.
    pub recomputed_micros: i64,
}

pub async fn recompute(
    clickhouse: &ClickHouseClient,
    book: &PriceBook,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Vec<Line>> {
    let db = clickhouse.database();
    let sql = format!(
        "SELECT unit, any(tenant), any(pricing_model), any(category), any(country), min(day), max(billable), any(cost_micros), min(occurred_at) AS at \
         FROM {db}.usage WHERE day >= toDate('{from}') AND day <= toDate('{to}') \
         GROUP BY unit ORDER BY at, unit FORMAT TabSeparated"
    );
    let rows = clickhouse
        .query(&sql)
        .await
        .context("reading usage from ClickHouse")?;
    let mut volumes: BTreeMap<(String, i32, u32, String, String), u64> = BTreeMap::new();
    let mut lines: BTreeMap<(String, NaiveDate, String, String), Line> = BTreeMap::new();
    for row in rows.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = row.split('\t').collect();
        let [_, tenant, model, category, country, day, billable, cost, _] = f.as_slice() else {
            anyhow::bail!("unexpected row {row:?}");
        };
        let day: NaiveDate = day.parse().with_context(|| format!("day {day:?}"))?;
        let billable = *billable == "1";
        let billed: i64 = cost.parse().unwrap_or(0);
        let mut recomputed = 0;
        if billable {
            let volume = volumes
                .entry((
                    tenant.to_string(),
                    day.year(),
                    day.month(),
                    category.to_string(),
                    country.to_string(),
                ))
                .or_default();
            recomputed = book
                .quote(model, category, country, day, *volume)
                .map_or(0, |q| q.micros);
            *volume += 1;
        }
        let line = lines
            .entry((
                tenant.to_string(),
                day,
                category.to_string(),
                country.to_string(),
            ))
            .or_insert_with(|| Line {
                tenant: tenant.to_string(),
                day,
                category: category.to_string(),
                country: country.to_string(),
                units: 0,
                billed_micros: 0,
                recomputed_micros: 0,
            });
        line.units += 1;
        line.billed_micros += billed;
        line.recomputed_micros += recomputed;
    }
    Ok(lines.into_values().collect())
}
