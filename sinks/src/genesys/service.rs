//! The Genesys Cloud client: OAuth client-credentials tokens and the Open Messaging inbound call,
//! with the table that says what each answer means.
//!
//! | answer | meaning | what the sink does |
//! |---|---|---|
//! | 200 / 202 | accepted; `id` = Genesys message id, `conversationId` (prefetched) | record, commit |
//! | 401 | token expired or revoked | drop the cached token, retry at once with a new one |
//! | 429 | rate limited (300 requests/min/token) | wait `Retry-After`, retry |
//! | 5xx, timeout, connection | Genesys unavailable | retry with backoff and jitter |
//! | other 4xx | the message or the integration is wrong | dead-letter with Genesys' message |
//!
//! Tokens are cached in the state store under `tenant:{id}:oauth:token`, sealed with the
//! deployment key, for `min(expires_in − 60 s, token_max_age)` (55 minutes by default; a tenth of
//! the lifetime as the margin for tokens shorter than 10 minutes), so a token is replaced before
//! it expires. One refresh per tenant at a time in a process: concurrent
//! callers wait for the refresh in flight instead of asking for tokens of their own.

use std::time::{Duration, Instant};

use wabaflow_pipeline::config::GenesysConfig;
use wabaflow_pipeline::telemetry::metrics;
use wabaflow_schemas::genesys::{InboundMessage, InboundResponse, Receipt};
use wabaflow_schemas::tenant::Tenant;
use wabaflow_store::tenants::TenantRegistry;
use wabaflow_store::tokens::{GenesysTokens, TokenError};

const SINK: &str = "genesys";

#[derive(Debug, thiserror::Error)]
pub enum GenesysError {
    #[error("Genesys asked us to wait {after:?}")]
    Throttled { after: Duration },
    #[error("Genesys unavailable: {0}")]
    Unavailable(String),
    #[error("Genesys rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("Genesys refused our credentials: {0}")]
    Unauthorized(String),
}

pub struct GenesysService {
    http: reqwest::Client,
    tokens: GenesysTokens,
}

impl GenesysService {
    pub fn new(tenants: TenantRegistry, config: &GenesysConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()?;
        Ok(Self {
            tokens: GenesysTokens::new(
                http.clone(),
                tenants,
                Duration::from_secs(config.token_max_age_secs),
            ),
            http,
        })
    }

    /// Posts a customer message (`?prefetchConversationId=true`).
    pub async fn send_inbound(
        &self,
        tenant: &Tenant,
        message: &InboundMessage,
    ) -> Result<InboundResponse, GenesysError> {
        let answer = self
            .post(tenant, "message?prefetchConversationId=true", message)
            .await?;
        serde_json::from_value(answer)
            .map_err(|err| GenesysError::Unavailable(format!("unreadable answer: {err}")))
    }

    /// Posts a delivery receipt of an agent's message.
    pub async fn send_receipt(
        &self,
        tenant: &Tenant,
        receipt: &Receipt,
    ) -> Result<(), GenesysError> {
        self.post(tenant, "receipt", receipt).await.map(|_| ())
    }

    /// POSTs to `/api/v2/conversations/messages/{integration}/inbound/open/{path}`; on 401 gets
    /// a new token once and posts again.
    async fn post(
        &self,
        tenant: &Tenant,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<serde_json::Value, GenesysError> {
        let url = format!(
            "{}/api/v2/conversations/messages/{}/inbound/open/{path}",
            tenant.genesys.api_url(),
            tenant.genesys.integration_id
        );
        let mut refreshed = false;
        loop {
            let token = self.token(tenant).await?;
            let started = Instant::now();
            let sent = self
                .http
                .post(&url)
                .bearer_auth(&token)
                .json(body)
                .send()
                .await;
            metrics()
                .sink_request_seconds
                .with_label_values(&[SINK])
                .observe(started.elapsed().as_secs_f64());
            let result = classify(sent).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(GenesysError::Throttled { .. }) => "throttled",
                Err(GenesysError::Unavailable(_)) => "unavailable",
                Err(GenesysError::Rejected { .. }) => "rejected",
                Err(GenesysError::Unauthorized(_)) => "unauthorized",
            };
            metrics()
                .sink_requests
                .with_label_values(&[SINK, outcome])
                .inc();
            match result {
                Err(GenesysError::Unauthorized(_)) if !refreshed => {
                    refreshed = true;
                    self.tokens.forget(tenant, &token).await;
                }
                other => return other,
            }
        }
    }

    /// A token for the tenant's OAuth client (cached; see `wabaflow_store::tokens`).
    pub async fn token(&self, tenant: &Tenant) -> Result<String, GenesysError> {
        self.tokens.token(tenant).await.map_err(|err| match err {
            TokenError::Throttled { after } => GenesysError::Throttled { after },
            TokenError::Unavailable(reason) => GenesysError::Unavailable(reason),
            TokenError::Unauthorized(reason) => GenesysError::Unauthorized(reason),
        })
    }
}

async fn classify(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<serde_json::Value, GenesysError> {
    let response = sent.map_err(|err| GenesysError::Unavailable(err.to_string()))?;
    let status = response.status();
    if status.is_success() {
        return response
            .json()
            .await
            .map_err(|err| GenesysError::Unavailable(format!("unreadable answer: {err}")));
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    Err(match status.as_u16() {
        401 => GenesysError::Unauthorized(message),
        429 => GenesysError::Throttled {
            after: retry_after.unwrap_or(Duration::from_secs(1)),
        },
        503 if retry_after.is_some() => GenesysError::Throttled {
            after: retry_after.unwrap_or_default(),
        },
        s if s >= 500 || s == 408 => GenesysError::Unavailable(format!("{status}: {message}")),
        s => GenesysError::Rejected {
            status: s,
            message: truncate(&message),
        },
    })
}

fn truncate(text: &str) -> String {
    text.chars().take(300).collect()
}
