//! `wabaflow demo`: the pipeline on embedded defaults — librdkafka's in-process mock cluster, the
//! in-memory state store, a local directory for objects, the built-in Meta and Genesys
//! simulators, no external service — driven by signed webhooks, with every step printed: a
//! customer's text and photo travel from the Meta edge through dedupe, map, media and transform
//! to the simulated Genesys agent, and the raw bodies land in the archive. `--once` exits 0 only when every expected outcome was observed; without it the node
//! stays up with copy-pasteable curl examples.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use wabaflow_ingest::meta::{SIGNATURE_HEADER, sign};
use wabaflow_pipeline::config::{ObjectsBackend, Secret, StoreBackend};
use wabaflow_pipeline::{Config, Shutdown};
use wabaflow_schemas::Envelope;
use wabaflow_schemas::tenant::{GenesysIntegration, Tenant};
use wabaflow_schemas::topics::{WA_INBOUND_UNIQUE, WEBHOOKS_RAW};
use wabaflow_sims::genesys::agent::AgentDriver;
use wabaflow_sims::genesys::{GenesysSim, GenesysSimConfig};
use wabaflow_sims::meta::{MediaRef, MetaSim, MetaSimConfig};
use wabaflow_store::MemoryStore;
use wabaflow_store::objects::{DirStore, ObjectStore};
use wabaflow_store::tenants::EncryptionKey;

use crate::node::{Node, Role};

const APP_SECRET: &str = "demo-app-secret";
const VERIFY_TOKEN: &str = "demo-verify-token";
const TENANT: &str = "demo";
const WA_TOKEN: &str = "demo-whatsapp-token";
const INTEGRATION: &str = "demo-integration";

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Run the scripted scenario, report, and exit (0 only if every outcome was observed).
    #[arg(long)]
    once: bool,
    /// Where the Meta edge listens (port 0 picks a free one; `--once` defaults to that).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Where /metrics, /healthz and /readyz listen.
    #[arg(long)]
    admin_listen: Option<std::net::SocketAddr>,
}

/// Counts checks and prints them as they happen.
#[derive(Default)]
struct Report {
    failed: Vec<String>,
    passed: usize,
}

impl Report {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        let what = what.into();
        println!("  {} {what}", if ok { "✓" } else { "✗" });
        if ok {
            self.passed += 1;
        } else {
            self.failed.push(what);
        }
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let cluster = MockCluster::new(1).context("starting the in-process Kafka mock cluster")?;
    let mut config = Config::default();
    config.kafka.brokers = cluster.bootstrap_servers();
    config.store.backend = StoreBackend::Memory;
    config.ingest.meta.app_secret = Secret::new(APP_SECRET);
    config.ingest.meta.verify_token = Secret::new(VERIFY_TOKEN);
    let ephemeral = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.ingest.listen = args.listen.unwrap_or(if args.once {
        ephemeral
    } else {
        config.ingest.listen
    });
    config.admin.listen = args.admin_listen.unwrap_or(if args.once {
        ephemeral
    } else {
        config.admin.listen
    });
    let sim_listen =
        |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], if args.once { 0 } else { port }));
    let meta = MetaSim::start(MetaSimConfig {
        listen: sim_listen(8090),
        tokens: vec![WA_TOKEN.into()],
        ..MetaSimConfig::default()
    })
    .await
    .context("starting the Meta simulator")?;
    let genesys = GenesysSim::start(GenesysSimConfig {
        listen: sim_listen(8091),
        clients: vec![("demo-client".into(), "demo-client-secret".into())],
        integrations: vec![INTEGRATION.into()],
        ..GenesysSimConfig::default()
    })
    .await
    .context("starting the Genesys simulator")?;
    let objects_dir = std::env::temp_dir().join(format!("wabaflow-demo-{}", std::process::id()));
    config.objects.backend = ObjectsBackend::Dir;
    config.objects.dir = objects_dir.to_string_lossy().into_owned();
    config.meta.graph_url = meta.base_url();
    config.archive.batch_max_age_ms = 200;
    config.tenancy.encryption_key = Secret::new(EncryptionKey::generate().to_base64());
    config.tenants = vec![Tenant {
        id: TENANT.into(),
        phone_number_id: "106540352242922".into(),
        display_phone_number: Some("15550783881".into()),
        app_secret: Secret::new(APP_SECRET),
        verify_token: Secret::new(VERIFY_TOKEN),
        whatsapp_token: Secret::new(WA_TOKEN),
        genesys: GenesysIntegration {
            region: genesys.base_url(),
            integration_id: INTEGRATION.into(),
            client_id: "demo-client".into(),
            client_secret: Secret::new("demo-client-secret"),
            webhook_secret: Secret::new("demo-webhook-secret"),
        },
    }];
    for (topic, partitions) in wabaflow_pipeline::topics::planned(&config.kafka) {
        cluster
            .create_topic(&topic, partitions, 1)
            .with_context(|| format!("creating {topic}"))?;
    }

    println!(
        "wabaflow demo — embedded Kafka (librdkafka mock cluster at {}), in-memory state,\n  objects in {}, Meta simulator {}, Genesys simulator {}",
        config.kafka.brokers,
        objects_dir.display(),
        meta.base_url(),
        genesys.base_url()
    );
    let shutdown = if args.once {
        Shutdown::new()
    } else {
        Shutdown::new().on_signals()
    };
    // ClickHouse is used when configured; the demo runs without it.
    let roles: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| *r != Role::ClickHouse)
        .collect();
    let node = Node::start(
        &config,
        &roles,
        Some(std::sync::Arc::new(MemoryStore::new())),
        shutdown.clone(),
    )
    .await?;
    let edge = node.ingest_addr.context("the ingest role is running")?;
    let base = format!("http://{edge}/webhooks/meta/{TENANT}");
    println!(
        "  Meta edge   {base}    admin http://{}/metrics\n",
        node.admin_addr
    );

    let observer = Observer::new(&config)?;
    // The photo the customer sends: Meta holds it until wabaflow fetches it.
    let photo: Vec<u8> = (0..24_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let photo = meta.add_media(photo, "image/jpeg");
    let report = scenario(&base, &photo).await?;
    let report = observe(report, &observer).await;
    let archive = DirStore::new(&objects_dir);
    let report = delivered(report, &genesys, &photo, &*archive).await;
    // Meta knows the customers wrote; statuses of our sends go to the tenant's webhook URL.
    meta.customer_wrote("106540352242922", "5215512345678");
    meta.subscribe("106540352242922", &base, APP_SECRET);
    let agent = AgentDriver::new(
        format!("http://{edge}/webhooks/genesys/{TENANT}"),
        "demo-webhook-secret",
        INTEGRATION,
    )
    .with_retry_delay(Duration::from_millis(200));
    let report = outbound(report, &genesys, &meta, &agent).await;

    println!("\n{} passed, {} failed", report.passed, report.failed.len());
    if args.once {
        shutdown.trigger();
        node.wait().await?;
        let _ = std::fs::remove_dir_all(&objects_dir);
        if !report.failed.is_empty() {
            bail!("demo failed: {}", report.failed.join("; "));
        }
        return Ok(());
    }
    print_examples(&base);
    node.wait().await
}

fn batch(photo: &MediaRef) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
                    "contacts": [
                        { "profile": { "name": "Maria Gómez" }, "wa_id": "5215512345678" },
                        { "profile": { "name": "Kwame Mensah" }, "wa_id": "233201234567" }
                    ],
                    "messages": [
                        { "from": "5215512345678", "id": "wamid.DEMO.1", "timestamp": (now - 60).to_string(), "type": "text", "text": { "body": "Hola, ¿dónde está mi pedido?" } },
                        { "from": "233201234567", "id": "wamid.DEMO.2", "timestamp": (now - 59).to_string(), "type": "image",
                          "image": { "id": photo.id, "mime_type": photo.mime_type, "sha256": photo.sha256_base64, "caption": "receipt" } }
                    ]
                }
            }, {
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
                    "statuses": [{ "id": "wamid.DEMO.OUT.1", "status": "delivered", "timestamp": (now - 58).to_string(), "recipient_id": "5215512345678",
                                   "pricing": { "billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "service" } }]
                }
            }]
        }]
    })
}

async fn scenario(base: &str, photo: &MediaRef) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let mut report = Report::default();
    let body = serde_json::to_vec(&batch(photo))?;
    let signature = sign(APP_SECRET.as_bytes(), &body);

    println!("1. Meta verifies the callback URL (GET hub.challenge)");
    let query = [
        ("hub.mode", "subscribe"),
        ("hub.verify_token", VERIFY_TOKEN),
        ("hub.challenge", "1158201444"),
    ];
    let response = http.get(base).query(&query).send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    report.check(
        status == 200 && text == "1158201444",
        format!("right token → {status} {text:?}"),
    );
    let query = [
        ("hub.mode", "subscribe"),
        ("hub.verify_token", "guess"),
        ("hub.challenge", "1"),
    ];
    let status = http.get(base).query(&query).send().await?.status().as_u16();
    report.check(status == 403, format!("wrong token → {status}"));

    println!("2. Meta posts a signed batch: 2 customer messages + 1 delivery status");
    let response = post(&http, base, &body, Some(&signature)).await?;
    report.check(
        response.0 == 200 && response.1["events"] == 3,
        format!(
            "→ {} {} (200 only after Kafka acked the raw body and 3 events)",
            response.0, response.1
        ),
    );

    println!("3. Meta retries the same batch (as it does for up to 7 days)");
    let response = post(&http, base, &body, Some(&signature)).await?;
    report.check(
        response.0 == 200,
        format!(
            "→ {} (accepted again; dedupe will drop the copies)",
            response.0
        ),
    );

    println!("4. Requests that must be refused, producing nothing");
    let forged = sign(b"not-the-app-secret", &body);
    let response = post(&http, base, &body, Some(&forged)).await?;
    report.check(
        response.0 == 401,
        format!("bad signature → {} {}", response.0, response.1),
    );
    let response = post(&http, base, &body, None).await?;
    report.check(
        response.0 == 401,
        format!("no signature → {} {}", response.0, response.1),
    );
    let garbage = br#"{"object": "whatsapp_business_account", "entry": [ "#;
    let response = post(
        &http,
        base,
        garbage,
        Some(&sign(APP_SECRET.as_bytes(), garbage)),
    )
    .await?;
    report.check(
        response.0 == 400,
        format!("invalid JSON → {} {}", response.0, response.1),
    );
    Ok(report)
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let json = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, json))
}

/// Reads what the pipeline wrote, from the beginning of each topic.
struct Observer {
    unique: StreamConsumer,
    raw: StreamConsumer,
}

impl Observer {
    fn new(config: &Config) -> anyhow::Result<Self> {
        let consumer = |topic: &str, partitions: i32| -> anyhow::Result<StreamConsumer> {
            let consumer: StreamConsumer = ClientConfig::new()
                .set("bootstrap.servers", &config.kafka.brokers)
                .set("group.id", "wabaflow-demo-observer")
                .set("enable.auto.commit", "false")
                .create()?;
            let mut assignment = TopicPartitionList::new();
            for partition in 0..partitions {
                assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
            }
            consumer.assign(&assignment)?;
            Ok(consumer)
        };
        let prefix = &config.kafka.topic_prefix;
        Ok(Self {
            unique: consumer(
                &WA_INBOUND_UNIQUE.qualified(prefix),
                config.kafka.partitions_of(&WA_INBOUND_UNIQUE),
            )?,
            raw: consumer(
                &WEBHOOKS_RAW.qualified(prefix),
                config.kafka.partitions_of(&WEBHOOKS_RAW),
            )?,
        })
    }
}

/// Waits (bounded) until dedupe has seen all six events, then checks what each topic holds.
async fn observe(mut report: Report, observer: &Observer) -> Report {
    println!("5. Downstream of dedupe (wa.inbound.unique.v1)");
    let m = wabaflow_pipeline::telemetry::metrics();
    let emitted = || m.stage_emitted.with_label_values(&["dedupe"]).get();
    let duplicates = || {
        m.stage_discarded
            .with_label_values(&["dedupe", "duplicate"])
            .get()
    };
    let settled = wait_until(Duration::from_secs(30), || emitted() + duplicates() >= 6).await;
    report.check(
        settled && duplicates() == 3,
        format!("dedupe read 6 events and dropped {} duplicates (wabaflow_stage_discarded_events_total{{reason=\"duplicate\"}})", duplicates()),
    );
    let unique = collect(&observer.unique, 4, Duration::from_secs(5)).await;
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for payload in &unique {
        if let Ok(envelope) = Envelope::from_json(payload) {
            let what = envelope
                .event
                .idempotency_key()
                .unwrap_or_else(|| envelope.event.kind().into());
            by_key
                .entry(envelope.conversation_key.to_string())
                .or_default()
                .push(what);
        }
    }
    for (key, events) in &by_key {
        println!("     conversation {key}: {}", events.join(", "));
    }
    report.check(
        unique.len() == 3,
        format!(
            "exactly {} events downstream: 2 messages and 1 status, each once",
            unique.len()
        ),
    );

    println!("6. Raw bodies kept for the S3 archive and replay (webhooks.raw.v1)");
    let raw = collect(&observer.raw, 3, Duration::from_secs(5)).await;
    report.check(
        raw.len() == 2,
        format!(
            "{} raw bodies: both accepted POSTs, none of the refused ones",
            raw.len()
        ),
    );
    report
}

/// What reached the (simulated) agent, and what the archive holds.
async fn delivered(
    mut report: Report,
    genesys: &GenesysSim,
    photo: &MediaRef,
    archive: &dyn ObjectStore,
) -> Report {
    println!(
        "7. The Genesys agent receives both customer messages (map → media → transform → sink:genesys)"
    );
    let accepted = genesys.wait_for_messages(2, Duration::from_secs(30)).await;
    for message in &accepted {
        let m = &message.message;
        let attachment = m.content.first().and_then(|c| c.attachment.as_ref());
        println!(
            "     {} ({}): {}{}",
            m.channel.from.nickname.as_deref().unwrap_or("?"),
            m.channel.from.id,
            m.text.as_deref().unwrap_or(""),
            attachment.map_or(String::new(), |a| format!(
                " [{:?} {}]",
                a.media_type,
                a.mime.as_deref().unwrap_or("")
            ))
        );
    }
    let text = accepted
        .iter()
        .find(|a| a.message.channel.message_id.as_deref() == Some("wamid.DEMO.1"));
    report.check(
        accepted.len() == 2
            && text.is_some_and(|t| {
                t.message.text.as_deref() == Some("Hola, ¿dónde está mi pedido?")
                    && t.message.channel.from.nickname.as_deref() == Some("Maria Gómez")
            }),
        format!(
            "{} messages in Genesys, once each, text and sender intact",
            accepted.len()
        ),
    );
    let image = accepted
        .iter()
        .find(|a| a.message.channel.message_id.as_deref() == Some("wamid.DEMO.2"));
    let download = image.and_then(|i| i.downloads.first());
    report.check(
        download.is_some_and(|d| d.sha256.as_deref() == Some(photo.sha256_hex.as_str())),
        format!(
            "Genesys downloaded the photo from wabaflow's presigned link: {} bytes, sha256 equal to what Meta served",
            download.map_or(0, |d| d.size)
        ),
    );

    println!("8. Raw webhook bodies archived (sink:archive → bucket webhooks-inbound)");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut lines = 0;
    while tokio::time::Instant::now() < deadline {
        lines = 0;
        for key in archive
            .list("webhooks-inbound", "")
            .await
            .unwrap_or_default()
        {
            if let Ok(Some(body)) = archive.get("webhooks-inbound", &key).await {
                lines += body.iter().filter(|b| **b == b'\n').count();
            }
        }
        if lines >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report.check(
        lines == 2,
        format!("{lines} archived requests under {TENANT}/yyyy/mm/dd/hh/"),
    );
    report
}

/// The agent's side: a text, a document, and a text outside the 24-hour window.
async fn outbound(
    mut report: Report,
    genesys: &GenesysSim,
    meta: &MetaSim,
    agent: &AgentDriver,
) -> Report {
    println!("9. The agent answers in Genesys; WhatsApp delivers it; the receipts come back");
    let reply = agent.text("5215512345678", "¡Hola Maria! Tu pedido sale hoy.");
    let reply_id = reply["id"].as_str().unwrap_or_default().to_owned();
    let accepted = agent.post(&reply).await.accepted();
    let receipts = genesys
        .wait_for_receipts(Duration::from_secs(30), |r| {
            receipt_statuses(r, &reply_id).contains(&"Read".to_owned())
        })
        .await;
    let statuses = receipt_statuses(&receipts, &reply_id);
    let sends = meta.sends();
    let text_send = sends.iter().find(|s| {
        s.request.body.kind() == "text" && s.request.to.as_deref() == Some("5215512345678")
    });
    println!(
        "     Meta received: {}",
        text_send.map_or("nothing".into(), |s| format!(
            "{} to {}",
            s.request.body.kind(),
            s.request.to.clone().unwrap_or_default()
        ))
    );
    report.check(
        accepted && text_send.is_some() && statuses == ["Sent", "Delivered", "Read"],
        format!(
            "one text send to the customer; receipts in Genesys: {}",
            statuses.join(" → ")
        ),
    );

    println!(
        "10. The agent sends a document (Genesys download → S3 media-outbound → WhatsApp by link)"
    );
    let pdf: Vec<u8> = (0..40_000u32).map(|i| (i % 241) as u8).collect();
    let url = genesys.add_download(pdf.clone(), "application/pdf");
    let document = agent.attachment(
        "5215512345678",
        "File",
        &url,
        "application/pdf",
        "factura.pdf",
    );
    let accepted = agent.post(&document).await.accepted();
    let sends = meta.wait_for_sends(2, Duration::from_secs(30)).await;
    let fetched = sends
        .iter()
        .find(|s| s.request.body.kind() == "document")
        .and_then(|s| s.fetched.clone())
        .and_then(|(_, sha)| sha);
    use sha2::Digest as _;
    let expected = hex::encode(sha2::Sha256::digest(&pdf));
    report.check(
        accepted && fetched.as_deref() == Some(expected.as_str()),
        "WhatsApp fetched factura.pdf from wabaflow's link: the bytes the agent attached",
    );

    println!("11. A free-form reply to someone who never wrote (24-hour window closed)");
    let late = agent.text("15550001111", "Hello?");
    let late_id = late["id"].as_str().unwrap_or_default().to_owned();
    agent.post(&late).await;
    let receipts = genesys
        .wait_for_receipts(Duration::from_secs(30), |r| {
            !receipt_statuses(r, &late_id).is_empty()
        })
        .await;
    let reason = receipts
        .iter()
        .find(|(_, r)| r["id"] == late_id.as_str())
        .map(|(_, r)| {
            r["reasons"][0]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        });
    report.check(
        reason.as_deref() == Some("MessageExpired")
            && !meta
                .sends()
                .iter()
                .any(|s| s.request.to.as_deref() == Some("15550001111")),
        "nothing sent; Genesys got a Failed receipt (MessageExpired) the agent can act on",
    );
    report
}

fn receipt_statuses(receipts: &[(String, Value)], id: &str) -> Vec<String> {
    receipts
        .iter()
        .filter(|(_, r)| r["id"] == id)
        .map(|(_, r)| r["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Polls `condition` every 20 ms until it holds or `within` passes.
async fn wait_until(within: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while !condition() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

async fn collect(consumer: &StreamConsumer, want: usize, within: Duration) -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while payloads.len() < want {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => payloads.push(message.payload().unwrap_or_default().to_vec()),
            Ok(Err(_)) => continue,
            Err(_elapsed) => break,
        }
    }
    payloads
}

fn print_examples(base: &str) {
    println!(
        r#"
The node keeps running (Ctrl-C stops it). Try it:

  # the verification handshake
  curl -s '{base}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=42'

  # a signed webhook
  BODY='{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"106540352242922"}},"messages":[{{"from":"447700900123","id":"wamid.TRY.1","timestamp":"1767225700","type":"text","text":{{"body":"hi"}}}}]}}}}]}}]}}'
  SIG=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac {APP_SECRET} | sed 's/^.* //')
  curl -s -H "X-Hub-Signature-256: sha256=$SIG" -H 'content-type: application/json' -d "$BODY" {base}
"#
    );
}
