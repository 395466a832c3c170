//! The transform stage on a group of records read together: every record gets the answer it
//! would get alone, whether it was answered at once (its tenant open in the process) or had to
//! wait (a status reading message tracking, a tenant still to be read).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;
use serde_json::json;
use wabaflow_pipeline::{Context, Origin, Outcome, Stage, StageError};
use wabaflow_schemas::tenant::{GenesysIntegration, Tenant};
use wabaflow_schemas::{ConversationKey, Envelope, Event, Secret, Source};
use wabaflow_stages::TransformStage;
use wabaflow_store::records::Records;
use wabaflow_store::tenants::{EncryptionKey, TenantRegistry};
use wabaflow_store::{MemoryStore, StateStore};

const PHONE: &str = "1065";
const CUSTOMER: &str = "16505551234";

async fn setup() -> (TransformStage, TenantRegistry, Records) {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let tenants = TenantRegistry::new(store.clone(), &EncryptionKey::generate());
    tenants
        .put(&Tenant {
            id: "acme".into(),
            phone_number_id: PHONE.into(),
            display_phone_number: None,
            app_secret: Secret::new("a"),
            verify_token: Secret::new("v"),
            whatsapp_token: Secret::new("t"),
            genesys: GenesysIntegration {
                region: "mypurecloud.ie".into(),
                integration_id: "int-acme".into(),
                client_id: "c".into(),
                client_secret: Secret::new("s"),
                webhook_secret: Secret::default(),
            },
        })
        .await
        .expect("tenant");
    let records = Records::new(store);
    let stage = TransformStage::new(tenants.clone(), records.clone());
    (stage, tenants, records)
}

fn envelope(tenant: Option<&str>, event: Event) -> Envelope {
    let mut envelope = Envelope::new(
        Source::Meta,
        ConversationKey::conversation(PHONE, CUSTOMER),
        None,
        Utc::now(),
        None,
        event,
    );
    envelope.tenant = tenant.map(str::to_owned);
    envelope
}

fn text(tenant: Option<&str>, wamid: &str, body: &str) -> Envelope {
    let message = serde_json::from_value(json!({
        "from": CUSTOMER, "id": wamid, "timestamp": "1749416383", "type": "text",
        "text": {"body": body}
    }))
    .expect("message");
    envelope(
        tenant,
        Event::MetaMessage {
            phone_number_id: PHONE.into(),
            display_phone_number: None,
            contact: None,
            message: Box::new(message),
            media: None,
        },
    )
}

fn status(wamid: &str, state: &str) -> Envelope {
    let status = serde_json::from_value(json!({
        "id": wamid, "status": state, "timestamp": "1749416390", "recipient_id": CUSTOMER
    }))
    .expect("status");
    envelope(
        Some("acme"),
        Event::MetaStatus {
            phone_number_id: PHONE.into(),
            contact: None,
            status: Box::new(status),
        },
    )
}

fn context(offset: i64) -> Context {
    Context {
        origin: Origin {
            topic: Arc::from("wabaflow.wa.inbound.enriched.v1"),
            partition: 0,
            offset,
        },
    }
}

/// What each record of `group` came to, by its index; fails if one is answered twice or never.
async fn process_all(
    stage: &TransformStage,
    group: Vec<Envelope>,
) -> HashMap<usize, Result<Outcome<()>, StageError>> {
    let size = group.len();
    let events = group
        .into_iter()
        .zip(0..)
        .map(|(envelope, offset)| (envelope, context(offset)))
        .collect();
    let mut answers = HashMap::new();
    let mut results = stage.process_all(events);
    while let Some((index, result)) = results.next().await {
        assert!(
            answers.insert(index, result).is_none(),
            "record {index} answered twice"
        );
    }
    assert_eq!(answers.len(), size, "every record answered");
    answers
}

/// The Genesys text an emitted inbound message carries, and the integration it goes to.
fn inbound_text(result: &Result<Outcome<()>, StageError>) -> (String, String) {
    let Ok(Outcome::Emit(events, ())) = result else {
        panic!("expected one event, got {result:?}");
    };
    let [out] = events.as_slice() else {
        panic!("expected one event, got {events:?}");
    };
    let Event::GenesysInbound {
        integration_id,
        message,
        ..
    } = &out.event
    else {
        panic!("expected a Genesys inbound message, got {:?}", out.event);
    };
    assert_eq!(out.tenant.as_deref(), Some("acme"));
    (
        integration_id.clone(),
        message.text.clone().expect("a text"),
    )
}

#[tokio::test]
async fn every_record_of_a_group_gets_the_answer_it_would_get_alone() {
    let (stage, tenants, records) = setup().await;
    records
        .track(
            "wamid.OUT",
            &[
                ("direction", "outbound"),
                ("status", "sent"),
                ("genesys_message_id", "g-1"),
            ],
        )
        .await
        .expect("track");
    let error = serde_json::from_value(json!({"code": 131000, "title": "Something went wrong"}))
        .expect("error");
    // The tenant is not open yet: the first group reads it while answering.
    assert!(tenants.cached("acme").is_none());
    let group = vec![
        text(Some("acme"), "wamid.A", "first"),
        status("wamid.OUT", "delivered"),
        text(Some("acme"), "wamid.B", "second"),
        status("wamid.OTHER", "delivered"),
        text(None, "wamid.C", "never mapped"),
        envelope(
            Some("acme"),
            Event::MetaError {
                phone_number_id: PHONE.into(),
                error,
            },
        ),
    ];
    let answers = process_all(&stage, group.clone()).await;

    assert_eq!(
        inbound_text(&answers[&0]),
        ("int-acme".into(), "first".into())
    );
    assert_eq!(
        inbound_text(&answers[&2]),
        ("int-acme".into(), "second".into())
    );
    let Ok(Outcome::Emit(events, ())) = &answers[&1] else {
        panic!("a tracked status becomes a receipt: {:?}", answers[&1]);
    };
    let Event::GenesysReceipt {
        integration_id,
        receipt,
    } = &events[0].event
    else {
        panic!("expected a receipt, got {:?}", events[0].event);
    };
    assert_eq!(
        (
            integration_id.as_str(),
            receipt.id.as_str(),
            receipt.status.as_str()
        ),
        ("int-acme", "g-1", "Delivered")
    );
    assert!(matches!(
        answers[&3],
        Ok(Outcome::Discard("untracked_status"))
    ));
    assert!(matches!(&answers[&4], Err(StageError::Invalid(reason)) if reason.contains("tenant")));
    assert!(matches!(answers[&5], Ok(Outcome::Discard("error"))));
    let tracked = records
        .tracking("wamid.OUT")
        .await
        .expect("read")
        .expect("tracked");
    assert_eq!(tracked.status.as_deref(), Some("delivered"));

    // Now the tenant is open: its messages are answered at once, and alike.
    assert!(tenants.cached("acme").is_some());
    let again = process_all(&stage, group[..3].to_vec()).await;
    assert_eq!(inbound_text(&again[&0]), inbound_text(&answers[&0]));
    assert_eq!(inbound_text(&again[&2]), inbound_text(&answers[&2]));
    assert!(
        matches!(again[&1], Ok(Outcome::Discard("stale_status"))),
        "the repeated status moves nothing: {:?}",
        again[&1]
    );
    for (index, envelope) in group
        .into_iter()
        .enumerate()
        .filter(|(i, _)| [0, 2].contains(i))
    {
        let alone = stage.process(envelope, &context(index as i64)).await;
        assert_eq!(inbound_text(&alone), inbound_text(&again[&index]));
    }
}
