//! How queries read rows ClickHouse may hold more than once until it merges a table's parts.

use signet_model::schema::{self, Column};
use signet_model::LogKind;
use signet_query::sql;
use signet_query::Expr;

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
