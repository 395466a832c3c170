//! `wabaflow topics create`: creates every registered topic and its dead-letter twin, idempotently.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use wabaflow_schemas::topics::{ALL, Topic};

use crate::config::KafkaConfig;

/// What happened to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicReport {
    pub name: String,
    pub partitions: i32,
    pub created: bool,
}

/// Every topic name to create: the registry and the `.dlq` twins, under the configured prefix.
pub fn planned(kafka: &KafkaConfig) -> Vec<(String, i32)> {
    ALL.iter()
        .flat_map(|topic: &Topic| {
            let partitions = kafka.partitions_of(topic);
            let main = (topic.qualified(&kafka.topic_prefix), partitions);
            let dlq = topic
                .has_dlq
                .then(|| (topic.dlq(&kafka.topic_prefix), partitions));
            std::iter::once(main).chain(dlq)
        })
        .collect()
}

/// Creates what is missing; existing topics are reported, not changed.
pub async fn create_all(kafka: &KafkaConfig) -> Result<Vec<TopicReport>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .create()?;
    let plan = planned(kafka);
    let new: Vec<NewTopic<'_>> = plan
        .iter()
        .map(|(name, partitions)| {
            NewTopic::new(
                name,
                *partitions,
                TopicReplication::Fixed(kafka.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics(&new, &options).await?;
    let mut reports = Vec::with_capacity(results.len());
    for (result, (name, partitions)) in results.into_iter().zip(&plan) {
        let created = match result {
            Ok(_) => true,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => false,
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        };
        reports.push(TopicReport {
            name: name.clone(),
            partitions: *partitions,
            created,
        });
    }
    Ok(reports)
}
