//! The published JSON Schema (`schemas/json/envelope.v1.schema.json`) is the one the types
//! derive, and a valid JSON Schema 2020-12 document. After changing a type, write the file again
//! with `WABAFLOW_WRITE_SCHEMA=1 cargo test -p wabaflow-schemas --test json_schema` and review
//! its diff: a removed or retyped field is a `.v2` topic, not an edit of v1.

use std::path::PathBuf;

use wabaflow_schemas::json_schema;

fn published() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join(json_schema::PUBLISHED_PATH)
}

#[test]
fn the_published_schema_is_the_one_the_types_derive() {
    let derived = json_schema::envelope_text();
    let path = published();
    if std::env::var_os("WABAFLOW_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &derived).expect("the schema file is writable");
    }
    let on_file =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    assert!(
        on_file == derived,
        "{} differs from what the types derive; write it again with WABAFLOW_WRITE_SCHEMA=1 \
         and review the change",
        path.display()
    );
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_document() {
    let schema = json_schema::envelope();
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "declares its draft"
    );
    if let Err(err) = jsonschema::meta::validate(&schema) {
        panic!("not a valid JSON Schema: {err} at {}", err.instance_path());
    }
    jsonschema::draft202012::new(&schema).expect("compiles");
}
