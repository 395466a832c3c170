//! The Cloud API client against the Meta simulator: each kind of answer lands in the right row of
//! the retry table.

use std::sync::Arc;
use std::time::Duration;

use wabaflow_pipeline::config::{MetaApiConfig, WhatsAppConfig};
use wabaflow_schemas::Secret;
use wabaflow_schemas::tenant::{GenesysIntegration, Tenant};
use wabaflow_schemas::whatsapp::{MediaBody, SendBody, SendRequest, TextBody};
use wabaflow_sims::meta::{MetaSim, MetaSimConfig};
use wabaflow_sinks::WhatsAppService;
use wabaflow_sinks::whatsapp::SendError;
use wabaflow_store::tenants::{EncryptionKey, TenantRegistry};
use wabaflow_store::{MemoryStore, StateStore};

fn tenant(token: &str) -> Tenant {
    Tenant {
        id: "acme".into(),
        phone_number_id: "1065".into(),
        display_phone_number: None,
        app_secret: Secret::new("a"),
        verify_token: Secret::new("v"),
        whatsapp_token: Secret::new(token),
        genesys: GenesysIntegration {
            region: "mypurecloud.ie".into(),
            integration_id: "int".into(),
            client_id: "c".into(),
            client_secret: Secret::new("s"),
            webhook_secret: Secret::default(),
        },
    }
}

fn text(to: &str) -> SendRequest {
    SendRequest {
        messaging_product: "whatsapp".into(),
        recipient_type: Some("individual".into()),
        to: Some(to.into()),
        recipient: None,
        biz_opaque_callback_data: None,
        context: None,
        body: SendBody::Text {
            text: TextBody {
                body: "hi".into(),
                preview_url: None,
            },
        },
    }
}

#[tokio::test]
async fn answers_fall_into_the_retry_table() {
    let sim = MetaSim::start(MetaSimConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        tokens: vec!["good".into()],
        throughput_mps: 2.0,
        pair_interval: Duration::from_secs(60),
        pair_burst: 1.0,
        ..MetaSimConfig::default()
    })
    .await
    .expect("sim");
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let key = EncryptionKey::generate();
    let registry = TenantRegistry::new(store.clone(), &key);
    let config = WhatsAppConfig {
        pair_interval_ms: 60_000,
        ..WhatsAppConfig::default()
    };
    let meta = MetaApiConfig {
        graph_url: sim.base_url(),
        ..MetaApiConfig::default()
    };
    let service = WhatsAppService::new(registry.clone(), &meta, &config).expect("client");
    let good = tenant("good");

    let answer = service
        .send(&good, "1065", &text("111"))
        .await
        .expect("accepted");
    assert!(answer.messages[0].id.starts_with("wamid."));

    match service.send(&good, "1065", &text("111")).await {
        Err(SendError::Throttled {
            code: 131056,
            after,
        }) => assert_eq!(after, Duration::from_secs(60)),
        other => panic!("expected the pair limit, got {other:?}"),
    }
    match service.send(&good, "1065", &text("222")).await {
        Err(SendError::Throttled { code: 130429, .. }) => {}
        other => panic!("expected the number's limit, got {other:?}"),
    }

    let mut both = text("333");
    both.body = SendBody::Image {
        image: MediaBody {
            id: Some("1".into()),
            link: Some("https://x/y.png".into()),
            ..MediaBody::default()
        },
    };
    tokio::time::sleep(Duration::from_millis(1_100)).await; // a fresh second of throughput
    match service.send(&good, "1065", &both).await {
        Err(SendError::Refused {
            code: Some(100), ..
        }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }

    // A rotated token: this node opened the tenant with the old one, another node stored the new
    // one. Meta's 190 makes this node forget its copy, so the retry reads the new token at once
    // rather than after the cache's 30 s.
    let mut rotated = tenant("revoked");
    rotated.id = "other".into();
    registry.put(&rotated).await.expect("put");
    let stale = registry.get("other").await.expect("get").expect("tenant");
    rotated.whatsapp_token = Secret::new("good");
    TenantRegistry::new(store.clone(), &key)
        .put(&rotated)
        .await
        .expect("put elsewhere");
    let token = |tenant: Arc<Tenant>| tenant.whatsapp_token.expose().to_owned();
    let cached = registry.get("other").await.expect("get").expect("tenant");
    assert_eq!(token(cached), "revoked", "still this node's copy");
    match service.send(&stale, "1065", &text("444")).await {
        Err(SendError::TokenRejected(_)) => {}
        answer => panic!("expected 190, got {answer:?}"),
    }
    let reread = registry.get("other").await.expect("get").expect("tenant");
    assert_eq!(token(reread), "good", "read again after the 190");
}
