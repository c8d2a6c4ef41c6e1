//! Signet audits itself: every read of the logs (list, details, report, export, Graph call)
//! and every change of accounts and keys becomes an activity event in the caller's own
//! organisation (`Workload` and `ServiceName` = `Signet`, `RecordType` = `SignetAccess`): who,
//! when, from which address, what (the route, the filter, the rows returned), and the result.
//!
//! Reads fail closed: when the access cannot be recorded durably, the data is not served (503).
//! Changes are recorded after they are made; a failed record is logged as an error.

use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use signet_model::{normalize, LogKind};
use tracing::error;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::{Audit, RouteSpec};
use crate::AppState;

/// What a handler tells the access log about its answer (a response extension).
#[derive(Clone, Debug, Default)]
pub struct AuditNote {
    /// Rows returned or exported.
    pub rows: Option<u64>,
    /// The account, key or event the request acted on.
    pub target: Option<String>,
    /// What a change changed, recorded as the message (e.g. which settings, from what to what).
    pub detail: Option<String>,
}

impl AuditNote {
    pub fn rows(rows: usize) -> AuditNote {
        AuditNote { rows: Some(rows as u64), ..AuditNote::default() }
    }

    pub fn target(target: impl Into<String>) -> AuditNote {
        AuditNote { target: Some(target.into()), ..AuditNote::default() }
    }

    /// Attaches the note to a response.
    pub fn attach(self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The activity record of one access.
pub fn access_event(
    caller: &Caller,
    operation: &str,
    result: &str,
    uri: &Uri,
    note: &AuditNote,
    message: &str,
) -> Value {
    let principal = &caller.principal;
    let mut record = signet_record(&principal.org, operation, result, message);
    record["UserKey"] = json!(principal.subject_id());
    record["UserType"] = json!(principal.user_type());
    record["User"] = json!(principal.name());
    record["ClientIP"] = json!(caller.address.map(|a| a.to_string()));
    record["UserAgent"] = json!(caller.user_agent);
    record["ItemUrl"] = json!(uri.path());
    record["Query"] = json!(uri.query());
    record["QueryResults"] = json!(note.rows.map(|r| r.to_string()));
    record["EntityId"] = json!(note.target);
    record
}

/// The fields every record Signet writes about itself shares (`RecordType` `SignetAccess`,
/// which clients may not write).
fn signet_record(org: &str, operation: &str, result: &str, message: &str) -> Value {
    json!({
        "Id": signet_auth::secret::random_uuid(),
        "CreationTime": signet_model::time::format_time(signet_model::time::now_micros()),
        "Operation": operation,
        "RecordType": "SignetAccess",
        "Workload": "Signet",
        "ServiceName": "Signet",
        "OrganizationId": org,
        "ResultStatus": result,
        "Message": message,
    })
}

/// A record of the logging itself starting, stopping or being reconfigured (like Dynamics'
/// `UserAccessAuditStarted` / `Stopped`), so that a gap in the trail shows in the trail.
pub fn service_event(org: &str, operation: &str, message: &str, fields: Value) -> Value {
    let mut record = signet_record(org, operation, "Succeeded", message);
    record["UserKey"] = json!("signet");
    record["UserType"] = json!("System");
    record["User"] = json!("signet");
    record["Fields"] = fields;
    record
}

/// Stores a record Signet writes about itself and waits until it is durable.
pub fn store_blocking(engine: &signet_store::Engine, org: &str, record: &Value) -> Result<(), String> {
    let event = normalize(LogKind::Activity, record.to_string().as_bytes())
        .map_err(|e| format!("{}: {}", e.field, e.reason))?;
    engine.pipeline().submit_blocking(org, vec![event]).map(|_| ()).map_err(|e| e.to_string())
}

/// The record of a read made with the CLI directly on a data directory (no server, no
/// credential): the operator is the local account that ran it.
pub fn local_access_event(
    org: &str,
    operator: &str,
    operation: &str,
    path: &str,
    query: &str,
    rows: Option<u64>,
) -> Value {
    let principal = signet_auth::Principal {
        org: org.to_string(),
        subject: signet_auth::Subject::User {
            id: format!("cli:{operator}"),
            username: format!("cli:{operator}"),
            display_name: operator.to_string(),
        },
        grant: signet_auth::Grant::Account(Some(signet_auth::Role::GlobalAdministrator)),
        home: true,
    };
    let caller = Caller {
        principal: std::sync::Arc::new(principal),
        address: None,
        user_agent: Some("signet-cli".into()),
        csrf: None,
    };
    let uri: Uri = format!("{path}?{query}").parse().unwrap_or_else(|_| Uri::from_static("/"));
    let note = AuditNote { rows, ..AuditNote::default() };
    access_event(
        &caller,
        operation,
        "Succeeded",
        &uri,
        &note,
        &format!("local command on the data directory: {operation}"),
    )
}

/// Queues an activity record; the receiver resolves once it is durable. Urgent: a read is
/// answered only once its record is durable, and during a burst of ingest the record would
/// otherwise wait behind every queued batch (a Graph page took a median 0.3 s, up to 1.3 s,
/// mid-burst; docs/benchmarks.md run 41).
fn submit(
    state: &AppState,
    org: &str,
    record: &Value,
) -> Result<tokio::sync::oneshot::Receiver<signet_store::Result<signet_store::Outcome>>, ApiError> {
    let bytes = serde_json::to_vec(record).map_err(|e| ApiError::Internal(e.to_string()))?;
    let event = normalize(LogKind::Activity, &bytes)
        .map_err(|e| ApiError::Internal(format!("access record does not normalise: {}: {}", e.field, e.reason)))?;
    Ok(state.engine.pipeline().submit_urgent(org, vec![event])?)
}

/// Stores a record and waits until it is durable.
pub async fn store(state: &AppState, org: &str, record: &Value) -> Result<(), ApiError> {
    let receiver = submit(state, org, record)?;
    receiver.await.map_err(|_| ApiError::Store(signet_store::StoreError::ShuttingDown))??;
    Ok(())
}

/// Stores a record without waiting (denied attempts, export completions).
pub fn store_detached(state: &AppState, org: &str, record: &Value) {
    if let Err(err) = submit(state, org, record) {
        error!(error = %err, "could not record an access in the activity log");
    }
}

fn result_of(status: axum::http::StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "Succeeded",
        401 | 403 => "Denied",
        _ => "Failed",
    }
}

/// Records the access a response answered, per the route's [`Audit`] rule.
pub async fn record(state: &AppState, caller: &Caller, spec: &RouteSpec, uri: &Uri, response: Response) -> Response {
    let (operation, fail_closed) = match spec.audit {
        Audit::No => return response,
        Audit::Read(operation) => (operation, true),
        Audit::Change(operation) => (operation, false),
    };
    let note = response.extensions().get::<AuditNote>().cloned().unwrap_or_default();
    let status = response.status();
    let mut message = format!("{} {} -> {}", spec.method, spec.path, status.as_u16());
    if let Some(detail) = &note.detail {
        message.push_str(": ");
        message.push_str(detail);
    }
    let record = access_event(caller, operation, result_of(status), uri, &note, &message);
    match store(state, caller.org(), &record).await {
        Ok(()) => response,
        Err(err) if fail_closed && status.is_success() => {
            error!(error = %err, operation, "access could not be recorded; the answer is withheld");
            ApiError::AuditUnavailable.into_response()
        }
        Err(err) => {
            error!(error = %err, operation, "access could not be recorded");
            response
        }
    }
}

/// Records an attempt the permission matrix refused.
pub fn record_denied(state: &AppState, caller: &Caller, spec: &RouteSpec, uri: &Uri) {
    let operation = match spec.audit {
        Audit::Read(operation) | Audit::Change(operation) => operation,
        Audit::No => "AccessDenied",
    };
    let message = format!("{} {} -> 403 (not permitted by the role)", spec.method, spec.path);
    let record = access_event(caller, operation, "Denied", uri, &AuditNote::default(), &message);
    store_detached(state, caller.org(), &record);
}
