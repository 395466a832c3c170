//! Every kind of envelope wabaflow writes validates against the published JSON Schema
//! (`schemas/json/envelope.v1.schema.json`, what consumers in other languages check records
//! against), and the schema refuses what no stage writes.
//!
//! The envelopes come from the code that makes them where that code is pure: the Meta edge's
//! split of every webhook in the project's golden cases and the shared fixtures, transform's
//! normalisation of each customer message, the Genesys outbound fixtures and the send request
//! made of each. The kinds only sinks and the meter write (send results, receipts, usage) are
//! built here as those write them.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;
use wabaflow_schemas::billing::UsageRecord;
use wabaflow_schemas::genesys::{OutboundMessage, Receipt};
use wabaflow_schemas::meta::Webhook;
use wabaflow_schemas::{ConversationKey, Envelope, Event, Reply, SendOutcome, Source, StoredMedia};

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("schemas/json/envelope.v1.schema.json"))
            .expect("the published schema is readable"),
    )
    .expect("the published schema is JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

fn workspace() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
}

/// The reasons `validator` refuses `envelope` as written into its record; empty when valid.
fn refusals(validator: &jsonschema::Validator, envelope: &Envelope) -> Vec<String> {
    let written: Value =
        serde_json::from_slice(&envelope.to_json()).expect("a record's payload is JSON");
    validator
        .iter_errors(&written)
        .map(|err| format!("{err} at {}", err.instance_path()))
        .collect()
}

/// Webhook bodies: the project's golden requests, and every shared Meta sample there is.
fn webhooks() -> Vec<(PathBuf, Webhook)> {
    let mut bodies = Vec::new();
    let golden = workspace().join("tests/golden/meta");
    for path in json_files(&golden) {
        let case: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        bodies.push((
            path,
            serde_json::from_value(case["request"].clone()).expect("decodes"),
        ));
    }
    let shared = workspace().join("../shared/fixtures/meta");
    for path in json_files(&shared) {
        if let Ok(webhook) = serde_json::from_slice(&std::fs::read(&path).expect("read")) {
            bodies.push((path, webhook));
        }
    }
    bodies
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn stored_media(mime_type: &str) -> StoredMedia {
    StoredMedia {
        bucket: "media-inbound".into(),
        key: "acme/106540352242922/wamid.1".into(),
        url: "http://127.0.0.1:8014/media-inbound/acme/106540352242922/wamid.1?X-Amz-Signature=0"
            .into(),
        url_expires_at: Utc::now(),
        mime_type: mime_type.into(),
        sha256: "ab".repeat(32),
        size: 1_024,
        filename: None,
    }
}

#[test]
fn every_envelope_the_edge_and_transform_make_of_meta_webhooks_is_valid() {
    let validator = validator();
    let (mut kinds, mut failures, mut checked) = (std::collections::BTreeSet::new(), Vec::new(), 0);
    let mut check = |origin: &Path, envelope: &Envelope| {
        checked += 1;
        kinds.insert(envelope.event.kind());
        for refusal in refusals(&validator, envelope) {
            failures.push(format!(
                "{}: {}: {refusal}",
                origin.display(),
                envelope.event.kind()
            ));
        }
    };
    for (path, webhook) in webhooks() {
        let split = wabaflow_ingest::meta::split(&webhook, Uuid::now_v7(), Utc::now());
        for mut envelope in split.events {
            envelope.tenant = Some("acme".into());
            check(&path, &envelope);
            let Event::MetaMessage {
                contact, message, ..
            } = &envelope.event
            else {
                continue;
            };
            let media = message
                .media()
                .map(|m| stored_media(m.mime_type.as_deref().unwrap_or("image/jpeg")));
            let Ok(normalized) = wabaflow_stages::transform::normalize(
                message,
                contact.as_ref(),
                media.as_ref(),
                envelope.received_at,
            ) else {
                continue;
            };
            let delivery = envelope.follow(Event::GenesysInbound {
                integration_id: "7c4b1f0e-0000-4000-8000-000000000001".into(),
                wamid: message.id.clone(),
                message: Box::new(normalized),
            });
            check(&path, &delivery);
        }
    }
    assert!(
        failures.is_empty(),
        "{} refused:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for kind in ["message", "status", "error", "change", "genesys_inbound"] {
        assert!(
            kinds.contains(kind),
            "no {kind} envelope among the {checked} checked"
        );
    }
}

#[test]
fn every_envelope_of_an_agents_reply_and_what_follows_it_is_valid() {
    let validator = validator();
    let dir = workspace().join("../shared/fixtures/genesys");
    let mut replies: Vec<(PathBuf, OutboundMessage)> = json_files(&dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("outbound"))
        })
        .filter_map(|p| {
            let message = serde_json::from_slice(&std::fs::read(&p).expect("read")).ok()?;
            Some((p, message))
        })
        .collect();
    // Without the shared fixtures, the smallest reply Genesys posts.
    replies.push((
        PathBuf::from("(built here)"),
        serde_json::from_value(json!({
            "id": "g-1", "type": "Text", "text": "Your order shipped.", "direction": "Outbound",
            "channel": {"id": "7c4b1f0e", "platform": "Open", "type": "Private",
                        "to": {"id": "16505551234"}, "time": "2026-12-03T10:00:00.000Z"}
        }))
        .expect("a minimal outbound message decodes"),
    ));
    let key = ConversationKey::conversation("106540352242922", "16505551234");
    let mut failures = Vec::new();
    let mut sends = 0;
    for (path, message) in replies {
        let media = message
            .content
            .iter()
            .find_map(|c| c.attachment.as_ref())
            .map(|_| stored_media("image/png"));
        let outbound = Envelope::new(
            Source::Genesys,
            key.clone(),
            None,
            Utc::now(),
            None,
            Event::GenesysOutbound {
                integration_id: "7c4b1f0e".into(),
                message: Box::new(message.clone()),
                reply: Some(Reply {
                    phone_number_id: "106540352242922".into(),
                    user: "16505551234".into(),
                    window_open: true,
                    last_inbound_at: Some(Utc::now()),
                }),
                media: media.clone(),
            },
        );
        let mut made = vec![outbound];
        let send_key = format!("send:genesys:{}", message.id);
        if let Ok(request) = wabaflow_stages::transform::reply::to_send_request(
            &message,
            media.as_ref(),
            "16505551234",
            &send_key,
        ) {
            sends += 1;
            made.push(made[0].follow(Event::WhatsAppSend {
                phone_number_id: "106540352242922".into(),
                send_key: send_key.clone(),
                genesys_message_id: Some(message.id.clone()),
                window_open: true,
                request: Box::new(request),
            }));
        }
        for envelope in &made {
            for refusal in refusals(&validator, envelope) {
                failures.push(format!(
                    "{}: {}: {refusal}",
                    path.display(),
                    envelope.event.kind()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} refused:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(sends > 0, "no reply became a send request");
}

#[test]
fn send_results_receipts_and_usage_are_valid() {
    let validator = validator();
    let key = ConversationKey::conversation("106540352242922", "16505551234");
    let wrap = |event| Envelope::new(Source::Genesys, key.clone(), None, Utc::now(), None, event);
    let result = |outcome| Event::SendResult {
        phone_number_id: "106540352242922".into(),
        send_key: "send:genesys:g-1".into(),
        genesys_message_id: Some("g-1".into()),
        recipient: "16505551234".into(),
        message_type: "text".into(),
        wamid: Some("wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI".into()),
        outcome,
    };
    let receipt: Receipt = serde_json::from_value(json!({
        "id": "g-1", "channel": {"to": {"id": "16505551234"}, "time": "2026-12-03T10:00:01.000Z"},
        "status": "Failed", "reasons": [{"code": "RateLimited", "message": "over the pair rate"}],
        "isFinalReceipt": true, "direction": "Outbound"
    }))
    .expect("a receipt decodes");
    let today = Utc::now();
    let usage = UsageRecord {
        tenant: "acme".into(),
        phone_number_id: "106540352242922".into(),
        wamid: "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI".into(),
        conversation_id: None,
        pricing_model: "PMP".into(),
        category: "utility".into(),
        pricing_type: Some("regular".into()),
        billable: true,
        country: "US".into(),
        recipient: "16505551234".into(),
        occurred_at: today,
        day: today.date_naive(),
        cost_micros: 4_000,
        currency: "USD".into(),
        price_valid_from: Some(today.date_naive()),
    };
    let envelopes = [
        wrap(result(SendOutcome::Accepted {
            message_status: Some("accepted".into()),
        })),
        wrap(result(SendOutcome::Failed {
            code: Some(131_047),
            reason: "Re-engagement message".into(),
            receipt_reason: "MessageExpired".into(),
        })),
        wrap(Event::GenesysReceipt {
            integration_id: "7c4b1f0e".into(),
            receipt: Box::new(receipt),
        }),
        wrap(Event::Usage {
            usage: Box::new(usage),
        }),
    ];
    for envelope in &envelopes {
        let refused = refusals(&validator, envelope);
        assert!(refused.is_empty(), "{}: {refused:?}", envelope.event.kind());
    }
}

/// Makes a valid envelope invalid in one way.
type Breaks = fn(&mut Value);

fn without(object: &mut Value, key: &str) {
    if let Some(fields) = object.as_object_mut() {
        fields.remove(key);
    }
}

#[test]
fn the_schema_refuses_what_no_stage_writes() {
    let validator = validator();
    let valid = json!({
        "event_id": "0193a1f2-7c4b-7000-8000-000000000001",
        "conversation_key": "106540352242922:16505551234",
        "source": "meta",
        "schema_version": 1,
        "received_at": "2026-12-03T10:00:00.412Z",
        "event": {
            "kind": "meta_message", "phone_number_id": "106540352242922",
            "message": {"from": "16505551234", "id": "wamid.1", "timestamp": "1764756000",
                        "type": "text", "text": {"body": "hello"}}
        }
    });
    assert!(
        validator.is_valid(&valid),
        "{:?}",
        validator.validate(&valid).err()
    );
    let broken: [(&str, Breaks); 7] = [
        ("no event id", |v| without(v, "event_id")),
        ("an event id that is no UUID", |v| {
            v["event_id"] = json!("42")
        }),
        ("an unknown source", |v| v["source"] = json!("telegram")),
        ("a time that is no RFC 3339 time", |v| {
            v["received_at"] = json!("yesterday")
        }),
        ("an unknown kind", |v| {
            v["event"]["kind"] = json!("meta_reaction")
        }),
        ("a message without its type", |v| {
            without(&mut v["event"]["message"], "type")
        }),
        ("a text body that is no string", |v| {
            v["event"]["message"]["text"]["body"] = json!(7)
        }),
    ];
    for (what, breaks) in broken {
        let mut envelope = valid.clone();
        breaks(&mut envelope);
        assert!(!validator.is_valid(&envelope), "the schema accepted {what}");
    }
}

#[test]
fn wabaflow_topics_schema_prints_the_published_schema() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wabaflow"))
        .args(["topics", "schema"])
        .output()
        .expect("wabaflow runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let published = std::fs::read(workspace().join("schemas/json/envelope.v1.schema.json"))
        .expect("the published schema is readable");
    assert!(
        output.stdout == published,
        "`wabaflow topics schema` printed another schema"
    );
}
