//! End-to-end tests of the foundation against real services (tansu on :9092, Redis on :6379;
//! `scripts/services.sh up` starts them): the Meta edge, the runner and the dedupe stage.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::consumer::Consumer as _;
use serde_json::{Value, json};
use support::*;
use tokio::sync::{Semaphore, mpsc};
use wabaflow::node::{Node, Role};
use wabaflow_ingest::meta::{SIGNATURE_HEADER, sign};
use wabaflow_pipeline::telemetry::Health;
use wabaflow_pipeline::{
    BatchLimits, BatchRunner, BatchSink, Config, Context, Outcome, Producer, RawRecord, Record,
    Shutdown, Stage, StageError, StageRunner,
};
use wabaflow_schemas::topics::{WA_INBOUND, WA_INBOUND_UNIQUE, WEBHOOKS_RAW};
use wabaflow_schemas::{ConversationKey, Envelope, Event, IDEMPOTENCY_HEADER, Source, Topic};

const IDLE: Duration = Duration::from_secs(20);

fn golden(name: &str) -> Value {
    let path = format!(
        "{}/tests/golden/meta/{name}.json",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).expect("golden case")).expect("json")
}

async fn post(node: &Node, body: &[u8], signature: Option<&str>) -> (u16, Value) {
    let url = format!(
        "http://{}/webhooks/meta",
        node.ingest_addr.expect("ingest role")
    );
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let response = request.send().await.expect("edge answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post_signed(node: &Node, body: &Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).expect("json");
    post(node, &bytes, Some(&sign(APP_SECRET.as_bytes(), &bytes))).await
}

async fn start(config: &Config, roles: &[Role]) -> Node {
    Node::start(config, roles, None, Shutdown::new())
        .await
        .expect("node starts")
}

async fn stop(node: Node) {
    node.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), node.wait())
        .await
        .expect("node stops")
        .expect("cleanly");
}

/// A text message from `user` to number `number`.
fn text(number: &str, user: &str, wamid: &str, body: &str) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "300000000000001", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550001111", "phone_number_id": number },
            "contacts": [{ "profile": { "name": "Sentinel" }, "wa_id": user }],
            "messages": [{ "from": user, "id": wamid, "timestamp": "1767225900", "type": "text", "text": { "body": body } }]
        }}]}]
    })
}

/// An envelope of a text message from `user` to number 110, as the Meta edge would write it to `topic`.
fn text_record(topic: &str, user: &str, wamid: &str, body: &str) -> Record {
    let message = serde_json::from_value(json!({
        "from": user, "id": wamid, "timestamp": "1767225600", "type": "text", "text": { "body": body }
    }))
    .expect("message");
    let key = ConversationKey::conversation("110", user);
    let event = Event::MetaMessage {
        phone_number_id: "110".into(),
        display_phone_number: None,
        contact: None,
        message: Box::new(message),
        media: None,
    };
    let envelope = Envelope::new(
        Source::Meta,
        key.clone(),
        None,
        chrono::Utc::now(),
        None,
        event,
    );
    Record::new(topic, Some(key.to_string()), envelope.to_json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_webhook_becomes_one_event_per_update_in_its_conversation_partition() {
    let config = isolated_config();
    create_topics(&config).await;
    let node = start(&config, &[Role::Ingest]).await;
    let case = golden("batched-messages-and-statuses");
    let body = serde_json::to_vec(&case["request"]).expect("json");
    let signature = sign(APP_SECRET.as_bytes(), &body);

    let (status, answer) = post(&node, &body, Some(&signature)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["events"], 4);

    let prefix = &config.kafka.topic_prefix;
    let events = TopicReader::new(&WA_INBOUND.qualified(prefix), WA_INBOUND.partitions);
    let records = events.until(IDLE, |r| r.len() >= 4).await;
    let expected = case["expected"].as_array().expect("expected events");
    assert_eq!(records.len(), expected.len());
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for record in &records {
        let key = record.key.clone().expect("keyed");
        assert_eq!(
            record.partition,
            partition_for(&key, WA_INBOUND.partitions),
            "{key} is in murmur2's partition"
        );
        let envelope = Envelope::from_json(&record.payload).expect("envelope");
        assert_eq!(envelope.conversation_key.as_str(), key);
        let identity = envelope.event.idempotency_key().expect("identity");
        assert_eq!(
            record.headers.get(IDEMPOTENCY_HEADER),
            Some(&identity),
            "the edge writes the event's key in a header, for dedupe"
        );
        seen.entry(key).or_default().push(identity);
    }
    // Per conversation, events keep the order of the body.
    let mut wanted: HashMap<String, Vec<String>> = HashMap::new();
    for e in expected {
        let key = e["key"].as_str().expect("key").to_owned();
        wanted
            .entry(key)
            .or_default()
            .push(e["idempotency_key"].as_str().expect("id").to_owned());
    }
    assert_eq!(seen, wanted);

    let raw = TopicReader::new(&WEBHOOKS_RAW.qualified(prefix), WEBHOOKS_RAW.partitions);
    let bodies = raw.until(IDLE, |r| !r.is_empty()).await;
    assert_eq!(bodies.len(), 1);
    assert_eq!(
        bodies[0].payload, body,
        "the raw body is kept byte for byte"
    );
    assert_eq!(bodies[0].headers.get(SIGNATURE_HEADER), Some(&signature));
    assert_eq!(
        bodies[0].headers.get("wabaflow-source").map(String::as_str),
        Some("meta")
    );
    stop(node).await;
}

/// `kafka.partitions` reaches the broker: the topics have that many partitions, and the edge's
/// events land in murmur2's partition among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_with_the_configured_partition_count() {
    let mut config = isolated_config();
    config.kafka.partitions = std::num::NonZeroU16::new(3);
    let reports = wabaflow_pipeline::topics::create_all(&config.kafka)
        .await
        .expect("topics created");
    assert!(reports.iter().all(|r| r.created && r.partitions == 3));
    let prefix = &config.kafka.topic_prefix;
    let probe: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .create()
        .expect("consumer");
    for topic in [
        WA_INBOUND.qualified(prefix),
        WA_INBOUND.dlq(prefix),
        WEBHOOKS_RAW.qualified(prefix),
    ] {
        let metadata = probe
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("metadata");
        let partitions = metadata.topics().first().map(|t| t.partitions().len());
        assert_eq!(partitions, Some(3), "{topic}");
    }

    let node = start(&config, &[Role::Ingest]).await;
    let wamids = ["wamid.P3-1", "wamid.P3-2", "wamid.P3-3", "wamid.P3-4"];
    for (i, wamid) in wamids.iter().enumerate() {
        let webhook = text("110", &format!("44770090{i:04}"), wamid, "hi");
        let (status, answer) = post_signed(&node, &webhook).await;
        assert_eq!(status, 200, "{answer}");
    }
    let events = TopicReader::new(&WA_INBOUND.qualified(prefix), 3);
    let records = events.until(IDLE, |r| r.len() >= wamids.len()).await;
    assert_eq!(records.len(), wamids.len());
    for record in &records {
        let key = record.key.clone().expect("keyed");
        assert_eq!(record.partition, partition_for(&key, 3), "{key}");
    }
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_delivered_twice_passes_dedupe_once() {
    let config = isolated_config();
    create_topics(&config).await;
    let node = start(&config, &[Role::Ingest, Role::Dedupe]).await;
    let case = golden("batched-messages-and-statuses");
    assert_eq!(post_signed(&node, &case["request"]).await.0, 200);
    assert_eq!(
        post_signed(&node, &case["request"]).await.0,
        200,
        "Meta's retry is accepted too"
    );

    // One sentinel per conversation of the batch, posted after the retry: once every sentinel is
    // downstream, everything before it in its partition has been through dedupe.
    let keys: HashSet<String> = case["expected"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["key"].as_str().expect("key").to_owned())
        .collect();
    for (i, key) in keys.iter().enumerate() {
        let (number, user) = key.split_once(':').expect("conversation key");
        assert_eq!(
            post_signed(
                &node,
                &text(number, user, &format!("wamid.SENTINEL.{i}"), "sentinel")
            )
            .await
            .0,
            200
        );
    }
    let unique = TopicReader::new(
        &WA_INBOUND_UNIQUE.qualified(&config.kafka.topic_prefix),
        WA_INBOUND_UNIQUE.partitions,
    );
    let records = unique
        .until(IDLE, |r| {
            r.iter()
                .filter(|r| String::from_utf8_lossy(&r.payload).contains("wamid.SENTINEL."))
                .count()
                == keys.len()
        })
        .await;
    let ids: Vec<String> = records
        .iter()
        .map(|r| {
            Envelope::from_json(&r.payload)
                .expect("envelope")
                .event
                .idempotency_key()
                .expect("identity")
        })
        .filter(|id| !id.contains("SENTINEL"))
        .collect();
    let mut expected: Vec<String> = case["expected"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["idempotency_key"].as_str().expect("id").to_owned())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(
        sorted, expected,
        "each message and status exactly once downstream"
    );
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_get_their_status_and_produce_nothing() {
    let mut config = isolated_config();
    config.ingest.body_limit_bytes = 64 * 1024;
    create_topics(&config).await;
    let node = start(&config, &[Role::Ingest]).await;
    let body = serde_json::to_vec(&text(
        "110",
        "447700900001",
        "wamid.REFUSED.1",
        "should never be stored",
    ))
    .expect("json");

    let forged = sign(b"someone-else", &body);
    type Case<'a> = (&'a str, Vec<u8>, Option<String>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "bad signature",
            body.clone(),
            Some(forged),
            401,
            "invalid_signature",
        ),
        (
            "missing signature",
            body.clone(),
            None,
            401,
            "missing_signature",
        ),
        (
            "sha1 signature",
            body.clone(),
            Some("sha1=0123".into()),
            401,
            "invalid_signature",
        ),
        (
            "invalid JSON",
            b"{\"object\":".to_vec(),
            Some(sign(APP_SECRET.as_bytes(), b"{\"object\":")),
            400,
            "invalid_json",
        ),
        (
            "not a WABA webhook",
            br#"{"object":"page","entry":[]}"#.to_vec(),
            Some(sign(
                APP_SECRET.as_bytes(),
                br#"{"object":"page","entry":[]}"#,
            )),
            400,
            "unsupported_object",
        ),
    ];
    for (what, body, signature, status, code) in cases {
        let (got, answer) = post(&node, &body, signature.as_deref()).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(
            answer["error"]["code"], code,
            "{what}: a JSON body naming the problem"
        );
    }
    let mut huge =
        serde_json::to_vec(&text("110", "447700900001", "wamid.REFUSED.2", "x")).expect("json");
    huge.resize(64 * 1024 + 1, b' ');
    let (got, answer) = post(&node, &huge, Some(&sign(APP_SECRET.as_bytes(), &huge))).await;
    assert_eq!(got, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "payload_too_large");

    // A path no edge serves and a method the edge does not take: JSON bodies too.
    let edge = format!("http://{}", node.ingest_addr.expect("ingest role"));
    let client = reqwest::Client::new();
    let unrouted = |code: &str| {
        wabaflow_pipeline::telemetry::metrics()
            .edge_rejected
            .with_label_values(&["none", code])
            .get()
    };
    let before = (unrouted("not_found"), unrouted("method_not_allowed"));
    for (request, status, code) in [
        (
            client.post(format!("{edge}/webhooks/whatsapp")),
            404,
            "not_found",
        ),
        (client.get(format!("{edge}/")), 404, "not_found"),
        (
            client.delete(format!("{edge}/webhooks/meta/acme")),
            405,
            "method_not_allowed",
        ),
        (
            client.put(format!("{edge}/webhooks/meta")),
            405,
            "method_not_allowed",
        ),
    ] {
        let response = request
            .body(body.clone())
            .send()
            .await
            .expect("edge answers");
        let allow = response.headers().get("allow").cloned();
        assert_eq!(response.status().as_u16(), status, "{}", response.url());
        let answer: Value = response.json().await.expect("a JSON body");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        if status == 405 {
            let allow = allow.expect("405 names the methods that are taken");
            assert!(
                allow.to_str().unwrap_or_default().contains("POST"),
                "{allow:?}"
            );
        }
    }
    assert_eq!(
        (unrouted("not_found"), unrouted("method_not_allowed")),
        (before.0 + 2, before.1 + 2),
        "counted, under the edge `none`"
    );

    // The admin server answers the same way, and is not counted as an edge.
    let admin = format!("http://{}", node.admin_addr);
    for (request, status, code) in [
        (client.get(format!("{admin}/health")), 404, "not_found"),
        (
            client.post(format!("{admin}/metrics")),
            405,
            "method_not_allowed",
        ),
    ] {
        let response = request.send().await.expect("admin server answers");
        let allow = response.headers().get("allow").cloned();
        assert_eq!(response.status().as_u16(), status, "{}", response.url());
        let answer: Value = response.json().await.expect("a JSON body");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        if status == 405 {
            let allow = allow.expect("405 names the methods that are taken");
            assert!(
                allow.to_str().unwrap_or_default().contains("GET"),
                "{allow:?}"
            );
        }
    }
    assert_eq!(
        (unrouted("not_found"), unrouted("method_not_allowed")),
        (before.0 + 2, before.1 + 2),
        "the admin server's refusals are not the edge's"
    );

    // The sentinel: a good message and one that cannot be routed (no id) → one event, one dead letter.
    let mut sentinel = text("110", "447700900001", "wamid.SENTINEL.ok", "sentinel");
    let messages = sentinel["entry"][0]["changes"][0]["value"]["messages"]
        .as_array_mut()
        .expect("messages");
    messages.push(json!({ "from": "447700900001", "timestamp": "1767225901", "type": "text", "text": { "body": "no id" } }));
    let (status, answer) = post_signed(&node, &sentinel).await;
    assert_eq!(
        (
            status,
            answer["events"].clone(),
            answer["dead_letters"].clone()
        ),
        (200, json!(1), json!(1))
    );

    let prefix = &config.kafka.topic_prefix;
    let idle = Duration::from_secs(2);
    let sentinel_seen = |r: &[Received]| {
        r.iter()
            .any(|r| String::from_utf8_lossy(&r.payload).contains("SENTINEL"))
    };
    // Read each topic past its sentinel, then until it stays quiet: a refused request's records
    // would have been acked before its response, so they would be readable by now.
    for (topic, partitions) in [
        (WEBHOOKS_RAW.qualified(prefix), WEBHOOKS_RAW.partitions),
        (WA_INBOUND.qualified(prefix), WA_INBOUND.partitions),
    ] {
        let reader = TopicReader::new(&topic, partitions);
        let mut records = reader.until(IDLE, sentinel_seen).await;
        records.extend(reader.until(idle, |_| false).await);
        assert_eq!(records.len(), 1, "{topic} holds only the sentinel");
        assert!(!String::from_utf8_lossy(&records[0].payload).contains("REFUSED"));
    }
    let dlq = TopicReader::new(&WA_INBOUND.dlq(prefix), WA_INBOUND.partitions);
    let mut dead = dlq.until(IDLE, |r| !r.is_empty()).await;
    dead.extend(dlq.until(idle, |_| false).await);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].headers.get("wabaflow-error").map(String::as_str),
        Some("message without id")
    );
    assert!(
        String::from_utf8_lossy(&dead[0].payload).contains("no id"),
        "the dead letter keeps the original JSON"
    );
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_answers_503_within_a_bounded_time_when_kafka_is_unreachable() {
    let mut config = isolated_config();
    config.kafka.brokers = "127.0.0.1:1".into();
    config.kafka.message_timeout_ms = 2_000;
    let node = start(&config, &[Role::Ingest]).await;
    let started = Instant::now();
    let (status, answer) = post_signed(
        &node,
        &text("110", "447700900001", "wamid.DOWN.1", "hello?"),
    )
    .await;
    let waited = started.elapsed();
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "log_unavailable");
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );
    node.shutdown.trigger();
    // The producer cannot flush to a dead broker; the node still stops within its flush timeout.
    let _ = tokio::time::timeout(Duration::from_secs(30), node.wait()).await;
}

/// The dedupe role, as its own process, is SIGKILLed while 10 000 events (8 000 distinct, 2 000
/// Meta retries) go through it, then restarted. Nothing may be lost, no retry may pass, and each
/// conversation keeps its order. A record redelivered by Kafka after the kill may be emitted again
/// (at-least-once transport, see docs/component.md): such repeats carry the same input origin and
/// event id, which is how downstream effects absorb them; the test counts and reports them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedupe_killed_mid_stream_loses_nothing_and_passes_no_duplicate() {
    const TOTAL: usize = 10_000;
    const CONVERSATIONS: usize = 50;
    let config = isolated_config();
    create_topics(&config).await;
    let prefix = config.kafka.topic_prefix.clone();
    let logs = std::env::temp_dir().join(format!("{prefix}dedupe"));
    std::fs::create_dir_all(&logs).expect("log dir");

    let spawn = |run: usize| {
        let log = std::fs::File::create(logs.join(format!("run-{run}.log"))).expect("log file");
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wabaflow"))
            .args(["run", "--roles", "stage:dedupe"])
            .env("WABAFLOW_KAFKA__BROKERS", &config.kafka.brokers)
            .env("WABAFLOW_KAFKA__TOPIC_PREFIX", &prefix)
            .env("WABAFLOW_KAFKA__MESSAGE_TIMEOUT_MS", "30000")
            .env("WABAFLOW_STORE__BACKEND", "redis")
            .env("WABAFLOW_STORE__REDIS_URL", &config.store.redis_url)
            .env("WABAFLOW_STORE__KEY_PREFIX", &config.store.key_prefix)
            .env("WABAFLOW_ADMIN__LISTEN", "127.0.0.1:0")
            // Static membership: the restarted process replaces the killed one in the group.
            .env("WABAFLOW_KAFKA__INSTANCE_ID", "dedupe-0")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("wabaflow starts")
    };
    let mut child = spawn(1);

    // Records go round-robin over the conversations; every fifth round is Meta re-sending each
    // conversation's previous message.
    let input = WA_INBOUND.qualified(&prefix);
    let mut next_seq = vec![0usize; CONVERSATIONS];
    let mut records = Vec::with_capacity(TOTAL);
    for i in 0..TOTAL {
        let conversation = i % CONVERSATIONS;
        let seq = if (i / CONVERSATIONS) % 5 == 4 {
            next_seq[conversation] - 1
        } else {
            next_seq[conversation] += 1;
            next_seq[conversation] - 1
        };
        let user = format!("4477009{conversation:05}");
        records.push(text_record(
            &input,
            &user,
            &format!("wamid.{conversation}.{seq}"),
            &seq.to_string(),
        ));
    }
    let distinct: usize = next_seq.iter().sum();
    assert_eq!(distinct, 8_000);
    // The last round is all retries, which produce nothing downstream. One sentinel message per
    // partition, after everything else, tells the test when every input record has been handled.
    let sentinels: Vec<Record> = (0..WA_INBOUND.partitions)
        .map(|partition| {
            let user = (0..)
                .map(|n| format!("sentinel{n}"))
                .find(|u| partition_for(&format!("110:{u}"), WA_INBOUND.partitions) == partition)
                .expect("some key lands in every partition");
            text_record(
                &input,
                &user,
                &format!("wamid.sentinel.{partition}"),
                "sentinel",
            )
        })
        .collect();
    records.extend(sentinels);
    let is_sentinel = |id: &str| id.starts_with("wamid.sentinel.");

    let output = TopicReader::new(
        &WA_INBOUND_UNIQUE.qualified(&prefix),
        WA_INBOUND_UNIQUE.partitions,
    );
    let mut received = Vec::new();
    // The first half goes in before the kill, the rest after it: the restarted process then has
    // work of its own on every partition (the sentinels), however fast the first one was. With
    // everything sent up front, the first could finish it all before the kill, and the test then
    // stopped a restarted process that had not even joined the group yet. Each record is a batch
    // of its own: see `send_unbatched`.
    let (before_kill, after_kill) = records.split_at(TOTAL / 2);
    send_unbatched(&config.kafka, before_kill).await;
    // Kill once a quarter of the distinct events is downstream.
    while received.len() < distinct / 4 {
        received.push(
            output
                .next(Duration::from_secs(60))
                .await
                .expect("dedupe makes progress"),
        );
    }
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("reaped");
    let killed_at = received.len();
    let mut child = spawn(2);
    send_unbatched(&config.kafka, after_kill).await;

    let wamid = |r: &Received| -> String {
        match Envelope::from_json(&r.payload).expect("envelope").event {
            Event::MetaMessage { message, .. } => message.id,
            other => panic!("unexpected {other:?}"),
        }
    };
    let mut seen: HashSet<String> = received.iter().map(wamid).collect();
    let expected = distinct + WA_INBOUND.partitions as usize;
    while seen.len() < expected {
        let record = output
            .next(Duration::from_secs(60))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "stalled at {} of {expected} distinct events; logs in {}",
                    seen.len(),
                    logs.display()
                )
            });
        seen.insert(wamid(&record));
        received.push(record);
    }
    // Drain what the restarted process still has in flight.
    received.extend(output.until(Duration::from_secs(2), |_| false).await);

    // A graceful stop: SIGTERM → finish in-flight records, commit synchronously, exit 0. The group's
    // committed offsets then cover every input record of every partition.
    let pid = child.id().expect("running").to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(term.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops on SIGTERM")
        .expect("reaped");
    assert!(exit.success(), "exit status after SIGTERM: {exit}");
    let mut per_partition = vec![0i64; WA_INBOUND.partitions as usize];
    for record in &records {
        per_partition[partition_for(record.key.as_deref().expect("keyed"), WA_INBOUND.partitions)
            as usize] += 1;
    }
    assert_eq!(
        committed_offsets(
            &config.kafka.group_id("dedupe"),
            &input,
            WA_INBOUND.partitions
        ),
        per_partition
    );

    let mut origins: HashMap<String, HashSet<String>> = HashMap::new();
    let mut order: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for record in &received {
        let id = wamid(record);
        if is_sentinel(&id) {
            continue;
        }
        origins
            .entry(id.clone())
            .or_default()
            .insert(record.headers["wabaflow-origin"].clone());
        let (conversation, seq) = id
            .trim_start_matches("wamid.")
            .split_once('.')
            .expect("id shape");
        order
            .entry(conversation.to_owned())
            .or_default()
            .push(seq.parse().expect("seq"));
    }
    assert_eq!(origins.len(), distinct, "every distinct event arrived");
    let retried: Vec<_> = origins.iter().filter(|(_, o)| o.len() > 1).collect();
    assert!(
        retried.is_empty(),
        "a Meta retry passed dedupe: {:?}",
        retried.first()
    );
    for (conversation, seqs) in &order {
        // First occurrences are in the customer's order; a redelivery only ever repeats a suffix.
        let mut first = Vec::new();
        let mut known = HashSet::new();
        for seq in seqs {
            if known.insert(*seq) {
                first.push(*seq);
            }
        }
        assert!(
            first.windows(2).all(|w| w[0] < w[1]),
            "conversation {conversation} out of order: {first:?}"
        );
        assert_eq!(
            first.len(),
            next_seq[conversation.parse::<usize>().expect("n")]
        );
    }
    let repeats = received.iter().filter(|r| !is_sentinel(&wamid(r))).count() - distinct;
    eprintln!(
        "killed after {killed_at} outputs; {repeats} redelivered record(s) re-emitted after the restart"
    );
}

/// The README's first command: the demo on embedded defaults must observe every outcome it
/// promises (and exit non-zero otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_once_observes_every_expected_outcome() {
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wabaflow"))
            .args(["demo", "--once"])
            .output(),
    )
    .await
    .expect("demo finishes")
    .expect("demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("✓ exactly 3 events downstream"), "{stdout}");
    assert!(
        stdout.contains("✓ Genesys downloaded the photo"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "✓ one text send to the customer; receipts in Genesys: Sent → Delivered → Read"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("16 passed, 0 failed"), "{stdout}");
    assert!(!stdout.contains('✗'), "{stdout}");
}

/// The runner itself: an undecodable record goes to the input's DLQ with its bytes and the reason,
/// and with one record allowed in flight the runner has to stop reading again and again (it waits
/// for acks instead of dropping), yet every valid record arrives, in order and unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_dead_letters_garbage_and_applies_backpressure() {
    let mut config = isolated_config();
    config.kafka.max_in_flight = 1;
    create_topics(&config).await;
    let prefix = config.kafka.topic_prefix.clone();
    let input = WA_INBOUND.qualified(&prefix);
    let key = ConversationKey::conversation("110", "447700900777");
    let producer = Producer::new(&config.kafka).expect("producer");
    let mut records = vec![
        Record::new(
            input.as_str(),
            Some(key.to_string()),
            b"{not an envelope".to_vec(),
        )
        .header("trace", "kept"),
    ];
    for seq in 0..200 {
        let mut record = text_record(
            &input,
            "447700900777",
            &format!("wamid.bp.{seq}"),
            &seq.to_string(),
        );
        // Valid JSON that no encoder writes: a re-encoded copy would differ from it.
        record.payload.insert(0, b' ');
        records.push(record);
    }
    producer.send_all(&records).await.expect("input acked");

    let waits = || {
        wabaflow_pipeline::telemetry::metrics()
            .stage_backpressure_waits
            .with_label_values(&["dedupe"])
            .get()
    };
    let waits_before = waits();
    let node = start(&config, &[Role::Dedupe]).await;
    let output = TopicReader::new(
        &WA_INBOUND_UNIQUE.qualified(&prefix),
        WA_INBOUND_UNIQUE.partitions,
    );
    let received = output.until(IDLE, |r| r.len() >= 200).await;
    let bodies: Vec<String> = received
        .iter()
        .map(
            |r| match Envelope::from_json(&r.payload).expect("envelope").event {
                Event::MetaMessage { message, .. } => {
                    message.text.and_then(|t| t.body).expect("text")
                }
                other => panic!("unexpected {other:?}"),
            },
        )
        .collect();
    assert_eq!(
        bodies,
        (0..200).map(|i| i.to_string()).collect::<Vec<_>>(),
        "all 200, in order"
    );
    // Dedupe forwards what it lets through: the very bytes it read, not a re-encoding.
    assert!(
        received
            .iter()
            .zip(&records[1..])
            .all(|(out, input)| out.payload == input.payload),
        "forwarded byte for byte"
    );
    assert!(
        waits() > waits_before,
        "the runner waited for acks with its window full"
    );

    let dlq = TopicReader::new(&WA_INBOUND.dlq(&prefix), WA_INBOUND.partitions);
    let dead = dlq.until(IDLE, |r| !r.is_empty()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, b"{not an envelope", "the original bytes");
    assert_eq!(
        dead[0].headers.get("trace").map(String::as_str),
        Some("kept"),
        "the original headers"
    );
    assert_eq!(
        dead[0].headers.get("wabaflow-stage").map(String::as_str),
        Some("dedupe")
    );
    assert!(
        dead[0].headers["wabaflow-error"].contains("not a valid envelope"),
        "{:?}",
        dead[0].headers
    );
    assert!(dead[0].headers["wabaflow-origin"].starts_with(&input));
    stop(node).await;
}

/// An idempotent producer writes only once the broker gave it an id (librdkafka asks half a second
/// after start): `ready()` waits for that, and a node's `/readyz` lists the producer until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_and_nodes_are_ready_once_the_producer_has_its_id() {
    let config = isolated_config();
    create_topics(&config).await;
    let producer = Producer::new(&config.kafka).expect("producer");
    assert!(!producer.is_ready(), "no id is asked for before 500 ms");
    tokio::time::timeout(Duration::from_secs(30), producer.ready())
        .await
        .expect("the producer gets its id");
    assert!(producer.is_ready());
    let topic = WA_INBOUND.qualified(&config.kafka.topic_prefix);
    let acks = producer
        .send_all(&[text_record(&topic, "5511900000001", "wamid.READY", "hi")])
        .await
        .expect("acked");
    assert_eq!(acks.len(), 1);

    let node = start(&config, &[Role::Dedupe]).await;
    let url = format!("http://{}/readyz", node.admin_addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    let components = loop {
        let answer = reqwest::get(&url).await.expect("admin answers");
        let ready = answer.status().is_success();
        let body: Value = answer.json().await.expect("json");
        if ready {
            break body["components"].clone();
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(components["kafka:producer"], json!(true), "{components}");
    assert_eq!(components["stage:dedupe"], json!(true), "{components}");
    stop(node).await;
}

/// Holds the second record's processing until the first record's post-ack hook has run, and that
/// hook until shutdown began: the shape of two records sharing a bounded resource (the state
/// store connection's request queue) across the runner's processing and settling sets.
struct HookBeforeNext {
    shutdown: Shutdown,
    hook_done: Arc<Semaphore>,
    started: mpsc::UnboundedSender<&'static str>,
}

#[async_trait]
impl Stage for HookBeforeNext {
    type Input = Envelope;
    type Receipt = bool;

    fn name(&self) -> &'static str {
        "hookbeforenext"
    }
    fn input(&self) -> Topic {
        WA_INBOUND
    }
    fn output(&self) -> Option<Topic> {
        Some(WA_INBOUND_UNIQUE)
    }

    async fn process(&self, event: Envelope, _cx: &Context) -> Result<Outcome<bool>, StageError> {
        let first = event.conversation_key.to_string().ends_with("447700900001");
        if !first {
            let _ = self.started.send("second processing");
            self.hook_done.acquire().await.expect("open").forget();
        }
        Ok(Outcome::Emit(vec![event], first))
    }

    async fn acked(&self, first: bool, _cx: &Context) -> Result<(), StageError> {
        if first {
            let _ = self.started.send("first's hook");
            self.shutdown.cancelled().await;
            self.hook_done.add_permits(1);
        }
        Ok(())
    }
}

/// At shutdown the runner lets running records finish *and* runs their post-ack hooks, polling
/// both together: draining one set before the other deadlocked when they waited on each other
/// (the WhatsApp sink's Redis calls then all timed out together after 5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_records_in_flight_and_their_hooks_finish_together() {
    let config = isolated_config();
    create_topics(&config).await;
    let input = WA_INBOUND.qualified(&config.kafka.topic_prefix);
    let producer = Producer::new(&config.kafka).expect("producer");
    let shutdown = Shutdown::new();
    let (started, mut progress) = mpsc::unbounded_channel();
    let stage = HookBeforeNext {
        shutdown: shutdown.clone(),
        hook_done: Arc::new(Semaphore::new(0)),
        started,
    };
    let runner = StageRunner::new(stage, &config.kafka, producer.clone(), Health::default());
    let running = tokio::spawn(runner.run(shutdown.clone()));

    for (user, expected) in [
        ("447700900001", "first's hook"),
        ("447700900002", "second processing"),
    ] {
        producer
            .send_all(&[text_record(&input, user, &format!("wamid.{user}"), user)])
            .await
            .expect("input acked");
        let step = tokio::time::timeout(IDLE, progress.recv())
            .await
            .expect("in time");
        assert_eq!(step, Some(expected));
    }
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the runner stops: neither set waits for the other")
        .expect("joined")
        .expect("stopped cleanly");

    let output = TopicReader::new(
        &WA_INBOUND_UNIQUE.qualified(&config.kafka.topic_prefix),
        WA_INBOUND_UNIQUE.partitions,
    );
    let received = output.until(IDLE, |r| r.len() >= 2).await;
    assert_eq!(
        received.len(),
        2,
        "both records emitted before the runner stopped"
    );
    let committed = committed_offsets(
        &config.kafka.group_id("hookbeforenext"),
        &input,
        WA_INBOUND.partitions,
    );
    assert_eq!(
        committed.iter().filter(|o| **o > 0).sum::<i64>(),
        2,
        "both offsets committed: {committed:?}"
    );
}

/// Counts the records it is given; every write succeeds.
struct Counting(Arc<std::sync::atomic::AtomicUsize>);

#[async_trait]
impl BatchSink for Counting {
    type Batch = usize;

    fn name(&self) -> &'static str {
        "counting"
    }

    fn input(&self) -> Topic {
        WA_INBOUND
    }

    fn batch(&self, _records: usize) -> usize {
        0
    }

    fn add(&self, batch: &mut usize, _record: RawRecord) -> Result<(), StageError> {
        *batch += 1;
        Ok(())
    }

    async fn write(&self, batch: &mut usize) -> Result<(), StageError> {
        self.0
            .fetch_add(*batch, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// A batch sink's offsets, stored once per partition per batch, end up at every partition's last
/// written record: nothing written is read again after a restart, nothing unwritten is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sink_commits_every_partition_up_to_its_last_written_record() {
    let config = isolated_config();
    create_topics(&config).await;
    let input = WA_INBOUND.qualified(&config.kafka.topic_prefix);
    let producer = Producer::new(&config.kafka).expect("producer");
    let records: Vec<Record> = (0..300)
        .map(|i| {
            let user = format!("4477009{:05}", i % 40);
            text_record(&input, &user, &format!("wamid.batch.{i}"), "hi")
        })
        .collect();
    let acks = producer.send_all(&records).await.expect("input acked");
    let mut expected = vec![-1; WA_INBOUND.partitions as usize];
    for ack in &acks {
        let next = &mut expected[ack.partition as usize];
        *next = (*next).max(ack.offset + 1);
    }

    let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let limits = BatchLimits {
        max_records: 7,
        max_age: Duration::from_millis(20),
    };
    let runner = BatchRunner::new(
        Counting(written.clone()),
        &config.kafka,
        limits,
        Health::default(),
    );
    let shutdown = Shutdown::new();
    let running = tokio::spawn(runner.run(shutdown.clone()));
    let deadline = Instant::now() + IDLE;
    while written.load(std::sync::atomic::Ordering::SeqCst) < records.len() {
        assert!(Instant::now() < deadline, "the sink was given every record");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.trigger();
    running.await.expect("joined").expect("stopped cleanly");

    assert_eq!(written.load(std::sync::atomic::Ordering::SeqCst), 300);
    let committed = committed_offsets(
        &config.kafka.group_id("counting"),
        &input,
        WA_INBOUND.partitions,
    );
    assert_eq!(committed, expected);
}

/// Fails the record whose text is `outage` as unavailable, three times; lets everything else
/// through, logging the order in which texts passed.
struct Flaky {
    failures: std::sync::atomic::AtomicUsize,
    passed: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl Stage for Flaky {
    type Input = Envelope;
    type Receipt = ();

    fn name(&self) -> &'static str {
        "flaky"
    }
    fn input(&self) -> Topic {
        WA_INBOUND
    }
    fn output(&self) -> Option<Topic> {
        Some(WA_INBOUND_UNIQUE)
    }

    async fn process(&self, event: Envelope, _cx: &Context) -> Result<Outcome<()>, StageError> {
        let Event::MetaMessage { message, .. } = &event.event else {
            return Err(StageError::Invalid("not a message".into()));
        };
        let text = message.text.as_ref().and_then(|t| t.body.clone());
        let text = text.unwrap_or_default();
        if text == "outage"
            && self
                .failures
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                < 3
        {
            return Err(StageError::Unavailable("the test's outage".into()));
        }
        self.passed.lock().expect("log").push(text);
        Ok(Outcome::Forward(()))
    }
}

/// Records read together are processed as a group, but each counts alone: the one that meets an
/// unavailable service is retried by itself, with backoff, while the other conversations go on;
/// its own conversation waits for it; every record comes out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_meeting_an_outage_is_retried_alone_while_other_conversations_go_on() {
    let config = isolated_config();
    create_topics(&config).await;
    let input = WA_INBOUND.qualified(&config.kafka.topic_prefix);
    let producer = Producer::new(&config.kafka).expect("producer");
    let mut records = vec![
        text_record(&input, "447700900100", "wamid.out.1", "outage"),
        text_record(&input, "447700900100", "wamid.out.2", "after the outage"),
    ];
    let others: Vec<String> = (0..30).map(|i| format!("other {i}")).collect();
    for (i, text) in others.iter().enumerate() {
        let user = format!("4477009002{i:02}");
        records.push(text_record(
            &input,
            &user,
            &format!("wamid.other.{i}"),
            text,
        ));
    }
    producer.send_all(&records).await.expect("input acked");

    let retries = || {
        wabaflow_pipeline::telemetry::metrics()
            .stage_retries
            .with_label_values(&["flaky"])
            .get()
    };
    let retries_before = retries();
    let stage = Arc::new(Flaky {
        failures: Default::default(),
        passed: Default::default(),
    });
    let shutdown = Shutdown::new();
    let runner = StageRunner::new(
        ArcStage(stage.clone()),
        &config.kafka,
        producer.clone(),
        Health::default(),
    );
    let running = tokio::spawn(runner.run(shutdown.clone()));

    let output = TopicReader::new(
        &WA_INBOUND_UNIQUE.qualified(&config.kafka.topic_prefix),
        WA_INBOUND_UNIQUE.partitions,
    );
    let received = output.until(IDLE, |r| r.len() >= records.len()).await;
    shutdown.trigger();
    running.await.expect("joined").expect("stopped cleanly");

    let wamid = |payload: &[u8]| match Envelope::from_json(payload).expect("envelope").event {
        Event::MetaMessage { message, .. } => message.id,
        other => panic!("unexpected {other:?}"),
    };
    let mut out: Vec<String> = received.iter().map(|r| wamid(&r.payload)).collect();
    let mut sent: Vec<String> = records.iter().map(|r| wamid(&r.payload)).collect();
    out.sort();
    sent.sort();
    assert_eq!(out, sent, "every record once");
    assert_eq!(
        retries() - retries_before,
        3,
        "three failed attempts, each retried"
    );

    let passed = stage.passed.lock().expect("log").clone();
    let at = |text: &str| passed.iter().position(|p| p == text).expect("passed");
    assert!(
        others.iter().all(|other| at(other) < at("outage")),
        "no other conversation waited for the outage: {passed:?}"
    );
    assert!(
        at("after the outage") > at("outage"),
        "its own conversation waited, in order: {passed:?}"
    );
}

/// A stage shared with the test, which reads what it logged.
struct ArcStage<S>(Arc<S>);

#[async_trait]
impl<S: Stage> Stage for ArcStage<S> {
    type Input = S::Input;
    type Receipt = S::Receipt;

    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn input(&self) -> Topic {
        self.0.input()
    }
    fn output(&self) -> Option<Topic> {
        self.0.output()
    }
    async fn process(
        &self,
        event: S::Input,
        cx: &Context,
    ) -> Result<Outcome<S::Receipt>, StageError> {
        self.0.process(event, cx).await
    }
}

/// Emits three events for each customer text: `{text}/0`, `{text}/1`, `{text}/2`.
struct Fanout;

#[async_trait]
impl Stage for Fanout {
    type Input = Envelope;
    type Receipt = ();

    fn name(&self) -> &'static str {
        "fanout"
    }
    fn input(&self) -> Topic {
        WA_INBOUND
    }
    fn output(&self) -> Option<Topic> {
        Some(WA_INBOUND_UNIQUE)
    }

    async fn process(&self, event: Envelope, _cx: &Context) -> Result<Outcome<()>, StageError> {
        let outputs = (0..3)
            .map(|part| {
                let mut out = event.clone();
                if let Event::MetaMessage { message, .. } = &mut out.event
                    && let Some(text) = message.text.as_mut()
                {
                    text.body = text.body.take().map(|body| format!("{body}/{part}"));
                }
                out
            })
            .collect();
        Ok(Outcome::Emit(outputs, ()))
    }
}

/// A producer queue too small for a record's outputs: the runner waits for room (counted as
/// backpressure) instead of failing, and every output still arrives once, in order per
/// conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_producer_queue_holds_outputs_back_without_losing_or_reordering_them() {
    let mut config = isolated_config();
    create_topics(&config).await;
    let input = WA_INBOUND.qualified(&config.kafka.topic_prefix);
    let loader = Producer::new(&config.kafka).expect("producer");
    let users: Vec<String> = (0..8).map(|i| format!("4477009003{i:02}")).collect();
    let mut records = Vec::new();
    for seq in 0..10 {
        for user in &users {
            let wamid = format!("wamid.fan.{user}.{seq}");
            records.push(text_record(&input, user, &wamid, &seq.to_string()));
        }
    }
    loader.send_all(&records).await.expect("input acked");

    let waits = || {
        wabaflow_pipeline::telemetry::metrics()
            .stage_backpressure
            .with_label_values(&["fanout"])
            .get()
    };
    let waits_before = waits();
    config.kafka.producer_queue_messages = 2;
    let producer = Producer::new(&config.kafka).expect("producer");
    let shutdown = Shutdown::new();
    let runner = StageRunner::new(Fanout, &config.kafka, producer, Health::default());
    let running = tokio::spawn(runner.run(shutdown.clone()));

    let output = TopicReader::new(
        &WA_INBOUND_UNIQUE.qualified(&config.kafka.topic_prefix),
        WA_INBOUND_UNIQUE.partitions,
    );
    let received = output.until(IDLE, |r| r.len() >= 3 * records.len()).await;
    shutdown.trigger();
    running.await.expect("joined").expect("stopped cleanly");

    let mut texts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in &received {
        let envelope = Envelope::from_json(&record.payload).expect("envelope");
        let Event::MetaMessage { message, .. } = envelope.event else {
            panic!("unexpected {:?}", envelope.event);
        };
        let text = message.text.and_then(|t| t.body).expect("text");
        texts
            .entry(envelope.conversation_key.to_string())
            .or_default()
            .push(text);
    }
    let expected: Vec<String> = (0..10)
        .flat_map(|seq| (0..3).map(move |part| format!("{seq}/{part}")))
        .collect();
    assert_eq!(texts.len(), users.len(), "every conversation");
    for (conversation, texts) in &texts {
        assert_eq!(
            texts, &expected,
            "{conversation}: each output once, in order"
        );
    }
    assert!(
        waits() > waits_before,
        "the runner waited for room in the queue"
    );
}

/// A log line never carries what a record held: a record whose decode error quotes a customer's
/// text is dead-lettered with the whole reason in its header, while the warning logged for it
/// (at the default level) blanks the quote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letters_log_line_leaves_out_what_the_record_said() {
    const SECRET: &str = "Hola, mi tarjeta es 4111 1111";
    let logs = CapturedLogs::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish(),
    )
    .expect("the only test in this binary that sets a subscriber");

    let mut config = isolated_config();
    config.tenancy.encryption_key = wabaflow_schemas::Secret::new(
        wabaflow_store::tenants::EncryptionKey::generate().to_base64(),
    );
    create_topics(&config).await;
    let prefix = config.kafka.topic_prefix.clone();
    let input = WA_INBOUND_UNIQUE.qualified(&prefix);
    let mut record = text_record(&input, "447700900778", "wamid.quoted.1", "fine");
    let mut envelope: Value = serde_json::from_slice(&record.payload).expect("json");
    envelope["schema_version"] = json!(SECRET);
    record.payload = serde_json::to_vec(&envelope).expect("json");
    let producer = Producer::new(&config.kafka).expect("producer");
    producer.send_all(&[record]).await.expect("input acked");

    let node = start(&config, &[Role::Map]).await;
    let dlq = TopicReader::new(
        &WA_INBOUND_UNIQUE.dlq(&prefix),
        WA_INBOUND_UNIQUE.partitions,
    );
    let dead = dlq.until(IDLE, |r| !r.is_empty()).await;
    stop(node).await;
    assert_eq!(dead.len(), 1);
    let reason = &dead[0].headers["wabaflow-error"];
    assert!(
        reason.contains(SECRET),
        "the header keeps the whole reason: {reason}"
    );

    let logged = logs.text();
    let line = logged
        .lines()
        .find(|line| line.contains("dead-lettering record"))
        .unwrap_or_else(|| panic!("the dead letter is logged:\n{logged}"));
    assert!(
        line.contains("invalid type: string \"…\", expected u16"),
        "{line}"
    );
    assert!(
        !logged.contains("4111"),
        "no log line quotes the record:\n{logged}"
    );
}

/// Log lines written through a `tracing` subscriber, kept to be read back.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
