//! Sign-ins counted per organisation and UTC day: per user (`signin_user_days`), and per
//! application and status (`signin_app_days`). The sign-in timeline and the top applications'
//! weekly counts read them for the whole days of their range instead of every sign-in (per
//! user, about seven times fewer rows than sign-ins in the benchmark's data; per application,
//! a few thousand for a month; docs/benchmarks.md run 47).
//!
//! A day's rows are a cache that nothing maintains. `signin_day_prints` keeps, per day, the
//! number of sign-ins they were made from and the XOR of a hash of each one's place in the event
//! log; a query compares that with the same print of the sign-ins table (in the snapshot it
//! reads) and uses the day's rows only when they agree. Any change to a day's sign-ins (a new
//! or late one, a revision, archiving, a restore, forgetting, a write by an older build) changes
//! its print, so the day is read from the sign-ins instead, and made again once the writer is
//! free. Days from today on are always read from the sign-ins.

use std::collections::HashMap;

use duckdb::Connection;
use signet_model::{Cell, LogKind};
use signet_query::ast::{Bucket, CmpOp, GroupBy, Literal, Measure};
use signet_query::{AggQuery, Expr};
use tracing::{debug, warn};

use super::{DuckStore, DIALECT};
use crate::error::Result;

const DAY: i64 = 86_400_000_000;

/// The shortest time between two makings of day counts (see [`DuckStore::make_days`]).
const MAKE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The tables' layout; `signet_meta`'s `day_counts` records the one the file's tables have, and
/// any other is dropped and made anew when the file is opened (they are a cache).
const LAYOUT: &str = "2";

/// Today's day number (microseconds since the epoch / one day), UTC.
pub(super) fn today() -> i64 {
    signet_model::time::now_micros().div_euclid(DAY)
}

/// A day's print of the sign-ins table (the same expression wherever it is computed).
const PRINT: &str = "count(*) AS rows, bit_xor(hash(log_pos * 65536 + log_idx)) AS print";

/// The day of a sign-in.
const DAY_OF: &str = "epoch_us(event_time) // 86400000000";

/// A table of day counts: what it groups a day's sign-ins by and what it counts.
struct DayTable {
    name: &'static str,
    /// Its columns after `org_id` and `day`.
    columns: &'static str,
    /// The groups, as a select list over `signins` (named as the columns).
    groups: &'static str,
    counts: &'static str,
}

const USERS: DayTable = DayTable {
    name: "signin_user_days",
    columns: "user_hash BIGINT, n BIGINT, success BIGINT, failure BIGINT, interrupted BIGINT",
    groups: "user_hash",
    counts: "count(*) AS n, count(*) FILTER (WHERE status = 'success') AS success, \
             count(*) FILTER (WHERE status = 'failure') AS failure, \
             count(*) FILTER (WHERE status = 'interrupted') AS interrupted",
};

const APPS: DayTable = DayTable {
    name: "signin_app_days",
    columns: "app VARCHAR, status VARCHAR, n BIGINT",
    groups: "app_display_name AS app, status",
    counts: "count(*) AS n",
};

const TABLES: [DayTable; 2] = [USERS, APPS];

impl DayTable {
    /// The counts of the sign-ins `rows` selects (a `FROM .. WHERE ..`), in the table's columns.
    fn counted(&self, rows: &str) -> String {
        format!("SELECT org_id, {DAY_OF} AS day, {}, {} {rows} GROUP BY ALL", self.groups, self.counts)
    }
}

/// Makes the tables, or makes them anew when the file's are of another layout.
pub(super) fn prepare(conn: &Connection) -> Result<()> {
    let found: Option<String> =
        conn.query_row("SELECT value FROM signet_meta WHERE key = 'day_counts'", [], |r| r.get(0)).ok();
    let mut sql = Vec::new();
    if found.as_deref() != Some(LAYOUT) {
        sql.extend(TABLES.iter().map(|t| format!("DROP TABLE IF EXISTS {}", t.name)));
        sql.push("DROP TABLE IF EXISTS signin_day_prints".into());
        sql.push(format!("INSERT OR REPLACE INTO signet_meta VALUES ('day_counts', '{LAYOUT}')"));
    }
    sql.extend(
        TABLES
            .iter()
            .map(|t| format!("CREATE TABLE IF NOT EXISTS {} (org_id VARCHAR, day BIGINT, {})", t.name, t.columns)),
    );
    sql.push(
        "CREATE TABLE IF NOT EXISTS signin_day_prints (org_id VARCHAR, day BIGINT, rows BIGINT, print UBIGINT)".into(),
    );
    Ok(conn.execute_batch(&sql.join("; "))?)
}

/// A measure the per-user day rows answer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Count {
    All,
    Status(&'static str),
    Users,
}

/// What a query asks of the day rows.
#[derive(Debug)]
enum Shape {
    /// Time buckets only, counted in total, by status and by distinct user (the timeline).
    Timeline(Vec<Count>),
    /// Sign-ins per application, time bucket and status (the top applications' first pass).
    AppStatus,
}

/// A query the day rows can answer: sign-ins of one organisation grouped by UTC day or week,
/// under a filter that only bounds the time.
#[derive(Debug)]
pub(super) struct Plan {
    org: String,
    bucket: Bucket,
    shape: Shape,
    /// The time range, microseconds, both ends included (no end: all to come).
    low: i64,
    high: Option<i64>,
    /// The whole days of the range before today: `first..end`.
    first: i64,
    end: i64,
}

impl Plan {
    /// `None` unless `query` is such a query and its range holds at least two whole days
    /// before `today` (a day number: microseconds since the epoch / one day).
    pub(super) fn of(query: &AggQuery, today: i64) -> Option<Plan> {
        if query.kind != LogKind::SignIn || query.order_by_first_measure_desc || query.limit.is_some() {
            return None;
        }
        let utc_days = |g: &GroupBy| match g {
            GroupBy::TimeBucket(column, bucket @ (Bucket::Day | Bucket::Week), zone)
                if column.name == "event_time" && zone.is_utc() =>
            {
                Some(*bucket)
            }
            _ => None,
        };
        let named = |g: &GroupBy, name: &str| matches!(g, GroupBy::Column(c) if c.name == name);
        let (bucket, shape) = match query.group_by.as_slice() {
            [time] => (utc_days(time)?, Shape::Timeline(query.measures.iter().map(count_of).collect::<Option<_>>()?)),
            [app, time, status]
                if named(app, "app_display_name") && named(status, "status") && query.measures == [Measure::Count] =>
            {
                (utc_days(time)?, Shape::AppStatus)
            }
            _ => return None,
        };
        if !bounds_time_only(&query.filter) {
            return None;
        }
        let (Some(low), high) = query.filter.time_bounds() else { return None };
        if low < 0 {
            return None;
        }
        let first = (low + DAY - 1) / DAY;
        let end = high.map_or(today, |h| h.saturating_add(1).div_euclid(DAY).min(today));
        (end - first >= 2).then(|| Plan { org: query.org.clone(), bucket, shape, low, high, first, end })
    }

    /// The answer from the day rows of `valid` days and the sign-ins of the rest of the range.
    fn answer_sql(&self, valid: &[i64]) -> String {
        let org = DIALECT.quote_str(&self.org);
        let days = match valid.is_empty() {
            true => "FALSE".to_string(),
            false => format!("day IN ({})", join(valid)),
        };
        let table = match self.shape {
            Shape::Timeline(_) => &USERS,
            Shape::AppStatus => &APPS,
        };
        let stored = format!("SELECT * EXCLUDE (org_id) FROM {} WHERE org_id = {org} AND {days}", table.name);
        let scanned = format!(
            "SELECT * EXCLUDE (org_id) FROM ({})",
            table.counted(&format!("FROM signins WHERE org_id = {org} AND ({})", self.scanned_ranges(valid)))
        );
        let bucket = match self.bucket {
            // Monday-based weeks; the epoch was a Thursday (days >= 0 here).
            Bucket::Week => format!("((day + 3) // 7 * 7 - 3) * {DAY}"),
            _ => format!("day * {DAY}"),
        };
        let rows = format!("({stored} UNION ALL {scanned}) AS d");
        match &self.shape {
            Shape::Timeline(counts) => {
                let measures: Vec<String> = counts
                    .iter()
                    .map(|c| match c {
                        Count::All => "CAST(sum(n) AS BIGINT)".to_string(),
                        Count::Status(status) => format!("CAST(sum({status}) AS BIGINT)"),
                        Count::Users => "count(DISTINCT user_hash)".to_string(),
                    })
                    .collect();
                format!("SELECT {bucket} AS g0, {} FROM {rows} GROUP BY g0 ORDER BY g0", measures.join(", "))
            }
            Shape::AppStatus => format!(
                "SELECT app AS g0, {bucket} AS g1, status AS g2, CAST(sum(n) AS BIGINT) AS m0 FROM {rows} \
                 GROUP BY g0, g1, g2 ORDER BY g0 ASC NULLS LAST, g1 ASC NULLS LAST, g2 ASC NULLS LAST"
            ),
        }
    }

    /// The range less the `valid` days, as a condition on `event_time`.
    fn scanned_ranges(&self, valid: &[i64]) -> String {
        let mut ranges = Vec::new();
        let mut from = self.low;
        for day in valid {
            if day * DAY > from {
                ranges.push(format!("(event_time >= {} AND event_time < {})", time(from), time(day * DAY)));
            }
            from = (day + 1) * DAY;
        }
        ranges.push(match self.high {
            Some(high) => format!("(event_time >= {} AND event_time <= {})", time(from), time(high)),
            None => format!("event_time >= {}", time(from)),
        });
        ranges.join(" OR ")
    }
}

fn count_of(measure: &Measure) -> Option<Count> {
    match measure {
        Measure::Count => Some(Count::All),
        Measure::CountDistinct(column) if column.name == "user_hash" => Some(Count::Users),
        Measure::CountIf(Expr::Compare { column, op: CmpOp::Eq, value: Literal::Str(status) })
            if column.name == "status" =>
        {
            ["success", "failure", "interrupted"].into_iter().find(|s| s == status).map(Count::Status)
        }
        _ => None,
    }
}

/// The filter only bounds `event_time` (what a report's time range is).
fn bounds_time_only(filter: &Expr) -> bool {
    let bound = |e: &Expr| {
        matches!(e, Expr::Compare { column, op: CmpOp::Ge | CmpOp::Gt | CmpOp::Le | CmpOp::Lt, value: Literal::Time(_) }
            if column.name == "event_time")
    };
    match filter {
        Expr::And(parts) => !parts.is_empty() && parts.iter().all(bound),
        other => bound(other),
    }
}

fn time(us: i64) -> String {
    format!("make_timestamp({us})")
}

fn join(days: &[i64]) -> String {
    days.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

/// Removes the day rows and prints of the days within `from_us..to_us` (archiving moved their
/// sign-ins out: queries of them read the archive, and the rows would only take room).
pub(super) fn forget_days_sql(org: &str, from_us: i64, to_us: i64) -> String {
    let org = DIALECT.quote_str(org);
    let (first, end) = ((from_us + DAY - 1).div_euclid(DAY), to_us.div_euclid(DAY));
    TABLES
        .iter()
        .map(|t| t.name)
        .chain(["signin_day_prints"])
        .map(|table| format!("DELETE FROM {table} WHERE org_id = {org} AND day >= {first} AND day < {end}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Per table, the day rows a query would read (their day's print matches the sign-ins) that
/// are not what the sign-ins count, and the counts of those days they lack: part of
/// `verify --projection`, since a day row is trusted whenever its print matches.
pub(super) fn differences(conn: &Connection) -> Result<Vec<super::TableDifference>> {
    let used = format!(
        "SELECT p.org_id, p.day FROM signin_day_prints p JOIN (SELECT org_id, {DAY_OF} AS day, {PRINT} \
         FROM signins GROUP BY org_id, day) c ON p.org_id = c.org_id AND p.day = c.day \
         AND p.rows = c.rows AND p.print = c.print"
    );
    let mut out = Vec::new();
    for table in &TABLES {
        let stored =
            format!("SELECT s.* FROM {} s SEMI JOIN ({used}) u ON s.org_id = u.org_id AND s.day = u.day", table.name);
        let counted = format!(
            "SELECT c.* FROM ({}) c SEMI JOIN ({used}) u ON c.org_id = u.org_id AND c.day = u.day",
            table.counted("FROM signins")
        );
        let side = |a: &str, b: &str| -> Result<(u64, Vec<String>)> {
            let diff = format!("SELECT * FROM ({a}) EXCEPT ALL SELECT * FROM ({b})");
            let count: i64 = conn.query_row(&format!("SELECT count(*) FROM ({diff})"), [], |r| r.get(0))?;
            let mut stmt =
                conn.prepare(&format!("SELECT DISTINCT org_id || '/day ' || day FROM ({diff}) ORDER BY 1 LIMIT 5"))?;
            let days = stmt.query_map([], |r| r.get(0))?.collect::<std::result::Result<_, _>>()?;
            Ok((count as u64, days))
        };
        let (only_here, here) = side(&stored, &counted)?;
        let (only_there, there) = side(&counted, &stored)?;
        let mut ids: Vec<String> = here.into_iter().chain(there).collect();
        ids.sort();
        ids.dedup();
        if only_here > 0 || only_there > 0 {
            out.push(super::TableDifference { table: table.name, only_here, only_there, ids });
        }
    }
    Ok(out)
}

/// A day's print: (sign-ins, XOR of their hashes).
type Print = (i64, u64);

fn prints(conn: &Connection, sql: &str) -> Result<HashMap<i64, Print>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, (r.get::<_, i64>(1)?, r.get::<_, u64>(2)?))))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

impl DuckStore {
    /// Answers `plan` in one snapshot: the days whose print still matches from their rows,
    /// the rest from the sign-ins. Days that did not match are made again afterwards if the
    /// writer is free (a query never waits for it).
    pub(super) fn aggregate_by_days(&self, plan: &Plan) -> Result<Vec<Vec<Cell>>> {
        let started = std::time::Instant::now();
        let org = DIALECT.quote_str(&plan.org);
        let (first, end) = (plan.first, plan.end);
        // One transaction: the prints and the answer read one snapshot.
        let (rows, stale) = self.with_reader(|conn| {
            Self::in_transaction(conn, |conn| {
                let current = prints(
                    conn,
                    &format!(
                        "SELECT {DAY_OF} AS day, {PRINT} FROM signins WHERE org_id = {org} \
                         AND event_time >= {} AND event_time < {} GROUP BY day",
                        time(first * DAY),
                        time(end * DAY)
                    ),
                )?;
                let kept = prints(
                    conn,
                    &format!(
                        "SELECT day, rows, print FROM signin_day_prints WHERE org_id = {org} \
                         AND day >= {first} AND day < {end}"
                    ),
                )?;
                let (mut valid, mut stale): (Vec<i64>, Vec<i64>) =
                    current.keys().partition(|day| kept.get(day) == current.get(day));
                // Days whose sign-ins are all gone keep rows no query reads: removed too.
                stale.extend(kept.keys().filter(|day| !current.contains_key(day)));
                valid.sort_unstable();
                stale.sort_unstable();
                let sql = plan.answer_sql(&valid);
                Ok((super::read_cells(conn, &sql, None)?, stale))
            })
        })?;
        debug!(
            shape = ?plan.shape,
            days = end - first,
            stale = stale.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "sign-ins counted from day rows"
        );
        if !stale.is_empty() {
            if let Err(err) = self.make_days(&plan.org, &stale) {
                warn!(error = %err, "the sign-ins of some days could not be counted");
            }
        }
        Ok(rows)
    }

    /// (Re)makes the rows and prints of `days` (sorted) from the sign-ins, if the writer is
    /// free and no days were made in the last [`MAKE_EVERY`]; in one transaction, so rows and
    /// print always come from one snapshot. While an import of past days runs, every batch
    /// changes days just made: the pause keeps that waste (and the writer's wait) small.
    fn make_days(&self, org: &str, days: &[i64]) -> Result<()> {
        let mut made = self.days_made.lock();
        if made.is_some_and(|at| at.elapsed() < MAKE_EVERY) {
            return Ok(());
        }
        let Some(writer) = self.writer.try_lock() else { return Ok(()) };
        *made = Some(std::time::Instant::now());
        drop(made);
        let (Some(first), Some(last)) = (days.first(), days.last()) else { return Ok(()) };
        let started = std::time::Instant::now();
        let org = DIALECT.quote_str(org);
        let list = join(days);
        let rows = format!(
            "FROM signins WHERE org_id = {org} AND event_time >= {} AND event_time < {} AND {DAY_OF} IN ({list})",
            time(first * DAY),
            time((last + 1) * DAY)
        );
        let mut sql = Vec::new();
        for table in TABLES
            .iter()
            .map(|t| (t.name, t.counted(&rows)))
            .chain([("signin_day_prints", format!("SELECT org_id, {DAY_OF} AS day, {PRINT} {rows} GROUP BY ALL"))])
        {
            let (name, select) = table;
            sql.push(format!("DELETE FROM {name} WHERE org_id = {org} AND day IN ({list})"));
            sql.push(format!("INSERT INTO {name} {select}"));
        }
        Self::in_transaction(&writer.conn, |conn| Ok(conn.execute_batch(&sql.join("; "))?))?;
        debug!(days = days.len(), elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "day rows made");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use signet_model::schema::find_column;
    use signet_query::ast::Zone;

    use super::*;
    use crate::conformance::{signin_json, stored, T0};
    use crate::engine::{EventStore, StoredEvent};

    const HOUR: i64 = 3_600_000_000;

    fn col(name: &str) -> &'static signet_model::schema::Column {
        find_column(LogKind::SignIn, name).unwrap()
    }

    fn timeline(bucket: Bucket, low: i64, high: Option<i64>) -> AggQuery {
        let mut bounds = vec![Expr::Compare { column: col("event_time"), op: CmpOp::Ge, value: Literal::Time(low) }];
        bounds.extend(high.map(|h| Expr::Compare {
            column: col("event_time"),
            op: CmpOp::Lt,
            value: Literal::Time(h),
        }));
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
        let conn = store.writer.lock();
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
        store
            .writer
            .lock()
            .execute_batch(&format!("UPDATE signin_user_days SET n = n + 1000 WHERE day = {day2}"))
            .unwrap();
        let answer = store.aggregate(&queries[0]).unwrap();
        assert_eq!(answer[1][1], Cell::Int(5008), "day 2's 8 sign-ins and 1,000 more for each of its 5 users");
        // ... which `verify --projection` reports.
        let found = differences(&store.writer.lock()).unwrap();
        assert_eq!(found.len(), 1, "changed day rows are found");
        assert_eq!((found[0].table, found[0].only_here, found[0].only_there), ("signin_user_days", 5, 5));
        assert_eq!(found[0].ids, vec![format!("default/day {day2}")]);
        store
            .writer
            .lock()
            .execute_batch(&format!("UPDATE signin_user_days SET n = n - 1000 WHERE day = {day2}"))
            .unwrap();
        assert!(differences(&store.writer.lock()).unwrap().is_empty());
        // The same for the per-application rows.
        let change = |by: i64| format!("UPDATE signin_app_days SET n = n + {by} WHERE day = {day2} AND app = 'Teams'");
        let before = store.aggregate(&queries[4]).unwrap();
        store.writer.lock().execute_batch(&change(1000)).unwrap();
        let after = store.aggregate(&queries[4]).unwrap();
        let teams = |rows: &[Vec<Cell>]| -> (i64, usize) {
            let on_day2: Vec<&Vec<Cell>> =
                rows.iter().filter(|r| r[0] == Cell::Str("Teams".into()) && r[1] == Cell::Int(day2 * DAY)).collect();
            (on_day2.iter().map(|r| if let Cell::Int(n) = r[3] { n } else { 0 }).sum(), on_day2.len())
        };
        let ((was, _), (now, statuses)) = (teams(&before), teams(&after));
        assert!(statuses > 0);
        assert_eq!(now, was + 1000 * statuses as i64, "read from the per-application rows");
        assert_eq!(differences(&store.writer.lock()).unwrap()[0].table, "signin_app_days");
        store.writer.lock().execute_batch(&change(-1000)).unwrap();
        assert!(differences(&store.writer.lock()).unwrap().is_empty());

        // Within the pause after a making, a changed day is counted from the sign-ins but not
        // made again.
        *store.days_made.lock() = Some(std::time::Instant::now());
        store.writer.lock().execute_batch("DELETE FROM signins WHERE id = 'd9-0'").unwrap();
        assert_eq!(store.aggregate(&queries[0]).unwrap(), scanned(&store, &queries[0]));
        let day9 = T0.div_euclid(DAY) + 9;
        let sql = format!("SELECT rows FROM signin_day_prints WHERE day = {day9}");
        let made: i64 = store.writer.lock().query_row(&sql, [], |r| r.get(0)).unwrap();
        assert_eq!(made, 15, "day 9's print still counts d9-0");
        // A late sign-in on day 3, a revision on day 5 that turns a success into a failure,
        // and day 7's sign-ins removed (as archiving removes rows): those days are read from
        // the sign-ins until they are made again.
        n += 1;
        let late = signin(&mut n, "late", 3 * 24 + 20, 9, 0, 1);
        let revised = signin(&mut n, "d5-0", 5 * 24, 0, 50126, 2);
        store.apply(&[late, revised], n * 100).unwrap();
        store.writer.lock().execute_batch("DELETE FROM signins WHERE id LIKE 'd7-%'").unwrap();
        check(&store, "after changes to days 3, 5 and 7");
        check(&store, "days 3, 5 and 7 made again");
        assert_eq!(stored_days(&store), 10, "day 7 has no sign-ins left");
        assert!(differences(&store.writer.lock()).unwrap().is_empty());
        // What archiving runs with its removal: the whole days of the range go.
        store.writer.lock().execute_batch(&forget_days_sql("default", T0 + 2 * DAY + 1, T0 + 6 * DAY)).unwrap();
        assert_eq!(stored_days(&store), 7, "days 3, 4 and 5 forgotten");
        check(&store, "days 3, 4 and 5 counted from the sign-ins again");
    }

    #[test]
    fn only_utc_timelines_bounded_by_time_alone_are_planned() {
        let today = 30_000;
        assert!(Plan::of(&timeline(Bucket::Day, T0, None), today).is_some());
        let mut paris = timeline(Bucket::Day, T0, None);
        paris.group_by =
            vec![GroupBy::TimeBucket(col("event_time"), Bucket::Day, Zone { base: HOUR, changes: vec![] })];
        assert!(Plan::of(&paris, today).is_none(), "another time zone's days");
        let mut failures = timeline(Bucket::Day, T0, None);
        failures.filter =
            Expr::and(vec![failures.filter.clone(), Expr::eq(col("status"), Literal::Str("failure".into()))]);
        assert!(Plan::of(&failures, today).is_none(), "a filter beyond the time range");
        let mut by_app = timeline(Bucket::Day, T0, None);
        by_app.measures.push(Measure::CountDistinct(col("app_display_name")));
        assert!(Plan::of(&by_app, today).is_none(), "a measure the day rows do not hold");
        assert!(Plan::of(&timeline(Bucket::Hour, T0, None), today).is_none(), "hours");
        assert!(Plan::of(&app_weeks(Bucket::Week, T0), today).is_some());
        let mut app_users = app_weeks(Bucket::Week, T0);
        app_users.measures.push(Measure::CountDistinct(col("user_hash")));
        assert!(Plan::of(&app_users, today).is_none(), "per application, only the count");
        assert!(
            Plan::of(&timeline(Bucket::Day, T0 + 12 * HOUR, Some(T0 + 60 * HOUR)), today).is_none(),
            "one whole day"
        );
        let recent = T0.div_euclid(DAY);
        assert!(Plan::of(&timeline(Bucket::Day, T0, None), recent + 1).is_none(), "nothing before today");
    }
}
