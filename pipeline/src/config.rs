//! Configuration: built-in defaults, then a TOML file, then `WABAFLOW_*` environment variables
//! (`WABAFLOW_KAFKA__BROKERS=host:9092` sets `kafka.brokers`; `__` separates sections).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
pub use wabaflow_schemas::Secret;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub ingest: IngestConfig,
    pub dedupe: DedupeConfig,
}

impl Config {
    /// Defaults, merged with `file` when given, merged with the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(Env::prefixed("WABAFLOW_").split("__"))
            .extract()
            .map_err(Box::new)
    }
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
            instance_id: None,
        }
    }
}

impl KafkaConfig {
    pub fn message_timeout(&self) -> Duration {
        Duration::from_millis(self.message_timeout_ms)
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
