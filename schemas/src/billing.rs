//! What the billing meter emits on `billing.usage.v1`: one record per billable unit — a message
//! under per-message pricing (PMP, since 2025-07-01), a conversation under the older
//! conversation-based pricing (CBP) — with its price from the price book. Amounts are integer
//! micro-units of the currency (1 USD = 1 000 000), so sums never drift.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UsageRecord {
    pub tenant: String,
    pub phone_number_id: String,
    /// The message the pricing object came with.
    pub wamid: String,
    /// CBP: the conversation metered; PMP: absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// `PMP` or `CBP`.
    pub pricing_model: String,
    /// `marketing`, `utility`, `authentication`, `service`, … as Meta reports it.
    pub category: String,
    /// `regular`, `free_customer_service`, `free_entry_point` (PMP), absent on CBP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_type: Option<String>,
    pub billable: bool,
    /// ISO 3166 country of the recipient, from the calling code (`ZZ` when unknown).
    pub country: String,
    pub recipient: String,
    /// The status' time, which decides the price book entry.
    pub occurred_at: DateTime<Utc>,
    pub day: NaiveDate,
    /// Price in micro-units of `currency`; 0 when not billable.
    pub cost_micros: i64,
    pub currency: String,
    /// `valid_from` of the price book entry used (absent when not billable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_valid_from: Option<NaiveDate>,
}
