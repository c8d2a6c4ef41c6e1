//! `POST /api/v1/{signins,directory-audits,activities}`: a JSON object, a JSON array, a Graph
//! page `{"value": [...]}` or NDJSON. Valid records are stored (acknowledged only once they are
//! durable); invalid ones are reported by index, field and reason and nothing else is lost.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use signet_import::body::{self, BodyError, Framing};
use signet_model::{normalize, LogKind};
use tracing::warn;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// One rejected record.
#[derive(Debug, Serialize)]
pub struct RecordRejection {
    /// 0-based position of the record in the batch.
    pub index: usize,
    /// 1-based line of the record, for NDJSON bodies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct IngestResponse {
    pub accepted: usize,
    pub revisions: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub errors: Vec<RecordRejection>,
}

/// Reported rejections per response at most (the count is always exact).
const MAX_REPORTED_ERRORS: usize = 1000;

pub async fn signins(
    state: State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    ingest(state, LogKind::SignIn, headers, body).await
}

pub async fn directory_audits(
    state: State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    ingest(state, LogKind::DirectoryAudit, headers, body).await
}

pub async fn activities(
    state: State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    ingest(state, LogKind::Activity, headers, body).await
}

fn framing(headers: &HeaderMap) -> ApiResult<Framing> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/json" => Ok(Framing::Json),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/x-jsonlines" => {
            Ok(Framing::Ndjson)
        }
        "" => Err(ApiError::UnsupportedMediaType(
            "missing Content-Type: send application/json (object, array or {\"value\": [...]}) or application/x-ndjson"
                .into(),
        )),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {other} is not accepted: send application/json or application/x-ndjson"
        ))),
    }
}

async fn ingest(
    State(state): State<AppState>,
    kind: LogKind,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let framing = framing(&headers)?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: state.config.max_body_bytes },
        _ => ApiError::BadRequest(format!("could not read the request body: {rejection}")),
    })?;
    // Parsing and normalising is CPU work: keep it off the async workers.
    let (events, errors) = tokio::task::spawn_blocking(move || parse_batch(kind, framing, &body)).await??;
    let rejected = errors.len();
    if rejected > 0 {
        state.http_metrics.add_rejected(kind, rejected);
        warn!(kind = %kind, rejected, first_field = %errors[0].field, first_reason = %errors[0].reason, "ingest records rejected");
    }
    let submitted = events.len();
    let outcome = store_events(&state, events).await?;
    debug_assert_eq!(outcome.accepted + outcome.duplicates, submitted);
    let status = batch_status(rejected, submitted);
    let response = IngestResponse {
        accepted: outcome.accepted,
        revisions: outcome.revisions,
        duplicates: outcome.duplicates,
        rejected,
        errors: errors.into_iter().take(MAX_REPORTED_ERRORS).collect(),
    };
    Ok((status, Json(response)).into_response())
}

/// Stores events for the request's organisation; resolves once they are durable.
pub(crate) async fn store_events(
    state: &AppState,
    events: Vec<signet_model::Event>,
) -> ApiResult<signet_store::Outcome> {
    if events.is_empty() {
        return Ok(signet_store::Outcome::default());
    }
    let receiver = state.engine.pipeline().submit(state.org(), events)?;
    Ok(receiver.await.map_err(|_| ApiError::Store(signet_store::StoreError::ShuttingDown))??)
}

/// 200 when every record was stored, 207 when some were rejected, 400 when none was stored.
pub(crate) fn batch_status(rejected: usize, stored: usize) -> StatusCode {
    match (rejected, stored) {
        (0, _) => StatusCode::OK,
        (_, 0) => StatusCode::BAD_REQUEST,
        _ => StatusCode::MULTI_STATUS,
    }
}

/// Splits and normalises a body: (events, rejections).
pub fn parse_batch(
    kind: LogKind,
    framing: Framing,
    body: &[u8],
) -> ApiResult<(Vec<signet_model::Event>, Vec<RecordRejection>)> {
    let records = body::split(body, framing).map_err(|e| match e {
        BodyError::Empty => ApiError::BadRequest("empty body: send at least one record".into()),
        other => ApiError::BadRequest(other.to_string()),
    })?;
    let mut events = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for (index, record) in records.iter().enumerate() {
        match normalize(kind, record.bytes) {
            Ok(event) => events.push(event),
            Err(e) => errors.push(RecordRejection {
                index,
                line: (framing == Framing::Ndjson).then_some(record.number),
                field: e.field,
                reason: e.reason,
            }),
        }
    }
    Ok((events, errors))
}
