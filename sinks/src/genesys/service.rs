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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wabaflow_pipeline::config::GenesysConfig;
use wabaflow_pipeline::telemetry::metrics;
use wabaflow_schemas::genesys::{InboundMessage, InboundResponse, TokenResponse};
use wabaflow_schemas::tenant::Tenant;
use wabaflow_store::tenants::TenantRegistry;

const SINK: &str = "genesys";

/// Refresh this long before Genesys' `expires_in` ends (a tenth of the lifetime for short ones).
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

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
    tenants: TenantRegistry,
    max_age: Duration,
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl GenesysService {
    pub fn new(tenants: TenantRegistry, config: &GenesysConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(config.timeout_ms))
                .build()?,
            tenants,
            max_age: Duration::from_secs(config.token_max_age_secs),
            refreshing: Mutex::default(),
        })
    }

    /// Posts a customer message; on 401 fetches a new token once and posts again.
    pub async fn send_inbound(
        &self,
        tenant: &Tenant,
        message: &InboundMessage,
    ) -> Result<InboundResponse, GenesysError> {
        let url = format!(
            "{}/api/v2/conversations/messages/{}/inbound/open/message",
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
                .query(&[("prefetchConversationId", "true")])
                .bearer_auth(&token)
                .json(message)
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
                    self.forget_token(tenant, &token).await;
                }
                other => return other,
            }
        }
    }

    /// A valid access token for the tenant's OAuth client, from the cache or freshly issued.
    pub async fn token(&self, tenant: &Tenant) -> Result<String, GenesysError> {
        if let Some(token) = self.cached(tenant).await {
            return Ok(token);
        }
        let lock = {
            let mut refreshing = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
            refreshing.entry(tenant.id.clone()).or_default().clone()
        };
        let _single_flight = lock.lock().await;
        // Whoever held the lock before us may have refreshed it already.
        if let Some(token) = self.cached(tenant).await {
            return Ok(token);
        }
        let issued = self.issue(tenant).await?;
        let lifetime = Duration::from_secs(issued.expires_in);
        let ttl = lifetime
            .saturating_sub(EXPIRY_MARGIN.min(lifetime / 10))
            .min(self.max_age);
        if !ttl.is_zero() {
            let sealed = self
                .tenants
                .seal_value(&tenant.id, issued.access_token.as_bytes())
                .map_err(|err| GenesysError::Unavailable(err.to_string()))?;
            self.tenants
                .store()
                .put(&token_key(&tenant.id), sealed.as_bytes(), Some(ttl))
                .await
                .map_err(|err| GenesysError::Unavailable(err.to_string()))?;
        }
        Ok(issued.access_token)
    }

    async fn cached(&self, tenant: &Tenant) -> Option<String> {
        let sealed = self
            .tenants
            .store()
            .get(&token_key(&tenant.id))
            .await
            .ok()??;
        let plain = self
            .tenants
            .open_value(&tenant.id, &String::from_utf8_lossy(&sealed))
            .ok()?;
        String::from_utf8(plain).ok()
    }

    async fn forget_token(&self, tenant: &Tenant, rejected: &str) {
        if self.cached(tenant).await.as_deref() == Some(rejected) {
            let _ = self.tenants.store().delete(&token_key(&tenant.id)).await;
        }
    }

    /// `POST {login}/oauth/token`, client credentials with Basic auth (WIRE.md §3.1).
    async fn issue(&self, tenant: &Tenant) -> Result<TokenResponse, GenesysError> {
        let response = self
            .http
            .post(format!("{}/oauth/token", tenant.genesys.login_url()))
            .basic_auth(
                &tenant.genesys.client_id,
                Some(tenant.genesys.client_secret.expose()),
            )
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body("grant_type=client_credentials")
            .send()
            .await
            .map_err(|err| GenesysError::Unavailable(format!("token request: {err}")))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|err| GenesysError::Unavailable(format!("token answer: {err}")));
        }
        let body = response.text().await.unwrap_or_default();
        Err(match status.as_u16() {
            429 => GenesysError::Throttled {
                after: Duration::from_secs(1),
            },
            400 | 401 | 403 => GenesysError::Unauthorized(format!(
                "OAuth client {} refused ({status}): {}",
                tenant.genesys.client_id,
                truncate(&body)
            )),
            _ => GenesysError::Unavailable(format!("token endpoint answered {status}")),
        })
    }
}

fn token_key(tenant: &str) -> String {
    format!("tenant:{tenant}:oauth:token")
}

async fn classify(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<InboundResponse, GenesysError> {
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
