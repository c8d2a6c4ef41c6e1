//! The native API: list with every filter, event details with revisions, streamed export,
//! error codes, health and metrics.

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use signet_model::schema::{self, Column};
use signet_model::{catalog, Cell, LogKind};
use signet_query::{cursor, native, Expr, ListQuery};
use signet_store::{Engine, RecordRef};

use crate::access_log::AuditNote;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::graph::parse_query;
use crate::{cell_json, cell_text, csv_out, AppState};

pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "backend": state.engine.store().backend(),
        "logEnd": state.engine.log().end(),
        // What request bodies may be compressed with (clients such as `signet import --server`
        // compress only when the server lists it).
        "requestEncodings": crate::error::CONTENT_ENCODINGS,
    }))
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = crate::metrics::render(&state.http_metrics, state.engine.pipeline().metrics(), &state.engine);
    text.push_str(&state.forwarders.render_metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

pub async fn list_signins(state: State<AppState>, caller: Caller, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    list_for(state, caller.org().to_string(), LogKind::SignIn, raw, None).await
}

pub async fn list_directory_audits(
    state: State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    list_for(state, caller.org().to_string(), LogKind::DirectoryAudit, raw, None).await
}

pub async fn list_activities(state: State<AppState>, caller: Caller, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    list_for(state, caller.org().to_string(), LogKind::Activity, raw, None).await
}

/// Rows as objects keyed by API names.
pub fn rows_json(columns: &[&'static Column], rows: &[Vec<Cell>]) -> Vec<Value> {
    rows.iter()
        .map(|row| {
            let mut object = Map::new();
            for (column, cell) in columns.iter().zip(row) {
                object.insert(column.api.to_string(), cell_json(cell));
            }
            Value::Object(object)
        })
        .collect()
}

/// Default columns of the native list: what the Entra sign-in list shows, plus a few ids.
pub fn default_columns(kind: LogKind) -> Vec<&'static Column> {
    let names: &[&str] = match kind {
        LogKind::SignIn => &[
            "id",
            "event_time",
            "user_display_name",
            "user_principal_name",
            "app_display_name",
            "status",
            "error_code",
            "ip_address",
            "city",
            "country",
            "client_app_used",
            "risk_level_aggregated",
            "risk_detected",
            "authentication_requirement",
            "conditional_access_status",
            "correlation_id",
            "revision",
        ],
        LogKind::DirectoryAudit => &[
            "id",
            "event_time",
            "activity_display_name",
            "category",
            "result",
            "initiated_by_upn",
            "initiated_by_app_name",
            "target_names",
            "correlation_id",
            "revision",
        ],
        LogKind::Activity => &[
            "id",
            "event_time",
            "operation",
            "user_upn",
            "user_type",
            "entity_name",
            "item_type",
            "result_status",
            "client_ip",
            "revision",
        ],
    };
    names.iter().filter_map(|n| schema::find_column(kind, n)).collect()
}

/// One page of the native list for `org`, with the request's filters and, when given, a
/// filter the caller cannot lift (e.g. "own sign-ins only").
pub async fn list_for(
    State(state): State<AppState>,
    org: String,
    kind: LogKind,
    raw: Option<String>,
    confine: Option<Expr>,
) -> ApiResult<Response> {
    let params = parse_query(raw.as_deref());
    let mut request = native::request(kind, &params, signet_model::time::now_micros())?;
    if request.columns.is_empty() {
        request.columns = default_columns(kind);
    }
    if let Some(confine) = confine {
        request.filter = Expr::and(vec![request.filter, confine]);
    }
    let shown = request.columns.clone();
    // Every item says whether it came from the archive (a time range reaching past the hot
    // store), without it being a column to show.
    request.columns.push(&schema::ARCHIVED);
    let query = request.into_list_query(&org, kind);
    let engine = state.engine.clone();
    let (rows, query) =
        tokio::task::spawn_blocking(move || engine.store().list(&query).map(|rows| (rows, query))).await??;
    let more = rows.len() > query.limit;
    let page = &rows[..rows.len().min(query.limit)];
    let next = if more { page.last().and_then(|row| cursor_of(&query, row)) } else { None };
    let answer = Json(json!({
        "columns": shown.iter().map(|c| c.api).collect::<Vec<_>>(),
        "items": rows_json(&query.columns, page),
        "nextCursor": next,
    }));
    Ok(AuditNote::rows(page.len()).attach(answer))
}

fn cursor_of(query: &ListQuery, row: &[Cell]) -> Option<String> {
    let id_at = query.columns.iter().position(|c| c.name == "id")?;
    let time_at = query.columns.iter().position(|c| c.name == "event_time")?;
    match (&row[id_at], &row[time_at]) {
        (Cell::Str(id), Cell::Time(t)) => Some(cursor::encode(*t, id)),
        _ => None,
    }
}

pub async fn signin_detail(state: State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    detail(state, caller, LogKind::SignIn, id).await
}

pub async fn directory_audit_detail(
    state: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    detail(state, caller, LogKind::DirectoryAudit, id).await
}

pub async fn activity_detail(state: State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    detail(state, caller, LogKind::Activity, id).await
}

async fn detail(State(state): State<AppState>, caller: Caller, kind: LogKind, id: String) -> ApiResult<Response> {
    let org = caller.org().to_string();
    let engine = state.engine.clone();
    let lookup = id.clone();
    let detail = tokio::task::spawn_blocking(move || engine.detail(&org, kind, &lookup)).await??;
    let detail = detail.ok_or_else(|| ApiError::NotFound(format!("{kind} {id:?} does not exist")))?;
    let mut value = serde_json::to_value(&detail).map_err(|e| ApiError::Internal(e.to_string()))?;
    if kind == LogKind::SignIn {
        let code = detail
            .revisions
            .last()
            .and_then(|r| r.body.pointer("/status/errorCode"))
            .and_then(|c| c.as_i64().or_else(|| c.as_str().and_then(|s| s.parse().ok())));
        if let Some(info) = code.and_then(catalog::lookup) {
            value["errorCode"] = serde_json::to_value(info).unwrap_or_default();
        }
    }
    let note = AuditNote { rows: Some(detail.revisions.len() as u64), target: Some(id), detail: None };
    Ok(note.attach(Json(value)))
}

pub async fn error_codes() -> Json<Value> {
    Json(json!({ "value": catalog::all() }))
}

pub async fn error_code(Path(code): Path<String>) -> ApiResult<Json<Value>> {
    let number =
        catalog::parse_code(&code).ok_or_else(|| ApiError::BadRequest(format!("{code:?} is not an error code")))?;
    let info = catalog::lookup(number).ok_or_else(|| {
        ApiError::NotFound(format!(
            "AADSTS{number} is not in Signet's catalogue; see https://login.microsoftonline.com/error?code={number}"
        ))
    })?;
    Ok(Json(serde_json::to_value(info).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// The OpenAPI 3.0 description of the ingest API (for generating clients in other languages).
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Rows per store query while exporting.
const EXPORT_CHUNK: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
    Ndjson,
}

impl ExportFormat {
    pub fn parse(text: &str) -> ApiResult<ExportFormat> {
        match text.to_ascii_lowercase().as_str() {
            "csv" => Ok(ExportFormat::Csv),
            "json" => Ok(ExportFormat::Json),
            "ndjson" | "jsonl" => Ok(ExportFormat::Ndjson),
            other => Err(ApiError::BadRequest(format!("format {other:?}: expected csv, json or ndjson"))),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Json => "application/json",
            ExportFormat::Ndjson => "application/x-ndjson",
        }
    }
}

/// A validated export: what to query and how to write it.
#[derive(Clone, Debug)]
pub struct ExportPlan {
    pub format: ExportFormat,
    query: ListQuery,
    csv_columns: Vec<&'static Column>,
    /// NDJSON only: a signed head first, then every event with its inclusion proof.
    pub proofs: bool,
}

impl ExportPlan {
    /// Reads `rows` rows per store query instead of the default (tests use small pages to cross
    /// many page boundaries).
    pub fn with_page_rows(mut self, rows: usize) -> ExportPlan {
        self.query.limit = rows.max(1);
        self
    }
}

/// Validates an export request (format, filters, columns) before anything is streamed.
pub fn plan_export(org: &str, kind: LogKind, params: &[(String, String)], now: i64) -> ApiResult<ExportPlan> {
    let format = match params.iter().rev().find(|(k, _)| k == "format") {
        Some((_, f)) => ExportFormat::parse(f)?,
        None => ExportFormat::Csv,
    };
    let proofs = match params.iter().rev().find(|(k, _)| k == "proofs").map(|(_, v)| v.as_str()) {
        None | Some("false") => false,
        Some("true") if format == ExportFormat::Ndjson => true,
        Some("true") => return Err(ApiError::BadRequest("proofs=true needs format=ndjson".into())),
        Some(other) => return Err(ApiError::BadRequest(format!("proofs {other:?}: expected true or false"))),
    };
    let params: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "limit" | "cursor" | "format" | "proofs"))
        .cloned()
        .collect();
    let request = native::request(kind, &params, now)?;
    let mut query = request.into_list_query(org, kind);
    let csv_columns = if query.columns.is_empty() { default_columns(kind) } else { query.columns.clone() };
    query.columns = match format {
        ExportFormat::Csv => csv_columns.clone(),
        _ => signet_store::record_columns(kind),
    };
    query.limit = EXPORT_CHUNK;
    Ok(ExportPlan { format, query, csv_columns, proofs })
}

/// Writes everything an export plan matches, in chunks of about 256 KiB, to `sink` (which
/// returns false to stop, e.g. when the client went away). Returns the rows written.
pub fn run_export(engine: &Engine, plan: ExportPlan, sink: &mut dyn FnMut(String) -> bool) -> Result<u64, String> {
    let ExportPlan { format, query, csv_columns, proofs } = plan;
    let mut rows_written = 0u64;
    let mut out = String::new();
    let head = if proofs {
        let head = engine.ledger().current_head(&query.org).map_err(|e| e.to_string())?;
        let head = head.ok_or("no signed head yet: the organisation has no events")?;
        out.push_str(&serde_json::json!({ "head": head }).to_string());
        out.push('\n');
        Some(head)
    } else {
        None
    };
    match format {
        ExportFormat::Csv => csv_out::push_row(&mut out, csv_columns.iter().map(|c| c.api)),
        ExportFormat::Json => out.push('['),
        ExportFormat::Ndjson => {}
    }
    // Whether the client is still there (`sink` answered true every time).
    let mut open = true;
    let write_page = |page: Vec<Vec<Cell>>| -> Result<bool, String> {
        let (refs, mut records) = match format {
            ExportFormat::Csv => (Vec::new(), Vec::new().into_iter()),
            _ => {
                let refs = page
                    .iter()
                    .map(|row| RecordRef::from_row(row).ok_or_else(|| format!("unexpected row shape {row:?}")))
                    .collect::<Result<Vec<RecordRef>, String>>()?;
                let records = engine.records(&query.org, query.kind, &refs).map_err(|e| e.to_string())?;
                (refs, records.into_iter())
            }
        };
        for (i, row) in page.iter().enumerate() {
            match format {
                ExportFormat::Csv => {
                    for (i, cell) in row.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        match cell {
                            Cell::Str(s) => csv_out::push_cell(&mut out, s),
                            Cell::Null => {}
                            other => csv_out::push_cell(&mut out, &cell_text(other)),
                        }
                    }
                    out.push_str("\r\n");
                }
                _ => {
                    let record = records.next().ok_or("an export page without a record for every row")?;
                    let mut body = record.body.clone();
                    // A record sent pretty-printed keeps its line breaks in the log: one line per
                    // record in NDJSON, so those are written compactly (same JSON, no whitespace).
                    // (Proof bundles keep the exact bytes the proof covers; JSON strings cannot hold
                    // a raw line break, so only whitespace between tokens goes.)
                    if format == ExportFormat::Ndjson
                        && head.is_none()
                        && body.iter().any(|b| matches!(b, b'\n' | b'\r'))
                    {
                        body = compact_json(&body).into();
                    }
                    if format == ExportFormat::Json && rows_written > 0 {
                        out.push(',');
                    }
                    if let Some(head) = &head {
                        // Rows another node logged are proven by that node's trees and heads.
                        let bundle = match &refs[i].node {
                            None => engine.ledger().inclusion(&record, refs[i].ptr, head).map_err(|e| e.to_string())?,
                            Some(_) => None,
                        };
                        out.push_str("{\"event\":");
                        out.push_str(&String::from_utf8_lossy(&body));
                        out.push_str(",\"proof\":");
                        match bundle {
                            Some(bundle) => {
                                out.push_str(&serde_json::to_string(&bundle.proof).map_err(|e| e.to_string())?)
                            }
                            None => out.push_str("null"),
                        }
                        out.push('}');
                    } else {
                        out.push_str(&String::from_utf8_lossy(&body));
                    }
                    if format == ExportFormat::Ndjson {
                        out.push('\n');
                    }
                }
            }
            rows_written += 1;
            if out.len() > 256 * 1024 && !sink(std::mem::take(&mut out)) {
                open = false;
                return Ok(false);
            }
        }
        Ok(true)
    };
    signet_store::scan_with(engine.store().as_ref(), &query, query.limit, write_page, |e| e.to_string())?;
    if !open {
        return Ok(rows_written);
    }
    if format == ExportFormat::Json {
        out.push(']');
    }
    sink(out);
    Ok(rows_written)
}

/// JSON without the whitespace between tokens (strings untouched, key order kept).
fn compact_json(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            in_string = b == b'"';
            out.push(b);
        }
    }
    out
}

/// `GET /api/v1/signins/export?format=csv|json|ndjson&...filters`: everything that matches,
/// streamed in bounded memory, no row cap. CSV has the chosen (or default) columns; JSON and
/// NDJSON carry the complete records.
///
/// The access log records the export before the first byte leaves (with its filter) and again
/// when it ends (`SignInsExportCompleted`, with the number of rows written).
pub async fn export_signins(
    state: State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    export(state, caller, uri, raw, LogKind::SignIn).await
}

pub async fn export_directory_audits(
    state: State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    export(state, caller, uri, raw, LogKind::DirectoryAudit).await
}

pub async fn export_activities(
    state: State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    export(state, caller, uri, raw, LogKind::Activity).await
}

/// The plural name of a log kind in routes, file names and access-log actions.
pub fn kind_names(kind: LogKind) -> (&'static str, &'static str) {
    match kind {
        LogKind::SignIn => ("signins", "SignIns"),
        LogKind::DirectoryAudit => ("directory-audits", "DirectoryAudits"),
        LogKind::Activity => ("activities", "Activities"),
    }
}

async fn export(
    State(state): State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
    RawQuery(raw): RawQuery,
    kind: LogKind,
) -> ApiResult<Response> {
    let params = parse_query(raw.as_deref());
    let plan = plan_export(caller.org(), kind, &params, signet_model::time::now_micros())?;
    let (file_stem, action) = kind_names(kind);
    let format = plan.format;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let engine = state.engine.clone();
    let done_state = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut sink = |chunk: String| tx.blocking_send(Ok(Bytes::from(chunk))).is_ok();
        let (result, rows) = match run_export(&engine, plan, &mut sink) {
            Ok(rows) => ("Succeeded", Some(rows)),
            Err(err) => {
                // The status line is gone already: end the body with an error so the client
                // sees a failed transfer instead of a silently short file.
                tracing::error!(error = %err, "export failed midway");
                let _ = tx.blocking_send(Err(std::io::Error::other(err)));
                ("Failed", None)
            }
        };
        let note = AuditNote { rows, ..AuditNote::default() };
        let message = format!("export of {kind} events ended: {} rows", rows.map_or("?".into(), |r| r.to_string()));
        let action = format!("{action}ExportCompleted");
        let record = crate::access_log::access_event(&caller, &action, result, &uri, &note, &message);
        crate::access_log::store_detached(&done_state, caller.org(), &record);
    });
    let extension = match format {
        ExportFormat::Csv => "csv",
        ExportFormat::Json => "json",
        ExportFormat::Ndjson => "ndjson",
    };
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_stem}.{extension}\"")),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::compact_json;

    #[test]
    fn compact_json_drops_whitespace_between_tokens_only() {
        let pretty = b"{\n  \"a\" : \"x  y\\\" \\n z\",\r\n\t\"b\": [1, 2]\n}";
        let compact = compact_json(pretty);
        assert_eq!(std::str::from_utf8(&compact).unwrap(), "{\"a\":\"x  y\\\" \\n z\",\"b\":[1,2]}");
        let same: serde_json::Value = serde_json::from_slice(&compact).unwrap();
        assert_eq!(same, serde_json::from_slice::<serde_json::Value>(pretty).unwrap());
    }
}
