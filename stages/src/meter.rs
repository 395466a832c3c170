//! `meter`: what each status' pricing object costs. `wa.inbound.mapped.v1` → `billing.usage.v1`.
//!
//! Meta attaches a pricing object to the `sent` or the `delivered` status of a message (WIRE.md
//! §1.4). Per-message pricing (PMP, since 2025-07-01): a message is billable when `pricing.type`
//! is `regular` (marketing and authentication on delivery, utility outside the window); service
//! and free entry points (`free_customer_service`, `free_entry_point`) are free. When `type` is
//! absent, the deprecated `billable` flag decides. Conversation-based pricing (CBP, older
//! webhooks) bills each conversation once, by `conversation.id`.
//!
//! Each unit is metered once — `meter:message:{wamid}` or `meter:conversation:{id}` is claimed —
//! however often Meta repeats the pricing object or redelivers the status. Its cost comes from
//! the [`PriceBook`] by the status' day, the category, the recipient's country (from the calling
//! code) and the month's volume so far; it is debited from the tenant's wallet idempotently (a
//! negative balance is allowed and reported). Every record, billable or free, goes to
//! `billing.usage.v1`: free messages are volume too.

pub mod price_book;

use std::time::Duration;

use async_trait::async_trait;
use chrono::Datelike;
use wabaflow_pipeline::{Context, Outcome, Stage, StageError};
use wabaflow_schemas::billing::UsageRecord;
use wabaflow_schemas::meta::Status;
use wabaflow_schemas::topics::{BILLING_USAGE, Topic, WA_INBOUND_MAPPED};
use wabaflow_schemas::{Envelope, Event};
use wabaflow_store::wallet::Wallets;
use wabaflow_store::{Claim, StateStore, StoreError};

pub use price_book::{PriceBook, Quote};

/// How long a metered unit is remembered: Meta retries for 7 days.
const METERED_TTL: Duration = Duration::from_secs(35 * 24 * 3600);

pub struct MeterStage {
    store: std::sync::Arc<dyn StateStore>,
    wallets: Wallets,
    prices: PriceBook,
}

/// The unit to mark metered once the usage record is durable.
pub struct Metered(String);

impl MeterStage {
    pub fn new(store: std::sync::Arc<dyn StateStore>, prices: PriceBook) -> Self {
        Self {
            wallets: Wallets::new(store.clone()),
            store,
            prices,
        }
    }
}

/// ISO country of a wa_id from its calling code; `ZZ` for a BSUID or an unknown code.
pub fn country_of(recipient: &str) -> String {
    if recipient.is_empty() || !recipient.chars().all(|c| c.is_ascii_digit()) {
        return "ZZ".into();
    }
    let Ok(number) = phonenumber::parse(None, format!("+{recipient}")) else {
        return "ZZ".into();
    };
    let country = number.country();
    if let Some(id) = country.id() {
        return id.as_ref().to_owned();
    }
    // Not a valid number of any region (test ranges, new blocks): bill the calling code's main
    // country, which is what Meta's rate card keys on.
    phonenumber::metadata::DATABASE
        .by_code(&country.code())
        .and_then(|regions| regions.first().map(|m| m.id().to_owned()))
        .unwrap_or_else(|| "ZZ".into())
}

fn unavailable(err: StoreError) -> StageError {
    StageError::Unavailable(err.to_string())
}

/// The billing facts of a status, if it carries pricing.
fn usage_of(tenant: &str, phone_number_id: &str, status: &Status) -> Option<(String, UsageRecord)> {
    let pricing = status.pricing.as_ref()?;
    let model = pricing
        .pricing_model
        .clone()
        .unwrap_or_else(|| "PMP".into())
        .to_ascii_uppercase();
    let conversation = status.conversation.as_ref();
    let category = pricing
        .category
        .clone()
        .or_else(|| conversation.and_then(|c| c.origin.as_ref()?.kind.clone()))
        .unwrap_or_else(|| "unknown".into());
    let billable = match pricing.kind.as_deref() {
        Some("regular") => true,
        Some("free_customer_service" | "free_entry_point") => false,
        _ => pricing.billable.unwrap_or(false),
    };
    let conversation_id = (model == "CBP")
        .then(|| conversation.and_then(|c| c.id.clone()))
        .flatten();
    let unit = match &conversation_id {
        Some(id) => format!("meter:conversation:{id}"),
        None => format!("meter:message:{}", status.id),
    };
    let occurred_at = status.timestamp.to_datetime()?;
    let recipient = status.recipient().unwrap_or_default().to_owned();
    Some((
        unit,
        UsageRecord {
            tenant: tenant.to_owned(),
            phone_number_id: phone_number_id.to_owned(),
            wamid: status.id.clone(),
            conversation_id,
            pricing_model: model,
            category,
            pricing_type: pricing.kind.clone(),
            billable,
            country: country_of(&recipient),
            recipient,
            occurred_at,
            day: occurred_at.date_naive(),
            cost_micros: 0,
            currency: String::new(),
            price_valid_from: None,
        },
    ))
}

#[async_trait]
impl Stage for MeterStage {
    type Input = Envelope;
    type Receipt = Metered;

    fn name(&self) -> &'static str {
        "meter"
    }

    fn input(&self) -> Topic {
        WA_INBOUND_MAPPED
    }

    fn output(&self) -> Option<Topic> {
        Some(BILLING_USAGE)
    }

    async fn process(
        &self,
        envelope: Envelope,
        cx: &Context,
    ) -> Result<Outcome<Metered>, StageError> {
        let Event::MetaStatus {
            phone_number_id,
            status,
            ..
        } = &envelope.event
        else {
            return Ok(Outcome::Discard("not_a_status"));
        };
        let Some(tenant) = envelope.tenant.as_deref() else {
            return Err(StageError::Invalid(
                "status without a tenant (not mapped)".into(),
            ));
        };
        let Some((unit, mut usage)) = usage_of(tenant, phone_number_id, status) else {
            return Ok(Outcome::Discard("no_pricing"));
        };
        let owner = cx.origin.text();
        match self
            .store
            .claim(&unit, &owner, METERED_TTL)
            .await
            .map_err(unavailable)?
        {
            Claim::Taken | Claim::Completed => return Ok(Outcome::Discard("already_metered")),
            Claim::New | Claim::Resumed => {}
        }
        usage.currency = self.prices.currency.clone();
        if usage.billable {
            // The month's volume for tiers: counted once per unit, whatever the retries.
            let month = format!("{:04}-{:02}", usage.day.year(), usage.day.month());
            let volume = self
                .store
                .add_once(
                    &format!("{unit}:counted"),
                    &format!(
                        "meter:volume:{tenant}:{month}:{}:{}",
                        usage.category, usage.country
                    ),
                    1,
                )
                .await
                .map_err(unavailable)?
                .1;
            let quote = self.prices.quote(
                &usage.pricing_model,
                &usage.category,
                &usage.country,
                usage.day,
                volume.saturating_sub(1).max(0) as u64,
            );
            match quote {
                Some(quote) => {
                    usage.cost_micros = quote.micros;
                    usage.price_valid_from = Some(quote.valid_from);
                }
                None => tracing::warn!(
                    category = %usage.category, country = %usage.country, day = %usage.day,
                    "no price book entry; metered at zero"
                ),
            }
            if usage.cost_micros > 0 {
                let movement = self
                    .wallets
                    .debit(tenant, &unit, usage.cost_micros)
                    .await
                    .map_err(unavailable)?;
                if movement.applied && movement.balance_micros < 0 {
                    wabaflow_pipeline::telemetry::metrics()
                        .wallet_negative_debits
                        .inc();
                    tracing::warn!(
                        tenant,
                        balance_micros = movement.balance_micros,
                        "wallet balance is negative"
                    );
                }
            }
        }
        let out = envelope.follow(Event::Usage {
            usage: Box::new(usage),
        });
        Ok(Outcome::Emit(vec![out], Metered(unit)))
    }

    async fn acked(&self, metered: Metered, cx: &Context) -> Result<(), StageError> {
        self.store
            .complete(&metered.0, &cx.origin.text())
            .await
            .map_err(unavailable)
    }

    /// Completes a group's claims in one round trip.
    async fn acked_all(&self, receipts: Vec<(Metered, Context)>) -> Result<(), StageError> {
        let claims: Vec<(String, String)> = receipts
            .into_iter()
            .map(|(metered, cx)| (metered.0, cx.origin.text()))
            .collect();
        self.store.complete_all(&claims).await.map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_come_from_calling_codes() {
        assert_eq!(country_of("5511987654321"), "BR");
        assert_eq!(country_of("16505551234"), "US");
        assert_eq!(country_of("447700900123"), "GB");
        assert_eq!(country_of("971509364178"), "AE");
        assert_eq!(country_of("US.13491208655302741918"), "ZZ");
        assert_eq!(country_of(""), "ZZ");
    }
}
