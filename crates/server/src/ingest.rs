//! `POST /api/v1/{signins,directory-audits,activities}`: a JSON object, a JSON array, a Graph
//! page `{"value": [...]}` or NDJSON. Valid records are stored (acknowledged only once they are
//! durable); invalid ones are reported by index, field and reason and nothing else is lost.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use signet_import::body::{self, BodyError, Framing};
use signet_model::{normalize_shared, Event, LogKind, RecordError};
use tracing::warn;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::audit_settings::AuditSettings;
use crate::auth::{Admitted, Caller};
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Application id of Signet's own console in the sign-ins it records about itself.
pub const SIGNET_APP_ID: &str = "5167e7a0-0000-4000-8000-5167e7c0a501";
/// `RecordType` of Signet's own access records.
pub const SIGNET_ACCESS_RECORD_TYPE: &str = signet_model::activity::SIGNET_ACCESS_RECORD_TYPE;

/// What a caller may write. Records Signet writes about itself (its console sign-ins and its
/// access log) are refused from everyone, so that the self-audit cannot be forged; an ingest
/// key bound to one source application writes only that application's events.
#[derive(Clone, Debug, Default)]
pub struct WritePolicy {
    app: Option<String>,
}

impl WritePolicy {
    pub fn of(caller: &Caller) -> WritePolicy {
        match &caller.principal.subject {
            signet_auth::Subject::Key { app, .. } => WritePolicy { app: app.clone() },
            signet_auth::Subject::User { .. } => WritePolicy::default(),
        }
    }

    /// Whether the policy restricts the source application.
    pub fn restricted(&self) -> bool {
        self.app.is_some()
    }

    pub fn admit(&self, event: &Event) -> Result<(), RecordError> {
        let reserved = match event.kind {
            LogKind::SignIn => event.cell("app_id").and_then(|c| c.as_str()) == Some(SIGNET_APP_ID),
            LogKind::Activity => event
                .cell("record_type")
                .and_then(|c| c.as_str())
                .is_some_and(|t| t.eq_ignore_ascii_case(SIGNET_ACCESS_RECORD_TYPE)),
            LogKind::DirectoryAudit => false,
        };
        if reserved {
            return Err(RecordError::new(
                if event.kind == LogKind::SignIn { "appId" } else { "RecordType" },
                "reserved for the records Signet writes about itself",
            ));
        }
        if let Some(app) = &self.app {
            if !event.source_apps().iter().any(|a| a.eq_ignore_ascii_case(app)) {
                let field = match event.kind {
                    LogKind::SignIn => "appId",
                    LogKind::DirectoryAudit => "loggedByService",
                    LogKind::Activity => "Workload",
                };
                return Err(RecordError::new(
                    field,
                    format!("this ingest key may only write events of application {app:?}"),
                ));
            }
        }
        Ok(())
    }
}

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
    /// Activities not stored because their operation is on the exclusion list (valid, not
    /// errors: Dynamics 365 does not log them either).
    pub excluded: usize,
    /// Why: the exclusion list, or which audit setting is off (reason -> count).
    #[serde(rename = "excludedReasons", skip_serializing_if = "BTreeMap::is_empty")]
    pub excluded_reasons: BTreeMap<String, usize>,
    pub rejected: usize,
    pub errors: Vec<RecordRejection>,
}

/// Reported rejections per response at most (the count is always exact).
const MAX_REPORTED_ERRORS: usize = 1000;

/// The room the auth guard reserved in the ingest queue for this request, if any.
pub(crate) type Admission = Option<Extension<Admitted>>;

/// The handler of one log kind's route: [`ingest`] for that kind.
macro_rules! ingest_route {
    ($name:ident, $kind:expr) => {
        pub async fn $name(
            state: State<AppState>,
            caller: Caller,
            admitted: Admission,
            headers: HeaderMap,
            body: Body,
        ) -> ApiResult<Response> {
            ingest(state, caller, admitted, $kind, headers, body).await
        }
    };
}

ingest_route!(signins, LogKind::SignIn);
ingest_route!(directory_audits, LogKind::DirectoryAudit);
ingest_route!(activities, LogKind::Activity);

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
    caller: Caller,
    admitted: Admission,
    kind: LogKind,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let framing = framing(&headers)?;
    let body = state.bodies.read_request(&headers, body, state.config.max_body_bytes).await?;
    let admission = admission_for(&state, admitted, body.len())?;
    // Parsing and normalising is CPU work: keep it off the async workers.
    let policy = WritePolicy::of(&caller);
    // The events' bodies are slices of the request's: its buffer goes back to the pool when the
    // last of them is dropped (once written to the event log).
    let body = bytes::Bytes::from_owner(body);
    let (events, errors) = tokio::task::spawn_blocking(move || parse_batch(kind, framing, &body, &policy)).await??;
    let rejected = errors.len();
    if rejected > 0 {
        state.http_metrics.add_rejected(kind, rejected);
        warn!(kind = %kind, rejected, first_field = %errors[0].field, first_reason = %errors[0].reason, "ingest records rejected");
    }
    let settings = state.audit_settings.get(caller.org());
    let (events, mut excluded_reasons) = exclude(kind, events, &state.config.activity_exclusions, &settings);
    let (events, claimed, repeats) = claim_user_access(&state, caller.org(), events, &settings).await?;
    if repeats > 0 {
        excluded_reasons.insert("user access already recorded for this user, access type and interval".into(), repeats);
    }
    let excluded: usize = excluded_reasons.values().sum();
    if excluded > 0 {
        state.http_metrics.excluded.fetch_add(excluded as u64, std::sync::atomic::Ordering::Relaxed);
    }
    let submitted = events.len();
    let learned = crate::user_directory::mappings(&events);
    admission.release();
    let outcome = match store_events(&state, caller.org(), events).await {
        Ok(outcome) => outcome,
        Err(err) => {
            state.user_access.release(&claimed);
            return Err(err);
        }
    };
    if !learned.is_empty() {
        let (users, org) = (state.user_directory.clone(), caller.org().to_string());
        tokio::task::spawn_blocking(move || {
            if let Err(err) = users.learn(&org, learned) {
                warn!(error = %err, "could not save the users directory");
            }
        });
    }
    debug_assert_eq!(outcome.accepted + outcome.duplicates, submitted);
    // A batch of only excluded operations was handled as asked: 200, not "nothing stored".
    let status = batch_status(rejected, submitted + excluded);
    let response = IngestResponse {
        accepted: outcome.accepted,
        revisions: outcome.revisions,
        duplicates: outcome.duplicates,
        excluded,
        excluded_reasons,
        rejected,
        errors: errors.into_iter().take(MAX_REPORTED_ERRORS).collect(),
    };
    Ok((status, Json(response)).into_response())
}

/// Drops the activities that are not to be recorded: operations on the exclusion list, and what
/// the organisation's audit settings turn off. Returns the rest and the counts per reason.
fn exclude(
    kind: LogKind,
    events: Vec<Event>,
    exclusions: &[String],
    settings: &AuditSettings,
) -> (Vec<Event>, BTreeMap<String, usize>) {
    let mut reasons = BTreeMap::new();
    if kind != LogKind::Activity {
        return (events, reasons);
    }
    let kept = events
        .into_iter()
        .filter(|event| {
            let operation = event.cell("operation").and_then(|c| c.as_str()).unwrap_or("");
            let reason = match exclusions.iter().any(|x| x.eq_ignore_ascii_case(operation)) {
                true => Some("the operation is on the exclusion list".to_string()),
                false => settings.skip_reason(event),
            };
            match reason {
                Some(reason) => {
                    *reasons.entry(reason).or_insert(0) += 1;
                    false
                }
                None => true,
            }
        })
        .collect();
    (kept, reasons)
}

/// Keeps the first user-access record of each user, access type and interval: (events to
/// store, the claims they made, how many repeats were left out).
async fn claim_user_access(
    state: &AppState,
    org: &str,
    events: Vec<Event>,
    settings: &AuditSettings,
) -> ApiResult<(Vec<Event>, Vec<crate::user_access::AccessKey>, usize)> {
    let interval = settings.user_access_auditing_interval;
    if !events.iter().any(|e| crate::user_access::key_of(org, e, interval).is_some()) {
        return Ok((events, Vec::new(), 0));
    }
    let (engine, index, org) = (state.engine.clone(), state.user_access.clone(), org.to_string());
    let work = move || -> ApiResult<(Vec<Event>, Vec<crate::user_access::AccessKey>, usize)> {
        let mut kept = Vec::with_capacity(events.len());
        let mut claimed = Vec::new();
        let mut repeats = 0;
        for event in events {
            let Some(key) = crate::user_access::key_of(&org, &event, interval) else {
                kept.push(event);
                continue;
            };
            match index.claim(&engine, &key) {
                Ok(true) => {
                    claimed.push(key);
                    kept.push(event);
                }
                Ok(false) => repeats += 1,
                Err(err) => {
                    index.release(&claimed);
                    return Err(err.into());
                }
            }
        }
        Ok((kept, claimed, repeats))
    };
    tokio::task::spawn_blocking(work).await?
}

/// The queue room for a body that has been read, before it is parsed: what the auth guard
/// admitted for its declared size or, for a body that declared none (a compressed one), room
/// for its size now; 503 when there is none, as the guard answers. Released just before the
/// events are submitted (which counts them in the queue itself).
pub(crate) fn admission_for(
    state: &AppState,
    admitted: Admission,
    read: usize,
) -> ApiResult<Arc<signet_store::Admission>> {
    if let Some(Extension(Admitted(admission))) = admitted {
        return Ok(admission);
    }
    let pipeline = state.engine.pipeline();
    match pipeline.admit(crate::auth::queued_size(read)) {
        Some(admission) => Ok(Arc::new(admission)),
        None => {
            pipeline.metrics().overloaded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(ApiError::Store(signet_store::StoreError::Overloaded { retry_after_secs: 1 }))
        }
    }
}

/// Stores events for the caller's organisation; resolves once they are durable.
pub(crate) async fn store_events(
    state: &AppState,
    org: &str,
    events: Vec<signet_model::Event>,
) -> ApiResult<signet_store::Outcome> {
    if events.is_empty() {
        return Ok(signet_store::Outcome::default());
    }
    let receiver = state.engine.pipeline().submit(org, events)?;
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

/// Splits and normalises a body: (events, rejections). Each event's body is a slice of `body`.
pub fn parse_batch(
    kind: LogKind,
    framing: Framing,
    body: &bytes::Bytes,
    policy: &WritePolicy,
) -> ApiResult<(Vec<signet_model::Event>, Vec<RecordRejection>)> {
    let records = body::split(body, framing).map_err(|e| match e {
        BodyError::Empty => ApiError::BadRequest("empty body: send at least one record".into()),
        other => ApiError::BadRequest(other.to_string()),
    })?;
    let mut events = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let shared = shared_slice(body, record.bytes);
        match normalize_shared(kind, &shared, Some(record.text).filter(|t| t.as_ptr() == shared.as_ptr()))
            .and_then(|event| policy.admit(&event).map(|()| event))
        {
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

/// `part` as a slice of `whole` when it lies within it (what the body splitter gives), a copy
/// otherwise.
fn shared_slice(whole: &bytes::Bytes, part: &[u8]) -> bytes::Bytes {
    let (start, end) = (whole.as_ptr() as usize, whole.as_ptr() as usize + whole.len());
    let at = part.as_ptr() as usize;
    match at >= start && at + part.len() <= end {
        true => whole.slice(at - start..at - start + part.len()),
        false => bytes::Bytes::copy_from_slice(part),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_of_a_body_share_it() {
        let body = bytes::Bytes::from_static(
            b"{\"id\":\"a\",\"createdDateTime\":\"2020-03-13T19:15:41Z\"}\n{\"id\":\"b\",\"createdDateTime\":\"2020-03-13T19:15:42Z\"}\n",
        );
        let (events, errors) = parse_batch(LogKind::SignIn, Framing::Ndjson, &body, &WritePolicy::default()).unwrap();
        assert!(errors.is_empty());
        let range = body.as_ptr_range();
        for (event, line) in events.iter().zip(body.split(|&b| b == b'\n')) {
            assert_eq!(&event.body[..], line);
            assert!(range.contains(&event.body.as_ptr()), "{} is a slice of the body, not a copy", event.id);
        }
        // Bytes from elsewhere are copied.
        let elsewhere = b"{}".to_vec();
        let copy = shared_slice(&body, &elsewhere);
        assert_eq!((&copy[..], range.contains(&copy.as_ptr())), (&b"{}"[..], false));
    }
}
