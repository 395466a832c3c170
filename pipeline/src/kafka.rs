//! librdkafka client settings shared by every producer and consumer.

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// Producer settings: the guarantees in ARCHITECTURE.md live here.
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        // Durable before acknowledged: every in-sync replica has the record.
        .set("acks", "all")
        // No duplicates or reordering from the producer's own retries.
        .set("enable.idempotence", "true")
        // Java's default partitioner: Java and Go consumers agree on a key's partition.
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", kafka.message_timeout_ms.to_string())
        .set(
            "queue.buffering.max.messages",
            kafka.producer_queue_messages.to_string(),
        )
        .set("linger.ms", kafka.linger_ms.to_string())
        // Statistics every second tell `Producer::ready` when the producer id is assigned.
        .set("statistics.interval.ms", "1000");
    config
}

/// Consumer settings for a stage runner: offsets are stored by the runner only after the outputs
/// of a record are acked, and auto-committed from that store.
pub fn consumer_config(kafka: &KafkaConfig, group_id: &str, stage: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    if let Some(instance) = &kafka.instance_id {
        config.set("group.instance.id", format!("{instance}.{stage}"));
    }
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        // The prefetch buffer per consumer: when a runner stops polling (its in-flight window is
        // full, or it is retrying an unavailable service), fetching stops once this is full.
        .set("queued.max.messages.kbytes", "16384")
        // How long a fetch may wait for data. Kafka answers as soon as data arrives, so there
        // this only caps the long poll; tansu 0.6 holds every fetch for the full wait, which
        // would add the wait to every hop of the pipeline.
        .set("fetch.wait.max.ms", kafka.fetch_wait_max_ms.to_string())
        // When the prefetch queue was full, librdkafka waits this long before fetching again
        // (default 1 s): a batch sink that pauses to write would then stall for up to a second
        // after every write (seen as 0.5 s gaps in the ClickHouse benchmark).
        .set("fetch.queue.backoff.ms", "10")
        // Statistics every 5 s feed `wabaflow_stage_lag_records` (consumer lag per stage).
        .set("statistics.interval.ms", "5000");
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batching_and_fetch_wait_settings_reach_librdkafka() {
        let kafka = KafkaConfig {
            linger_ms: 7,
            fetch_wait_max_ms: 3,
            ..KafkaConfig::default()
        };
        assert_eq!(producer_config(&kafka).get("linger.ms"), Some("7"));
        assert_eq!(
            consumer_config(&kafka, "g", "dedupe").get("fetch.wait.max.ms"),
            Some("3")
        );
        let defaults = KafkaConfig::default();
        assert_eq!(producer_config(&defaults).get("linger.ms"), Some("2"));
    }
}
