//! The Meta edge: `GET /webhooks/meta/{tenant}` answers the verification handshake,
//! `POST /webhooks/meta/{tenant}` takes WhatsApp Cloud API webhooks (WIRE.md §1).
//!
//! Each tenant has its own Meta app, hence its own callback URL, app secret and verify token; the
//! path names the tenant and its sealed credentials check the request. An unknown tenant is a 404.
//! `/webhooks/meta` (no tenant) uses `ingest.meta` from the config: a single-app deployment.
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
use axum::extract::{Path, Query, State};
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
use wabaflow_schemas::tenant::Tenant;
use wabaflow_schemas::topics::{WA_INBOUND, WEBHOOKS_RAW};
use wabaflow_store::tenants::TenantRegistry;

pub use decode::{Rejected, Split, split};
pub use signature::{SIGNATURE_HEADER, SignatureError, sign, verify};

use crate::http::{EdgeError, observe, publish, read_body};

const EDGE: &str = "meta";

/// Headers of a raw-body record in `webhooks.raw.v1`.
pub const SOURCE_HEADER: &str = "wabaflow-source";
pub const RECEIVED_AT_HEADER: &str = "wabaflow-received-at";
/// The tenant whose webhook URL received the body (absent on `/webhooks/meta`).
pub const TENANT_HEADER: &str = "wabaflow-tenant";
/// Header of every event and dead letter: the raw body it was split from.
pub const REQUEST_ID_HEADER: &str = "wabaflow-request-id";

#[derive(Clone)]
pub struct MetaEdge {
    inner: Arc<Inner>,
}

struct Inner {
    config: MetaEdgeConfig,
    tenants: Option<TenantRegistry>,
    body_limit: usize,
    producer: Producer,
    raw_topic: Arc<str>,
    events_topic: Arc<str>,
    dlq_topic: Arc<str>,
}

impl MetaEdge {
    /// `tenants` enables the per-tenant routes; without it only `/webhooks/meta` answers.
    pub fn new(
        ingest: &IngestConfig,
        topic_prefix: &str,
        producer: Producer,
        tenants: Option<TenantRegistry>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: ingest.meta.clone(),
                tenants,
                body_limit: ingest.body_limit_bytes,
                producer,
                raw_topic: WEBHOOKS_RAW.qualified(topic_prefix).into(),
                events_topic: WA_INBOUND.qualified(topic_prefix).into(),
                dlq_topic: WA_INBOUND.dlq(topic_prefix).into(),
            }),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/webhooks/meta", get(verify_subscription).post(receive))
            .route(
                "/webhooks/meta/{tenant}",
                get(verify_tenant_subscription).post(receive_for_tenant),
            )
            .with_state(self.clone())
    }
}

/// Graph's handshake: `hub.mode=subscribe` and our verify token → 200 with `hub.challenge` as
/// plain text; anything else → 403.
async fn verify_subscription(
    State(edge): State<MetaEdge>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    handshake(edge.inner.config.verify_token.expose().as_bytes(), &query)
}

async fn verify_tenant_subscription(
    State(edge): State<MetaEdge>,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match edge.tenant(&tenant).await {
        Ok(tenant) => handshake(tenant.verify_token.expose().as_bytes(), &query),
        Err(err) => {
            metrics()
                .edge_requests
                .with_label_values(&[EDGE, err.status.as_str()])
                .inc();
            err.into_response()
        }
    }
}

fn handshake(expected: &[u8], query: &HashMap<String, String>) -> Response {
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
    let result = edge.accept(&headers, body, None).await;
    observe(EDGE, started, &result);
    result
}

async fn receive_for_tenant(
    State(edge): State<MetaEdge>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EdgeError> {
    let started = Instant::now();
    let result = match edge.tenant(&tenant).await {
        Ok(tenant) => edge.accept(&headers, body, Some(&tenant)).await,
        Err(err) => Err(err),
    };
    observe(EDGE, started, &result);
    result
}

impl MetaEdge {
    async fn tenant(&self, id: &str) -> Result<Arc<Tenant>, EdgeError> {
        let unknown = || {
            EdgeError::new(
                StatusCode::NOT_FOUND,
                "unknown_tenant",
                format!("no tenant {id:?} receives webhooks here"),
            )
        };
        let registry = self.inner.tenants.as_ref().ok_or_else(unknown)?;
        match registry.get(id).await {
            Ok(Some(tenant)) => Ok(tenant),
            Ok(None) => Err(unknown()),
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
        headers: &HeaderMap,
        body: Body,
        tenant: Option<&Tenant>,
    ) -> Result<Response, EdgeError> {
        let inner = &self.inner;
        let body = read_body(body, headers.get(header::CONTENT_LENGTH), inner.body_limit).await?;
        let app_secret = tenant.map_or(&inner.config.app_secret, |t| &t.app_secret);
        verify(
            app_secret.expose().as_bytes(),
            headers.get(SIGNATURE_HEADER),
            &body,
        )
        .map_err(|err| EdgeError::new(StatusCode::UNAUTHORIZED, err.code(), err.to_string()))?;
        let webhook: Webhook = wabaflow_schemas::json::from_bytes(&body).map_err(|err| {
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
        let Split {
            mut events,
            rejected,
        } = split(&webhook, request_id, received_at);
        let tenant_id = tenant.map(|t| t.id.as_str());
        for event in &mut events {
            event.tenant = tenant_id.map(str::to_owned);
        }
        let request_header = request_id.to_string();

        let mut records = Vec::with_capacity(events.len() + rejected.len() + 1);
        let mut raw = Record::new(
            Arc::clone(&inner.raw_topic),
            Some(request_header.clone()),
            body.to_vec(),
        )
        .header(SOURCE_HEADER, EDGE)
        .header(RECEIVED_AT_HEADER, received_at.to_rfc3339());
        if let Some(signature) = headers.get(SIGNATURE_HEADER) {
            raw = raw.header(SIGNATURE_HEADER, signature.as_bytes());
        }
        if let Some(tenant) = tenant_id {
            raw = raw.header(TENANT_HEADER, tenant);
        }
        records.push(raw);
        for event in &events {
            records.push(
                Record::event(Arc::clone(&inner.events_topic), event)
                    .header(REQUEST_ID_HEADER, request_header.as_str()),
            );
        }
        for dead in &rejected {
            records.push(
                Record::new(
                    Arc::clone(&inner.dlq_topic),
                    dead.key.clone(),
                    dead.payload.clone(),
                )
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
