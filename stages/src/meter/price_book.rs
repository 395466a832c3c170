//! The effective-dated price book (`config/price-book.toml` is the documented sample).
//!
//! An entry prices one billable unit of a category in a market from `valid_from` on, optionally
//! from a monthly volume tier. For a unit, the entry that applies is the one with the exact market
//! (else `*`), then the latest `valid_from` not after the unit's day, then the highest tier reached.
//! Prices are decimal strings turned into integer micro-units, so no float ever touches money.

use chrono::NaiveDate;
use serde::Deserialize;

/// The sample book, used when `meter.price_book` is empty.
pub const SAMPLE: &str = include_str!("../../../config/price-book.toml");

#[derive(Debug, Clone, PartialEq)]
pub struct PriceBook {
    pub currency: String,
    entries: Vec<Price>,
}

#[derive(Debug, Clone, PartialEq)]
struct Price {
    model: Option<String>,
    category: String,
    market: String,
    valid_from: NaiveDate,
    min_monthly_volume: u64,
    micros: i64,
}

/// The price that applies to a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub micros: i64,
    pub valid_from: NaiveDate,
}

#[derive(Deserialize)]
struct File {
    currency: String,
    #[serde(default)]
    prices: Vec<FileEntry>,
}

#[derive(Deserialize)]
struct FileEntry {
    #[serde(default)]
    model: Option<String>,
    category: String,
    market: String,
    valid_from: NaiveDate,
    #[serde(default)]
    min_monthly_volume: u64,
    price: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PriceBookError {
    #[error("price book is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("price {0:?} is not a decimal amount with at most 6 decimals")]
    Amount(String),
}

impl PriceBook {
    pub fn parse(text: &str) -> Result<Self, PriceBookError> {
        let file: File = toml::from_str(text)?;
        let entries = file
            .prices
            .into_iter()
            .map(|e| {
                Ok(Price {
                    micros: micros(&e.price)
                        .ok_or_else(|| PriceBookError::Amount(e.price.clone()))?,
                    model: e.model.map(|m| m.to_ascii_uppercase()),
                    category: e.category,
                    market: e.market.to_ascii_uppercase(),
                    valid_from: e.valid_from,
                    min_monthly_volume: e.min_monthly_volume,
                })
            })
            .collect::<Result<_, PriceBookError>>()?;
        Ok(Self {
            currency: file.currency,
            entries,
        })
    }

    pub fn sample() -> Self {
        Self::parse(SAMPLE).expect("the sample price book is valid")
    }

    /// The price of one unit of `category` under `model` to `market` on `day`, with
    /// `monthly_volume` billable units already counted this month.
    pub fn quote(
        &self,
        model: &str,
        category: &str,
        market: &str,
        day: NaiveDate,
        monthly_volume: u64,
    ) -> Option<Quote> {
        self.entries
            .iter()
            .filter(|p| {
                p.model
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(model))
                    && p.category == category
                    && (p.market == market || p.market == "*")
                    && p.valid_from <= day
                    && p.min_monthly_volume <= monthly_volume
            })
            .max_by_key(|p| (p.market != "*", p.valid_from, p.min_monthly_volume))
            .map(|p| Quote {
                micros: p.micros,
                valid_from: p.valid_from,
            })
    }
}

/// `"0.0625"` → 62 500 micro-units (non-negative, at most 6 decimals).
pub fn micros(amount: &str) -> Option<i64> {
    let amount = amount.trim();
    let (units, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    if fraction.len() > 6 || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let units: u32 = units.parse().ok()?;
    let fraction: i64 = format!("{fraction:0<6}").parse().ok()?;
    Some(i64::from(units) * 1_000_000 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("date")
    }

    #[test]
    fn the_most_specific_latest_entry_applies() {
        let book = PriceBook::parse(
            r#"
currency = "USD"
[[prices]]
category = "marketing"
market = "*"
valid_from = "2025-07-01"
price = "0.0250"
[[prices]]
category = "marketing"
market = "BR"
valid_from = "2025-07-01"
price = "0.0625"
[[prices]]
category = "marketing"
market = "BR"
valid_from = "2026-01-01"
price = "0.0700"
[[prices]]
category = "marketing"
market = "BR"
valid_from = "2026-01-01"
min_monthly_volume = 1000
price = "0.0600"
"#,
        )
        .expect("parses");
        let quote = |market, on, volume| {
            book.quote("PMP", "marketing", market, day(on), volume)
                .map(|q| q.micros)
        };
        assert_eq!(quote("DE", "2025-08-01", 0), Some(25_000));
        assert_eq!(quote("BR", "2025-08-01", 0), Some(62_500));
        // A price change takes effect by date…
        assert_eq!(quote("BR", "2026-01-01", 0), Some(70_000));
        // …and a volume tier from its threshold.
        assert_eq!(quote("BR", "2026-01-01", 1_000), Some(60_000));
        assert_eq!(
            quote("BR", "2025-06-30", 0),
            None,
            "nothing before the first entry"
        );
        assert_eq!(
            book.quote("PMP", "utility", "BR", day("2025-08-01"), 0),
            None
        );
    }

    #[test]
    fn amounts_are_exact_and_the_sample_parses() {
        assert_eq!(micros("0.0625"), Some(62_500));
        assert_eq!(micros("1"), Some(1_000_000));
        assert_eq!(micros("0.0000001"), None);
        assert_eq!(micros("abc"), None);
        assert_eq!(micros("-1.5"), None);
        assert_eq!(PriceBook::sample().currency, "USD");
    }
}
