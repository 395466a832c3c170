//! The agent side of Genesys: outbound webhooks (what an agent's reply looks like on the wire),
//! signed and retried the way Genesys does it.
//!
//! Genesys signs the body with the integration's secret: `X-Hub-Signature-256: sha256=<base64>`
//! (standard base64, not hex — WIRE.md §3.4), and "retries a webhook request up to 5 times if the
//! request times out (10 seconds) or responds with a retryable HTTP status code (429, 5xx)", 5 s
//! apart. Other answers are final. The delay is configurable so tests need not wait 5 s.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// `sha256=<base64 HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", BASE64.encode(mac.finalize().into_bytes()))
}

#[derive(Clone)]
pub struct AgentDriver {
    url: String,
    secret: String,
    integration_id: String,
    retry_delay: Duration,
    http: reqwest::Client,
}

/// How one webhook delivery went: the status of every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub statuses: Vec<u16>,
}

impl Delivery {
    pub fn accepted(&self) -> bool {
        self.statuses.last().is_some_and(|s| (200..300).contains(s))
    }
}

impl AgentDriver {
    pub fn new(
        url: impl Into<String>,
        secret: impl Into<String>,
        integration_id: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
            integration_id: integration_id.into(),
            retry_delay: Duration::from_secs(5),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client with a timeout builds"),
        }
    }

    /// Shortens Genesys' 5 s between retries (tests).
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    fn envelope(&self, to: &str, kind: &str) -> Value {
        let id = uuid::Uuid::now_v7().simple().to_string();
        json!({
            "id": id,
            "channel": {
                "id": self.integration_id, "platform": "Open", "type": "Private",
                "to": {"id": to, "idType": "Opaque"},
                "from": {"nickname": "Agent", "id": self.integration_id, "idType": "Opaque"},
                "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "messageId": id,
            },
            "type": kind,
            "originatingEntity": "Human",
            "direction": "Outbound",
            "conversationId": uuid::Uuid::now_v7().to_string(),
        })
    }

    /// An agent's text reply to customer `to`.
    pub fn text(&self, to: &str, text: &str) -> Value {
        let mut body = self.envelope(to, "Text");
        body["text"] = json!(text);
        body
    }

    /// An attachment (`Image`, `Video`, `Audio`, `File`) hosted at `url`.
    pub fn attachment(
        &self,
        to: &str,
        media_type: &str,
        url: &str,
        mime: &str,
        filename: &str,
    ) -> Value {
        let mut body = self.envelope(to, "Text");
        body["content"] = json!([{
            "contentType": "Attachment",
            "attachment": {"id": uuid::Uuid::now_v7().to_string(), "mediaType": media_type, "url": url,
                           "mime": mime, "filename": filename}
        }]);
        body
    }

    /// A WhatsApp template (`namespace@name`) with body parameters.
    pub fn template(
        &self,
        to: &str,
        id: &str,
        language: &str,
        parameters: &[(&str, &str)],
    ) -> Value {
        let mut body = self.envelope(to, "Structured");
        let parameters: Vec<Value> = parameters
            .iter()
            .map(|(name, text)| json!({"name": name, "text": text}))
            .collect();
        body["content"] = json!([{
            "contentType": "Notification",
            "template": {"id": id, "language": language, "body": {"text": "", "parameters": parameters}}
        }]);
        body
    }

    /// The agent is typing (an `Event`; nothing to deliver to WhatsApp).
    pub fn typing(&self, to: &str) -> Value {
        let mut body = self.envelope(to, "Event");
        body["events"] =
            json!([{"eventType": "Typing", "typing": {"type": "On", "duration": 5000}}]);
        body
    }

    /// Posts, signed; retries timeouts, 429 and 5xx up to 5 times.
    pub async fn post(&self, body: &Value) -> Delivery {
        let bytes = body.to_string().into_bytes();
        let mut statuses = Vec::new();
        for attempt in 0..6 {
            if attempt > 0 {
                tokio::time::sleep(self.retry_delay).await;
            }
            let status = match self
                .http
                .post(&self.url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", signature(&self.secret, &bytes))
                .body(bytes.clone())
                .send()
                .await
            {
                Ok(response) => response.status().as_u16(),
                Err(_) => 0,
            };
            statuses.push(status);
            if !(status == 0 || status == 429 || status >= 500) {
                break;
            }
        }
        Delivery { statuses }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_shared_test_vector() {
        // ../shared/fixtures/test-vectors: secret `test-integration-secret`.
        let path = std::path::Path::new(
            &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
        )
        .join("../../shared/fixtures/test-vectors/genesys-outbound-body.compact.json");
        let Ok(body) = std::fs::read(path) else {
            return;
        };
        assert_eq!(
            signature("test-integration-secret", &body),
            "sha256=qC1PtIUb9knH+bCtk7RK4VM2eQtXyVjglsVhHjYMUJc="
        );
    }
}
