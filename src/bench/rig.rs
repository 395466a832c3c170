//! What every benchmark sets up: an isolated slice of the shared services (topic prefix, Redis key
//! prefix, ClickHouse database, buckets), the simulators with their limits raised, one tenant, and
//! the webhooks and events the load is made of.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use wabaflow_ingest::meta::{SIGNATURE_HEADER, sign, split};
use wabaflow_pipeline::config::{ObjectsBackend, StoreBackend};
use wabaflow_pipeline::{Config, Producer, Record, Shutdown};
use wabaflow_schemas::meta::Webhook;
use wabaflow_schemas::tenant::{GenesysIntegration, Tenant};
use wabaflow_schemas::{Envelope, Secret};
use wabaflow_sims::genesys::{GenesysSim, GenesysSimConfig};
use wabaflow_sims::meta::webhooks::{BusinessNumber, Customer};
use wabaflow_sims::meta::{MetaSim, MetaSimConfig};
use wabaflow_store::tenants::EncryptionKey;

use crate::node::{Node, Role};

pub const TENANT: &str = "bench";
pub const PHONE_NUMBER_ID: &str = "100200300400500";
pub const APP_SECRET: &str = "bench-app-secret";
pub const WA_TOKEN: &str = "bench-whatsapp-token";
const INTEGRATION: &str = "bench-integration";
const CLIENT: (&str, &str) = ("bench-client", "bench-client-secret");

/// An isolated configuration on the services of `base`, named after `bench`.
pub fn isolated(base: &Config, bench: &str) -> Config {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let tag = format!("b{}{bench}", &id[id.len() - 8..]);
    let mut config = base.clone();
    config.kafka.topic_prefix = format!("{tag}-");
    config.store.backend = StoreBackend::Redis;
    config.store.key_prefix = format!("{tag}:");
    config.objects.backend = ObjectsBackend::S3;
    config.objects.bucket_prefix = format!("{tag}-");
    config.clickhouse.database = tag.clone();
    config.ingest.listen = ([127, 0, 0, 1], 0).into();
    config.admin.listen = ([127, 0, 0, 1], 0).into();
    config.tenancy.encryption_key = Secret::new(EncryptionKey::generate().to_base64());
    config
}

/// The simulators, with every limit raised far above what this machine can send.
pub struct Sims {
    pub meta: MetaSim,
    pub genesys: GenesysSim,
}

impl Sims {
    pub async fn start() -> anyhow::Result<Sims> {
        let meta = MetaSim::start(MetaSimConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            tokens: vec![WA_TOKEN.into()],
            throughput_mps: 1_000_000.0,
            pair_interval: Duration::from_millis(1),
            pair_burst: 1_000.0,
            ..MetaSimConfig::default()
        })
        .await
        .context("starting the Meta simulator")?;
        let genesys = GenesysSim::start(GenesysSimConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            clients: vec![(CLIENT.0.into(), CLIENT.1.into())],
            integrations: vec![INTEGRATION.into()],
            rate_limit: u32::MAX,
            download_attachments: false,
            ..GenesysSimConfig::default()
        })
        .await
        .context("starting the Genesys simulator")?;
        Ok(Sims { meta, genesys })
    }

    /// Points `config` at the simulators and adds the benchmark tenant.
    pub fn wire(&self, config: &mut Config) {
        config.meta.graph_url = self.meta.base_url();
        config.whatsapp.mps = 1_000_000;
        config.whatsapp.pair_interval_ms = 1;
        config.whatsapp.pair_burst = 1_000;
        config.tenants = vec![Tenant {
            id: TENANT.into(),
            phone_number_id: PHONE_NUMBER_ID.into(),
            display_phone_number: Some("15550001111".into()),
            app_secret: Secret::new(APP_SECRET),
            verify_token: Secret::new("bench-verify"),
            whatsapp_token: Secret::new(WA_TOKEN),
            genesys: GenesysIntegration {
                region: self.genesys.base_url(),
                integration_id: INTEGRATION.into(),
                client_id: CLIENT.0.into(),
                client_secret: Secret::new(CLIENT.1),
                webhook_secret: Secret::new("bench-hook"),
            },
        }];
    }
}

/// A signed Meta webhook, ready to post.
#[derive(Clone)]
pub struct Signed {
    pub body: Bytes,
    pub signature: String,
    /// The message's wamid.
    pub wamid: String,
}

impl Signed {
    /// The POST Meta would make with this webhook.
    pub fn post(&self, http: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        http.post(url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, &self.signature)
            .body(self.body.clone())
    }
}

/// `n` customer texts, one webhook each, from `customers` distinct customers in turn.
pub fn texts(n: u64, customers: u64) -> Vec<Signed> {
    let number = BusinessNumber::new("200300400500600", PHONE_NUMBER_ID, "15550001111");
    let now = Utc::now().timestamp();
    (0..n)
        .map(|i| {
            let customer = Customer::new(&format!("4477009{:05}", i % customers.max(1)), "Bench");
            let message = customer.text(&format!("hello {i}, where is my order?"), now);
            let body = number.webhook(&message);
            Signed {
                signature: sign(APP_SECRET.as_bytes(), &body),
                body: Bytes::from(body),
                wamid: message.wamid,
            }
        })
        .collect()
}

/// The events the edge makes of `webhooks`, owned by the benchmark tenant.
pub fn events(webhooks: &[Signed]) -> anyhow::Result<Vec<Envelope>> {
    let mut events = Vec::with_capacity(webhooks.len());
    for webhook in webhooks {
        let decoded: Webhook = serde_json::from_slice(&webhook.body).context("bench webhook")?;
        for mut event in split(&decoded, uuid::Uuid::now_v7(), Utc::now()).events {
            event.tenant = Some(TENANT.into());
            events.push(event);
        }
    }
    Ok(events)
}

/// Produces `events` to `topic` as an edge writes them, in chunks (a load prepared beforehand).
pub async fn preload(config: &Config, topic: &str, events: &[Envelope]) -> anyhow::Result<()> {
    let producer = Producer::new(&config.kafka)?;
    for chunk in events.chunks(2_000) {
        let records: Vec<Record> = chunk.iter().map(|e| Record::event(topic, e)).collect();
        producer
            .send_all(&records)
            .await
            .context("preloading events")?;
    }
    Ok(())
}

/// A node running `roles` in this process.
pub async fn node(config: &Config, roles: &[Role]) -> anyhow::Result<Node> {
    Node::start(config, roles, None, Shutdown::new()).await
}

pub async fn stop(node: Node) -> anyhow::Result<()> {
    node.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), node.wait())
        .await
        .context("node did not stop within 30 s")?
}

/// Closed loop: `concurrency` workers post `webhooks` to `url` as fast as answers come back.
/// Returns how many were answered 2xx and how long it all took.
pub async fn saturate(
    url: &str,
    webhooks: &[Signed],
    concurrency: usize,
) -> anyhow::Result<(u64, Duration)> {
    let http = crate::replay::client(concurrency)?;
    let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = std::time::Instant::now();
    futures::stream::iter(webhooks)
        .for_each_concurrent(concurrency, |webhook| {
            let (http, accepted) = (http.clone(), accepted.clone());
            async move {
                let answer = webhook.post(&http, url).send().await;
                if answer.is_ok_and(|a| a.status().is_success()) {
                    accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
        .await;
    Ok((
        accepted.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed(),
    ))
}

/// The node's Meta webhook URL for the benchmark tenant.
pub fn webhook_url(node: &Node) -> anyhow::Result<String> {
    Ok(format!(
        "http://{}/webhooks/meta/{TENANT}",
        node.ingest_addr.context("the node has no ingest role")?
    ))
}

/// How fast a bare consumer (the runners' consumer settings) reads `n` records of `topic`, first
/// record to last: the broker's read ceiling for any sink on this machine.
pub async fn read_ceiling(config: &Config, topic: &str, n: u64) -> anyhow::Result<Duration> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let group = format!("{}bench-reader", config.kafka.topic_prefix);
    let consumer: StreamConsumer =
        wabaflow_pipeline::kafka::consumer_config(&config.kafka, &group, "reader").create()?;
    consumer.subscribe(&[topic])?;
    let mut first = None;
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .context("the topic ran dry")??;
        first.get_or_insert_with(std::time::Instant::now);
    }
    Ok(first.map(|f| f.elapsed()).unwrap_or_default())
}
