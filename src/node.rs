//! A node: the set of roles one `wabaflow` process runs, wired to the configured services.
//!
//! Roles: `ingest` (the Meta edge), `stage:dedupe`. Every node also serves `/metrics`,
//! `/healthz` and `/readyz` on `admin.listen`. The first role that fails stops the node.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{error, info};
use wabaflow_ingest::MetaEdge;
use wabaflow_pipeline::config::StoreBackend;
use wabaflow_pipeline::telemetry::{Health, admin_router};
use wabaflow_pipeline::{Config, Producer, Shutdown, StageRunner};
use wabaflow_stages::DedupeStage;
use wabaflow_store::{MemoryStore, RedisStore, StateStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Ingest,
    Dedupe,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Ingest, Role::Dedupe];
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ingest" | "ingest:meta" => Ok(Role::Ingest),
            "stage:dedupe" => Ok(Role::Dedupe),
            other => Err(format!(
                "unknown role {other:?}; known roles: ingest, stage:dedupe"
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Ingest => "ingest",
            Role::Dedupe => "stage:dedupe",
        })
    }
}

/// A started node.
pub struct Node {
    pub admin_addr: SocketAddr,
    pub ingest_addr: Option<SocketAddr>,
    pub health: Health,
    pub shutdown: Shutdown,
    tasks: JoinSet<anyhow::Result<()>>,
    producer: Producer,
}

impl Node {
    /// Binds the listeners and starts every role. `store` overrides the configured state store.
    pub async fn start(
        config: &Config,
        roles: &[Role],
        store: Option<Arc<dyn StateStore>>,
        shutdown: Shutdown,
    ) -> anyhow::Result<Node> {
        if roles.is_empty() {
            bail!("no role to run");
        }
        let health = Health::default();
        let producer = Producer::new(&config.kafka).context("creating the Kafka producer")?;
        let mut tasks = JoinSet::new();

        let admin = TcpListener::bind(config.admin.listen)
            .await
            .with_context(|| format!("binding the admin server on {}", config.admin.listen))?;
        let admin_addr = admin.local_addr()?;
        tasks.spawn(serve(admin, admin_router(health.clone()), shutdown.clone()));
        info!(addr = %admin_addr, "admin server listening (/metrics, /healthz, /readyz)");

        let mut ingest_addr = None;
        if roles.contains(&Role::Ingest) {
            let listener = TcpListener::bind(config.ingest.listen)
                .await
                .with_context(|| format!("binding the Meta edge on {}", config.ingest.listen))?;
            let addr = listener.local_addr()?;
            let edge = MetaEdge::new(&config.ingest, &config.kafka.topic_prefix, producer.clone());
            tasks.spawn(serve(listener, edge.router(), shutdown.clone()));
            health.set("ingest:meta", true);
            info!(%addr, "Meta edge listening on /webhooks/meta");
            ingest_addr = Some(addr);
        }

        if roles.contains(&Role::Dedupe) {
            let store = match store {
                Some(store) => store,
                None => open_store(config).await?,
            };
            let stage = DedupeStage::new(store, Duration::from_secs(config.dedupe.ttl_secs));
            let runner = StageRunner::new(stage, &config.kafka, producer.clone(), health.clone());
            let stop = shutdown.clone();
            tasks.spawn(async move { runner.run(stop).await.context("stage:dedupe") });
        }

        Ok(Node {
            admin_addr,
            ingest_addr,
            health,
            shutdown,
            tasks,
            producer,
        })
    }

    /// Waits until every role stopped (after shutdown) or one failed, then flushes the producer.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut outcome = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(err) = result {
                error!(
                    error = format!("{err:#}"),
                    "a role failed; stopping the node"
                );
                self.shutdown.trigger();
                if outcome.is_ok() {
                    outcome = Err(err);
                }
            }
        }
        if let Err(err) = self.producer.flush(Duration::from_secs(10)) {
            error!(error = %err, "records still unacknowledged at exit");
        }
        outcome
    }
}

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(match config.store.backend {
        StoreBackend::Memory => Arc::new(MemoryStore::new()),
        StoreBackend::Redis => Arc::new(
            RedisStore::connect(&config.store.redis_url, &config.store.key_prefix)
                .await
                .with_context(|| format!("connecting to Redis at {}", config.store.redis_url))?,
        ),
    })
}

async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
