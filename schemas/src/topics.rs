//! The topic registry: every topic wabaflow writes, with its key, partition count and schema.
//!
//! `wabaflow topics create` creates exactly these (plus each one's `.dlq` twin) and
//! `docs/topics.md` documents them. Partition counts are fixed at creation: tansu cannot add
//! partitions later and adding them on Kafka would move conversations between partitions.

/// A registered topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic {
    pub name: &'static str,
    /// What the record key is.
    pub key: &'static str,
    pub partitions: i32,
    /// What the record value is.
    pub schema: &'static str,
    /// Whether the topic gets a `<name>.dlq` twin for records its consumers can never process.
    pub has_dlq: bool,
}

/// Conversation topics have this many partitions: the ceiling on consumer parallelism per stage.
pub const CONVERSATION_PARTITIONS: i32 = 12;

/// Raw webhook bodies, byte for byte as received, for the S3 archive and for replay.
pub const WEBHOOKS_RAW: Topic = Topic {
    name: "webhooks.raw.v1",
    key: "request id (UUID v7)",
    partitions: 6,
    schema: "raw request body; headers wabaflow-source, wabaflow-received-at, content-type, x-hub-signature-256",
    has_dlq: false,
};

/// Every event split from Meta webhooks, before dedupe.
pub const WA_INBOUND: Topic = Topic {
    name: "wa.inbound.v1",
    key: "conversation key",
    partitions: CONVERSATION_PARTITIONS,
    schema: "Envelope v1 (JSON)",
    has_dlq: true,
};

/// Meta events with every duplicate removed: each message and each (message, status) once.
pub const WA_INBOUND_UNIQUE: Topic = Topic {
    name: "wa.inbound.unique.v1",
    key: "conversation key",
    partitions: CONVERSATION_PARTITIONS,
    schema: "Envelope v1 (JSON)",
    has_dlq: true,
};

/// Unique Meta events with their tenant resolved and the conversation mapping updated.
pub const WA_INBOUND_MAPPED: Topic = Topic {
    name: "wa.inbound.mapped.v1",
    key: "conversation key",
    partitions: CONVERSATION_PARTITIONS,
    schema: "Envelope v1 (JSON), tenant set",
    has_dlq: true,
};

/// Mapped events whose media (if any) is stored in S3 with a presigned URL (`event.media`).
pub const WA_INBOUND_ENRICHED: Topic = Topic {
    name: "wa.inbound.enriched.v1",
    key: "conversation key",
    partitions: CONVERSATION_PARTITIONS,
    schema: "Envelope v1 (JSON), tenant and media set",
    has_dlq: true,
};

/// Customer messages normalized for Genesys Open Messaging, consumed by `sink:genesys`.
pub const DELIVERY_GENESYS: Topic = Topic {
    name: "delivery.genesys.v1",
    key: "conversation key",
    partitions: CONVERSATION_PARTITIONS,
    schema: "Envelope v1 (JSON), event kinds genesys_inbound and genesys_receipt",
    has_dlq: true,
};

/// Agents' replies as Genesys posted them, keyed by the WhatsApp conversation.
pub const GENESYS_OUTBOUND: Topic = Topic {
    name: "genesys.outbound.v1",
    key: "conversation key",
    partitions: CONVERSATION_PARTITIONS,
    schema: "Envelope v1 (JSON), event kind genesys_outbound",
    has_dlq: true,
};

/// Agents' replies, each Genesys message id once.
pub const GENESYS_OUTBOUND_UNIQUE: Topic = Topic {
    name: "genesys.outbound.unique.v1",
    key: "conversation key",
    partitions: CONVERSATION_PARTITIONS,
    schema: "Envelope v1 (JSON), event kind genesys_outbound",
    has_dlq: true,
};

/// Replies with tenant, customer and the 24-hour window resolved.
pub const GENESYS_OUTBOUND_MAPPED: Topic = Topic {
    name: "genesys.outbound.mapped.v1",
    key: "conversation key",
    partitions: CONVERSATION_PARTITIONS,
    schema: "Envelope v1 (JSON), genesys_outbound with reply set",
    has_dlq: true,
};

/// Replies whose attachment (if any) is stored in S3 `media-outbound`.
pub const GENESYS_OUTBOUND_ENRICHED: Topic = Topic {
    name: "genesys.outbound.enriched.v1",
    key: "conversation key",
    partitions: CONVERSATION_PARTITIONS,
    schema: "Envelope v1 (JSON), genesys_outbound with reply and media set",
    has_dlq: true,
};

/// Cloud API sends, consumed by `sink:whatsapp`.
pub const WA_SEND: Topic = Topic {
    name: "wa.send.v1",
    key: "conversation key",
    partitions: CONVERSATION_PARTITIONS,
    schema: "Envelope v1 (JSON), event kind whatsapp_send",
    has_dlq: true,
};

/// What became of each send (wamid, or the failure and its reason).
pub const WA_SEND_RESULTS: Topic = Topic {
    name: "wa.send-results.v1",
    key: "conversation key",
    partitions: CONVERSATION_PARTITIONS,
    schema: "Envelope v1 (JSON), event kind send_result",
    has_dlq: true,
};

/// One record per metered message (PMP) or conversation (CBP), with its cost.
pub const BILLING_USAGE: Topic = Topic {
    name: "billing.usage.v1",
    key: "conversation key",
    partitions: CONVERSATION_PARTITIONS,
    schema: "Envelope v1 (JSON), event kind usage",
    has_dlq: true,
};

/// Every registered topic.
pub const ALL: &[Topic] = &[
    WEBHOOKS_RAW,
    WA_INBOUND,
    WA_INBOUND_UNIQUE,
    WA_INBOUND_MAPPED,
    WA_INBOUND_ENRICHED,
    DELIVERY_GENESYS,
    GENESYS_OUTBOUND,
    GENESYS_OUTBOUND_UNIQUE,
    GENESYS_OUTBOUND_MAPPED,
    GENESYS_OUTBOUND_ENRICHED,
    WA_SEND,
    WA_SEND_RESULTS,
    BILLING_USAGE,
];

/// Suffix of a topic's dead-letter twin.
pub const DLQ_SUFFIX: &str = ".dlq";

impl Topic {
    /// The full name under a deployment prefix (tests and tenants of a shared cluster use one).
    pub fn qualified(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.name)
    }

    /// The dead-letter twin's full name.
    pub fn dlq(&self, prefix: &str) -> String {
        format!("{prefix}{}{DLQ_SUFFIX}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_convention() {
        for topic in ALL {
            let parts: Vec<&str> = topic.name.split('.').collect();
            assert!(parts.len() >= 3, "{} is <domain>.<what>.v<N>", topic.name);
            let version = parts.last().expect("split yields at least one part");
            assert!(
                version.starts_with('v') && version[1..].parse::<u32>().is_ok(),
                "{}",
                topic.name
            );
        }
        assert_eq!(WA_INBOUND.dlq("t1-"), "t1-wa.inbound.v1.dlq");
    }
}
