//! A node: the set of roles one `wabaflow` process runs, wired to the configured services.
//!
//! Roles: `ingest` (the Meta and Genesys edges), `stage:dedupe`, `stage:map`, `stage:media`,
//! `stage:transform` (each runs the inbound and the outbound direction), `stage:receipts`,
//! `stage:meter`, `sink:clickhouse`,
//! `sink:genesys`, `sink:whatsapp`, `sink:archive`. Every node also serves `/metrics`,
//! `/healthz` and `/readyz` on `admin.listen` — and, with the `dir` object backend, the signed
//! object links under `/objects/`. The first role that fails stops the node.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{error, info};
use wabaflow_ingest::{GenesysEdge, MetaEdge};
use wabaflow_pipeline::config::{ObjectsBackend, StoreBackend};
use wabaflow_pipeline::telemetry::{Health, admin_refusing_the_rest, admin_router};
use wabaflow_pipeline::{
    BatchLimits, BatchRunner, BatchSink, Config, Producer, Shutdown, Stage, StageRunner,
};
use wabaflow_schemas::tenant::Tenant;
use wabaflow_sinks::archive::{WEBHOOKS_INBOUND_BUCKET, WEBHOOKS_OUTBOUND_BUCKET};
use wabaflow_sinks::clickhouse::{ClickHouseClient, ClickHouseSink, Feed};
use wabaflow_sinks::{ArchiveSink, GenesysService, GenesysSink, WhatsAppService, WhatsAppSink};
use wabaflow_stages::media::{MEDIA_INBOUND_BUCKET, MEDIA_OUTBOUND_BUCKET};
use wabaflow_stages::meter::PriceBook;
use wabaflow_stages::{
    DedupeStage, MapStage, MediaStage, MeterStage, ReceiptStage, TransformStage,
};
use wabaflow_store::objects::{DirStore, ObjectStore, S3Settings, S3Store};
use wabaflow_store::records::Records;
use wabaflow_store::tenants::{EncryptionKey, TenantRegistry};
use wabaflow_store::tokens::GenesysTokens;
use wabaflow_store::{MemoryStore, RedisStore, StateStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Ingest,
    Dedupe,
    Map,
    Media,
    Transform,
    Receipts,
    Meter,
    Genesys,
    WhatsApp,
    ClickHouse,
    Archive,
}

impl Role {
    pub const ALL: [Role; 11] = [
        Role::Ingest,
        Role::Dedupe,
        Role::Map,
        Role::Media,
        Role::Transform,
        Role::Receipts,
        Role::Meter,
        Role::Genesys,
        Role::WhatsApp,
        Role::ClickHouse,
        Role::Archive,
    ];

    /// Roles that cannot work without tenants (and therefore `tenancy.encryption_key`). The edge
    /// can: without tenants it serves only `/webhooks/meta` with the configured app secret.
    fn needs_tenants(self) -> bool {
        !matches!(
            self,
            Role::Ingest | Role::Dedupe | Role::Archive | Role::Meter | Role::ClickHouse
        )
    }

    fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Dedupe => "stage:dedupe",
            Role::Map => "stage:map",
            Role::Media => "stage:media",
            Role::Transform => "stage:transform",
            Role::Receipts => "stage:receipts",
            Role::Meter => "stage:meter",
            Role::Genesys => "sink:genesys",
            Role::WhatsApp => "sink:whatsapp",
            Role::ClickHouse => "sink:clickhouse",
            Role::Archive => "sink:archive",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "ingest:meta" {
            return Ok(Role::Ingest);
        }
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Role::ALL.iter().map(|r| r.name()).collect();
                format!("unknown role {s:?}; known roles: {}", known.join(", "))
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
        // Not ready before the producer has its id: an edge would hold every webhook until then.
        health.set("kafka:producer", false);
        tasks.spawn({
            let (producer, health, shutdown) = (producer.clone(), health.clone(), shutdown.clone());
            async move {
                tokio::select! {
                    _ = producer.ready() => health.set("kafka:producer", true),
                    _ = shutdown.cancelled() => {}
                }
                Ok(())
            }
        });

        let admin = TcpListener::bind(config.admin.listen)
            .await
            .with_context(|| format!("binding the admin server on {}", config.admin.listen))?;
        let admin_addr = admin.local_addr()?;

        let store = match store {
            Some(store) => store,
            None => open_store(config).await?,
        };
        let tenants = tenant_registry(config, roles, &store).await?;
        let records = Records::new(store.clone());

        let mut admin_routes = admin_router(health.clone());
        let objects: Option<Arc<dyn ObjectStore>> =
            if roles.contains(&Role::Media) || roles.contains(&Role::Archive) {
                let (objects, links) = open_objects(config, admin_addr)?;
                if let Some(dir) = links {
                    admin_routes = admin_routes.merge(object_links(dir));
                }
                Some(objects)
            } else {
                None
            };
        tasks.spawn(serve(
            admin,
            admin_refusing_the_rest(admin_routes),
            shutdown.clone(),
        ));
        info!(addr = %admin_addr, "admin server listening (/metrics, /healthz, /readyz)");

        let mut ingest_addr = None;
        if roles.contains(&Role::Ingest) {
            let listener = TcpListener::bind(config.ingest.listen)
                .await
                .with_context(|| format!("binding the Meta edge on {}", config.ingest.listen))?;
            let addr = listener.local_addr()?;
            let edge = MetaEdge::new(
                &config.ingest,
                &config.kafka.topic_prefix,
                producer.clone(),
                tenants.clone(),
            );
            let mut router = edge.router();
            if let Some(tenants) = &tenants {
                let genesys = GenesysEdge::new(
                    tenants.clone(),
                    config.ingest.body_limit_bytes,
                    &config.kafka.topic_prefix,
                    producer.clone(),
                );
                router = router.merge(genesys.router());
            }
            let router = wabaflow_ingest::http::refusing_the_rest(router);
            tasks.spawn(serve(listener, router, shutdown.clone()));
            health.set("ingest:meta", true);
            info!(%addr, "edges listening on /webhooks/meta/{{tenant}} and /webhooks/genesys/{{tenant}}");
            ingest_addr = Some(addr);
        }

        let mut runners = Runners {
            tasks: &mut tasks,
            config,
            producer: &producer,
            health: &health,
            shutdown: &shutdown,
        };
        for role in roles {
            let name = role.name();
            let registry = || {
                tenants
                    .clone()
                    .context("tenancy.encryption_key is required for this role")
            };
            match role {
                Role::Ingest => {}
                Role::Dedupe => {
                    let ttl = Duration::from_secs(config.dedupe.ttl_secs);
                    let stage = DedupeStage::new(store.clone(), ttl);
                    runners.stage(stage, name);
                    let stage = DedupeStage::outbound(store.clone(), ttl);
                    runners.stage(stage, name);
                }
                Role::Map => {
                    let stage = MapStage::new(registry()?, records.clone());
                    runners.stage(stage, name);
                    let stage = MapStage::outbound(registry()?, records.clone());
                    runners.stage(stage, name);
                }
                Role::Media => {
                    let objects = objects.clone().context("object store")?;
                    for bucket in [MEDIA_INBOUND_BUCKET, MEDIA_OUTBOUND_BUCKET] {
                        objects
                            .ensure_bucket(bucket)
                            .await
                            .with_context(|| format!("creating bucket {bucket}"))?;
                    }
                    let stage = MediaStage::new(
                        registry()?,
                        records.clone(),
                        objects.clone(),
                        &config.meta,
                        &config.media,
                    )?;
                    runners.stage(stage, name);
                    let tokens = Arc::new(GenesysTokens::new(
                        reqwest::Client::builder()
                            .timeout(Duration::from_millis(config.genesys.timeout_ms))
                            .build()?,
                        registry()?,
                        Duration::from_secs(config.genesys.token_max_age_secs),
                    ));
                    let stage = MediaStage::outbound(
                        registry()?,
                        records.clone(),
                        objects,
                        tokens,
                        &config.meta,
                        &config.media,
                    )?;
                    runners.stage(stage, name);
                }
                Role::Transform => {
                    let stage = TransformStage::new(registry()?, records.clone());
                    runners.stage(stage, name);
                    let stage = TransformStage::outbound(registry()?, records.clone());
                    runners.stage(stage, name);
                }
                Role::Meter => {
                    let prices = if config.meter.price_book.is_empty() {
                        PriceBook::sample()
                    } else {
                        let text = std::fs::read_to_string(&config.meter.price_book)
                            .with_context(|| format!("reading {}", config.meter.price_book))?;
                        PriceBook::parse(&text).context("meter.price_book")?
                    };
                    let stage = MeterStage::new(store.clone(), prices);
                    runners.stage(stage, name);
                }
                Role::Receipts => {
                    let stage = ReceiptStage::new(registry()?);
                    runners.stage(stage, name);
                }
                Role::WhatsApp => {
                    let service =
                        WhatsAppService::new(registry()?, &config.meta, &config.whatsapp)?;
                    let sink =
                        WhatsAppSink::new(service, registry()?, records.clone(), &config.whatsapp);
                    runners.stage(sink, name);
                }
                Role::Genesys => {
                    let service = GenesysService::new(registry()?, &config.genesys)?;
                    let sink = GenesysSink::new(service, registry()?, records.clone());
                    runners.stage(sink, name);
                }
                Role::ClickHouse => {
                    let client = ClickHouseClient::new(&config.clickhouse)?;
                    let applied = client.migrate().await.with_context(|| {
                        format!("migrating ClickHouse at {}", config.clickhouse.url)
                    })?;
                    info!(
                        ?applied,
                        database = client.database(),
                        "ClickHouse schema up to date"
                    );
                    let limits = BatchLimits {
                        max_records: config.clickhouse.batch_max_rows.max(1),
                        max_age: Duration::from_millis(config.clickhouse.batch_max_age_ms),
                    };
                    for feed in Feed::ALL {
                        runners.batch(ClickHouseSink::new(client.clone(), feed), limits, name);
                    }
                }
                Role::Archive => {
                    let objects = objects.clone().context("object store")?;
                    for bucket in [WEBHOOKS_INBOUND_BUCKET, WEBHOOKS_OUTBOUND_BUCKET] {
                        objects
                            .ensure_bucket(bucket)
                            .await
                            .with_context(|| format!("creating bucket {bucket}"))?;
                    }
                    let limits = BatchLimits {
                        max_records: config.archive.batch_max_records.max(1),
                        max_age: Duration::from_millis(config.archive.batch_max_age_ms),
                    };
                    runners.batch(ArchiveSink::new(objects), limits, name);
                }
            }
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

/// Starts the runners of a node's roles on its tasks, each with the node's producer, health and
/// shutdown; a runner's error is reported under its role's name.
struct Runners<'a> {
    tasks: &'a mut JoinSet<anyhow::Result<()>>,
    config: &'a Config,
    producer: &'a Producer,
    health: &'a Health,
    shutdown: &'a Shutdown,
}

impl Runners<'_> {
    fn stage<S: Stage>(&mut self, stage: S, role: &'static str) {
        let runner = StageRunner::new(
            stage,
            &self.config.kafka,
            self.producer.clone(),
            self.health.clone(),
        );
        let shutdown = self.shutdown.clone();
        self.tasks
            .spawn(async move { runner.run(shutdown).await.context(role) });
    }

    fn batch<B: BatchSink>(&mut self, sink: B, limits: BatchLimits, role: &'static str) {
        let runner = BatchRunner::new(sink, &self.config.kafka, limits, self.health.clone());
        let shutdown = self.shutdown.clone();
        self.tasks
            .spawn(async move { runner.run(shutdown).await.context(role) });
    }
}

/// 12 500 000 micro-units → `"12.500000"`.
pub fn format_micros(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let micros = micros.unsigned_abs();
    format!("{sign}{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// The configured state store.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(match config.store.backend {
        StoreBackend::Memory => Arc::new(MemoryStore::new()),
        StoreBackend::Redis => Arc::new(
            RedisStore::connect(&config.store.redis_url, &config.store.key_prefix)
                .await
                .with_context(|| format!("connecting to Redis at {}", config.store.redis_url))?,
        ),
    })
}

/// The registry, when a key is configured; the configured `[[tenants]]` are written at start.
async fn tenant_registry(
    config: &Config,
    roles: &[Role],
    store: &Arc<dyn StateStore>,
) -> anyhow::Result<Option<TenantRegistry>> {
    let key = config.tenancy.encryption_key.expose();
    if key.is_empty() {
        if let Some(role) = roles.iter().find(|r| r.needs_tenants()) {
            bail!(
                "role {role} needs tenancy.encryption_key (WABAFLOW_TENANCY__ENCRYPTION_KEY): 32 random bytes, base64"
            );
        }
        if !config.tenants.is_empty() {
            bail!("tenants are configured but tenancy.encryption_key is not");
        }
        return Ok(None);
    }
    let key = EncryptionKey::from_base64(key).context("tenancy.encryption_key")?;
    let registry = TenantRegistry::new(store.clone(), &key);
    for tenant in &config.tenants {
        registry
            .put(tenant)
            .await
            .with_context(|| format!("registering tenant {}", tenant.id))?;
    }
    Ok(Some(registry))
}

/// The tenant registry on the configured store, for the `tenants` command.
pub async fn open_tenants(config: &Config) -> anyhow::Result<TenantRegistry> {
    let key = config.tenancy.encryption_key.expose();
    if key.is_empty() {
        bail!(
            "tenancy.encryption_key (WABAFLOW_TENANCY__ENCRYPTION_KEY) is required: 32 random bytes, base64"
        );
    }
    let key = EncryptionKey::from_base64(key).context("tenancy.encryption_key")?;
    Ok(TenantRegistry::new(open_store(config).await?, &key))
}

/// Tenants from a JSON or TOML file: one tenant, or a list under `tenants`. A field a tenant
/// does not have is an error naming it, as in the configuration: a misspelt optional field
/// (`webhook_secret`) would otherwise be dropped without a word.
pub fn read_tenants(file: &std::path::Path) -> anyhow::Result<Vec<Tenant>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let parsed: serde_json::Value = if file.extension().is_some_and(|e| e == "toml") {
        toml::from_str(&text).with_context(|| format!("parsing {}", file.display()))?
    } else {
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?
    };
    let mut unknown = Vec::new();
    let tenants = match parsed {
        serde_json::Value::Object(mut fields) if fields.contains_key("tenants") => {
            let list = fields.remove("tenants").unwrap_or_default();
            unknown.extend(fields.keys().cloned());
            serde_ignored::deserialize(list, |path| unknown.push(format!("tenants.{path}")))
        }
        one => {
            serde_ignored::deserialize(one, |path| unknown.push(path.to_string())).map(|t| vec![t])
        }
    }
    .with_context(|| format!("parsing {}", file.display()))?;
    if !unknown.is_empty() {
        bail!(
            "{}: unknown tenant fields: {}",
            file.display(),
            unknown.join(", ")
        );
    }
    Ok(tenants)
}

/// The object store, and with the `dir` backend the same store as the one whose signed links the
/// admin server serves.
type OpenedObjects = (Arc<dyn ObjectStore>, Option<Arc<DirStore>>);

fn open_objects(config: &Config, admin_addr: SocketAddr) -> anyhow::Result<OpenedObjects> {
    let objects = &config.objects;
    Ok(match objects.backend {
        ObjectsBackend::S3 => (
            Arc::new(S3Store::new(S3Settings {
                endpoint: objects.s3_endpoint.clone(),
                region: objects.s3_region.clone(),
                access_key: objects.s3_access_key.clone(),
                secret_key: objects.s3_secret_key.clone(),
                path_style: objects.s3_path_style,
                bucket_prefix: objects.bucket_prefix.clone(),
            })?),
            None,
        ),
        ObjectsBackend::Dir => {
            let dir = DirStore::new(&objects.dir);
            dir.set_public_url(&format!("http://{admin_addr}"));
            (dir.clone(), Some(dir))
        }
    })
}

/// `GET /objects/{bucket}/{*key}?expires=…&signature=…` for the `dir` backend's links.
fn object_links(dir: Arc<DirStore>) -> axum::Router {
    async fn get_object(
        State(dir): State<Arc<DirStore>>,
        Path((bucket, key)): Path<(String, String)>,
        Query(query): Query<HashMap<String, String>>,
    ) -> Response {
        let expires = query
            .get("expires")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        let signature = query.get("signature").map(String::as_str).unwrap_or("");
        match dir.serve_signed(&bucket, &key, expires, signature).await {
            Ok(Some(bytes)) => bytes.into_response(),
            Ok(None) => StatusCode::NOT_FOUND.into_response(),
            Err(reason) => (StatusCode::FORBIDDEN, reason).into_response(),
        }
    }
    axum::Router::new()
        .route("/objects/{bucket}/{*key}", axum::routing::get(get_object))
        .with_state(dir)
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
