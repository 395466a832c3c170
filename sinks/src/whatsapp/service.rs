//! The Cloud API client: `POST /{version}/{phone-number-id}/messages` and the table that says
//! what each answer means (WIRE.md §2.2 — build on `error.code`, not on the HTTP status).
//!
//! | answer | meaning | what the sink does |
//! |---|---|---|
//! | 200 | accepted: `messages[0].id` is the wamid | record it, emit an accepted result |
//! | 130429 | the number's throughput is exhausted | wait (the whole number), retry |
//! | 131056 | too many messages to this customer | wait the pair interval, retry |
//! | 4, 80007, 131048 | app / account / spam rate limits | wait, retry |
//! | 131000, 131016, HTTP 5xx, no answer | Meta unavailable | retry with backoff and jitter |
//! | 190 | the token expired or was revoked | drop the cached tenant, retry |
//! | anything else (100, 131008, 131009, 131026, 131047, 132xxx, …) | the request cannot succeed | failed result with the reason, no retry |
//!
//! The token is the tenant's system-user token, opened with the tenant (the registry keeps opened
//! tenants in process for `tenants::CACHE_TTL`). On a 190 this node forgets its copy of the
//! tenant, so the retry reads the stored record: a rotated token is used from the next attempt.

use std::time::{Duration, Instant};

use serde_json::Value;
use wabaflow_pipeline::config::{MetaApiConfig, WhatsAppConfig};
use wabaflow_pipeline::telemetry::metrics;
use wabaflow_schemas::tenant::Tenant;
use wabaflow_schemas::whatsapp::{SendRequest, SendResponse};
use wabaflow_store::tenants::TenantRegistry;

const SINK: &str = "whatsapp";

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("Meta rate limit {code}: retry in {after:?}")]
    Throttled { code: i64, after: Duration },
    /// Meta did not answer, or answered that it failed. `sent` is false when the request
    /// certainly never reached Meta (the connection was refused).
    #[error("Meta unavailable: {reason}")]
    Unavailable { reason: String, maybe_sent: bool },
    #[error("Meta refused the token (190): {0}")]
    TokenRejected(String),
    #[error("Meta refused the message ({code:?}): {message}")]
    Refused { code: Option<i64>, message: String },
}

pub struct WhatsAppService {
    http: reqwest::Client,
    graph_url: String,
    api_version: String,
    tenants: TenantRegistry,
    pair_interval: Duration,
}

impl WhatsAppService {
    pub fn new(
        tenants: TenantRegistry,
        meta: &MetaApiConfig,
        config: &WhatsAppConfig,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(config.timeout_ms))
                .build()?,
            graph_url: meta.graph_url.trim_end_matches('/').to_owned(),
            api_version: meta.api_version.clone(),
            tenants,
            pair_interval: Duration::from_millis(config.pair_interval_ms),
        })
    }

    pub async fn send(
        &self,
        tenant: &Tenant,
        phone_number_id: &str,
        request: &SendRequest,
    ) -> Result<SendResponse, SendError> {
        let url = format!(
            "{}/{}/{phone_number_id}/messages",
            self.graph_url, self.api_version
        );
        let started = Instant::now();
        let sent = self
            .http
            .post(&url)
            .bearer_auth(tenant.whatsapp_token.expose())
            .json(request)
            .send()
            .await;
        metrics()
            .sink_request_seconds
            .with_label_values(&[SINK])
            .observe(started.elapsed().as_secs_f64());
        let result = self.classify(sent).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(SendError::Throttled { .. }) => "throttled",
            Err(SendError::Unavailable { .. }) => "unavailable",
            Err(SendError::TokenRejected(_)) => "unauthorized",
            Err(SendError::Refused { .. }) => "rejected",
        };
        metrics()
            .sink_requests
            .with_label_values(&[SINK, outcome])
            .inc();
        if matches!(result, Err(SendError::TokenRejected(_))) {
            self.tenants.forget(&tenant.id);
        }
        result
    }

    async fn classify(
        &self,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<SendResponse, SendError> {
        let response = sent.map_err(|err| SendError::Unavailable {
            maybe_sent: !err.is_connect(),
            reason: err.to_string(),
        })?;
        let status = response.status();
        if status.is_success() {
            return response.json().await.map_err(|err| SendError::Unavailable {
                reason: format!("unreadable answer: {err}"),
                maybe_sent: true,
            });
        }
        let body: Value = response.json().await.unwrap_or_default();
        let code = body["error"]["code"].as_i64();
        let message = body["error"]["error_data"]["details"]
            .as_str()
            .or(body["error"]["message"].as_str())
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect::<String>();
        Err(match code {
            Some(130429) => SendError::Throttled {
                code: 130429,
                after: Duration::from_secs(1),
            },
            Some(131056) => SendError::Throttled {
                code: 131056,
                after: self.pair_interval,
            },
            Some(code @ (4 | 80007 | 131048)) => SendError::Throttled {
                code,
                after: Duration::from_secs(5),
            },
            Some(190) => SendError::TokenRejected(message),
            Some(131000 | 131016) => SendError::Unavailable {
                reason: format!("{status} ({code:?}): {message}"),
                maybe_sent: false,
            },
            None if status.is_server_error() || status.as_u16() == 429 => SendError::Unavailable {
                reason: format!("{status}: {message}"),
                maybe_sent: false,
            },
            code => SendError::Refused { code, message },
        })
    }
}
