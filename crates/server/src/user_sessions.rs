//! User login events as Finance and Operations shows them (its user log): one row per session
//! with the user id, the sign-in start and end times, and the user's name and email from the
//! users directory; and everyone who signed in during the days before a date.
//!
//! Applications send `UserLoggedIn` when a session starts and `UserLoggedOut` when it ends, both
//! with the session id in `CorrelationId` and the user id in `UserId` (the SDK's
//! `Activity::logged_in` / `logged_out`). The directory routes read and import the users
//! directory (`user_directory`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Map, Value};
use signet_model::schema::{find_column, Column};
use signet_model::{Cell, LogKind};
use signet_query::{native, AggQuery, Expr, GroupBy, Literal, Measure};
use signet_store::Engine;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::graph::parse_query;
use crate::user_directory::{DirectoryUser, UserDirectory};
use crate::AppState;

pub const LOGGED_IN: &str = "UserLoggedIn";
pub const LOGGED_OUT: &str = "UserLoggedOut";
const DAY: i64 = 86_400_000_000;
const MAX_SESSIONS: usize = 10_000;

fn col(name: &str) -> &'static Column {
    find_column(LogKind::Activity, name).unwrap_or_else(|| panic!("activities have no column {name}"))
}

fn operation_is(name: &str) -> Expr {
    Expr::eq(col("operation"), Literal::Str(name.into()))
}

fn time(cell: Option<&Cell>) -> Option<i64> {
    match cell? {
        Cell::Time(t) | Cell::Int(t) => Some(*t),
        _ => None,
    }
}

fn text(cell: Option<&Cell>) -> Option<String> {
    cell.and_then(|c| c.as_str()).map(str::to_string)
}

fn limit_of(params: &mut Vec<(String, String)>, default: usize) -> ApiResult<usize> {
    let limit = match params.iter().rev().find(|(k, _)| k == "limit").map(|(_, v)| v.parse::<usize>()) {
        None => default,
        Some(Ok(n)) if (1..=MAX_SESSIONS).contains(&n) => n,
        Some(_) => return Err(ApiError::BadRequest(format!("limit must be 1-{MAX_SESSIONS}"))),
    };
    params.retain(|(k, _)| k != "limit");
    Ok(limit)
}

fn who(users: &UserDirectory, org: &str, user_id: Option<&str>) -> (Value, Value) {
    let entry: Option<DirectoryUser> = user_id.and_then(|id| users.get(org, id));
    (json!(entry.as_ref().and_then(|e| e.name.clone())), json!(entry.and_then(|e| e.email)))
}

/// Sessions that started in the range (default: the last 7 days), newest first, with their
/// end when the user signed out.
pub fn sessions(
    engine: &Engine,
    users: &UserDirectory,
    org: &str,
    mut params: Vec<(String, String)>,
    now: i64,
) -> ApiResult<Value> {
    let limit = limit_of(&mut params, 1000)?;
    if !params.iter().any(|(k, _)| matches!(k.as_str(), "days" | "range" | "from" | "to")) {
        params.push(("days".into(), "7".into()));
    }
    let (from, _) = native::time_range(&params, now)?;
    let filter = native::filter(LogKind::Activity, &params, now)?;
    let (session, user, event_time) = (col("correlation_id"), col("user_id"), col("event_time"));
    let started = engine.store().aggregate(&AggQuery {
        org: org.to_string(),
        kind: LogKind::Activity,
        filter: Expr::and(vec![filter, operation_is(LOGGED_IN)]),
        group_by: vec![GroupBy::Column(session), GroupBy::Column(user)],
        measures: vec![Measure::MinTime(event_time)],
        order_by_first_measure_desc: true,
        limit: Some(limit),
    })?;
    let ids: Vec<String> = started.iter().filter_map(|row| text(row.first())).collect();
    let ended = match ids.is_empty() {
        true => Vec::new(),
        false => engine.store().aggregate(&AggQuery {
            org: org.to_string(),
            kind: LogKind::Activity,
            filter: Expr::and(vec![
                operation_is(LOGGED_OUT),
                Expr::InList { column: session, values: ids },
                Expr::time_range(event_time, from, None),
            ]),
            group_by: vec![GroupBy::Column(session)],
            measures: vec![Measure::MaxTime(event_time)],
            order_by_first_measure_desc: false,
            limit: None,
        })?,
    };
    let end_of = |id: &str| {
        ended
            .iter()
            .find(|row| text(row.first()).is_some_and(|s| s.eq_ignore_ascii_case(id)))
            .and_then(|r| time(r.get(1)))
    };
    let rows: Vec<Value> = started
        .iter()
        .filter_map(|row| {
            let id = text(row.first())?;
            let user_id = text(row.get(1));
            let start = time(row.get(2))?;
            let end = end_of(&id).filter(|end| *end >= start);
            let (name, email) = who(users, org, user_id.as_deref());
            Some(json!({
                "sessionId": id,
                "userId": user_id,
                "userName": name,
                "email": email,
                "start": signet_model::time::format_time(start),
                "end": end.map(signet_model::time::format_time),
                "durationSeconds": end.map(|end| (end - start) / 1_000_000),
            }))
        })
        .collect();
    Ok(json!({ "sessions": rows, "more": started.len() == limit }))
}

/// Everyone who signed in during the `days` (default 7) before `before` (default now): their
/// sessions, first and last sign-in, name and email.
pub fn signed_in_users(
    engine: &Engine,
    users: &UserDirectory,
    org: &str,
    mut params: Vec<(String, String)>,
    now: i64,
) -> ApiResult<Value> {
    let take = |params: &mut Vec<(String, String)>, name: &str| {
        let value = params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        params.retain(|(k, _)| k != name);
        value
    };
    let before = match take(&mut params, "before") {
        None => now,
        // A date is its start (UTC): "the 7 days before 2026-11-15" ends at midnight.
        Some(text) => match chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
            Ok(date) => date.and_hms_opt(0, 0, 0).map_or(now, |t| t.and_utc().timestamp_micros()),
            Err(_) => {
                signet_model::time::parse_time(&text).map_err(|e| ApiError::BadRequest(format!("before: {e}")))?
            }
        },
    };
    let days: i64 = match take(&mut params, "days").map(|d| d.parse::<i64>()) {
        None => 7,
        Some(Ok(d)) if (1..=366).contains(&d) => d,
        Some(_) => return Err(ApiError::BadRequest("days must be 1-366".into())),
    };
    if params.iter().any(|(k, _)| matches!(k.as_str(), "range" | "from" | "to")) {
        return Err(ApiError::BadRequest("give the window as before and days".into()));
    }
    let limit = limit_of(&mut params, MAX_SESSIONS)?;
    let from = before - days * DAY;
    let event_time = col("event_time");
    let filter = Expr::and(vec![
        native::filter(LogKind::Activity, &params, now)?,
        operation_is(LOGGED_IN),
        Expr::time_range(event_time, Some(from), Some(before)),
    ]);
    let rows = engine.store().aggregate(&AggQuery {
        org: org.to_string(),
        kind: LogKind::Activity,
        filter,
        group_by: vec![GroupBy::Column(col("user_id"))],
        measures: vec![Measure::Count, Measure::MinTime(event_time), Measure::MaxTime(event_time)],
        order_by_first_measure_desc: false,
        limit: Some(limit),
    })?;
    let out: Vec<Value> = rows
        .iter()
        .map(|row| {
            let user_id = text(row.first());
            let (name, email) = who(users, org, user_id.as_deref());
            let count = match row.get(1) {
                Some(Cell::Int(n)) => *n,
                _ => 0,
            };
            json!({
                "userId": user_id,
                "userName": name,
                "email": email,
                "sessions": count,
                "firstSignIn": time(row.get(2)).map(signet_model::time::format_time),
                "lastSignIn": time(row.get(3)).map(signet_model::time::format_time),
            })
        })
        .collect();
    Ok(json!({
        "from": signet_model::time::format_time(from),
        "to": signet_model::time::format_time(before),
        "users": out,
    }))
}

/// A report over the store and the users directory: (engine, users, org, params, now).
type Report = fn(&Engine, &UserDirectory, &str, Vec<(String, String)>, i64) -> ApiResult<Value>;

async fn run(state: &AppState, caller: &Caller, raw: Option<String>, report: Report) -> ApiResult<Json<Value>> {
    let params = parse_query(raw.as_deref());
    let (engine, users, org) = (state.engine.clone(), state.user_directory.clone(), caller.org().to_string());
    let now = signet_model::time::now_micros();
    Ok(Json(tokio::task::spawn_blocking(move || report(&engine, &users, &org, params, now)).await??))
}

pub async fn sessions_route(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    run(&state, &caller, raw, sessions).await
}

pub async fn signed_in_users_route(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    run(&state, &caller, raw, signed_in_users).await
}

/// `GET /api/v1/directory/users?q=prefix&limit=`: the users directory.
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let mut params = parse_query(raw.as_deref());
    let limit = limit_of(&mut params, 100)?;
    let q = params.iter().find(|(k, _)| k == "q").map(|(_, v)| v.trim().to_string()).filter(|q| !q.is_empty());
    let (total, users) = state.user_directory.list(caller.org(), q.as_deref(), limit);
    Ok(Json(json!({ "total": total, "users": users })))
}

/// `POST /api/v1/directory/users`: a user list, JSON (`[{"userId", "name", "email"}]` or
/// `{"value": [...]}`) or CSV with a header row (`User ID`, `User name`, `Email`, as Finance and
/// Operations exports its users). All or nothing: a row without a user id refuses the request.
pub async fn import_users(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body = crate::error::request_body(body, state.config.max_body_bytes)?;
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let rows = match media.split(';').next().unwrap_or("").trim() {
        "application/json" => parse_json_users(&body)?,
        "text/csv" => parse_csv_users(&body)?,
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type {other:?}: send application/json or text/csv"
            )))
        }
    };
    let (users, org) = (state.user_directory.clone(), caller.org().to_string());
    let count = rows.len();
    let (added, updated) = tokio::task::spawn_blocking(move || users.import(&org, rows))
        .await?
        .map_err(|e| ApiError::BadRequest(format!("could not import the users: {e}")))?;
    Ok((StatusCode::OK, Json(json!({ "imported": count, "added": added, "updated": updated }))))
}

type Row = (String, Option<String>, Option<String>);

/// Header names, folded (lower case, no spaces, dashes or underscores), and what they hold.
fn field_of(header: &str) -> Option<usize> {
    let folded: String = header.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase();
    match folded.as_str() {
        "userid" | "id" | "user" | "networkalias" | "alias" => Some(0),
        "username" | "name" | "displayname" | "fullname" => Some(1),
        "email" | "emailaddress" | "mail" | "userprincipalname" | "upn" => Some(2),
        _ => None,
    }
}

fn row_of(index: usize, fields: [Option<String>; 3]) -> ApiResult<Row> {
    let [id, name, email] = fields.map(|f| f.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()));
    let id = id.ok_or_else(|| ApiError::BadRequest(format!("user {index}: no user id (userId, \"User ID\")")))?;
    if id.len() > 256 || id.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!("user {index}: the user id must be 1 to 256 printable characters")));
    }
    Ok((id, name, email))
}

fn parse_json_users(body: &[u8]) -> ApiResult<Vec<Row>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    let list = match value {
        Value::Array(list) => list,
        Value::Object(mut object) => match object.remove("value") {
            Some(Value::Array(list)) => list,
            _ => return Err(ApiError::BadRequest("send an array of users or {\"value\": [...]}".into())),
        },
        _ => return Err(ApiError::BadRequest("send an array of users or {\"value\": [...]}".into())),
    };
    list.into_iter()
        .enumerate()
        .map(|(index, user)| {
            let Value::Object(object) = user else {
                return Err(ApiError::BadRequest(format!("user {index}: expected an object")));
            };
            let mut fields: [Option<String>; 3] = Default::default();
            for (key, value) in object_fields(object) {
                if let Some(field) = field_of(&key) {
                    fields[field].get_or_insert(value);
                }
            }
            row_of(index, fields)
        })
        .collect()
}

fn object_fields(object: Map<String, Value>) -> impl Iterator<Item = (String, String)> {
    object.into_iter().filter_map(|(k, v)| match v {
        Value::String(s) => Some((k, s)),
        Value::Number(n) => Some((k, n.to_string())),
        _ => None,
    })
}

fn parse_csv_users(body: &[u8]) -> ApiResult<Vec<Row>> {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(body);
    let headers = reader.headers().map_err(|e| ApiError::BadRequest(format!("CSV header: {e}")))?.clone();
    let columns: Vec<Option<usize>> = headers.iter().map(field_of).collect();
    if !columns.contains(&Some(0)) {
        return Err(ApiError::BadRequest(format!(
            "CSV: no user id column among {:?} (expected \"User ID\" or userId)",
            headers.iter().collect::<Vec<_>>()
        )));
    }
    reader
        .records()
        .enumerate()
        .map(|(index, record)| {
            let record = record.map_err(|e| ApiError::BadRequest(format!("CSV row {}: {e}", index + 2)))?;
            let mut fields: [Option<String>; 3] = Default::default();
            for (value, column) in record.iter().zip(&columns) {
                if let Some(field) = column {
                    fields[*field].get_or_insert(value.to_string());
                }
            }
            row_of(index, fields)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_lists_as_finance_and_operations_exports_them() {
        let csv = "\u{feff}User ID,User name,Email,Enabled\njdoe,John Doe,john.doe@contoso.com,Yes\nadmin,Admin,,Yes\n";
        let rows = parse_csv_users(csv.as_bytes()).unwrap();
        assert_eq!(rows[0], ("jdoe".into(), Some("John Doe".into()), Some("john.doe@contoso.com".into())));
        assert_eq!(rows[1], ("admin".into(), Some("Admin".into()), None));
        let json = br#"{"value":[{"userId":"jdoe","displayName":"John Doe","mail":"jd@contoso.com"}]}"#;
        assert_eq!(parse_json_users(json).unwrap()[0].2.as_deref(), Some("jd@contoso.com"));
        let missing = parse_csv_users(b"User ID,Email\n,x@contoso.com\n").unwrap_err();
        assert!(missing.to_string().contains("user 0"), "{missing}");
        assert!(parse_csv_users(b"Name,Email\nx,y\n").is_err(), "no id column");
    }
}
