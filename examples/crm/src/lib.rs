//! A small CRM whose audit trail goes to Signet: [`app`] builds the router with
//! [`SignetLayer`] in front of every route; [`authenticate`] turns a bearer token into the
//! [`AuditUser`] the layer records.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};
use signet_sdk::middleware::{AuditActivity, AuditUser, CorrelationId, SignetLayer};
use signet_sdk::{Activity, Client};

/// Bearer tokens of the example's users.
pub const USERS: &[(&str, &str)] = &[("alex-token", "alex@contoso.com"), ("sam-token", "sam@contoso.com")];

/// One record of any entity.
type Record = BTreeMap<String, Value>;

#[derive(Default)]
struct Tables {
    next_id: u64,
    /// entity -> id -> record
    rows: BTreeMap<&'static str, BTreeMap<String, Record>>,
}

impl Tables {
    fn insert(&mut self, entity: &'static str, mut record: Record) -> String {
        self.next_id += 1;
        let id = format!("{}-{}", &entity[..3], self.next_id);
        record.insert("id".into(), Value::String(id.clone()));
        self.rows.entry(entity).or_default().insert(id.clone(), record);
        id
    }
}

#[derive(Clone)]
pub struct Crm {
    tables: Arc<Mutex<Tables>>,
    signet: Client,
}

/// The application: its routes, the Signet layer, and authentication (outermost, so the layer
/// sees who is signed in).
pub fn app(signet: Client) -> Router {
    let crm = Crm { tables: Arc::default(), signet: signet.clone() };
    Router::new()
        .route("/", get(home))
        .route("/api/accounts", get(list_accounts).post(create::<ACCOUNT>))
        .route("/api/accounts/{id}", get(read::<ACCOUNT>).patch(update::<ACCOUNT>).delete(delete::<ACCOUNT>))
        .route("/api/contacts", get(list::<CONTACT>).post(create::<CONTACT>))
        .route("/api/contacts/{id}", get(read::<CONTACT>))
        .route("/api/leads", post(create::<LEAD>))
        .route("/api/leads/{id}", get(read::<LEAD>))
        .route("/api/leads/{id}/qualify", post(qualify))
        .route("/api/opportunities/{id}", get(read::<OPPORTUNITY>))
        .route("/healthz", get(|| async { "ok" }))
        .layer(SignetLayer::new(signet).service_name("Contoso CRM").skip_prefix("/healthz"))
        .layer(axum::middleware::from_fn(authenticate))
        .with_state(crm)
}

/// `Authorization: Bearer <token>` -> the user; 401 without one (except the health check).
pub async fn authenticate(mut request: Request, next: Next) -> Response {
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let Some((_, user)) = USERS.iter().find(|(t, _)| *t == token) else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    request.extensions_mut().insert(AuditUser(user.to_string()));
    next.run(request).await
}

const ACCOUNT: u8 = 0;
const CONTACT: u8 = 1;
const LEAD: u8 = 2;
const OPPORTUNITY: u8 = 3;

fn entity(code: u8) -> &'static str {
    ["account", "contact", "lead", "opportunity"][usize::from(code)]
}

fn collection(code: u8) -> &'static str {
    ["accounts", "contacts", "leads", "opportunities"][usize::from(code)]
}

async fn home() -> Html<&'static str> {
    Html("<!doctype html><title>Contoso CRM</title><h1>Contoso CRM</h1>")
}

#[derive(Deserialize)]
struct Filter {
    name: Option<String>,
}

/// The accounts grid: the filter and the ids shown go to Signet (`Query`, `QueryResults`).
async fn list_accounts(State(crm): State<Crm>, Query(filter): Query<Filter>) -> impl IntoResponse {
    let rows = rows_of(&crm, ACCOUNT, filter.name.as_deref());
    let ids: Vec<String> = rows.iter().filter_map(|r| r["id"].as_str().map(str::to_string)).collect();
    (Extension(AuditActivity::results(ids)), Json(json!({ "value": rows })))
}

async fn list<const E: u8>(State(crm): State<Crm>, Query(filter): Query<Filter>) -> impl IntoResponse {
    let rows = rows_of(&crm, E, filter.name.as_deref());
    let ids: Vec<String> = rows.iter().filter_map(|r| r["id"].as_str().map(str::to_string)).collect();
    (Extension(AuditActivity::results(ids)), Json(json!({ "value": rows })))
}

fn rows_of(crm: &Crm, code: u8, prefix: Option<&str>) -> Vec<Value> {
    let tables = crm.tables.lock();
    let Some(rows) = tables.rows.get(entity(code)) else { return Vec::new() };
    rows.values()
        .filter(|r| {
            let name = r.get("name").and_then(Value::as_str).unwrap_or("");
            prefix.is_none_or(|p| name.to_lowercase().starts_with(&p.to_lowercase()))
        })
        .map(|r| json!(r))
        .collect()
}

async fn create<const E: u8>(State(crm): State<Crm>, Json(record): Json<Record>) -> impl IntoResponse {
    let id = crm.tables.lock().insert(entity(E), record);
    // The id is made here, not in the path: tell the layer which record was created.
    let said = AuditActivity { entity_id: Some(id.clone()), ..AuditActivity::default() };
    (StatusCode::CREATED, Extension(said), Json(json!({ "id": id })))
}

async fn read<const E: u8>(State(crm): State<Crm>, Path(id): Path<String>) -> Response {
    let tables = crm.tables.lock();
    match tables.rows.get(entity(E)).and_then(|rows| rows.get(&id)) {
        Some(record) => Json(json!(record)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn update<const E: u8>(State(crm): State<Crm>, Path(id): Path<String>, Json(changes): Json<Record>) -> Response {
    let mut tables = crm.tables.lock();
    match tables.rows.get_mut(entity(E)).and_then(|rows| rows.get_mut(&id)) {
        Some(record) => {
            record.extend(changes.into_iter().filter(|(k, _)| k != "id"));
            Json(json!(record)).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete<const E: u8>(State(crm): State<Crm>, Path(id): Path<String>) -> StatusCode {
    match crm.tables.lock().rows.get_mut(entity(E)).and_then(|rows| rows.remove(&id)) {
        Some(_) => StatusCode::NO_CONTENT,
        None => StatusCode::NOT_FOUND,
    }
}

/// Converting a lead, as Dynamics 365 logs it: Create Contact, Create Opportunity, Update
/// Opportunity (linked to the contact), Update Lead (qualified), Update Lead (linked to the
/// opportunity): five activities with the request's correlation id, recorded here rather than
/// by the layer.
async fn qualify(
    State(crm): State<Crm>,
    Path(id): Path<String>,
    Extension(AuditUser(user)): Extension<AuditUser>,
    Extension(CorrelationId(correlation)): Extension<CorrelationId>,
) -> Response {
    let steps = {
        let mut tables = crm.tables.lock();
        let Some(lead) = tables.rows.get(entity(LEAD)).and_then(|rows| rows.get(&id)).cloned() else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let name = lead.get("name").cloned().unwrap_or(Value::Null);
        let contact = tables.insert(entity(CONTACT), Record::from([("name".into(), name.clone())]));
        let opportunity = tables.insert(entity(OPPORTUNITY), Record::from([("name".into(), name)]));
        let opportunity_row = tables.rows.get_mut(entity(OPPORTUNITY)).and_then(|r| r.get_mut(&opportunity));
        if let Some(row) = opportunity_row {
            row.insert("customer".into(), Value::String(contact.clone()));
        }
        if let Some(lead) = tables.rows.get_mut(entity(LEAD)).and_then(|r| r.get_mut(&id)) {
            lead.insert("status".into(), json!("Qualified"));
            lead.insert("qualifyingOpportunity".into(), Value::String(opportunity.clone()));
        }
        [
            ("Create", CONTACT, contact.clone()),
            ("Create", OPPORTUNITY, opportunity.clone()),
            ("Update", OPPORTUNITY, opportunity.clone()),
            ("Update", LEAD, id.clone()),
            ("Update", LEAD, id.clone()),
        ]
    };
    for (operation, code, record) in &steps {
        let activity = Activity::new(*operation)
            .user(&user)
            .entity(entity(*code), Some(record.clone()))
            .item_url(format!("/api/{}/{record}", collection(*code)))
            .correlation_id(&correlation)
            .service("Contoso CRM", None)
            .result_status("Succeeded");
        if let Err(err) = crm.signet.record(activity) {
            tracing::warn!(error = %err, "audit record not queued");
        }
    }
    let body = json!({ "contact": steps[0].2, "opportunity": steps[1].2 });
    (Extension(AuditActivity::recorded()), Json(body)).into_response()
}
