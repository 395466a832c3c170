//! Every customer message in the shared Meta fixtures (`../shared/fixtures/meta`, 150+ real and
//! SDK payloads) becomes a Genesys message that the Genesys simulator's rules accept: none is
//! dropped. Media messages get a stand-in stored file, as the media stage would attach. Each is
//! encoded for its record byte for byte as serde_json encodes it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::Utc;
use wabaflow_schemas::StoredMedia;
use wabaflow_schemas::genesys::InboundMessage;
use wabaflow_schemas::meta::{ChangeValue, Webhook};
use wabaflow_stages::transform::normalize;

fn fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../../shared/fixtures/meta");
    dir.is_dir().then_some(dir)
}

fn stored(kind: &str) -> StoredMedia {
    StoredMedia {
        bucket: "media-inbound".into(),
        key: format!("acme/1065/123.{kind}"),
        url: "http://127.0.0.1:8014/media-inbound/acme/1065/123".into(),
        url_expires_at: Utc::now(),
        mime_type: "application/octet-stream".into(),
        sha256: "00".repeat(32),
        size: 1,
        filename: None,
    }
}

#[test]
fn every_fixture_message_type_becomes_a_genesys_message() {
    let Some(dir) = fixtures() else {
        eprintln!("shared fixtures not present; nothing to check");
        return;
    };
    let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path).expect("read");
        let Ok(webhook) = serde_json::from_slice::<Webhook>(&bytes) else {
            continue;
        };
        for change in webhook.entry.iter().flat_map(|e| &e.changes) {
            let ChangeValue::Messages(value) = &change.value else {
                continue;
            };
            for message in value.messages.iter().flatten() {
                if message.sender().is_none() {
                    // Trimmed SDK samples without any sender: the edge dead-letters these.
                    continue;
                }
                let contact = value.contact_for(message.sender());
                let media = message.media().map(|_| stored(&message.kind));
                let normalized = normalize(message, contact, media.as_ref(), Utc::now())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                // What the Genesys simulator (and Genesys) would accept.
                let json = serde_json::to_value(&normalized).expect("encodes");
                // Written into records by `json::to_writer`: the bytes serde_json writes.
                let mut written = Vec::new();
                wabaflow_schemas::json::to_writer(&mut written, &normalized).expect("encodes");
                assert_eq!(
                    String::from_utf8(written).expect("UTF-8"),
                    serde_json::to_string(&normalized).expect("encodes"),
                    "{}",
                    path.display()
                );
                let back: InboundMessage = serde_json::from_value(json).expect("decodes");
                let has_text = back.text.as_deref().is_some_and(|t| !t.trim().is_empty());
                assert!(
                    has_text || !back.content.is_empty(),
                    "{}: {} message rendered empty",
                    path.display(),
                    message.kind
                );
                assert_eq!(
                    back.channel.message_id.as_deref(),
                    Some(message.id.as_str())
                );
                assert_eq!(Some(back.channel.from.id.as_str()), message.sender());
                assert_eq!(back.metadata["whatsapp.type"], message.kind);
                *per_type.entry(message.kind.clone()).or_default() += 1;
            }
        }
    }
    // The fixture set covers every type Meta documents (WIRE.md §1.3).
    for kind in [
        "text",
        "image",
        "video",
        "audio",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "button",
        "reaction",
        "order",
        "system",
        "unsupported",
    ] {
        assert!(
            per_type.contains_key(kind),
            "no {kind} fixture converted: {per_type:?}"
        );
    }
}
