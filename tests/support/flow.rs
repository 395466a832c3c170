//! A whole wabaflow node between the two simulators, for the end-to-end tests: one tenant
//! (`acme`) whose Meta number and Genesys integration point at the simulators, real tansu, Redis
//! and s3s-fs behind it.

use std::sync::Arc;
use std::time::Duration;

use wabaflow::node::{Node, Role};
use wabaflow_pipeline::config::ObjectsBackend;
use wabaflow_pipeline::{Config, Shutdown};
use wabaflow_schemas::Secret;
use wabaflow_schemas::tenant::{GenesysIntegration, Tenant};
use wabaflow_sims::genesys::agent::AgentDriver;
use wabaflow_sims::genesys::{Accepted, GenesysSim, GenesysSimConfig};
use wabaflow_sims::meta::driver::{CustomerDriver, RetryPolicy};
use wabaflow_sims::meta::webhooks::{BusinessNumber, InboundMessage};
use wabaflow_sims::meta::{MetaSim, MetaSimConfig};
use wabaflow_store::RedisStore;
use wabaflow_store::objects::{ObjectStore, S3Settings, S3Store};
use wabaflow_store::records::Records;
use wabaflow_store::tenants::EncryptionKey;

use super::{create_topics, isolated_config};

pub const WA_TOKEN: &str = "EAAG-integration-token";
pub const PHONE_NUMBER_ID: &str = "106540352242922";

pub struct Rig {
    pub node: Node,
    pub config: Config,
    pub meta: MetaSim,
    pub genesys: GenesysSim,
    /// The customer side: Meta webhooks to acme's URL.
    pub driver: CustomerDriver,
    /// The agent side: Genesys outbound webhooks to acme's URL.
    pub agent: AgentDriver,
    pub number: BusinessNumber,
}

pub fn s3(config: &Config) -> S3Store {
    S3Store::new(S3Settings {
        endpoint: config.objects.s3_endpoint.clone(),
        region: config.objects.s3_region.clone(),
        access_key: config.objects.s3_access_key.clone(),
        secret_key: config.objects.s3_secret_key.clone(),
        path_style: true,
        bucket_prefix: config.objects.bucket_prefix.clone(),
    })
    .expect("s3 settings")
}

impl Rig {
    pub async fn start(genesys: GenesysSimConfig) -> Rig {
        Self::start_with(genesys, MetaSimConfig::default(), |_| {}).await
    }

    /// With simulator settings of the test's choosing and a last word on the configuration.
    pub async fn start_with(
        genesys: GenesysSimConfig,
        meta: MetaSimConfig,
        adjust: impl FnOnce(&mut Config),
    ) -> Rig {
        Self::start_roles(genesys, meta, &Role::ALL, adjust).await
    }

    /// Only `roles` run in the rig's node (the ingest role must be one of them).
    pub async fn start_roles(
        genesys: GenesysSimConfig,
        meta: MetaSimConfig,
        roles: &[Role],
        adjust: impl FnOnce(&mut Config),
    ) -> Rig {
        let meta = MetaSim::start(MetaSimConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            tokens: vec![WA_TOKEN.into()],
            ..meta
        })
        .await
        .expect("meta sim");
        let genesys = GenesysSim::start(GenesysSimConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            clients: vec![("wabaflow-client".into(), "client-s3cret".into())],
            integrations: vec!["int-acme".into()],
            ..genesys
        })
        .await
        .expect("genesys sim");

        let mut config = isolated_config();
        let suffix = &config.kafka.topic_prefix[1..config.kafka.topic_prefix.len() - 1];
        config.objects.backend = ObjectsBackend::S3;
        config.objects.s3_endpoint = std::env::var("WABAFLOW_S3_ENDPOINT")
            .unwrap_or_else(|_| "http://127.0.0.1:8014".into());
        config.objects.bucket_prefix = format!("t{suffix}-");
        config.tenancy.encryption_key = Secret::new(EncryptionKey::generate().to_base64());
        config.meta.graph_url = meta.base_url();
        config.archive.batch_max_age_ms = 200;
        let tenant = Tenant {
            id: "acme".into(),
            phone_number_id: PHONE_NUMBER_ID.into(),
            display_phone_number: Some("15550783881".into()),
            app_secret: Secret::new("acme-app-secret"),
            verify_token: Secret::new("acme-verify"),
            whatsapp_token: Secret::new(WA_TOKEN),
            genesys: GenesysIntegration {
                region: genesys.base_url(),
                integration_id: "int-acme".into(),
                client_id: "wabaflow-client".into(),
                client_secret: Secret::new("client-s3cret"),
                webhook_secret: Secret::new("hook"),
            },
        };
        config.tenants = vec![tenant];
        adjust(&mut config);
        create_topics(&config).await;
        let node = Node::start(&config, roles, None, Shutdown::new())
            .await
            .expect("node starts");
        let url = format!(
            "http://{}/webhooks/meta/acme",
            node.ingest_addr.expect("ingest role")
        );
        meta.subscribe(PHONE_NUMBER_ID, &url, "acme-app-secret");
        let driver = CustomerDriver::new(url, "acme-app-secret", RetryPolicy::default());
        let agent = AgentDriver::new(
            format!(
                "http://{}/webhooks/genesys/acme",
                node.ingest_addr.expect("ingest role")
            ),
            "hook",
            "int-acme",
        )
        .with_retry_delay(Duration::from_millis(200));
        Rig {
            node,
            config,
            meta,
            genesys,
            driver,
            agent,
            number: BusinessNumber::new("waba-1", PHONE_NUMBER_ID, "15550783881"),
        }
    }

    pub async fn send(&self, message: &InboundMessage) {
        let delivery = self.driver.post(&self.number.webhook(message)).await;
        assert!(delivery.delivered(), "webhook refused: {delivery:?}");
    }

    pub async fn records(&self) -> Records {
        let store =
            RedisStore::connect(&self.config.store.redis_url, &self.config.store.key_prefix)
                .await
                .expect("redis");
        Records::new(Arc::new(store))
    }

    pub async fn stop(self) {
        self.node.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.node.wait())
            .await
            .expect("node stops")
            .expect("cleanly");
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn wamids(accepted: &[Accepted]) -> Vec<String> {
    accepted
        .iter()
        .map(|a| a.message.channel.message_id.clone().expect("messageId"))
        .collect()
}

/// Polls `list` until some key appears, bounded.
pub async fn wait_for_objects(store: &S3Store, bucket: &str, prefix: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let keys = store.list(bucket, prefix).await.expect("list");
        if !keys.is_empty() || tokio::time::Instant::now() > deadline {
            return keys;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
