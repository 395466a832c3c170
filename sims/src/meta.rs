//! The Meta WhatsApp Cloud API simulator: media endpoints, sends, status webhooks.
//!
//! - `GET /{version}/{media-id}` — Bearer required (401, Graph code 190, otherwise); answers
//!   `{url, mime_type, sha256 (hex), file_size (integer), id, messaging_product}` like the real
//!   API (WIRE.md §2.3); an unknown id is Graph's code 100 / subcode 33.
//! - `GET /whatsapp_business/attachments/?mid=…&ext=…&hash=…` — the download URL: it needs the
//!   same Bearer token ("If you omit your token, the request will fail") and expires after
//!   [`MetaSimConfig::media_url_ttl`] (5 minutes, as Meta documents).
//! - `POST /{version}/{phone-number-id}/media` — multipart `file`, `type`, `messaging_product`.
//! - `POST /{version}/{phone-number-id}/messages` — the send, with Meta's limits and status
//!   webhooks ([`send`]); a template only as the business account holds it ([`templates`]:
//!   [`MetaSimConfig::templates`], [`MetaSim::add_template`]).
//! - Anything else is Graph's answer too, never a bare 404: an unknown path is 400 with code
//!   2500 ("Unknown path components"), a method a path does not take is code 100 / subcode 33.
//!
//! [`driver`] is the customer side: it builds webhooks of every message type and posts them,
//! signed, retrying like Meta.

pub mod driver;
pub mod send;
pub mod templates;
pub mod webhooks;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::task::JoinHandle;

use crate::{bearer, serve};
pub use templates::{Template, TemplateStatus};

#[derive(Debug, Clone)]
pub struct MetaSimConfig {
    pub listen: SocketAddr,
    /// Access tokens the Graph API accepts. Empty accepts any non-empty token.
    pub tokens: Vec<String>,
    /// Lifetime of a media download URL.
    pub media_url_ttl: Duration,
    /// Messages per second per business number before 130429 (Meta's default tier: 80).
    pub throughput_mps: f64,
    /// Pair rate limit: one message per `pair_interval` to the same recipient, bursts of
    /// `pair_burst`, before 131056.
    pub pair_interval: Duration,
    pub pair_burst: f64,
    /// Pause between the status webhooks of one message.
    pub status_delay: Duration,
    pub status_chaos: send::StatusChaos,
    /// The business number's own phone number, in status webhooks' metadata; a send to it is
    /// 131021 "Recipient cannot be sender".
    pub display_phone_number: String,
    /// The business account's message templates; a template send not among them is refused.
    pub templates: Vec<Template>,
}

impl Default for MetaSimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            tokens: Vec::new(),
            media_url_ttl: Duration::from_secs(5 * 60),
            throughput_mps: 80.0,
            pair_interval: Duration::from_secs(6),
            pair_burst: 3.0,
            status_delay: Duration::from_millis(20),
            status_chaos: send::StatusChaos::None,
            display_phone_number: "15550783881".into(),
            templates: Vec::new(),
        }
    }
}

/// A media object the simulator holds, as a test or the driver put it there.
#[derive(Debug, Clone)]
pub struct MediaRef {
    pub id: String,
    pub mime_type: String,
    /// Hex, as `GET /{media-id}` gives it.
    pub sha256_hex: String,
    /// Base64, as webhooks carry it.
    pub sha256_base64: String,
    pub size: usize,
}

struct MediaObject {
    bytes: Bytes,
    reference: MediaRef,
}

#[derive(Default)]
struct Inner {
    media: HashMap<String, MediaObject>,
    /// Completed downloads per media id.
    downloads: HashMap<String, usize>,
    /// URL lookups per media id.
    lookups: HashMap<String, usize>,
    /// Answer the next N media calls with 500 (a Graph outage).
    failures: usize,
    /// Hand out already-expired download URLs on the next N lookups.
    stale_urls: usize,
    sends: send::SendState,
}

/// A running Meta simulator. Clones share state.
#[derive(Clone)]
pub struct MetaSim {
    pub addr: SocketAddr,
    state: Arc<SimState>,
    _task: Arc<JoinHandle<()>>,
}

pub(crate) struct SimState {
    config: MetaSimConfig,
    url_key: [u8; 32],
    base_url: String,
    inner: Mutex<Inner>,
    changed: tokio::sync::Notify,
    http: reqwest::Client,
}

impl MetaSim {
    pub async fn start(config: MetaSimConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        drop(listener);
        let state = Arc::new(SimState {
            config: MetaSimConfig {
                listen: addr,
                ..config
            },
            url_key: rand::random(),
            base_url: format!("http://{addr}"),
            inner: Mutex::default(),
            changed: tokio::sync::Notify::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(std::io::Error::other)?,
        });
        {
            let mut inner = state.lock();
            for template in &state.config.templates {
                inner.sends.templates.add(template.clone());
            }
        }
        let router = Router::new()
            .route("/whatsapp_business/attachments/", get(download))
            .route("/{version}/{media_id}", get(media_url))
            .route("/{version}/{phone_number_id}/media", post(upload))
            .route("/{version}/{phone_number_id}/messages", post(send::send))
            .method_not_allowed_fallback(unsupported_method)
            .fallback(unknown_path)
            .with_state(state.clone());
        let (addr, task) = serve(addr, router).await?;
        Ok(Self {
            addr,
            state,
            _task: Arc::new(task),
        })
    }

    /// `http://{addr}`: the Graph base URL wabaflow is configured with.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// Stores a media file as if a customer had sent it; returns what a webhook refers to.
    pub fn add_media(&self, bytes: impl Into<Bytes>, mime_type: &str) -> MediaRef {
        self.state.add_media(bytes.into(), mime_type)
    }

    /// How many times the file behind `media_id` was downloaded / its URL looked up.
    pub fn downloads(&self, media_id: &str) -> usize {
        self.state
            .lock()
            .downloads
            .get(media_id)
            .copied()
            .unwrap_or(0)
    }

    pub fn lookups(&self, media_id: &str) -> usize {
        self.state
            .lock()
            .lookups
            .get(media_id)
            .copied()
            .unwrap_or(0)
    }

    /// The next `n` media calls (lookups, downloads, uploads) answer 500.
    pub fn fail_next(&self, n: usize) {
        self.state.lock().failures = n;
    }

    /// The next `n` sends are taken (and their status webhooks posted) but never answered: the
    /// answer is lost on its way back, as when Meta's edge or the network drops it. The sender
    /// sees only its own timeout.
    pub fn lose_next_answers(&self, n: usize) {
        self.state.lock().sends.lost_answers = n;
    }

    /// Where the status webhooks of `phone_number_id` go, signed with `app_secret`.
    pub fn subscribe(&self, phone_number_id: &str, callback_url: &str, app_secret: &str) {
        self.state.lock().sends.subscriptions.insert(
            phone_number_id.to_owned(),
            (callback_url.to_owned(), app_secret.to_owned()),
        );
    }

    /// Adds a template to the business account (or replaces the one of that name and language,
    /// e.g. to pause it).
    pub fn add_template(&self, template: Template) {
        self.state.lock().sends.templates.add(template);
    }

    /// `user` is not on WhatsApp: sends to it are accepted and then fail with 131026.
    pub fn not_on_whatsapp(&self, user: &str) {
        self.state
            .lock()
            .sends
            .not_on_whatsapp
            .insert(user.to_owned());
    }

    /// The customer wrote to the number: the 24-hour window opens (Meta knows; tests tell us).
    pub fn customer_wrote(&self, phone_number_id: &str, user: &str) {
        self.state
            .lock()
            .sends
            .last_inbound
            .insert((phone_number_id.to_owned(), user.to_owned()), Utc::now());
    }

    /// Every accepted send, in arrival order.
    pub fn sends(&self) -> Vec<send::AcceptedSend> {
        self.state.lock().sends.accepted.clone()
    }

    pub fn send_stats(&self) -> send::SendStats {
        self.state.lock().sends.stats.clone()
    }

    /// Waits until at least `n` sends were accepted, or `timeout`.
    pub async fn wait_for_sends(&self, n: usize, timeout: Duration) -> Vec<send::AcceptedSend> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.state.changed.notified();
            if self.send_stats().accepted >= n || tokio::time::Instant::now() >= deadline {
                return self.sends();
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }

    /// The next `n` lookups give URLs that have already expired, as if the download came more
    /// than five minutes after the lookup.
    pub fn expire_next_urls(&self, n: usize) {
        self.state.lock().stale_urls = n;
    }
}

impl SimState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add_media(&self, bytes: Bytes, mime_type: &str) -> MediaRef {
        let digest = Sha256::digest(&bytes);
        let reference = MediaRef {
            id: format!(
                "{}",
                rand::random::<u64>() % 9_000_000_000_000_000 + 1_000_000_000_000_000
            ),
            mime_type: mime_type.to_owned(),
            sha256_hex: hex::encode(digest),
            sha256_base64: BASE64.encode(digest),
            size: bytes.len(),
        };
        self.lock().media.insert(
            reference.id.clone(),
            MediaObject {
                bytes,
                reference: reference.clone(),
            },
        );
        reference
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        match bearer(headers) {
            None => false,
            Some(token) => {
                self.config.tokens.is_empty() || self.config.tokens.iter().any(|t| t == token)
            }
        }
    }

    fn take_failure(&self) -> bool {
        let mut inner = self.lock();
        if inner.failures > 0 {
            inner.failures -= 1;
            true
        } else {
            false
        }
    }

    fn url_hash(&self, media_id: &str, expires: i64) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.url_key).expect("any key length");
        mac.update(format!("{media_id}:{expires}").as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// A path Graph has no edge for: 400 with code 2500, as Graph answers it (not a bare 404).
async fn unknown_path(uri: axum::http::Uri) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        2500,
        None,
        &format!("Unknown path components: {}", uri.path()),
    )
}

/// A method a Graph node does not take: Graph's "unsupported request" (code 100, subcode 33).
async fn unsupported_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        100,
        Some(33),
        &format!(
            "Unsupported {} request. Object with ID '{}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.",
            method.as_str().to_lowercase(),
            uri.path().split('/').nth(2).unwrap_or_default()
        ),
    )
}

/// Graph's error envelope (WIRE.md §2.2).
pub fn graph_error(status: StatusCode, code: u32, subcode: Option<u32>, message: &str) -> Response {
    let mut error = json!({
        "message": message,
        "type": if matches!(code, 190 | 2500) { "OAuthException" } else { "GraphMethodException" },
        "code": code,
        "fbtrace_id": format!("A{}", rand::random::<u32>()),
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

pub(crate) fn invalid_token() -> Response {
    graph_error(
        StatusCode::UNAUTHORIZED,
        190,
        None,
        "Invalid OAuth access token - Cannot parse access token",
    )
}

fn outage() -> Response {
    graph_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        131000,
        None,
        "(#131000) Something went wrong",
    )
}

async fn media_url(
    State(state): State<Arc<SimState>>,
    Path((_version, media_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !state.authorized(&headers) {
        return invalid_token();
    }
    if state.take_failure() {
        return outage();
    }
    let mut inner = state.lock();
    let Some(object) = inner.media.get(&media_id) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            Some(33),
            &format!(
                "Unsupported get request. Object with ID '{media_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
            ),
        );
    };
    let reference = object.reference.clone();
    *inner.lookups.entry(media_id.clone()).or_default() += 1;
    let stale = inner.stale_urls > 0;
    inner.stale_urls = inner.stale_urls.saturating_sub(1);
    drop(inner);
    let expires = if stale {
        Utc::now().timestamp() - 1
    } else {
        Utc::now().timestamp() + state.config.media_url_ttl.as_secs() as i64
    };
    let hash = hex::encode(state.url_hash(&media_id, expires));
    axum::Json(json!({
        "messaging_product": "whatsapp",
        "url": format!("{}/whatsapp_business/attachments/?mid={media_id}&ext={expires}&hash={hash}", state.base_url),
        "mime_type": reference.mime_type,
        "sha256": reference.sha256_hex,
        "file_size": reference.size,
        "id": media_id,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct DownloadQuery {
    mid: String,
    ext: i64,
    hash: String,
}

async fn download(
    State(state): State<Arc<SimState>>,
    Query(query): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Response {
    if !state.authorized(&headers) {
        return invalid_token();
    }
    if state.take_failure() {
        return outage();
    }
    let expected = state.url_hash(&query.mid, query.ext);
    let provided = hex::decode(&query.hash).unwrap_or_default();
    if !bool::from(provided.ct_eq(&expected)) {
        return (StatusCode::FORBIDDEN, "URL signature mismatch").into_response();
    }
    if Utc::now().timestamp() > query.ext {
        return (StatusCode::NOT_FOUND, "URL signature expired").into_response();
    }
    let mut inner = state.lock();
    let Some(object) = inner.media.get(&query.mid) else {
        return (StatusCode::NOT_FOUND, "media deleted").into_response();
    };
    let response = (
        [(header::CONTENT_TYPE, object.reference.mime_type.clone())],
        object.bytes.clone(),
    )
        .into_response();
    *inner.downloads.entry(query.mid).or_default() += 1;
    response
}

async fn upload(
    State(state): State<Arc<SimState>>,
    Path((_version, _phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    if !state.authorized(&headers) {
        return invalid_token();
    }
    if state.take_failure() {
        return outage();
    }
    let mut fields: HashMap<String, Bytes> = HashMap::new();
    let mut file_type = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                if name == "file" {
                    file_type = field.content_type().map(str::to_owned);
                }
                match field.bytes().await {
                    Ok(bytes) => {
                        fields.insert(name, bytes);
                    }
                    Err(err) => return bad_param(&format!("unreadable multipart field: {err}")),
                }
            }
            Ok(None) => break,
            Err(err) => return bad_param(&format!("body is not multipart/form-data: {err}")),
        }
    }
    if fields.get("messaging_product").map(|v| v.as_ref()) != Some(b"whatsapp") {
        return bad_param("The parameter messaging_product is required.");
    }
    let Some(file) = fields.get("file").filter(|f| !f.is_empty()) else {
        return bad_param("The parameter file is required.");
    };
    let mime = fields
        .get("type")
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .or(file_type);
    let Some(mime) = mime.filter(|m| m.contains('/')) else {
        return bad_param("The parameter type is required.");
    };
    let reference = state.add_media(file.clone(), &mime);
    axum::Json(json!({ "id": reference.id })).into_response()
}

fn bad_param(message: &str) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        100,
        None,
        &format!("(#100) {message}"),
    )
}
