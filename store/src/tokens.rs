//! Genesys OAuth tokens, cached in the state store and refreshed one at a time.
//!
//! Client credentials with Basic auth (WIRE.md §3.1): `POST {login}/oauth/token`,
//! `grant_type=client_credentials` → `{access_token, expires_in}`. Tokens are cached under
//! `tenant:{id}:oauth:token`, sealed with the deployment key, for `min(expires_in − 60 s,
//! max_age)` (55 minutes by default; a tenth of the lifetime as the margin for tokens shorter than
//! 10 minutes), so a token is replaced before it expires. One refresh per tenant at a time in a
//! process: concurrent callers wait for the refresh in flight instead of asking for their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wabaflow_schemas::genesys::TokenResponse;
use wabaflow_schemas::tenant::Tenant;

use crate::tenants::TenantRegistry;

/// Refresh this long before Genesys' `expires_in` ends (a tenth of the lifetime for short ones).
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the OAuth endpoint asked us to wait {after:?}")]
    Throttled { after: Duration },
    #[error("the OAuth endpoint is unavailable: {0}")]
    Unavailable(String),
    #[error("the OAuth client was refused: {0}")]
    Unauthorized(String),
}

pub struct GenesysTokens {
    http: reqwest::Client,
    tenants: TenantRegistry,
    max_age: Duration,
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl GenesysTokens {
    pub fn new(http: reqwest::Client, tenants: TenantRegistry, max_age: Duration) -> Self {
        Self {
            http,
            tenants,
            max_age,
            refreshing: Mutex::default(),
        }
    }

    /// A valid access token for the tenant's OAuth client, from the cache or freshly issued.
    pub async fn token(&self, tenant: &Tenant) -> Result<String, TokenError> {
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
            self.tenants
                .cache_secret(
                    &tenant.id,
                    &token_key(&tenant.id),
                    &issued.access_token,
                    ttl,
                )
                .await
                .map_err(|err| TokenError::Unavailable(err.to_string()))?;
        }
        Ok(issued.access_token)
    }

    /// Drops `rejected` from the cache (Genesys answered 401 with it), unless it was already
    /// replaced.
    pub async fn forget(&self, tenant: &Tenant, rejected: &str) {
        if self.cached(tenant).await.as_deref() == Some(rejected) {
            let _ = self.tenants.store().delete(&token_key(&tenant.id)).await;
        }
    }

    async fn cached(&self, tenant: &Tenant) -> Option<String> {
        self.tenants
            .cached_secret(&tenant.id, &token_key(&tenant.id))
            .await
    }

    async fn issue(&self, tenant: &Tenant) -> Result<TokenResponse, TokenError> {
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
            .map_err(|err| TokenError::Unavailable(format!("token request: {err}")))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|err| TokenError::Unavailable(format!("token answer: {err}")));
        }
        let body = response.text().await.unwrap_or_default();
        Err(match status.as_u16() {
            429 => TokenError::Throttled {
                after: Duration::from_secs(1),
            },
            400 | 401 | 403 => TokenError::Unauthorized(format!(
                "OAuth client {} refused ({status}): {}",
                tenant.genesys.client_id,
                body.chars().take(300).collect::<String>()
            )),
            _ => TokenError::Unavailable(format!("token endpoint answered {status}")),
        })
    }
}

fn token_key(tenant: &str) -> String {
    format!("tenant:{tenant}:oauth:token")
}
