//! The ClickHouse engine (scale-out): the projection of the event log in a ClickHouse
//! database, spoken to over its HTTP interface, with queries compiled from the same AST as
//! DuckDB's in the ClickHouse dialect ([`signet_query::sql::Dialect::ClickHouse`]).
//!
//! Schema (created and migrated by [`ClickHouseStore::migrate`], versioned in
//! `signet_migrations`; everything `IF NOT EXISTS`, so reruns are no-ops):
//!
//! - one table per log kind with every revision of every event: the kind's typed columns, times
//!   as epoch microseconds (`Int64`), `ReplacingMergeTree` partitioned by organisation and month,
//!   ordered by (organisation, event time, id, revision). A batch inserted twice (a retry after
//!   a timeout) holds the same keys: queries read the tables `FINAL`, so it counts once.
//! - `superseded`: (organisation, kind, id, revision) of every revision a newer one replaces.
//!   Lists and reports read the revisions not in it — the latest — so counts are exact whether or
//!   not ClickHouse has merged anything yet.
//! - `signet_applied`: the event log positions each node has applied.
//!
//! The SQL keeps to what ClickHouse 18.16 (Debian's package) and current releases accept.

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use signet_model::schema::{self, ColType, Column};
use signet_model::{Cell, LogKind};
use signet_query::sql::{self, Dialect};
use signet_query::{AggQuery, Expr, FacetQuery, Facets, ListQuery, Measure, MultiAggQuery};
use tracing::debug;

use crate::engine::{ArchivedPart, EventStore, RecordRef, RevisionRef, StoredEvent, VersionEntry};
use crate::error::{Result, StoreError};
use crate::log::{LogRecord, RecordPtr};

mod dedup;
mod documents;
mod retention;
use dedup::Dedup;
pub use documents::SharedEntry;
pub mod local;
mod tables;
mod verify;
pub use local::{chdb_server, cluster, server, LocalCluster, LocalServer, OwnedServer};
pub use tables::cluster_schema;

const DIALECT: Dialect = Dialect::ClickHouse;

/// Rows of other nodes whose records one query fetches (the query lists their ids: ClickHouse
/// parses at most 256 KiB of query by default).
const FOREIGN_BATCH: usize = 2_000;

/// The table column `node` (see [`tables::RECORD_COLUMNS`]), for list queries.
static NODE_COLUMN: Column = Column { name: "node", api: "node", graph_path: None, ty: ColType::Str };

/// `storage = "clickhouse"` settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseSettings {
    /// The HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// Other servers of the cluster, tried in turn when the current one does not answer
    /// (connection refused or timed out); the node stays on the one that answered.
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default)]
    pub user: Option<String>,
    /// A file holding the user's password (never the password itself in signet.toml).
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// This node's name: its applied log position is kept under it.
    #[serde(default = "default_node")]
    pub node: String,
    /// A cluster of `remote_servers` (with ZooKeeper): the tables are then
    /// `ReplicatedReplacingMergeTree` shards behind `Distributed` tables (see [`cluster_schema`]).
    #[serde(default)]
    pub cluster: Option<String>,
}

fn default_database() -> String {
    "signet".into()
}

fn default_node() -> String {
    "node-1".into()
}

pub struct ClickHouseStore {
    /// Taken in `drop` (see there).
    http: Option<reqwest::blocking::Client>,
    /// `url`, then `urls`; `current` is the one in use.
    urls: Vec<String>,
    current: std::sync::atomic::AtomicUsize,
    database: String,
    user: Option<String>,
    password: Option<String>,
    node: String,
    cluster: Option<String>,
    queries: AtomicU64,
    /// The database and schema are known to be there (see [`ClickHouseStore::open_deferred`]).
    ready: std::sync::atomic::AtomicBool,
    /// Into how many time ranges a `FINAL` read is split (the server's `max_threads`; 0: not
    /// asked yet). See [`ClickHouseStore::source`].
    final_ranges: AtomicU64,
}

impl Drop for ClickHouseStore {
    fn drop(&mut self) {
        // The blocking client owns a runtime, which must not be dropped on an async thread (a
        // server may drop the last engine there): hand it to a thread of its own.
        if let Some(http) = self.http.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                std::thread::spawn(move || drop(http));
            }
        }
    }
}

impl std::fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseStore").field("urls", &self.urls).field("database", &self.database).finish()
    }
}

fn db_err(what: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("clickhouse: {what}"))
}

impl ClickHouseStore {
    /// Connects, creates the database if needed and migrates the schema. When ClickHouse does
    /// not answer: [`StoreError::Unreachable`].
    pub fn open(settings: &ClickHouseSettings) -> Result<ClickHouseStore> {
        let store = ClickHouseStore::open_deferred(settings)?;
        store.ensure_ready()?;
        Ok(store)
    }

    /// The store without contacting ClickHouse (it may be down while a node starts): the
    /// database and schema are made ready when the node first reads its applied position or
    /// writes (the projector does both first once ClickHouse answers).
    pub fn open_deferred(settings: &ClickHouseSettings) -> Result<ClickHouseStore> {
        for (what, name) in [("database", Some(&settings.database)), ("cluster", settings.cluster.as_ref())] {
            if name.is_some_and(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
                return Err(db_err(format!("{what} name {name:?}: letters, digits and _ only")));
            }
        }
        let password = match &settings.password_file {
            Some(path) => Some(
                std::fs::read_to_string(path).map_err(crate::error::io_err(path))?.trim_end_matches('\n').to_string(),
            ),
            None => None,
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(10))
            // ClickHouse closes a keep-alive connection idle for `keep_alive_timeout` (3 s by
            // default): a request sent on one it has just closed fails. Not kept that long.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .map_err(db_err)?;
        let store = ClickHouseStore {
            http: Some(http),
            urls: std::iter::once(&settings.url)
                .chain(&settings.urls)
                .map(|url| url.trim_end_matches('/').to_string())
                .collect(),
            current: std::sync::atomic::AtomicUsize::new(0),
            database: settings.database.clone(),
            user: settings.user.clone(),
            password,
            node: settings.node.clone(),
            cluster: settings.cluster.clone(),
            queries: AtomicU64::new(0),
            ready: std::sync::atomic::AtomicBool::new(false),
            final_ranges: AtomicU64::new(0),
        };
        Ok(store)
    }

    fn ensure_ready(&self) -> Result<()> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.cluster.is_none() {
            self.post(None, &format!("CREATE DATABASE IF NOT EXISTS {}", self.database), None)?;
        }
        self.migrate()?;
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// What lists and reports read to leave out replaced revisions: on a cluster, each shard's
    /// own part (the kind tables are sharded alike), named with its database (the shards run
    /// the query in their default one).
    fn superseded_table(&self) -> String {
        match self.cluster {
            Some(_) => format!("{}.superseded_local", self.database),
            None => "superseded".into(),
        }
    }

    /// Sends one statement; `database` scopes it (None: the server's default). Returns the body.
    /// With several servers configured, one that does not answer is skipped for the next
    /// (a statement that timed out may have run there: every write is idempotent).
    fn post(&self, database: Option<&str>, sql: &str, mut body: Option<String>) -> Result<reqwest::blocking::Response> {
        let count = self.urls.len();
        let first = self.current.load(Ordering::Relaxed) % count;
        let mut unreachable = Vec::new();
        for attempt in 0..count {
            let at = (first + attempt) % count;
            let this = if attempt + 1 == count { body.take() } else { body.clone() };
            match self.post_to(&self.urls[at], database, sql, this) {
                Err(StoreError::Unreachable(why)) => unreachable.push(why),
                answered => {
                    if attempt > 0 {
                        tracing::warn!(url = %self.urls[at], skipped = ?unreachable, "ClickHouse: another server answers");
                        self.current.store(at, Ordering::Relaxed);
                    }
                    return answered;
                }
            }
        }
        Err(StoreError::Unreachable(unreachable.join("; ")))
    }

    fn post_to(
        &self,
        url: &str,
        database: Option<&str>,
        sql: &str,
        body: Option<String>,
    ) -> Result<reqwest::blocking::Response> {
        let started = std::time::Instant::now();
        let mut params: Vec<(&str, &str)> = vec![("output_format_json_quote_64bit_integers", "0")];
        if self.cluster.is_some() {
            // An insert into a Distributed table returns once every shard has its rows (not
            // queued on the server the node talks to): the applied position is then true.
            params.push(("insert_distributed_sync", "1"));
        }
        if let Some(db) = database {
            params.push(("database", db));
        }
        let http = self.http.as_ref().ok_or_else(|| db_err("the store is closed"))?;
        let mut request = http.post(url).query(&params);
        request = match body {
            // Data in the body, the statement in the URL.
            Some(body) => request.query(&[("query", sql)]).body(body),
            None => request.body(sql.to_string()),
        };
        if let Some(user) = &self.user {
            request = request.header("X-ClickHouse-User", user);
        }
        if let Some(password) = &self.password {
            request = request.header("X-ClickHouse-Key", password);
        }
        // A request that could not be sent (the connection closed under it) is sent once more
        // on a new one: every statement here may run twice (idempotent DDL, inserts whose
        // copies queries remove, reads).
        let again = request.try_clone();
        let sent = match (request.send(), again) {
            (Err(e), Some(again)) if !e.is_connect() && !e.is_timeout() && e.is_request() => {
                debug!(error = %e, "clickhouse request not sent: sending it again");
                again.send()
            }
            (sent, _) => sent,
        };
        let response = sent.map_err(|e| match e.is_connect() || e.is_timeout() {
            true => StoreError::Unreachable(format!("clickhouse at {url}: {e}")),
            false => db_err(format!("{url}: {e}")),
        })?;
        self.queries.fetch_add(1, Ordering::Relaxed);
        debug!(sql, elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "clickhouse query");
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().unwrap_or_default();
            return Err(db_err(format!("{status}: {}", text.trim())));
        }
        Ok(response)
    }

    fn execute(&self, sql: &str) -> Result<()> {
        self.post(Some(&self.database), sql, None)?.text().map_err(db_err)?;
        Ok(())
    }

    fn insert(&self, table: &str, rows: &[Value]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut body = String::new();
        for row in rows {
            body.push_str(&row.to_string());
            body.push('\n');
        }
        self.post(Some(&self.database), &format!("INSERT INTO {table} FORMAT JSONEachRow"), Some(body))?
            .text()
            .map_err(db_err)?;
        Ok(())
    }

    /// The rows of a query as JSON values (`FORMAT JSONCompact`).
    fn query_json(&self, sql: &str) -> Result<Vec<Vec<Value>>> {
        let text =
            self.post(Some(&self.database), &format!("{sql} FORMAT JSONCompact"), None)?.text().map_err(db_err)?;
        let mut answer: Value = serde_json::from_str(&text).map_err(|e| db_err(format!("answer: {e}")))?;
        match answer["data"].take() {
            Value::Array(rows) => Ok(rows
                .into_iter()
                .map(|row| match row {
                    Value::Array(cells) => cells,
                    other => vec![other],
                })
                .collect()),
            _ => Err(db_err("an answer without data")),
        }
    }

    fn query_cells(&self, sql: &str, types: Option<&[&Column]>) -> Result<Vec<Vec<Cell>>> {
        Ok(self
            .query_json(sql)?
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .enumerate()
                    .map(|(i, v)| to_cell(v, types.and_then(|t| t.get(i)).map(|c| c.ty)))
                    .collect()
            })
            .collect())
    }

    /// A row's `node` as [`RecordRef::node`]: `None` for this node's log (and for rows of
    /// databases from before nodes shared them, '').
    fn foreign_node(&self, node: Option<&str>) -> Option<String> {
        node.filter(|n| !n.is_empty() && *n != self.node).map(str::to_string)
    }

    /// [`EventStore::list`] of `query` with the node of each row's record put in at `at`.
    fn list_with_node(&self, query: &ListQuery, at: usize) -> Result<Vec<Vec<Cell>>> {
        // The column asked for under another name (`node` is also a table column): a list of
        // the key columns and `node` reads nothing else.
        let mut with_node = query.clone();
        if with_node.columns.is_empty() {
            with_node.columns = sql::list_columns(query);
        }
        with_node.columns.push(&NODE_COLUMN);
        let mut rows = self.list(&with_node)?;
        for row in &mut rows {
            let node = match row.pop() {
                Some(Cell::Str(node)) => self.foreign_node(Some(&node)),
                _ => None,
            };
            row.insert(at, node.map_or(Cell::Null, Cell::Str));
        }
        Ok(rows)
    }

    /// [`EventStore::foreign_records`] of one batch: one query.
    fn foreign_batch(&self, org: &str, kind: LogKind, refs: &[&RecordRef]) -> Result<Vec<Option<LogRecord>>> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let mut times: Vec<i64> = refs.iter().map(|r| r.time_us).collect();
        times.sort_unstable();
        times.dedup();
        let mut nodes: Vec<&str> = refs.iter().filter_map(|r| r.node.as_deref()).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let list = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT node, log_pos, log_idx, id, revision, content_hash, event_time, received_at, body, original \
             FROM {} WHERE org_id = {} AND event_time IN ({}) AND id IN ({}) AND node IN ({})",
            schema::table(kind),
            DIALECT.quote_str(org),
            list(&mut times.iter().map(i64::to_string)),
            list(&mut refs.iter().map(|r| DIALECT.quote_str(&r.id))),
            list(&mut nodes.iter().map(|n| DIALECT.quote_str(n))),
        );
        let mut found: std::collections::HashMap<(String, u64, u16), LogRecord> = Default::default();
        for row in self.query_json(&sql)? {
            let text = |i: usize| row[i].as_str().unwrap_or_default().to_string();
            let record = LogRecord {
                kind,
                revision: int_of(&row[4]) as u32,
                content_hash: int_of(&row[5]) as u64,
                time_us: int_of(&row[6]),
                received_us: int_of(&row[7]),
                org: org.to_string(),
                id: text(3),
                body: text(8).into_bytes().into(),
                original: row[9].as_str().map(|o| o.as_bytes().to_vec()),
            };
            found.insert((text(0), int_of(&row[1]) as u64, int_of(&row[2]) as u16), record);
        }
        Ok(refs
            .iter()
            .map(|r| {
                let node = r.node.clone().unwrap_or_default();
                found.remove(&(node, r.ptr.frame_pos, r.ptr.index))
            })
            .collect())
    }

    /// Queries sent so far (metrics, tests).
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

/// One event as a JSONEachRow object, with the node that logged it and its record.
fn row_json(e: &StoredEvent, node: &str) -> Value {
    let mut row = typed_row_json(e);
    if let Value::Object(row) = &mut row {
        row.insert("node".into(), json!(node));
        row.insert("body".into(), json!(String::from_utf8_lossy(&e.event.body)));
        let original = e.event.original.as_deref().map(String::from_utf8_lossy);
        row.insert("original".into(), json!(original));
    }
    row
}

/// The schema's columns of one event as a JSONEachRow object.
fn typed_row_json(e: &StoredEvent) -> Value {
    let mut row = Map::new();
    let columns = schema::all_columns(e.event.kind);
    let cells = crate::duck::arrow::common_cells(e).into_iter().chain(e.event.cells.iter().map(|c| c.to_cell()));
    for (column, cell) in columns.zip(cells) {
        let value = match (column.ty, cell) {
            (ColType::StrList, Cell::List(items)) => json!(items),
            (ColType::StrList, _) => json!([]),
            (_, Cell::Null) => Value::Null,
            (_, Cell::Str(s)) => json!(s),
            (_, Cell::Int(i)) | (_, Cell::Time(i)) => json!(i),
            (_, Cell::Float(f)) if f.is_finite() => json!(f),
            (_, Cell::Float(_)) => Value::Null,
            (_, Cell::Bool(b)) => json!(u8::from(b)),
            (_, Cell::List(items)) => json!(items.join(",")),
        };
        row.insert(column.name.to_string(), value);
    }
    Value::Object(row)
}

fn to_cell(value: Value, ty: Option<ColType>) -> Cell {
    match (ty, value) {
        (_, Value::Null) => Cell::Null,
        (Some(ColType::Bool), Value::Number(n)) => Cell::Bool(n.as_i64() != Some(0)),
        (Some(ColType::Time), Value::Number(n)) => n.as_i64().map_or(Cell::Null, Cell::Time),
        (Some(ColType::Float), Value::Number(n)) => n.as_f64().map_or(Cell::Null, Cell::Float),
        (_, Value::Number(n)) => match n.as_i64() {
            Some(i) => Cell::Int(i),
            None => {
                n.as_u64().map(|u| Cell::Int(u as i64)).or_else(|| n.as_f64().map(Cell::Float)).unwrap_or(Cell::Null)
            }
        },
        (_, Value::String(s)) => Cell::Str(s),
        (_, Value::Bool(b)) => Cell::Bool(b),
        (_, Value::Array(items)) => Cell::List(
            items
                .into_iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s),
                    Value::Null => None,
                    other => Some(other.to_string()),
                })
                .collect(),
        ),
        (_, other) => Cell::Str(other.to_string()),
    }
}

/// Over no rows ClickHouse answers min/max with 0 and (18.16) a distinct count with NULL; the
/// other engines, and the reports, expect NULL and 0. `rows` are `groups` group values, then
/// `measures`.
fn empty_measures(rows: &mut [Vec<Cell>], groups: usize, measures: &[Measure]) {
    for row in rows {
        for (cell, measure) in row.iter_mut().skip(groups).zip(measures) {
            match (measure, &*cell) {
                (Measure::MinTime(_) | Measure::MaxTime(_), Cell::Int(0)) => *cell = Cell::Null,
                (Measure::Count | Measure::CountIf(_) | Measure::CountDistinct(_), Cell::Null) => *cell = Cell::Int(0),
                _ => {}
            }
        }
    }
}

fn int_of(value: &Value) -> i64 {
    value.as_i64().or_else(|| value.as_u64().map(|u| u as i64)).unwrap_or(0)
}

impl EventStore for ClickHouseStore {
    fn backend(&self) -> &'static str {
        "clickhouse"
    }

    fn applied_position(&self) -> Result<u64> {
        self.ensure_ready()?;
        let rows = self.query_json(&format!(
            "SELECT max(position) FROM signet_applied WHERE node = {}",
            DIALECT.quote_str(&self.node)
        ))?;
        Ok(rows.first().and_then(|r| r.first()).map_or(0, |v| int_of(v) as u64))
    }

    /// Every revision into its kind's table, the revisions it replaces into `superseded`, then
    /// the position. A crash or timeout before the position is recorded makes the caller apply
    /// the batch again: the same keys, read once.
    fn apply(&self, events: &[StoredEvent], through: u64) -> Result<()> {
        self.ensure_ready()?;
        for kind in LogKind::ALL {
            let rows: Vec<Value> =
                events.iter().filter(|e| e.event.kind == kind).map(|e| row_json(e, &self.node)).collect();
            self.insert(schema::table(kind), &rows)?;
        }
        let superseded: Vec<Value> = events
            .iter()
            .filter(|e| e.revision > 1)
            .flat_map(|e| {
                (1..e.revision).map(
                    move |r| json!({ "org_id": e.org, "kind": e.event.kind.code(), "id": e.event.id, "revision": r }),
                )
            })
            .collect();
        self.insert("superseded", &superseded)?;
        self.insert("signet_applied", &[json!({ "node": self.node, "position": through })])
    }

    fn for_each_version(&self, visit: &mut dyn FnMut(VersionEntry<'_>)) -> Result<()> {
        for kind in LogKind::ALL {
            // Streamed a row per line: there may be tens of millions. Without `FINAL` (a copy
            // of a row is visited twice; the index keeps one): 1M sign-ins took 1.6 s with it.
            let sql =
                format!("SELECT org_id, id, revision, content_hash FROM {} FORMAT JSONEachRow", schema::table(kind));
            let response = self.post(Some(&self.database), &sql, None)?;
            for line in std::io::BufReader::new(response).lines() {
                let line = line.map_err(db_err)?;
                if line.is_empty() {
                    continue;
                }
                let row: Value = serde_json::from_str(&line).map_err(|e| db_err(format!("{e}: {line}")))?;
                let (Some(org), Some(id)) = (row["org_id"].as_str(), row["id"].as_str()) else { continue };
                visit(VersionEntry {
                    org,
                    kind,
                    id,
                    revision: int_of(&row["revision"]) as u32,
                    content_hash: int_of(&row["content_hash"]) as u64,
                });
            }
        }
        Ok(())
    }

    /// Filter, order and limit go into the `FINAL` query itself, not around it: a `FINAL`
    /// subquery reads and merges every column of every row of the organisation before the
    /// outer filter and sort (3.9 s against 0.6 s for a 51-row page at 1M sign-ins on 18.16).
    fn list(&self, query: &ListQuery) -> Result<Vec<Vec<Cell>>> {
        if let Some((at, query)) = crate::engine::without_column(query, &schema::LOG_NODE) {
            return self.list_with_node(&query, at);
        }
        let columns = sql::list_columns(query);
        // `archived` is not a column here (nothing is archived in ClickHouse yet): false.
        let archived = columns.iter().position(|c| std::ptr::eq(*c, &schema::ARCHIVED));
        let read: Vec<&'static Column> =
            columns.iter().copied().filter(|c| !std::ptr::eq(*c, &schema::ARCHIVED)).collect();
        let direction = if query.order == signet_query::SortOrder::Desc { "DESC" } else { "ASC" };
        let dedup = Dedup::for_filter(&query.filter);
        // Copies of a row are equal in the sort key, so they are neighbours in the order.
        let once = match dedup {
            Dedup::Final => "",
            Dedup::Copies => " LIMIT 1 BY event_time, id, revision",
        };
        let sql = format!(
            "SELECT {} FROM {table}{} WHERE {} AND (id, revision) NOT IN \
             (SELECT id, revision FROM {superseded} WHERE org_id = {org} AND kind = {kind}) \
             ORDER BY event_time {direction}, id {direction}{once} LIMIT {}",
            sql::select_list(&read, DIALECT),
            dedup.modifier(),
            sql::list_where(query, DIALECT),
            query.limit + 1,
            table = schema::table(query.kind),
            org = DIALECT.quote_str(&query.org),
            kind = query.kind.code(),
            superseded = self.superseded_table(),
        );
        let mut rows = self.query_cells(&sql, Some(&read))?;
        if let Some(at) = archived {
            rows.iter_mut().for_each(|row| row.insert(at, Cell::Bool(false)));
        }
        Ok(rows)
    }

    /// In windows of the time range holding about `page` rows each (planned from a plain count
    /// per hour), each paged as a list: every query reads a bounded stretch of the sort key.
    /// Paging the whole filter by cursor instead made each page a `FINAL` over everything on
    /// the cursor's side (8 s a page, 12,000 rows/s, at 10M sign-ins). The windows are
    /// contiguous and unbounded at both ends, so what the plan missed (rows stored since) is
    /// still read; only the windows' sizes rest on it.
    fn scan(
        &self,
        query: &ListQuery,
        page: usize,
        visit: &mut dyn FnMut(Vec<Vec<Cell>>) -> Result<bool>,
    ) -> Result<()> {
        const HOUR: i64 = 3_600_000_000;
        let descending = query.order == signet_query::SortOrder::Desc;
        let hours = self.query_json(&format!(
            "SELECT intDiv(event_time, {HOUR}) AS h, count() FROM {} WHERE {} GROUP BY h ORDER BY h {}",
            schema::table(query.kind),
            sql::list_where(query, DIALECT),
            if descending { "DESC" } else { "ASC" },
        ))?;
        // Where each window after the first begins, in the query's order.
        let mut cuts = Vec::new();
        let mut in_window = 0u64;
        for row in &hours {
            let (hour, rows) = (int_of(&row[0]), int_of(&row[1]) as u64);
            if in_window > 0 && in_window + rows > page as u64 {
                cuts.push(if descending { (hour + 1) * HOUR } else { hour * HOUR });
                in_window = 0;
            }
            in_window += rows;
        }
        let time = schema::find_column(query.kind, "event_time").expect("a common column");
        let bound = |op, at| Expr::Compare { column: time, op, value: signet_query::Literal::Time(at) };
        let mut edges: Vec<Option<i64>> = vec![None];
        edges.extend(cuts.into_iter().map(Some));
        edges.push(None);
        for pair in edges.windows(2) {
            let (first, last) = (pair[0], pair[1]);
            let (low, high) = if descending { (last, first) } else { (first, last) };
            let mut filter = vec![query.filter.clone()];
            filter.extend(low.map(|at| bound(signet_query::CmpOp::Ge, at)));
            filter.extend(high.map(|at| bound(signet_query::CmpOp::Lt, at)));
            let window = ListQuery { filter: Expr::and(filter), ..query.clone() };
            if !crate::engine::scan_pages(|q| self.list(q), &window, page, visit)? {
                break;
            }
        }
        Ok(())
    }

    fn keeps_records(&self) -> bool {
        true
    }

    /// See [`ClickHouseStore::rows_from_log`].
    fn unarchived_between(&self, from: u64, to: u64, parts: &[ArchivedPart]) -> Result<u64> {
        let _ = parts;
        self.rows_from_log(from, to)
    }

    /// See [`ClickHouseStore::delete_expired`].
    fn delete_before(&self, org: &str, kind: LogKind, before_us: i64, filter: &Expr) -> Result<u64> {
        self.delete_expired(org, kind, before_us, filter)
    }

    /// A query per [`FOREIGN_BATCH`] of them, by the key's time and id (no `FINAL`: every copy
    /// of a row holds the same record).
    fn foreign_records(&self, org: &str, kind: LogKind, refs: &[&RecordRef]) -> Result<Vec<Option<LogRecord>>> {
        let mut out = Vec::with_capacity(refs.len());
        for batch in refs.chunks(FOREIGN_BATCH) {
            out.extend(self.foreign_batch(org, kind, batch)?);
        }
        Ok(out)
    }

    fn count(&self, org: &str, kind: LogKind, filter: &Expr) -> Result<u64> {
        let dedup = Dedup::for_filter(filter);
        let source = self.source(org, kind, filter, &[], dedup);
        let sql = sql::count_sql_counting(org, filter, DIALECT, &source, dedup.counting(kind));
        let rows = self.query_cells(&sql, None)?;
        match rows.first().and_then(|r| r.first()) {
            Some(Cell::Int(n)) => Ok(*n as u64),
            other => Err(db_err(format!("count returned {other:?}"))),
        }
    }

    fn aggregate(&self, query: &AggQuery) -> Result<Vec<Vec<Cell>>> {
        let mut columns = sql::aggregation_columns(query);
        for group in &query.group_by {
            if let signet_query::GroupBy::Unnest(list) = group {
                columns.push(list);
            }
        }
        let dedup = Dedup::for_filter(&query.filter);
        let source = self.source(&query.org, query.kind, &query.filter, &columns, dedup);
        let sql = sql::agg_sql_counting(query, DIALECT, &source, dedup.counting(query.kind));
        let mut rows = self.query_cells(&sql, None)?;
        empty_measures(&mut rows, query.group_by.len(), &query.measures);
        Ok(rows)
    }

    /// One query for all sets ([`sql::multi_agg_sql_by_repeats`]): a user's 90-day pattern
    /// (eight sets) read the table eight times before.
    fn aggregate_sets(&self, query: &MultiAggQuery) -> Result<Vec<Vec<Vec<Cell>>>> {
        let dedup = Dedup::for_filter(&query.filter);
        let mut columns = Vec::new();
        for i in 0..query.sets.len() {
            columns.extend(sql::aggregation_columns(&query.set(i)));
        }
        let source = self.source(&query.org, query.kind, &query.filter, &columns, dedup);
        let Some(shape) = sql::multi_agg_sql_by_repeats(query, &source, dedup.counting(query.kind)) else {
            return crate::engine::aggregate_by_set(self, query);
        };
        let rows = self.query_cells(&shape.sql, None)?;
        let mut sets = crate::engine::split_sets(query, &shape, rows);
        for (rows, set) in sets.iter_mut().zip(&query.sets) {
            empty_measures(rows, set.group_by.len(), &set.measures);
        }
        Ok(sets)
    }

    /// Every column's top values and the total in one pass (18.16 has no `GROUPING SETS`):
    /// each row becomes one `(column, value)` pair per column (per element of a list column)
    /// and one for the total, grouped together, the top `limit` kept per column. Eight
    /// columns of 30 days of 1M sign-ins took 2.5 s as nine queries (one `FINAL` each).
    fn facets(&self, query: &FacetQuery) -> Result<Facets> {
        let columns = &query.columns;
        let dedup = Dedup::for_filter(&query.filter);
        let source = self.source(&query.org, query.kind, &query.filter, columns, dedup);
        // (column, text, number, position): the number orders a non-text column's ties as
        // its own values would be ordered; the position tells a list's elements apart.
        let no_number = "CAST(NULL AS Nullable(Int64))";
        let mut scalars = Vec::new();
        let mut lists = Vec::new();
        for (i, column) in columns.iter().enumerate() {
            let name = column.name;
            match column.ty {
                ColType::StrList => lists.push(format!(
                    "arrayMap((x, p) -> (toUInt16({i}), toNullable(x), {no_number}, toUInt32(p)), {name}, \
                     arrayEnumerate({name}))"
                )),
                ColType::Str => {
                    scalars.push(format!("(toUInt16({i}), toNullable(toString({name})), {no_number}, toUInt32(0))"))
                }
                _ => scalars.push(format!(
                    "(toUInt16({i}), toNullable(toString({name})), toNullable(toInt64({name})), toUInt32(0))"
                )),
            }
        }
        let total = columns.len();
        scalars.push(format!("(toUInt16({total}), CAST(NULL AS Nullable(String)), {no_number}, toUInt32(0))"));
        let mut arrays = vec![format!("[{}]", scalars.join(", "))];
        arrays.extend(lists);
        let pairs = match arrays.len() {
            1 => arrays.remove(0),
            _ => format!("arrayConcat({})", arrays.join(", ")),
        };
        let count = match dedup {
            Dedup::Final => "count()",
            Dedup::Copies => "uniqExact(id, revision, kv.4)",
        };
        let sql = format!(
            "SELECT kv.1 AS k, kv.2 AS v, kv.3 AS num, {count} AS n FROM {source} ARRAY JOIN {pairs} AS kv \
             GROUP BY k, v, num ORDER BY k, n DESC, num ASC NULLS LAST, v ASC NULLS LAST LIMIT {} BY k",
            query.limit
        );
        let mut facets = Facets { total: 0, values: vec![Vec::new(); columns.len()] };
        for row in self.query_json(&sql)? {
            let (k, n) = (int_of(&row[0]) as usize, int_of(&row[3]));
            match columns.get(k) {
                Some(column) => {
                    let value = match column.ty {
                        ColType::Str | ColType::StrList => to_cell(row[1].clone(), Some(ColType::Str)),
                        ty => to_cell(row[2].clone(), Some(ty)),
                    };
                    facets.values[k].push((value, n));
                }
                None => facets.total = n as u64,
            }
        }
        Ok(facets)
    }

    fn revisions(&self, org: &str, kind: LogKind, id: &str) -> Result<Vec<RevisionRef>> {
        let sql = format!(
            "SELECT revision, content_hash, event_time, received_at, log_pos, log_idx, node FROM {} \
             WHERE org_id = {} AND id = {} ORDER BY revision",
            schema::table(kind),
            DIALECT.quote_str(org),
            DIALECT.quote_str(id)
        );
        // Without `FINAL` (which merges every row of the organisation to find one id's: 1.1 s
        // against 46 ms at 1M sign-ins): copies of a revision come back together; one is kept,
        // this node's own where there is one (its record is in this node's log).
        let mut out: Vec<RevisionRef> = Vec::new();
        for row in self.query_json(&sql)? {
            let revision = RevisionRef {
                revision: int_of(&row[0]) as u32,
                content_hash: int_of(&row[1]) as u64,
                time_us: int_of(&row[2]),
                received_us: int_of(&row[3]),
                ptr: RecordPtr { frame_pos: int_of(&row[4]) as u64, index: int_of(&row[5]) as u16 },
                node: self.foreign_node(row[6].as_str()),
            };
            match out.last_mut() {
                Some(last) if last.revision == revision.revision => {
                    if last.node.is_some() && revision.node.is_none() {
                        *last = revision;
                    }
                }
                _ => out.push(revision),
            }
        }
        Ok(out)
    }
}
