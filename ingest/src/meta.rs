//! The Meta edge: `GET /webhooks/meta` answers the verification handshake, `POST /webhooks/meta`
//! takes WhatsApp Cloud API webhooks (WIRE.md §1).
//!
//! POST: body ≤ limit (413) → `X-Hub-Signature-256` over the raw bytes (401) → JSON (400) → split
//! into one event per message, status, error and other change → the raw body to
//! `webhooks.raw.v1`, the events to `wa.inbound.v1` keyed by conversation, changes that cannot be
//! routed to `wa.inbound.v1.dlq` → 200 once Kafka acked all of it (503 otherwise, and Meta
//! retries). A refused request produces nothing.

mod decode;
mod signature;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;
use subtle::ConstantTimeEq;
use tracing::debug;
use uuid::Uuid;
use wabaflow_pipeline::config::{IngestConfig, MetaEdgeConfig};
use wabaflow_pipeline::telemetry::metrics;
use wabaflow_pipeline::{Producer, Record};
use wabaflow_schemas::meta::{WHATSAPP_OBJECT, Webhook};
use wabaflow_schemas::topics::{WA_INBOUND, WEBHOOKS_RAW};

pub use decode::{Rejected, Split, split};
pub use signature::{SIGNATURE_HEADER, SignatureError, sign, verify};

use crate::http::{EdgeError, observe, publish, read_body};

const EDGE: &str = "meta";

/// Headers of a raw-body record in `webhooks.raw.v1`.
pub const SOURCE_HEADER: &str = "wabaflow-source";
pub const RECEIVED_AT_HEADER: &str = "wabaflow-received-at";
/// Header of every event and dead letter: the raw body it was split from.
pub const REQUEST_ID_HEADER: &str = "wabaflow-request-id";

#[derive(Clone)]
pub struct MetaEdge {
    inner: Arc<Inner>,
}

struct Inner {
    config: MetaEdgeConfig,
    body_limit: usize,
    producer: Producer,
    raw_topic: String,
    events_topic: String,
    dlq_topic: String,
}

impl MetaEdge {
    pub fn new(ingest: &IngestConfig, topic_prefix: &str, producer: Producer) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: ingest.meta.clone(),
                body_limit: ingest.body_limit_bytes,
                producer,
                raw_topic: WEBHOOKS_RAW.qualified(topic_prefix),
                events_topic: WA_INBOUND.qualified(topic_prefix),
                dlq_topic: WA_INBOUND.dlq(topic_prefix),
            }),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/webhooks/meta", get(verify_subscription).post(receive))
            .with_state(self.clone())
    }
}

/// Graph's handshake: `hub.mode=subscribe` and our verify token → 200 with `hub.challenge` as
/// plain text; anything else → 403.
async fn verify_subscription(
    State(edge): State<MetaEdge>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let expected = edge.inner.config.verify_token.expose().as_bytes();
    let mode_ok = query.get("hub.mode").is_some_and(|m| m == "subscribe");
    let token_ok = !expected.is_empty()
        && query
            .get("hub.verify_token")
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(expected)));
    let response = match (mode_ok && token_ok, query.get("hub.challenge")) {
        (true, Some(challenge)) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            challenge.clone(),
        )
            .into_response(),
        _ => EdgeError::new(
            StatusCode::FORBIDDEN,
            "verification_failed",
            "hub.mode or hub.verify_token is wrong",
        )
        .into_response(),
    };
    metrics()
        .edge_requests
        .with_label_values(&[EDGE, response.status().as_str()])
        .inc();
    response
}

async fn receive(
    State(edge): State<MetaEdge>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EdgeError> {
    let started = Instant::now();
    let result = edge.accept(&headers, body).await;
    observe(EDGE, started, &result);
    result
}

impl MetaEdge {
    async fn accept(&self, headers: &HeaderMap, body: Body) -> Result<Response, EdgeError> {
        let inner = &self.inner;
        let body = read_body(body, headers.get(header::CONTENT_LENGTH), inner.body_limit).await?;
        verify(
            inner.config.app_secret.expose().as_bytes(),
            headers.get(SIGNATURE_HEADER),
            &body,
        )
        .map_err(|err| EdgeError::new(StatusCode::UNAUTHORIZED, err.code(), err.to_string()))?;
        let webhook: Webhook = serde_json::from_slice(&body).map_err(|err| {
            EdgeError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("body is not a webhook: {err}"),
            )
        })?;
        if webhook.object != WHATSAPP_OBJECT {
            return Err(EdgeError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_object",
                format!(
                    "object is {:?}, expected {WHATSAPP_OBJECT:?}",
                    webhook.object
                ),
            ));
        }

        let request_id = Uuid::now_v7();
        let received_at = Utc::now();
        let Split { events, rejected } = split(&webhook, request_id, received_at);
        let request_header = request_id.to_string();

        let mut records = Vec::with_capacity(events.len() + rejected.len() + 1);
        let mut raw = Record::new(
            &inner.raw_topic,
            Some(request_header.clone()),
            body.to_vec(),
        )
        .header(SOURCE_HEADER, EDGE)
        .header(RECEIVED_AT_HEADER, received_at.to_rfc3339());
        if let Some(signature) = headers.get(SIGNATURE_HEADER) {
            raw = raw.header(SIGNATURE_HEADER, signature.as_bytes());
        }
        records.push(raw);
        for event in &events {
            records.push(
                Record::new(
                    &inner.events_topic,
                    Some(event.conversation_key.to_string()),
                    event.to_json(),
                )
                .header(REQUEST_ID_HEADER, request_header.as_str()),
            );
        }
        for dead in &rejected {
            records.push(
                Record::new(&inner.dlq_topic, dead.key.clone(), dead.payload.clone())
                    .header(REQUEST_ID_HEADER, request_header.as_str())
                    .header(
                        wabaflow_pipeline::runner::ERROR_HEADER,
                        dead.reason.as_str(),
                    )
                    .header(wabaflow_pipeline::runner::STAGE_HEADER, "ingest:meta"),
            );
        }
        publish(&inner.producer, &records).await?;

        let m = metrics();
        for event in &events {
            m.edge_events
                .with_label_values(&[EDGE, event.event.kind()])
                .inc();
        }
        m.edge_events
            .with_label_values(&[EDGE, "dead_letter"])
            .inc_by(rejected.len() as u64);
        debug!(%request_id, events = events.len(), dead_letters = rejected.len(), "webhook accepted");
        Ok(Json(json!({ "status": "accepted", "request_id": request_id, "events": events.len(), "dead_letters": rejected.len() }))
            .into_response())
    }
}
