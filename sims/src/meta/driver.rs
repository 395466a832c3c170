//! The customer side of Meta: posts signed webhooks to a callback URL and retries like Meta.
//!
//! Meta signs the raw body with the app secret (`X-Hub-Signature-256: sha256=<hex>`) and, "if a
//! webhook request to your endpoint receives an HTTP status code other than 200 … delivery is
//! retried with decreasing frequency until the request succeeds, for up to 7 days" (WIRE.md
//! §1.9). The driver does the same on a compressed clock ([`RetryPolicy`]). Duplicates and late
//! retries — the other things Meta does — are sent on purpose with [`CustomerDriver::post`].

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying Meta's signature.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Meta's retry schedule, compressed: the first retry after `first`, each next one `factor`
/// times later (decreasing frequency), giving up after `attempts`.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub first: Duration,
    pub factor: u32,
    pub max_delay: Duration,
    pub attempts: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(100),
            factor: 2,
            max_delay: Duration::from_secs(5),
            attempts: 30,
        }
    }
}

/// How a webhook delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// HTTP statuses of every attempt, in order.
    pub statuses: Vec<u16>,
}

impl Delivery {
    pub fn delivered(&self) -> bool {
        self.statuses.last() == Some(&200)
    }
}

#[derive(Clone)]
pub struct CustomerDriver {
    url: String,
    app_secret: String,
    retry: RetryPolicy,
    http: reqwest::Client,
}

/// `sha256=<lowercase hex HMAC-SHA256(app secret, body)>`.
pub fn signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl CustomerDriver {
    /// Posts to `url` (the tenant's callback, e.g. `http://127.0.0.1:8080/webhooks/meta/acme`).
    pub fn new(url: impl Into<String>, app_secret: impl Into<String>, retry: RetryPolicy) -> Self {
        Self {
            url: url.into(),
            app_secret: app_secret.into(),
            retry,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("a client with a timeout builds"),
        }
    }

    /// Posts one body, signed, once; the status (0 when the request itself failed).
    pub async fn post_once(&self, body: &[u8]) -> u16 {
        let request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("user-agent", "facebookexternalua")
            .header(SIGNATURE_HEADER, signature(&self.app_secret, body))
            .body(body.to_vec());
        match request.send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// Posts until a 200 or the policy gives up, waiting longer between each attempt.
    pub async fn post(&self, body: &[u8]) -> Delivery {
        let mut statuses = Vec::new();
        let mut delay = self.retry.first;
        for attempt in 0..self.retry.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay = (delay * self.retry.factor).min(self.retry.max_delay);
            }
            let status = self.post_once(body).await;
            statuses.push(status);
            if status == 200 {
                break;
            }
        }
        Delivery { statuses }
    }
}
