//! Signet's HTTP server (axum).
//!
//! # Layout
//! - [`app`] builds the router from an [`AppState`]; [`run`] serves it on a listener until a
//!   shutdown future resolves (tests start it on port 0).
//! - [`ingest`]: `POST /api/v1/{signins,directory-audits,activities}`.
//! - [`graph`]: the Microsoft Graph-compatible reads under `/v1.0/auditLogs/...`.
//! - [`api`]: the native query API, event details, export, error codes.
//! - [`reports`]: timeline, top applications, summary, user pattern, authentication methods.
//! - [`error`]: the one mapping from errors to HTTP statuses and OData-shaped bodies.
//! - [`metrics`], [`csv_out`]: Prometheus text and formula-safe CSV.

pub mod api;
pub mod csv_out;
pub mod error;
pub mod graph;
pub mod import;
pub mod ingest;
pub mod metrics;
pub mod reports;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use signet_model::Cell;
use signet_store::Engine;

/// Server settings that handlers need.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Organisation every request acts for (until credentials carry one).
    pub org: String,
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { org: signet_model::OrgId::DEFAULT.to_string(), max_body_bytes: 64 << 20 }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: Arc<ServerConfig>,
    pub http_metrics: Arc<metrics::HttpMetrics>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, config: ServerConfig) -> AppState {
        AppState { engine, config: Arc::new(config), http_metrics: Arc::default() }
    }

    /// The organisation of the request. Today the configured one; with access control it
    /// comes from the verified credential, never from the request.
    pub fn org(&self) -> &str {
        &self.config.org
    }
}

/// The router.
pub fn app(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/", get(api::index))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .route("/api/v1/signins", post(ingest::signins).get(api::list_signins))
        .route("/api/v1/directory-audits", post(ingest::directory_audits).get(api::list_directory_audits))
        .route("/api/v1/activities", post(ingest::activities).get(api::list_activities))
        .route("/api/v1/import", post(import::import_file))
        .route("/api/v1/signins/export", get(api::export_signins))
        .route("/api/v1/signins/{id}", get(api::signin_detail))
        .route("/api/v1/directory-audits/{id}", get(api::directory_audit_detail))
        .route("/api/v1/activities/{id}", get(api::activity_detail))
        .route("/api/v1/errors", get(api::error_codes))
        .route("/api/v1/errors/{code}", get(api::error_code))
        .route("/api/v1/reports/signins/timeline", get(reports::timeline_route))
        .route("/api/v1/reports/apps/top", get(reports::top_apps_route))
        .route("/api/v1/reports/summary", get(reports::summary_route))
        .route("/api/v1/reports/users/{user}/pattern", get(reports::user_pattern_route))
        .route("/api/v1/reports/auth-methods", get(reports::auth_methods_route))
        .route("/v1.0/auditLogs/signIns", get(graph::list_signins))
        .route("/v1.0/auditLogs/signIns/{id}", get(graph::get_signin))
        .route("/v1.0/auditLogs/directoryAudits", get(graph::list_directory_audits))
        .route("/v1.0/auditLogs/directoryAudits/{id}", get(graph::get_directory_audit))
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await.into_response();
    state.http_metrics.observe(started.elapsed(), response.status().is_server_error());
    response
}

/// Serves the app on `listener` until `shutdown` resolves, then drains the write path.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let engine = state.engine.clone();
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await?;
    tokio::task::spawn_blocking(move || engine.shutdown()).await.map_err(std::io::Error::other)?;
    Ok(())
}

/// A cell as JSON: times as RFC 3339 UTC strings.
pub fn cell_json(cell: &Cell) -> serde_json::Value {
    match cell {
        Cell::Null => serde_json::Value::Null,
        Cell::Str(s) => s.as_str().into(),
        Cell::Int(i) => (*i).into(),
        Cell::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Cell::Bool(b) => (*b).into(),
        Cell::Time(t) => signet_model::time::format_time(*t).into(),
        Cell::List(items) => items.clone().into(),
    }
}

/// A cell as text (CSV, tables): lists joined with `; `.
pub fn cell_text(cell: &Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Str(s) => s.clone(),
        Cell::Int(i) => i.to_string(),
        Cell::Float(f) => f.to_string(),
        Cell::Bool(b) => b.to_string(),
        Cell::Time(t) => signet_model::time::format_time(*t),
        Cell::List(items) => items.join("; "),
    }
}
