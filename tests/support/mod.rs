//! Helpers for the integration tests: addresses of the real services (from the environment, with
//! the loopback defaults of `scripts/services.sh`), per-test topic prefixes, a topic reader that
//! assigns partitions directly (no group join), and Kafka's murmur2 partitioner.

#![allow(dead_code)]

pub mod flow;

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use wabaflow_pipeline::config::{KafkaConfig, Secret, StoreBackend};
use wabaflow_pipeline::kafka::producer_config;
use wabaflow_pipeline::{Config, Producer, Record};

pub const APP_SECRET: &str = "integration-app-secret";

pub fn brokers() -> String {
    std::env::var("WABAFLOW_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn redis_url() -> String {
    std::env::var("WABAFLOW_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A configuration isolated from every other test: its own topics, groups and Redis keys, and
/// ephemeral ports.
pub fn isolated_config() -> Config {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let mut config = Config::default();
    config.kafka.brokers = brokers();
    config.kafka.topic_prefix = format!("t{}-", &id[id.len() - 12..]);
    config.store.backend = StoreBackend::Redis;
    config.store.redis_url = redis_url();
    config.store.key_prefix = format!("test:{id}:");
    config.ingest.meta.app_secret = Secret::new(APP_SECRET);
    config.ingest.listen = ([127, 0, 0, 1], 0).into();
    config.admin.listen = ([127, 0, 0, 1], 0).into();
    config.clickhouse.url =
        std::env::var("WABAFLOW_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    config.clickhouse.database = format!("t{}", &id[id.len() - 12..]);
    config
}

pub async fn create_topics(config: &Config) {
    wabaflow_pipeline::topics::create_all(&config.kafka)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "creating topics on {} ({e}); start Kafka with scripts/services.sh up",
                config.kafka.brokers
            )
        });
}

/// Writes `records` in order, each as a producer batch of its own, and waits for every ack.
///
/// tansu 0.6 serves a fetch only from the first offset of a stored batch (docs/operations.md): a
/// consumer restarting at a committed offset inside a batch never receives that partition again.
/// A test that kills a runner and restarts it must write its input this way.
pub async fn send_unbatched(kafka: &KafkaConfig, records: &[Record]) {
    let mut config = producer_config(kafka);
    config
        .set("batch.num.messages", "1")
        .set("message.timeout.ms", "120000");
    Producer::with_config(&config)
        .expect("producer")
        .send_all(records)
        .await
        .expect("acked");
}

#[derive(Debug, Clone)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Reads a topic from the beginning of every partition.
pub struct TopicReader {
    consumer: StreamConsumer,
}

impl TopicReader {
    pub fn new(topic: &str, partitions: i32) -> Self {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("group.id", format!("reader-{}", uuid::Uuid::now_v7()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&assignment).expect("assign");
        Self { consumer }
    }

    /// The next record, or `None` after `idle` without one.
    pub async fn next(&self, idle: Duration) -> Option<Received> {
        loop {
            match tokio::time::timeout(idle, self.consumer.recv()).await {
                Err(_) => return None,
                Ok(Err(_)) => continue,
                Ok(Ok(m)) => {
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    return Some(Received {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                        payload: m.payload().unwrap_or_default().to_vec(),
                        headers,
                    });
                }
            }
        }
    }

    /// Reads until `done` says so (true) or nothing arrived for `idle`.
    pub async fn until(
        &self,
        idle: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let mut all = Vec::new();
        while !done(&all) {
            match self.next(idle).await {
                Some(record) => all.push(record),
                None => break,
            }
        }
        all
    }
}

/// The offsets `group` committed on `topic`, per partition (-1 where none), read by a short-lived
/// consumer that never joins the group.
pub fn committed_offsets(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut wanted = TopicPartitionList::new();
    for partition in 0..partitions {
        wanted.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => offset,
                _ => -1,
            },
        )
        .collect()
}

/// Kafka's `Utils.murmur2`, as librdkafka's `murmur2_random` partitioner and the Java client use.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

pub fn partition_for(key: &str, partitions: i32) -> i32 {
    ((murmur2(key.as_bytes()) & 0x7fff_ffff) % partitions as u32) as i32
}

#[test]
fn murmur2_matches_kafkas_reference_values() {
    // From Apache Kafka's UtilsTest.testMurmur2.
    assert_eq!(murmur2(b"21") as i32, -973_932_308);
    assert_eq!(murmur2(b"foobar") as i32, -790_332_482);
    assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985_981_536);
    assert_eq!(
        murmur2(b"a-little-bit-longer-string") as i32,
        -1_486_304_829
    );
    assert_eq!(
        murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
        -58_897_971
    );
    assert_eq!(murmur2(b"abc") as i32, 479_470_107);
}
