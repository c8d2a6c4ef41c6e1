//! What the console's log explorer needs besides the list: the columns of each log, facets
//! (top values of the main fields under the current filters), a histogram that follows the
//! filters at any zoom, and a live stream of newly stored events.
//!
//! Every function takes the same filters as the native list (`signet_query::native`), so a
//! facet count, a histogram bar and the list always describe the same events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use signet_model::schema::{self, ColType, Column};
use signet_model::{Cell, LogKind};
use signet_query::ast::{Bucket, CmpOp, GroupBy, Measure};
use signet_query::{native, AggQuery, Expr, FacetQuery, ListQuery, Literal};
use signet_store::Engine;

use crate::access_log::AuditNote;
use crate::api::{default_columns, rows_json};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::graph::parse_query;
use crate::{cell_json, AppState};

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Bucket widths a histogram may use: the smallest that keeps it within the asked-for number
/// of bars.
const WIDTHS: &[i64] = &[
    MINUTE,
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    7 * DAY,
    30 * DAY,
];

fn col(kind: LogKind, name: &str) -> &'static Column {
    schema::find_column(kind, name).unwrap_or_else(|| panic!("{kind} has no column {name}"))
}

/// Fields with a facet by default: the ones an administrator narrows a list by.
pub fn default_facets(kind: LogKind) -> &'static [&'static str] {
    match kind {
        LogKind::SignIn => &[
            "appDisplayName",
            "status",
            "errorCode",
            "countryOrRegion",
            "clientAppUsed",
            "operatingSystem",
            "browser",
            "conditionalAccessStatus",
        ],
        LogKind::DirectoryAudit => {
            &["activityDisplayName", "category", "result", "loggedByService", "initiatedByUserPrincipalName"]
        }
        LogKind::Activity => {
            &["category", "operation", "recordType", "entityName", "itemType", "resultStatus", "userType", "user"]
        }
    }
}

/// How a histogram splits each bar: a column and its values (stacked in this order).
fn series(kind: LogKind) -> (&'static Column, &'static [&'static str]) {
    match kind {
        LogKind::SignIn => (col(kind, "status"), &["success", "failure", "interrupted"]),
        LogKind::DirectoryAudit => (col(kind, "result"), &["success", "failure"]),
        LogKind::Activity => (col(kind, "result_status"), &["Succeeded", "Failed", "Denied"]),
    }
}

/// Columns the console may show, filter and facet: every column but the internal ones.
pub fn visible_columns(kind: LogKind) -> impl Iterator<Item = &'static Column> {
    schema::all_columns(kind).filter(|c| {
        !matches!(
            c.name,
            "org_id"
                | "content_hash"
                | "log_pos"
                | "log_idx"
                | "user_key"
                | "user_hash"
                | "ip_key"
                | "revision"
                | "auth_method_set"
        )
    })
}

fn type_name(ty: ColType) -> &'static str {
    match ty {
        ColType::Str => "string",
        ColType::StrList => "list",
        ColType::Bool => "boolean",
        ColType::Int => "integer",
        ColType::Float => "number",
        ColType::Time => "time",
    }
}

/// The columns of a log: API name, type, whether the list shows it by default, and whether
/// it can be filtered by equality (`?name=value`) and faceted.
pub fn schema_json(kind: LogKind) -> Value {
    let defaults = default_columns(kind);
    let facets = default_facets(kind);
    let columns: Vec<Value> = visible_columns(kind)
        .map(|c| {
            json!({
                "name": c.api,
                "type": type_name(c.ty),
                "default": defaults.iter().any(|d| d.name == c.name),
                "filterable": !matches!(c.ty, ColType::Float | ColType::Time),
                "facet": facets.iter().any(|f| f.eq_ignore_ascii_case(c.api)),
            })
        })
        .collect();
    let (column, values) = series(kind);
    json!({ "kind": kind.to_string(), "columns": columns, "series": { "field": column.api, "values": values } })
}

/// The filter of an explorer request (the list's filters; paging and layout parameters are
/// ignored).
fn explorer_filter(kind: LogKind, params: &mut Vec<(String, String)>, now: i64) -> ApiResult<Expr> {
    params.retain(|(k, _)| !matches!(k.as_str(), "fields" | "buckets" | "limit" | "cursor" | "columns" | "sort"));
    Ok(native::filter(kind, params, now)?)
}

fn take_param(params: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let value = params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    params.retain(|(k, _)| k != name);
    value
}

fn int(cell: &Cell) -> i64 {
    match cell {
        Cell::Int(i) | Cell::Time(i) => *i,
        _ => 0,
    }
}

/// Top values and counts of several fields under the list's filters.
pub fn facets(
    engine: &Engine,
    org: &str,
    kind: LogKind,
    mut params: Vec<(String, String)>,
    now: i64,
) -> ApiResult<Value> {
    let fields: Vec<&'static Column> = match take_param(&mut params, "fields") {
        None => default_facets(kind).iter().map(|f| col(kind, f)).collect(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|f| {
                visible_columns(kind)
                    .find(|c| c.api.eq_ignore_ascii_case(f) || c.name == f)
                    .filter(|c| !matches!(c.ty, ColType::Float | ColType::Time))
                    .ok_or_else(|| ApiError::BadRequest(format!("fields: {f:?} is not a field that can be faceted")))
            })
            .collect::<ApiResult<_>>()?,
    };
    if fields.len() > 20 {
        return Err(ApiError::BadRequest("fields: at most 20 at once".into()));
    }
    let n = match take_param(&mut params, "n") {
        None => 8,
        Some(n) => n
            .parse()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::BadRequest("n must be 1-100".into()))?,
    };
    let filter = explorer_filter(kind, &mut params, now)?;
    let query = FacetQuery { org: org.to_string(), kind, filter, columns: fields.clone(), limit: n };
    let answer = engine.store().facets(&query)?;
    let out: Vec<Value> = fields
        .iter()
        .zip(&answer.values)
        .map(|(column, values)| {
            let values: Vec<Value> =
                values.iter().map(|(value, count)| json!({ "value": cell_json(value), "count": count })).collect();
            json!({ "field": column.api, "values": values })
        })
        .collect();
    let total = answer.total;
    Ok(json!({ "total": total, "facets": out }))
}

/// Events per time bucket under the list's filters, split by status (sign-ins) or result.
/// The bucket width follows the range: about `buckets` bars (default 60) of 1 minute to 30 days.
pub fn histogram(
    engine: &Engine,
    org: &str,
    kind: LogKind,
    mut params: Vec<(String, String)>,
    now: i64,
) -> ApiResult<Value> {
    let bars: i64 = match take_param(&mut params, "buckets") {
        None => 60,
        Some(b) => b
            .parse()
            .ok()
            .filter(|b| (1..=500).contains(b))
            .ok_or_else(|| ApiError::BadRequest("buckets must be 1-500".into()))?,
    };
    let tz = take_param(&mut params, "tz");
    let (from, to) = native::time_range(&params, now)?;
    let filter = explorer_filter(kind, &mut params, now)?;
    let time = col(kind, "event_time");
    let to = to.unwrap_or(now);
    let from = match from {
        Some(from) => from,
        None => {
            // No lower bound: start at the oldest matching event.
            let query = AggQuery {
                org: org.to_string(),
                kind,
                filter: filter.clone(),
                group_by: vec![],
                measures: vec![Measure::MinTime(time)],
                order_by_first_measure_desc: false,
                limit: None,
            };
            match engine.store().aggregate(&query)?.first().and_then(|r| r.first()) {
                Some(Cell::Time(t)) | Some(Cell::Int(t)) => (*t).min(to - HOUR),
                _ => to - DAY,
            }
        }
    };
    let span = (to - from).max(MINUTE);
    let width = WIDTHS.iter().copied().find(|w| span / w <= bars).unwrap_or(30 * DAY);
    // Bars are cut on the wall clock of `tz` (UTC without one): a day bar is a local day.
    let zone = crate::reports::zone_between(tz.as_deref().unwrap_or("UTC"), from, to)?;
    let (split, values) = series(kind);
    let mut measures = vec![Measure::Count];
    measures.extend(values.iter().map(|v| Measure::CountIf(Expr::eq(split, Literal::Str((*v).into())))));
    let query = AggQuery {
        org: org.to_string(),
        kind,
        filter,
        group_by: vec![GroupBy::TimeBucket(time, Bucket::Micros(width), zone.clone())],
        measures,
        order_by_first_measure_desc: false,
        limit: None,
    };
    let rows = engine.store().aggregate(&query)?;
    let mut points = Vec::new();
    let (mut start, end) = (zone.local(from).div_euclid(width) * width, zone.local(to));
    let mut found = rows.iter().peekable();
    while start < end {
        while found.peek().is_some_and(|row| int(&row[0]) < start) {
            found.next();
        }
        let row = found.next_if(|row| int(&row[0]) == start);
        let (first, next) = (zone.utc(start), zone.utc(start + width));
        start += width;
        // A stretch the clock skips (summer time starting) holds nothing: no bar.
        if row.is_none() && next == first {
            continue;
        }
        let counts: Vec<i64> = (0..=values.len()).map(|i| row.map_or(0, |r| int(&r[i + 1]))).collect();
        points.push(json!({
            "start": signet_model::time::format_time(first), "end": signet_model::time::format_time(next),
            "total": counts[0], "counts": &counts[1..],
        }));
    }
    Ok(json!({
        "from": signet_model::time::format_time(from),
        "to": signet_model::time::format_time(to),
        "bucketSeconds": width / 1_000_000,
        "series": { "field": split.api, "values": values },
        "points": points,
    }))
}

fn kind_route(kind: LogKind) -> &'static str {
    crate::api::kind_names(kind).0
}

/// A blocking explorer query: engine, organisation, kind, query parameters, now.
type Work = fn(&Engine, &str, LogKind, Vec<(String, String)>, i64) -> ApiResult<Value>;

async fn run(state: &AppState, caller: Caller, raw: Option<String>, kind: LogKind, work: Work) -> ApiResult<Response> {
    let params = parse_query(raw.as_deref());
    let engine = state.engine.clone();
    let org = caller.org().to_string();
    let now = signet_model::time::now_micros();
    let value = tokio::task::spawn_blocking(move || work(&engine, &org, kind, params, now)).await??;
    Ok(Json(value).into_response())
}

/// One handler per route and log kind; `$call` is awaited with the state, caller, raw query
/// and kind.
macro_rules! per_kind {
    ($($name:ident => $kind:expr, $call:expr;)*) => {
        $(
            pub async fn $name(State(state): State<AppState>, caller: Caller, RawQuery(raw): RawQuery) -> ApiResult<Response> {
                $call(state, caller, raw, $kind).await
            }
        )*
    };
}

async fn facets_route(state: AppState, caller: Caller, raw: Option<String>, kind: LogKind) -> ApiResult<Response> {
    run(&state, caller, raw, kind, facets).await
}

async fn histogram_route(state: AppState, caller: Caller, raw: Option<String>, kind: LogKind) -> ApiResult<Response> {
    run(&state, caller, raw, kind, histogram).await
}

per_kind! {
    signin_facets => LogKind::SignIn, facets_route;
    directory_audit_facets => LogKind::DirectoryAudit, facets_route;
    activity_facets => LogKind::Activity, facets_route;
    signin_histogram => LogKind::SignIn, histogram_route;
    directory_audit_histogram => LogKind::DirectoryAudit, histogram_route;
    activity_histogram => LogKind::Activity, histogram_route;
    signin_live_route => LogKind::SignIn, live;
    directory_audit_live_route => LogKind::DirectoryAudit, live;
    activity_live_route => LogKind::Activity, live;
}

/// `GET /api/v1/schema/{kind}`: the columns of a log, for the console's column chooser.
pub async fn schema_route(axum::extract::Path(kind): axum::extract::Path<String>) -> ApiResult<Json<Value>> {
    let kind = match kind.as_str() {
        "signins" => LogKind::SignIn,
        "directory-audits" => LogKind::DirectoryAudit,
        "activities" => LogKind::Activity,
        other => return Err(ApiError::NotFound(format!("no log {other:?}: signins, directory-audits or activities"))),
    };
    Ok(Json(schema_json(kind)))
}

/// How often the live stream looks for newly stored events.
const LIVE_POLL: Duration = Duration::from_millis(500);
/// Most rows one live message carries; more are summarised as `skipped` (the list has them).
const LIVE_BATCH: usize = 200;

/// `GET /api/v1/{kind}/live?...filters`: server-sent events. Each `rows` message carries the
/// events stored since the previous one that match the filters (newest first), read by log
/// position, so late-arriving events with old timestamps appear too and nothing is queried
/// twice. The stream is recorded once, when it opens.
async fn live(state: AppState, caller: Caller, raw: Option<String>, kind: LogKind) -> ApiResult<Response> {
    let mut params = parse_query(raw.as_deref());
    let now = signet_model::time::now_micros();
    let columns = match take_param(&mut params, "columns") {
        Some(list) => native::columns(kind, &list)?,
        None => default_columns(kind),
    };
    // A live view follows new arrivals, whatever their time stamps: the time range is dropped.
    params.retain(|(k, _)| !matches!(k.as_str(), "range" | "from" | "to" | "days"));
    let filter = explorer_filter(kind, &mut params, now)?;
    let org = caller.org().to_string();
    let engine = state.engine.clone();
    let start = {
        let engine = engine.clone();
        tokio::task::spawn_blocking(move || engine.store().applied_position()).await??
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(4);
    let log_pos = col(kind, "log_pos");
    tokio::spawn(async move {
        let mut seen = start;
        let _ = tx.send(Ok(Event::default().event("ready").data(json!({ "position": seen }).to_string()))).await;
        loop {
            tokio::time::sleep(LIVE_POLL).await;
            if tx.is_closed() {
                break;
            }
            let engine = engine.clone();
            let (org, filter, columns) = (org.clone(), filter.clone(), columns.clone());
            let from = seen;
            let polled = tokio::task::spawn_blocking(move || -> signet_store::Result<Option<(u64, Value)>> {
                let applied = engine.store().applied_position()?;
                if applied <= from {
                    return Ok(None);
                }
                let window = Expr::and(vec![
                    filter,
                    Expr::Compare { column: log_pos, op: CmpOp::Ge, value: Literal::Int(from as i64) },
                    Expr::Compare { column: log_pos, op: CmpOp::Lt, value: Literal::Int(applied as i64) },
                ]);
                let query = ListQuery {
                    org: org.clone(),
                    kind,
                    filter: window.clone(),
                    order: signet_query::SortOrder::Desc,
                    limit: LIVE_BATCH,
                    after: None,
                    columns: columns.clone(),
                };
                let rows = engine.store().list(&query)?;
                let shown = rows.len().min(LIVE_BATCH);
                let skipped =
                    if rows.len() > LIVE_BATCH { engine.store().count(&org, kind, &window)? - shown as u64 } else { 0 };
                let message = json!({
                    "columns": columns.iter().map(|c| c.api).collect::<Vec<_>>(),
                    "items": rows_json(&columns, &rows[..shown]),
                    "skipped": skipped,
                    "position": applied,
                });
                Ok(Some((applied, message)))
            })
            .await;
            match polled {
                Ok(Ok(None)) => {}
                Ok(Ok(Some((applied, message)))) => {
                    seen = applied;
                    if message["items"].as_array().is_some_and(|items| !items.is_empty())
                        && tx.send(Ok(Event::default().event("rows").data(message.to_string()))).await.is_err()
                    {
                        break;
                    }
                }
                Ok(Err(err)) => {
                    let text = json!({ "message": err.to_string() }).to_string();
                    let _ = tx.send(Ok(Event::default().event("failed").data(text))).await;
                    break;
                }
                Err(_) => break,
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let response = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    Ok(AuditNote::target(format!("live {}", kind_route(kind))).attach(response))
}
