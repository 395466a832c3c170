//! The JSON Schema of [`Envelope`] v1, for consumers of the topics that are not written in Rust.
//!
//! Derived from the types themselves (`schemars`, which reads their serde attributes), so it
//! cannot drift from what the stages write: `schemas/json/envelope.v1.schema.json` is this
//! schema, and a test fails when the file and the types disagree. What a reader can rely on:
//! - every field the types name, with its type and whether it is required;
//! - `event` is one of the kinds, told apart by `event.kind`;
//! - objects that carry Meta's or Genesys' payloads allow properties the types do not name
//!   (they are kept verbatim, and Meta adds fields without notice); wabaflow's own objects allow
//!   them too, so that a later v1 may add an optional field (a change that removes or retypes one
//!   is a `.v2` topic, never an edit of v1).

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::envelope::{Envelope, SCHEMA_VERSION};

/// Where the published schema lives in the repository, relative to this crate.
pub const PUBLISHED_PATH: &str = "json/envelope.v1.schema.json";

/// The schema of an envelope at [`SCHEMA_VERSION`] (JSON Schema 2020-12).
pub fn envelope() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<Envelope>().to_value();
    let object = schema
        .as_object_mut()
        .expect("a struct's schema is a JSON object");
    object.insert(
        "$id".into(),
        json!(format!("urn:wabaflow:schema:envelope:v{SCHEMA_VERSION}")),
    );
    object.insert(
        "title".into(),
        json!(format!("wabaflow Envelope v{SCHEMA_VERSION}")),
    );
    object.insert(
        "description".into(),
        json!(
            "One event on a wabaflow conversation topic (one Kafka record, keyed by the \
             conversation key). docs/topics.md lists which event kinds each topic carries."
        ),
    );
    schema
}

/// [`envelope`], as the published file holds it: pretty-printed, with a final newline.
pub fn envelope_text() -> String {
    let mut text = serde_json::to_string_pretty(&envelope()).expect("a JSON value encodes");
    text.push('\n');
    text
}
