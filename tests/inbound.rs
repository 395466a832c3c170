//! The inbound flow end to end: a customer's WhatsApp message, posted by the Meta simulator's
//! customer driver (signed, retried like Meta), through the real pipeline — tansu, Redis, s3s-fs,
//! every role in one node — to the Genesys simulator. Assertions are on what Genesys received
//! and downloaded, what S3 holds and what the state store recorded.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::http::StatusCode;
use wabaflow_schemas::genesys::MediaType;
use wabaflow_schemas::topics::WA_INBOUND_UNIQUE;
use wabaflow_sims::genesys::GenesysSimConfig;
use wabaflow_sims::meta::webhooks::{BusinessNumber, Customer, InboundMessage};
use wabaflow_store::objects::ObjectStore;

use support::flow::{PHONE_NUMBER_ID, Rig, now, s3, wait_for_objects, wamids};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_text_reaches_the_agent_once_with_sender_time_and_id() {
    let rig = Rig::start(GenesysSimConfig::default()).await;
    let customer = Customer::new("16505551234", "Sheena Nelson");
    let sent_at = now() - 30;
    let hello = customer.text("Hello, I need help with my order 🙂", sent_at);
    rig.send(&hello).await;
    // Meta retries the same webhook (another subscribed app, a lost 200): the agent must not see
    // it twice. A second message afterwards proves the duplicate had its chance to arrive.
    rig.send(&hello).await;
    let second = customer.text("Are you there?", sent_at + 5);
    rig.send(&second).await;

    // A number acme does not own, posted (validly signed) to acme's URL: dead-lettered by map.
    let stranger = BusinessNumber::new("waba-9", "999000999", "15550000000");
    let misrouted = customer.text("wrong number", sent_at + 6);
    assert!(
        rig.driver
            .post(&stranger.webhook(&misrouted))
            .await
            .delivered()
    );

    let accepted = rig
        .genesys
        .wait_for_messages(2, Duration::from_secs(60))
        .await;
    let dlq = support::TopicReader::new(
        &WA_INBOUND_UNIQUE.dlq(&rig.config.kafka.topic_prefix),
        WA_INBOUND_UNIQUE.partitions,
    );
    let dead = dlq
        .next(Duration::from_secs(20))
        .await
        .expect("a dead letter");
    assert!(
        dead.headers["wabaflow-error"].contains("unknown phone number id 999000999"),
        "{:?}",
        dead.headers
    );
    assert_eq!(dead.headers["wabaflow-stage"], "map");
    assert_eq!(
        wamids(&accepted),
        vec![hello.wamid.clone(), second.wamid.clone()]
    );
    let first = &accepted[0];
    assert_eq!(first.integration_id, "int-acme");
    assert_eq!(
        first.message.text.as_deref(),
        Some("Hello, I need help with my order 🙂")
    );
    assert_eq!(first.message.channel.from.id, "16505551234");
    assert_eq!(
        first.message.channel.from.nickname.as_deref(),
        Some("Sheena Nelson")
    );
    assert_eq!(first.message.channel.time.timestamp(), sent_at);

    // Tracking and the mapping learned Genesys' ids.
    let records = rig.records().await;
    let tracking = records
        .tracking(&hello.wamid)
        .await
        .expect("read")
        .expect("tracked");
    assert_eq!(
        tracking.genesys_message_id.as_deref(),
        Some(first.genesys_id.as_str())
    );
    assert_eq!(tracking.direction.as_deref(), Some("inbound"));
    let key = format!("{PHONE_NUMBER_ID}:16505551234");
    let mapping = records
        .conversation(&key)
        .await
        .expect("read")
        .expect("mapped");
    assert_eq!(mapping.tenant, "acme");
    assert_eq!(
        mapping.genesys_conversation_id.as_deref(),
        Some(first.conversation_id.as_str())
    );
    assert_eq!(
        mapping.last_inbound_at.map(|t| t.timestamp()),
        Some(sent_at + 5)
    );
    assert_eq!(
        records
            .conversation_by_genesys(&first.conversation_id)
            .await
            .expect("read"),
        Some(key)
    );

    // The raw bodies are archived in S3 under the tenant, byte for byte.
    let store = s3(&rig.config);
    let keys = wait_for_objects(&store, "webhooks-inbound", "acme/").await;
    assert!(!keys.is_empty(), "no archived webhook");
    let mut archived = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while archived.lines().count() < 4 && tokio::time::Instant::now() < deadline {
        archived.clear();
        for key in store.list("webhooks-inbound", "acme/").await.expect("list") {
            let body = store
                .get("webhooks-inbound", &key)
                .await
                .expect("get")
                .expect("object");
            archived.push_str(&String::from_utf8_lossy(&body));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let raw = String::from_utf8(rig.number.webhook(&second)).expect("ascii");
    let lines: Vec<serde_json::Value> = archived
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson"))
        .collect();
    assert_eq!(lines.len(), 4, "four requests were accepted: {archived}");
    assert!(
        lines.iter().any(|l| l["body"] == raw.as_str()),
        "{archived}"
    );
    assert!(lines.iter().all(|l| {
        l["signature"]
            .as_str()
            .is_some_and(|s| s.starts_with("sha256="))
    }));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_media_reaches_genesys_with_the_bytes_meta_served() {
    let rig = Rig::start(GenesysSimConfig::default()).await;
    let customer = Customer::new("447700900123", "Ana");
    let file = |seed: u8, len: usize| -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    };
    let cases = [
        (
            "image",
            "image/jpeg",
            file(1, 48_000),
            Some("the broken part"),
            None,
            MediaType::Image,
        ),
        (
            "document",
            "application/pdf",
            file(2, 120_000),
            None,
            Some("invoice-42.pdf"),
            MediaType::File,
        ),
        (
            "audio",
            "audio/ogg; codecs=opus",
            file(3, 9_000),
            None,
            None,
            MediaType::Audio,
        ),
        (
            "video",
            "video/mp4",
            file(4, 250_000),
            Some("see"),
            None,
            MediaType::Video,
        ),
        (
            "sticker",
            "image/webp",
            file(5, 3_000),
            None,
            None,
            MediaType::Image,
        ),
    ];
    let mut sent = Vec::new();
    for (i, (kind, mime, bytes, caption, filename, media_type)) in cases.iter().enumerate() {
        let media = rig.meta.add_media(bytes.clone(), mime);
        let message = customer.media(kind, &media, *caption, *filename, now() - 60 + i as i64);
        rig.send(&message).await;
        sent.push((message, media, *media_type, *caption, *filename));
    }

    let accepted = rig
        .genesys
        .wait_for_messages(sent.len(), Duration::from_secs(60))
        .await;
    assert_eq!(
        wamids(&accepted),
        sent.iter()
            .map(|(m, ..)| m.wamid.clone())
            .collect::<Vec<_>>()
    );
    let bucket_keys = s3(&rig.config)
        .list("media-inbound", "acme/")
        .await
        .expect("list");
    for (got, (message, media, media_type, caption, filename)) in accepted.iter().zip(&sent) {
        let attachment = got.message.content[0]
            .attachment
            .as_ref()
            .expect("attachment");
        assert_eq!(
            attachment.media_type, *media_type,
            "{}",
            message.body["type"]
        );
        assert_eq!(attachment.mime.as_deref(), Some(media.mime_type.as_str()));
        assert_eq!(attachment.text.as_deref(), *caption);
        if let Some(filename) = filename {
            assert_eq!(attachment.filename.as_deref(), Some(*filename));
        }
        // Genesys fetched the presigned URL and got exactly Meta's bytes.
        assert_eq!(got.downloads.len(), 1);
        assert_eq!(got.downloads[0].status, 200, "{:?}", got.downloads[0]);
        assert_eq!(
            got.downloads[0].sha256.as_deref(),
            Some(media.sha256_hex.as_str())
        );
        assert!(
            bucket_keys
                .iter()
                .any(|k| k.starts_with(&format!("acme/{PHONE_NUMBER_ID}/{}", media.id))),
            "{} not in {bucket_keys:?}",
            media.id
        );
        assert_eq!(rig.meta.downloads(&media.id), 1);
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_messages_arrive_once_each_in_order_despite_duplicates_and_late_retries() {
    let rig = Rig::start(GenesysSimConfig::default()).await;
    let customer = Customer::new("5511987654321", "Bruno");
    let start = now() - 1_000;
    let messages: Vec<InboundMessage> = (0..200)
        .map(|i| customer.text(&format!("message {i}"), start + i as i64))
        .collect();
    for (i, message) in messages.iter().enumerate() {
        rig.send(message).await;
        // Meta's retries arrive late and out of order: re-deliver an earlier message now and
        // then, and sometimes a batch of two older ones in reverse order.
        if i % 7 == 6 {
            rig.send(&messages[i - 5]).await;
        }
        if i % 29 == 28 {
            let late = rig
                .number
                .batched(&[messages[i - 2].clone(), messages[i - 20].clone()]);
            assert!(rig.driver.post(&late).await.delivered());
        }
    }
    rig.genesys
        .wait_for_messages(200, Duration::from_secs(120))
        .await;
    let expected: Vec<String> = messages.iter().map(|m| m.wamid.clone()).collect();
    // Let any stray duplicate surface before judging: one more message goes through behind them.
    let sentinel = customer.text("sentinel", start + 500);
    rig.send(&sentinel).await;
    let all = rig
        .genesys
        .wait_for_messages(201, Duration::from_secs(60))
        .await;
    let mut got = wamids(&all);
    assert_eq!(
        got.pop().as_deref(),
        Some(sentinel.wamid.as_str()),
        "sentinel last"
    );
    assert_eq!(got, expected, "each message once, in the customer's order");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_wait_out_genesys_throttling_and_errors_then_arrive_once() {
    // 4 requests per 2 s per token, plus injected 429 / 5xx answers.
    let rig = Rig::start(GenesysSimConfig {
        rate_limit: 4,
        rate_window: Duration::from_secs(2),
        ..GenesysSimConfig::default()
    })
    .await;
    rig.genesys.fail_next(&[
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::BAD_GATEWAY,
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::SERVICE_UNAVAILABLE,
    ]);
    let customer = Customer::new("4915112345678", "Lena");
    let messages: Vec<InboundMessage> = (0..10)
        .map(|i| customer.text(&format!("während des Ausfalls {i}"), now() - 100 + i))
        .collect();
    for message in &messages {
        rig.send(message).await;
    }
    let accepted = rig
        .genesys
        .wait_for_messages(10, Duration::from_secs(90))
        .await;
    assert_eq!(
        wamids(&accepted),
        messages.iter().map(|m| m.wamid.clone()).collect::<Vec<_>>()
    );
    let stats = rig.genesys.stats();
    assert_eq!(stats.injected_failures, 5, "{stats:?}");
    assert!(
        stats.rate_limited > 0,
        "the rate limit was never hit: {stats:?}"
    );
    assert_eq!(stats.rejected, 0, "{stats:?}");
    // Texts survive byte for byte, non-ASCII included.
    let texts: HashSet<_> = accepted
        .iter()
        .filter_map(|a| a.message.text.clone())
        .collect();
    assert!(texts.contains("während des Ausfalls 9"));
    let per_wamid: HashMap<String, usize> =
        wamids(&accepted)
            .into_iter()
            .fold(HashMap::new(), |mut m, w| {
                *m.entry(w).or_default() += 1;
                m
            });
    assert!(per_wamid.values().all(|n| *n == 1));
    rig.stop().await;
}

/// Every customer message in the shared Meta fixtures, replayed through the whole pipeline (each
/// given its own wamid, the tenant's number, and media the Meta simulator holds): each one reaches
/// Genesys once, or — the one sample without any sender — is dead-lettered by the edge and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_message_reaches_genesys_or_a_counted_dead_letter() {
    let dir = std::path::Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../shared/fixtures/meta");
    if !dir.is_dir() {
        eprintln!("shared fixtures not present; nothing to replay");
        return;
    }
    let rig = Rig::start(GenesysSimConfig {
        rate_limit: 10_000,
        ..GenesysSimConfig::default()
    })
    .await;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let http = reqwest::Client::new();
    let url = format!(
        "http://{}/webhooks/meta/acme",
        rig.node.ingest_addr.expect("edge")
    );
    let mut expected = Vec::new();
    let mut dead_letters = 0;
    let mut sequence = 0;
    for (n, path) in files.iter().enumerate() {
        let Ok(mut body) =
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(path).expect("read"))
        else {
            continue;
        };
        let mut has_messages = false;
        for entry in body["entry"].as_array_mut().into_iter().flatten() {
            for change in entry["changes"].as_array_mut().into_iter().flatten() {
                let value = &mut change["value"];
                let Some(messages) = value["messages"].as_array_mut() else {
                    continue;
                };
                has_messages = true;
                for message in messages.iter_mut() {
                    sequence += 1;
                    let wamid = format!("wamid.FIXTURE.{n}.{sequence}");
                    message["id"] = serde_json::json!(wamid);
                    let kind = message["type"].as_str().unwrap_or_default().to_owned();
                    if ["image", "video", "audio", "voice", "document", "sticker"]
                        .contains(&kind.as_str())
                        && message[&kind].is_object()
                    {
                        let mime = message[&kind]["mime_type"]
                            .as_str()
                            .unwrap_or("application/octet-stream")
                            .to_owned();
                        let media = rig
                            .meta
                            .add_media(format!("{wamid} bytes").into_bytes(), &mime);
                        message[&kind]["id"] = serde_json::json!(media.id);
                        message[&kind]["sha256"] = serde_json::json!(media.sha256_base64);
                    }
                    let sender = [&message["from"], &message["from_user_id"]]
                        .iter()
                        .any(|s| s.as_str().is_some_and(|s| !s.is_empty()));
                    if sender {
                        expected.push(wamid);
                    }
                }
                value["metadata"] = serde_json::json!({
                    "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID
                });
            }
        }
        if !has_messages {
            continue;
        }
        let bytes = serde_json::to_vec(&body).expect("json");
        let response = http
            .post(&url)
            .header(
                "x-hub-signature-256",
                wabaflow_sims::meta::driver::signature("acme-app-secret", &bytes),
            )
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 200, "{}", path.display());
        let answer: serde_json::Value = response.json().await.expect("json");
        dead_letters += answer["dead_letters"].as_u64().unwrap_or_default();
    }
    assert!(expected.len() >= 80, "{} fixture messages", expected.len());
    assert_eq!(
        dead_letters, 1,
        "only the sample without a sender is refused"
    );

    let accepted = rig
        .genesys
        .wait_for_messages(expected.len(), Duration::from_secs(120))
        .await;
    let mut got = wamids(&accepted);
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "each fixture message once");
    for message in &accepted {
        for download in &message.downloads {
            assert_eq!(download.status, 200, "{download:?}");
        }
    }
    rig.stop().await;
}
