//! The day counts: every answer from day rows against the same query over the sign-ins.

use signet_model::schema::find_column;
use signet_query::ast::Zone;

use super::*;
use crate::conformance::{signin_json, stored, T0};
use crate::engine::EventStore;

const HOUR: i64 = 3_600_000_000;

fn col(name: &str) -> &'static signet_model::schema::Column {
    find_column(LogKind::SignIn, name).unwrap()
}

fn timeline(bucket: Bucket, low: i64, high: Option<i64>) -> AggQuery {
    let mut bounds = vec![Expr::Compare { column: col("event_time"), op: CmpOp::Ge, value: Literal::Time(low) }];
    bounds.extend(high.map(|h| Expr::Compare { column: col("event_time"), op: CmpOp::Lt, value: Literal::Time(h) }));
    let status = |s: &str| Measure::CountIf(Expr::eq(col("status"), Literal::Str(s.into())));
    AggQuery {
        org: "default".into(),
        kind: LogKind::SignIn,
        filter: Expr::and(bounds),
        group_by: vec![GroupBy::TimeBucket(col("event_time"), bucket, Zone::UTC)],
        measures: vec![
            Measure::Count,
            status("success"),
            status("failure"),
            status("interrupted"),
            Measure::CountDistinct(col("user_hash")),
        ],
        order_by_first_measure_desc: false,
        limit: None,
    }
}

/// Sign-ins per application, time bucket and status (the top applications' first pass).
fn app_weeks(bucket: Bucket, low: i64) -> AggQuery {
    let mut query = timeline(bucket, low, None);
    query.group_by = vec![
        GroupBy::Column(col("app_display_name")),
        GroupBy::TimeBucket(col("event_time"), bucket, Zone::UTC),
        GroupBy::Column(col("status")),
    ];
    query.measures = vec![Measure::Count];
    query
}

/// The same query answered from the sign-ins alone.
fn scanned(store: &DuckStore, query: &AggQuery) -> Vec<Vec<Cell>> {
    store.query_cells(&signet_query::sql::agg_sql_from(query, DIALECT, "signins"), None).unwrap()
}

fn signin(n: &mut u64, id: &str, hours: i64, user: usize, code: i64, revision: u32) -> StoredEvent {
    *n += 1;
    let app = ["Outlook", "Teams", "SharePoint"][(user + hours as usize) % 3];
    let json = signin_json(id, hours, &format!("user{user}@contoso.com"), app, code, "");
    stored("default", LogKind::SignIn, &json, revision, *n * 100)
}

fn stored_days(store: &DuckStore) -> i64 {
    let conn = store.writer();
    conn.query_row("SELECT count(*) FROM signin_day_prints", [], |r| r.get(0)).unwrap()
}

#[test]
fn the_timeline_from_day_rows_is_the_timeline_from_the_sign_ins() {
    let store = DuckStore::open_in_memory().unwrap();
    let mut n = 0;
    let codes = [0, 0, 50126, 0, 50074, 0, 53003];
    let mut events = Vec::new();
    for day in 0..12 {
        for i in 0..(6 + day as usize) {
            events.push(signin(&mut n, &format!("d{day}-{i}"), day * 24 + i as i64, i % 5, codes[i % 7], 1));
        }
    }
    store.apply(&events, n * 100).unwrap();
    let queries = [
        timeline(Bucket::Day, T0 + 13 * HOUR, None),
        timeline(Bucket::Week, T0 + 13 * HOUR, None),
        timeline(Bucket::Day, T0 + 2 * 24 * HOUR, Some(T0 + 10 * 24 * HOUR + 5 * HOUR)),
        app_weeks(Bucket::Week, T0 + 13 * HOUR),
        app_weeks(Bucket::Day, T0 + 13 * HOUR),
    ];
    let check = |store: &DuckStore, what: &str| {
        for query in &queries {
            *store.days_made.lock() = None; // no pause between makings here
            assert!(Plan::of(query, 30_000).is_some(), "{query:?}");
            let expected = scanned(store, query);
            assert!(!expected.is_empty());
            assert_eq!(store.aggregate(query).unwrap(), expected, "{what}: {:?}", query.group_by);
        }
    };
    check(&store, "first answer, the days made");
    assert_eq!(stored_days(&store), 11, "the whole days from the first query's range");
    check(&store, "from the day rows");
    // They are what is read: a count changed in them shows in the answer.
    let day2 = T0.div_euclid(DAY) + 2;
    store.writer().execute_batch(&format!("UPDATE signin_user_days SET n = n + 1000 WHERE day = {day2}")).unwrap();
    let answer = store.aggregate(&queries[0]).unwrap();
    assert_eq!(answer[1][1], Cell::Int(5008), "day 2's 8 sign-ins and 1,000 more for each of its 5 users");
    // ... which `verify --projection` reports.
    let found = differences(&store.writer()).unwrap();
    assert_eq!(found.len(), 1, "changed day rows are found");
    assert_eq!((found[0].table, found[0].only_here, found[0].only_there), ("signin_user_days", 5, 5));
    assert_eq!(found[0].ids, vec![format!("default/day {day2}")]);
    store.writer().execute_batch(&format!("UPDATE signin_user_days SET n = n - 1000 WHERE day = {day2}")).unwrap();
    assert!(differences(&store.writer()).unwrap().is_empty());
    // The same for the per-application rows.
    let change = |by: i64| format!("UPDATE signin_app_days SET n = n + {by} WHERE day = {day2} AND app = 'Teams'");
    let before = store.aggregate(&queries[4]).unwrap();
    store.writer().execute_batch(&change(1000)).unwrap();
    let after = store.aggregate(&queries[4]).unwrap();
    let teams = |rows: &[Vec<Cell>]| -> (i64, usize) {
        let on_day2: Vec<&Vec<Cell>> =
            rows.iter().filter(|r| r[0] == Cell::Str("Teams".into()) && r[1] == Cell::Int(day2 * DAY)).collect();
        (on_day2.iter().map(|r| if let Cell::Int(n) = r[3] { n } else { 0 }).sum(), on_day2.len())
    };
    let ((was, _), (now, statuses)) = (teams(&before), teams(&after));
    assert!(statuses > 0);
    assert_eq!(now, was + 1000 * statuses as i64, "read from the per-application rows");
    assert_eq!(differences(&store.writer()).unwrap()[0].table, "signin_app_days");
    store.writer().execute_batch(&change(-1000)).unwrap();
    assert!(differences(&store.writer()).unwrap().is_empty());

    // Within the pause after a making, a changed day is counted from the sign-ins but not
    // made again.
    *store.days_made.lock() = Some(std::time::Instant::now());
    store.writer().execute_batch("DELETE FROM signins WHERE id = 'd9-0'").unwrap();
    assert_eq!(store.aggregate(&queries[0]).unwrap(), scanned(&store, &queries[0]));
    let day9 = T0.div_euclid(DAY) + 9;
    let sql = format!("SELECT rows FROM signin_day_prints WHERE day = {day9}");
    let made: i64 = store.writer().query_row(&sql, [], |r| r.get(0)).unwrap();
    assert_eq!(made, 15, "day 9's print still counts d9-0");
    // A late sign-in on day 3, a revision on day 5 that turns a success into a failure,
    // and day 7's sign-ins removed (as archiving removes rows): those days are read from
    // the sign-ins until they are made again.
    n += 1;
    let late = signin(&mut n, "late", 3 * 24 + 20, 9, 0, 1);
    let revised = signin(&mut n, "d5-0", 5 * 24, 0, 50126, 2);
    store.apply(&[late, revised], n * 100).unwrap();
    store.writer().execute_batch("DELETE FROM signins WHERE id LIKE 'd7-%'").unwrap();
    check(&store, "after changes to days 3, 5 and 7");
    check(&store, "days 3, 5 and 7 made again");
    assert_eq!(stored_days(&store), 10, "day 7 has no sign-ins left");
    assert!(differences(&store.writer()).unwrap().is_empty());
    // What archiving runs with its removal: the whole days of the range go.
    store.writer().execute_batch(&forget_days_sql("default", T0 + 2 * DAY + 1, T0 + 6 * DAY)).unwrap();
    assert_eq!(stored_days(&store), 7, "days 3, 4 and 5 forgotten");
    check(&store, "days 3, 4 and 5 counted from the sign-ins again");
}

#[test]
fn the_prints_are_read_again_only_after_a_write_to_the_sign_ins() {
    let store = DuckStore::open_in_memory().unwrap();
    let mut n = 0;
    let events: Vec<StoredEvent> =
        (0..60).map(|i| signin(&mut n, &format!("p{i}"), i as i64 * 2, i % 4, 0, 1)).collect();
    store.apply(&events, n * 100).unwrap();
    let query = timeline(Bucket::Day, T0 + HOUR, None);
    store.aggregate(&query).unwrap(); // the days made
    assert_eq!(store.aggregate(&query).unwrap(), scanned(&store, &query), "from the day rows");
    // A change past the writer's count (only a test can make one) is not seen: the prints
    // are the cached ones, so day 1's rows still count its removed sign-in.
    store.writer.lock().execute_batch("DELETE FROM signins WHERE id = 'p14'").unwrap();
    let cached = store.aggregate(&query).unwrap();
    assert_ne!(cached, scanned(&store, &query), "the prints were not read again");
    // The access log's activities leave the cache as it is ...
    n += 1;
    let activity = r#"{"Id":"a1","CreationTime":"2024-01-01T11:00:00","Operation":"Read","User":"bob@contoso.com"}"#;
    store.apply(&[stored("default", LogKind::Activity, activity, 1, n * 100)], n * 100).unwrap();
    assert_eq!(store.aggregate(&query).unwrap(), cached);
    // ... and so does a checkpoint ...
    store.settle().unwrap();
    assert_eq!(store.aggregate(&query).unwrap(), cached);
    // ... any other use of the writer reads them again.
    store.writer().execute_batch("SELECT 1").unwrap();
    assert_eq!(store.aggregate(&query).unwrap(), scanned(&store, &query));
    store.writer.lock().execute_batch("DELETE FROM signins WHERE id = 'p30'").unwrap();
    assert_ne!(store.aggregate(&query).unwrap(), scanned(&store, &query));
    // Sign-ins of today (as they arrive) leave them too ...
    let now = (signet_model::time::now_micros() - T0) / HOUR;
    n += 1;
    store.apply(&[signin(&mut n, "p98", now, 1, 0, 1)], n * 100).unwrap();
    assert_ne!(store.aggregate(&query).unwrap(), scanned(&store, &query), "today's sign-in left the prints cached");
    // ... a sign-in of a cached day, or a revision of today's, does not.
    n += 1;
    store.apply(&[signin(&mut n, "p99", 49, 1, 0, 1)], n * 100).unwrap();
    assert_eq!(store.aggregate(&query).unwrap(), scanned(&store, &query), "after a sign-in of day 2");
    store.writer.lock().execute_batch("DELETE FROM signins WHERE id = 'p40'").unwrap();
    assert_ne!(store.aggregate(&query).unwrap(), scanned(&store, &query));
    n += 1;
    store.apply(&[signin(&mut n, "p98", now, 2, 0, 2)], n * 100).unwrap();
    assert_eq!(store.aggregate(&query).unwrap(), scanned(&store, &query), "after a revision");
}

/// Sign-ins per authentication method (the authentication methods report's second pass).
fn methods_query(low: i64) -> AggQuery {
    let mut query = timeline(Bucket::Day, low, None);
    query.group_by = vec![GroupBy::Unnest(col("auth_methods"))];
    query.measures = vec![
        Measure::Count,
        Measure::CountWhereGroupIn(col("auth_methods_succeeded")),
        Measure::CountDistinct(col("user_hash")),
    ];
    query.order_by_first_measure_desc = true;
    query.limit = Some(100);
    query
}

/// A sign-in with the given authentication steps (method, succeeded); `user` `None`: no
/// user at all.
fn signin_with(n: &mut u64, id: &str, hours: i64, user: Option<usize>, steps: &[(&str, bool)]) -> StoredEvent {
    *n += 1;
    let details: Vec<String> =
        steps.iter().map(|(method, ok)| format!(r#"{{"authenticationMethod":"{method}","succeeded":{ok}}}"#)).collect();
    let extra = format!(r#","authenticationDetails":[{}]"#, details.join(","));
    let json = match user {
        Some(user) => signin_json(id, hours, &format!("user{user}@contoso.com"), "Teams", 0, &extra),
        None => format!(
            r#"{{"id":"{id}","createdDateTime":"{}","appDisplayName":"Teams","status":{{"errorCode":0}}{extra}}}"#,
            signet_model::time::format_time(T0 + hours * HOUR)
        ),
    };
    stored("default", LogKind::SignIn, &json, 1, *n * 100)
}

#[test]
fn sign_ins_per_method_from_day_rows_are_those_from_the_sign_ins() {
    let store = DuckStore::open_in_memory().unwrap();
    let steps: [&[(&str, bool)]; 5] = [
        &[("Password", true)],
        &[("Password", true), ("Text message", true)],
        &[("Password", true), ("Mobile app notification", false)],
        &[("FIDO2 security key", true)],
        &[],
    ];
    let mut n = 0;
    let mut events = Vec::new();
    for day in 0..10 {
        for i in 0..(8 + day as usize) {
            let user = (i % 4 != 3).then_some((i + day as usize) % 6);
            events.push(signin_with(
                &mut n,
                &format!("m{day}-{i}"),
                day * 24 + i as i64,
                user,
                steps[(i + 2 * day as usize) % 5],
            ));
        }
    }
    store.apply(&events, n * 100).unwrap();
    let query = methods_query(T0 + 13 * HOUR);
    assert!(Plan::of(&query, 30_000).is_some());
    let check = |store: &DuckStore, what: &str| {
        *store.days_made.lock() = None;
        let expected = scanned(store, &query);
        assert!(expected.len() >= 4, "{what}: {expected:?}");
        assert_eq!(store.aggregate(&query).unwrap(), expected, "{what}");
    };
    check(&store, "first answer, the days made");
    assert_eq!(stored_days(&store), 9);
    check(&store, "from the day rows");
    // The users' method bits are what is read: a user's bits cleared on one day lose the
    // users nothing (other days have them) unless cleared everywhere.
    let users_of = |rows: &[Vec<Cell>], method: &str| {
        rows.iter().find(|r| r[0] == Cell::Str(method.into())).map(|r| r[3].clone()).unwrap()
    };
    let before = users_of(&store.aggregate(&query).unwrap(), "Password");
    store.writer().execute_batch("UPDATE signin_user_method_days SET methods = 0").unwrap();
    let now = store.aggregate(&query).unwrap();
    assert_ne!(users_of(&now, "Password"), before, "read from the users' day rows");
    assert_eq!(differences(&store.writer()).unwrap()[0].table, "signin_user_method_days");
    store.writer().execute_batch("DELETE FROM signin_day_prints").unwrap();
    check(&store, "all days made again");
    assert!(differences(&store.writer()).unwrap().is_empty());
    // The per-set rows too.
    store.writer().execute_batch("UPDATE signin_set_days SET n = n + 100").unwrap();
    assert_ne!(store.aggregate(&query).unwrap(), scanned(&store, &query), "read from the sets' day rows");
    assert_eq!(differences(&store.writer()).unwrap()[0].table, "signin_set_days");
    store.writer().execute_batch("DELETE FROM signin_day_prints").unwrap();
    check(&store, "made again");
    // A late sign-in with a method never seen before: its day is counted from the sign-ins,
    // then made again with the method's new bit.
    let late = signin_with(&mut n, "late", 4 * 24 + 20, Some(9), &[("Windows Hello for Business", true)]);
    store.apply(&[late], n * 100).unwrap();
    check(&store, "a new method, its day scanned");
    check(&store, "its day made again");
    let bits: i64 = store.writer().query_row("SELECT count(*) FROM signin_method_bits", [], |r| r.get(0)).unwrap();
    assert_eq!(bits, 5, "one bit per method, each once");
    // Ordered by method instead, no limit: the same rows as the scan.
    let mut by_method = methods_query(T0 + 13 * HOUR);
    (by_method.order_by_first_measure_desc, by_method.limit) = (false, None);
    assert_eq!(store.aggregate(&by_method).unwrap(), scanned(&store, &by_method));
}

#[test]
fn more_methods_than_bits_are_counted_from_the_sign_ins() {
    let store = DuckStore::open_in_memory().unwrap();
    let mut n = 0;
    let names: Vec<String> = (0..70).map(|i| format!("Method {i:02}")).collect();
    let events: Vec<StoredEvent> = (0..70)
        .map(|i| signin_with(&mut n, &format!("x{i}"), i as i64 * 3, Some(i % 7), &[(&names[i], i % 2 == 0)]))
        .collect();
    store.apply(&events, n * 100).unwrap();
    let query = methods_query(T0 + HOUR);
    for what in ["days made", "bits past 64: scanned"] {
        *store.days_made.lock() = None;
        assert_eq!(store.aggregate(&query).unwrap(), scanned(&store, &query), "{what}");
    }
    let over: i64 =
        store.writer().query_row("SELECT count(*) FROM signin_method_bits WHERE bit >= 64", [], |r| r.get(0)).unwrap();
    assert_eq!(over, 6);
}

#[test]
fn only_utc_timelines_bounded_by_time_alone_are_planned() {
    let today = 30_000;
    assert!(Plan::of(&timeline(Bucket::Day, T0, None), today).is_some());
    let mut paris = timeline(Bucket::Day, T0, None);
    paris.group_by = vec![GroupBy::TimeBucket(col("event_time"), Bucket::Day, Zone { base: HOUR, changes: vec![] })];
    assert!(Plan::of(&paris, today).is_none(), "another time zone's days");
    let mut failures = timeline(Bucket::Day, T0, None);
    failures.filter = Expr::and(vec![failures.filter.clone(), Expr::eq(col("status"), Literal::Str("failure".into()))]);
    assert!(Plan::of(&failures, today).is_none(), "a filter beyond the time range");
    let mut by_app = timeline(Bucket::Day, T0, None);
    by_app.measures.push(Measure::CountDistinct(col("app_display_name")));
    assert!(Plan::of(&by_app, today).is_none(), "a measure the day rows do not hold");
    assert!(Plan::of(&timeline(Bucket::Hour, T0, None), today).is_none(), "hours");
    assert!(Plan::of(&app_weeks(Bucket::Week, T0), today).is_some());
    assert!(Plan::of(&methods_query(T0), today).is_some(), "per method, ordered and limited");
    let mut method_ifs = methods_query(T0);
    method_ifs.measures.push(Measure::CountIf(Expr::eq(col("status"), Literal::Str("failure".into()))));
    assert!(Plan::of(&method_ifs, today).is_none(), "per method, a count the day rows do not hold");
    let mut app_users = app_weeks(Bucket::Week, T0);
    app_users.measures.push(Measure::CountDistinct(col("user_hash")));
    assert!(Plan::of(&app_users, today).is_none(), "per application, only the count");
    assert!(Plan::of(&timeline(Bucket::Day, T0 + 12 * HOUR, Some(T0 + 60 * HOUR)), today).is_none(), "one whole day");
    let recent = T0.div_euclid(DAY);
    assert!(Plan::of(&timeline(Bucket::Day, T0, None), recent + 1).is_none(), "nothing before today");
}
