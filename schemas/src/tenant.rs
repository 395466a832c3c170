//! [`Tenant`]: who owns a WhatsApp business number and which Genesys integration its
//! conversations go to — as operators write it (config file, `wabaflow tenants put`), with
//! credentials in clear. The state store keeps it sealed (`wabaflow_store::tenants`).

use serde::{Deserialize, Serialize};

use crate::Secret;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    /// Meta's `phone_number_id` of the business number (route on it, not the display number).
    pub phone_number_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    /// Key of `X-Hub-Signature-256` on this tenant's Meta webhooks.
    pub app_secret: Secret,
    /// Echoed by Meta in the GET verification handshake.
    pub verify_token: Secret,
    /// System-user token for the Cloud API (media downloads, sends).
    pub whatsapp_token: Secret,
    pub genesys: GenesysIntegration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenesysIntegration {
    /// A region domain (`mypurecloud.ie` → `https://login.mypurecloud.ie`, `https://api.mypurecloud.ie`)
    /// or a base URL (`http://127.0.0.1:8091`, the simulator) used for both.
    pub region: String,
    pub integration_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// `outboundNotificationWebhookSignatureSecretToken` (the Genesys webhook's signing key).
    #[serde(default)]
    pub webhook_secret: Secret,
}

impl GenesysIntegration {
    /// Base URL of the OAuth login host.
    pub fn login_url(&self) -> String {
        self.host("login")
    }

    /// Base URL of the API host.
    pub fn api_url(&self) -> String {
        self.host("api")
    }

    fn host(&self, prefix: &str) -> String {
        let region = self.region.trim_end_matches('/');
        if region.starts_with("http://") || region.starts_with("https://") {
            region.to_owned()
        } else {
            format!("https://{prefix}.{region}")
        }
    }
}
