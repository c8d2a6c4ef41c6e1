//! The `EventStore` trait: the column store behind Signet's queries. The event log is the
//! source of truth; an `EventStore` holds a projection of it (typed columns and pointers into
//! the log) and answers queries. Every implementation passes [`crate::conformance`].

use std::cmp::Ordering::{self, Equal, Greater, Less};

use signet_model::schema::ColType;
use signet_model::{Cell, Event, LogKind};
use signet_query::sql::MultiAggSql;
use signet_query::{AggQuery, Expr, FacetQuery, Facets, GroupBy, ListQuery, Measure, MultiAggQuery};

use crate::error::Result;
use crate::log::RecordPtr;

/// An event accepted into the log, on its way into the store.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub org: String,
    pub revision: u32,
    pub received_us: i64,
    pub ptr: RecordPtr,
    pub event: Event,
}

/// One version of an event, as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionRef {
    pub revision: u32,
    pub content_hash: u64,
    pub time_us: i64,
    pub received_us: i64,
    pub ptr: RecordPtr,
    /// The node whose event log holds the record, when it is not this node's (a store several
    /// nodes share).
    pub node: Option<String>,
}

impl RevisionRef {
    pub fn record_ref(&self, id: &str) -> RecordRef {
        RecordRef { id: id.to_string(), time_us: self.time_us, ptr: self.ptr, node: self.node.clone() }
    }
}

/// Where the record of a listed row is: ask a list query for [`record_columns`], then read
/// rows with [`RecordRef::from_row`] and the records with `Engine::records`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRef {
    pub id: String,
    pub time_us: i64,
    pub ptr: RecordPtr,
    /// The node whose event log holds it when it is another node's (see [`schema::LOG_NODE`]).
    pub node: Option<String>,
}

/// The columns [`RecordRef::from_row`] reads, first in a list query.
pub fn record_columns(kind: LogKind) -> Vec<&'static signet_model::schema::Column> {
    let mut columns: Vec<&'static signet_model::schema::Column> = ["id", "event_time", "log_pos", "log_idx"]
        .iter()
        .map(|name| signet_model::schema::find_column(kind, name).expect("a common column"))
        .collect();
    columns.push(&signet_model::schema::LOG_NODE);
    columns
}

impl RecordRef {
    /// The reference in a row whose first columns are [`record_columns`].
    pub fn from_row(row: &[Cell]) -> Option<RecordRef> {
        match row {
            [Cell::Str(id), Cell::Time(time_us), Cell::Int(pos), Cell::Int(idx), node, ..] => Some(RecordRef {
                id: id.clone(),
                time_us: *time_us,
                ptr: RecordPtr { frame_pos: *pos as u64, index: *idx as u16 },
                node: match node {
                    Cell::Str(node) => Some(node.clone()),
                    _ => None,
                },
            }),
            _ => None,
        }
    }
}

/// `query` without the (virtual) `column`, and where it was, when the query asks for it.
pub(crate) fn without_column(
    query: &ListQuery,
    column: &'static signet_model::schema::Column,
) -> Option<(usize, ListQuery)> {
    let at = query.columns.iter().position(|c| std::ptr::eq(*c, column))?;
    let mut rest = query.clone();
    rest.columns.remove(at);
    Some((at, rest))
}

/// One stored version of an event id (to rebuild the duplicate index).
#[derive(Clone, Debug)]
pub struct VersionEntry<'a> {
    pub org: &'a str,
    pub kind: LogKind,
    pub id: &'a str,
    pub revision: u32,
    pub content_hash: u64,
}

/// One archived part, as queries see it (see `crate::archive`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedPart {
    pub org: String,
    pub kind: LogKind,
    /// Start of its UTC day, microseconds.
    pub day_us: i64,
    pub min_time_us: i64,
    pub max_time_us: i64,
    /// Event log positions of its first and last row's frame.
    pub first_position: u64,
    pub last_position: u64,
    pub path: std::path::PathBuf,
    /// Whether queries read it (not while its day is restored to the hot store).
    pub queried: bool,
}

/// A revision that expiry archives: where it is in the log and whether it is the latest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiryCandidate {
    pub ptr: RecordPtr,
    pub latest: bool,
}

pub trait EventStore: Send + Sync {
    /// A short name for logs and metrics ("duckdb", "clickhouse").
    fn backend(&self) -> &'static str;

    /// Whether the store keeps each record's body and original beside its columns (a store
    /// several nodes share: each reads the others' records there). [`StoredEvent::event`] then
    /// carries them into [`EventStore::apply`].
    fn keeps_records(&self) -> bool {
        false
    }

    /// The records of rows another node logged (`node` set), in the order of `refs`; `None`
    /// for one the store does not hold.
    fn foreign_records(&self, org: &str, kind: LogKind, refs: &[&RecordRef]) -> Result<Vec<Option<crate::LogRecord>>> {
        let _ = (org, kind);
        Ok(vec![None; refs.len()])
    }

    /// Log position up to which events have been applied (exclusive).
    fn applied_position(&self) -> Result<u64>;

    /// Applies events in log order and records `through` as the applied position, atomically.
    /// Only the latest revision of an id is visible in lists and reports; every revision is
    /// kept for [`EventStore::revisions`].
    ///
    /// The batch may end inside a frame: events of the frame at `through` are the first of that
    /// frame, and the applied position stays at the frame's start until a later batch applies
    /// the rest. The store keeps each event once when a frame is applied again from its start
    /// (a restart reads the log from the applied position): the DuckDB store remembers how many
    /// of the frame's records it holds, a store of idempotent inserts (ClickHouse) needs nothing.
    fn apply(&self, events: &[StoredEvent], through: u64) -> Result<()>;

    /// The rows a batch should be a multiple of, when the store writes whole blocks of them
    /// best (DuckDB's row groups: [`crate::duck::ROW_GROUP_ROWS`]). The projector then cuts a
    /// full batch at such a multiple, inside a frame if need be, and keeps the rest for the next.
    fn batch_rows(&self) -> Option<usize> {
        None
    }

    /// The revisions expiry moves to the archive for one organisation, kind and time range:
    /// every event whose latest revision is queryable with an event time in `[from_us,
    /// to_us)` and matches `filter`, with all its revisions, in log order, minus the records
    /// already in `archived` (parts written by an earlier run that stopped before it removed the
    /// rows).
    fn expiry_candidates(
        &self,
        org: &str,
        kind: LogKind,
        from_us: i64,
        to_us: i64,
        filter: &Expr,
        archived: &[ArchivedPart],
    ) -> Result<Vec<ExpiryCandidate>> {
        let _ = (org, kind, from_us, to_us, filter, archived);
        Err(crate::StoreError::Database(format!("{} does not archive", self.backend())))
    }

    /// Removes from the queryable rows those of `[from_us, to_us)` that `parts` (the whole
    /// archived partition) hold, and makes queries read those parts instead, atomically for
    /// readers. Returns the rows removed. Revisions stay known (duplicates are still
    /// recognised).
    fn expire(&self, org: &str, kind: LogKind, from_us: i64, to_us: i64, parts: &[ArchivedPart]) -> Result<u64> {
        let _ = (org, kind, from_us, to_us, parts);
        Err(crate::StoreError::Database(format!("{} does not archive", self.backend())))
    }

    /// Puts the latest revisions `parts` hold back into the queryable rows (those whose id is
    /// not queryable already). Returns the rows added.
    fn restore(&self, org: &str, kind: LogKind, parts: &[ArchivedPart]) -> Result<u64> {
        let _ = (org, kind, parts);
        Err(crate::StoreError::Database(format!("{} does not restore", self.backend())))
    }

    /// Deletes the events of `org`'s `kind` matching `filter` with an event time before
    /// `before_us`, every revision (retention on a store that keeps the records itself, see
    /// [`EventStore::keeps_records`]; the others archive instead). Returns the rows deleted.
    fn delete_before(&self, org: &str, kind: LogKind, before_us: i64, filter: &Expr) -> Result<u64> {
        let _ = (org, kind, before_us, filter);
        Err(crate::StoreError::Database(format!("{} archives instead of deleting in place", self.backend())))
    }

    /// A record the event log no longer holds (its segment was cut), from the archive.
    fn archived_record(&self, ptr: RecordPtr) -> Result<Option<crate::LogRecord>> {
        let _ = ptr;
        Ok(None)
    }

    /// Revisions with a log position in `[from, to)` that no part in `parts` holds: while
    /// any is left, that stretch of the log must stay.
    fn unarchived_between(&self, from: u64, to: u64, parts: &[ArchivedPart]) -> Result<u64> {
        let _ = (from, to, parts);
        Err(crate::StoreError::Database(format!("{} does not archive", self.backend())))
    }

    /// Forgets the revisions `parts` hold (their archive period is over and they are deleted):
    /// they no longer count as duplicates, nor keep their log segment.
    fn forget(&self, parts: &[ArchivedPart]) -> Result<u64> {
        let _ = parts;
        Err(crate::StoreError::Database(format!("{} does not archive", self.backend())))
    }

    /// The archived parts queries read when their time range reaches into them.
    fn set_archive(&self, parts: Vec<ArchivedPart>) {
        let _ = parts;
    }

    /// Visits every revision of every event id, in any order.
    fn for_each_version(&self, visit: &mut dyn FnMut(VersionEntry<'_>)) -> Result<()>;

    /// Visits the revisions stored from event log position `from` on (this node's log), in any
    /// order. `Ok(false)` when the store cannot tell them apart (the caller then reads every
    /// revision): a snapshot of the version index covers what is before `from`.
    fn for_each_version_from(&self, from: u64, visit: &mut dyn FnMut(VersionEntry<'_>)) -> Result<bool> {
        let _ = (from, visit);
        Ok(false)
    }

    /// How many revisions [`EventStore::for_each_version`] will visit, when cheap to know (the
    /// version index is sized for them at once).
    fn version_count(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// One page of a list query: up to `query.limit + 1` rows (the extra row says there is a
    /// next page), columns as [`signet_query::sql::list_columns`].
    fn list(&self, query: &ListQuery) -> Result<Vec<Vec<Cell>>>;

    /// Every row `query` selects (its `limit` and `after` start it: rows after `after`),
    /// in its order and with its columns, handed to `visit` in pages of at most `page` rows;
    /// `visit` answers `false` to stop. What exports read. The default pages through
    /// [`EventStore::list`] after each page's last row (with the id and time read for that
    /// even when the columns leave them out).
    fn scan(
        &self,
        query: &ListQuery,
        page: usize,
        visit: &mut dyn FnMut(Vec<Vec<Cell>>) -> Result<bool>,
    ) -> Result<()> {
        scan_pages(|q| self.list(q), query, page, visit).map(|_| ())
    }

    /// Number of (latest-revision) events matching a filter.
    fn count(&self, org: &str, kind: LogKind, filter: &Expr) -> Result<u64>;

    /// A grouped aggregation: group values, then measures, per row.
    fn aggregate(&self, query: &AggQuery) -> Result<Vec<Vec<Cell>>>;

    /// Called by the ingest pipeline when no events came for a while: the store may finish
    /// what it deferred while writes were coming (DuckDB checkpoints what it holds in memory). Nothing the
    /// store acknowledged depends on it.
    fn settle(&self) -> Result<()> {
        Ok(())
    }

    /// Several aggregations under one filter: per set of the query, the rows [`Self::aggregate`]
    /// would return for it. The default asks one aggregation per set; engines override it to
    /// answer in one pass.
    fn aggregate_sets(&self, query: &MultiAggQuery) -> Result<Vec<Vec<Vec<Cell>>>> {
        aggregate_by_set(self, query)
    }

    /// The top values of several columns and the number of matching events. The default asks
    /// one aggregation per column; engines override it to answer in one pass.
    fn facets(&self, query: &FacetQuery) -> Result<Facets> {
        facets_by_column(self, query)
    }

    /// Every revision of one event id, oldest first.
    fn revisions(&self, org: &str, kind: LogKind, id: &str) -> Result<Vec<RevisionRef>>;
}

/// [`EventStore::aggregate_sets`] by one aggregation per set.
pub fn aggregate_by_set<S: EventStore + ?Sized>(store: &S, query: &MultiAggQuery) -> Result<Vec<Vec<Vec<Cell>>>> {
    (0..query.sets.len()).map(|i| store.aggregate(&query.set(i))).collect()
}

/// Splits the answer to a [`MultiAggSql`] into its sets, each ordered and cut as
/// [`EventStore::aggregate`] would answer it alone.
pub fn split_sets(query: &MultiAggQuery, shape: &MultiAggSql, rows: Vec<Vec<Cell>>) -> Vec<Vec<Vec<Cell>>> {
    let groups = shape.groups;
    let mut out: Vec<Vec<Vec<Cell>>> = vec![Vec::new(); query.sets.len()];
    for row in rows {
        let Some(Cell::Int(set)) = row.first() else { continue };
        let Some((indices, set_query)) = shape.sets.get(*set as usize).zip(query.sets.get(*set as usize)) else {
            continue;
        };
        let mut cells: Vec<Cell> = indices.iter().map(|g| row[1 + g].clone()).collect();
        cells.extend_from_slice(&row[1 + groups..1 + groups + set_query.measures.len()]);
        out[*set as usize].push(cells);
    }
    for (rows, set) in out.iter_mut().zip(&query.sets) {
        let width = set.group_by.len();
        if width == 0 && rows.is_empty() {
            // A grand total has a row even when nothing matched, as a plain aggregation does.
            rows.push(set.measures.iter().map(empty_measure).collect());
        }
        rows.sort_by(|a, b| {
            a[..width].iter().zip(&b[..width]).map(|(x, y)| cmp_nulls_last(x, y)).find(|o| o.is_ne()).unwrap_or(Equal)
        });
        if let Some(n) = set.top {
            // Stable: equal first measures stay in group order.
            rows.sort_by(|a, b| cmp_nulls_last(&b[width], &a[width]));
            rows.truncate(n);
        }
    }
    out
}

/// What a measure is over no rows.
fn empty_measure(measure: &Measure) -> Cell {
    match measure {
        Measure::MinTime(_) | Measure::MaxTime(_) => Cell::Null,
        _ => Cell::Int(0),
    }
}

/// Ascending with NULL last, as the SQL the stores run orders groups.
fn cmp_nulls_last(a: &Cell, b: &Cell) -> Ordering {
    match (a, b) {
        (Cell::Null, Cell::Null) => Equal,
        (Cell::Null, _) => Greater,
        (_, Cell::Null) => Less,
        (Cell::Str(x), Cell::Str(y)) => x.cmp(y),
        (Cell::Int(x) | Cell::Time(x), Cell::Int(y) | Cell::Time(y)) => x.cmp(y),
        (Cell::Float(x), Cell::Float(y)) => x.total_cmp(y),
        (Cell::Bool(x), Cell::Bool(y)) => x.cmp(y),
        (Cell::List(x), Cell::List(y)) => x.cmp(y),
        _ => Equal,
    }
}

/// [`EventStore::facets`] by one aggregation per column (and a count).
pub fn facets_by_column<S: EventStore + ?Sized>(store: &S, query: &FacetQuery) -> Result<Facets> {
    let total = store.count(&query.org, query.kind, &query.filter)?;
    let mut values = Vec::with_capacity(query.columns.len());
    for column in &query.columns {
        let group = if column.ty == ColType::StrList { GroupBy::Unnest(column) } else { GroupBy::Column(column) };
        let rows = store.aggregate(&AggQuery {
            org: query.org.clone(),
            kind: query.kind,
            filter: query.filter.clone(),
            group_by: vec![group],
            measures: vec![Measure::Count],
            order_by_first_measure_desc: true,
            limit: Some(query.limit),
        })?;
        values.push(
            rows.into_iter()
                .map(|mut row| {
                    let count = match row.pop() {
                        Some(Cell::Int(n)) => n,
                        _ => 0,
                    };
                    (row.pop().unwrap_or(Cell::Null), count)
                })
                .collect(),
        );
    }
    Ok(Facets { total, values })
}

/// [`EventStore::scan`] with a visitor that may fail: its error ends the scan and is the
/// answer; the store's errors become `E` through `store_error`.
pub fn scan_with<E>(
    store: &dyn EventStore,
    query: &ListQuery,
    page: usize,
    mut visit: impl FnMut(Vec<Vec<Cell>>) -> std::result::Result<bool, E>,
    store_error: impl FnOnce(crate::StoreError) -> E,
) -> std::result::Result<(), E> {
    let mut failure = None;
    let scanned = store.scan(query, page, &mut |rows| match visit(rows) {
        Ok(more) => Ok(more),
        Err(err) => {
            failure = Some(err);
            Ok(false)
        }
    });
    match failure {
        Some(err) => Err(err),
        None => scanned.map_err(store_error),
    }
}

/// [`EventStore::scan`] by pages of `list`; `Ok(false)` when `visit` stopped it.
pub(crate) fn scan_pages(
    list: impl Fn(&ListQuery) -> Result<Vec<Vec<Cell>>>,
    query: &ListQuery,
    page: usize,
    visit: &mut dyn FnMut(Vec<Vec<Cell>>) -> Result<bool>,
) -> Result<bool> {
    let (mut paged, keys) = keyed_list(query, page);
    loop {
        let mut rows = list(&paged)?;
        let more = rows.len() > page;
        rows.truncate(page);
        let next = rows.last().and_then(|row| keys.after(row));
        if !visit(keys.strip(rows))? {
            return Ok(false);
        }
        if !more {
            return Ok(true);
        }
        match next {
            Some(after) => paged.after = Some(after),
            None => return Err(crate::StoreError::Database("a list row without its id and time".into())),
        }
    }
}

/// Where a list row holds its time and id, and how many columns were added to read them (see
/// [`keyed_list`]).
pub(crate) struct RowKeys {
    time_at: usize,
    id_at: usize,
    added: usize,
}

impl RowKeys {
    /// The cursor after `row`.
    pub(crate) fn after(&self, row: &[Cell]) -> Option<(i64, String)> {
        match (row.get(self.time_at), row.get(self.id_at)) {
            (Some(Cell::Time(time)), Some(Cell::Str(id))) => Some((*time, id.clone())),
            _ => None,
        }
    }

    /// The rows without the columns added for the keys.
    pub(crate) fn strip(&self, mut rows: Vec<Vec<Cell>>) -> Vec<Vec<Cell>> {
        if self.added > 0 {
            for row in &mut rows {
                row.truncate(row.len() - self.added);
            }
        }
        rows
    }
}

/// `query` with `limit` and its columns spelled out, `event_time` and `id` added at the end
/// where they are not among them.
pub(crate) fn keyed_list(query: &ListQuery, limit: usize) -> (ListQuery, RowKeys) {
    let mut columns = signet_query::sql::list_columns(query);
    let mut added = 0;
    let mut position = |name: &str, columns: &mut Vec<&'static signet_model::schema::Column>| {
        columns.iter().position(|c| c.name == name).unwrap_or_else(|| {
            let column = signet_model::schema::find_column(query.kind, name).expect("a common column");
            columns.push(column);
            added += 1;
            columns.len() - 1
        })
    };
    let time_at = position("event_time", &mut columns);
    let id_at = position("id", &mut columns);
    (ListQuery { limit, columns, ..query.clone() }, RowKeys { time_at, id_at, added })
}
