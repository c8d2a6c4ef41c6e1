//! How queries read rows ClickHouse may hold more than once until it merges a table's parts:
//! the choice between `FINAL` and removing copies in the query, and the read source built on it.

use std::sync::atomic::Ordering;

use serde_json::Value;
use signet_model::schema::{self, Column};
use signet_model::LogKind;
use signet_query::sql;
use signet_query::Expr;

use super::{ClickHouseStore, DIALECT};

/// How a query reads rows that the table may hold more than once until ClickHouse merges its
/// parts (a batch inserted again after a timeout or a restart, an event two nodes both
/// logged): copies are equal in the sort key `(org_id, event_time, id, revision)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dedup {
    /// `FINAL`: ClickHouse merges the rows of the organisation's time range as it reads them
    /// (18.16: on one thread, every row of the range, before the filter). The cheaper way
    /// when the filter keeps most of the range: a 30-day timeline of 1M sign-ins took 430 ms,
    /// against 600 ms counting distinct keys.
    Final,
    /// A plain read (ClickHouse moves the filter to `PREWHERE`: the other columns of rows the
    /// filter drops are not read), copies removed by the query: counts count distinct `(id,
    /// revision)`, lists keep one row per key. The cheaper way when the filter narrows the
    /// range: a user's 90-day countries took 100 ms instead of 600, a list page of 7 days'
    /// failures 190 ms instead of 370, a lookup by id 46 ms instead of 1.1 s (1M sign-ins).
    Copies,
}

impl Dedup {
    /// [`Dedup::Copies`] when the filter tests anything but the time (a guess at narrowing
    /// it: a test of a column is usually selective, the range alone never is).
    pub(super) fn for_filter(filter: &Expr) -> Dedup {
        let mut columns = Vec::new();
        filter.columns(&mut columns);
        match columns.iter().all(|c| c.name == "event_time") {
            true => Dedup::Final,
            false => Dedup::Copies,
        }
    }

    pub(super) fn modifier(self) -> &'static str {
        match self {
            Dedup::Final => " FINAL",
            Dedup::Copies => "",
        }
    }

    pub(super) fn counting(self, kind: LogKind) -> sql::Counting<'static> {
        match self {
            Dedup::Final => sql::Counting::Rows,
            Dedup::Copies => sql::Counting::Distinct(dedup_key(kind)),
        }
    }
}

/// What tells an event's copies from other events: `(id, revision)` (a revision's copies
/// have the same content, so the same time).
fn dedup_key(kind: LogKind) -> &'static [&'static Column] {
    static KEYS: std::sync::OnceLock<Vec<Vec<&'static Column>>> = std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        LogKind::ALL
            .iter()
            .map(|k| ["id", "revision"].iter().map(|n| schema::find_column(*k, n).expect("a common column")).collect())
            .collect()
    });
    keys[LogKind::ALL.iter().position(|k| *k == kind).expect("a kind")].as_slice()
}

impl ClickHouseStore {
    /// What queries of `org`/`kind` read: the latest revision of each event, once however many
    /// times a batch was inserted (and `archived`, always false: nothing is archived here yet).
    ///
    /// The query's own filter goes into the `FINAL` query too (the outer query applies it again,
    /// harmlessly): `FINAL` only collapses identical re-inserted rows, which a filter takes or
    /// leaves together, so filtering first gives the same rows while reading only the granules the
    /// time range and key reach. Only `columns` (with the key) are read, not every column.
    ///
    /// With [`Dedup::Copies`] the subquery reads without `FINAL` and may give an event more
    /// than once: the caller counts distinct keys ([`Dedup::counting`]).
    ///
    /// A `FINAL` read with a lower time bound is split into [`ClickHouseStore::final_ranges`]
    /// time ranges, `UNION ALL`: ClickHouse 18.16 reads one `FINAL` in one thread, the ranges
    /// in parallel, and copies of a row share its time, so no range separates them (run 23 in
    /// docs/benchmarks.md).
    pub(super) fn source(
        &self,
        org: &str,
        kind: LogKind,
        filter: &Expr,
        columns: &[&'static Column],
        dedup: Dedup,
    ) -> String {
        let table = schema::table(kind);
        let quoted = DIALECT.quote_str(org);
        let mut read: Vec<&str> = vec!["org_id", "id", "revision", "event_time"];
        let mut wanted = columns.to_vec();
        filter.columns(&mut wanted);
        for column in wanted {
            if !std::ptr::eq(column, &schema::ARCHIVED) && !read.contains(&column.name) {
                read.push(column.name);
            }
        }
        let select = |range: &str| {
            format!(
                "SELECT {}, 0 AS {archived} FROM {table}{final_} WHERE org_id = {quoted} AND {}{range} AND (id, revision) \
                 NOT IN (SELECT id, revision FROM {superseded} WHERE org_id = {quoted} AND kind = {})",
                read.join(", "),
                sql::compile_expr(filter, DIALECT),
                kind.code(),
                final_ = dedup.modifier(),
                archived = schema::ARCHIVED.name,
                superseded = self.superseded_table(),
            )
        };
        let cuts = match dedup {
            Dedup::Final => time_cuts(filter.time_bounds(), self.final_ranges(), signet_model::time::now_micros()),
            Dedup::Copies => Vec::new(),
        };
        if cuts.is_empty() {
            return format!("({}) AS {table}", select(""));
        }
        let mut ranges = Vec::with_capacity(cuts.len() + 1);
        ranges.push(select(&format!(" AND event_time < {}", cuts[0])));
        for pair in cuts.windows(2) {
            ranges.push(select(&format!(" AND event_time >= {} AND event_time < {}", pair[0], pair[1])));
        }
        ranges.push(select(&format!(" AND event_time >= {}", cuts[cuts.len() - 1])));
        format!("({}) AS {table}", ranges.join(" UNION ALL "))
    }

    /// The server's `max_threads` (asked once; 1 when it cannot be read), at most 16.
    fn final_ranges(&self) -> u64 {
        let known = self.final_ranges.load(Ordering::Relaxed);
        if known > 0 {
            return known;
        }
        let asked = self
            .query_json("SELECT value FROM system.settings WHERE name = 'max_threads'")
            .ok()
            .and_then(|rows| rows.first().and_then(|r| r.first()).and_then(Value::as_str).map(threads_of));
        let ranges = asked.unwrap_or(1).clamp(1, 16);
        self.final_ranges.store(ranges, Ordering::Relaxed);
        ranges
    }
}

/// A `max_threads` setting's value as a number: "8" (18.16), "'auto(8)'" (current releases).
fn threads_of(value: &str) -> u64 {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(1)
}

/// Where a read of the time range `bounds` (inclusive) is cut into `ranges` parts of equal
/// time (an open upper end stands at `now_us`): none without a lower bound, or for less than
/// an hour, or one range.
fn time_cuts(bounds: (Option<i64>, Option<i64>), ranges: u64, now_us: i64) -> Vec<i64> {
    const HOUR_US: i64 = 3_600_000_000;
    let (Some(low), high) = bounds else { return Vec::new() };
    let high = high.map_or(now_us, |h| h.saturating_add(1));
    let span = high.saturating_sub(low);
    if ranges < 2 || span < HOUR_US {
        return Vec::new();
    }
    let step = span / ranges as i64;
    (1..ranges as i64).map(|i| low + step * i).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn final_reads_are_cut_into_equal_time_ranges() {
        const HOUR: i64 = 3_600_000_000;
        assert_eq!(super::time_cuts((Some(0), Some(4 * HOUR - 1)), 4, 0), vec![HOUR, 2 * HOUR, 3 * HOUR]);
        assert_eq!(super::time_cuts((Some(0), None), 2, 10 * HOUR), vec![5 * HOUR], "up to now");
        assert!(super::time_cuts((None, Some(HOUR)), 4, 0).is_empty(), "no lower bound");
        assert!(super::time_cuts((Some(0), Some(HOUR / 2)), 4, 0).is_empty(), "under an hour");
        assert!(super::time_cuts((Some(0), None), 1, 10 * HOUR).is_empty());
        assert_eq!((super::threads_of("2"), super::threads_of("'auto(8)'"), super::threads_of("x")), (2, 8, 1));
    }
}
