//! The embedded DuckDB engine: one database file in the data directory holding the projection
//! of the event log: one table per log kind with the latest revision of each event, and a
//! `revisions` table with the pointers into the log of the revisions those rows do not hold
//! (the ones newer revisions replaced, and the latest of rows moved to the archive). Together
//! they index every revision ([`revision_index`]).

mod applied;
pub(crate) mod arrow;
mod cells;
mod guard;
mod migrate;
mod raw;
mod rollup;
pub use raw::ROW_GROUP_ROWS;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::AtomicU64;

use duckdb::types::Value;
use duckdb::Connection;
use parking_lot::Mutex;
use signet_model::schema::{self, ColType, Column};
use signet_model::{Cell, CellRef, ListRef, LogKind};
use signet_query::sql::{self, Dialect};
use signet_query::{AggQuery, Expr, FacetQuery, Facets, ListQuery, MultiAggQuery};
use tracing::debug;

use crate::engine::{ArchivedPart, EventStore, ExpiryCandidate, RevisionRef, StoredEvent, VersionEntry};
use crate::error::{Result, StoreError};
use crate::log::RecordPtr;
use applied::{stored_position, FramePrefix};
use guard::{PrintSlot, WriterGuard};

/// Version of the database schema. Bump it with a migration in [`DuckStore::migrate`].
pub const SCHEMA_VERSION: u32 = 4;
pub(crate) const DIALECT: Dialect = Dialect::DuckDb;
/// DuckDB's WAL size that triggers a checkpoint (see [`DuckStore::open`]).
const WAL_AUTOCHECKPOINT: &str = "256MB";

/// Columns added to the tables after archived parts existed (schema 3): parts written before
/// lack them, so queries do not read them from any part (only `signins.auth_method_set`, which
/// the authentication-methods report reads from the hot table alone).
const ADDED_AFTER_ARCHIVE: &[&str] = &["auth_method_set"];

/// Rows of one table that differ between two stores.
#[derive(Clone, Debug)]
pub struct TableDifference {
    pub table: &'static str,
    pub only_here: u64,
    pub only_there: u64,
    /// A few `org/id` of the differing rows.
    pub ids: Vec<String>,
}

pub struct DuckStore {
    /// Locked through [`DuckStore::writer`] and its kin ([`guard`]), never directly.
    writer: Mutex<Writer>,
    /// Odd while the writer is held for what may change `signins` ([`guard`]'s seqlock).
    signin_writes: AtomicU64,
    readers: Mutex<Vec<Connection>>,
    /// Archived parts queries may read. Queries hold it shared while they run; expiry holds it
    /// exclusively while it removes rows and adds their parts, so no reader sees a row twice
    /// or not at all.
    archive: parking_lot::RwLock<Vec<ArchivedPart>>,
    /// The records of the parts read last (records of cut log segments are read from parts;
    /// a page of them usually comes from a few parts).
    part_cache: Mutex<std::collections::VecDeque<(std::path::PathBuf, std::sync::Arc<PartRecords>)>>,
    /// When day counts were last made (see [`rollup`]): at most every few seconds.
    days_made: Mutex<Option<std::time::Instant>>,
    /// The sign-ins' day prints read last ([`rollup::PrintCache`]).
    day_prints: PrintSlot,
    /// The database handle every connection above was made from (declared last: dropped last).
    database: raw::RawDatabase,
}

/// The connection that writes: duckdb-rs for most statements, the C API for the projection's
/// appends (see [`raw`]).
struct Writer {
    conn: Connection,
    raw: raw::RawConnection,
    /// Keys in `auth_method_sets` (the pairs of method lists sign-ins have).
    method_sets: HashSet<i64>,
    /// The applied position and how many records of the frame there the tables hold already
    /// (a batch cut at a row group, see [`EventStore::batch_rows`]; `signet_meta`'s
    /// `applied_in_frame`, written with the position).
    applied: FramePrefix,
}

/// The (methods, methods succeeded) pairs of sign-ins, by `signins.auth_method_set` (schema 3):
/// reports group sign-ins by the key and unnest these few lists instead of every sign-in's.
const METHOD_SETS_DDL: &str =
    "CREATE TABLE IF NOT EXISTS auth_method_sets (set_key BIGINT PRIMARY KEY, methods VARCHAR[], succeeded VARCHAR[])";

/// The columns of a revision's pointer, in the `revisions` table's order.
const REVISION_REF: &str = "org_id, kind, id, revision, content_hash, event_time, received_at, log_pos, log_idx";

/// A hot table's rows as `revisions` rows.
fn hot_refs(kind: LogKind, db: &str) -> String {
    format!(
        "SELECT org_id, CAST({} AS BIGINT) AS kind, id, revision, content_hash, event_time, received_at, log_pos, \
         log_idx FROM {db}{}",
        kind.code(),
        schema::table(kind)
    )
}

/// The statements that move the hot rows of `kind` selected by `rows` (a `WHERE` clause) to
/// `revisions`, keeping them indexed (see [`revision_index`]).
fn move_to_revisions(kind: LogKind, rows: &str) -> [String; 2] {
    [
        format!("INSERT INTO revisions {} {rows}", hot_refs(kind, "")),
        format!("DELETE FROM {} {rows}", schema::table(kind)),
    ]
}

/// Every revision of every event (a subquery with the [`REVISION_REF`] columns): the hot rows,
/// each id's latest revision, and `revisions`, the revisions they do not hold. Until schema 4,
/// `revisions` held every revision, the latest ones twice: appending each event there cost
/// about a tenth of ingest (docs/benchmarks.md, run 27). `db` qualifies the tables (`""`, or an
/// attached database's name and a dot).
fn revision_index(db: &str) -> String {
    let hot: Vec<String> = LogKind::ALL.iter().map(|kind| hot_refs(*kind, db)).collect();
    format!("(SELECT {REVISION_REF} FROM {db}revisions UNION ALL {})", hot.join(" UNION ALL "))
}

/// A list of strings as a DuckDB literal.
fn list_literal<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = items.into_iter().map(|i| DIALECT.quote_str(i)).collect();
    format!("CAST([{}] AS VARCHAR[])", quoted.join(", "))
}

/// The statement recording pairs not in `auth_method_sets` yet (`None`: no new pair).
fn new_method_sets<'a, L: IntoIterator<Item = &'a str>>(
    known: &HashSet<i64>,
    pairs: impl Iterator<Item = (i64, L, L)>,
) -> Option<(Vec<i64>, String)> {
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for (key, methods, succeeded) in pairs {
        if !known.contains(&key) && !keys.contains(&key) {
            keys.push(key);
            values.push(format!("({key}, {}, {})", list_literal(methods), list_literal(succeeded)));
        }
    }
    (!keys.is_empty()).then(|| (keys, format!("INSERT OR IGNORE INTO auth_method_sets VALUES {}", values.join(", "))))
}

/// Where a sign-in's method set key and lists are among its cells.
fn method_set_cells() -> [usize; 3] {
    ["auth_method_set", "auth_methods", "auth_methods_succeeded"].map(|name| {
        schema::kind_columns(LogKind::SignIn).iter().position(|c| c.name == name).expect("a sign-in column")
    })
}

/// A sign-in's method set key and lists (`at`: [`method_set_cells`]).
fn method_set_of(event: &signet_model::Event, at: [usize; 3]) -> Option<(i64, ListRef<'_>, ListRef<'_>)> {
    match (event.cells.get(at[0]), event.cells.get(at[1]), event.cells.get(at[2])) {
        (Some(CellRef::Int(key)), Some(CellRef::List(methods)), Some(CellRef::List(succeeded))) => {
            Some((key, methods, succeeded))
        }
        _ => None,
    }
}

impl std::ops::Deref for Writer {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

type PartRecords = HashMap<(u64, u16), crate::LogRecord>;
const PART_CACHE: usize = 8;

/// A path as a DuckDB string literal.
fn path_literal(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

/// The rows of a query on `conn`, as cells (`types`: the columns' types, when known).
fn read_cells(conn: &Connection, sql: &str, types: Option<&[&Column]>) -> Result<Vec<Vec<Cell>>> {
    // Read as Arrow batches, column by column: value by value through duckdb-rs' rows
    // was a third of a CSV export's time. Types the conversion does not know (none
    // that Signet's queries produce) are read row by row instead.
    let mut stmt = conn.prepare(sql)?;
    let mut out = Vec::new();
    let mut known = true;
    for batch in stmt.stream_arrow([])? {
        match cells::arrow_cells(&batch?, types) {
            Some(rows) => out.extend(rows),
            None => {
                known = false;
                break;
            }
        }
    }
    if known {
        return Ok(out);
    }
    let mut stmt = conn.prepare(sql)?;
    let width = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(width);
        for i in 0..width {
            let value: Value = row.get(i)?;
            let ty = types.and_then(|t| t.get(i)).map(|c| c.ty);
            cells.push(cells::to_cell(value, ty));
        }
        out.push(cells);
    }
    Ok(out)
}

/// `read_parquet([...])` of some parts.
fn read_parts(parts: &[&ArchivedPart]) -> String {
    let files: Vec<String> = parts.iter().map(|p| path_literal(&p.path)).collect();
    format!("read_parquet([{}])", files.join(", "))
}

pub(crate) fn sql_type(ty: ColType) -> &'static str {
    match ty {
        ColType::Str => "VARCHAR",
        ColType::Int => "BIGINT",
        ColType::Float => "DOUBLE",
        ColType::Bool => "BOOLEAN",
        ColType::Time => "TIMESTAMP",
        ColType::StrList => "VARCHAR[]",
    }
}

/// Columns stored without compression: the ids and correlation ids are random GUIDs (or
/// client-chosen strings) nearly unique per row, which DuckDB's dictionary and FSST analysis
/// cannot shrink much but spends most of a microsecond per sign-in on (6 % of ingest over
/// seven alternating pairs; docs/benchmarks.md run 45). Stored plain they take about 35 MB more
/// per million sign-ins and scan faster (an equality filter on `correlation_id`: 19 ms -> 5 ms
/// over 1M rows). Tables created by earlier builds keep their compression; both read the same.
const UNCOMPRESSED: [&str; 2] = ["id", "correlation_id"];

pub(crate) fn create_table_sql(table: &str, columns: &[&Column]) -> String {
    let defs: Vec<String> = columns
        .iter()
        .map(|c| match UNCOMPRESSED.contains(&c.name) {
            true => format!("{} {} USING COMPRESSION uncompressed", c.name, sql_type(c.ty)),
            false => format!("{} {}", c.name, sql_type(c.ty)),
        })
        .collect();
    format!("CREATE TABLE IF NOT EXISTS {table} ({})", defs.join(", "))
}

impl DuckStore {
    /// Opens or creates the database file, creating or migrating the schema.
    pub fn open(path: &Path) -> Result<DuckStore> {
        Self::open_at(path)
    }

    /// An in-memory database (tests).
    pub fn open_in_memory() -> Result<DuckStore> {
        Self::open_at(Path::new(":memory:"))
    }

    fn open_at(path: &Path) -> Result<DuckStore> {
        let mut database = raw::RawDatabase::open(path)?;
        database.add_batch_views(&arrow::batch_tables())?;
        let conn = database.connection()?;
        // DuckDB checkpoints when 16 MB of changes are uncheckpointed by default: with
        // projection batches of 20,000-40,000 sign-ins that is nearly every commit, and each
        // checkpoint compresses the table's last, partly filled row group again. At 256 MB ingest
        // ran at 43,000-44,000 sign-ins/s instead of 27,000-33,000 (docs/benchmarks.md, run 14);
        // the price is up to 256 MB of changes that a crash loses and the engine applies again
        // from the event log (the file has no WAL, see `raw::RawDatabase::open`).
        conn.execute_batch(&format!("SET wal_autocheckpoint = '{WAL_AUTOCHECKPOINT}'"))?;
        Self::migrate(&conn)?;
        conn.execute_batch(&applied::add_in_frame_key_sql())?;
        rollup::prepare(&conn)?;
        // The migrations' changes, and the WAL an earlier Signet (which let DuckDB keep one) may
        // have left (replayed when the file was attached), go into the file now.
        conn.execute_batch("CHECKPOINT")?;
        let method_sets = {
            let mut statement = conn.prepare("SELECT set_key FROM auth_method_sets")?;
            let keys = statement.query_map([], |r| r.get::<_, i64>(0))?;
            keys.collect::<std::result::Result<HashSet<i64>, _>>()?
        };
        let applied = FramePrefix::stored(&conn)?;
        Ok(DuckStore {
            writer: Mutex::new(Writer { conn, raw: database.raw_connection()?, method_sets, applied }),
            signin_writes: AtomicU64::new(0),
            readers: Mutex::new(Vec::new()),
            archive: Default::default(),
            part_cache: Default::default(),
            days_made: Default::default(),
            day_prints: Default::default(),
            database,
        })
    }

    /// What a query of `org`/`kind` reads: the hot table, or the hot table and the archived
    /// parts its time range reaches (only a range with a lower bound reaches into the archive),
    /// each row marked in `archived`.
    fn source(catalog: &[ArchivedPart], org: &str, kind: LogKind, filter: &Expr, archived_column: bool) -> String {
        let table = schema::table(kind);
        let parts = Self::parts_reached(catalog, org, kind, filter);
        if parts.is_empty() {
            return match archived_column {
                true => format!("(SELECT *, false AS archived FROM {table}) AS {table}"),
                false => table.to_string(),
            };
        }
        let columns = schema::all_columns(kind).map(|c| c.name).collect::<Vec<_>>().join(", ");
        // Parts written before a column was added lack it: the archived rows have none.
        let archived = schema::all_columns(kind)
            .map(|c| match ADDED_AFTER_ARCHIVE.contains(&c.name) {
                true => format!("CAST(NULL AS {}) AS {}", sql_type(c.ty), c.name),
                false => c.name.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "(SELECT {columns}, false AS archived FROM {table} UNION ALL \
             SELECT {archived}, true AS archived FROM {} WHERE latest) AS {table}",
            read_parts(&parts)
        )
    }

    /// The archived parts a query of `org`/`kind` under `filter` reads (see [`Self::source`]).
    fn parts_reached<'a>(
        catalog: &'a [ArchivedPart],
        org: &str,
        kind: LogKind,
        filter: &Expr,
    ) -> Vec<&'a ArchivedPart> {
        match filter.time_bounds() {
            (Some(low), high) => catalog
                .iter()
                .filter(|p| p.queried && p.org == org && p.kind == kind && p.max_time_us >= low)
                .filter(|p| high.is_none_or(|high| p.min_time_us <= high))
                .collect(),
            (None, _) => Vec::new(),
        }
    }

    /// Compares every table of this store with the same tables in another DuckDB file (read
    /// only): per table, the rows only here, the rows only there, and a few of their ids.
    ///
    /// The index of revisions ([`revision_index`], reported as table `revisions`) is compared
    /// from `revisions_from` (the event log's start: the revisions of cut segments cannot be
    /// rebuilt), and only for rows here that the other store lacks: the index of events deleted
    /// at the end of their archive period is forgotten on purpose.
    pub fn differences(&self, other: &Path, revisions_from: u64) -> Result<Vec<TableDifference>> {
        let conn = self.writer();
        let other = other.display().to_string().replace('\'', "''");
        conn.execute_batch(&format!("ATTACH '{other}' AS signet_other (READ_ONLY)"))?;
        let result = (|| {
            let mut out = Vec::new();
            for table in LogKind::ALL.iter().map(|k| schema::table(*k)).chain(["revisions"]) {
                let mut stmt = conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"))?;
                let names: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<std::result::Result<_, _>>()?;
                let columns = names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ");
                let rows = |db: &str| match table {
                    "revisions" => format!("{} WHERE log_pos >= {revisions_from}", revision_index(&format!("{db}."))),
                    _ => format!("{db}.{table}"),
                };
                let side = |from: &str, to: &str| -> Result<(u64, Vec<String>)> {
                    let diff =
                        format!("SELECT {columns} FROM {} EXCEPT ALL SELECT {columns} FROM {}", rows(from), rows(to));
                    let count: i64 = conn.query_row(&format!("SELECT count(*) FROM ({diff})"), [], |r| r.get(0))?;
                    let mut stmt = conn.prepare(&format!("SELECT org_id || '/' || id FROM ({diff}) LIMIT 5"))?;
                    let ids = stmt.query_map([], |r| r.get(0))?.collect::<std::result::Result<_, _>>()?;
                    Ok((count as u64, ids))
                };
                let (only_here, here_ids) = side("main", "signet_other")?;
                let (only_there, there_ids) = match table {
                    "revisions" => (0, Vec::new()),
                    _ => side("signet_other", "main")?,
                };
                if only_here > 0 || only_there > 0 {
                    out.push(TableDifference {
                        table,
                        only_here,
                        only_there,
                        ids: here_ids.into_iter().chain(there_ids).collect(),
                    });
                }
            }
            out.extend(rollup::differences(&conn)?);
            Ok(out)
        })();
        conn.execute_batch("DETACH signet_other")?;
        result
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = match self.readers.lock().pop() {
            Some(conn) => conn,
            None => self.database.connection()?,
        };
        let result = f(&conn);
        self.readers.lock().push(conn);
        result
    }

    fn query_cells(&self, sql: &str, types: Option<&[&Column]>) -> Result<Vec<Vec<Cell>>> {
        let started = std::time::Instant::now();
        let result = self.with_reader(|conn| read_cells(conn, sql, types));
        debug!(sql, elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "duckdb query");
        result
    }

    /// Puts what was committed into the database file at once. The file has no WAL (see
    /// `raw::RawDatabase::open`): a commit is kept by the next checkpoint, and a crash before it
    /// loses the commit. The projection's own commits are redone from the event log; a write the
    /// log cannot redo (archiving's removal of rows, a restore, forgetting revisions) is
    /// checkpointed before it is reported done. The caller holds the writer, so no other write
    /// transaction is open and the checkpoint cannot be refused.
    fn make_durable(writer: &Writer) -> Result<()> {
        writer.raw.execute("CHECKPOINT")
    }

    /// Runs `work` on `conn` in one transaction: committed if it succeeds, else rolled back.
    fn in_transaction<T>(conn: &Connection, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        conn.execute_batch("BEGIN TRANSACTION")?;
        match work(conn) {
            Ok(value) => {
                conn.execute_batch("COMMIT")?;
                Ok(value)
            }
            Err(err) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(err)
            }
        }
    }

    /// Writes a batch; returns the method set keys it added to `auth_method_sets`.
    fn apply_in_transaction(
        raw: &raw::RawConnection,
        method_sets: &HashSet<i64>,
        events: &[StoredEvent],
        applied: FramePrefix,
    ) -> Result<Vec<i64>> {
        let mut added = Vec::new();
        // Revisions of this batch a newer one of it replaces: never hot, straight to `revisions`.
        let mut replaced: Vec<&StoredEvent> = Vec::new();
        for kind in LogKind::ALL {
            let of_kind: Vec<&StoredEvent> = events.iter().filter(|e| e.event.kind == kind).collect();
            if of_kind.is_empty() {
                continue;
            }
            // Only the newest revision of an id in this batch goes into the hot table, and
            // the table can hold an older one only when the id's first revision is not in this
            // batch (revisions are numbered from 1 when an id is first stored, and the version
            // index never forgets an id): a revision logged right after its original costs no
            // DELETE, which scans the whole id column.
            // FxHash: SipHash's resistance to chosen keys buys nothing for a map of one batch.
            let mut newest: HashMap<(&str, &str), (usize, u32), rustc_hash::FxBuildHasher> =
                HashMap::with_capacity_and_hasher(of_kind.len(), Default::default());
            for (i, e) in of_kind.iter().enumerate() {
                let (slot, first) = newest.entry((e.org.as_str(), e.event.id.as_str())).or_insert((i, e.revision));
                if of_kind[*slot].revision < e.revision {
                    *slot = i;
                }
                *first = (*first).min(e.revision);
            }
            let mut keep: Vec<(usize, u32)> = newest.values().copied().collect();
            keep.sort_unstable();
            let mut kept = vec![false; of_kind.len()];
            keep.iter().for_each(|&(i, _)| kept[i] = true);
            replaced.extend(of_kind.iter().zip(&kept).filter(|(_, kept)| !**kept).map(|(e, _)| *e));
            let superseded: Vec<&StoredEvent> =
                keep.iter().filter(|(_, first)| *first > 1).map(|&(i, _)| of_kind[i]).collect();
            replace_older(raw, kind, &superseded)?;
            let rows: Vec<&StoredEvent> = keep.iter().map(|&(i, _)| of_kind[i]).collect();
            if kind == LogKind::SignIn {
                let at = method_set_cells();
                if let Some((keys, insert)) =
                    new_method_sets(method_sets, rows.iter().filter_map(|e| method_set_of(&e.event, at)))
                {
                    raw.execute(&insert)?;
                    added = keys;
                }
            }
            raw.insert_arrow(schema::table(kind), &arrow::kind_batch(kind, &rows)?)?;
        }
        if !replaced.is_empty() {
            raw.insert_arrow("revisions", &arrow::revisions_batch(&replaced)?)?;
        }
        raw.execute(&applied.update_sql())?;
        Ok(added)
    }
}

/// Moves the hot rows that newer revisions replace to `revisions`.
fn replace_older(raw: &raw::RawConnection, kind: LogKind, newer: &[&StoredEvent]) -> Result<()> {
    let mut by_org: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in newer {
        by_org.entry(e.org.as_str()).or_default().push(e.event.id.as_str());
    }
    for (org, ids) in by_org {
        for chunk in ids.chunks(1000) {
            let list: Vec<String> = chunk.iter().map(|id| DIALECT.quote_str(id)).collect();
            let rows = format!("WHERE org_id = {} AND id IN ({})", DIALECT.quote_str(org), list.join(", "));
            for statement in move_to_revisions(kind, &rows) {
                raw.execute(&statement)?;
            }
        }
    }
    Ok(())
}

impl DuckStore {
    /// Read as Arrow batches, the strings borrowed from them: one `String` per row and column
    /// through duckdb-rs' rows took 3.2 s for 2.65M revisions, most of a restart.
    fn versions_from(&self, from: u64, visit: &mut dyn FnMut(VersionEntry<'_>)) -> Result<()> {
        use ::arrow::array::{Array, AsArray};
        use ::arrow::datatypes::Int64Type;
        self.with_reader(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT CAST(org_id AS VARCHAR), CAST(kind AS BIGINT), CAST(id AS VARCHAR), \
                 CAST(revision AS BIGINT), CAST(content_hash AS BIGINT) FROM {} WHERE log_pos >= ?",
                revision_index("")
            ))?;
            let unexpected = |what: &str| StoreError::Database(format!("revisions as Arrow: {what}"));
            for batch in stmt.stream_arrow([from as i64])? {
                let batch = batch?;
                let text = |i: usize| batch.column(i).as_string_opt::<i32>().ok_or_else(|| unexpected("not text"));
                let int =
                    |i: usize| batch.column(i).as_primitive_opt::<Int64Type>().ok_or_else(|| unexpected("not BIGINT"));
                let (org, kind, id, revision, hash) = (text(0)?, int(1)?, text(2)?, int(3)?, int(4)?);
                for row in 0..batch.num_rows() {
                    if org.is_null(row) || id.is_null(row) {
                        continue;
                    }
                    let Some(kind) = LogKind::from_code(kind.value(row) as u8) else { continue };
                    visit(VersionEntry {
                        org: org.value(row),
                        kind,
                        id: id.value(row),
                        revision: revision.value(row) as u32,
                        content_hash: hash.value(row) as u64,
                    });
                }
            }
            Ok(())
        })
    }
}

impl EventStore for DuckStore {
    fn backend(&self) -> &'static str {
        "duckdb"
    }

    fn applied_position(&self) -> Result<u64> {
        stored_position(&self.lock_writer(false).conn)
    }

    fn apply(&self, events: &[StoredEvent], through: u64) -> Result<()> {
        let mut writer = self.lock_writer_for(events);
        let started = std::time::Instant::now();
        let events = &events[writer.applied.held(events)..];
        let applied = writer.applied.after(events, through)?;
        writer.raw.execute("BEGIN TRANSACTION")?;
        match Self::apply_in_transaction(&writer.raw, &writer.method_sets, events, applied) {
            Ok(added) => {
                let elapsed = started.elapsed();
                writer.raw.execute("COMMIT")?;
                writer.method_sets.extend(added);
                writer.applied = applied;
                debug!(
                    events = events.len(),
                    apply_ms = elapsed.as_millis() as u64,
                    commit_ms = (started.elapsed() - elapsed).as_millis() as u64,
                    "committed"
                );
                Ok(())
            }
            Err(err) => {
                let _ = writer.raw.execute("ROLLBACK");
                Err(err)
            }
        }
    }

    fn batch_rows(&self) -> Option<usize> {
        Some(ROW_GROUP_ROWS)
    }

    fn version_count(&self) -> Result<Option<u64>> {
        let conn = self.lock_writer(false);
        let count: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", revision_index("")), [], |r| r.get(0))?;
        Ok(Some(count as u64))
    }

    fn for_each_version(&self, visit: &mut dyn FnMut(VersionEntry<'_>)) -> Result<()> {
        self.versions_from(0, visit)
    }

    fn for_each_version_from(&self, from: u64, visit: &mut dyn FnMut(VersionEntry<'_>)) -> Result<bool> {
        self.versions_from(from, visit).map(|()| true)
    }

    fn list(&self, query: &ListQuery) -> Result<Vec<Vec<Cell>>> {
        if let Some((at, query)) = crate::engine::without_column(query, &schema::LOG_NODE) {
            // Every record of the embedded store is in this node's log.
            let mut rows = self.list(&query)?;
            rows.iter_mut().for_each(|row| row.insert(at, Cell::Null));
            return Ok(rows);
        }
        let columns = sql::list_columns(query);
        let catalog = self.archive.read();
        let wants_archived = columns.iter().any(|c| std::ptr::eq(*c, &schema::ARCHIVED));
        let sql = if Self::parts_reached(&catalog, &query.org, query.kind, &query.filter).is_empty() {
            sql::list_page_by_rowid(query, query.limit + 1, wants_archived)
        } else {
            let source = Self::source(&catalog, &query.org, query.kind, &query.filter, wants_archived);
            sql::list_sql_from(query, DIALECT, Some(query.limit + 1), &source)
        };
        self.query_cells(&sql, Some(&columns))
    }

    fn count(&self, org: &str, kind: LogKind, filter: &Expr) -> Result<u64> {
        let catalog = self.archive.read();
        let source = Self::source(&catalog, org, kind, filter, false);
        let rows = self.query_cells(&sql::count_sql_from(org, filter, DIALECT, &source), None)?;
        match rows.first().and_then(|r| r.first()) {
            Some(Cell::Int(n)) => Ok(*n as u64),
            other => Err(StoreError::Database(format!("count returned {other:?}"))),
        }
    }

    fn aggregate(&self, query: &AggQuery) -> Result<Vec<Vec<Cell>>> {
        let catalog = self.archive.read();
        // Archived parts have no table of method sets: only the hot table is grouped by them.
        if Self::parts_reached(&catalog, &query.org, query.kind, &query.filter).is_empty() {
            if let Some(plan) = rollup::Plan::of(query, rollup::today()) {
                return self.aggregate_by_days(&plan);
            }
            if let Some(sql) = sql::agg_by_method_sets(query) {
                return self.query_cells(&sql, None);
            }
        }
        let source = Self::source(&catalog, &query.org, query.kind, &query.filter, false);
        self.query_cells(&sql::agg_sql_from(query, DIALECT, &source), None)
    }

    /// Checkpoints: with `wal_autocheckpoint` at 256 MB (for ingest speed) a burst's last rows
    /// otherwise stay in memory, not compressed into row groups and not in the file, until the
    /// next 256 MB or a shutdown, and a crash would make the next start apply all of them again
    /// from the event log.
    fn settle(&self) -> Result<()> {
        Self::make_durable(&self.lock_writer(false))
    }

    /// One statement for all sets: the filter is evaluated once.
    fn aggregate_sets(&self, query: &MultiAggQuery) -> Result<Vec<Vec<Vec<Cell>>>> {
        let catalog = self.archive.read();
        let source = Self::source(&catalog, &query.org, query.kind, &query.filter, false);
        let Some(shape) = sql::multi_agg_sql_from(query, DIALECT, &source) else {
            drop(catalog);
            return crate::engine::aggregate_by_set(self, query);
        };
        let rows = self.query_cells(&shape.sql, None)?;
        Ok(crate::engine::split_sets(query, &shape, rows))
    }

    /// One scan with grouping sets (one per column, plus the total) instead of a query per
    /// column: the filter is evaluated once.
    fn facets(&self, query: &FacetQuery) -> Result<Facets> {
        let catalog = self.archive.read();
        let source = Self::source(&catalog, &query.org, query.kind, &query.filter, false);
        let Some(sql) = sql::facets_sql_from(query, DIALECT, &source) else {
            drop(catalog);
            return crate::engine::facets_by_column(self, query);
        };
        let width = query.columns.len();
        let all_bits = (1i64 << width) - 1;
        let mut facets = Facets { total: 0, values: vec![Vec::new(); width] };
        for mut row in self.query_cells(&sql, None)? {
            let gid = match row.pop() {
                Some(Cell::Int(g)) => g,
                other => return Err(StoreError::Database(format!("facet row without a grouping id: {other:?}"))),
            };
            let count = match row.pop() {
                Some(Cell::Int(n)) => n,
                _ => 0,
            };
            if gid == all_bits {
                facets.total = count.max(0) as u64;
                continue;
            }
            // The set of column i leaves bit (width - 1 - i) clear.
            let i = (0..width).find(|i| gid == all_bits & !(1 << (width - 1 - i)));
            if let Some(i) = i {
                facets.values[i].push((std::mem::replace(&mut row[i], Cell::Null), count));
            }
        }
        Ok(facets)
    }

    fn expiry_candidates(
        &self,
        org: &str,
        kind: LogKind,
        from_us: i64,
        to_us: i64,
        filter: &Expr,
        archived: &[ArchivedPart],
    ) -> Result<Vec<ExpiryCandidate>> {
        let table = schema::table(kind);
        let filter = sql::compile_expr(filter, DIALECT);
        let parts: Vec<&ArchivedPart> = archived.iter().collect();
        let not_archived = match parts.is_empty() {
            true => String::new(),
            false => format!(
                " AND r.log_pos * 65536 + r.log_idx NOT IN (SELECT log_pos * 65536 + log_idx FROM {})",
                read_parts(&parts)
            ),
        };
        let sql = format!(
            "SELECT r.log_pos, r.log_idx, (r.log_pos = l.log_pos AND r.log_idx = l.log_idx) AS latest \
             FROM {index} r JOIN (SELECT id, log_pos, log_idx FROM {table} WHERE org_id = ? \
               AND event_time >= make_timestamp(?::BIGINT) AND event_time < make_timestamp(?::BIGINT) AND {filter}) l \
             ON r.id = l.id WHERE r.org_id = ? AND r.kind = ?{not_archived} ORDER BY r.log_pos, r.log_idx",
            index = revision_index("")
        );
        self.with_reader(|conn| {
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(duckdb::params![org, from_us, to_us, org, i64::from(kind.code())])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(ExpiryCandidate {
                    ptr: RecordPtr { frame_pos: row.get::<_, i64>(0)? as u64, index: row.get::<_, i64>(1)? as u16 },
                    latest: row.get(2)?,
                });
            }
            Ok(out)
        })
    }

    fn expire(&self, org: &str, kind: LogKind, from_us: i64, to_us: i64, parts: &[ArchivedPart]) -> Result<u64> {
        let mut catalog = self.archive.write();
        let removed = match parts.is_empty() {
            true => 0,
            false => {
                let rows = format!(
                    "WHERE org_id = ? AND event_time >= make_timestamp(?::BIGINT) \
                     AND event_time < make_timestamp(?::BIGINT) \
                     AND log_pos * 65536 + log_idx IN (SELECT log_pos * 65536 + log_idx FROM {})",
                    read_parts(&parts.iter().collect::<Vec<_>>())
                );
                let writer = self.writer();
                let [keep_indexed, delete] = move_to_revisions(kind, &rows);
                let removed = Self::in_transaction(&writer, |conn| {
                    let params = duckdb::params![org, from_us, to_us];
                    conn.execute(&keep_indexed, params)?;
                    let removed = conn.execute(&delete, params)? as u64;
                    if kind == LogKind::SignIn {
                        // Their day counts are never read again (see `rollup`): not kept.
                        conn.execute_batch(&rollup::forget_days_sql(org, from_us, to_us))?;
                    }
                    Ok(removed)
                })?;
                Self::make_durable(&writer)?;
                removed
            }
        };
        for part in parts {
            match catalog.iter_mut().find(|p| p.path == part.path) {
                Some(known) => known.queried = true,
                None => catalog.push(ArchivedPart { queried: true, ..part.clone() }),
            }
        }
        Ok(removed)
    }

    fn restore(&self, org: &str, kind: LogKind, parts: &[ArchivedPart]) -> Result<u64> {
        let mut catalog = self.archive.write();
        for part in catalog.iter_mut().filter(|p| parts.iter().any(|r| r.path == p.path)) {
            part.queried = false;
        }
        if parts.is_empty() {
            return Ok(0);
        }
        let table = schema::table(kind);
        let columns = schema::all_columns(kind).map(|c| c.name).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "INSERT INTO {table} ({columns}) SELECT {columns} FROM {} p WHERE p.latest AND p.org_id = ? \
             AND NOT EXISTS (SELECT 1 FROM {table} h WHERE h.org_id = p.org_id AND h.id = p.id)",
            read_parts(&parts.iter().collect::<Vec<_>>())
        );
        // Their revisions are indexed by the hot rows again (see `revision_index`).
        let indexed_twice = format!(
            "DELETE FROM revisions WHERE org_id = ? AND kind = {} \
             AND log_pos * 65536 + log_idx IN (SELECT log_pos * 65536 + log_idx FROM {table} WHERE org_id = ?)",
            kind.code()
        );
        let writer = self.writer();
        let restored = Self::in_transaction(&writer, |conn| {
            let restored = conn.execute(&sql, duckdb::params![org])? as u64;
            conn.execute(&indexed_twice, duckdb::params![org, org])?;
            Ok(restored)
        })?;
        Self::make_durable(&writer)?;
        Ok(restored)
    }

    fn archived_record(&self, ptr: RecordPtr) -> Result<Option<crate::LogRecord>> {
        // Parts of several organisations and logs may span the position: ask each.
        let candidates: Vec<ArchivedPart> = self
            .archive
            .read()
            .iter()
            .filter(|p| p.first_position <= ptr.frame_pos && ptr.frame_pos <= p.last_position)
            .cloned()
            .collect();
        for part in candidates {
            let cached = self.part_cache.lock().iter().find(|(path, _)| *path == part.path).map(|(_, r)| r.clone());
            let records = match cached {
                Some(records) => records,
                None => {
                    let records: PartRecords = crate::archive::read_part_records(part.kind, &part.path)?;
                    let records = std::sync::Arc::new(records);
                    let mut cache = self.part_cache.lock();
                    cache.push_front((part.path.clone(), records.clone()));
                    cache.truncate(PART_CACHE);
                    records
                }
            };
            if let Some(record) = records.get(&(ptr.frame_pos, ptr.index)) {
                return Ok(Some(record.clone()));
            }
        }
        Ok(None)
    }

    fn unarchived_between(&self, from: u64, to: u64, parts: &[ArchivedPart]) -> Result<u64> {
        let covering: Vec<&ArchivedPart> =
            parts.iter().filter(|p| p.first_position < to && p.last_position >= from).collect();
        let not_archived = match covering.is_empty() {
            true => String::new(),
            false => format!(
                " AND log_pos * 65536 + log_idx NOT IN (SELECT log_pos * 65536 + log_idx FROM {} \
                 WHERE log_pos >= {from} AND log_pos < {to})",
                read_parts(&covering)
            ),
        };
        let sql = format!(
            "SELECT count(*) FROM {} WHERE log_pos >= {from} AND log_pos < {to}{not_archived}",
            revision_index("")
        );
        self.with_reader(|conn| Ok(conn.query_row(&sql, [], |r| r.get::<_, i64>(0))? as u64))
    }

    fn forget(&self, parts: &[ArchivedPart]) -> Result<u64> {
        if parts.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "DELETE FROM revisions WHERE log_pos * 65536 + log_idx IN (SELECT log_pos * 65536 + log_idx FROM {})",
            read_parts(&parts.iter().collect::<Vec<_>>())
        );
        let writer = self.writer();
        let forgotten = writer.execute(&sql, [])? as u64;
        Self::make_durable(&writer)?;
        Ok(forgotten)
    }

    fn set_archive(&self, parts: Vec<ArchivedPart>) {
        *self.archive.write() = parts;
    }

    fn revisions(&self, org: &str, kind: LogKind, id: &str) -> Result<Vec<RevisionRef>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT revision, content_hash, epoch_us(event_time), epoch_us(received_at), log_pos, log_idx \
                 FROM {} WHERE org_id = ? AND kind = ? AND id = ? ORDER BY revision",
                revision_index("")
            ))?;
            let mut rows = stmt.query(duckdb::params![org, i64::from(kind.code()), id])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(RevisionRef {
                    revision: row.get::<_, i64>(0)? as u32,
                    content_hash: row.get::<_, i64>(1)? as u64,
                    time_us: row.get(2)?,
                    received_us: row.get(3)?,
                    ptr: RecordPtr { frame_pos: row.get::<_, i64>(4)? as u64, index: row.get::<_, i64>(5)? as u16 },
                    node: None,
                });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests;
