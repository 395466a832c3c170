//! Configuration: built-in defaults, then a TOML file, then `WABAFLOW_*` environment variables
//! (`WABAFLOW_KAFKA__BROKERS=host:9092` sets `kafka.brokers`; `__` separates sections).
//!
//! A key wabaflow does not know is an error that names it and where it came from, so a typo
//! (`WABAFLOW_KAFKA__BROKER`, `fetch_wait_ms` in the file) stops the start instead of leaving a
//! default in place. Only variables with a `__` are configuration: `WABAFLOW_CONFIG` (the file)
//! and the test suite's `WABAFLOW_REDIS_URL` and the like are not.

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
pub use wabaflow_schemas::Secret;
use wabaflow_schemas::Topic;
use wabaflow_schemas::tenant::Tenant;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub ingest: IngestConfig,
    pub dedupe: DedupeConfig,
    pub tenancy: TenancyConfig,
    /// Tenants to create or update at start (`[[tenants]]` in the file). Credentials in a config
    /// file are in clear; prefer `wabaflow tenants put` with a file you delete afterwards.
    pub tenants: Vec<Tenant>,
    pub objects: ObjectsConfig,
    pub meta: MetaApiConfig,
    pub media: MediaConfig,
    pub genesys: GenesysConfig,
    pub whatsapp: WhatsAppConfig,
    pub meter: MeterConfig,
    pub clickhouse: ClickHouseConfig,
    pub archive: ArchiveConfig,
}

impl Config {
    /// Defaults, merged with `file` when given, merged with the environment. Refuses keys it
    /// does not know.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let figment = figment.merge(
            Env::prefixed("WABAFLOW_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        let config: Config = figment.extract().map_err(Box::new)?;
        match unknown_keys(&figment).as_slice() {
            [] => Ok(config),
            unknown => Err(Box::new(figment::Error::from(format!(
                "unknown configuration {}: {}",
                if unknown.len() == 1 { "key" } else { "keys" },
                unknown.join(", ")
            )))),
        }
    }
}

/// The keys of `figment` that [`Config`] has no field for, each with where it was set.
fn unknown_keys(figment: &Figment) -> Vec<String> {
    let Ok(merged) = figment.extract::<figment::value::Value>() else {
        return Vec::new();
    };
    let mut unknown = Vec::new();
    // The values were checked by `extract` already; this pass only collects the keys it skips.
    let _: Result<Config, _> =
        serde_ignored::deserialize(&merged, |path| unknown.push(path.to_string()));
    unknown
        .into_iter()
        .map(|key| {
            let from = match figment.find_metadata(&key).and_then(|m| m.source.as_ref()) {
                Some(figment::Source::File(path)) => path.display().to_string(),
                // Environment variables: their names, which figment keeps only lowercased.
                _ => {
                    let section = matches!(
                        figment.find_value(&key),
                        Ok(figment::value::Value::Dict(..))
                    );
                    format!(
                        "WABAFLOW_{}{}",
                        key.replace('.', "__").to_uppercase(),
                        if section { "__…" } else { "" }
                    )
                }
            };
            format!("`{key}` (from {from})")
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Prepended to every topic and consumer group name: lets tests and several deployments share
    /// one cluster without seeing each other's records.
    pub topic_prefix: String,
    /// Consumer groups are `{topic_prefix}{group_prefix}.{stage}`.
    pub group_prefix: String,
    /// How long a record may wait for the broker's ack before it counts as failed. Bounds how long
    /// an edge waits before answering 503 when Kafka is down.
    pub message_timeout_ms: u64,
    /// Records the producer may hold un-acked; past this the edge answers 503 (backpressure).
    pub producer_queue_messages: u32,
    /// Replication factor of created topics (1 for tansu and a single-broker compose setup).
    pub replication_factor: i32,
    /// Events a stage runner may have in flight (produced, awaiting ack) before it stops reading
    /// its partitions (backpressure).
    pub max_in_flight: usize,
    /// `fetch.wait.max.ms` of every consumer: the most a hop can add to latency on a broker
    /// that holds fetches for the full wait (tansu); a long-poll cap on Kafka.
    pub fetch_wait_max_ms: u32,
    /// `linger.ms` of every producer: how long records wait to share a batch. Longer means fewer,
    /// larger batches — less work for a broker that lists every stored batch on a fetch (tansu)
    /// — and as much more latency on every hop.
    pub linger_ms: u32,
    /// Partitions of every topic `wabaflow topics create` makes, instead of the registry's
    /// (12 per conversation topic, 6 for raw webhooks). Fixed once a topic exists. Fewer suit a
    /// small single node: a broker's work per fetch grows with the partitions asked for — on tansu
    /// with two cores, 4 carried 35–100 % more events/s end to end than 12 (docs/benchmarks.md).
    pub partitions: Option<NonZeroU16>,
    /// Stable identity of this process across restarts (e.g. a StatefulSet pod name). When set,
    /// consumers use static group membership (`group.instance.id = {instance_id}.{stage}`): a
    /// restarted instance takes its predecessor's partitions at once instead of waiting for the
    /// group to notice the dead member.
    pub instance_id: Option<String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: String::new(),
            group_prefix: "wabaflow".into(),
            message_timeout_ms: 5_000,
            producer_queue_messages: 100_000,
            replication_factor: 1,
            max_in_flight: 1_000,
            fetch_wait_max_ms: 10,
            linger_ms: 2,
            partitions: None,
            instance_id: None,
        }
    }
}

impl KafkaConfig {
    pub fn message_timeout(&self) -> Duration {
        Duration::from_millis(self.message_timeout_ms)
    }

    /// How many partitions `topic` is created with.
    pub fn partitions_of(&self, topic: &Topic) -> i32 {
        self.partitions
            .map_or(topic.partitions, |partitions| i32::from(partitions.get()))
    }

    pub fn group_id(&self, stage: &str) -> String {
        format!("{}{}.{stage}", self.topic_prefix, self.group_prefix)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminConfig {
    /// `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    pub redis_url: String,
    /// Prepended to every key.
    pub key_prefix: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Redis,
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: "wabaflow:".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestConfig {
    pub listen: SocketAddr,
    /// Meta's payloads are at most 3 MB; bodies above this limit get 413.
    pub body_limit_bytes: usize,
    pub meta: MetaEdgeConfig,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 4 * 1024 * 1024,
            meta: MetaEdgeConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetaEdgeConfig {
    /// The Meta app's secret: the key of `X-Hub-Signature-256`.
    pub app_secret: Secret,
    /// The token Meta echoes in the GET verification handshake.
    pub verify_token: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DedupeConfig {
    /// How long a claimed key is remembered. Meta retries undelivered webhooks for up to 7 days,
    /// so the default covers 8.
    pub ttl_secs: u64,
}

impl Default for DedupeConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 8 * 24 * 3600,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TenancyConfig {
    /// AES-256 key (32 bytes, base64) that seals tenant credentials at rest. Required by every
    /// role that reads tenants; `wabaflow demo` generates one per run.
    pub encryption_key: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectsBackend {
    S3,
    Dir,
}

/// Where raw payloads and media are kept (buckets `webhooks-inbound`, `media-inbound`, …).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectsConfig {
    pub backend: ObjectsBackend,
    pub s3_endpoint: String,
    pub s3_region: String,
    pub s3_access_key: String,
    pub s3_secret_key: Secret,
    /// Path-style URLs (MinIO, s3s-fs); false for AWS virtual-host style.
    pub s3_path_style: bool,
    /// Prepended to every bucket name.
    pub bucket_prefix: String,
    /// Root of the `dir` backend.
    pub dir: String,
}

impl Default for ObjectsConfig {
    fn default() -> Self {
        Self {
            backend: ObjectsBackend::S3,
            s3_endpoint: "http://127.0.0.1:8014".into(),
            s3_region: "us-east-1".into(),
            s3_access_key: "minioadmin".into(),
            s3_secret_key: Secret::new("minioadmin"),
            s3_path_style: true,
            bucket_prefix: String::new(),
            dir: "wabaflow-objects".into(),
        }
    }
}

/// Meta's Graph API (the simulator in tests: `http://127.0.0.1:8090`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MetaApiConfig {
    pub graph_url: String,
    /// Pinned Graph API version.
    pub api_version: String,
    pub timeout_ms: u64,
}

impl Default for MetaApiConfig {
    fn default() -> Self {
        Self {
            graph_url: "https://graph.facebook.com".into(),
            api_version: "v23.0".into(),
            timeout_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaConfig {
    /// How long the presigned URL handed to Genesys stays valid. Genesys fetches attachments
    /// when the message arrives; a day leaves room for a sink that waited out an outage.
    pub url_ttl_secs: u64,
    /// Largest file downloaded from Meta (Meta's own limit for documents is 100 MB).
    pub max_bytes: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            url_ttl_secs: 24 * 3600,
            max_bytes: 100 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GenesysConfig {
    pub timeout_ms: u64,
    /// Longest a cached OAuth token is used, whatever `expires_in` says.
    pub token_max_age_secs: u64,
}

impl Default for GenesysConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            token_max_age_secs: 55 * 60,
        }
    }
}

/// `sink:whatsapp`: the Cloud API sender.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WhatsAppConfig {
    /// Messages per second per business number (Meta's default throughput: 80).
    pub mps: u32,
    /// One message per this interval to the same customer, after a burst of `pair_burst`
    /// (Meta's pair limit: about one per 6 s).
    pub pair_interval_ms: u64,
    pub pair_burst: u32,
    pub timeout_ms: u64,
    /// How long a send's claim is remembered (a redelivered send within it is never re-sent).
    pub claim_ttl_secs: u64,
    /// How long a send Meta did not answer (a timeout, a crash during the call) waits for a status
    /// webhook to confirm it before it is reported failed, not sent again.
    pub confirm_secs: u64,
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        Self {
            mps: 80,
            pair_interval_ms: 6_000,
            pair_burst: 3,
            timeout_ms: 30_000,
            claim_ttl_secs: 30 * 24 * 3600,
            confirm_secs: 60,
        }
    }
}

/// `stage:meter`: the price book (empty: the sample book `config/price-book.toml`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MeterConfig {
    pub price_book: String,
}

/// `sink:clickhouse`: analytics tables, written in batches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClickHouseConfig {
    /// The HTTP interface.
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: Secret,
    pub timeout_ms: u64,
    /// Rows per insert at most. Larger inserts make fewer parts for ClickHouse to write and merge,
    /// but hold more memory while a sink catches up on a backlog (62–67 MiB at its peak with
    /// 25 000 against 50–54), for no clear gain in rows/s on two cores: 25 000 carried about a
    /// tenth more than 10 000 in one set of runs, 50 000 nothing more in another
    /// (docs/benchmarks.md).
    pub batch_max_rows: usize,
    pub batch_max_age_ms: u64,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            database: "wabaflow".into(),
            user: "default".into(),
            password: Secret::default(),
            timeout_ms: 30_000,
            batch_max_rows: 10_000,
            batch_max_age_ms: 1_000,
        }
    }
}

/// `sink:archive`: raw webhook bodies to S3, one object per batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ArchiveConfig {
    pub batch_max_records: usize,
    pub batch_max_age_ms: u64,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            batch_max_records: 500,
            batch_max_age_ms: 2_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "wabaflow.toml",
                "[kafka]\nbrokers = \"file:9092\"\ntopic_prefix = \"t-\"\n",
            )?;
            jail.set_env("WABAFLOW_KAFKA__BROKERS", "env:9092");
            jail.set_env("WABAFLOW_INGEST__META__APP_SECRET", "s3cret");
            let config = Config::load(Some(Path::new("wabaflow.toml"))).expect("loads");
            assert_eq!(config.kafka.brokers, "env:9092");
            assert_eq!(config.kafka.topic_prefix, "t-");
            assert_eq!(config.ingest.meta.app_secret.expose(), "s3cret");
            assert_eq!(config.dedupe.ttl_secs, 8 * 24 * 3600);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn a_partition_count_applies_to_every_topic_and_zero_is_refused() {
        let raw = wabaflow_schemas::topics::WEBHOOKS_RAW;
        let inbound = wabaflow_schemas::topics::WA_INBOUND;
        let defaults = KafkaConfig::default();
        assert_eq!(defaults.partitions_of(&raw), 6);
        assert_eq!(defaults.partitions_of(&inbound), 12);
        figment::Jail::expect_with(|jail| {
            jail.set_env("WABAFLOW_KAFKA__PARTITIONS", "4");
            let config = Config::load(None).expect("loads");
            assert_eq!(config.kafka.partitions_of(&raw), 4);
            assert_eq!(config.kafka.partitions_of(&inbound), 4);
            jail.set_env("WABAFLOW_KAFKA__PARTITIONS", "0");
            assert!(Config::load(None).is_err(), "a topic needs a partition");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn an_unknown_key_is_refused_with_where_it_came_from() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "wabaflow.toml",
                "[kafka]\nbrokers = \"file:9092\"\nfetch_wait_ms = 3\n",
            )?;
            let err = Config::load(Some(Path::new("wabaflow.toml")))
                .expect_err("a key kafka does not have")
                .to_string();
            assert!(err.contains("`kafka.fetch_wait_ms`"), "{err}");
            assert!(err.contains("wabaflow.toml"), "{err}");

            jail.create_file("wabaflow.toml", "[kafka]\nbrokers = \"file:9092\"\n")?;
            jail.set_env("WABAFLOW_KAFKA__BROKER", "typo:9092");
            jail.set_env("WABAFLOW_KAFAK__BROKERS", "typo:9092");
            let err = Config::load(Some(Path::new("wabaflow.toml")))
                .expect_err("two misspelt variables")
                .to_string();
            assert!(err.contains("unknown configuration keys"), "{err}");
            assert!(
                err.contains("`kafka.broker` (from WABAFLOW_KAFKA__BROKER)"),
                "{err}"
            );
            assert!(err.contains("`kafak` (from WABAFLOW_KAFAK__…)"), "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn variables_without_a_section_are_not_configuration() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("WABAFLOW_CONFIG", "/etc/wabaflow/wabaflow.toml");
            jail.set_env("WABAFLOW_REDIS_URL", "redis://elsewhere:6379");
            jail.set_env("WABAFLOW_STORE__REDIS_URL", "redis://here:6379");
            let config = Config::load(None).expect("loads");
            assert_eq!(config.store.redis_url, "redis://here:6379");
            Ok(())
        });
    }

    #[test]
    fn secrets_never_print() {
        let config = MetaEdgeConfig {
            app_secret: Secret::new("s3cret"),
            verify_token: Secret::default(),
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }
}
