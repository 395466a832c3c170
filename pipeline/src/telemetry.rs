//! Logs, Prometheus metrics and the per-process admin server (`/metrics`, `/healthz`, `/readyz`).
//!
//! Metric names follow `wabaflow_<noun>_<unit>_total`; labels are low-cardinality (a stage, an
//! edge, a reason, a status class — never a tenant, a number or a message id). docs/metrics.md
//! lists them.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{
    Encoder, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, TextEncoder,
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge_vec,
};
use serde_json::json;
use tracing_subscriber::EnvFilter;

/// Every metric wabaflow exports, registered once in the default registry.
pub struct Metrics {
    pub stage_consumed: IntCounterVec,
    pub stage_emitted: IntCounterVec,
    pub stage_discarded: IntCounterVec,
    pub stage_dead_lettered: IntCounterVec,
    pub stage_retries: IntCounterVec,
    pub stage_backpressure_waits: IntCounterVec,
    pub stage_backpressure: IntCounterVec,
    pub edge_requests: IntCounterVec,
    pub edge_request_seconds: HistogramVec,
    pub edge_events: IntCounterVec,
    pub edge_rejected: IntCounterVec,
    pub sink_requests: IntCounterVec,
    pub sink_request_seconds: HistogramVec,
    pub batch_flushes: IntCounterVec,
    pub batch_records: IntCounterVec,
    pub stage_lag: IntGaugeVec,
    pub wallet_negative_debits: IntCounter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    // Registration fails only on a duplicate name, which would be a bug in this list.
    let counter = |name: &str, help: &str, labels: &[&str]| {
        register_int_counter_vec!(name, help, labels).expect("metric names are unique")
    };
    Metrics {
        stage_consumed: counter(
            "wabaflow_stage_consumed_events_total",
            "Records a stage read.",
            &["stage"],
        ),
        stage_emitted: counter(
            "wabaflow_stage_emitted_events_total",
            "Events a stage produced.",
            &["stage"],
        ),
        stage_discarded: counter(
            "wabaflow_stage_discarded_events_total",
            "Events a stage dropped on purpose, by reason (duplicate, replayed, …).",
            &["stage", "reason"],
        ),
        stage_dead_lettered: counter(
            "wabaflow_stage_dead_lettered_events_total",
            "Records a stage sent to its input's dead-letter topic.",
            &["stage"],
        ),
        stage_retries: counter(
            "wabaflow_stage_retries_total",
            "Retries of an event after an external service failed.",
            &["stage"],
        ),
        stage_backpressure_waits: counter(
            "wabaflow_stage_backpressure_waits_total",
            "Times a stage stopped reading because max_in_flight events were open (offset not yet stored).",
            &["stage"],
        ),
        stage_backpressure: counter(
            "wabaflow_stage_producer_full_total",
            "Times a stage found the producer queue full.",
            &["stage"],
        ),
        edge_requests: counter(
            "wabaflow_edge_requests_total",
            "HTTP requests an edge answered, by status code.",
            &["edge", "status"],
        ),
        edge_request_seconds: register_histogram_vec!(
            "wabaflow_edge_request_duration_seconds",
            "Time from request to response at an edge, including the Kafka acks.",
            &["edge"],
            vec![
                0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0
            ]
        )
        .expect("metric names are unique"),
        edge_events: counter(
            "wabaflow_edge_events_total",
            "Events an edge made durable, by kind (message, status, error, change).",
            &["edge", "kind"],
        ),
        edge_rejected: counter(
            "wabaflow_edge_rejected_requests_total",
            "Requests an edge refused, by reason.",
            &["edge", "reason"],
        ),
        sink_requests: counter(
            "wabaflow_sink_requests_total",
            "Calls a sink made to an external service, by outcome (ok, throttled, unavailable, rejected, unauthorized).",
            &["sink", "outcome"],
        ),
        sink_request_seconds: register_histogram_vec!(
            "wabaflow_sink_request_duration_seconds",
            "Duration of a sink's calls to its external service.",
            &["sink"],
            vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
            ]
        )
        .expect("metric names are unique"),
        batch_flushes: counter(
            "wabaflow_batch_flushes_total",
            "Batches a batch sink wrote, by trigger (size, age, shutdown).",
            &["sink", "trigger"],
        ),
        batch_records: counter(
            "wabaflow_batch_records_total",
            "Records written by a batch sink.",
            &["sink"],
        ),
        wallet_negative_debits: register_int_counter!(
            "wabaflow_wallet_negative_debits_total",
            "Debits that left a tenant's prepaid wallet below zero (the debit is applied; sends are not blocked yet)."
        )
        .expect("metric names are unique"),
        stage_lag: register_int_gauge_vec!(
            "wabaflow_stage_lag_records",
            "Records behind the end of the input partitions this process consumes (librdkafka statistics, every 5 s).",
            &["stage"]
        )
        .expect("metric names are unique"),
    }
});

pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// The name of every metric this binary exports (whether or not it has samples yet): what
    /// dashboards and alerts may refer to.
    pub fn names(&self) -> Vec<String> {
        use prometheus::core::Collector;
        let counters = [
            &self.stage_consumed,
            &self.stage_emitted,
            &self.stage_discarded,
            &self.stage_dead_lettered,
            &self.stage_retries,
            &self.stage_backpressure_waits,
            &self.stage_backpressure,
            &self.edge_requests,
            &self.edge_events,
            &self.edge_rejected,
            &self.sink_requests,
            &self.batch_flushes,
            &self.batch_records,
        ];
        let histograms = [&self.edge_request_seconds, &self.sink_request_seconds];
        let gauges = [&self.stage_lag];
        let mut names: Vec<String> = counters
            .iter()
            .flat_map(|c| c.desc().into_iter().map(|d| d.fq_name.clone()))
            .chain(
                gauges
                    .iter()
                    .flat_map(|g| g.desc().into_iter().map(|d| d.fq_name.clone())),
            )
            .collect();
        names.extend(
            self.wallet_negative_debits
                .desc()
                .into_iter()
                .map(|d| d.fq_name.clone()),
        );
        for histogram in histograms {
            for desc in histogram.desc() {
                for suffix in ["", "_bucket", "_sum", "_count"] {
                    names.push(format!("{}{suffix}", desc.fq_name));
                }
            }
        }
        names
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (else `default_level`, e.g. `info`).
pub fn init_tracing(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Readiness of the components in this process. `/readyz` is 200 when every registered
/// component reports ready.
#[derive(Clone, Default)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl Health {
    pub fn set(&self, component: &str, ready: bool) {
        self.lock().insert(component.to_owned(), ready);
    }

    pub fn is_ready(&self) -> bool {
        let components = self.lock();
        !components.is_empty() && components.values().all(|ready| *ready)
    }

    fn snapshot(&self) -> BTreeMap<String, bool> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, bool>> {
        self.components
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub fn admin_router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

/// The admin server's `router` (with whatever was merged into it) answering a path it does not
/// serve with 404 and a method a path does not take with 405 (its `Allow` header kept), with the
/// JSON error body the edges use, instead of an empty one: a probe or scraper pointed at the wrong
/// path says so. Call it last: the method fallback reaches only the routes already there.
pub fn admin_refusing_the_rest(router: Router) -> Router {
    let refusal = |status: StatusCode, code: &str, message: String| {
        (
            status,
            Json(json!({ "error": { "code": code, "message": message } })),
        )
    };
    router
        .fallback(move |method: Method, uri: Uri| async move {
            refusal(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "the admin server has no {method} {} (it serves /metrics, /healthz, /readyz)",
                    uri.path()
                ),
            )
        })
        .method_not_allowed_fallback(move |method: Method, uri: Uri| async move {
            refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} does not take {method}", uri.path()),
            )
        })
}

async fn render_metrics() -> impl IntoResponse {
    LazyLock::force(&METRICS);
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&prometheus::gather(), &mut body) {
        Ok(()) => (
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        )
            .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    let status = if health.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": health.is_ready(), "components": health.snapshot() })),
    )
}
