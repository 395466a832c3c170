//! The Genesys client against the Genesys simulator: one token for many calls (single flight),
//! a new token after a revocation, the retry table's classification.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Map;
use wabaflow_pipeline::config::GenesysConfig;
use wabaflow_schemas::Secret;
use wabaflow_schemas::genesys::{IdType, InboundChannel, InboundMessage, Party};
use wabaflow_schemas::tenant::{GenesysIntegration, Tenant};
use wabaflow_sims::genesys::{GenesysSim, GenesysSimConfig};
use wabaflow_sinks::{GenesysError, GenesysService};
use wabaflow_store::tenants::{EncryptionKey, TenantRegistry};
use wabaflow_store::{MemoryStore, StateStore};

async fn setup(
    config: GenesysSimConfig,
) -> (GenesysSim, Arc<GenesysService>, Tenant, Arc<MemoryStore>) {
    let sim = GenesysSim::start(GenesysSimConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        clients: vec![("client".into(), "secret".into())],
        ..config
    })
    .await
    .expect("sim");
    let store = Arc::new(MemoryStore::new());
    let registry = TenantRegistry::new(store.clone(), &EncryptionKey::generate());
    let tenant = Tenant {
        id: "acme".into(),
        phone_number_id: "1065".into(),
        display_phone_number: None,
        app_secret: Secret::new("a"),
        verify_token: Secret::new("v"),
        whatsapp_token: Secret::new("w"),
        genesys: GenesysIntegration {
            region: sim.base_url(),
            integration_id: "int-1".into(),
            client_id: "client".into(),
            client_secret: Secret::new("secret"),
            webhook_secret: Secret::default(),
        },
    };
    let service = GenesysService::new(registry, &GenesysConfig::default()).expect("client");
    (sim, Arc::new(service), tenant, store)
}

fn message(text: &str) -> InboundMessage {
    InboundMessage {
        channel: InboundChannel {
            message_id: Some(format!("wamid.{text}")),
            from: Party {
                id: "16505551234".into(),
                id_type: IdType::Phone,
                nickname: None,
                first_name: None,
                last_name: None,
                image: None,
                extra: Map::new(),
            },
            time: Utc::now(),
            metadata: None,
            extra: Map::new(),
        },
        text: Some(text.into()),
        content: Vec::new(),
        metadata: Default::default(),
        extra: Map::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_one_token_which_is_stored_sealed() {
    let (sim, service, tenant, store) = setup(GenesysSimConfig::default()).await;
    let calls: Vec<_> = (0..16)
        .map(|i| {
            let (service, tenant) = (service.clone(), tenant.clone());
            tokio::spawn(async move {
                service
                    .send_inbound(&tenant, &message(&format!("m{i}")))
                    .await
            })
        })
        .collect();
    for call in calls {
        let answer = call.await.expect("join").expect("accepted");
        assert!(
            answer.conversation_id.is_some(),
            "prefetchConversationId was asked for"
        );
    }
    assert_eq!(sim.stats().tokens_issued, 1, "one refresh at a time");
    assert_eq!(sim.messages().len(), 16);
    let cached = store
        .get("tenant:acme:oauth:token")
        .await
        .expect("read")
        .expect("cached");
    let token = service.token(&tenant).await.expect("token");
    assert!(
        !String::from_utf8_lossy(&cached).contains(&token),
        "token stored in clear"
    );
}

#[tokio::test]
async fn a_revoked_token_is_replaced_and_the_call_goes_through() {
    let (sim, service, tenant, _) = setup(GenesysSimConfig::default()).await;
    service
        .send_inbound(&tenant, &message("before"))
        .await
        .expect("accepted");
    sim.revoke_tokens();
    service
        .send_inbound(&tenant, &message("after"))
        .await
        .expect("accepted after refresh");
    assert_eq!(sim.stats().tokens_issued, 2);
    assert_eq!(sim.messages().len(), 2);
}

#[tokio::test]
async fn answers_are_classified_by_the_retry_table() {
    let (sim, service, tenant, _) = setup(GenesysSimConfig {
        rate_limit: 1,
        rate_window: Duration::from_secs(60),
        ..GenesysSimConfig::default()
    })
    .await;
    let mut empty = message("x");
    empty.text = None;
    assert!(matches!(
        service.send_inbound(&tenant, &empty).await,
        Err(GenesysError::Rejected { status: 400, .. })
    ));
    match service.send_inbound(&tenant, &message("y")).await {
        Err(GenesysError::Throttled { after }) => assert!(after >= Duration::from_secs(1)),
        other => panic!("expected a throttle, got {other:?}"),
    }
    assert!(sim.messages().is_empty());

    let mut wrong = tenant.clone();
    wrong.id = "other".into();
    wrong.genesys.client_secret = Secret::new("nope");
    assert!(matches!(
        service.send_inbound(&wrong, &message("z")).await,
        Err(GenesysError::Unauthorized(_))
    ));
}
