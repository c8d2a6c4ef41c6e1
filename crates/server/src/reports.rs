//! Reports, in UTC with weeks starting Monday unless `tz` names a time zone (IANA, e.g.
//! `Europe/Paris`: days, weeks and the hour x weekday matrix then follow its wall clock,
//! daylight saving time included), all accepting the list filters. Each is a handful of typed
//! aggregations ([`AggQuery`]) that every storage engine runs natively; the shaping (filling
//! empty buckets, shares) happens here. The functions are shared by the HTTP handlers and
//! `signet report`.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use chrono::{Offset, TimeZone};
use serde_json::{json, Value};
use signet_model::schema::{find_column, Column};
use signet_model::{Cell, LogKind};
use signet_query::ast::{Bucket, GroupBy, Measure, Zone};
use signet_query::{native, AggQuery, Expr, GroupSet, Literal, MultiAggQuery};
use signet_store::Engine;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::graph::parse_query;
use crate::{cell_json, AppState};

const SIGNIN: LogKind = LogKind::SignIn;
const DAY: i64 = 86_400_000_000;
const HOUR: i64 = DAY / 24;

fn col(name: &str) -> &'static Column {
    find_column(SIGNIN, name).unwrap_or_else(|| panic!("sign-in column {name}"))
}

fn status_is(status: &str) -> Expr {
    Expr::eq(col("status"), Literal::Str(status.into()))
}

/// What a report reads: the list filters, with `days` defaulting when no range is given; the
/// range (for filling empty buckets); the wall clock of its time groups (`tz`).
struct Scope {
    filter: Expr,
    from: i64,
    to: i64,
    zone: Zone,
    /// The `tz` parameter as given (`UTC` without one).
    tz: String,
}

fn report_filter(params: &mut Vec<(String, String)>, default_days: i64, now: i64) -> ApiResult<Scope> {
    let has_range = params.iter().any(|(k, _)| matches!(k.as_str(), "days" | "range" | "from" | "to"));
    if !has_range {
        params.push(("days".into(), default_days.to_string()));
    }
    let tz = params.iter().rev().find(|(k, _)| k == "tz").map_or_else(|| "UTC".to_string(), |(_, v)| v.clone());
    params.retain(|(k, _)| !matches!(k.as_str(), "bucket" | "n" | "tz"));
    let (from, to) = native::time_range(params, now)?;
    let filter = native::filter(SIGNIN, params, now)?;
    let (from, to) = (from.unwrap_or(now - default_days * DAY), to.unwrap_or(now));
    Ok(Scope { filter, from, to, zone: zone_between(&tz, from, to)?, tz })
}

/// The wall clock of time zone `name` (IANA, e.g. `Europe/Paris`, or `UTC`) from a week before
/// `from` to a week after `to` (week buckets start before `from`): its offset, and every
/// change of it (found by sampling every three hours, then to the second).
pub(crate) fn zone_between(name: &str, from: i64, to: i64) -> ApiResult<Zone> {
    if name.eq_ignore_ascii_case("UTC") {
        return Ok(Zone::UTC);
    }
    let tz: chrono_tz::Tz = name.parse().map_err(|_| {
        ApiError::BadRequest(format!("tz {name:?}: expected a time zone name such as Europe/Paris, or UTC"))
    })?;
    let offset_at_second = |second: i64| -> i64 {
        chrono::DateTime::from_timestamp(second, 0)
            .map_or(0, |t| i64::from(tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc()) * 1_000_000)
    };
    let (start, end) = ((from - 8 * DAY).div_euclid(1_000_000), (to + 8 * DAY).div_euclid(1_000_000));
    let step = 3 * HOUR / 1_000_000;
    let base = offset_at_second(start);
    let (mut changes, mut current, mut at) = (Vec::new(), base, start);
    while at < end {
        let next = (at + step).min(end);
        let offset = offset_at_second(next);
        if offset != current {
            // The first second with the new offset, in (at, next].
            let (mut before, mut after) = (at, next);
            while after - before > 1 {
                let middle = before + (after - before) / 2;
                match offset_at_second(middle) == current {
                    true => before = middle,
                    false => after = middle,
                }
            }
            changes.push((after * 1_000_000, offset));
            current = offset;
        }
        at = next;
    }
    Ok(Zone { base, changes })
}

fn agg(
    engine: &Engine,
    org: &str,
    filter: &Expr,
    group_by: Vec<GroupBy>,
    measures: Vec<Measure>,
    top: Option<usize>,
) -> ApiResult<Vec<Vec<Cell>>> {
    let query = AggQuery {
        org: org.to_string(),
        kind: SIGNIN,
        filter: filter.clone(),
        group_by,
        measures,
        order_by_first_measure_desc: top.is_some(),
        limit: top,
    };
    Ok(engine.store().aggregate(&query)?)
}

fn int(cell: &Cell) -> i64 {
    match cell {
        Cell::Int(i) | Cell::Time(i) => *i,
        _ => 0,
    }
}

pub(crate) fn bucket_start(t: i64, bucket: Bucket) -> i64 {
    let day_start = t.div_euclid(DAY) * DAY;
    match bucket {
        Bucket::Hour => t.div_euclid(DAY / 24) * (DAY / 24),
        Bucket::Day => day_start,
        // 1970-01-01 was a Thursday: Monday-based weeks are offset by 3 days.
        Bucket::Week => (t + 3 * DAY).div_euclid(7 * DAY) * 7 * DAY - 3 * DAY,
        Bucket::Micros(width) => t.div_euclid(width.max(1)) * width.max(1),
    }
}

pub(crate) fn bucket_len(bucket: Bucket) -> i64 {
    match bucket {
        Bucket::Hour => DAY / 24,
        Bucket::Day => DAY,
        Bucket::Week => 7 * DAY,
        Bucket::Micros(width) => width.max(1),
    }
}

fn status_measures() -> Vec<Measure> {
    vec![
        Measure::Count,
        Measure::CountIf(status_is("success")),
        Measure::CountIf(status_is("failure")),
        Measure::CountIf(status_is("interrupted")),
        Measure::CountDistinct(col("user_hash")),
    ]
}

/// Sign-ins per day or week: total, success, failure, interrupted, distinct users.
pub fn timeline(engine: &Engine, org: &str, mut params: Vec<(String, String)>, now: i64) -> ApiResult<Value> {
    let bucket = match params.iter().find(|(k, _)| k == "bucket").map(|(_, v)| v.as_str()) {
        None | Some("day") => Bucket::Day,
        Some("week") => Bucket::Week,
        Some("hour") => Bucket::Hour,
        Some(other) => return Err(ApiError::BadRequest(format!("bucket {other:?}: expected day or week"))),
    };
    let Scope { filter, from, to, zone, tz } = report_filter(&mut params, 30, now)?;
    let group = GroupBy::TimeBucket(col("event_time"), bucket, zone.clone());
    let rows = agg(engine, org, &filter, vec![group], status_measures(), None)?;
    let mut points = Vec::new();
    // Buckets are walked on the zone's wall clock; each point says when it starts (UTC).
    let (mut start, end) = (bucket_start(zone.local(from), bucket), zone.local(to));
    let mut found = rows.iter().peekable();
    let zero = [Cell::Int(0), Cell::Int(0), Cell::Int(0), Cell::Int(0), Cell::Int(0)];
    while start < end || found.peek().is_some() {
        let row = match found.peek() {
            Some(row) if int(&row[0]) == start => found.next().map(|r| &r[1..]),
            Some(row) if int(&row[0]) < start => {
                found.next();
                continue;
            }
            _ => None,
        };
        let instant = zone.utc(start);
        // An hour the clock skips (02:00 when summer time starts) holds nothing: no point.
        let skipped = row.is_none() && zone.utc(start + bucket_len(bucket)) == instant;
        let m = row.unwrap_or(&zero);
        if !skipped {
            points.push(json!({
                "start": signet_model::time::format_time(instant),
                "total": int(&m[0]), "success": int(&m[1]), "failure": int(&m[2]), "interrupted": int(&m[3]), "users": int(&m[4]),
            }));
        }
        start += bucket_len(bucket);
        if points.len() > 10_000 {
            break;
        }
    }
    Ok(json!({
        "bucket": match bucket { Bucket::Day => "day", Bucket::Week => "week", Bucket::Hour | Bucket::Micros(_) => "hour" },
        "tz": tz,
        "from": signet_model::time::format_time(from),
        "to": signet_model::time::format_time(to),
        "points": points,
    }))
}

/// The `n` applications with the most sign-ins, each with its weekly series.
pub fn top_apps(engine: &Engine, org: &str, mut params: Vec<(String, String)>, now: i64) -> ApiResult<Value> {
    let n: usize = match params.iter().find(|(k, _)| k == "n").map(|(_, v)| v.parse()) {
        None => 3,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return Err(ApiError::BadRequest("n must be 1-100".into())),
    };
    let Scope { filter, from, to, zone, tz } = report_filter(&mut params, 30, now)?;
    let app = col("app_display_name");
    // Sign-ins per application, week and status in one pass: the ranking, the totals and the
    // weekly series all come from these few rows.
    let week = GroupBy::TimeBucket(col("event_time"), Bucket::Week, zone.clone());
    let rows = agg(
        engine,
        org,
        &filter,
        vec![GroupBy::Column(app), week, GroupBy::Column(col("status"))],
        vec![Measure::Count],
        None,
    )?;
    #[derive(Default)]
    struct AppTotals {
        total: i64,
        by_status: [i64; 3],
        weeks: BTreeMap<i64, i64>,
    }
    let mut totals: BTreeMap<Option<String>, AppTotals> = BTreeMap::new();
    for row in &rows {
        let entry = totals.entry(row[0].as_str().map(str::to_string)).or_default();
        let count = int(&row[3]);
        entry.total += count;
        *entry.weeks.entry(int(&row[1])).or_default() += count;
        if let Some(i) = ["success", "failure", "interrupted"].iter().position(|s| row[2].as_str() == Some(s)) {
            entry.by_status[i] += count;
        }
    }
    // Most sign-ins first; ties by name, no name last (as a top-N query orders them).
    let mut ranked: Vec<(Option<String>, AppTotals)> = totals.into_iter().collect();
    ranked.sort_by(|(a, x), (b, y)| y.total.cmp(&x.total).then_with(|| (a.is_none(), a).cmp(&(b.is_none(), b))));
    ranked.truncate(n);
    // Distinct users of the top applications only.
    let names: Vec<Option<String>> = ranked.iter().map(|(name, _)| name.clone()).collect();
    let users = match names.is_empty() {
        true => Vec::new(),
        false => agg(
            engine,
            org,
            &filter,
            vec![GroupBy::Among(app, names)],
            vec![Measure::CountDistinct(col("user_hash"))],
            None,
        )?,
    };
    let (first_week, end) = (bucket_start(zone.local(from), Bucket::Week), zone.local(to));
    let apps: Vec<Value> = ranked
        .iter()
        .map(|(name, t)| {
            let mut series = Vec::new();
            let mut week = first_week;
            while week < end {
                let count = t.weeks.get(&week).copied().unwrap_or(0);
                series.push(json!({ "week": signet_model::time::format_time(zone.utc(week)), "count": count }));
                week += 7 * DAY;
            }
            let users = users.iter().find(|u| u[0].as_str() == name.as_deref()).map_or(0, |u| int(&u[1]));
            json!({
                "app": name, "total": t.total, "success": t.by_status[0], "failure": t.by_status[1],
                "interrupted": t.by_status[2], "users": users, "weekly": series,
            })
        })
        .collect();
    Ok(json!({
        "tz": tz, "from": signet_model::time::format_time(from), "to": signet_model::time::format_time(to), "apps": apps,
    }))
}

/// Sign-ins by status and distinct users over a period ("how many users signed in this week").
pub fn summary(engine: &Engine, org: &str, mut params: Vec<(String, String)>, now: i64) -> ApiResult<Value> {
    let Scope { filter, from, to, .. } = report_filter(&mut params, 7, now)?;
    let mut measures = status_measures();
    measures.push(Measure::CountDistinct(col("app_display_name")));
    measures.push(Measure::CountIf(Expr::eq(col("risk_detected"), Literal::Bool(true))));
    measures.push(Measure::CountDistinct(col("ip_address")));
    let rows = agg(engine, org, &filter, vec![], measures, None)?;
    let m = rows.first().cloned().unwrap_or_default();
    let get = |i: usize| m.get(i).map_or(0, int);
    Ok(json!({
        "from": signet_model::time::format_time(from), "to": signet_model::time::format_time(to),
        "total": get(0), "success": get(1), "failure": get(2), "interrupted": get(3),
        "users": get(4), "applications": get(5), "risky": get(6), "ipAddresses": get(7),
    }))
}

/// How one user signs in: hour x weekday matrix, places, applications, clients, devices, failures.
pub fn user_pattern(
    engine: &Engine,
    org: &str,
    user: &str,
    mut params: Vec<(String, String)>,
    now: i64,
) -> ApiResult<Value> {
    params.retain(|(k, _)| k != "user");
    params.push(("user".into(), user.to_string()));
    // The sign-ins the list shows for `user=` (its id, UPN or display name, as the list matches
    // them) with the other filters: the report's totals are the list's count.
    let Scope { filter, from, to, zone, tz } = report_filter(&mut params, 90, now)?;
    let time = col("event_time");
    // One statement: the totals, the hour x weekday matrix and every top list are sets of one
    // multi-aggregation over the filtered rows, materialised once, so the filter (three text
    // columns for the user) is evaluated once per row. Resolving the user to its distinct-user
    // keys first cost a second scan of the period (docs/benchmarks.md run 46).
    let groups = |names: &[&str]| names.iter().map(|n| GroupBy::Column(col(n))).collect::<Vec<_>>();
    let tops: [(&[&str], &[&str]); 5] = [
        (&["country"], &["country"]),
        (&["city", "country"], &["city", "country"]),
        (&["app_display_name"], &["app"]),
        (&["client_app_used"], &["clientApp"]),
        (&["operating_system", "browser"], &["operatingSystem", "browser"]),
    ];
    let count = || vec![Measure::Count];
    let totals = vec![
        Measure::Count,
        Measure::CountIf(status_is("success")),
        Measure::CountIf(status_is("failure")),
        Measure::CountIf(status_is("interrupted")),
        Measure::MinTime(time),
        Measure::MaxTime(time),
        Measure::CountDistinct(col("ip_address")),
    ];
    let mut sets = vec![
        GroupSet::all(vec![], totals),
        GroupSet::all(vec![GroupBy::DayOfWeek(time, zone.clone()), GroupBy::HourOfDay(time, zone)], count()),
    ];
    sets.extend(tops.iter().map(|(columns, _)| GroupSet::top(groups(columns), count(), 20)));
    // Failures: every (error code, reason) with its sign-ins and its successful ones, cut below.
    sets.push(GroupSet::all(
        groups(&["error_code", "failure_reason"]),
        vec![Measure::Count, Measure::CountIf(status_is("success"))],
    ));
    let query = MultiAggQuery { org: org.to_string(), kind: SIGNIN, filter, sets };
    let answer = engine.store().aggregate_sets(&query)?;
    let t = answer[0].first().cloned().unwrap_or_default();
    let mut matrix = vec![vec![0i64; 24]; 7];
    for row in &answer[1] {
        let (day, hour) = (int(&row[0]), int(&row[1]));
        if (1..=7).contains(&day) && (0..24).contains(&hour) {
            matrix[(day - 1) as usize][hour as usize] = int(&row[2]);
        }
    }
    let named = |rows: &[(&[Cell], i64)], names: &[&str]| -> Vec<Value> {
        rows.iter()
            .map(|(groups, count)| {
                let mut object = serde_json::Map::new();
                for (name, cell) in names.iter().zip(groups.iter()) {
                    object.insert((*name).into(), cell_json(cell));
                }
                object.insert("count".into(), json!(count));
                Value::Object(object)
            })
            .collect()
    };
    let top = |i: usize, names: &[&str]| -> Vec<Value> {
        let rows: Vec<(&[Cell], i64)> =
            answer[i].iter().map(|row| (&row[..names.len()], int(&row[names.len()]))).collect();
        named(&rows, names)
    };
    // Non-successful sign-ins per (error code, reason), most first (ties in group order).
    let mut failures: Vec<(&[Cell], i64)> =
        answer[7].iter().map(|row| (&row[..2], int(&row[2]) - int(&row[3]))).filter(|(_, n)| *n > 0).collect();
    failures.sort_by_key(|f| std::cmp::Reverse(f.1));
    failures.truncate(20);
    let first_seen = t.get(4).filter(|c| **c != Cell::Null).map(|c| signet_model::time::format_time(int(c)));
    let last_seen = t.get(5).filter(|c| **c != Cell::Null).map(|c| signet_model::time::format_time(int(c)));
    Ok(json!({
        "user": user, "tz": tz,
        "from": signet_model::time::format_time(from), "to": signet_model::time::format_time(to),
        "total": t.first().map_or(0, int), "success": t.get(1).map_or(0, int), "failure": t.get(2).map_or(0, int),
        "interrupted": t.get(3).map_or(0, int), "firstSeen": first_seen, "lastSeen": last_seen,
        "ipAddresses": t.get(6).map_or(0, int),
        "hourByWeekday": { "weekdays": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], "counts": matrix },
        "countries": top(2, tops[0].1),
        "cities": top(3, tops[1].1),
        "applications": top(4, tops[2].1),
        "clientApps": top(5, tops[3].1),
        "devices": top(6, tops[4].1),
        "failures": named(&failures, &["errorCode", "failureReason"]),
    }))
}

/// Authentication methods: usage and success rate per method, MFA, passwordless and
/// MFA-by-token-claim shares.
pub fn auth_methods(engine: &Engine, org: &str, mut params: Vec<(String, String)>, now: i64) -> ApiResult<Value> {
    let Scope { filter, from, to, .. } = report_filter(&mut params, 30, now)?;
    let mfa = Expr::eq(col("authentication_requirement"), Literal::Str("multiFactorAuthentication".into()));
    let totals = agg(
        engine,
        org,
        &filter,
        vec![],
        vec![
            Measure::Count,
            Measure::CountIf(mfa),
            Measure::CountIf(Expr::eq(col("passwordless"), Literal::Bool(true))),
            Measure::CountIf(Expr::eq(col("mfa_satisfied_by_claim"), Literal::Bool(true))),
        ],
        None,
    )?;
    let t = totals.first().cloned().unwrap_or_default();
    let total = t.first().map_or(0, int);
    let share = |n: i64| if total == 0 { 0.0 } else { n as f64 / total as f64 };
    // One pass over the unnested methods; the unnest reads only the three columns it needs.
    let used = agg(
        engine,
        org,
        &filter,
        vec![GroupBy::Unnest(col("auth_methods"))],
        vec![
            Measure::Count,
            Measure::CountWhereGroupIn(col("auth_methods_succeeded")),
            Measure::CountDistinct(col("user_hash")),
        ],
        Some(100),
    )?;
    let methods: Vec<Value> = used
        .iter()
        .map(|row| {
            let (used, ok) = (int(&row[1]), int(&row[2]));
            json!({
                "method": cell_json(&row[0]), "signIns": used, "succeeded": ok, "users": int(&row[3]),
                "successRate": if used == 0 { 0.0 } else { ok as f64 / used as f64 },
            })
        })
        .collect();
    let (with_mfa, passwordless, by_claim) =
        (t.get(1).map_or(0, int), t.get(2).map_or(0, int), t.get(3).map_or(0, int));
    Ok(json!({
        "from": signet_model::time::format_time(from), "to": signet_model::time::format_time(to),
        "signIns": total,
        "mfaRequired": with_mfa, "mfaShare": share(with_mfa),
        "passwordless": passwordless, "passwordlessShare": share(passwordless),
        "mfaSatisfiedByClaim": by_claim, "mfaSatisfiedByClaimShare": share(by_claim),
        "methods": methods,
    }))
}

pub(crate) async fn run_report(
    state: &AppState,
    caller: Caller,
    raw: Option<String>,
    report: impl FnOnce(&Engine, &str, Vec<(String, String)>, i64) -> ApiResult<Value> + Send + 'static,
) -> ApiResult<Json<Value>> {
    let params = parse_query(raw.as_deref());
    let engine = state.engine.clone();
    let org = caller.org().to_string();
    let now = signet_model::time::now_micros();
    let value = tokio::task::spawn_blocking(move || report(&engine, &org, params, now)).await??;
    Ok(Json(value))
}

pub async fn timeline_route(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    run_report(&state, caller, raw, timeline).await
}

pub async fn top_apps_route(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    run_report(&state, caller, raw, top_apps).await
}

pub async fn summary_route(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    run_report(&state, caller, raw, summary).await
}

pub async fn user_pattern_route(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    run_report(&state, caller, raw, move |e, o, p, n| user_pattern(e, o, &user, p, n)).await
}

pub async fn auth_methods_route(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    run_report(&state, caller, raw, auth_methods).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday() {
        let monday = 1_704_067_200_000_000; // 2024-01-01, a Monday
        assert_eq!(bucket_start(monday + 3 * DAY + 5, Bucket::Week), monday);
        assert_eq!(bucket_start(monday - 1, Bucket::Week), monday - 7 * DAY);
        assert_eq!(bucket_start(monday + DAY / 2, Bucket::Day), monday);
    }
}
