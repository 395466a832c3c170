//! The billing meter on the shared fixtures' statuses (PMP and CBP), with repeated pricing
//! objects, redelivered statuses and a price change by date.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use wabaflow_pipeline::{Context, Origin, Outcome, Stage};
use wabaflow_schemas::billing::UsageRecord;
use wabaflow_schemas::meta::{ChangeValue, Status, Webhook};
use wabaflow_schemas::{ConversationKey, Envelope, Event, Source};
use wabaflow_stages::MeterStage;
use wabaflow_stages::meter::PriceBook;
use wabaflow_store::wallet::Wallets;
use wabaflow_store::{MemoryStore, StateStore};

const BOOK: &str = r#"
currency = "USD"
[[prices]]
model = "PMP"
category = "marketing"
market = "US"
valid_from = "2025-01-01"
price = "0.0250"
[[prices]]
model = "PMP"
category = "marketing"
market = "US"
valid_from = "2025-06-15"
price = "0.0300"
[[prices]]
model = "CBP"
category = "utility"
market = "*"
valid_from = "2024-01-01"
price = "0.0040"
"#;

fn status(fixture: &str) -> Option<Status> {
    let path = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../../shared/fixtures/meta")
    .join(fixture);
    let webhook: Webhook = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    webhook
        .entry
        .into_iter()
        .flat_map(|e| e.changes)
        .find_map(|c| match c.value {
            ChangeValue::Messages(value) => value.statuses?.into_iter().next(),
            _ => None,
        })
}

fn envelope(status: Status) -> Envelope {
    let mut envelope = Envelope::new(
        Source::Meta,
        ConversationKey::conversation("1065", status.recipient().unwrap_or("x")),
        status.timestamp.to_datetime(),
        Utc::now(),
        None,
        Event::MetaStatus {
            phone_number_id: "1065".into(),
            contact: None,
            status: Box::new(status),
        },
    );
    envelope.tenant = Some("acme".into());
    envelope
}

struct Meter {
    stage: MeterStage,
    store: Arc<dyn StateStore>,
    offset: std::sync::atomic::AtomicI64,
}

impl Meter {
    fn new() -> Self {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        Self {
            stage: MeterStage::new(store.clone(), PriceBook::parse(BOOK).expect("book")),
            store,
            offset: Default::default(),
        }
    }

    /// Meters `status` as a new record; `None` when discarded.
    async fn meter(&self, status: Status) -> Option<UsageRecord> {
        let cx = Context {
            origin: Origin {
                topic: "wa.inbound.mapped.v1".into(),
                partition: 0,
                offset: self
                    .offset
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            },
        };
        match self
            .stage
            .process(envelope(status), &cx)
            .await
            .expect("metered")
        {
            Outcome::Emit(mut out, receipt) => {
                self.stage.acked(receipt, &cx).await.expect("acked");
                match out.pop().map(|e| e.event) {
                    Some(Event::Usage { usage }) => Some(*usage),
                    other => panic!("unexpected {other:?}"),
                }
            }
            Outcome::Discard(_) => None,
            Outcome::Forward(_) => panic!("the meter emits usage, it never forwards its input"),
        }
    }
}

#[tokio::test]
async fn pmp_marketing_is_billed_once_by_date_and_country_and_service_is_free() {
    let (Some(marketing), Some(sent), Some(delivered), Some(read)) = (
        status("status-sent-pmp-marketing.metadocs.json"),
        status("status-sent-pmp-free-customer-service-real-capture.renderlog.json"),
        status("status-delivered-pmp-real-capture.renderlog.json"),
        status("status-read-pmp-real-capture.renderlog.json"),
    ) else {
        eprintln!("shared fixtures not present");
        return;
    };
    let meter = Meter::new();
    // 2025-06-15 (1750030073), a US number: the price valid from that day applies.
    let usage = meter.meter(marketing.clone()).await.expect("metered");
    assert!(usage.billable);
    assert_eq!(
        (usage.category.as_str(), usage.country.as_str()),
        ("marketing", "US")
    );
    assert_eq!(usage.cost_micros, 30_000);
    assert_eq!(
        usage.price_valid_from.map(|d| d.to_string()).as_deref(),
        Some("2025-06-15")
    );
    // Meta repeats the status (another webhook, a retry): billed once.
    assert!(meter.meter(marketing.clone()).await.is_none());
    // The day before the price change, the earlier price.
    let mut earlier = marketing;
    earlier.id = "wamid.EARLIER".into();
    earlier.timestamp = (1_750_030_073 - 86_400).into();
    assert_eq!(
        meter.meter(earlier).await.expect("metered").cost_micros,
        25_000
    );

    // A free service message with the pricing object on sent, delivered and read: one record, free.
    let free = meter.meter(sent).await.expect("metered");
    assert!(!free.billable);
    assert_eq!(free.cost_micros, 0);
    assert_eq!(free.pricing_type.as_deref(), Some("free_customer_service"));
    assert!(meter.meter(delivered).await.is_none());
    assert!(meter.meter(read).await.is_none());

    let wallets = Wallets::new(meter.store.clone());
    assert_eq!(wallets.balance("acme").await.expect("balance"), -55_000);
    assert_eq!(wallets.ledger("acme").await.expect("ledger").len(), 2);
}

#[tokio::test]
async fn cbp_is_billed_per_conversation() {
    let Some(utility) = status("status-sent-cbp-utility.wedding.json") else {
        return;
    };
    let meter = Meter::new();
    let usage = meter.meter(utility.clone()).await.expect("metered");
    assert_eq!(usage.pricing_model, "CBP");
    assert_eq!(usage.country, "AE");
    assert_eq!(usage.cost_micros, 4_000);
    assert!(usage.conversation_id.is_some());
    // Another message in the same conversation costs nothing more.
    let mut second = utility;
    second.id = "wamid.SECOND".into();
    assert!(meter.meter(second).await.is_none());
}
