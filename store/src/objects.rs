//! [`ObjectStore`]: where raw webhook bodies and media files live, with URLs third parties can
//! fetch for a limited time.
//!
//! Two implementations: [`S3Store`] (any S3 API — AWS, MinIO, s3s-fs — signed with SigV4 by
//! `rusty-s3`, requests sent with `reqwest`) and [`DirStore`] (a local directory for the demo; its
//! "presigned" URLs are HMAC-signed, expiring links served by [`DirStore::router`]). Bucket names
//! get the configured prefix, so test runs and deployments sharing a server stay apart.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use hmac::{Hmac, Mac};
use rusty_s3::actions::{ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The object service did not answer or failed (5xx): retry later.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// The object service refused the request (4xx): retrying the same request will not help.
    #[error("object store refused {operation}: {status} {body}")]
    Refused {
        operation: &'static str,
        status: u16,
        body: String,
    },
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
}

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Creates the bucket if it does not exist.
    async fn ensure_bucket(&self, bucket: &str) -> Result<(), ObjectError>;
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), ObjectError>;
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, ObjectError>;
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, ObjectError>;
    /// Keys under `prefix`, sorted.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, ObjectError>;
    /// A URL anyone may GET the object with until `ttl` from now.
    fn presign_get(&self, bucket: &str, key: &str, ttl: Duration) -> Result<String, ObjectError>;
    /// `s3` or `dir`.
    fn backend(&self) -> &'static str;
}

/// How to reach an S3 API.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: wabaflow_schemas::Secret,
    /// Path-style URLs (`http://host/bucket/key`): MinIO and s3s-fs need them.
    pub path_style: bool,
    pub bucket_prefix: String,
}

pub struct S3Store {
    endpoint: Url,
    settings: S3Settings,
    credentials: Credentials,
    http: reqwest::Client,
}

/// Signed requests are sent at once; this only needs to cover clock skew and a slow server.
const REQUEST_SIGNATURE_TTL: Duration = Duration::from_secs(300);

impl S3Store {
    pub fn new(settings: S3Settings) -> Result<Self, ObjectError> {
        let endpoint: Url = settings.endpoint.parse().map_err(|err| {
            ObjectError::Unavailable(format!("endpoint {:?}: {err}", settings.endpoint))
        })?;
        Ok(Self {
            credentials: Credentials::new(
                settings.access_key.clone(),
                settings.secret_key.expose().to_owned(),
            ),
            endpoint,
            settings,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|err| ObjectError::Unavailable(err.to_string()))?,
        })
    }

    fn bucket(&self, name: &str) -> Result<Bucket, ObjectError> {
        let style = if self.settings.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        Bucket::new(
            self.endpoint.clone(),
            style,
            format!("{}{name}", self.settings.bucket_prefix),
            self.settings.region.clone(),
        )
        .map_err(|err| ObjectError::InvalidKey(format!("bucket {name}: {err}")))
    }

    async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ObjectError> {
        let response = request
            .send()
            .await
            .map_err(|err| ObjectError::Unavailable(format!("{operation}: {err}")))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(ObjectError::Unavailable(format!(
                "{operation}: HTTP {status}"
            )));
        }
        Ok(response)
    }
}

async fn refused(operation: &'static str, response: reqwest::Response) -> ObjectError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    ObjectError::Refused {
        operation,
        status,
        body: body.chars().take(300).collect(),
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn ensure_bucket(&self, bucket: &str) -> Result<(), ObjectError> {
        let bucket = self.bucket(bucket)?;
        let url = bucket
            .head_bucket(Some(&self.credentials))
            .sign(REQUEST_SIGNATURE_TTL);
        let response = self.send("head bucket", self.http.head(url)).await?;
        if response.status().is_success() {
            return Ok(());
        }
        let url = bucket
            .create_bucket(&self.credentials)
            .sign(REQUEST_SIGNATURE_TTL);
        let response = self.send("create bucket", self.http.put(url)).await?;
        // 409: another node created it meanwhile.
        if response.status().is_success() || response.status().as_u16() == 409 {
            Ok(())
        } else {
            Err(refused("create bucket", response).await)
        }
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), ObjectError> {
        let bucket = self.bucket(bucket)?;
        let url = bucket
            .put_object(Some(&self.credentials), key)
            .sign(REQUEST_SIGNATURE_TTL);
        let request = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        let response = self.send("put object", request).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(refused("put object", response).await)
        }
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, ObjectError> {
        let bucket = self.bucket(bucket)?;
        let url = bucket
            .get_object(Some(&self.credentials), key)
            .sign(REQUEST_SIGNATURE_TTL);
        let response = self.send("get object", self.http.get(url)).await?;
        match response.status().as_u16() {
            200 => response
                .bytes()
                .await
                .map(Some)
                .map_err(|err| ObjectError::Unavailable(err.to_string())),
            404 => Ok(None),
            _ => Err(refused("get object", response).await),
        }
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, ObjectError> {
        let bucket = self.bucket(bucket)?;
        let url = bucket
            .head_object(Some(&self.credentials), key)
            .sign(REQUEST_SIGNATURE_TTL);
        let response = self.send("head object", self.http.head(url)).await?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(refused("head object", response).await),
        }
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let bucket = self.bucket(bucket)?;
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(prefix);
            if let Some(token) = &token {
                action.with_continuation_token(token.clone());
            }
            let url = action.sign(REQUEST_SIGNATURE_TTL);
            let response = self.send("list objects", self.http.get(url)).await?;
            if !response.status().is_success() {
                return Err(refused("list objects", response).await);
            }
            let text = response
                .text()
                .await
                .map_err(|err| ObjectError::Unavailable(err.to_string()))?;
            let page = ListObjectsV2::parse_response(&text)
                .map_err(|err| ObjectError::Unavailable(format!("list objects: {err}")))?;
            keys.extend(page.contents.into_iter().map(|c| c.key));
            match page.next_continuation_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn presign_get(&self, bucket: &str, key: &str, ttl: Duration) -> Result<String, ObjectError> {
        let bucket = self.bucket(bucket)?;
        Ok(bucket
            .get_object(Some(&self.credentials), key)
            .sign(ttl)
            .to_string())
    }

    fn backend(&self) -> &'static str {
        "s3"
    }
}

/// Objects as files under `root/{bucket}/{key}`; presigned URLs point at [`DirStore::router`]
/// mounted at `public_url` (set once the serving listener is bound).
pub struct DirStore {
    root: PathBuf,
    signing_key: [u8; 32],
    public_url: OnceLock<String>,
}

type HmacSha256 = Hmac<Sha256>;

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            root: root.into(),
            signing_key: rand::random(),
            public_url: OnceLock::new(),
        })
    }

    /// Where [`DirStore::router`] is reachable, e.g. `http://127.0.0.1:9100`. Set once.
    pub fn set_public_url(&self, url: &str) {
        let _ = self.public_url.set(url.trim_end_matches('/').to_owned());
    }

    fn path(&self, bucket: &str, key: &str) -> Result<PathBuf, ObjectError> {
        let relative = Path::new(bucket).join(key);
        // Keys come from our own code, but a key must never climb out of the root.
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
            || bucket.contains('/')
        {
            return Err(ObjectError::InvalidKey(format!("{bucket}/{key}")));
        }
        Ok(self.root.join(relative))
    }

    fn signature(&self, bucket: &str, key: &str, expires: i64) -> Vec<u8> {
        let mut mac =
            HmacSha256::new_from_slice(&self.signing_key).expect("HMAC takes keys of any length");
        mac.update(format!("{bucket}\n{key}\n{expires}").as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// `GET /objects/{bucket}/{key}?expires=…&signature=…` → the object, or 403 when the link is
    /// forged or expired, 404 when the object is gone.
    pub async fn serve_signed(
        &self,
        bucket: &str,
        key: &str,
        expires: i64,
        signature_hex: &str,
    ) -> Result<Option<Bytes>, &'static str> {
        let provided = hex::decode(signature_hex).map_err(|_| "malformed signature")?;
        let expected = self.signature(bucket, key, expires);
        if !bool::from(provided.ct_eq(&expected)) {
            return Err("invalid signature");
        }
        if Utc::now().timestamp() > expires {
            return Err("link expired");
        }
        self.get(bucket, key).await.map_err(|_| "unreadable object")
    }
}

fn io_error(err: std::io::Error) -> ObjectError {
    ObjectError::Unavailable(err.to_string())
}

#[async_trait]
impl ObjectStore for DirStore {
    async fn ensure_bucket(&self, bucket: &str) -> Result<(), ObjectError> {
        tokio::fs::create_dir_all(self.path(bucket, "")?)
            .await
            .map_err(io_error)
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        _content_type: &str,
    ) -> Result<(), ObjectError> {
        let path = self.path(bucket, key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io_error)?;
        }
        // Write then rename: a reader never sees half an object.
        let partial = path.with_extension("partial");
        tokio::fs::write(&partial, &body).await.map_err(io_error)?;
        tokio::fs::rename(&partial, &path).await.map_err(io_error)
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, ObjectError> {
        match tokio::fs::read(self.path(bucket, key)?).await {
            Ok(bytes) => Ok(Some(bytes.into())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error(err)),
        }
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, ObjectError> {
        tokio::fs::try_exists(self.path(bucket, key)?)
            .await
            .map_err(io_error)
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let base = self.path(bucket, "")?;
        let mut keys = Vec::new();
        let mut pending = vec![base.clone()];
        while let Some(dir) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(io_error(err)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(io_error)? {
                let path = entry.path();
                if entry.file_type().await.map_err(io_error)?.is_dir() {
                    pending.push(path);
                } else if let Ok(relative) = path.strip_prefix(&base) {
                    let key = relative.to_string_lossy().into_owned();
                    if key.starts_with(prefix) && !key.ends_with(".partial") {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn presign_get(&self, bucket: &str, key: &str, ttl: Duration) -> Result<String, ObjectError> {
        self.path(bucket, key)?;
        let base = self
            .public_url
            .get()
            .ok_or_else(|| ObjectError::Unavailable("object links are not served yet".into()))?;
        let expires = Utc::now().timestamp() + ttl.as_secs() as i64;
        let signature = hex::encode(self.signature(bucket, key, expires));
        Ok(format!(
            "{base}/objects/{bucket}/{key}?expires={expires}&signature={signature}"
        ))
    }

    fn backend(&self) -> &'static str {
        "dir"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dir_links_expire_and_cannot_be_forged() {
        let root = std::env::temp_dir().join(format!("wabaflow-objects-{}", rand::random::<u64>()));
        let store = DirStore::new(&root);
        store.set_public_url("http://127.0.0.1:1");
        store.ensure_bucket("media-inbound").await.expect("bucket");
        store
            .put(
                "media-inbound",
                "acme/a/b.jpg",
                Bytes::from_static(b"jpeg"),
                "image/jpeg",
            )
            .await
            .expect("put");
        assert_eq!(
            store.list("media-inbound", "acme/").await.expect("list"),
            vec!["acme/a/b.jpg".to_owned()]
        );
        let link = store
            .presign_get("media-inbound", "acme/a/b.jpg", Duration::from_secs(60))
            .expect("link");
        let query: std::collections::HashMap<String, String> = Url::parse(&link)
            .expect("url")
            .query_pairs()
            .into_owned()
            .collect();
        let expires: i64 = query["expires"].parse().expect("number");
        let served = store
            .serve_signed(
                "media-inbound",
                "acme/a/b.jpg",
                expires,
                &query["signature"],
            )
            .await;
        assert_eq!(served, Ok(Some(Bytes::from_static(b"jpeg"))));
        // Extending the expiry breaks the signature; an old link is refused.
        assert_eq!(
            store
                .serve_signed(
                    "media-inbound",
                    "acme/a/b.jpg",
                    expires + 3600,
                    &query["signature"]
                )
                .await,
            Err("invalid signature")
        );
        let stale = hex::encode(store.signature("media-inbound", "acme/a/b.jpg", 1));
        assert_eq!(
            store
                .serve_signed("media-inbound", "acme/a/b.jpg", 1, &stale)
                .await,
            Err("link expired")
        );
        assert!(store.path("media-inbound", "../../etc/passwd").is_err());
        let _ = std::fs::remove_dir_all(root);
    }
}
