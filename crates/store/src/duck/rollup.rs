//! Sign-ins counted per organisation and UTC day: per user (`signin_user_days`), per
//! application and status (`signin_app_days`), per pair of method lists (`signin_set_days`),
//! and per user the authentication methods used, as bits (`signin_user_method_days`). The sign-in
//! timeline, the top applications' weekly counts and the authentication methods report read
//! them for the whole days of their range instead of every sign-in (per user, about seven times
//! fewer rows than sign-ins in the benchmark's data; per application or method set, a few
//! thousand or hundred for a month; docs/benchmarks.md runs 47 and 49).
//!
//! A day's rows are a cache that nothing maintains. `signin_day_prints` keeps, per day, the
//! number of sign-ins they were made from and the XOR of a hash of each one's place in the event
//! log; a query compares that with the same print of the sign-ins table (in the snapshot it
//! reads) and uses the day's rows only when they agree. Any change to a day's sign-ins (a new
//! or late one, a revision, archiving, a restore, forgetting, a write by an older build) changes
//! its print, so the day is read from the sign-ins instead, and made again once the writer is
//! free. Days from today on are always read from the sign-ins.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use duckdb::Connection;
use signet_model::{Cell, LogKind};
use signet_query::ast::{Bucket, CmpOp, GroupBy, Literal, Measure};
use signet_query::{AggQuery, Expr};
use tracing::{debug, warn};

use super::{DuckStore, DIALECT};
use crate::engine::StoredEvent;
use crate::error::Result;

const DAY: i64 = 86_400_000_000;

/// The shortest time between two makings of day counts (see [`DuckStore::make_days`]).
const MAKE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The tables' layout; `signet_meta`'s `day_counts` records the one the file's tables have, and
/// any other is dropped and made anew when the file is opened (they are a cache).
const LAYOUT: &str = "3";

/// Today's day number (microseconds since the epoch / one day), UTC.
pub(super) fn today() -> i64 {
    signet_model::time::now_micros().div_euclid(DAY)
}

/// A day's print of the sign-ins table (the same expression wherever it is computed).
const PRINT: &str = "count(*) AS rows, bit_xor(hash(log_pos * 65536 + log_idx)) AS print";

/// The day of a sign-in.
const DAY_OF: &str = "epoch_us(event_time) // 86400000000";

/// The bit of each authentication method in `signin_user_method_days.methods`. Methods get the next
/// free bit when day rows are made, and keep it: rows made earlier stay readable. Bits from 64
/// on cannot be held (see [`Plan::answer_methods`]).
const METHOD_BITS: &str = "signin_method_bits";

/// Gives every method of `auth_method_sets` without a bit the next ones (in the writer's
/// transaction that makes day rows).
const NEW_METHOD_BITS: &str = "INSERT INTO signin_method_bits SELECT method, \
     CAST((SELECT coalesce(max(bit), -1) FROM signin_method_bits) + row_number() OVER (ORDER BY method) AS INTEGER) \
     FROM (SELECT DISTINCT unnest(methods) AS method FROM auth_method_sets) m \
     WHERE NOT EXISTS (SELECT 1 FROM signin_method_bits b WHERE b.method = m.method)";

/// Per method set, the bits of its methods.
const SET_MASKS: &str = "SELECT s.set_key, bit_or(CAST(1 AS UBIGINT) << b.bit) AS mask \
     FROM (SELECT set_key, unnest(methods) AS method FROM auth_method_sets) s \
     JOIN signin_method_bits b ON s.method = b.method AND b.bit < 64 GROUP BY s.set_key";

/// The methods of each method set, one row each.
const SET_METHODS: &str = "SELECT set_key, succeeded, unnest(methods) AS method FROM auth_method_sets";

/// A table of day counts: what it groups a day's sign-ins by and what it counts.
struct DayTable {
    name: &'static str,
    /// Its columns after `org_id` and `day`.
    columns: &'static str,
    /// The groups, as a select list over `signins` (named as the columns).
    groups: &'static str,
    /// The counts; with `masks`, each sign-in's method bits are `__mask`.
    counts: &'static str,
    masks: bool,
}

const USERS: DayTable = DayTable {
    name: "signin_user_days",
    columns: "user_hash BIGINT, n BIGINT, success BIGINT, failure BIGINT, interrupted BIGINT",
    groups: "user_hash",
    counts: "count(*) AS n, count(*) FILTER (WHERE status = 'success') AS success, \
             count(*) FILTER (WHERE status = 'failure') AS failure, \
             count(*) FILTER (WHERE status = 'interrupted') AS interrupted",
    masks: false,
};

/// Apart from [`USERS`], which the timeline reads: the bits would cost it a join and a column.
const USER_METHODS: DayTable = DayTable {
    name: "signin_user_method_days",
    columns: "user_hash BIGINT, methods UBIGINT",
    groups: "user_hash",
    counts: "bit_or(__mask) AS methods",
    masks: true,
};

const APPS: DayTable = DayTable {
    name: "signin_app_days",
    columns: "app VARCHAR, status VARCHAR, n BIGINT",
    groups: "app_display_name AS app, status",
    counts: "count(*) AS n",
    masks: false,
};

const SETS: DayTable = DayTable {
    name: "signin_set_days",
    columns: "auth_method_set BIGINT, n BIGINT",
    groups: "auth_method_set",
    counts: "count(*) AS n",
    masks: false,
};

const TABLES: [DayTable; 4] = [USERS, APPS, SETS, USER_METHODS];

impl DayTable {
    /// The counts of the sign-ins `condition` selects, in the table's columns.
    fn counted(&self, condition: &str) -> String {
        let rows = match self.masks {
            true => format!(
                "(SELECT s.*, coalesce(m.mask, CAST(0 AS UBIGINT)) AS __mask FROM signins s \
                 LEFT JOIN ({SET_MASKS}) m ON s.auth_method_set = m.set_key WHERE {condition})"
            ),
            false => format!("signins WHERE {condition}"),
        };
        format!("SELECT org_id, {DAY_OF} AS day, {}, {} FROM {rows} GROUP BY ALL", self.groups, self.counts)
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
        sql.push(format!("DROP TABLE IF EXISTS {METHOD_BITS}"));
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
    sql.push(format!("CREATE TABLE IF NOT EXISTS {METHOD_BITS} (method VARCHAR, bit INTEGER)"));
    Ok(conn.execute_batch(&sql.join("; "))?)
}

/// A measure the per-user day rows answer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Count {
    All,
    Status(&'static str),
    Users,
}

/// A measure of sign-ins per authentication method the day rows answer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum MethodCount {
    /// Sign-ins that used the method.
    All,
    /// ... and succeeded with it.
    Succeeded,
    /// Distinct users whose sign-ins used it.
    Users,
}

/// What a query asks of the day rows.
#[derive(Debug)]
enum Shape {
    /// Time buckets only, counted in total, by status and by distinct user (the timeline).
    Timeline(Bucket, Vec<Count>),
    /// Sign-ins per application, time bucket and status (the top applications' first pass).
    AppStatus(Bucket),
    /// Sign-ins per authentication method (the authentication methods report), ordered by the
    /// first measure (descending) or the method, at most `limit`.
    Methods { counts: Vec<MethodCount>, by_first_desc: bool, limit: Option<usize> },
}

/// A query the day rows can answer: sign-ins of one organisation grouped by UTC day or week,
/// or by authentication method, under a filter that only bounds the time.
#[derive(Debug)]
pub(super) struct Plan {
    org: String,
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
        if query.kind != LogKind::SignIn {
            return None;
        }
        let unordered = !query.order_by_first_measure_desc && query.limit.is_none();
        let utc_days = |g: &GroupBy| match g {
            GroupBy::TimeBucket(column, bucket @ (Bucket::Day | Bucket::Week), zone)
                if column.name == "event_time" && zone.is_utc() =>
            {
                Some(*bucket)
            }
            _ => None,
        };
        let named = |g: &GroupBy, name: &str| matches!(g, GroupBy::Column(c) if c.name == name);
        let shape = match query.group_by.as_slice() {
            [GroupBy::Unnest(list)] if list.name == "auth_methods" && !query.measures.is_empty() => Shape::Methods {
                counts: query.measures.iter().map(method_count_of).collect::<Option<_>>()?,
                by_first_desc: query.order_by_first_measure_desc,
                limit: query.limit,
            },
            [time] if unordered => {
                Shape::Timeline(utc_days(time)?, query.measures.iter().map(count_of).collect::<Option<_>>()?)
            }
            [app, time, status]
                if unordered
                    && named(app, "app_display_name")
                    && named(status, "status")
                    && query.measures == [Measure::Count] =>
            {
                Shape::AppStatus(utc_days(time)?)
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
        (end - first >= 2).then(|| Plan { org: query.org.clone(), shape, low, high, first, end })
    }

    /// The rows of `table` for the range: the stored ones of `valid` days, counted from the
    /// sign-ins for the rest.
    fn day_rows(&self, table: &DayTable, valid: &[i64], alias: &str) -> String {
        let org = DIALECT.quote_str(&self.org);
        let stored =
            format!("SELECT * EXCLUDE (org_id) FROM {} WHERE org_id = {org} AND {}", table.name, days_in(valid));
        let scanned = format!(
            "SELECT * EXCLUDE (org_id) FROM ({})",
            table.counted(&format!("org_id = {org} AND ({})", self.scanned_ranges(valid)))
        );
        format!("({stored} UNION ALL {scanned}) AS {alias}")
    }

    /// The answer from the day rows of `valid` days and the sign-ins of the rest of the range.
    fn answer_sql(&self, valid: &[i64]) -> String {
        let bucket = |bucket: &Bucket| match bucket {
            // Monday-based weeks; the epoch was a Thursday (days >= 0 here).
            Bucket::Week => format!("((day + 3) // 7 * 7 - 3) * {DAY}"),
            _ => format!("day * {DAY}"),
        };
        match &self.shape {
            Shape::Timeline(by, counts) => {
                let (bucket, rows) = (bucket(by), self.day_rows(&USERS, valid, "d"));
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
            Shape::AppStatus(by) => format!(
                "SELECT app AS g0, {} AS g1, status AS g2, CAST(sum(n) AS BIGINT) AS m0 FROM {} \
                 GROUP BY g0, g1, g2 ORDER BY g0 ASC NULLS LAST, g1 ASC NULLS LAST, g2 ASC NULLS LAST",
                bucket(by),
                self.day_rows(&APPS, valid, "d")
            ),
            Shape::Methods { counts, by_first_desc, limit } => {
                self.answer_methods(counts, *by_first_desc, *limit, valid)
            }
        }
    }

    /// Sign-ins per method from the method sets' day rows, and distinct users per method from
    /// the users' method bits of the `valid` days with, for the rest of the range, the pairs
    /// of user and method set of its sign-ins. Bits only count while no method has a bit from 64
    /// on: otherwise [`DuckStore::aggregate_by_days`] passes no valid day.
    fn answer_methods(
        &self,
        counts: &[MethodCount],
        by_first_desc: bool,
        limit: Option<usize>,
        valid: &[i64],
    ) -> String {
        let org = DIALECT.quote_str(&self.org);
        let per_method = format!(
            "SELECT d.method, CAST(sum(p.n) AS BIGINT) AS used, \
             CAST(coalesce(sum(p.n) FILTER (WHERE list_contains(d.succeeded, d.method)), 0) AS BIGINT) AS succeeded \
             FROM {} JOIN ({SET_METHODS}) d ON p.auth_method_set = d.set_key GROUP BY d.method",
            self.day_rows(&SETS, valid, "p")
        );
        let users = format!(
            "SELECT method, count(DISTINCT user_hash) AS users FROM (\
             SELECT b.method, u.user_hash FROM (SELECT user_hash, bit_or(methods) AS mask FROM {} \
             WHERE org_id = {org} AND {} AND user_hash IS NOT NULL GROUP BY user_hash) u \
             JOIN {METHOD_BITS} b ON b.bit < 64 AND (u.mask >> b.bit) & 1 = 1 \
             UNION ALL SELECT d.method, s.user_hash FROM (SELECT DISTINCT auth_method_set, user_hash FROM signins \
             WHERE org_id = {org} AND ({}) AND user_hash IS NOT NULL) s JOIN ({SET_METHODS}) d ON s.auth_method_set = d.set_key\
             ) GROUP BY method",
            USER_METHODS.name,
            days_in(valid),
            self.scanned_ranges(valid)
        );
        let measures: Vec<String> = counts
            .iter()
            .enumerate()
            .map(|(i, count)| match count {
                MethodCount::All => format!("c.used AS m{i}"),
                MethodCount::Succeeded => format!("c.succeeded AS m{i}"),
                MethodCount::Users => format!("coalesce(u.users, 0) AS m{i}"),
            })
            .collect();
        let order = match by_first_desc {
            true => "m0 DESC, g0 ASC NULLS LAST",
            false => "g0 ASC NULLS LAST",
        };
        let limit = limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
        format!(
            "SELECT c.method AS g0, {} FROM ({per_method}) c LEFT JOIN ({users}) u ON c.method = u.method \
             ORDER BY {order}{limit}",
            measures.join(", ")
        )
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

fn method_count_of(measure: &Measure) -> Option<MethodCount> {
    match measure {
        Measure::Count => Some(MethodCount::All),
        Measure::CountWhereGroupIn(list) if list.name == "auth_methods_succeeded" => Some(MethodCount::Succeeded),
        Measure::CountDistinct(column) if column.name == "user_hash" => Some(MethodCount::Users),
        _ => None,
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

/// A condition on `day`: one of `days`.
fn days_in(days: &[i64]) -> String {
    match days.is_empty() {
        true => "FALSE".to_string(),
        false => format!("day IN ({})", join(days)),
    }
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
            table.counted("TRUE")
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

/// The sign-ins' prints of the days `first..end` of `org` as a snapshot read them when
/// [`DuckStore::signin_writes`] was `writes` (even: no write under way). Reports ask for the
/// same month again and again, and reading the prints is most of what a report costs from day
/// rows (6.7 ms of 1M sign-ins); the access log's writes with every read leave them alone.
pub(super) struct PrintCache {
    writes: u64,
    org: String,
    first: i64,
    end: i64,
    prints: HashMap<i64, Print>,
}

/// After a write of sign-ins from day `days.0` to `days.1` (none a revision), while
/// `signin_writes` is `odd`: the cached prints stay valid if they were just before the write
/// and are of other days. Sign-ins arriving as they happen are today's, never a cached day.
pub(super) fn keep_prints(cache: &super::PrintSlot, odd: u64, days: (i64, i64)) {
    if let Some(cached) = cache.lock().as_mut() {
        if cached.writes + 1 == odd && (days.1 < cached.first || days.0 >= cached.end) {
            cached.writes += 2;
        }
    }
}

fn prints(conn: &Connection, sql: &str) -> Result<HashMap<i64, Print>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, (r.get::<_, i64>(1)?, r.get::<_, u64>(2)?))))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

impl DuckStore {
    /// The writer, to apply `events`: activities and audits leave the sign-ins' day prints
    /// cached (the access log writes some with every read), and so do sign-ins of days other
    /// than the cached ones. A revision removes an earlier row of any day: prints read again.
    pub(super) fn lock_writer_for(&self, events: &[StoredEvent]) -> super::WriterGuard<'_> {
        let mut days: Option<(i64, i64)> = None;
        let mut revised = false;
        for event in events.iter().filter(|e| e.event.kind == LogKind::SignIn) {
            let day = event.event.time_us.div_euclid(DAY);
            days = Some(days.map_or((day, day), |(low, high)| (low.min(day), high.max(day))));
            revised |= event.revision > 1;
        }
        let mut writer = self.lock_writer(days.is_some());
        if let (Some(days), false) = (days, revised) {
            writer.keeps_prints = Some((&self.day_prints, days));
        }
        writer
    }

    /// Answers `plan` in one snapshot: the days whose print still matches from their rows,
    /// the rest from the sign-ins. Days that did not match are made again afterwards if the
    /// writer is free (a query never waits for it).
    pub(super) fn aggregate_by_days(&self, plan: &Plan) -> Result<Vec<Vec<Cell>>> {
        let started = std::time::Instant::now();
        let org = DIALECT.quote_str(&plan.org);
        let (first, end) = (plan.first, plan.end);
        let writes = self.signin_writes.load(Ordering::SeqCst);
        // One transaction: the prints and the answer read one snapshot.
        let (rows, stale) = self.with_reader(|conn| {
            Self::in_transaction(conn, |conn| {
                let kept = prints(
                    conn,
                    &format!(
                        "SELECT day, rows, print FROM signin_day_prints WHERE org_id = {org} \
                         AND day >= {first} AND day < {end}"
                    ),
                )?;
                // The snapshot (taken by now) holds the sign-ins as they were at `writes` if no
                // write to them was under way then (even) and none began since.
                let settled = writes.is_multiple_of(2) && self.signin_writes.load(Ordering::SeqCst) == writes;
                let cached = match &*self.day_prints.lock() {
                    Some(c)
                        if settled && c.writes == writes && c.org == plan.org && (c.first, c.end) == (first, end) =>
                    {
                        Some(c.prints.clone())
                    }
                    _ => None,
                };
                let current = match cached {
                    Some(prints) => prints,
                    None => {
                        let current = prints(
                            conn,
                            &format!(
                                "SELECT {DAY_OF} AS day, {PRINT} FROM signins WHERE org_id = {org} \
                                 AND event_time >= {} AND event_time < {} GROUP BY day",
                                time(first * DAY),
                                time(end * DAY)
                            ),
                        )?;
                        if settled {
                            let (org, prints) = (plan.org.clone(), current.clone());
                            *self.day_prints.lock() = Some(PrintCache { writes, org, first, end, prints });
                        }
                        current
                    }
                };
                let (mut valid, mut stale): (Vec<i64>, Vec<i64>) =
                    current.keys().partition(|day| kept.get(day) == current.get(day));
                // Days whose sign-ins are all gone keep rows no query reads: removed too.
                stale.extend(kept.keys().filter(|day| !current.contains_key(day)));
                valid.sort_unstable();
                stale.sort_unstable();
                if matches!(plan.shape, Shape::Methods { .. }) && !valid.is_empty() {
                    // A method past the 64th has no bit in the users' rows: count from the sign-ins.
                    let sql = format!("SELECT count(*) FROM {METHOD_BITS} WHERE bit >= 64");
                    if conn.query_row(&sql, [], |r| r.get::<_, i64>(0))? > 0 {
                        valid.clear();
                    }
                }
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
        // Day rows and method bits only: the sign-ins' prints stay valid.
        let Some(writer) = self.try_writer(false) else { return Ok(()) };
        *made = Some(std::time::Instant::now());
        drop(made);
        let (Some(first), Some(last)) = (days.first(), days.last()) else { return Ok(()) };
        let started = std::time::Instant::now();
        let org = DIALECT.quote_str(org);
        let list = join(days);
        let rows = format!(
            "org_id = {org} AND event_time >= {} AND event_time < {} AND {DAY_OF} IN ({list})",
            time(first * DAY),
            time((last + 1) * DAY)
        );
        let mut sql = vec![NEW_METHOD_BITS.to_string()];
        for table in TABLES.iter().map(|t| (t.name, t.counted(&rows))).chain([(
            "signin_day_prints",
            format!("SELECT org_id, {DAY_OF} AS day, {PRINT} FROM signins WHERE {rows} GROUP BY ALL"),
        )]) {
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
mod tests;
