//! `POST /{version}/{phone-number-id}/messages`: the Cloud API send, as strict as Meta.
//!
//! - The body must decode as a send request of a known type with the fields that type needs
//!   (Graph code 100 otherwise); text ≤ 4096 characters; media by `id` (held by the simulator)
//!   or `link`, not both; templates need a name and a language, and are sent only as the
//!   business account holds them ([`templates`](super::templates): 132000, 132001, 132015, 132016).
//! - A message to the business number itself: 131021 "Recipient cannot be sender".
//! - Throughput per business number (80 messages/s by default): over it, 130429 "Rate limit hit".
//! - Per (number, recipient) pair, about one message per 6 s with a small burst: over it, 131056.
//! - A free-form message outside the 24-hour window is *accepted* (200 + wamid) and fails
//!   asynchronously with 131047, as Meta does; templates are not bound by the window.
//! - A message to a number that is not on WhatsApp ([`MetaSim::not_on_whatsapp`](super::MetaSim::not_on_whatsapp))
//!   is accepted too and fails asynchronously with 131026 "Message undeliverable", as a
//!   broadcast's undeliverable recipients do.
//! - Media sent by link is fetched at send time (Meta does); the bytes are kept for assertions.
//! - [`MetaSim::lose_next_answers`](super::MetaSim::lose_next_answers): a send is taken but its
//!   answer never comes (the caller times out), as when an answer is lost on the way back.
//! - Every accepted send produces signed status webhooks (sent with pricing, delivered, read) to
//!   the number's subscribed callback — with [`StatusChaos`] they come duplicated, out of order,
//!   or read without delivered.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use wabaflow_schemas::whatsapp::{MAX_TEXT_CHARS, SendBody, SendRequest};

use super::driver::signature;
use super::templates::Catalogue;
use super::webhooks::{escape_like_meta, wamid};
use super::{SimState, graph_error, invalid_token};

/// How status webhooks misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusChaos {
    /// sent, delivered, read — once each, in order.
    #[default]
    None,
    /// Some statuses twice, some out of order, some reads without a delivered.
    Realistic,
}

/// A send the simulator accepted.
#[derive(Debug, Clone)]
pub struct AcceptedSend {
    pub phone_number_id: String,
    pub wamid: String,
    pub request: SendRequest,
    /// For sends by link: HTTP status and hex SHA-256 of what Meta fetched.
    pub fetched: Option<(u16, Option<String>)>,
    /// When the simulator accepted it.
    pub at: Instant,
}

/// Counters of what the send endpoint answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendStats {
    pub accepted: usize,
    pub throughput_limited: usize,
    pub pair_limited: usize,
    pub rejected: usize,
    pub window_closed: usize,
}

/// A token bucket: `rate` per second, up to `burst` at once.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Default)]
pub(crate) struct SendState {
    pub(crate) numbers: HashMap<String, Bucket>,
    pub(crate) pairs: HashMap<(String, String), Bucket>,
    pub(crate) accepted: Vec<AcceptedSend>,
    pub(crate) stats: SendStats,
    /// Last customer message per (number, user): the 24-hour window.
    pub(crate) last_inbound: HashMap<(String, String), chrono::DateTime<Utc>>,
    /// Callback URL and app secret per business number.
    pub(crate) subscriptions: HashMap<String, (String, String)>,
    /// How many of the next accepted sends get no answer.
    pub(crate) lost_answers: usize,
    /// The business account's message templates.
    pub(crate) templates: Catalogue,
    /// Recipients that are not on WhatsApp.
    pub(crate) not_on_whatsapp: HashSet<String>,
}

pub(crate) async fn send(
    State(state): State<Arc<SimState>>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.authorized(&headers) {
        return invalid_token();
    }
    // Mark as read: `{"messaging_product":"whatsapp","status":"read","message_id":"wamid…"}`.
    if let Ok(read) = serde_json::from_slice::<Value>(&body)
        && read.get("status").is_some()
    {
        let valid = read["messaging_product"] == "whatsapp"
            && read["status"] == "read"
            && read["message_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("wamid."));
        return if valid {
            axum::Json(json!({"success": true})).into_response()
        } else {
            state.lock().sends.stats.rejected += 1;
            graph_error(
                StatusCode::BAD_REQUEST,
                131009,
                None,
                "(#131009) Parameter value is not valid: message_id",
            )
        };
    }
    let request: SendRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return reject(&state, &format!("(#100) Invalid parameter: {err}")),
    };
    if let Err(problem) = validate(&request) {
        return reject(&state, &problem);
    }
    if let SendBody::Template { template } = &request.body {
        let mut inner = state.lock();
        if let Err(refusal) = inner.sends.templates.check(template) {
            inner.sends.stats.rejected += 1;
            return graph_error_with_details(
                refusal.status,
                refusal.code,
                refusal.message,
                &refusal.details,
            );
        }
    }
    let Some(user) = request.to.clone().or_else(|| request.recipient.clone()) else {
        return reject(&state, "(#100) The parameter to is required.");
    };
    if user.trim_start_matches('+') == state.config.display_phone_number {
        state.lock().sends.stats.rejected += 1;
        return graph_error_with_details(
            StatusCode::BAD_REQUEST,
            131021,
            "(#131021) Recipient cannot be sender",
            "Sender and recipient phone number is the same.",
        );
    }

    let config = &state.config;
    let now = Instant::now();
    {
        let mut inner = state.lock();
        let sends = &mut inner.sends;
        let number = sends
            .numbers
            .entry(phone_number_id.clone())
            .or_insert_with(|| Bucket {
                tokens: config.throughput_mps,
                last: now,
            });
        if !number.take(config.throughput_mps, config.throughput_mps, now) {
            sends.stats.throughput_limited += 1;
            return graph_error_with_details(
                StatusCode::TOO_MANY_REQUESTS,
                130429,
                "(#130429) Rate limit hit",
                "Cloud API message throughput has been reached.",
            );
        }
        let rate = 1.0 / config.pair_interval.as_secs_f64().max(1e-6);
        let pair = sends
            .pairs
            .entry((phone_number_id.clone(), user.clone()))
            .or_insert_with(|| Bucket {
                tokens: config.pair_burst,
                last: now,
            });
        if !pair.take(rate, config.pair_burst, now) {
            sends.stats.pair_limited += 1;
            return graph_error_with_details(
                StatusCode::BAD_REQUEST,
                131056,
                "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
            );
        }
    }

    if let Some(media) = request.body.media()
        && let Some(id) = &media.id
        && !state.lock().media.contains_key(id)
    {
        return reject(
            &state,
            &format!("(#100) Invalid parameter: media id {id} does not exist"),
        );
    }
    let fetched = match request.body.media().and_then(|m| m.link.clone()) {
        Some(link) => Some(fetch(&state.http, &link).await),
        None => None,
    };

    let window_open = state
        .lock()
        .sends
        .last_inbound
        .get(&(phone_number_id.clone(), user.clone()))
        .is_some_and(|at| Utc::now() - *at < chrono::Duration::hours(24));
    let id = wamid();
    let undeliverable = state.lock().sends.not_on_whatsapp.contains(&user);
    let failure = if undeliverable {
        Some(json!({
            "code": 131026, "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
        }))
    } else if !request.body.is_template() && !window_open {
        state.lock().sends.stats.window_closed += 1;
        Some(json!({
            "code": 131047, "title": "Re-engagement message",
            "message": "Re-engagement message",
            "error_data": {"details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
        }))
    } else if let Some((status, _)) = &fetched
        && *status != 200
    {
        Some(json!({
            "code": 131053, "title": "Media upload error",
            "message": "Media upload error",
            "error_data": {"details": format!("Downloading the media from the link failed with HTTP {status}.")}
        }))
    } else {
        None
    };
    let answer_lost = {
        let mut inner = state.lock();
        let lost = inner.sends.lost_answers > 0;
        inner.sends.lost_answers = inner.sends.lost_answers.saturating_sub(1);
        inner.sends.stats.accepted += 1;
        inner.sends.accepted.push(AcceptedSend {
            phone_number_id: phone_number_id.clone(),
            wamid: id.clone(),
            request: request.clone(),
            fetched,
            at: Instant::now(),
        });
        lost
    };
    state.changed.notify_waiters();
    let statuses = state.clone();
    let callback_data = request.biz_opaque_callback_data.clone();
    let (phone, wamid_for_statuses) = (phone_number_id.clone(), id.clone());
    tokio::spawn(async move {
        emit_statuses(
            &statuses,
            &phone,
            &user,
            &wamid_for_statuses,
            callback_data,
            failure,
            request.body.is_template(),
        )
        .await;
    });
    if answer_lost {
        // The message is taken; the caller waits until it gives up (and drops the connection,
        // which drops this handler).
        std::future::pending::<()>().await;
    }
    axum::Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": request.to.clone().unwrap_or_default(), "wa_id": request.to.unwrap_or_default()}],
        "messages": [{"id": id, "message_status": "accepted"}],
    }))
    .into_response()
}

fn reject(state: &SimState, message: &str) -> Response {
    state.lock().sends.stats.rejected += 1;
    graph_error(StatusCode::BAD_REQUEST, 100, None, message)
}

fn graph_error_with_details(
    status: StatusCode,
    code: u32,
    message: &str,
    details: &str,
) -> Response {
    (
        status,
        axum::Json(json!({"error": {
            "message": message, "type": "OAuthException", "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": format!("A{}", rand::random::<u32>()),
        }})),
    )
        .into_response()
}

/// What Meta refuses synchronously with code 100 / 131008 / 131009.
fn validate(request: &SendRequest) -> Result<(), String> {
    if request.messaging_product != "whatsapp" {
        return Err("(#100) The parameter messaging_product must be whatsapp.".into());
    }
    if request.to.as_deref().is_none_or(str::is_empty)
        && request.recipient.as_deref().is_none_or(str::is_empty)
    {
        return Err("(#100) The parameter to is required.".into());
    }
    match &request.body {
        SendBody::Text { text } => {
            if text.body.trim().is_empty() {
                return Err("(#100) Param text['body'] is required and must not be empty.".into());
            }
            if text.body.chars().count() > MAX_TEXT_CHARS {
                return Err(format!(
                    "(#100) Param text['body'] must be at most {MAX_TEXT_CHARS} characters long."
                ));
            }
        }
        SendBody::Template { template } => {
            if template.name.is_empty() || template.language.code.is_empty() {
                return Err("(#100) Template name and language.code are required.".into());
            }
        }
        SendBody::Interactive { interactive } => {
            let kind = interactive["type"].as_str().unwrap_or_default();
            if interactive["body"]["text"]
                .as_str()
                .is_none_or(str::is_empty)
                && kind != "product"
            {
                return Err("(#100) Param interactive['body']['text'] is required.".into());
            }
            if kind == "button" {
                let buttons = interactive["action"]["buttons"]
                    .as_array()
                    .map_or(0, Vec::len);
                if !(1..=3).contains(&buttons) {
                    return Err(
                        "(#131009) Parameter value is not valid: between 1 and 3 reply buttons"
                            .into(),
                    );
                }
            }
        }
        SendBody::Reaction { reaction } => {
            if reaction["message_id"]
                .as_str()
                .is_none_or(|id| !id.starts_with("wamid."))
            {
                return Err("(#100) Param reaction['message_id'] is required.".into());
            }
        }
        body => {
            if let Some(media) = body.media() {
                match (&media.id, &media.link) {
                    (Some(_), Some(_)) => {
                        return Err("(#100) Use either id or link, not both.".into());
                    }
                    (None, None) => {
                        return Err(format!(
                            "(#100) Param {}['id'] or {}['link'] is required.",
                            body.kind(),
                            body.kind()
                        ));
                    }
                    _ => {}
                }
                if media.caption.is_some()
                    && matches!(body, SendBody::Audio { .. } | SendBody::Sticker { .. })
                {
                    return Err(format!(
                        "(#100) Param {} does not take a caption.",
                        body.kind()
                    ));
                }
            }
        }
    }
    Ok(())
}

async fn fetch(http: &reqwest::Client, link: &str) -> (u16, Option<String>) {
    match http.get(link).send().await {
        Ok(response) if response.status() == 200 => match response.bytes().await {
            Ok(bytes) => (200, Some(hex::encode(Sha256::digest(&bytes)))),
            Err(_) => (0, None),
        },
        Ok(response) => (response.status().as_u16(), None),
        Err(_) => (0, None),
    }
}

/// Posts the statuses of one accepted send to the number's callback, signed.
async fn emit_statuses(
    state: &SimState,
    phone_number_id: &str,
    user: &str,
    wamid: &str,
    callback_data: Option<String>,
    failure: Option<Value>,
    template: bool,
) {
    let Some((url, secret)) = state
        .lock()
        .sends
        .subscriptions
        .get(phone_number_id)
        .cloned()
    else {
        return;
    };
    let pricing = json!({
        "billable": template, "pricing_model": "PMP",
        "type": if template { "regular" } else { "free_customer_service" },
        "category": if template { "utility" } else { "service" },
    });
    let status = |name: &str, extra: Option<(&str, Value)>| {
        let mut status = json!({
            "id": wamid, "status": name, "timestamp": Utc::now().timestamp().to_string(),
            "recipient_id": user,
        });
        if let Some(data) = &callback_data {
            status["biz_opaque_callback_data"] = json!(data);
        }
        if let Some((key, value)) = extra {
            status[key] = value;
        }
        status
    };
    let mut sequence: Vec<Value> = match failure {
        Some(error) => vec![status("failed", Some(("errors", json!([error]))))],
        None => vec![
            status("sent", Some(("pricing", pricing))),
            status("delivered", None),
            status("read", None),
        ],
    };
    if state.config.status_chaos == StatusChaos::Realistic && sequence.len() == 3 {
        match rand::random::<u8>() % 4 {
            0 => sequence.swap(1, 2),                     // read before delivered
            1 => sequence.insert(2, sequence[1].clone()), // delivered twice
            2 => {
                sequence.remove(1); // read without delivered
            }
            _ => sequence.reverse(), // everything backwards
        }
    }
    let display = state.config.display_phone_number.clone();
    for status in sequence {
        let body = escape_like_meta(&json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "sim-waba", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": display, "phone_number_id": phone_number_id},
                "statuses": [status],
            }}]}],
        }));
        post_with_retries(&state.http, &url, &secret, &body).await;
        tokio::time::sleep(state.config.status_delay).await;
    }
}

async fn post_with_retries(http: &reqwest::Client, url: &str, secret: &str, body: &[u8]) {
    let mut delay = Duration::from_millis(50);
    for _ in 0..20 {
        let sent = http
            .post(url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature(secret, body))
            .body(body.to_vec())
            .send()
            .await;
        if sent.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
