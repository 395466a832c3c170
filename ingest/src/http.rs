//! What every edge shares: JSON errors (also for paths and methods no edge serves), the bounded
//! body read, the durable-then-200 publish and request metrics.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tracing::warn;
use wabaflow_pipeline::telemetry::metrics;
use wabaflow_pipeline::{ProduceError, Producer, Record};

/// A refusal: status, a stable machine-readable code and a sentence for people.
#[derive(Debug)]
pub struct EdgeError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl EdgeError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for EdgeError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": { "code": self.code, "message": self.message } }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Meta and Genesys retry on their own schedule; this is a hint for other callers.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// `router` (every edge merged) answering a path no edge serves with 404 and a method its path
/// does not take with 405 (its `Allow` header kept), each with the JSON error body every other
/// refusal has instead of an empty one, and counted under the edge `none` (a callback URL
/// configured with a typo shows there). Call it once the edges are merged: the method fallback
/// reaches only the routes already there.
pub fn refusing_the_rest(router: Router) -> Router {
    router
        .fallback(|method: Method, uri: Uri| async move {
            unrouted(EdgeError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("nothing here answers {method} {}", uri.path()),
            ))
        })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            unrouted(EdgeError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} does not take {method}", uri.path()),
            ))
        })
}

fn unrouted(refusal: EdgeError) -> EdgeError {
    let m = metrics();
    m.edge_rejected
        .with_label_values(&["none", refusal.code])
        .inc();
    m.edge_requests
        .with_label_values(&["none", refusal.status.as_str()])
        .inc();
    refusal
}

/// Reads the whole body, refusing more than `limit` bytes with 413 (before reading, when the
/// client announced its length).
pub async fn read_body(
    body: Body,
    content_length: Option<&HeaderValue>,
    limit: usize,
) -> Result<Bytes, EdgeError> {
    let too_large = || {
        EdgeError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body exceeds {limit} bytes"),
        )
    };
    let announced = content_length
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

/// Writes `records` and answers only once the broker acked every one: 503 when it cannot.
pub async fn publish(producer: &Producer, records: &[Record]) -> Result<(), EdgeError> {
    producer
        .send_all(records)
        .await
        .map(|_| ())
        .map_err(|err| match err {
            ProduceError::Backpressure => EdgeError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the event log is saturated; retry later",
            ),
            err => {
                warn!(error = %err, "events not acknowledged by kafka");
                EdgeError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "log_unavailable",
                    "the event log did not acknowledge the events; retry later",
                )
            }
        })
}

/// Records the outcome of one request.
pub fn observe(edge: &'static str, started: Instant, result: &Result<Response, EdgeError>) {
    let m = metrics();
    let status = match result {
        Ok(response) => response.status(),
        Err(err) => {
            m.edge_rejected.with_label_values(&[edge, err.code]).inc();
            err.status
        }
    };
    m.edge_requests
        .with_label_values(&[edge, status.as_str()])
        .inc();
    m.edge_request_seconds
        .with_label_values(&[edge])
        .observe(started.elapsed().as_secs_f64());
}
