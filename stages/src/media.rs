//! `media`: copies attachments into our object store and attaches a URL the other side can fetch.
//!
//! Inbound (`media`), `wa.inbound.mapped.v1` → `wa.inbound.enriched.v1`: a customer's image,
//! video, audio (voice notes too), document or sticker, from Meta to bucket `media-inbound`, for
//! Genesys. Outbound (`media-outbound`), `genesys.outbound.mapped.v1` →
//! `genesys.outbound.enriched.v1`: an agent's attachment, fetched from its Genesys download URL
//! with the tenant's OAuth token, to bucket `media-outbound`
//! (`{tenant}/{phone_number_id}/{genesys message id}/{filename}`), for Meta to fetch by link.
//!
//! Meta's protocol (WIRE.md §2.3): `GET /{version}/{media-id}` with the tenant's token gives a
//! download URL, the MIME type, a **hex** SHA-256 and the size; the URL needs the same Bearer token
//! and lives about five minutes, so an expired one (403/404/410) is resolved again. The bytes
//! must match both the lookup's hash and the webhook's **base64** hash. They go to bucket
//! `media-inbound` under `{tenant}/{phone_number_id}/{media-id}{.ext}` — the same key on every
//! retry, so a replay overwrites instead of duplicating — and the event carries a presigned URL.
//!
//! A transient failure (Meta 5xx or 429, a network error, S3 unavailable) makes the event wait and
//! retry: a message never reaches the agent without its attachment. A media id Meta does not know
//! (deleted after its 30 days, or never valid) or bytes that keep failing the hash are
//! dead-lettered with the reason. Everything else passes through untouched.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use wabaflow_pipeline::config::{MediaConfig, MetaApiConfig};
use wabaflow_pipeline::{Context, Outcome, Stage, StageError};
use wabaflow_schemas::genesys::MediaType;
use wabaflow_schemas::meta::Message;
use wabaflow_schemas::tenant::Tenant;
use wabaflow_schemas::topics::{
    GENESYS_OUTBOUND_ENRICHED, GENESYS_OUTBOUND_MAPPED, Topic, WA_INBOUND_ENRICHED,
    WA_INBOUND_MAPPED,
};
use wabaflow_schemas::{Envelope, Event, StoredMedia};
use wabaflow_store::objects::{ObjectError, ObjectStore};
use wabaflow_store::records::Records;
use wabaflow_store::tenants::TenantRegistry;
use wabaflow_store::tokens::GenesysTokens;

use crate::map::{Direction, tenant_of};

/// The bucket customer media is stored in.
pub const MEDIA_INBOUND_BUCKET: &str = "media-inbound";
/// The bucket agents' attachments are stored in.
pub const MEDIA_OUTBOUND_BUCKET: &str = "media-outbound";

/// Download URLs resolved per event before giving up for this attempt (each expiry costs one).
const RESOLVE_ATTEMPTS: usize = 3;

pub struct MediaStage {
    tenants: TenantRegistry,
    records: Records,
    objects: Arc<dyn ObjectStore>,
    http: reqwest::Client,
    graph_url: String,
    api_version: String,
    config: MediaConfig,
    direction: Direction,
    genesys_tokens: Option<Arc<GenesysTokens>>,
}

/// `GET /{version}/{media-id}`.
#[derive(Deserialize)]
struct MediaLookup {
    url: String,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
}

enum Fetch {
    Bytes(Bytes),
    /// The download URL is no longer valid: resolve a new one.
    Expired,
}

impl MediaStage {
    pub fn new(
        tenants: TenantRegistry,
        records: Records,
        objects: Arc<dyn ObjectStore>,
        meta: &MetaApiConfig,
        config: &MediaConfig,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            tenants,
            records,
            objects,
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(meta.timeout_ms))
                .build()?,
            graph_url: meta.graph_url.trim_end_matches('/').to_owned(),
            api_version: meta.api_version.clone(),
            config: config.clone(),
            direction: Direction::Inbound,
            genesys_tokens: None,
        })
    }

    /// The outbound stage: agents' attachments from Genesys, fetched with `tokens`.
    pub fn outbound(
        tenants: TenantRegistry,
        records: Records,
        objects: Arc<dyn ObjectStore>,
        tokens: Arc<GenesysTokens>,
        meta: &MetaApiConfig,
        config: &MediaConfig,
    ) -> Result<Self, reqwest::Error> {
        let mut stage = Self::new(tenants, records, objects, meta, config)?;
        stage.direction = Direction::Outbound;
        stage.genesys_tokens = Some(tokens);
        Ok(stage)
    }

    /// Fetches the agent's attachment and stores it; `None` when the reply has none to fetch.
    async fn store_attachment(
        &self,
        envelope: &Envelope,
    ) -> Result<Option<StoredMedia>, StageError> {
        let Event::GenesysOutbound {
            message,
            reply: Some(reply),
            media: None,
            ..
        } = &envelope.event
        else {
            return Ok(None);
        };
        let Some(attachment) = message
            .content
            .iter()
            .find_map(|c| c.attachment.as_ref())
            .filter(|a| a.media_type != MediaType::Link)
        else {
            return Ok(None);
        };
        let url = attachment
            .url
            .as_deref()
            .ok_or_else(|| StageError::Invalid("attachment without a url".into()))?;
        let tenant = tenant_of(&self.tenants, envelope).await?;
        let tenant_id = tenant.id.as_str();
        let tokens = self
            .genesys_tokens
            .as_ref()
            .ok_or_else(|| StageError::Internal("outbound media stage without tokens".into()))?;
        let token = tokens
            .token(&tenant)
            .await
            .map_err(|err| StageError::Unavailable(err.to_string()))?;
        let response = self
            .http
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|err| StageError::Unavailable(format!("attachment download: {err}")))?;
        let status = response.status().as_u16();
        match status {
            200 => {}
            401 => {
                tokens.forget(&tenant, &token).await;
                return Err(StageError::Unavailable(
                    "Genesys refused the token for the attachment".into(),
                ));
            }
            404 | 410 => {
                return Err(StageError::Invalid(format!(
                    "attachment {url} is gone ({status})"
                )));
            }
            _ => {
                return Err(StageError::Unavailable(format!(
                    "attachment download answered {status}"
                )));
            }
        }
        let header_mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|err| StageError::Unavailable(format!("attachment download: {err}")))?;
        if bytes.len() as u64 > self.config.max_bytes {
            return Err(StageError::Invalid(format!(
                "attachment is larger than media.max_bytes ({} bytes)",
                self.config.max_bytes
            )));
        }
        let mime_type = attachment
            .mime
            .clone()
            .or(header_mime)
            .unwrap_or_else(|| "application/octet-stream".into());
        let filename = attachment
            .filename
            .clone()
            .filter(|f| !f.is_empty() && !f.contains('/'))
            .unwrap_or_else(|| format!("attachment{}", extension(&mime_type)));
        let key = format!(
            "{tenant_id}/{}/{}/{filename}",
            reply.phone_number_id, message.id
        );
        let sha256 = hex::encode(Sha256::digest(&bytes));
        self.keep(
            MEDIA_OUTBOUND_BUCKET,
            key,
            bytes,
            mime_type,
            sha256,
            Some(filename),
        )
        .await
        .map(Some)
    }

    async fn lookup(
        &self,
        token: &str,
        media_id: &str,
        phone_number_id: &str,
    ) -> Result<MediaLookup, StageError> {
        let url = format!("{}/{}/{media_id}", self.graph_url, self.api_version);
        let response = self
            .http
            .get(&url)
            .query(&[("phone_number_id", phone_number_id)])
            .bearer_auth(token)
            .send()
            .await
            .map_err(|err| StageError::Unavailable(format!("media lookup: {err}")))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|err| StageError::Unavailable(format!("media lookup answer: {err}")));
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let code = body["error"]["code"].as_i64().unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        Err(match (status.as_u16(), code) {
            // Unknown object: deleted, expired (media live 30 days) or never ours.
            (400 | 404, 100) => StageError::Invalid(format!(
                "media {media_id} cannot be resolved at Meta: {message}"
            )),
            // A rejected token is fixed by an operator; the message waits for it.
            (_, 190) | (401 | 403, _) => StageError::Unavailable(format!(
                "Meta refused the tenant's token for media {media_id} (code {code}): {message}"
            )),
            _ => StageError::Unavailable(format!(
                "media lookup answered {status} (code {code}): {message}"
            )),
        })
    }

    async fn download(&self, token: &str, url: &str) -> Result<Fetch, StageError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|err| StageError::Unavailable(format!("media download: {err}")))?;
        match response.status().as_u16() {
            200 => {}
            403 | 404 | 410 => return Ok(Fetch::Expired),
            status => {
                return Err(StageError::Unavailable(format!(
                    "media download answered {status}"
                )));
            }
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.config.max_bytes)
        {
            return Err(StageError::Invalid(format!(
                "media is larger than media.max_bytes ({} bytes)",
                self.config.max_bytes
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|err| StageError::Unavailable(format!("media download: {err}")))?;
        if bytes.len() as u64 > self.config.max_bytes {
            return Err(StageError::Invalid(format!(
                "media is larger than media.max_bytes ({} bytes)",
                self.config.max_bytes
            )));
        }
        Ok(Fetch::Bytes(bytes))
    }

    /// Resolves and downloads within the URL's lifetime, resolving again when it expired, and
    /// checks the bytes against both hashes Meta gave.
    async fn fetch(
        &self,
        token: &str,
        media_id: &str,
        phone_number_id: &str,
        webhook_sha256: Option<&str>,
    ) -> Result<(Bytes, MediaLookup, String), StageError> {
        let mut mismatch = None;
        for _ in 0..RESOLVE_ATTEMPTS {
            let lookup = self.lookup(token, media_id, phone_number_id).await?;
            let bytes = match self.download(token, &lookup.url).await? {
                Fetch::Bytes(bytes) => bytes,
                Fetch::Expired => continue,
            };
            let digest = Sha256::digest(&bytes);
            let hex_digest = hex::encode(digest);
            let lookup_ok = lookup
                .sha256
                .as_deref()
                .is_none_or(|h| h.eq_ignore_ascii_case(&hex_digest));
            let webhook_ok = webhook_sha256.is_none_or(|h| h == BASE64.encode(digest));
            if lookup_ok && webhook_ok {
                return Ok((bytes, lookup, hex_digest));
            }
            mismatch = Some(hex_digest);
        }
        Err(match mismatch {
            Some(got) => StageError::Invalid(format!(
                "media {media_id}: downloaded bytes (sha256 {got}) never matched Meta's hash"
            )),
            None => StageError::Unavailable(format!(
                "media {media_id}: the download URL expired {RESOLVE_ATTEMPTS} times in a row"
            )),
        })
    }

    async fn store(
        &self,
        tenant: &Tenant,
        phone_number_id: &str,
        message: &Message,
    ) -> Result<StoredMedia, StageError> {
        let media = message
            .media()
            .ok_or_else(|| StageError::Internal("store called without media".into()))?;
        let media_id = media
            .id
            .as_deref()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                StageError::Invalid(format!("{} message without a media id", message.kind))
            })?;
        let token = tenant.whatsapp_token.expose();
        let (bytes, lookup, sha256) = self
            .fetch(token, media_id, phone_number_id, media.sha256.as_deref())
            .await?;
        let mime_type = lookup
            .mime_type
            .or_else(|| media.mime_type.clone())
            .unwrap_or_else(|| "application/octet-stream".into());
        let key = format!(
            "{}/{phone_number_id}/{media_id}{}",
            tenant.id,
            extension(&mime_type)
        );
        self.keep(
            MEDIA_INBOUND_BUCKET,
            key,
            bytes,
            mime_type,
            sha256,
            media.filename.clone(),
        )
        .await
    }
}

impl MediaStage {
    /// Puts the file in `bucket` under `key` and describes it with a presigned URL valid for
    /// `media.url_ttl_secs`.
    async fn keep(
        &self,
        bucket: &str,
        key: String,
        bytes: Bytes,
        mime_type: String,
        sha256: String,
        filename: Option<String>,
    ) -> Result<StoredMedia, StageError> {
        let size = bytes.len() as u64;
        self.objects
            .put(bucket, &key, bytes, &mime_type)
            .await
            .map_err(object_error)?;
        let ttl = Duration::from_secs(self.config.url_ttl_secs);
        let url = self
            .objects
            .presign_get(bucket, &key, ttl)
            .map_err(object_error)?;
        Ok(StoredMedia {
            bucket: bucket.into(),
            key,
            url,
            url_expires_at: Utc::now() + ttl,
            mime_type,
            sha256,
            size,
            filename,
        })
    }
}

fn object_error(err: ObjectError) -> StageError {
    StageError::Unavailable(err.to_string())
}

/// A file extension for common WhatsApp media types (keys stay readable in the bucket).
fn extension(mime_type: &str) -> &'static str {
    let essence = mime_type.split(';').next().unwrap_or_default().trim();
    match essence {
        "image/jpeg" => ".jpg",
        "image/png" => ".png",
        "image/webp" => ".webp",
        "video/mp4" => ".mp4",
        "video/3gpp" => ".3gp",
        "audio/ogg" => ".ogg",
        "audio/mpeg" => ".mp3",
        "audio/mp4" => ".m4a",
        "audio/aac" => ".aac",
        "audio/amr" => ".amr",
        "application/pdf" => ".pdf",
        "text/plain" => ".txt",
        _ => "",
    }
}

#[async_trait]
impl Stage for MediaStage {
    type Input = Envelope;
    type Receipt = ();

    fn name(&self) -> &'static str {
        match self.direction {
            Direction::Inbound => "media",
            Direction::Outbound => "media-outbound",
        }
    }

    fn input(&self) -> Topic {
        match self.direction {
            Direction::Inbound => WA_INBOUND_MAPPED,
            Direction::Outbound => GENESYS_OUTBOUND_MAPPED,
        }
    }

    fn output(&self) -> Option<Topic> {
        Some(match self.direction {
            Direction::Inbound => WA_INBOUND_ENRICHED,
            Direction::Outbound => GENESYS_OUTBOUND_ENRICHED,
        })
    }

    async fn process(
        &self,
        mut envelope: Envelope,
        _cx: &Context,
    ) -> Result<Outcome<()>, StageError> {
        if self.direction == Direction::Outbound {
            if let Some(stored) = self.store_attachment(&envelope).await?
                && let Event::GenesysOutbound { media, .. } = &mut envelope.event
            {
                *media = Some(stored);
            }
            return Ok(Outcome::Emit(vec![envelope], ()));
        }
        let needs_media = matches!(
            &envelope.event,
            Event::MetaMessage { message, media: None, .. } if message.media().is_some()
        );
        if !needs_media {
            return Ok(Outcome::Emit(vec![envelope], ()));
        }
        let tenant = tenant_of(&self.tenants, &envelope).await?;
        if let Event::MetaMessage {
            phone_number_id,
            message,
            media,
            ..
        } = &mut envelope.event
            && message.media().is_some()
            && media.is_none()
        {
            let stored = self.store(&tenant, phone_number_id, message).await?;
            self.records
                .track(&message.id, &[("media_url", stored.url.as_str())])
                .await
                .map_err(|err| StageError::Unavailable(err.to_string()))?;
            *media = Some(stored);
        }
        Ok(Outcome::Emit(vec![envelope], ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_ignore_parameters() {
        assert_eq!(extension("audio/ogg; codecs=opus"), ".ogg");
        assert_eq!(extension("image/jpeg"), ".jpg");
        assert_eq!(extension("application/x-unknown"), "");
    }
}
