//! The media stage against the Meta simulator and a directory object store: expired download
//! URLs are resolved again, outages make the event wait, bad media is dead-lettered with a reason.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use wabaflow_pipeline::config::{MediaConfig, MetaApiConfig};
use wabaflow_pipeline::{Context, Origin, Outcome, Stage, StageError};
use wabaflow_schemas::tenant::{GenesysIntegration, Tenant};
use wabaflow_schemas::{ConversationKey, Envelope, Event, Secret, Source};
use wabaflow_sims::meta::{MediaRef, MetaSim, MetaSimConfig};
use wabaflow_stages::MediaStage;
use wabaflow_store::objects::{DirStore, ObjectStore};
use wabaflow_store::records::Records;
use wabaflow_store::tenants::{EncryptionKey, TenantRegistry};
use wabaflow_store::{MemoryStore, StateStore};

struct Setup {
    stage: MediaStage,
    meta: MetaSim,
    objects: Arc<DirStore>,
    records: Records,
}

async fn setup() -> Setup {
    let meta = MetaSim::start(MetaSimConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        tokens: vec!["wa-token".into()],
        ..MetaSimConfig::default()
    })
    .await
    .expect("sim");
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let tenants = TenantRegistry::new(store.clone(), &EncryptionKey::generate());
    tenants
        .put(&Tenant {
            id: "acme".into(),
            phone_number_id: "1065".into(),
            display_phone_number: None,
            app_secret: Secret::new("a"),
            verify_token: Secret::new("v"),
            whatsapp_token: Secret::new("wa-token"),
            genesys: GenesysIntegration {
                region: "mypurecloud.ie".into(),
                integration_id: "int".into(),
                client_id: "c".into(),
                client_secret: Secret::new("s"),
                webhook_secret: Secret::default(),
            },
        })
        .await
        .expect("tenant");
    let root = std::env::temp_dir().join(format!("wabaflow-media-{}", uuid::Uuid::now_v7()));
    let objects = DirStore::new(root);
    objects.set_public_url("http://127.0.0.1:1");
    let records = Records::new(store);
    let stage = MediaStage::new(
        tenants,
        records.clone(),
        objects.clone(),
        &MetaApiConfig {
            graph_url: meta.base_url(),
            ..MetaApiConfig::default()
        },
        &MediaConfig::default(),
    )
    .expect("stage");
    Setup {
        stage,
        meta,
        objects,
        records,
    }
}

fn image(media: &MediaRef, sha256_base64: &str) -> Envelope {
    let message = serde_json::from_value(json!({
        "from": "16505551234", "id": "wamid.IMG", "timestamp": "1749416383", "type": "image",
        "image": {"id": media.id, "mime_type": media.mime_type, "sha256": sha256_base64}
    }))
    .expect("message");
    let mut envelope = Envelope::new(
        Source::Meta,
        ConversationKey::conversation("1065", "16505551234"),
        None,
        Utc::now(),
        None,
        Event::MetaMessage {
            phone_number_id: "1065".into(),
            display_phone_number: None,
            contact: None,
            message: Box::new(message),
            media: None,
        },
    );
    envelope.tenant = Some("acme".into());
    envelope
}

fn cx() -> Context {
    Context {
        origin: Origin {
            topic: "wa.inbound.mapped.v1".into(),
            partition: 0,
            offset: 7,
        },
    }
}

#[tokio::test]
async fn an_expired_url_is_resolved_again_and_the_file_stored_once() {
    let s = setup().await;
    let media = s.meta.add_media(vec![7u8; 5_000], "image/jpeg");
    s.meta.expire_next_urls(1);
    let Outcome::Emit(out, ()) = s
        .stage
        .process(image(&media, &media.sha256_base64), &cx())
        .await
        .expect("processed")
    else {
        panic!("discarded")
    };
    assert_eq!(s.meta.lookups(&media.id), 2, "the stale URL was replaced");
    assert_eq!(s.meta.downloads(&media.id), 1);
    let Event::MetaMessage {
        media: Some(stored),
        ..
    } = &out[0].event
    else {
        panic!("no media attached: {:?}", out[0].event)
    };
    assert_eq!(stored.sha256, media.sha256_hex);
    assert_eq!(stored.key, format!("acme/1065/{}.jpg", media.id));
    let bytes = s
        .objects
        .get("media-inbound", &stored.key)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(bytes.as_ref(), &[7u8; 5_000][..]);
    let tracking = s
        .records
        .tracking("wamid.IMG")
        .await
        .expect("read")
        .expect("tracked");
    assert_eq!(tracking.media_url.as_deref(), Some(stored.url.as_str()));
}

#[tokio::test]
async fn an_outage_makes_the_message_wait_and_bad_media_is_refused_with_a_reason() {
    let s = setup().await;
    let media = s.meta.add_media(vec![1u8; 100], "image/jpeg");
    s.meta.fail_next(1);
    let err = s
        .stage
        .process(image(&media, &media.sha256_base64), &cx())
        .await
        .expect_err("Meta is down");
    assert!(matches!(err, StageError::Unavailable(_)), "{err}");
    assert!(matches!(
        s.stage
            .process(image(&media, &media.sha256_base64), &cx())
            .await,
        Ok(Outcome::Emit(..))
    ));

    let tampered = s
        .stage
        .process(
            image(&media, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            &cx(),
        )
        .await
        .expect_err("hash mismatch");
    assert!(
        matches!(&tampered, StageError::Invalid(r) if r.contains("never matched")),
        "{tampered}"
    );

    let missing = MediaRef {
        id: "404404".into(),
        ..media.clone()
    };
    let unknown = s
        .stage
        .process(image(&missing, &media.sha256_base64), &cx())
        .await
        .expect_err("unknown media");
    assert!(
        matches!(&unknown, StageError::Invalid(r) if r.contains("cannot be resolved")),
        "{unknown}"
    );
}
