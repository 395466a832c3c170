//! The k6 scripts cannot run here (no k6 on this machine), but they must at least parse: every
//! script and library under `load-tests/k6` goes through `node --check` as an ES module.

use std::path::{Path, PathBuf};

fn scripts(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("load-tests/k6 exists") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            scripts(&path, found);
        } else if path.extension().is_some_and(|e| e == "js") {
            found.push(path);
        }
    }
}

#[test]
fn every_k6_script_parses() {
    let root = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("load-tests/k6");
    let mut found = Vec::new();
    scripts(&root, &mut found);
    assert!(found.len() >= 7, "scripts and libraries: {found:?}");
    let scratch = std::env::temp_dir().join(format!("wabaflow-k6-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    for script in found {
        // `.mjs` makes node parse it as a module, as k6 does.
        let copy = scratch.join("script.mjs");
        std::fs::copy(&script, &copy).expect("copy");
        let out = std::process::Command::new("node")
            .arg("--check")
            .arg(&copy)
            .output()
            .expect("node (scripts/services.sh installs Debian's nodejs package)");
        assert!(
            out.status.success(),
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
