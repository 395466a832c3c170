//! Prepaid wallets: a balance per tenant in micro-units of the tenant's currency, moved only by
//! idempotent entries (a credit by its reference, a debit by the usage it pays for), and a ledger
//! of those entries.
//!
//! Keys: `wallet:{tenant}:balance` (the integer balance), `wallet:{tenant}:entry:{reference}`
//! (the marker that makes an entry apply once, atomically with the balance change) and the
//! record `wallet:{tenant}:ledger` (reference → `{kind, amount_micros, balance_micros, at}`).
//! A negative balance is allowed and reported: blocking sends on it comes with campaigns.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::{StateStore, StoreError};

#[derive(Clone)]
pub struct Wallets {
    store: Arc<dyn StateStore>,
}

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub reference: String,
    /// `credit` or `debit`.
    pub kind: String,
    /// Signed: credits positive, debits negative.
    pub amount_micros: i64,
    /// The balance right after this entry.
    pub balance_micros: i64,
    pub at: String,
}

/// What an entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Movement {
    /// False when the reference had been applied before (a repeat).
    pub applied: bool,
    pub balance_micros: i64,
}

impl Wallets {
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store }
    }

    pub async fn credit(
        &self,
        tenant: &str,
        reference: &str,
        amount_micros: i64,
    ) -> Result<Movement, StoreError> {
        self.apply(tenant, "credit", reference, amount_micros.abs())
            .await
    }

    pub async fn debit(
        &self,
        tenant: &str,
        reference: &str,
        amount_micros: i64,
    ) -> Result<Movement, StoreError> {
        self.apply(tenant, "debit", reference, -amount_micros.abs())
            .await
    }

    pub async fn balance(&self, tenant: &str) -> Result<i64, StoreError> {
        Ok(self
            .store
            .get(&format!("wallet:{tenant}:balance"))
            .await?
            .and_then(|v| String::from_utf8_lossy(&v).parse().ok())
            .unwrap_or(0))
    }

    /// Every entry, oldest first.
    pub async fn ledger(&self, tenant: &str) -> Result<Vec<Entry>, StoreError> {
        let mut entries: Vec<Entry> = self
            .store
            .fields(&format!("wallet:{tenant}:ledger"))
            .await?
            .into_values()
            .filter_map(|v| serde_json::from_str(&v).ok())
            .collect();
        entries.sort_by(|a, b| a.at.cmp(&b.at).then(a.reference.cmp(&b.reference)));
        Ok(entries)
    }

    async fn apply(
        &self,
        tenant: &str,
        kind: &str,
        reference: &str,
        delta: i64,
    ) -> Result<Movement, StoreError> {
        let (applied, balance_micros) = self
            .store
            .add_once(
                &format!("wallet:{tenant}:entry:{reference}"),
                &format!("wallet:{tenant}:balance"),
                delta,
            )
            .await?;
        if applied {
            let entry = Entry {
                reference: reference.to_owned(),
                kind: kind.to_owned(),
                amount_micros: delta,
                balance_micros,
                at: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            };
            let json = serde_json::to_string(&entry).unwrap_or_default();
            self.store
                .set_fields(
                    &format!("wallet:{tenant}:ledger"),
                    &[(reference, json.as_str())],
                    None,
                )
                .await?;
        }
        Ok(Movement {
            applied,
            balance_micros,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test]
    async fn entries_apply_once_and_the_ledger_explains_the_balance() {
        let wallets = Wallets::new(Arc::new(MemoryStore::new()));
        wallets
            .credit("acme", "topup-1", 1_000_000)
            .await
            .expect("credit");
        let first = wallets
            .debit("acme", "usage:message:wamid.A", 62_500)
            .await
            .expect("debit");
        let repeat = wallets
            .debit("acme", "usage:message:wamid.A", 62_500)
            .await
            .expect("debit");
        assert!(first.applied && !repeat.applied);
        assert_eq!(wallets.balance("acme").await.expect("balance"), 937_500);
        let overdraw = wallets
            .debit("acme", "usage:message:wamid.B", 2_000_000)
            .await
            .expect("debit");
        assert_eq!(
            overdraw.balance_micros, -1_062_500,
            "negative balances are allowed, and reported"
        );
        let ledger = wallets.ledger("acme").await.expect("ledger");
        assert_eq!(ledger.len(), 3);
        assert_eq!(
            ledger.iter().map(|e| e.amount_micros).sum::<i64>(),
            -1_062_500
        );
    }
}
