//! Builders for Meta webhook bodies, shaped like the real ones (WIRE.md §1): string timestamps,
//! `wamid.` ids, `contacts[]` with the profile name, one `value` per change, batching across
//! entries and changes when asked.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::MediaRef;

/// A customer on WhatsApp.
#[derive(Debug, Clone)]
pub struct Customer {
    pub wa_id: String,
    pub name: String,
}

/// A business number (the receiving side of a webhook).
#[derive(Debug, Clone)]
pub struct BusinessNumber {
    pub waba_id: String,
    pub phone_number_id: String,
    pub display_phone_number: String,
}

/// One inbound message with its sender.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub customer: Customer,
    pub wamid: String,
    pub body: Value,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(1);

/// A fresh wamid: `wamid.` + base64 of a unique id, the shape Meta uses.
pub fn wamid() -> String {
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let raw = format!("sim{:016x}{:016x}", rand::random::<u64>(), n);
    format!("wamid.{}", BASE64.encode(raw))
}

impl Customer {
    pub fn new(wa_id: &str, name: &str) -> Self {
        Self {
            wa_id: wa_id.into(),
            name: name.into(),
        }
    }

    /// A message of `kind` with payload `payload` sent at `timestamp` (unix seconds).
    pub fn message(&self, kind: &str, payload: Value, timestamp: i64) -> InboundMessage {
        let wamid = wamid();
        let mut body = json!({
            "from": self.wa_id,
            "id": wamid,
            "timestamp": timestamp.to_string(),
            "type": kind,
        });
        body[kind] = payload;
        InboundMessage {
            customer: self.clone(),
            wamid,
            body,
        }
    }

    pub fn text(&self, text: &str, timestamp: i64) -> InboundMessage {
        self.message("text", json!({ "body": text }), timestamp)
    }

    /// image, video, audio, document or sticker referring to media held by the simulator.
    pub fn media(
        &self,
        kind: &str,
        media: &MediaRef,
        caption: Option<&str>,
        filename: Option<&str>,
        timestamp: i64,
    ) -> InboundMessage {
        let mut payload = json!({
            "id": media.id,
            "mime_type": media.mime_type,
            "sha256": media.sha256_base64,
        });
        if let Some(caption) = caption {
            payload["caption"] = json!(caption);
        }
        if let Some(filename) = filename {
            payload["filename"] = json!(filename);
        }
        if kind == "audio" {
            payload["voice"] = json!(media.mime_type.starts_with("audio/ogg"));
        }
        if kind == "sticker" {
            payload["animated"] = json!(false);
        }
        self.message(kind, payload, timestamp)
    }
}

impl BusinessNumber {
    pub fn new(waba_id: &str, phone_number_id: &str, display_phone_number: &str) -> Self {
        Self {
            waba_id: waba_id.into(),
            phone_number_id: phone_number_id.into(),
            display_phone_number: display_phone_number.into(),
        }
    }

    /// One webhook carrying `messages`, one change per message (Meta does not promise more
    /// batching than that; [`BusinessNumber::batched`] puts several in one body).
    pub fn webhook(&self, message: &InboundMessage) -> Vec<u8> {
        self.batched(std::slice::from_ref(message))
    }

    /// One body with one entry and one change per message.
    pub fn batched(&self, messages: &[InboundMessage]) -> Vec<u8> {
        let changes: Vec<Value> = messages
            .iter()
            .map(|message| {
                json!({
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": self.display_phone_number,
                            "phone_number_id": self.phone_number_id,
                        },
                        "contacts": [{
                            "profile": { "name": message.customer.name },
                            "wa_id": message.customer.wa_id,
                        }],
                        "messages": [message.body],
                    }
                })
            })
            .collect();
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": self.waba_id, "changes": changes }],
        });
        escape_like_meta(&body)
    }
}

/// Compact JSON with Meta's escaping: non-ASCII as lowercase `\uXXXX` and `/` as `\/`
/// (WIRE.md §1.1). The signature covers exactly these bytes.
pub fn escape_like_meta(value: &Value) -> Vec<u8> {
    let compact = value.to_string();
    let mut out = String::with_capacity(compact.len() + 16);
    for c in compact.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_escaped_like_meta_and_still_parse() {
        let number = BusinessNumber::new("waba", "1065", "15550783881");
        let customer = Customer::new("16505551234", "José");
        let message = customer.text("café 🙂 a/b", 1_749_416_383);
        let body = number.webhook(&message);
        let text = String::from_utf8(body.clone()).expect("ascii");
        assert!(text.is_ascii());
        assert!(text.contains("caf\\u00e9 \\ud83d\\ude42 a\\/b"), "{text}");
        let parsed: Value = serde_json::from_slice(&body).expect("json");
        let value = &parsed["entry"][0]["changes"][0]["value"];
        assert_eq!(value["messages"][0]["text"]["body"], "café 🙂 a/b");
        assert_eq!(value["messages"][0]["timestamp"], "1749416383");
        assert_eq!(value["contacts"][0]["profile"]["name"], "José");
        assert!(message.wamid.starts_with("wamid."));
    }
}
