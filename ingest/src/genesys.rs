//! The Genesys edge: `POST /webhooks/genesys/{tenant}` takes the Open Messaging outbound webhook —
//! an agent's reply (WIRE.md §3.3).
//!
//! body ≤ limit (413) → `X-Hub-Signature-256: sha256=<base64>` over the raw bytes with the
//! integration's secret, in constant time (401) → JSON of the normalized message (400) → the raw
//! body to `webhooks.raw.v1` (source `genesys`, archived to S3 `webhooks-outbound`) and the reply
//! to `genesys.outbound.v1`, keyed by the WhatsApp conversation `{phone_number_id}:{channel.to.id}`
//! → 200 once Kafka acked both (503 otherwise: Genesys retries 429 and 5xx up to 5 times, 5 s
//! apart, and drops anything else — so a 4xx is only for requests that can never succeed).
//! Typing events and receipts from Genesys carry nothing to send: accepted, archived, counted
//! (`wabaflow_edge_events_total{edge="genesys",kind="ignored"}`), not forwarded.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use uuid::Uuid;
use wabaflow_pipeline::telemetry::metrics;
use wabaflow_pipeline::{Producer, Record};
use wabaflow_schemas::genesys::OutboundMessage;
use wabaflow_schemas::tenant::Tenant;
use wabaflow_schemas::topics::{GENESYS_OUTBOUND, WEBHOOKS_RAW};
use wabaflow_schemas::{ConversationKey, Envelope, Event, Source};
use wabaflow_store::tenants::TenantRegistry;

use crate::http::{EdgeError, observe, publish, read_body};
use crate::meta::{RECEIVED_AT_HEADER, SIGNATURE_HEADER, SOURCE_HEADER, TENANT_HEADER};

const EDGE: &str = "genesys";

#[derive(Clone)]
pub struct GenesysEdge {
    inner: Arc<Inner>,
}

struct Inner {
    tenants: TenantRegistry,
    body_limit: usize,
    producer: Producer,
    raw_topic: Arc<str>,
    events_topic: Arc<str>,
}

impl GenesysEdge {
    pub fn new(
        tenants: TenantRegistry,
        body_limit: usize,
        topic_prefix: &str,
        producer: Producer,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                tenants,
                body_limit,
                producer,
                raw_topic: WEBHOOKS_RAW.qualified(topic_prefix).into(),
                events_topic: GENESYS_OUTBOUND.qualified(topic_prefix).into(),
            }),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/webhooks/genesys/{tenant}", post(receive))
            .with_state(self.clone())
    }
}

/// Checks `sha256=<base64 HMAC-SHA256(secret, body)>` in constant time.
pub fn verify(
    secret: &[u8],
    header: Option<&axum::http::HeaderValue>,
    body: &[u8],
) -> Result<(), EdgeError> {
    let refused = |code, message: &str| EdgeError::new(StatusCode::UNAUTHORIZED, code, message);
    let header = header
        .ok_or_else(|| refused("missing_signature", "X-Hub-Signature-256 header is missing"))?;
    let digest = header
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("sha256="))
        .and_then(|b64| BASE64.decode(b64).ok())
        .ok_or_else(|| {
            refused(
                "invalid_signature",
                "X-Hub-Signature-256 is not of the form sha256=<base64>",
            )
        })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&digest).map_err(|_| {
        refused(
            "invalid_signature",
            "X-Hub-Signature-256 does not match the body",
        )
    })
}

async fn receive(
    State(edge): State<GenesysEdge>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EdgeError> {
    let started = Instant::now();
    let result = edge.accept(&tenant, &headers, body).await;
    observe(EDGE, started, &result);
    result
}

impl GenesysEdge {
    async fn tenant(&self, id: &str) -> Result<Arc<Tenant>, EdgeError> {
        match self.inner.tenants.get(id).await {
            Ok(Some(tenant)) if !tenant.genesys.webhook_secret.is_empty() => Ok(tenant),
            Ok(_) => Err(EdgeError::new(
                StatusCode::NOT_FOUND,
                "unknown_tenant",
                format!("no tenant {id:?} receives Genesys webhooks here"),
            )),
            Err(err) => {
                tracing::warn!(tenant = id, error = %err, "tenant lookup failed");
                Err(EdgeError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "tenant_unavailable",
                    "the tenant registry cannot be read; retry later",
                ))
            }
        }
    }

    async fn accept(
        &self,
        tenant: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, EdgeError> {
        let inner = &self.inner;
        let tenant = self.tenant(tenant).await?;
        let body = read_body(body, headers.get(header::CONTENT_LENGTH), inner.body_limit).await?;
        verify(
            tenant.genesys.webhook_secret.expose().as_bytes(),
            headers.get(SIGNATURE_HEADER),
            &body,
        )?;
        let message: OutboundMessage =
            wabaflow_schemas::json::from_bytes(&body).map_err(|err| {
                EdgeError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("body is not an Open Messaging outbound message: {err}"),
                )
            })?;
        let integration_id = message
            .channel
            .id
            .clone()
            .unwrap_or_else(|| tenant.genesys.integration_id.clone());
        if integration_id != tenant.genesys.integration_id {
            return Err(EdgeError::new(
                StatusCode::BAD_REQUEST,
                "unknown_integration",
                "channel.id is not this tenant's integration",
            ));
        }

        let request_id = Uuid::now_v7();
        let received_at = Utc::now();
        let mut records = vec![
            Record::new(
                Arc::clone(&inner.raw_topic),
                Some(request_id.to_string()),
                body.to_vec(),
            )
            .header(SOURCE_HEADER, EDGE)
            .header(RECEIVED_AT_HEADER, received_at.to_rfc3339())
            .header(TENANT_HEADER, tenant.id.as_str()),
        ];
        let forwarded = matches!(message.kind.as_str(), "Text" | "Structured");
        if forwarded {
            let key =
                ConversationKey::conversation(&tenant.phone_number_id, &message.channel.to.id);
            let mut envelope = Envelope::new(
                Source::Genesys,
                key.clone(),
                None,
                received_at,
                None,
                Event::GenesysOutbound {
                    integration_id,
                    message: Box::new(message),
                    reply: None,
                    media: None,
                },
            );
            envelope.tenant = Some(tenant.id.clone());
            records.push(Record::event(Arc::clone(&inner.events_topic), &envelope));
        }
        publish(&inner.producer, &records).await?;
        metrics()
            .edge_events
            .with_label_values(&[EDGE, if forwarded { "reply" } else { "ignored" }])
            .inc();
        Ok(
            Json(json!({ "status": "accepted", "request_id": request_id, "forwarded": forwarded }))
                .into_response(),
        )
    }
}
