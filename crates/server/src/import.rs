//! `POST /api/v1/import?format=auto|json|csv`: a whole export file (Graph JSON, Log Analytics,
//! Azure diagnostics, portal CSV, Okta System Log), converted server-side so that the source
//! records are kept beside the Graph-shaped ones. Used by `signet import --server`. And
//! `/api/v1/okta/event-hook`: Okta's event hooks (its verification, then the events it pushes).

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use signet_import::{import_bytes, Format};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::graph::parse_query;
use crate::ingest::WritePolicy;
use crate::AppState;

pub async fn import_file(
    State(state): State<AppState>,
    caller: Caller,
    admitted: crate::ingest::Admission,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let policy = WritePolicy::of(&caller);
    if policy.restricted() {
        return Err(ApiError::Forbidden(
            "an ingest key bound to one application cannot import whole export files; use the ingest endpoints".into(),
        ));
    }
    let params = parse_query(raw.as_deref());
    let format = match params.iter().find(|(k, _)| k == "format") {
        Some((_, f)) => Format::parse(f)
            .ok_or_else(|| ApiError::BadRequest(format!("format {f:?}: expected auto, json, ndjson or csv")))?,
        None => Format::Auto,
    };
    let body = state.bodies.read_request(&headers, body, state.config.max_body_bytes).await?;
    let admission = crate::ingest::admission_for(&state, admitted, body.len())?;
    let imported = tokio::task::spawn_blocking(move || import_bytes(&body, format))
        .await?
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    admission.release();
    store(&state, &caller, policy, imported).await
}

/// Stores what a file yielded (the events the caller may write), and answers with the counts
/// and the rejections.
async fn store(
    state: &AppState,
    caller: &Caller,
    policy: WritePolicy,
    imported: signet_import::Imported,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut rejections = imported.rejected;
    let mut events = Vec::with_capacity(imported.events.len());
    for event in imported.events {
        match policy.admit(&event) {
            Ok(()) => events.push(event),
            Err(e) => rejections.push(signet_import::Rejected {
                // The converters do not keep record numbers per event; the reason names its id.
                record: 0,
                field: e.field,
                reason: format!("event {}: {}", event.id, e.reason),
            }),
        }
    }
    let rejected = rejections.len();
    let by_kind = imported.by_kind;
    let submitted = events.len();
    let outcome = crate::ingest::store_events(state, caller.org(), events).await?;
    let status = crate::ingest::batch_status(rejected, submitted);
    Ok((
        status,
        Json(json!({
            "accepted": outcome.accepted, "revisions": outcome.revisions, "duplicates": outcome.duplicates,
            "rejected": rejected,
            "signIns": by_kind[0], "directoryAudits": by_kind[1], "activities": by_kind[2],
            "errors": rejections.into_iter().take(1000).collect::<Vec<_>>(),
        })),
    ))
}

/// Okta event hooks' one-time verification: Okta sends `X-Okta-Verification-Challenge` and
/// expects it back as `{"verification": ...}` before it delivers events.
pub async fn okta_hook_verify(headers: HeaderMap) -> ApiResult<Json<Value>> {
    let challenge = headers.get("x-okta-verification-challenge").and_then(|v| v.to_str().ok()).ok_or_else(|| {
        ApiError::BadRequest("no X-Okta-Verification-Challenge header: this is Okta's event hook".into())
    })?;
    Ok(Json(json!({ "verification": challenge })))
}

/// The body of an Okta event hook call: `{"eventType": "com.okta.event_hook", "data": {"events":
/// [LogEvent, ...]}, ...}`.
#[derive(serde::Deserialize)]
struct HookCall<'a> {
    #[serde(borrow)]
    data: HookData<'a>,
}

#[derive(serde::Deserialize)]
struct HookData<'a> {
    #[serde(borrow)]
    events: Vec<&'a serde_json::value::RawValue>,
}

/// `POST /api/v1/okta/event-hook`: the System Log events an Okta event hook delivers, stored as
/// an import of them (sign-ins and directory audits, each Okta record kept as its source).
pub async fn okta_hook_events(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let policy = WritePolicy::of(&caller);
    if policy.restricted() {
        return Err(ApiError::Forbidden("an ingest key bound to one application cannot receive Okta events".into()));
    }
    let body = crate::error::request_body(body, state.config.max_body_bytes)?;
    let imported = tokio::task::spawn_blocking(move || {
        let call: HookCall = serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!("not an Okta event hook call ({{\"data\": {{\"events\": [...]}}}}): {e}"))
        })?;
        let events: Vec<&str> = call.data.events.iter().map(|e| e.get()).collect();
        import_bytes(format!("[{}]", events.join(",")).as_bytes(), Format::Json)
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    })
    .await??;
    store(&state, &caller, policy, imported).await
}
