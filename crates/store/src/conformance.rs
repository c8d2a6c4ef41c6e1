//! The conformance suite every [`EventStore`] must pass. Each check takes a fresh, empty store.
//! Run it for a backend with [`event_store_conformance_tests!`]:
//!
//! ```text
//! signet_store::event_store_conformance_tests!(|| Arc::new(DuckStore::open_in_memory().unwrap()));
//! ```

use std::sync::Arc;

use signet_model::schema::find_column;
use signet_model::{normalize, Cell, LogKind};
use signet_query::ast::{Bucket, GroupBy, Measure, Zone};
use signet_query::{native, odata, AggQuery, Expr, FacetQuery, GroupSet, ListQuery, MultiAggQuery, SortOrder};

use crate::engine::{aggregate_by_set, EventStore, StoredEvent};
use crate::log::RecordPtr;

pub const T0: i64 = 1_704_067_200_000_000; // 2024-01-01T00:00:00Z, a Monday
const HOUR: i64 = 3_600_000_000;

/// A sign-in for the fixtures.
pub fn signin_json(id: &str, hours_after_t0: i64, upn: &str, app: &str, error_code: i64, extra: &str) -> String {
    let created = signet_model::time::format_time(T0 + hours_after_t0 * HOUR);
    format!(
        r#"{{"id":"{id}","createdDateTime":"{created}","userId":"uid-{upn}","userPrincipalName":"{upn}","userDisplayName":"User {upn}",
        "appId":"app-{app}","appDisplayName":"{app}","ipAddress":"10.0.{h}.{l}","clientAppUsed":"Browser","isInteractive":true,
        "status":{{"errorCode":{error_code}}},"location":{{"city":"Paris","countryOrRegion":"FR"}}{extra}}}"#,
        h = hours_after_t0 % 200,
        l = id.len() % 200,
    )
}

pub(crate) fn stored(org: &str, kind: LogKind, json: &str, revision: u32, position: u64) -> StoredEvent {
    let event = normalize(kind, json.as_bytes()).unwrap_or_else(|e| panic!("fixture does not normalise: {e}: {json}"));
    StoredEvent { org: org.into(), revision, received_us: T0, ptr: RecordPtr { frame_pos: position, index: 0 }, event }
}

fn col(kind: LogKind, name: &str) -> &'static signet_model::schema::Column {
    find_column(kind, name).unwrap()
}

fn list(store: &dyn EventStore, org: &str, filter: Expr, limit: usize) -> Vec<String> {
    let query = ListQuery {
        org: org.into(),
        kind: LogKind::SignIn,
        filter,
        order: SortOrder::Desc,
        limit,
        after: None,
        columns: vec![col(LogKind::SignIn, "id")],
    };
    store.list(&query).unwrap().into_iter().map(|row| cell_str(&row[0])).collect()
}

fn cell_str(cell: &Cell) -> String {
    match cell {
        Cell::Str(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// Ten sign-ins over ten hours for org "a" (s0 oldest .. s9 newest) and one for org "b".
fn load_basic(store: &dyn EventStore) {
    let mut events = Vec::new();
    for i in 0..10 {
        let (upn, app, code) = match i % 3 {
            0 => ("alice@contoso.com", "Outlook", 0),
            1 => ("bob@contoso.com", "Teams", 50126),
            _ => ("carol@contoso.com", "Outlook", 50074),
        };
        events.push(stored(
            "a",
            LogKind::SignIn,
            &signin_json(&format!("s{i}"), i, upn, app, code, ""),
            1,
            100 + i as u64,
        ));
    }
    events.push(stored(
        "b",
        LogKind::SignIn,
        &signin_json("other-org", 1, "eve@fabrikam.com", "Outlook", 0, ""),
        1,
        200,
    ));
    store.apply(&events, 300).unwrap();
}

pub fn applies_and_tracks_position(store: Arc<dyn EventStore>) {
    assert_eq!(store.applied_position().unwrap(), 0);
    load_basic(&*store);
    assert_eq!(store.applied_position().unwrap(), 300);
    assert_eq!(store.count("a", LogKind::SignIn, &Expr::True).unwrap(), 10);
    assert_eq!(store.count("b", LogKind::SignIn, &Expr::True).unwrap(), 1);
    assert_eq!(store.count("c", LogKind::SignIn, &Expr::True).unwrap(), 0);
}

pub fn lists_newest_first_with_keyset_paging(store: Arc<dyn EventStore>) {
    load_basic(&*store);
    assert_eq!(list(&*store, "a", Expr::True, 3), vec!["s9", "s8", "s7", "s6"], "limit + 1 rows");
    let mut query = ListQuery {
        org: "a".into(),
        kind: LogKind::SignIn,
        filter: Expr::True,
        order: SortOrder::Asc,
        limit: 4,
        after: None,
        columns: vec![col(LogKind::SignIn, "id"), col(LogKind::SignIn, "event_time")],
    };
    let mut seen = Vec::new();
    loop {
        let rows = store.list(&query).unwrap();
        let more = rows.len() > query.limit;
        for row in rows.iter().take(query.limit) {
            seen.push(cell_str(&row[0]));
        }
        if !more {
            break;
        }
        let last = &rows[query.limit - 1];
        let Cell::Time(t) = last[1] else { panic!("event_time is not a time: {:?}", last[1]) };
        query.after = Some((t, cell_str(&last[0])));
    }
    assert_eq!(seen, (0..10).map(|i| format!("s{i}")).collect::<Vec<_>>());

    // Where each row's record is: this node's log (no other node's), at the position applied.
    query.columns = crate::record_columns(LogKind::SignIn);
    query.after = None;
    query.limit = 20;
    let places: Vec<crate::RecordRef> = store
        .list(&query)
        .unwrap()
        .iter()
        .map(|row| crate::RecordRef::from_row(row).expect("a record place"))
        .collect();
    let positions: Vec<(u64, Option<String>)> = places.iter().map(|r| (r.ptr.frame_pos, r.node.clone())).collect();
    assert_eq!(positions, (100..110).map(|p| (p, None)).collect::<Vec<_>>());
}

/// [`EventStore::scan`]: every row in the query's order and columns (the id and time left
/// out), in pages of at most the size asked, after the query's cursor; stopped by the visitor.
pub fn scans_every_row_in_pages(store: Arc<dyn EventStore>) {
    load_basic(&*store);
    // Three more in the fifth hour: several rows of one hour span pages.
    let more: Vec<StoredEvent> = (0..3)
        .map(|i| {
            let json = signin_json(&format!("t{i}"), 4, "dave@contoso.com", "Outlook", 0, "");
            stored("a", LogKind::SignIn, &json, 1, 400 + i as u64)
        })
        .collect();
    store.apply(&more, 500).unwrap();
    let upn = col(LogKind::SignIn, "user_principal_name");
    let query = ListQuery {
        org: "a".into(),
        kind: LogKind::SignIn,
        filter: Expr::True,
        order: SortOrder::Desc,
        limit: 100,
        after: None,
        columns: vec![upn, col(LogKind::SignIn, "id")],
    };
    let expected = store.list(&query).unwrap();
    assert_eq!(expected.len(), 13);
    let upns_only = ListQuery { columns: vec![upn], ..query.clone() };
    let scan = |query: &ListQuery, page: usize, pages_wanted: usize| {
        let mut pages = Vec::new();
        store
            .scan(query, page, &mut |rows| {
                pages.push(rows);
                Ok(pages.len() < pages_wanted)
            })
            .unwrap();
        pages
    };
    for page in [1, 2, 5, 100] {
        let pages = scan(&upns_only, page, usize::MAX);
        assert!(pages.iter().all(|p| p.len() <= page && p.iter().all(|row| row.len() == 1)), "page {page}");
        let rows: Vec<Vec<Cell>> = pages.into_iter().flatten().collect();
        let want: Vec<Vec<Cell>> = expected.iter().map(|row| vec![row[0].clone()]).collect();
        assert_eq!(rows, want, "page {page}");
    }
    // Oldest first, Outlook only, after s3 (hour 3): t0..t2 (hour 4, by id), s5, s6, s8, s9.
    let outlook = Expr::eq(col(LogKind::SignIn, "app_display_name"), signet_query::Literal::Str("Outlook".into()));
    let with_times =
        ListQuery { columns: vec![col(LogKind::SignIn, "id"), col(LogKind::SignIn, "event_time")], ..query.clone() };
    let time_of_s3 = store
        .list(&with_times)
        .unwrap()
        .iter()
        .find_map(|row| match (&row[0], &row[1]) {
            (Cell::Str(id), Cell::Time(t)) if id == "s3" => Some(*t),
            _ => None,
        })
        .expect("s3 listed");
    let after_s3 = ListQuery {
        filter: outlook,
        order: SortOrder::Asc,
        after: Some((time_of_s3, "s3".into())),
        columns: vec![col(LogKind::SignIn, "id")],
        ..query.clone()
    };
    let ids: Vec<String> = scan(&after_s3, 2, usize::MAX).into_iter().flatten().map(|row| cell_str(&row[0])).collect();
    assert_eq!(ids, ["t0", "t1", "t2", "s5", "s6", "s8", "s9"]);
    assert_eq!(scan(&upns_only, 2, 1).len(), 1, "the visitor stops the scan");
}

pub fn organisations_are_isolated(store: Arc<dyn EventStore>) {
    load_basic(&*store);
    assert_eq!(list(&*store, "b", Expr::True, 10), vec!["other-org"]);
    let everything = odata::parse_filter(LogKind::SignIn, "userPrincipalName eq 'eve@fabrikam.com'").unwrap();
    assert!(list(&*store, "a", everything, 10).is_empty());
    assert!(store.revisions("a", LogKind::SignIn, "other-org").unwrap().is_empty());
}

pub fn filters_match(store: Arc<dyn EventStore>) {
    load_basic(&*store);
    let native = |params: &[(&str, &str)]| {
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let filter = native::filter(LogKind::SignIn, &params, T0 + 1000 * HOUR).unwrap();
        let mut ids = list(&*store, "a", filter, 100);
        ids.sort();
        ids
    };
    assert_eq!(native(&[("user", "BOB@contoso.com")]), vec!["s1", "s4", "s7"]);
    assert_eq!(native(&[("user", "User car*")]), vec!["s2", "s5", "s8"]);
    // `_` and `%` are text, not wildcards, whichever way an engine compares case-insensitively.
    assert!(native(&[("user", "b_b@contoso.com")]).is_empty());
    assert!(native(&[("user", "b%")]).is_empty());
    assert!(native(&[("user", "b_b*")]).is_empty());
    assert!(native(&[("user", "%*")]).is_empty());
    assert_eq!(native(&[("user", "CAROL@*")]), vec!["s2", "s5", "s8"]);
    assert_eq!(native(&[("status", "failure")]), vec!["s1", "s4", "s7"]);
    assert_eq!(native(&[("status", "interrupted")]), vec!["s2", "s5", "s8"]);
    assert_eq!(native(&[("status", "success"), ("app", "outlook")]), vec!["s0", "s3", "s6", "s9"]);
    assert_eq!(native(&[("errorCode", "50126")]), vec!["s1", "s4", "s7"]);
    assert_eq!(native(&[("ip", "10.0.3.2")]), vec!["s3"]);
    assert_eq!(native(&[("ip", "10.0.0.0/22")]), vec!["s0", "s1", "s2", "s3"], "10.0.0.0 - 10.0.3.255");
    assert_eq!(native(&[("from", "2024-01-01T05:00:00Z"), ("to", "2024-01-01T07:00:00Z")]), vec!["s5", "s6"]);
    assert_eq!(native(&[("city", "paris")]).len(), 10);
    assert!(native(&[("country", "US")]).is_empty());
    let graph = |f: &str| {
        let mut ids = list(&*store, "a", odata::parse_filter(LogKind::SignIn, f).unwrap(), 100);
        ids.sort();
        ids
    };
    assert_eq!(graph("status/errorCode eq 50074 and startswith(userPrincipalName, 'carol')"), vec!["s2", "s5", "s8"]);
    assert_eq!(graph("not (appDisplayName eq 'Outlook')"), vec!["s1", "s4", "s7"]);
    assert_eq!(graph("signInEventTypes/any(t: t eq 'interactiveUser') and id eq 's0'"), vec!["s0"]);
    assert!(graph("userDisplayName eq 'x'' OR 1=1 --'").is_empty(), "quotes stay inside the literal");
}

pub fn revisions_replace_the_latest(store: Arc<dyn EventStore>) {
    load_basic(&*store);
    let revised = signin_json("s3", 3, "alice@contoso.com", "Outlook", 50126, r#","riskLevelAggregated":"high""#);
    store.apply(&[stored("a", LogKind::SignIn, &revised, 2, 400)], 500).unwrap();
    assert_eq!(store.count("a", LogKind::SignIn, &Expr::True).unwrap(), 10, "a revision is not a new sign-in");
    let failures = native::filter(LogKind::SignIn, &[("status".into(), "failure".into())], T0).unwrap();
    assert_eq!(store.count("a", LogKind::SignIn, &failures).unwrap(), 4, "lists and counts see the latest revision");
    let revisions = store.revisions("a", LogKind::SignIn, "s3").unwrap();
    assert_eq!(revisions.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(revisions[1].ptr.frame_pos, 400);
    let mut versions = Vec::new();
    store
        .for_each_version(&mut |v| {
            if v.id == "s3" {
                versions.push(v.revision);
            }
        })
        .unwrap();
    versions.sort_unstable();
    assert_eq!(versions, vec![1, 2]);
}

/// A batch may end inside a frame (the projector cuts full batches at a row group); a restart
/// reads the log from the applied position, the frame's start, and applies the frame again.
pub fn a_frame_applied_again_from_its_start_is_stored_once(store: Arc<dyn EventStore>) {
    let frame = |pos: u64, ids: &[&str]| -> Vec<StoredEvent> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                let mut e = stored(
                    "a",
                    LogKind::SignIn,
                    &signin_json(id, i as i64, "alice@contoso.com", "Teams", 0, ""),
                    1,
                    pos,
                );
                e.ptr.index = i as u16;
                e
            })
            .collect()
    };
    let (first, second) = (frame(10, &["f0", "f1", "f2"]), frame(20, &["g0", "g1", "g2", "g3"]));
    let mut batch = first.clone();
    batch.extend_from_slice(&second[..2]);
    store.apply(&batch, 20).unwrap();
    assert_eq!(store.applied_position().unwrap(), 20, "the position stays at the start of the frame cut");
    assert_eq!(store.count("a", LogKind::SignIn, &Expr::True).unwrap(), 5);
    // The frame again from its start, then one more frame.
    let mut again = second.clone();
    again.extend(frame(30, &["h0"]));
    store.apply(&again, 40).unwrap();
    assert_eq!(store.applied_position().unwrap(), 40);
    assert_eq!(store.count("a", LogKind::SignIn, &Expr::True).unwrap(), 8, "each event once");
    assert_eq!(store.revisions("a", LogKind::SignIn, "g1").unwrap().len(), 1);
}

pub fn two_revisions_in_one_batch(store: Arc<dyn EventStore>) {
    let first = signin_json("r", 1, "alice@contoso.com", "Outlook", 50074, "");
    let second = signin_json("r", 1, "alice@contoso.com", "Outlook", 0, "");
    store
        .apply(&[stored("a", LogKind::SignIn, &first, 1, 10), stored("a", LogKind::SignIn, &second, 2, 20)], 30)
        .unwrap();
    assert_eq!(store.count("a", LogKind::SignIn, &Expr::True).unwrap(), 1);
    let success = native::filter(LogKind::SignIn, &[("status".into(), "success".into())], T0).unwrap();
    assert_eq!(store.count("a", LogKind::SignIn, &success).unwrap(), 1);
    assert_eq!(store.revisions("a", LogKind::SignIn, "r").unwrap().len(), 2);
    // Later revisions of a stored id, two in one batch next to a new id's first two: the
    // stored row is replaced, and only once.
    let third = signin_json("r", 1, "alice@contoso.com", "Outlook", 50126, "");
    let fourth = signin_json("r", 1, "alice@contoso.com", "Outlook", 50053, "");
    let new_first = signin_json("q", 2, "bob@contoso.com", "Outlook", 0, "");
    let new_second = signin_json("q", 2, "bob@contoso.com", "Outlook", 50126, "");
    store
        .apply(
            &[
                stored("a", LogKind::SignIn, &third, 3, 40),
                stored("a", LogKind::SignIn, &new_first, 1, 50),
                stored("a", LogKind::SignIn, &fourth, 4, 60),
                stored("a", LogKind::SignIn, &new_second, 2, 70),
            ],
            80,
        )
        .unwrap();
    assert_eq!(store.count("a", LogKind::SignIn, &Expr::True).unwrap(), 2);
    let code = |c: i64| Expr::eq(col(LogKind::SignIn, "error_code"), signet_query::Literal::Int(c));
    assert_eq!(store.count("a", LogKind::SignIn, &code(50053)).unwrap(), 1, "r is at its fourth revision");
    assert_eq!(store.count("a", LogKind::SignIn, &code(50126)).unwrap(), 1, "q is at its second revision");
    assert_eq!(store.count("a", LogKind::SignIn, &success).unwrap(), 0);
}

pub fn aggregates(store: Arc<dyn EventStore>) {
    load_basic(&*store);
    let signin = LogKind::SignIn;
    let query = AggQuery {
        org: "a".into(),
        kind: signin,
        filter: Expr::True,
        group_by: vec![GroupBy::Column(col(signin, "app_display_name"))],
        measures: vec![Measure::Count, Measure::CountDistinct(col(signin, "user_key"))],
        order_by_first_measure_desc: true,
        limit: Some(1),
    };
    let rows = store.aggregate(&query).unwrap();
    assert_eq!(rows, vec![vec![Cell::Str("Outlook".into()), Cell::Int(7), Cell::Int(2)]]);

    let timeline = AggQuery {
        group_by: vec![GroupBy::TimeBucket(col(signin, "event_time"), Bucket::Week, Zone::UTC)],
        measures: vec![
            Measure::Count,
            Measure::CountIf(native::filter(signin, &[("status".into(), "failure".into())], 0).unwrap()),
        ],
        order_by_first_measure_desc: false,
        limit: None,
        ..query.clone()
    };
    let rows = store.aggregate(&timeline).unwrap();
    assert_eq!(rows, vec![vec![Cell::Int(T0), Cell::Int(10), Cell::Int(3)]], "2024-01-01 is a Monday");

    let by_hour = AggQuery {
        group_by: vec![
            GroupBy::DayOfWeek(col(signin, "event_time"), Zone::UTC),
            GroupBy::HourOfDay(col(signin, "event_time"), Zone::UTC),
        ],
        measures: vec![Measure::Count],
        order_by_first_measure_desc: false,
        limit: None,
        ..query.clone()
    };
    let rows = store.aggregate(&by_hour).unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[0], vec![Cell::Int(1), Cell::Int(0), Cell::Int(1)]);
}

/// Groups among listed values: exact matches only (a value in another case is another value),
/// listed values without rows are left out, and a distinct count equals the plain grouping's.
pub fn aggregates_among(store: Arc<dyn EventStore>) {
    load_basic(&*store);
    let signin = LogKind::SignIn;
    let app = col(signin, "app_display_name");
    let listed = vec![Some("Outlook".to_string()), Some("teams".into()), Some("Nowhere".into()), None];
    let query = AggQuery {
        org: "a".into(),
        kind: signin,
        filter: Expr::True,
        group_by: vec![GroupBy::Among(app, listed)],
        measures: vec![Measure::CountDistinct(col(signin, "user_key"))],
        order_by_first_measure_desc: false,
        limit: None,
    };
    assert_eq!(store.aggregate(&query).unwrap(), vec![vec![Cell::Str("Outlook".into()), Cell::Int(2)]]);
    let both = AggQuery {
        group_by: vec![GroupBy::Among(app, vec![Some("Teams".into()), Some("Outlook".into())])],
        filter: native::filter(signin, &[("status".into(), "success".into())], 0).unwrap(),
        ..query.clone()
    };
    let plain = AggQuery { group_by: vec![GroupBy::Column(app)], ..both.clone() };
    assert_eq!(store.aggregate(&both).unwrap(), store.aggregate(&plain).unwrap());
    assert_eq!(store.aggregate(&both).unwrap(), vec![vec![Cell::Str("Outlook".into()), Cell::Int(1)]]);
    let counted = AggQuery { measures: vec![Measure::Count], filter: Expr::True, ..both };
    assert_eq!(
        store.aggregate(&counted).unwrap(),
        vec![vec![Cell::Str("Outlook".into()), Cell::Int(7)], vec![Cell::Str("Teams".into()), Cell::Int(3)]]
    );
}

/// Time buckets round down, also before 1970 (integer division truncates toward zero), and
/// weeks start on Monday.
pub fn buckets_round_down(store: Arc<dyn EventStore>) {
    let signin = LogKind::SignIn;
    // 1969-12-31T23:00Z, a Wednesday, and 2024-01-07T23:00Z, a Sunday; and 1969-12-31T00:00Z
    // exactly, the start of its day and hour (a negative multiple of the width).
    let before_epoch = -(T0 / HOUR) - 1;
    let events = [
        stored("a", signin, &signin_json("old", before_epoch, "alice@contoso.com", "Outlook", 0, ""), 1, 1),
        stored("a", signin, &signin_json("new", 6 * 24 + 23, "alice@contoso.com", "Outlook", 0, ""), 1, 2),
        stored("a", signin, &signin_json("midnight", before_epoch - 23, "alice@contoso.com", "Outlook", 0, ""), 1, 3),
    ];
    store.apply(&events, 4).unwrap();
    let bucketed = |bucket| {
        let query = AggQuery {
            org: "a".into(),
            kind: signin,
            filter: Expr::True,
            group_by: vec![GroupBy::TimeBucket(col(signin, "event_time"), bucket, Zone::UTC)],
            measures: vec![Measure::Count],
            order_by_first_measure_desc: false,
            limit: None,
        };
        store.aggregate(&query).unwrap().into_iter().map(|row| row[0].clone()).collect::<Vec<_>>()
    };
    let day = 24 * HOUR;
    assert_eq!(bucketed(Bucket::Day), vec![Cell::Int(-day), Cell::Int(T0 + 6 * day)]);
    assert_eq!(bucketed(Bucket::Week), vec![Cell::Int(-3 * day), Cell::Int(T0)], "Mondays 1969-12-29 and 2024-01-01");
    assert_eq!(bucketed(Bucket::Hour), vec![Cell::Int(-day), Cell::Int(-HOUR), Cell::Int(T0 + 6 * day + 23 * HOUR)]);
    let micros = |width| {
        let query = AggQuery {
            org: "a".into(),
            kind: signin,
            filter: Expr::True,
            group_by: vec![GroupBy::TimeBucket(col(signin, "event_time"), Bucket::Micros(width), Zone::UTC)],
            measures: vec![Measure::Count],
            order_by_first_measure_desc: false,
            limit: None,
        };
        store.aggregate(&query).unwrap().into_iter().map(|row| row[..2].to_vec()).collect::<Vec<_>>()
    };
    assert_eq!(
        micros(2 * HOUR),
        vec![
            vec![Cell::Int(-day), Cell::Int(1)],
            vec![Cell::Int(-2 * HOUR), Cell::Int(1)],
            vec![Cell::Int(T0 + 6 * day + 22 * HOUR), Cell::Int(1)]
        ],
        "two-hour buckets: 1969-12-31T00:00 and T22:00"
    );
    let time = col(signin, "event_time");
    let query = AggQuery {
        org: "a".into(),
        kind: signin,
        filter: Expr::True,
        group_by: vec![GroupBy::DayOfWeek(time, Zone::UTC), GroupBy::HourOfDay(time, Zone::UTC)],
        measures: vec![Measure::Count],
        order_by_first_measure_desc: false,
        limit: None,
    };
    let rows = store.aggregate(&query).unwrap();
    assert_eq!(
        rows,
        vec![
            vec![Cell::Int(3), Cell::Int(0), Cell::Int(1)],
            vec![Cell::Int(3), Cell::Int(23), Cell::Int(1)],
            vec![Cell::Int(7), Cell::Int(23), Cell::Int(1)]
        ],
        "Wednesday 00:00 and 23:00, Sunday 23:00"
    );
}

/// Time groups on a zone's wall clock: Central European Time, with summer time from
/// 2024-03-31T01:00Z (+1 h, then +2 h), and a fixed offset of -8 h.
pub fn time_groups_follow_a_zone(store: Arc<dyn EventStore>) {
    let signin = LogKind::SignIn;
    let day = 24 * HOUR;
    // 2024-03-30T23:00Z (Sunday 00:00 in Paris), 2024-03-31T01:00Z (03:00, the change),
    // 2024-03-31T22:00Z (Monday 00:00).
    let events = [
        stored("a", signin, &signin_json("a", 89 * 24 + 23, "alice@contoso.com", "Outlook", 0, ""), 1, 1),
        stored("a", signin, &signin_json("b", 90 * 24 + 1, "alice@contoso.com", "Outlook", 0, ""), 1, 2),
        stored("a", signin, &signin_json("c", 90 * 24 + 22, "alice@contoso.com", "Outlook", 0, ""), 1, 3),
    ];
    store.apply(&events, 4).unwrap();
    let paris = Zone { base: HOUR, changes: vec![(T0 + 90 * day + HOUR, 2 * HOUR)] };
    let time = col(signin, "event_time");
    let query = |group_by: Vec<GroupBy>| {
        let query = AggQuery {
            org: "a".into(),
            kind: signin,
            filter: Expr::True,
            group_by,
            measures: vec![Measure::Count],
            order_by_first_measure_desc: false,
            limit: None,
        };
        store.aggregate(&query).unwrap()
    };
    let bucketed = |bucket, zone: &Zone| {
        let rows = query(vec![GroupBy::TimeBucket(time, bucket, zone.clone())]);
        rows.into_iter().map(|row| (row[0].clone(), row[1].clone())).collect::<Vec<_>>()
    };
    let (two, one) = (Cell::Int(2), Cell::Int(1));
    assert_eq!(
        bucketed(Bucket::Day, &paris),
        vec![(Cell::Int(T0 + 90 * day), two.clone()), (Cell::Int(T0 + 91 * day), one.clone())]
    );
    assert_eq!(
        bucketed(Bucket::Week, &paris),
        vec![(Cell::Int(T0 + 84 * day), two.clone()), (Cell::Int(T0 + 91 * day), one.clone())],
        "weeks of Monday 25 March and Monday 1 April, wall clock"
    );
    assert_eq!(
        bucketed(Bucket::Hour, &paris),
        vec![
            (Cell::Int(T0 + 90 * day), one.clone()),
            (Cell::Int(T0 + 90 * day + 3 * HOUR), one.clone()),
            (Cell::Int(T0 + 91 * day), one.clone())
        ]
    );
    let rows = query(vec![GroupBy::DayOfWeek(time, paris.clone()), GroupBy::HourOfDay(time, paris)]);
    let cells = |d, h| vec![Cell::Int(d), Cell::Int(h), Cell::Int(1)];
    assert_eq!(rows, vec![cells(1, 0), cells(7, 0), cells(7, 3)], "Monday 00:00, Sunday 00:00 and 03:00");
    let pacific = Zone { base: -8 * HOUR, changes: Vec::new() };
    assert_eq!(
        bucketed(Bucket::Day, &pacific),
        vec![(Cell::Int(T0 + 89 * day), Cell::Int(2)), (Cell::Int(T0 + 90 * day), one)]
    );
    assert_eq!(
        bucketed(Bucket::Day, &Zone::UTC),
        vec![(Cell::Int(T0 + 89 * day), Cell::Int(1)), (Cell::Int(T0 + 90 * day), two)]
    );
}

/// Several aggregations under one filter: the engine's answer (one pass where it can) equals
/// one aggregation per set, ordered and cut the same way, with a total row even when nothing
/// matches.
pub fn aggregate_sets(store: Arc<dyn EventStore>) {
    load_basic(&*store);
    let signin = LogKind::SignIn;
    let time = col(signin, "event_time");
    let failed = native::filter(signin, &[("status".into(), "failure".into())], 0).unwrap();
    let all_measures = vec![
        Measure::Count,
        Measure::CountIf(failed),
        Measure::CountDistinct(col(signin, "user_key")),
        Measure::MinTime(time),
    ];
    let mut query = MultiAggQuery {
        org: "a".into(),
        kind: signin,
        filter: Expr::True,
        sets: vec![
            GroupSet::all(vec![], all_measures.clone()),
            GroupSet::all(
                vec![GroupBy::DayOfWeek(time, Zone::UTC), GroupBy::HourOfDay(time, Zone::UTC)],
                vec![Measure::Count],
            ),
            GroupSet::top(vec![GroupBy::Column(col(signin, "app_display_name"))], all_measures.clone(), 1),
            GroupSet::top(
                vec![GroupBy::Column(col(signin, "city")), GroupBy::Column(col(signin, "country"))],
                vec![Measure::Count],
                5,
            ),
            GroupSet::top(
                vec![GroupBy::Column(col(signin, "country")), GroupBy::Column(col(signin, "error_code"))],
                vec![Measure::Count, Measure::MaxTime(time)],
                2,
            ),
            GroupSet::all(vec![GroupBy::Column(col(signin, "user_principal_name"))], vec![Measure::Count]),
        ],
    };
    let answer = store.aggregate_sets(&query).unwrap();
    assert_eq!(answer, aggregate_by_set(&*store, &query).unwrap());
    assert_eq!(answer[0], vec![vec![Cell::Int(10), Cell::Int(3), Cell::Int(3), Cell::Int(T0)]]);
    assert_eq!(answer[1].len(), 10);
    assert_eq!(
        answer[2],
        vec![vec![Cell::Str("Outlook".into()), Cell::Int(7), Cell::Int(0), Cell::Int(2), Cell::Int(T0)]]
    );
    assert_eq!(answer[4].len(), 2, "top 2 of (country, error code)");
    assert_eq!(answer[5].len(), 3);

    query.filter = Expr::eq(col(signin, "app_display_name"), signet_query::Literal::Str("nothing".into()));
    let answer = store.aggregate_sets(&query).unwrap();
    assert_eq!(answer, aggregate_by_set(&*store, &query).unwrap());
    assert_eq!(answer[0], vec![vec![Cell::Int(0), Cell::Int(0), Cell::Int(0), Cell::Null]]);
    assert!(answer[1..].iter().all(Vec::is_empty));
}

/// Facets: the engine's answer (one pass where it can) equals one aggregation per column,
/// with ties ordered by value and empty values last, and the total is the filter's count.
pub fn facets(store: Arc<dyn EventStore>) {
    load_basic(&*store);
    let signin = LogKind::SignIn;
    let query = FacetQuery {
        org: "a".into(),
        kind: signin,
        filter: native::filter(signin, &[("not.app".into(), "Teams".into())], 0).unwrap(),
        columns: vec![
            col(signin, "app_display_name"),
            col(signin, "status"),
            col(signin, "error_code"),
            col(signin, "browser"),
        ],
        limit: 2,
    };
    let answer = store.facets(&query).unwrap();
    assert_eq!(answer, crate::engine::facets_by_column(&*store, &query).unwrap());
    assert_eq!(answer.total, 7);
    assert_eq!(answer.values[0], vec![(Cell::Str("Outlook".into()), 7)]);
    assert_eq!(answer.values[1], vec![(Cell::Str("success".into()), 4), (Cell::Str("interrupted".into()), 3)]);
    assert_eq!(answer.values[2], vec![(Cell::Int(0), 4), (Cell::Int(50074), 3)]);
    assert_eq!(answer.values[3], vec![(Cell::Null, 7)], "no browser in these sign-ins");
    // A list column: each element counts.
    let lists = FacetQuery { columns: vec![col(signin, "event_types"), col(signin, "status")], ..query.clone() };
    let answer = store.facets(&lists).unwrap();
    assert_eq!(answer, crate::engine::facets_by_column(&*store, &lists).unwrap());
    // Nothing matches: zero and no values.
    let none = FacetQuery { org: "nobody".into(), ..query };
    let answer = store.facets(&none).unwrap();
    assert_eq!(answer.total, 0);
    assert!(answer.values.iter().all(Vec::is_empty));
}

pub fn aggregates_over_lists(store: Arc<dyn EventStore>) {
    let with_methods = |id: &str, code: i64, methods: &str| {
        signin_json(id, 1, "alice@contoso.com", "Outlook", code, &format!(r#","authenticationDetails":{methods}"#))
    };
    let events = vec![
        stored(
            "a",
            LogKind::SignIn,
            &with_methods(
                "m1",
                0,
                r#"[{"authenticationMethod":"Password","succeeded":true},{"authenticationMethod":"Text message","succeeded":true}]"#,
            ),
            1,
            1,
        ),
        stored(
            "a",
            LogKind::SignIn,
            &with_methods(
                "m2",
                500121,
                r#"[{"authenticationMethod":"Password","succeeded":true},{"authenticationMethod":"Text message","succeeded":false}]"#,
            ),
            1,
            2,
        ),
        stored(
            "a",
            LogKind::SignIn,
            &with_methods("m3", 0, r#"[{"authenticationMethod":"FIDO2 security key","succeeded":true}]"#),
            1,
            3,
        ),
    ];
    store.apply(&events, 10).unwrap();
    let methods = col(LogKind::SignIn, "auth_methods");
    let query = AggQuery {
        org: "a".into(),
        kind: LogKind::SignIn,
        filter: Expr::True,
        group_by: vec![GroupBy::Unnest(methods)],
        measures: vec![Measure::Count, Measure::CountWhereGroupIn(col(LogKind::SignIn, "auth_methods_succeeded"))],
        order_by_first_measure_desc: true,
        limit: None,
    };
    let rows = store.aggregate(&query).unwrap();
    assert_eq!(
        rows,
        vec![
            vec![Cell::Str("Password".into()), Cell::Int(2), Cell::Int(2)],
            vec![Cell::Str("Text message".into()), Cell::Int(2), Cell::Int(1)],
            vec![Cell::Str("FIDO2 security key".into()), Cell::Int(1), Cell::Int(1)],
        ]
    );

    // A second revision changes m3's methods; another user, another organisation.
    let bob = signin_json(
        "m4",
        2,
        "bob@contoso.com",
        "Teams",
        50126,
        r#","authenticationDetails":[{"authenticationMethod":"Password","succeeded":false}]"#,
    );
    let hello = with_methods("m3", 0, r#"[{"authenticationMethod":"Windows Hello for Business","succeeded":true}]"#);
    let other = signin_json(
        "m1",
        1,
        "eve@fabrikam.com",
        "Outlook",
        0,
        r#","authenticationDetails":[{"authenticationMethod":"Password","succeeded":true}]"#,
    );
    let more = vec![
        stored("a", LogKind::SignIn, &bob, 1, 11),
        stored("a", LogKind::SignIn, &hello, 2, 12),
        stored("b", LogKind::SignIn, &other, 1, 13),
    ];
    store.apply(&more, 20).unwrap();
    let failure = native::filter(LogKind::SignIn, &[("status".into(), "failure".into())], 0).unwrap();
    let full = AggQuery {
        measures: vec![
            Measure::Count,
            Measure::CountWhereGroupIn(col(LogKind::SignIn, "auth_methods_succeeded")),
            Measure::CountDistinct(col(LogKind::SignIn, "user_hash")),
            Measure::CountIf(failure),
        ],
        ..query.clone()
    };
    let row = |name: &str, counts: [i64; 4]| {
        let mut row = vec![Cell::Str(name.into())];
        row.extend(counts.map(Cell::Int));
        row
    };
    assert_eq!(
        store.aggregate(&full).unwrap(),
        vec![
            row("Password", [3, 2, 2, 2]),
            row("Text message", [2, 1, 1, 1]),
            row("Windows Hello for Business", [1, 1, 1, 0])
        ]
    );
    let success = native::filter(LogKind::SignIn, &[("status".into(), "success".into())], 0).unwrap();
    let succeeded = AggQuery { filter: success, limit: Some(2), ..full };
    assert_eq!(
        store.aggregate(&succeeded).unwrap(),
        vec![row("Password", [1, 1, 1, 0]), row("Text message", [1, 1, 1, 0])]
    );
}

pub fn other_kinds(store: Arc<dyn EventStore>) {
    let audit = r#"{"id":"d1","activityDateTime":"2024-01-01T10:00:00Z","activityDisplayName":"Add user","category":"UserManagement",
        "result":"success","initiatedBy":{"user":{"userPrincipalName":"admin@contoso.com"}},"targetResources":[{"id":"u9","displayName":"Zed","type":"User"}]}"#;
    let activity = r#"{"Id":"x1","CreationTime":"2024-01-01T11:00:00","Operation":"Export","User":"bob@contoso.com","EntityName":"Account","RecordType":"Dynamics"}"#;
    store
        .apply(&[stored("a", LogKind::DirectoryAudit, audit, 1, 1), stored("a", LogKind::Activity, activity, 1, 2)], 3)
        .unwrap();
    let f = odata::parse_filter(LogKind::DirectoryAudit, "targetResources/any(t: t/displayName eq 'Zed')").unwrap();
    assert_eq!(store.count("a", LogKind::DirectoryAudit, &f).unwrap(), 1);
    let f = native::filter(
        LogKind::Activity,
        &[("operation".into(), "export".into()), ("entityName".into(), "Account".into())],
        0,
    )
    .unwrap();
    assert_eq!(store.count("a", LogKind::Activity, &f).unwrap(), 1);
    assert_eq!(store.count("a", LogKind::SignIn, &Expr::True).unwrap(), 0);
}

/// Generates one `#[test]` per conformance check for a store factory.
#[macro_export]
macro_rules! event_store_conformance_tests {
    ($factory:expr) => {
        $crate::event_store_conformance_tests!(@tests $factory;
            applies_and_tracks_position, lists_newest_first_with_keyset_paging, scans_every_row_in_pages, organisations_are_isolated,
            filters_match, revisions_replace_the_latest, a_frame_applied_again_from_its_start_is_stored_once,
            two_revisions_in_one_batch, aggregates,
            aggregate_sets, aggregates_among, buckets_round_down, time_groups_follow_a_zone, aggregates_over_lists, facets,
            other_kinds);
    };
    (@tests $factory:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let factory = $factory;
                $crate::conformance::$name(factory());
            }
        )*
    };
}
