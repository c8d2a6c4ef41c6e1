//! Compiles the query AST to SQL. One compiler, one [`Dialect`] per storage engine.
//!
//! Literals are rendered inline, escaped by the dialect (the ClickHouse HTTP interface has no
//! positional parameters); `tests::string_literals_are_escaped` and the store's conformance
//! suite check that no input can leave its literal.
//!
//! The ClickHouse dialect keeps to what ClickHouse 18.16 (Debian's package) and current
//! releases both accept: times are stored as epoch microseconds (`Int64`; 18.16 has no
//! `DateTime64`) and bucketed with integer arithmetic in UTC, booleans are `UInt8`, and there is
//! no `IS DISTINCT FROM`, `TRUE`/`FALSE` or `GROUPING SETS`.

use chrono::{TimeZone, Utc};
use signet_model::schema::{self, ColType, Column};

use crate::ast::{AggQuery, Bucket, CmpOp, Expr, GroupBy, ListQuery, Literal, Measure, SortOrder, Zone};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    DuckDb,
    ClickHouse,
}

const UNNEST_ALIAS: &str = "__unnested";
/// An unnested element's position in its list (see [`Counting::Distinct`]).
const UNNEST_INDEX: &str = "__unnested_at";

/// What an aggregation's counts count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counting<'a> {
    /// Every row the source gives (each is one event).
    Rows,
    /// The distinct values of these columns: the source may give an event more than once (a
    /// ClickHouse table before its parts are merged, read without `FINAL`), and these columns
    /// tell its copies apart from other events. After an unnest, the element's position in
    /// its list is part of the key, so a list holding a value twice still counts twice.
    Distinct(&'a [&'static Column]),
}
const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 86_400_000_000;
const WEEK_US: i64 = 7 * DAY_US;
const MONDAY_US: i64 = 4 * DAY_US;

mod sets;
pub use sets::{facets_sql, facets_sql_from, multi_agg_sql_by_repeats, multi_agg_sql_from, MultiAggSql};

impl Dialect {
    /// A string literal. NUL characters are dropped: no engine stores them in text.
    pub fn quote_str(self, s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('\'');
        for c in s.chars() {
            match (self, c) {
                (_, '\0') => {}
                (_, '\'') => out.push_str("''"),
                (Dialect::ClickHouse, '\\') => out.push_str("\\\\"),
                (_, c) => out.push(c),
            }
        }
        out.push('\'');
        out
    }

    pub fn time_literal(self, micros: i64) -> String {
        match self {
            Dialect::DuckDb => {
                let text = Utc
                    .timestamp_micros(micros)
                    .single()
                    .unwrap_or_default()
                    .format("%Y-%m-%d %H:%M:%S%.6f")
                    .to_string();
                format!("TIMESTAMP '{text}'")
            }
            Dialect::ClickHouse => micros.to_string(),
        }
    }

    /// A time column read back as epoch microseconds.
    pub fn epoch_us(self, expr: &str) -> String {
        match self {
            Dialect::DuckDb => format!("epoch_us({expr})"),
            Dialect::ClickHouse => expr.to_string(),
        }
    }

    /// The constant true / false.
    fn truth(self, value: bool) -> &'static str {
        match (self, value) {
            (Dialect::DuckDb, true) => "TRUE",
            (Dialect::DuckDb, false) => "FALSE",
            (Dialect::ClickHouse, true) => "1",
            (Dialect::ClickHouse, false) => "0",
        }
    }

    /// `expr` differs from a non-NULL literal (or is NULL).
    fn distinct_from(self, expr: &str, literal: &str) -> String {
        match self {
            Dialect::DuckDb => format!("{expr} IS DISTINCT FROM {literal}"),
            Dialect::ClickHouse => format!("(NOT ifNull({expr} = {literal}, 0))"),
        }
    }

    fn literal(self, value: &Literal) -> String {
        match value {
            Literal::Str(s) => self.quote_str(s),
            Literal::Int(i) => i.to_string(),
            Literal::Float(f) if f.is_finite() => format!("{f:?}"),
            Literal::Float(_) => "NULL".into(),
            Literal::Bool(b) => self.truth(*b).into(),
            Literal::Time(t) => self.time_literal(*t),
            Literal::Null => "NULL".into(),
        }
    }

    fn starts_with(self, expr: &str, prefix: &str) -> String {
        match self {
            Dialect::DuckDb => format!("starts_with({expr}, {})", self.quote_str(prefix)),
            Dialect::ClickHouse => format!("startsWith({expr}, {})", self.quote_str(prefix)),
        }
    }

    /// A case-insensitive equality (or, with `prefix`, starts-with) of `column` and lower-case
    /// `text`, where the dialect has a faster one than lower-casing every row: DuckDB's `ILIKE`
    /// compares ASCII in place (a third faster than `lower(column) = ...` on user names), but
    /// only without an `ESCAPE` clause, so only for text without `%`, `_` or a backslash.
    fn ilike(self, column: &Column, text: &str, prefix: bool) -> Option<String> {
        let plain = !text.contains(['%', '_', '\\']);
        match self {
            Dialect::DuckDb if plain && !schema::stored_lowercase(column) => {
                let pattern = if prefix { format!("{text}%") } else { text.to_string() };
                Some(format!("{} ILIKE {}", column.name, self.quote_str(&pattern)))
            }
            _ => None,
        }
    }

    fn contains(self, expr: &str, needle: &str) -> String {
        match self {
            Dialect::DuckDb => format!("contains({expr}, {})", self.quote_str(needle)),
            Dialect::ClickHouse => format!("(position({expr}, {}) > 0)", self.quote_str(needle)),
        }
    }

    fn list_contains(self, list: &str, value: &str) -> String {
        match self {
            Dialect::DuckDb => format!("list_contains({list}, {value})"),
            Dialect::ClickHouse => format!("has({list}, {value})"),
        }
    }

    fn count_if(self, condition: &str) -> String {
        match self {
            Dialect::DuckDb => format!("count(*) FILTER (WHERE {condition})"),
            Dialect::ClickHouse => format!("countIf({condition})"),
        }
    }

    fn count_distinct(self, column: &str) -> String {
        match self {
            Dialect::DuckDb => format!("count(DISTINCT {column})"),
            Dialect::ClickHouse => format!("uniqExact({column})"),
        }
    }

    /// The distinct values of `key` (comma-separated columns) among the rows where `condition`
    /// holds (all rows without one).
    fn count_distinct_key(self, key: &str, condition: Option<&str>) -> String {
        match (self, condition) {
            (Dialect::DuckDb, None) => format!("count(DISTINCT ({key}))"),
            (Dialect::DuckDb, Some(c)) => format!("count(DISTINCT ({key})) FILTER (WHERE {c})"),
            (Dialect::ClickHouse, None) => format!("uniqExact({key})"),
            (Dialect::ClickHouse, Some(c)) => format!("uniqExactIf({key}, {c})"),
        }
    }

    /// A time column as wall clock microseconds in `zone`: epoch microseconds plus the offset
    /// in force at that instant (a `CASE` over the zone's changes).
    fn wall_clock(self, column: &str, zone: &Zone) -> String {
        let micros = self.epoch_us(column);
        if zone.is_utc() {
            return micros;
        }
        let signed = |n: i64| match self {
            Dialect::DuckDb => n.to_string(),
            Dialect::ClickHouse => format!("toInt64({n})"),
        };
        if zone.changes.is_empty() {
            return format!("({micros} + {})", signed(zone.base));
        }
        let mut case = String::from("CASE");
        let mut offset = zone.base;
        for &(at, next) in &zone.changes {
            case.push_str(&format!(" WHEN {micros} < {} THEN {}", signed(at), signed(offset)));
            offset = next;
        }
        case.push_str(&format!(" ELSE {} END", signed(offset)));
        format!("({micros} + {case})")
    }

    /// The start of the bucket holding a time: integer arithmetic on (wall clock) epoch
    /// microseconds, rounding down also before 1970 (both dialects' integer division and `%`
    /// truncate toward zero). Weeks start on Monday: the first Monday after the epoch is 4 days
    /// in. DuckDB's `date_trunc` gives the same buckets but took 2-6 ms more per million rows;
    /// there a negative time is moved down by `width - 1` before the division instead of a
    /// second division (`%`) and a `CASE` after it: the weekly counts of top applications over
    /// a million rows took 19.1 ms instead of 21.4 (run 44).
    fn bucket(self, column: &str, bucket: Bucket, zone: &Zone) -> String {
        let (width, offset) = match bucket {
            Bucket::Micros(width) => (width.max(1), 0),
            Bucket::Hour => (HOUR_US, 0),
            Bucket::Day => (DAY_US, 0),
            Bucket::Week => (WEEK_US, MONDAY_US),
        };
        // ClickHouse reads a large literal as UInt64, and Int64 % UInt64 as unsigned.
        let signed = |n: i64| match self {
            Dialect::DuckDb => n.to_string(),
            Dialect::ClickHouse => format!("toInt64({n})"),
        };
        let micros = self.wall_clock(column, zone);
        let shifted = if offset == 0 { micros } else { format!("({micros} - {})", signed(offset)) };
        let below = width - 1;
        let (width, offset) = (signed(width), signed(offset));
        let start = match self {
            Dialect::DuckDb => {
                format!("((({shifted} - CAST({shifted} < 0 AS BIGINT) * {below}) // {width}) * {width})")
            }
            Dialect::ClickHouse => format!(
                "((intDiv({shifted}, {width}) - CASE WHEN {shifted} % {width} < 0 THEN 1 ELSE 0 END) * {width})"
            ),
        };
        match bucket {
            Bucket::Week => format!("({start} + {offset})"),
            _ => start,
        }
    }

    fn hour_of_day(self, column: &str, zone: &Zone) -> String {
        match self {
            Dialect::DuckDb if zone.is_utc() => format!("hour({column})"),
            Dialect::DuckDb => format!(
                "(({} - {}) // {HOUR_US})",
                self.wall_clock(column, zone),
                self.bucket(column, Bucket::Day, zone)
            ),
            Dialect::ClickHouse => format!(
                "intDiv({} - {}, toInt64({HOUR_US}))",
                self.wall_clock(column, zone),
                self.bucket(column, Bucket::Day, zone)
            ),
        }
    }

    /// ISO day of the week: Monday 1 .. Sunday 7 (1970-01-01 was a Thursday).
    fn day_of_week(self, column: &str, zone: &Zone) -> String {
        match self {
            Dialect::DuckDb if zone.is_utc() => format!("isodow({column})"),
            // Days since the epoch, rounded down also before 1970, then a non-negative modulo.
            Dialect::DuckDb => {
                format!("((({} // {DAY_US}) + 3) % 7 + 7) % 7 + 1", self.bucket(column, Bucket::Day, zone))
            }
            Dialect::ClickHouse => format!(
                "(((intDiv({}, toInt64({DAY_US})) + 3) % 7 + 7) % 7 + 1)",
                self.bucket(column, Bucket::Day, zone)
            ),
        }
    }
}

/// Compiles a filter expression to a SQL boolean expression.
pub fn compile_expr(expr: &Expr, dialect: Dialect) -> String {
    match expr {
        Expr::True => dialect.truth(true).into(),
        Expr::And(parts) if parts.is_empty() => dialect.truth(true).into(),
        Expr::Or(parts) if parts.is_empty() => dialect.truth(false).into(),
        Expr::And(parts) => join(parts, " AND ", dialect),
        Expr::Or(parts) => join(parts, " OR ", dialect),
        Expr::Not(inner) => format!("(NOT {})", compile_expr(inner, dialect)),
        Expr::NotTrue(inner) => match dialect {
            Dialect::DuckDb => format!("(({}) IS NOT TRUE)", compile_expr(inner, dialect)),
            Dialect::ClickHouse => format!("(NOT ifNull({}, 0))", compile_expr(inner, dialect)),
        },
        Expr::Compare { column, op, value } => compare(column, *op, value, dialect),
        Expr::StartsWith { column, prefix } => {
            let prefix = prefix.to_lowercase();
            dialect.ilike(column, &prefix, true).unwrap_or_else(|| dialect.starts_with(&lowered(column), &prefix))
        }
        Expr::Contains { column, needle } => dialect.contains(&lowered(column), &needle.to_lowercase()),
        Expr::ListContains { column, value } => dialect.list_contains(column.name, &dialect.quote_str(value)),
        Expr::InList { column, values } if values.is_empty() => {
            let _ = column;
            dialect.truth(false).into()
        }
        Expr::InList { column, values } => {
            let list: Vec<String> = values.iter().map(|v| dialect.quote_str(&v.to_lowercase())).collect();
            format!("{} IN ({})", lowered(column), list.join(", "))
        }
    }
}

/// The column for a case-insensitive comparison: `lower(column)`, unless it is stored lower-case.
fn lowered(column: &Column) -> String {
    if schema::stored_lowercase(column) {
        column.name.to_string()
    } else {
        format!("lower({})", column.name)
    }
}

fn join(parts: &[Expr], separator: &str, dialect: Dialect) -> String {
    let compiled: Vec<String> = parts.iter().map(|p| compile_expr(p, dialect)).collect();
    format!("({})", compiled.join(separator))
}

fn compare(column: &Column, op: CmpOp, value: &Literal, dialect: Dialect) -> String {
    let name = column.name;
    if *value == Literal::Null {
        return match op {
            CmpOp::Eq => format!("{name} IS NULL"),
            CmpOp::Ne => format!("{name} IS NOT NULL"),
            _ => dialect.truth(false).into(),
        };
    }
    match (column.ty, value) {
        (ColType::StrList, Literal::Str(s)) => {
            let contains = dialect.list_contains(name, &dialect.quote_str(s));
            match op {
                CmpOp::Ne => format!("(NOT {contains})"),
                _ => contains,
            }
        }
        (ColType::Str, Literal::Str(s)) if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
            let lowered = dialect.quote_str(&s.to_lowercase());
            let target = self::lowered(column);
            match op {
                CmpOp::Eq => {
                    dialect.ilike(column, &s.to_lowercase(), false).unwrap_or_else(|| format!("{target} = {lowered}"))
                }
                _ => dialect.distinct_from(&target, &lowered),
            }
        }
        (_, value) if op == CmpOp::Ne => dialect.distinct_from(name, &dialect.literal(value)),
        (_, value) => format!("{name} {} {}", op.sql(), dialect.literal(value)),
    }
}

/// The SELECT list for a set of columns: times as epoch microseconds, the rest as stored.
pub fn select_list(columns: &[&'static Column], dialect: Dialect) -> String {
    columns
        .iter()
        .map(|c| match c.ty {
            ColType::Time => format!("{} AS {}", dialect.epoch_us(c.name), c.name),
            _ => c.name.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn org_clause(org: &str, dialect: Dialect) -> String {
    format!("org_id = {}", dialect.quote_str(org))
}

/// The columns a list query returns (all of the kind's, when none were chosen).
pub fn list_columns(query: &ListQuery) -> Vec<&'static Column> {
    if query.columns.is_empty() {
        schema::all_columns(query.kind).collect()
    } else {
        query.columns.clone()
    }
}

/// `WHERE` clause of a list query, including the keyset condition.
pub fn list_where(query: &ListQuery, dialect: Dialect) -> String {
    let mut clause = format!("{} AND {}", org_clause(&query.org, dialect), compile_expr(&query.filter, dialect));
    if let Some((time, id)) = &query.after {
        let (op, time_literal, id_literal) = (
            if query.order == SortOrder::Desc { "<" } else { ">" },
            dialect.time_literal(*time),
            dialect.quote_str(id),
        );
        clause.push_str(&format!(
            " AND (event_time {op} {time_literal} OR (event_time = {time_literal} AND id {op} {id_literal}))"
        ));
    }
    clause
}

/// A page of a list query (one row more than the limit, to detect a next page). `limit = None`
/// streams everything (export).
pub fn list_sql(query: &ListQuery, dialect: Dialect, limit: Option<usize>) -> String {
    list_sql_from(query, dialect, limit, schema::table(query.kind))
}

/// [`list_sql`] reading from `source` (a table, or a parenthesised query with an alias, e.g.
/// the hot table and the archive together) instead of the kind's table.
pub fn list_sql_from(query: &ListQuery, dialect: Dialect, limit: Option<usize>, source: &str) -> String {
    let direction = if query.order == SortOrder::Desc { "DESC" } else { "ASC" };
    let mut sql = format!(
        "SELECT {} FROM {} WHERE {} ORDER BY event_time {direction}, id {direction}",
        select_list(&list_columns(query), dialect),
        source,
        list_where(query, dialect),
    );
    if let Some(limit) = limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    sql
}

/// A page of a list query on DuckDB's hot table, in two steps: the page's row ids first,
/// reading only the columns the filter and the order need, then the page's columns for those
/// rows alone. DuckDB otherwise fetches every selected column of every row that passes the
/// filter before the top-N: a month of one user prefix's legacy-client sign-ins, 1M stored,
/// took 26 ms instead of 15. `archived_column` adds the `archived` column (false).
pub fn list_page_by_rowid(query: &ListQuery, limit: usize, archived_column: bool) -> String {
    let dialect = Dialect::DuckDb;
    let table = schema::table(query.kind);
    let direction = if query.order == SortOrder::Desc { "DESC" } else { "ASC" };
    let order = format!("event_time {direction}, id {direction}");
    let page = format!("SELECT rowid FROM {table} WHERE {} ORDER BY {order} LIMIT {limit}", list_where(query, dialect));
    let archived = if archived_column { ", false AS archived" } else { "" };
    format!(
        "SELECT {} FROM (SELECT *{archived} FROM {table} WHERE rowid IN ({page})) AS {table} ORDER BY {order}",
        select_list(&list_columns(query), dialect),
    )
}

/// `SELECT count(*)` of a filter.
pub fn count_sql(org: &str, kind: signet_model::LogKind, filter: &Expr, dialect: Dialect) -> String {
    count_sql_from(org, filter, dialect, schema::table(kind))
}

/// [`count_sql`] reading from `source` (see [`list_sql_from`]).
pub fn count_sql_from(org: &str, filter: &Expr, dialect: Dialect, source: &str) -> String {
    count_sql_counting(org, filter, dialect, source, Counting::Rows)
}

/// [`count_sql_from`] counting as `counting` says.
pub fn count_sql_counting(org: &str, filter: &Expr, dialect: Dialect, source: &str, counting: Counting<'_>) -> String {
    let count = match counting {
        Counting::Rows => "count(*)".to_string(),
        Counting::Distinct(key) => {
            dialect.count_distinct_key(&key.iter().map(|c| c.name).collect::<Vec<_>>().join(", "), None)
        }
    };
    format!("SELECT {count} FROM {} WHERE {} AND {}", source, org_clause(org, dialect), compile_expr(filter, dialect))
}

/// The columns an aggregation's groups and measures read (not the filter's: it is applied
/// before the projection).
pub fn aggregation_columns(query: &AggQuery) -> Vec<&'static Column> {
    let mut out: Vec<&'static Column> = Vec::new();
    for group in &query.group_by {
        match group {
            GroupBy::Column(c)
            | GroupBy::TimeBucket(c, _, _)
            | GroupBy::HourOfDay(c, _)
            | GroupBy::DayOfWeek(c, _)
            | GroupBy::Among(c, _) => Expr::eq(c, Literal::Null).columns(&mut out),
            GroupBy::Unnest(_) => {}
        }
    }
    measure_columns(&query.measures, &mut out);
    out
}

/// A grouped aggregation: `g0..gN` (groups) then `m0..mM` (measures).
pub fn agg_sql(query: &AggQuery, dialect: Dialect) -> String {
    agg_sql_from(query, dialect, schema::table(query.kind))
}

/// [`agg_sql`] reading from `table` (see [`list_sql_from`]).
pub fn agg_sql_from(query: &AggQuery, dialect: Dialect, table: &str) -> String {
    agg_sql_counting(query, dialect, table, Counting::Rows)
}

/// [`agg_sql_from`] with counts that count as `counting` says.
pub fn agg_sql_counting(query: &AggQuery, dialect: Dialect, table: &str, counting: Counting<'_>) -> String {
    let mut filter = format!("{} AND {}", org_clause(&query.org, dialect), compile_expr(&query.filter, dialect));
    // The DuckDB shapes (this one and the two steps below) count rows.
    let plain = counting == Counting::Rows;
    let bits = match plain {
        true => distinct_among_by_bits(query, dialect, &format!("(SELECT * FROM {table} WHERE {filter}) AS t")),
        false => None,
    };
    for group in &query.group_by {
        if let (GroupBy::Among(column, values), None) = (group, &bits) {
            filter.push_str(&format!(" AND {}", among_clause(column, values, dialect)));
        }
    }
    let unnest = query.group_by.iter().find_map(|g| match g {
        GroupBy::Unnest(column) => Some(*column),
        _ => None,
    });
    // Unnesting repeats every selected column per element: select only what the groups and
    // measures read (engines do not push this projection through the unnest themselves).
    let mut read = aggregation_columns(query);
    let mut key: Option<Vec<&str>> = None;
    if let Counting::Distinct(columns) = counting {
        for column in columns {
            if !read.iter().any(|c| std::ptr::eq(*c, *column)) {
                read.push(column);
            }
        }
        key = Some(columns.iter().map(|c| c.name).chain(unnest.map(|_| UNNEST_INDEX)).collect());
    }
    let read = read.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
    let read = if read.is_empty() { String::new() } else { format!("{read}, ") };
    let source = match (unnest, dialect) {
        (None, _) => format!("(SELECT * FROM {table} WHERE {filter}) AS t"),
        (Some(list), Dialect::DuckDb) => {
            let at = match key {
                Some(_) => format!(", generate_subscripts({}, 1) AS {UNNEST_INDEX}", list.name),
                None => String::new(),
            };
            format!("(SELECT {read}unnest({}) AS {UNNEST_ALIAS}{at} FROM {table} WHERE {filter}) AS t", list.name)
        }
        (Some(list), Dialect::ClickHouse) => {
            let (selected, joined) = match key {
                Some(_) => (format!(", {UNNEST_INDEX}"), format!(", arrayEnumerate({}) AS {UNNEST_INDEX}", list.name)),
                None => (String::new(), String::new()),
            };
            format!(
                "(SELECT {read}{UNNEST_ALIAS}{selected} FROM {table} ARRAY JOIN {} AS {UNNEST_ALIAS}{joined} \
                 WHERE {filter}) AS t",
                list.name
            )
        }
    };
    let key = key.map(|k| k.join(", "));
    let shaped = if plain { bits.or_else(|| distinct_in_two_steps(query, dialect, &source)) } else { None };
    let sql = match shaped {
        Some(sql) => sql,
        None => {
            let mut select = Vec::new();
            for (i, group) in query.group_by.iter().enumerate() {
                select.push(format!("{} AS g{i}", group_sql(group, dialect)));
            }
            for (i, measure) in query.measures.iter().enumerate() {
                select.push(format!("{} AS m{i}", counted_measure_sql(measure, dialect, key.as_deref())));
            }
            format!("SELECT {} FROM {source}", select.join(", "))
        }
    };
    finish_agg(query, sql)
}

/// Adds an aggregation's `GROUP BY`, `ORDER BY` and `LIMIT` (on `g0..gN`, `m0`) to its `SELECT`.
fn finish_agg(query: &AggQuery, mut sql: String) -> String {
    let groups: Vec<String> = (0..query.group_by.len()).map(|i| format!("g{i}")).collect();
    if !groups.is_empty() {
        sql.push_str(&format!(" GROUP BY {}", groups.join(", ")));
    }
    if query.order_by_first_measure_desc && !query.measures.is_empty() {
        let mut order = vec!["m0 DESC".to_string()];
        order.extend(groups.iter().map(|g| format!("{g} ASC NULLS LAST")));
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    } else if !groups.is_empty() {
        let order: Vec<String> = groups.iter().map(|g| format!("{g} ASC NULLS LAST")).collect();
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    }
    if let Some(limit) = query.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    sql
}

/// A grouped aggregation with one distinct count, in two steps (DuckDB): group by the groups
/// and the counted column, then by the groups, summing the other measures and counting the
/// counted column's groups. DuckDB otherwise hashes every row twice (once per groups, once per
/// groups and value, then joins the two): the weekly timeline of 1M sign-ins took 27 ms
/// instead of 32, the authentication methods' unnest 52 ms instead of 73. `None` where this
/// does not apply; the caller adds `GROUP BY`, `ORDER BY` and `LIMIT` on `g0..gN`.
fn distinct_in_two_steps(query: &AggQuery, dialect: Dialect, source: &str) -> Option<String> {
    let distinct: Vec<&Column> = query
        .measures
        .iter()
        .filter_map(|m| match m {
            Measure::CountDistinct(c) => Some(*c),
            _ => None,
        })
        .collect();
    if dialect != Dialect::DuckDb || query.group_by.is_empty() || distinct.len() != 1 {
        return None;
    }
    const VALUE: &str = "__distinct";
    let mut inner: Vec<String> =
        query.group_by.iter().enumerate().map(|(i, g)| format!("{} AS g{i}", group_sql(g, dialect))).collect();
    inner.push(format!("{} AS {VALUE}", distinct[0].name));
    let mut outer: Vec<String> = (0..query.group_by.len()).map(|i| format!("g{i}")).collect();
    for (i, measure) in query.measures.iter().enumerate() {
        let (part, whole) = match measure {
            Measure::CountDistinct(_) => {
                outer.push(format!("count({VALUE}) AS m{i}"));
                continue;
            }
            Measure::MinTime(c) => (format!("min({})", c.name), format!("epoch_us(min(p{i}))")),
            Measure::MaxTime(c) => (format!("max({})", c.name), format!("epoch_us(max(p{i}))")),
            counted => (measure_sql(counted, dialect), format!("CAST(sum(p{i}) AS BIGINT)")),
        };
        inner.push(format!("{part} AS p{i}"));
        outer.push(format!("{whole} AS m{i}"));
    }
    let keys: Vec<String> = (0..query.group_by.len()).map(|i| format!("g{i}")).chain([VALUE.to_string()]).collect();
    Some(format!(
        "SELECT {} FROM (SELECT {} FROM {source} GROUP BY {}) AS d",
        outer.join(", "),
        inner.join(", "),
        keys.join(", ")
    ))
}

/// Sign-ins grouped by authentication method on DuckDB's hot table (schema 3): the rows are
/// grouped by `auth_method_set`, the key of their (methods, succeeded) pair, and only then
/// joined with the few pairs of `auth_method_sets` and unnested. Reading and unnesting the
/// method lists of 1M sign-ins cost 50 ms before; `None` where this does not apply (another
/// shape: the groups must be `[Unnest(auth_methods)]`, the measures counts, counts under a
/// condition, `CountWhereGroupIn(auth_methods_succeeded)` and at most one distinct count).
pub fn agg_by_method_sets(query: &AggQuery) -> Option<String> {
    let dialect = Dialect::DuckDb;
    if query.kind != signet_model::LogKind::SignIn {
        return None;
    }
    match query.group_by.as_slice() {
        [GroupBy::Unnest(list)] if list.name == "auth_methods" => {}
        _ => return None,
    }
    let mut distinct: Option<&Column> = None;
    let mut inner = vec!["auth_method_set AS __set".to_string(), "count(*) AS __n".to_string()];
    let mut outer = vec!["d.__unnested AS g0".to_string()];
    for (i, measure) in query.measures.iter().enumerate() {
        outer.push(match measure {
            Measure::Count => format!("CAST(sum(p.__n) AS BIGINT) AS m{i}"),
            Measure::CountIf(condition) => {
                inner.push(format!("{} AS p{i}", dialect.count_if(&compile_expr(condition, dialect))));
                format!("CAST(sum(p.p{i}) AS BIGINT) AS m{i}")
            }
            Measure::CountWhereGroupIn(list) if list.name == "auth_methods_succeeded" => format!(
                "CAST(coalesce(sum(p.__n) FILTER (WHERE list_contains(d.succeeded, d.__unnested)), 0) AS BIGINT) AS m{i}"
            ),
            Measure::CountDistinct(c) if c.ty != ColType::StrList && distinct.is_none_or(|d| d == *c) => {
                distinct = Some(*c);
                format!("count(DISTINCT p.__value) AS m{i}")
            }
            _ => return None,
        });
    }
    let mut keys = vec!["auth_method_set".to_string()];
    if let Some(c) = distinct {
        inner.push(format!("{} AS __value", c.name));
        keys.push(c.name.to_string());
    }
    let sql = format!(
        "SELECT {} FROM (SELECT {} FROM signins WHERE {} AND {} GROUP BY {}) AS p \
         JOIN (SELECT set_key, succeeded, unnest(methods) AS __unnested FROM auth_method_sets) AS d \
         ON p.__set = d.set_key",
        outer.join(", "),
        inner.join(", "),
        org_clause(&query.org, dialect),
        compile_expr(&query.filter, dialect),
        keys.join(", "),
    );
    Some(finish_agg(query, sql))
}

/// Rows whose `column` is one of `values` (exactly; `None` is NULL).
fn among_clause(column: &Column, values: &[Option<String>], dialect: Dialect) -> String {
    let listed: Vec<String> = values.iter().flatten().map(|v| dialect.quote_str(v)).collect();
    let mut alternatives = Vec::new();
    if !listed.is_empty() {
        alternatives.push(format!("{} IN ({})", column.name, listed.join(", ")));
    }
    if values.iter().any(Option::is_none) {
        alternatives.push(format!("{} IS NULL", column.name));
    }
    match alternatives.is_empty() {
        true => dialect.truth(false).to_string(),
        false => format!("({})", alternatives.join(" OR ")),
    }
}

/// The distinct values of one column per listed value of another ([`GroupBy::Among`] with one
/// [`Measure::CountDistinct`]), on DuckDB with one hash operation instead of two: group the rows
/// by the counted value, OR-ing one bit per listed value its rows have, then count the values
/// per bit. Distinct users of the top three applications of a month, 1M sign-ins: 16 ms
/// instead of 27 (grouping by application and user, then by application). `None` where this
/// does not apply (another shape, more than 63 values, ClickHouse); the caller adds
/// `GROUP BY`, `ORDER BY` and `LIMIT` on `g0`.
fn distinct_among_by_bits(query: &AggQuery, dialect: Dialect, source: &str) -> Option<String> {
    let (column, values, counted) = match (query.group_by.as_slice(), query.measures.as_slice()) {
        ([GroupBy::Among(column, values)], [Measure::CountDistinct(counted)]) => (*column, values, *counted),
        _ => return None,
    };
    if dialect != Dialect::DuckDb || values.is_empty() || values.len() > 63 {
        return None;
    }
    let literal =
        |value: &Option<String>| value.as_deref().map_or("CAST(NULL AS VARCHAR)".into(), |v| dialect.quote_str(v));
    let mut bits = Vec::new();
    let mut listed = Vec::new();
    for (bit, value) in values.iter().enumerate() {
        let test = match value {
            Some(v) => format!("{} = {}", column.name, dialect.quote_str(v)),
            None => format!("{} IS NULL", column.name),
        };
        bits.push(format!("WHEN {test} THEN {}", 1i64 << bit));
        listed.push(format!("({}, {bit})", literal(value)));
    }
    Some(format!(
        "SELECT v.g0 AS g0, count(d.__value) AS m0 FROM (SELECT {counted} AS __value, bit_or(CASE {} END) AS __bits \
         FROM {source} GROUP BY {counted}) AS d JOIN (VALUES {}) AS v(g0, bit) ON (d.__bits >> v.bit) & 1 = 1",
        bits.join(" "),
        listed.join(", "),
        counted = counted.name,
    ))
}

/// Adds the columns measures read to `out`, once each (as [`Expr::columns`]).
fn measure_columns(measures: &[Measure], out: &mut Vec<&'static Column>) {
    for measure in measures {
        match measure {
            Measure::Count => {}
            Measure::CountIf(expr) => expr.columns(out),
            Measure::CountDistinct(c) | Measure::CountWhereGroupIn(c) | Measure::MinTime(c) | Measure::MaxTime(c) => {
                Expr::eq(c, Literal::Null).columns(out)
            }
        }
    }
}

fn group_sql(group: &GroupBy, dialect: Dialect) -> String {
    match group {
        GroupBy::Column(c) if c.ty == ColType::Time => dialect.epoch_us(c.name),
        GroupBy::Column(c) | GroupBy::Among(c, _) => c.name.to_string(),
        GroupBy::TimeBucket(c, bucket, zone) => dialect.bucket(c.name, *bucket, zone),
        GroupBy::HourOfDay(c, zone) => dialect.hour_of_day(c.name, zone),
        GroupBy::DayOfWeek(c, zone) => dialect.day_of_week(c.name, zone),
        GroupBy::Unnest(_) => UNNEST_ALIAS.to_string(),
    }
}

fn measure_sql(measure: &Measure, dialect: Dialect) -> String {
    counted_measure_sql(measure, dialect, None)
}

/// [`measure_sql`], counting distinct values of `key` (comma-separated) where given (see
/// [`Counting::Distinct`]).
fn counted_measure_sql(measure: &Measure, dialect: Dialect, key: Option<&str>) -> String {
    match (measure, key) {
        (Measure::Count, Some(key)) => return dialect.count_distinct_key(key, None),
        (Measure::CountIf(condition), Some(key)) => {
            return dialect.count_distinct_key(key, Some(&compile_expr(condition, dialect)))
        }
        (Measure::CountWhereGroupIn(list), Some(key)) => {
            return dialect.count_distinct_key(key, Some(&dialect.list_contains(list.name, UNNEST_ALIAS)))
        }
        _ => {}
    }
    match measure {
        Measure::Count => "count(*)".to_string(),
        Measure::CountIf(condition) => dialect.count_if(&compile_expr(condition, dialect)),
        Measure::CountDistinct(c) => dialect.count_distinct(c.name),
        Measure::CountWhereGroupIn(list) => dialect.count_if(&dialect.list_contains(list.name, UNNEST_ALIAS)),
        Measure::MinTime(c) => dialect.epoch_us(&format!("min({})", c.name)),
        Measure::MaxTime(c) => dialect.epoch_us(&format!("max({})", c.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_model::schema::find_column;
    use signet_model::LogKind;

    fn col(name: &str) -> &'static Column {
        find_column(LogKind::SignIn, name).unwrap()
    }

    #[test]
    fn string_literals_are_escaped() {
        assert_eq!(Dialect::DuckDb.quote_str("it's"), "'it''s'");
        assert_eq!(Dialect::ClickHouse.quote_str("a\\'b"), "'a\\\\''b'");
        assert_eq!(Dialect::DuckDb.quote_str("a\0b"), "'ab'");
    }

    #[test]
    fn comparisons_compile() {
        let e = Expr::and(vec![
            Expr::eq(col("user_principal_name"), Literal::Str("Bob@X.com".into())),
            Expr::Compare { column: col("error_code"), op: CmpOp::Ne, value: Literal::Int(0) },
            Expr::ListContains { column: col("risk_event_types"), value: "unfamiliarFeatures".into() },
        ]);
        assert_eq!(
            compile_expr(&e, Dialect::DuckDb),
            "(user_principal_name ILIKE 'bob@x.com' AND error_code IS DISTINCT FROM 0 AND list_contains(risk_event_types, 'unfamiliarFeatures'))"
        );
        assert!(compile_expr(&e, Dialect::ClickHouse).contains("has(risk_event_types, 'unfamiliarFeatures')"));
        assert!(compile_expr(&e, Dialect::ClickHouse).contains("lower(user_principal_name) = 'bob@x.com'"));
        // LIKE's wildcards in the text: DuckDB's ILIKE would need an ESCAPE clause (and its slow
        // path), so these lower-case every row instead.
        let upn = col("user_principal_name");
        let underscore = Expr::eq(upn, Literal::Str("B_b@x.com".into()));
        assert_eq!(compile_expr(&underscore, Dialect::DuckDb), "lower(user_principal_name) = 'b_b@x.com'");
        let prefix = Expr::StartsWith { column: upn, prefix: "Bo".into() };
        assert_eq!(compile_expr(&prefix, Dialect::DuckDb), "user_principal_name ILIKE 'bo%'");
        let percent = Expr::StartsWith { column: upn, prefix: "50%".into() };
        assert_eq!(compile_expr(&percent, Dialect::DuckDb), "starts_with(lower(user_principal_name), '50%')");
        // Columns stored lower-case compare as they are.
        assert_eq!(
            compile_expr(&Expr::eq(col("status"), Literal::Str("Success".into())), Dialect::DuckDb),
            "status = 'success'"
        );
    }

    #[test]
    fn null_comparisons() {
        let e = Expr::eq(col("city"), Literal::Null);
        assert_eq!(compile_expr(&e, Dialect::DuckDb), "city IS NULL");
    }

    #[test]
    fn keyset_paging_clause() {
        let q = ListQuery {
            org: "o".into(),
            kind: LogKind::SignIn,
            filter: Expr::True,
            order: SortOrder::Desc,
            limit: 10,
            after: Some((0, "id'1".into())),
            columns: vec![col("id")],
        };
        let sql = list_sql(&q, Dialect::DuckDb, Some(11));
        assert!(
            sql.contains("event_time < TIMESTAMP '1970-01-01 00:00:00.000000' OR (event_time = TIMESTAMP"),
            "{sql}"
        );
        assert!(sql.contains("id < 'id''1'"), "{sql}");
        assert!(sql.ends_with("ORDER BY event_time DESC, id DESC LIMIT 11"), "{sql}");
    }

    #[test]
    fn aggregation_with_unnest() {
        let q = AggQuery {
            org: "o".into(),
            kind: LogKind::SignIn,
            filter: Expr::True,
            group_by: vec![GroupBy::Unnest(col("auth_methods"))],
            measures: vec![Measure::Count, Measure::CountWhereGroupIn(col("auth_methods_succeeded"))],
            order_by_first_measure_desc: true,
            limit: Some(5),
        };
        let sql = agg_sql(&q, Dialect::DuckDb);
        assert!(
            sql.contains("(SELECT auth_methods_succeeded, unnest(auth_methods) AS __unnested FROM signins"),
            "{sql}"
        );
        assert!(sql.contains("list_contains(auth_methods_succeeded, __unnested)"), "{sql}");
        assert!(agg_sql(&q, Dialect::ClickHouse).contains("ARRAY JOIN auth_methods"));
    }

    #[test]
    fn listed_values_restrict_the_rows_or_become_bits() {
        let among = GroupBy::Among(col("app_display_name"), vec![Some("Teams".into()), Some("O'Neil".into()), None]);
        let q = AggQuery {
            org: "o".into(),
            kind: LogKind::SignIn,
            filter: Expr::True,
            group_by: vec![among.clone()],
            measures: vec![Measure::CountDistinct(col("user_hash"))],
            order_by_first_measure_desc: false,
            limit: None,
        };
        let bits = agg_sql(&q, Dialect::DuckDb);
        assert!(bits.contains("bit_or(CASE WHEN app_display_name = 'Teams' THEN 1 WHEN app_display_name = 'O''Neil' THEN 2 WHEN app_display_name IS NULL THEN 4 END)"), "{bits}");
        assert!(bits.contains("(VALUES ('Teams', 0), ('O''Neil', 1), (CAST(NULL AS VARCHAR), 2))"), "{bits}");
        assert!(!bits.contains(" IN ("), "the bits select the rows: {bits}");
        let restricted = "(app_display_name IN ('Teams', 'O''Neil') OR app_display_name IS NULL)";
        let clickhouse = agg_sql(&q, Dialect::ClickHouse);
        assert!(clickhouse.contains(restricted), "{clickhouse}");
        // Another measure: the plain grouping, restricted to the listed values.
        let counted = AggQuery { measures: vec![Measure::Count], ..q.clone() };
        let plain = agg_sql(&counted, Dialect::DuckDb);
        assert!(plain.contains(restricted) && !plain.contains("bit_or"), "{plain}");
        let none = AggQuery { group_by: vec![GroupBy::Among(col("app_display_name"), vec![])], ..counted };
        assert!(agg_sql(&none, Dialect::ClickHouse).contains(" AND 0)"));
    }
}
