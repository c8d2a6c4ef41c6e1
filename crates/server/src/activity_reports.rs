//! `GET /api/v1/reports/activities` and `/api/v1/reports/activities/{report}`: Dynamics 365's
//! preconfigured activity reports (entity types accessed, bulk actions, admin center, internal
//! tools, sign-in and sign-out, process and plug-in activation, exports by user). The rules are
//! in `signet_query::activity_reports`; every list filter applies too, and each report links to
//! the matching activities (`?report=`), which the list, export and facets take as well.

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde_json::{json, Value};
use signet_model::schema::{find_column, Column};
use signet_model::LogKind;
use signet_query::activity_reports::{self, ActivityReport, ACTIVITY_REPORTS};
use signet_query::{native, Expr, FacetQuery};
use signet_store::Engine;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::reports::run_report;
use crate::{cell_json, AppState};

const DAY: i64 = 86_400_000_000;
const DEFAULT_DAYS: i64 = 30;

fn col(name: &str) -> &'static Column {
    find_column(LogKind::Activity, name).unwrap_or_else(|| panic!("activities have no column {name}"))
}

/// The list filters and the time range (30 days unless the request says).
fn filter_and_range(params: &mut Vec<(String, String)>, now: i64) -> ApiResult<(Expr, i64, i64)> {
    if !params.iter().any(|(k, _)| matches!(k.as_str(), "days" | "range" | "from" | "to")) {
        params.push(("days".into(), DEFAULT_DAYS.to_string()));
    }
    params.retain(|(k, _)| k != "n");
    let (from, to) = native::time_range(params, now)?;
    let filter = native::filter(LogKind::Activity, params, now)?;
    Ok((filter, from.unwrap_or(now - DEFAULT_DAYS * DAY), to.unwrap_or(now)))
}

fn describe(report: &ActivityReport, from: i64, to: i64) -> Value {
    let (from, to) = (signet_model::time::format_time(from), signet_model::time::format_time(to));
    json!({
        "id": report.id,
        "title": report.title,
        "rule": report.rule,
        "list": format!("/api/v1/activities?report={}&from={from}&to={to}", report.id),
    })
}

/// Every report with the number of activities it counts.
pub fn overview(engine: &Engine, org: &str, mut params: Vec<(String, String)>, now: i64) -> ApiResult<Value> {
    let (filter, from, to) = filter_and_range(&mut params, now)?;
    let mut reports = Vec::new();
    for report in ACTIVITY_REPORTS {
        let rule = activity_reports::filter(report.id).expect("every listed report has a filter");
        let count = engine.store().count(org, LogKind::Activity, &Expr::and(vec![filter.clone(), rule]))?;
        let mut entry = describe(report, from, to);
        entry["count"] = json!(count);
        reports.push(entry);
    }
    Ok(json!({
        "from": signet_model::time::format_time(from),
        "to": signet_model::time::format_time(to),
        "reports": reports,
    }))
}

/// One report: the total and its top users, entities and operations (`n`, default 10).
pub fn detail(engine: &Engine, org: &str, id: &str, mut params: Vec<(String, String)>, now: i64) -> ApiResult<Value> {
    let Some(report) = ACTIVITY_REPORTS.iter().find(|r| r.id == id) else {
        let known: Vec<&str> = ACTIVITY_REPORTS.iter().map(|r| r.id).collect();
        return Err(ApiError::NotFound(format!("no activity report {id:?}; reports: {}", known.join(", "))));
    };
    let n = match params.iter().rev().find(|(k, _)| k == "n").map(|(_, v)| v.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return Err(ApiError::BadRequest("n must be 1-100".into())),
    };
    let (filter, from, to) = filter_and_range(&mut params, now)?;
    let rule = activity_reports::filter(report.id).expect("every listed report has a filter");
    let columns = vec![col("user_upn"), col("entity_name"), col("operation")];
    let query = FacetQuery {
        org: org.to_string(),
        kind: LogKind::Activity,
        filter: Expr::and(vec![filter, rule]),
        columns,
        limit: n,
    };
    let answer = engine.store().facets(&query)?;
    let top = |i: usize| -> Vec<Value> {
        answer.values[i].iter().map(|(value, count)| json!({ "value": cell_json(value), "count": count })).collect()
    };
    let mut out = describe(report, from, to);
    out["from"] = json!(signet_model::time::format_time(from));
    out["to"] = json!(signet_model::time::format_time(to));
    out["total"] = json!(answer.total);
    out["byUser"] = json!(top(0));
    out["byEntity"] = json!(top(1));
    out["byOperation"] = json!(top(2));
    Ok(out)
}

pub async fn overview_route(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    run_report(&state, caller, raw, overview).await
}

pub async fn detail_route(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    run_report(&state, caller, raw, move |e, o, p, n| detail(e, o, &id, p, n)).await
}
