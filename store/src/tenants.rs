//! Tenants: who owns a WhatsApp number and which Genesys integration its conversations go to.
//!
//! A tenant record is stored three times in the state store — `tenant:{id}`,
//! `phone:{phone_number_id}` and `integration:{integration_id}` — so that the edge, the mapping
//! stage and the Genesys sink each find it with one read (on Redis these keys *are* the cache).
//! Credentials (app secret, verify token, WhatsApp token, Genesys client secret and webhook
//! secret) are sealed with AES-256-GCM under the deployment's key before they are written; the
//! tenant id is the associated data, so a sealed blob copied onto another tenant does not open.
//! Opened tenants are kept in process for [`CACHE_TTL`], which bounds how long a rotated
//! credential takes to reach every node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use wabaflow_schemas::Secret;
pub use wabaflow_schemas::tenant::{GenesysIntegration, Tenant};

use crate::{StateStore, StoreError};

/// How long an opened tenant is served from process memory before it is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// The stored form: everything but the credentials in clear, the credentials sealed.
#[derive(Serialize, Deserialize)]
struct SealedTenant {
    id: String,
    phone_number_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    display_phone_number: Option<String>,
    genesys_region: String,
    integration_id: String,
    client_id: String,
    /// Base64 of the 96-bit nonce followed by the AES-256-GCM ciphertext of [`Credentials`].
    credentials: String,
}

#[derive(Serialize, Deserialize)]
struct Credentials {
    app_secret: Secret,
    verify_token: Secret,
    whatsapp_token: Secret,
    client_secret: Secret,
    webhook_secret: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored record does not open with this key (wrong key, or tampered).
    #[error("tenant {0}: credentials do not decrypt with the configured key")]
    Sealed(String),
    #[error("tenant record {0} is corrupt: {1}")]
    Corrupt(String, String),
    #[error("invalid tenant: {0}")]
    Invalid(String),
}

/// The AES-256 key credentials are sealed with (`tenancy.encryption_key`, 32 bytes, base64).
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl EncryptionKey {
    pub fn from_base64(text: &str) -> Result<Self, TenantError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|err| TenantError::Invalid(format!("encryption key is not base64: {err}")))?;
        let key: [u8; 32] = bytes.try_into().map_err(|bytes: Vec<u8>| {
            TenantError::Invalid(format!(
                "encryption key has {} bytes, AES-256 needs 32",
                bytes.len()
            ))
        })?;
        Ok(Self(key))
    }

    /// A fresh random key (the demo, tests).
    pub fn generate() -> Self {
        Self(rand::random())
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

/// Opened tenants by store key, with when they were read.
type TenantCache = HashMap<String, (Arc<Tenant>, Instant)>;

/// Reads and writes tenants; cheap to clone.
#[derive(Clone)]
pub struct TenantRegistry {
    store: Arc<dyn StateStore>,
    cipher: Aes256Gcm,
    cache: Arc<Mutex<TenantCache>>,
}

impl TenantRegistry {
    pub fn new(store: Arc<dyn StateStore>, key: &EncryptionKey) -> Self {
        Self {
            store,
            cipher: Aes256Gcm::new(&key.0.into()),
            cache: Arc::default(),
        }
    }

    /// Creates or replaces a tenant (and its phone and integration index entries).
    pub async fn put(&self, tenant: &Tenant) -> Result<(), TenantError> {
        for (what, value) in [
            ("id", &tenant.id),
            ("phone_number_id", &tenant.phone_number_id),
            ("genesys.integration_id", &tenant.genesys.integration_id),
        ] {
            if value.is_empty() || value.contains(char::is_whitespace) {
                return Err(TenantError::Invalid(format!(
                    "{what} must be non-empty, without spaces"
                )));
            }
        }
        let sealed = serde_json::to_vec(&self.seal(tenant)?)
            .map_err(|err| TenantError::Invalid(err.to_string()))?;
        for key in [
            tenant_key(&tenant.id),
            phone_key(&tenant.phone_number_id),
            integration_key(&tenant.genesys.integration_id),
        ] {
            self.store.put(&key, &sealed, None).await?;
        }
        self.cache_lock().clear();
        Ok(())
    }

    /// Drops this process's opened copy of tenant `id` (a credential of it was refused): the next
    /// lookup reads the stored record.
    pub fn forget(&self, id: &str) {
        self.cache_lock().retain(|_, (tenant, _)| tenant.id != id);
    }

    pub async fn get(&self, id: &str) -> Result<Option<Arc<Tenant>>, TenantError> {
        self.lookup(tenant_key(id)).await
    }

    /// The tenant owning a business number, by Meta's `phone_number_id`.
    pub async fn by_phone(
        &self,
        phone_number_id: &str,
    ) -> Result<Option<Arc<Tenant>>, TenantError> {
        self.lookup(phone_key(phone_number_id)).await
    }

    /// The tenant of a Genesys Open Messaging integration.
    pub async fn by_integration(
        &self,
        integration_id: &str,
    ) -> Result<Option<Arc<Tenant>>, TenantError> {
        self.lookup(integration_key(integration_id)).await
    }

    /// Tenant `id` if this process opened it less than [`CACHE_TTL`] ago: no store read, no wait.
    pub fn cached(&self, id: &str) -> Option<Arc<Tenant>> {
        self.fresh(&tenant_key(id))
    }

    fn fresh(&self, key: &str) -> Option<Arc<Tenant>> {
        self.cache_lock()
            .get(key)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(tenant, _)| tenant.clone())
    }

    async fn lookup(&self, key: String) -> Result<Option<Arc<Tenant>>, TenantError> {
        if let Some(tenant) = self.fresh(&key) {
            return Ok(Some(tenant));
        }
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let sealed: SealedTenant = serde_json::from_slice(&bytes)
            .map_err(|err| TenantError::Corrupt(key.clone(), err.to_string()))?;
        let tenant = Arc::new(self.open(sealed)?);
        self.cache_lock()
            .insert(key, (tenant.clone(), Instant::now()));
        Ok(Some(tenant))
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, TenantCache> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Seals any tenant-scoped secret (e.g. a cached OAuth token) with the deployment key,
    /// bound to `tenant_id`: base64 of nonce ‖ AES-256-GCM ciphertext.
    pub fn seal_value(&self, tenant_id: &str, plain: &[u8]) -> Result<String, TenantError> {
        let nonce: [u8; 12] = rand::random();
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: tenant_id.as_bytes(),
                },
            )
            .map_err(|_| TenantError::Sealed(tenant_id.to_owned()))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        Ok(BASE64.encode(blob))
    }

    /// Opens what [`TenantRegistry::seal_value`] sealed for `tenant_id`.
    pub fn open_value(&self, tenant_id: &str, sealed: &str) -> Result<Vec<u8>, TenantError> {
        let blob = BASE64
            .decode(sealed)
            .map_err(|err| TenantError::Corrupt(tenant_id.to_owned(), err.to_string()))?;
        if blob.len() < 12 {
            return Err(TenantError::Corrupt(
                tenant_id.to_owned(),
                "sealed value too short".into(),
            ));
        }
        let (nonce, ciphertext) = blob.split_at(12);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: tenant_id.as_bytes(),
                },
            )
            .map_err(|_| TenantError::Sealed(tenant_id.to_owned()))
    }

    /// A secret of `tenant_id` cached at `key`, opened; `None` when absent, expired or unreadable.
    pub async fn cached_secret(&self, tenant_id: &str, key: &str) -> Option<String> {
        let sealed = self.store.get(key).await.ok()??;
        let plain = self
            .open_value(tenant_id, &String::from_utf8_lossy(&sealed))
            .ok()?;
        String::from_utf8(plain).ok()
    }

    /// Caches a secret of `tenant_id` at `key`, sealed, for `ttl`.
    pub async fn cache_secret(
        &self,
        tenant_id: &str,
        key: &str,
        secret: &str,
        ttl: Duration,
    ) -> Result<(), TenantError> {
        let sealed = self.seal_value(tenant_id, secret.as_bytes())?;
        Ok(self.store.put(key, sealed.as_bytes(), Some(ttl)).await?)
    }

    /// The state store behind the registry (token caches live next to the tenants).
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    fn seal(&self, tenant: &Tenant) -> Result<SealedTenant, TenantError> {
        let credentials = Credentials {
            app_secret: tenant.app_secret.clone(),
            verify_token: tenant.verify_token.clone(),
            whatsapp_token: tenant.whatsapp_token.clone(),
            client_secret: tenant.genesys.client_secret.clone(),
            webhook_secret: tenant.genesys.webhook_secret.clone(),
        };
        let plain = serde_json::to_vec(&credentials)
            .map_err(|err| TenantError::Invalid(err.to_string()))?;
        let credentials = self.seal_value(&tenant.id, &plain)?;
        Ok(SealedTenant {
            id: tenant.id.clone(),
            phone_number_id: tenant.phone_number_id.clone(),
            display_phone_number: tenant.display_phone_number.clone(),
            genesys_region: tenant.genesys.region.clone(),
            integration_id: tenant.genesys.integration_id.clone(),
            client_id: tenant.genesys.client_id.clone(),
            credentials,
        })
    }

    fn open(&self, sealed: SealedTenant) -> Result<Tenant, TenantError> {
        let plain = self.open_value(&sealed.id, &sealed.credentials)?;
        let credentials: Credentials = serde_json::from_slice(&plain)
            .map_err(|err| TenantError::Corrupt(sealed.id.clone(), err.to_string()))?;
        Ok(Tenant {
            id: sealed.id,
            phone_number_id: sealed.phone_number_id,
            display_phone_number: sealed.display_phone_number,
            app_secret: credentials.app_secret,
            verify_token: credentials.verify_token,
            whatsapp_token: credentials.whatsapp_token,
            genesys: GenesysIntegration {
                region: sealed.genesys_region,
                integration_id: sealed.integration_id,
                client_id: sealed.client_id,
                client_secret: credentials.client_secret,
                webhook_secret: credentials.webhook_secret,
            },
        })
    }
}

// Keys are built on every lookup, cached ones included: `concat` copies the parts once, without
// `format!`'s machinery.
fn tenant_key(id: &str) -> String {
    ["tenant:", id].concat()
}

fn phone_key(phone_number_id: &str) -> String {
    ["phone:", phone_number_id].concat()
}

fn integration_key(integration_id: &str) -> String {
    ["integration:", integration_id].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    pub(crate) fn tenant() -> Tenant {
        Tenant {
            id: "acme".into(),
            phone_number_id: "106540352242922".into(),
            display_phone_number: Some("15550783881".into()),
            app_secret: Secret::new("app-s3cret"),
            verify_token: Secret::new("verify-me"),
            whatsapp_token: Secret::new("EAAG-token"),
            genesys: GenesysIntegration {
                region: "mypurecloud.ie".into(),
                integration_id: "9f2c1b7e".into(),
                client_id: "client".into(),
                client_secret: Secret::new("client-s3cret"),
                webhook_secret: Secret::new("hook-s3cret"),
            },
        }
    }

    #[tokio::test]
    async fn credentials_are_sealed_at_rest_and_found_by_every_index() {
        let store = Arc::new(MemoryStore::new());
        let registry = TenantRegistry::new(store.clone(), &EncryptionKey::generate());
        let acme = tenant();
        registry.put(&acme).await.expect("put");

        let stored = store
            .get("phone:106540352242922")
            .await
            .expect("get")
            .expect("indexed");
        let text = String::from_utf8(stored).expect("json");
        for secret in [
            "app-s3cret",
            "verify-me",
            "EAAG-token",
            "client-s3cret",
            "hook-s3cret",
        ] {
            assert!(!text.contains(secret), "{secret} stored in clear: {text}");
        }
        for found in [
            registry.get("acme").await,
            registry.by_phone("106540352242922").await,
            registry.by_integration("9f2c1b7e").await,
        ] {
            assert_eq!(*found.expect("lookup").expect("found"), acme);
        }
        assert!(registry.by_phone("999").await.expect("lookup").is_none());
    }

    #[tokio::test]
    async fn only_a_tenant_this_process_opened_is_cached_and_forgetting_drops_it() {
        let store = Arc::new(MemoryStore::new());
        let registry = TenantRegistry::new(store, &EncryptionKey::generate());
        registry.put(&tenant()).await.expect("put");
        assert!(registry.cached("acme").is_none(), "put opens nothing");

        // Opened through another index: the tenant's own key is what a lookup by id reads.
        registry.by_phone("106540352242922").await.expect("lookup");
        assert!(registry.cached("acme").is_none());
        registry.get("acme").await.expect("lookup");
        assert_eq!(*registry.cached("acme").expect("cached"), tenant());
        assert!(registry.cached("other").is_none());

        registry.forget("acme");
        assert!(registry.cached("acme").is_none());
    }

    #[tokio::test]
    async fn a_wrong_key_or_a_moved_blob_does_not_open() {
        let store = Arc::new(MemoryStore::new());
        TenantRegistry::new(store.clone(), &EncryptionKey::generate())
            .put(&tenant())
            .await
            .expect("put");
        let other = TenantRegistry::new(store.clone(), &EncryptionKey::generate());
        assert!(matches!(
            other.get("acme").await,
            Err(TenantError::Sealed(_))
        ));

        // The same key, but the sealed credentials pasted onto another tenant id.
        let key = EncryptionKey::generate();
        let registry = TenantRegistry::new(store.clone(), &key);
        registry.put(&tenant()).await.expect("put");
        let bytes = store
            .get("tenant:acme")
            .await
            .expect("get")
            .expect("stored");
        let moved = String::from_utf8(bytes)
            .expect("json")
            .replace("\"id\":\"acme\"", "\"id\":\"evil\"");
        store
            .put("tenant:evil", moved.as_bytes(), None)
            .await
            .expect("put");
        assert!(matches!(
            registry.get("evil").await,
            Err(TenantError::Sealed(_))
        ));
    }

    #[test]
    fn regions_become_hosts_and_urls_stay_urls() {
        let mut genesys = tenant().genesys;
        assert_eq!(genesys.login_url(), "https://login.mypurecloud.ie");
        assert_eq!(genesys.api_url(), "https://api.mypurecloud.ie");
        genesys.region = "http://127.0.0.1:8091/".into();
        assert_eq!(genesys.api_url(), "http://127.0.0.1:8091");
        assert!(EncryptionKey::from_base64("c2hvcnQ=").is_err());
        let key = EncryptionKey::generate();
        assert!(EncryptionKey::from_base64(&key.to_base64()).is_ok());
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }
}
