//! Every Meta webhook sample in `../shared/fixtures/meta/` decodes into the typed model and
//! re-encodes to the same JSON: nothing Meta sends is dropped on the way through wabaflow. The
//! encoder of records (`json::to_writer`) writes the very bytes serde_json writes for each.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wabaflow_schemas::meta::{ChangeValue, Content, Webhook};

fn shared_fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("WABAFLOW_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(
                &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
            )
            .join("../../shared/fixtures")
        });
    dir.join("meta").is_dir().then_some(dir)
}

/// Webhook bodies: every `.json` under `meta/` except `meta/api/`, which holds Cloud API
/// requests and responses (the simulators' concern, not the webhook decoder's).
fn webhook_files(meta: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![meta.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("fixture dir is readable") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "api") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_shared_meta_fixture_round_trips() {
    let Some(fixtures) = shared_fixtures() else {
        eprintln!("../shared/fixtures/meta not present; skipping");
        return;
    };
    let files = webhook_files(&fixtures.join("meta"));
    assert!(
        files.len() > 100,
        "expected the 150-odd shared Meta samples, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    let (mut messages, mut unknown_kinds) = (0, Vec::new());
    for path in &files {
        let bytes = std::fs::read(path).expect("fixture is readable");
        let original: Value = serde_json::from_slice(&bytes).expect("fixture is JSON");
        let webhook: Webhook = match serde_json::from_slice(&bytes) {
            Ok(webhook) => webhook,
            Err(err) => {
                failures.push(format!("{}: decode: {err}", path.display()));
                continue;
            }
        };
        let encoded = serde_json::to_value(&webhook).expect("encodes");
        let (mut ours, theirs) = (Vec::new(), serde_json::to_vec(&webhook).expect("encodes"));
        wabaflow_schemas::json::to_writer(&mut ours, &webhook).expect("encodes");
        if ours != theirs {
            failures.push(format!(
                "{}: the records' encoder wrote other bytes than serde_json:\n{}",
                path.display(),
                String::from_utf8_lossy(&ours)
            ));
        }
        if encoded != original {
            failures.push(format!(
                "{}: round trip changed the payload:\n{encoded}",
                path.display()
            ));
        }
        for change in webhook.entry.iter().flat_map(|e| &e.changes) {
            if let ChangeValue::Messages(value) = &change.value {
                for message in value.messages.iter().flatten() {
                    messages += 1;
                    if let Content::Unknown { kind, .. } = message.content() {
                        unknown_kinds.push(kind.to_owned());
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert!(messages > 80, "only {messages} messages decoded");
    // Only the types WIRE.md lists as "others seen", and one `interactive` that arrives without
    // its payload (WIRE.md §4 "interactive (error/no body)"), are left to the untyped path.
    unknown_kinds.sort();
    unknown_kinds.dedup();
    assert_eq!(
        unknown_kinds,
        ["edit", "interactive", "revoke"],
        "unexpected untyped message kinds"
    );
}

/// The project's own golden cases (`tests/golden/meta/*.json` at the workspace root, shared with the
/// edge's split tests): their `request` bodies round-trip too.
#[test]
fn golden_requests_round_trip() {
    let dir = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../tests/golden/meta");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("golden dir") {
        let path = entry.expect("entry").path();
        let case: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("readable")).expect("JSON");
        let original = case["request"].clone();
        let webhook: Webhook = serde_json::from_value(original.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            serde_json::to_value(&webhook).expect("encodes"),
            original,
            "{}",
            path.display()
        );
        count += 1;
    }
    assert!(count >= 3, "golden cases missing");
}
