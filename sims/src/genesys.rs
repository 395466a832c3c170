//! The Genesys Cloud simulator: OAuth client credentials and the Open Messaging inbound API.
//!
//! - `POST /oauth/token` — `Authorization: Basic base64(client_id:client_secret)`, form body
//!   `grant_type=client_credentials` → `{access_token, token_type: "bearer", expires_in}`.
//! - `POST /api/v2/conversations/messages/{integrationId}/inbound/open/message` (and `/receipt`,
//!   `/event`) — a valid, unexpired Bearer token (401), a per-token rate limit (429 with
//!   `Retry-After`; Genesys documents 300 requests per minute per token), a known integration
//!   (404), and a body of the documented shape (400 naming the problem: e.g. neither `text` nor
//!   `content`). `?prefetchConversationId=true` adds the conversation id to the answer.
//! - Every attachment URL of an accepted message is downloaded, as Genesys does, and the result
//!   (status, SHA-256, size) is recorded with the message.
//!
//! - `GET /api/v2/downloads/{id}` — agent attachments ([`GenesysSim::add_download`]), Bearer
//!   required, like `api-downloads.{region}`.
//! - Any other path is 404 with Genesys' error body (`code: "not.found"`); a known path asked
//!   with another method is 405 with `Allow` and the same body (`code: "method.not.allowed"`).
//!
//! Faults on demand: [`GenesysSim::fail_next`] answers the next requests with 429 or 5xx.
//! [`agent`] is the agent side: signed outbound webhooks, retried like Genesys.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use wabaflow_schemas::genesys::{Content, InboundMessage, TokenResponse};

use crate::{bearer, serve};

pub mod agent;

#[derive(Debug, Clone)]
pub struct GenesysSimConfig {
    pub listen: SocketAddr,
    /// OAuth clients: (client id, client secret).
    pub clients: Vec<(String, String)>,
    /// Integrations that exist. Empty accepts any id.
    pub integrations: Vec<String>,
    /// `expires_in` of issued tokens.
    pub token_ttl: Duration,
    /// Requests per token per window (300 per minute, as Genesys documents).
    pub rate_limit: u32,
    pub rate_window: Duration,
    /// Download every attachment URL of accepted messages.
    pub download_attachments: bool,
}

impl Default for GenesysSimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8091)),
            clients: Vec::new(),
            integrations: Vec::new(),
            token_ttl: Duration::from_secs(86_400),
            rate_limit: 300,
            rate_window: Duration::from_secs(60),
            download_attachments: true,
        }
    }
}

/// An attachment download the simulator made.
#[derive(Debug, Clone, PartialEq)]
pub struct Download {
    pub url: String,
    pub status: u16,
    /// Hex SHA-256 of the downloaded bytes (when 200).
    pub sha256: Option<String>,
    pub size: usize,
}

/// A message the inbound endpoint accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub integration_id: String,
    pub genesys_id: String,
    pub conversation_id: String,
    pub message: InboundMessage,
    pub downloads: Vec<Download>,
    /// When the simulator accepted it (end-to-end latency in the benchmarks).
    pub at: Instant,
}

/// Counters of what the simulator answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenesysStats {
    pub tokens_issued: usize,
    pub rate_limited: usize,
    pub injected_failures: usize,
    pub rejected: usize,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, Instant>,
    windows: HashMap<String, (Instant, u32)>,
    conversations: HashMap<(String, String), String>,
    accepted: Vec<Accepted>,
    receipts: Vec<(String, Value)>,
    events: Vec<(String, Value)>,
    failures: Vec<StatusCode>,
    stats: GenesysStats,
    downloads: HashMap<String, (Bytes, String)>,
}

struct SimState {
    config: GenesysSimConfig,
    inner: Mutex<Inner>,
    changed: Notify,
    http: reqwest::Client,
}

/// A running Genesys simulator. Clones share state.
#[derive(Clone)]
pub struct GenesysSim {
    pub addr: SocketAddr,
    state: Arc<SimState>,
    _task: Arc<JoinHandle<()>>,
}

impl GenesysSim {
    pub async fn start(config: GenesysSimConfig) -> std::io::Result<Self> {
        let listen = config.listen;
        let state = Arc::new(SimState {
            config,
            inner: Mutex::default(),
            changed: Notify::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(std::io::Error::other)?,
        });
        let base = "/api/v2/conversations/messages/{integration_id}/inbound/open";
        let router = Router::new()
            .route("/oauth/token", post(token))
            .route(&format!("{base}/message"), post(inbound_message))
            .route(&format!("{base}/receipt"), post(inbound_receipt))
            .route(&format!("{base}/event"), post(inbound_event))
            .route("/api/v2/downloads/{id}", axum::routing::get(download))
            .method_not_allowed_fallback(
                |method: axum::http::Method, uri: axum::http::Uri| async move {
                    error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method.not.allowed",
                        &format!("{method} is not supported for {}", uri.path()),
                    )
                },
            )
            .fallback(|uri: axum::http::Uri| async move {
                error(
                    StatusCode::NOT_FOUND,
                    "not.found",
                    &format!("no resource at {}", uri.path()),
                )
            })
            .with_state(state.clone());
        let (addr, task) = serve(listen, router).await?;
        Ok(Self {
            addr,
            state,
            _task: Arc::new(task),
        })
    }

    /// `http://{addr}`: the "region" a tenant points at to use the simulator.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every accepted inbound message, in arrival order.
    pub fn messages(&self) -> Vec<Accepted> {
        self.state.lock().accepted.clone()
    }

    /// How many inbound messages were accepted (cheap: nothing is copied).
    pub fn message_count(&self) -> usize {
        self.state.lock().accepted.len()
    }

    /// Hosts a file an agent attached; returns its download URL (Bearer token required).
    pub fn add_download(&self, bytes: impl Into<Bytes>, mime: &str) -> String {
        let id = uuid::Uuid::now_v7().simple().to_string();
        self.state
            .lock()
            .downloads
            .insert(id.clone(), (bytes.into(), mime.to_owned()));
        format!("{}/api/v2/downloads/{id}", self.base_url())
    }

    /// Every receipt accepted, in arrival order: (integration id, body).
    pub fn receipts(&self) -> Vec<(String, Value)> {
        self.state.lock().receipts.clone()
    }

    /// Waits until `done(receipts)` holds, or `timeout`; returns the receipts.
    pub async fn wait_for_receipts(
        &self,
        timeout: Duration,
        done: impl Fn(&[(String, Value)]) -> bool,
    ) -> Vec<(String, Value)> {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = self.state.changed.notified();
            let receipts = self.receipts();
            if done(&receipts) || Instant::now() >= deadline {
                return receipts;
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }

    /// Revokes every issued token (an admin rotated the OAuth client): the next calls get 401.
    pub fn revoke_tokens(&self) {
        self.state.lock().tokens.clear();
    }

    pub fn stats(&self) -> GenesysStats {
        self.state.lock().stats.clone()
    }

    /// The next requests to the inbound endpoints answer these statuses, one each, in order
    /// (429 comes with `Retry-After: 1`).
    pub fn fail_next(&self, statuses: &[StatusCode]) {
        self.state.lock().failures = statuses.iter().rev().copied().collect();
    }

    /// Waits until at least `n` messages were accepted, or `timeout`; returns them.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Accepted> {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = self.state.changed.notified();
            if self.message_count() >= n || Instant::now() >= deadline {
                return self.messages();
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }
}

impl SimState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Auth, injected faults and the rate limit, in the order Genesys applies them.
    fn admit(&self, headers: &HeaderMap, integration_id: &str) -> Result<(), Box<Response>> {
        let mut inner = self.lock();
        let now = Instant::now();
        let token = bearer(headers).map(str::to_owned);
        let valid = token
            .as_ref()
            .and_then(|t| inner.tokens.get(t))
            .is_some_and(|expires| *expires > now);
        let Some(token) = token.filter(|_| valid) else {
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "authentication.required",
                "No authentication bearer token specified in authorization header.",
            )));
        };
        if let Some(status) = inner.failures.pop() {
            inner.stats.injected_failures += 1;
            let mut response = error(
                status,
                "injected.failure",
                "The simulator was told to fail.",
            );
            if status == StatusCode::TOO_MANY_REQUESTS {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            return Err(Box::new(response));
        }
        let window = self.config.rate_window;
        let (started, count) = inner.windows.entry(token).or_insert((now, 0));
        if now.duration_since(*started) >= window {
            *started = now;
            *count = 0;
        }
        if *count >= self.config.rate_limit {
            let retry_after = window
                .saturating_sub(now.duration_since(*started))
                .as_secs()
                + 1;
            inner.stats.rate_limited += 1;
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests",
                "Rate limit exceeded the maximum. Retry the request in [retryAfter] seconds",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            return Err(Box::new(response));
        }
        *count += 1;
        if !self.config.integrations.is_empty()
            && !self.config.integrations.iter().any(|i| i == integration_id)
        {
            return Err(Box::new(error(
                StatusCode::NOT_FOUND,
                "not.found",
                &format!("The integration {integration_id} was not found."),
            )));
        }
        Ok(())
    }

    fn reject(&self, message: &str) -> Response {
        self.lock().stats.rejected += 1;
        error(StatusCode::BAD_REQUEST, "bad.request", message)
    }
}

/// Genesys' error body.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "message": message,
            "code": code,
            "status": status.as_u16(),
            "contextId": uuid::Uuid::now_v7(),
            "details": [],
            "errors": [],
        })),
    )
        .into_response()
}

async fn token(State(state): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| BASE64.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let known = credentials
        .as_deref()
        .and_then(|c| c.split_once(':'))
        .is_some_and(|(id, secret)| {
            state
                .config
                .clients
                .iter()
                .any(|(cid, csecret)| cid == id && csecret == secret)
        });
    if !known {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client", "description": "client not found"})),
        )
            .into_response();
    }
    let form_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let grant = String::from_utf8_lossy(&body);
    if !form_ok
        || !grant
            .split('&')
            .any(|pair| pair == "grant_type=client_credentials")
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type", "description": "grant_type=client_credentials as a form is required"})),
        )
            .into_response();
    }
    let access_token = format!("sim-{}", uuid::Uuid::now_v7().simple());
    let mut inner = state.lock();
    inner.tokens.insert(
        access_token.clone(),
        Instant::now() + state.config.token_ttl,
    );
    inner.stats.tokens_issued += 1;
    axum::Json(TokenResponse {
        access_token,
        token_type: "bearer".into(),
        expires_in: state.config.token_ttl.as_secs(),
    })
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageQuery {
    #[serde(default)]
    prefetch_conversation_id: bool,
}

async fn inbound_message(
    State(state): State<Arc<SimState>>,
    Path(integration_id): Path<String>,
    Query(query): Query<MessageQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = state.admit(&headers, &integration_id) {
        return *response;
    }
    let message: InboundMessage = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(err) => return state.reject(&format!("The request could not be understood: {err}")),
    };
    if let Err(problem) = validate(&message) {
        return state.reject(&problem);
    }

    let mut downloads = Vec::new();
    if state.config.download_attachments {
        for url in message
            .content
            .iter()
            .filter_map(|c| c.attachment.as_ref()?.url.clone())
        {
            downloads.push(fetch(&state.http, url).await);
        }
    }

    let genesys_id = uuid::Uuid::now_v7().simple().to_string();
    let mut inner = state.lock();
    let conversation_id = inner
        .conversations
        .entry((integration_id.clone(), message.channel.from.id.clone()))
        .or_insert_with(|| uuid::Uuid::now_v7().to_string())
        .clone();
    let mut answer = serde_json::to_value(&message).unwrap_or_default();
    answer["id"] = json!(genesys_id);
    answer["direction"] = json!("Inbound");
    answer["type"] = json!("Text");
    answer["channel"]["platform"] = json!("Open");
    answer["channel"]["type"] = json!("Private");
    answer["channel"]["to"] = json!({ "id": integration_id });
    if query.prefetch_conversation_id {
        answer["conversationId"] = json!(conversation_id);
    }
    inner.accepted.push(Accepted {
        integration_id,
        genesys_id,
        conversation_id,
        message,
        downloads,
        at: Instant::now(),
    });
    drop(inner);
    state.changed.notify_waiters();
    axum::Json(answer).into_response()
}

/// The documented rules the schema alone does not express.
fn validate(message: &InboundMessage) -> Result<(), String> {
    let has_text = message.text.as_deref().is_some_and(|t| !t.is_empty());
    if !has_text && message.content.is_empty() {
        return Err(
            "should have required property 'content', should have required property '.text'".into(),
        );
    }
    if message.channel.from.id.trim().is_empty() {
        return Err("channel.from.id must not be empty".into());
    }
    if message
        .text
        .as_deref()
        .is_some_and(|t| t.chars().count() > 4_096)
    {
        return Err("text is longer than 4096 characters".into());
    }
    for (i, content) in message.content.iter().enumerate() {
        if content.content_type != Content::ATTACHMENT {
            return Err(format!(
                "content[{i}].contentType {:?} is not accepted on the inbound message endpoint",
                content.content_type
            ));
        }
        let Some(attachment) = &content.attachment else {
            return Err(format!("content[{i}].attachment is required"));
        };
        let url_ok = attachment
            .url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://") || u.starts_with("http://"));
        if !url_ok {
            return Err(format!(
                "content[{i}].attachment.url must be an absolute URL"
            ));
        }
    }
    Ok(())
}

async fn fetch(http: &reqwest::Client, url: String) -> Download {
    match http.get(&url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(bytes) if status == 200 => Download {
                    url,
                    status,
                    sha256: Some(hex::encode(Sha256::digest(&bytes))),
                    size: bytes.len(),
                },
                _ => Download {
                    url,
                    status,
                    sha256: None,
                    size: 0,
                },
            }
        }
        Err(_) => Download {
            url,
            status: 0,
            sha256: None,
            size: 0,
        },
    }
}

async fn download(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let inner = state.lock();
    let valid = bearer(&headers)
        .and_then(|t| inner.tokens.get(t))
        .is_some_and(|expires| *expires > Instant::now());
    if !valid {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication.required",
            "No authentication bearer token specified in authorization header.",
        );
    }
    match inner.downloads.get(&id) {
        Some((bytes, mime)) => {
            ([(header::CONTENT_TYPE, mime.clone())], bytes.clone()).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "not.found", "download not found"),
    }
}

async fn inbound_receipt(
    State(state): State<Arc<SimState>>,
    Path(integration_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = state.admit(&headers, &integration_id) {
        return *response;
    }
    let Ok(receipt) = serde_json::from_slice::<Value>(&body) else {
        return state.reject("The request could not be understood: not JSON");
    };
    const STATUSES: [&str; 6] = [
        "Sent",
        "Delivered",
        "Read",
        "Failed",
        "Published",
        "Removed",
    ];
    let status_ok = receipt["status"]
        .as_str()
        .is_some_and(|s| STATUSES.contains(&s));
    if receipt["id"].as_str().is_none_or(str::is_empty)
        || receipt["channel"]["to"]["id"].as_str().is_none()
        || !status_ok
    {
        return state.reject("a receipt needs id, channel.to.id and a status in Sent|Delivered|Read|Failed|Published|Removed");
    }
    state
        .lock()
        .receipts
        .push((integration_id, receipt.clone()));
    state.changed.notify_waiters();
    axum::Json(receipt).into_response()
}

async fn inbound_event(
    State(state): State<Arc<SimState>>,
    Path(integration_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = state.admit(&headers, &integration_id) {
        return *response;
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return state.reject("The request could not be understood: not JSON");
    };
    if event["events"].as_array().is_none_or(Vec::is_empty)
        || event["channel"]["from"]["id"].as_str().is_none()
    {
        return state.reject("an event needs channel.from.id and a non-empty events array");
    }
    state.lock().events.push((integration_id, event.clone()));
    state.changed.notify_waiters();
    axum::Json(event).into_response()
}
