//! DuckDB's C API where duckdb-rs has no fast path: the projection's writes.
//!
//! duckdb-rs' `Appender::append_record_batch` converts Arrow arrays into DuckDB vectors value by
//! value through the C API (one call, one UTF-8 check and one copy per string), which was about
//! half of the projection's time. Here DuckDB scans each Arrow batch itself, column by column and
//! without copying strings (a view per table over a stream of this module), in an `INSERT ..
//! SELECT`: no appender, whose buffer was one more copy of every row. Statements run through the
//! pending-result API, so this thread sleeps instead of spinning while DuckDB's worker runs the
//! rest of a statement (docs/benchmarks.md run 32). That needs a raw connection, so the database
//! is opened through the C API and duckdb-rs connections are made from the same database handle.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::path::Path;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, StructArray};
use arrow::datatypes::SchemaRef;
use arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow::record_batch::RecordBatch;
use duckdb::{ffi, Connection};
use parking_lot::Mutex;

use crate::duck::DIALECT;
use crate::error::{Result, StoreError};

fn c_string(text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| StoreError::Database(format!("a NUL byte in {text:?}")))
}

/// The name the database file is attached under.
const DATABASE: &str = "signet";

/// Rows per row group of the tables in the file (a multiple of DuckDB's 2,048-row vectors; see
/// [`RawDatabase::open`]). Smaller than DuckDB's default so that a projection batch gathered
/// within a few hundred milliseconds of ingest fills one: about 13 % more ingest for a fifth
/// more file and 3-9 ms more in the reports that group every row (docs/benchmarks.md run 45).
/// The projector cuts full batches at whole row groups (`EventStore::batch_rows`, run 46).
/// Row groups written by earlier builds keep their size.
pub const ROW_GROUP_ROWS: usize = 20_480;

/// A database opened through the C API; closed when dropped (connections made from it keep the
/// database itself alive until they are dropped too).
pub(crate) struct RawDatabase {
    handle: ffi::duckdb_database,
    /// The file is attached to an in-memory instance: every connection starts with `USE`.
    attached: bool,
    /// The views Arrow batches are inserted through ([`RawDatabase::add_batch_views`]); each
    /// raw connection holds them too, so they outlive every connection that scans them.
    batch_views: Arc<BatchViews>,
}

// SAFETY: a duckdb_database is a thread-safe handle to a shared database instance.
unsafe impl Send for RawDatabase {}
unsafe impl Sync for RawDatabase {}

impl RawDatabase {
    /// Opens a database file without DuckDB's write-ahead log, or an in-memory database for
    /// `":memory:"`.
    ///
    /// The event log is what makes an acknowledged event durable; the DuckDB file is its
    /// projection, and `applied_position` (written in the same transaction as the rows) says
    /// how far it reaches. DuckDB's WAL wrote every projected row a second time at each commit
    /// (a quarter of the projector's time, docs/benchmarks.md run 26). So the file is attached
    /// with `RECOVERY_MODE NO_WAL_WRITES`: commits live in memory until DuckDB checkpoints
    /// (past `wal_autocheckpoint` worth of changes, after a quiet moment, at shutdown, and at
    /// once after writes the event log cannot redo, see `DuckStore::make_durable`); after a
    /// crash the file opens at its last checkpoint and the engine applies the event log from
    /// that checkpoint's `applied_position` again, as it does for any store behind the log.
    ///
    /// Row groups of [`ROW_GROUP_ROWS`] rather than DuckDB's 122,880: a transaction that
    /// appends at least a row group's worth of rows to a table takes DuckDB's bulk path (its
    /// row groups compressed and written to the file at commit, before the commit takes its
    /// locks, then moved into the table; `LocalStorage::FlushBulkAppendBlocksAndSync`), instead
    /// of copying the rows into the table at commit and compressing them at the next
    /// checkpoint. The projector gathers that many under load
    /// (`IngestConfig::projection_eager_events`).
    pub(crate) fn open(path: &Path) -> Result<RawDatabase> {
        if path == Path::new(":memory:") {
            return Self::open_raw(path);
        }
        let mut database = Self::open_raw(Path::new(":memory:"))?;
        let attach = format!(
            "ATTACH {} AS {DATABASE} (RECOVERY_MODE NO_WAL_WRITES, ROW_GROUP_SIZE {ROW_GROUP_ROWS})",
            DIALECT.quote_str(&path.to_string_lossy())
        );
        // Spills of large queries go where a file database puts them (next to the file), not
        // into the in-memory instance's default (`.tmp` in the working directory).
        let temp = format!("SET temp_directory = {}", DIALECT.quote_str(&format!("{}.tmp", path.to_string_lossy())));
        let setup = database.raw_connection()?;
        setup.execute(&attach).map_err(|e| StoreError::Database(format!("opening {}: {e}", path.display())))?;
        setup.execute(&temp)?;
        drop(setup);
        database.attached = true;
        Ok(database)
    }

    fn open_raw(path: &Path) -> Result<RawDatabase> {
        use std::os::unix::ffi::OsStrExt;
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| StoreError::Database(format!("a NUL byte in {}", path.display())))?;
        let mut db: ffi::duckdb_database = ptr::null_mut();
        let mut error: *mut std::os::raw::c_char = ptr::null_mut();
        // SAFETY: valid pointers; a null config means DuckDB's defaults.
        let state = unsafe { ffi::duckdb_open_ext(c_path.as_ptr(), &mut db, ptr::null_mut(), &mut error) };
        if state != ffi::DuckDBSuccess {
            let message = if error.is_null() {
                "unknown error".to_string()
            } else {
                // SAFETY: DuckDB returns a NUL-terminated message we must free with duckdb_free.
                let text = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
                unsafe { ffi::duckdb_free(error.cast()) };
                text
            };
            return Err(StoreError::Database(format!("opening {}: {message}", path.display())));
        }
        Ok(RawDatabase { handle: db, attached: false, batch_views: Arc::default() })
    }

    /// Makes a view per table that Arrow batches for it are inserted through
    /// ([`RawConnection::insert_arrow`]), before any connection is made. Connections made
    /// earlier cannot insert batches.
    ///
    /// The views are made once, in the instance's own in-memory catalog (`memory`), each over
    /// a stream of this module that yields the batch put in its slot for one `INSERT`. The C
    /// API's `duckdb_arrow_array_scan` instead makes a view per batch, and makes it persistent
    /// (DuckDB refuses one in `temp`): a catalog change in the file's database in every
    /// projection transaction, which takes DuckDB's checkpoint lock for the transaction's
    /// length, so no checkpoint could run beside a projection transaction.
    pub(crate) fn add_batch_views(&mut self, tables: &[(&str, SchemaRef)]) -> Result<()> {
        let mut views = BatchViews::default();
        let setup = self.raw_connection()?;
        // The instance's own catalog, also when a file is attached.
        setup.execute("USE memory")?;
        for (table, schema) in tables {
            let slot = BatchSlot::new(table, schema)?;
            let mut stream = Box::new(slot.stream());
            let name = c_string(&slot.view_name())?;
            // SAFETY: DuckDB keeps a reference to the stream (arrow-c.cpp's CArrowScanFactory)
            // and calls it whenever the view is scanned: both it and its slot live in
            // `BatchViews`, which this database and each of its raw connections hold, and only
            // `insert_arrow` names the view (the store's other connections never do).
            let state = unsafe {
                ffi::duckdb_arrow_scan(setup.handle, name.as_ptr(), (&mut *stream as *mut BatchStream).cast())
            };
            if state != ffi::DuckDBSuccess {
                return Err(StoreError::Database(format!("making the batch view of {table}")));
            }
            views.0.push((slot, stream));
        }
        self.batch_views = Arc::new(views);
        Ok(())
    }

    /// A duckdb-rs connection to this database.
    pub(crate) fn connection(&self) -> Result<Connection> {
        // SAFETY: the handle is open; duckdb-rs does not close a database it did not open.
        let conn = unsafe { Connection::open_from_raw(self.handle) }?;
        if self.attached {
            conn.execute_batch(&format!("USE {DATABASE}"))?;
        }
        Ok(conn)
    }

    /// A connection for the C API calls of this module.
    pub(crate) fn raw_connection(&self) -> Result<RawConnection> {
        let mut con: ffi::duckdb_connection = ptr::null_mut();
        // SAFETY: the database handle is open.
        if unsafe { ffi::duckdb_connect(self.handle, &mut con) } != ffi::DuckDBSuccess {
            return Err(StoreError::Database("connecting to the database failed".into()));
        }
        let conn = RawConnection { handle: con, batch_views: self.batch_views.clone() };
        if self.attached {
            conn.execute(&format!("USE {DATABASE}"))?;
        }
        Ok(conn)
    }
}

impl Drop for RawDatabase {
    fn drop(&mut self) {
        // SAFETY: opened by `open_raw`, closed once.
        unsafe { ffi::duckdb_close(&mut self.handle) };
    }
}

/// A connection used only through the C API.
pub(crate) struct RawConnection {
    handle: ffi::duckdb_connection,
    batch_views: Arc<BatchViews>,
}

// SAFETY: used by one thread at a time (the store keeps it behind its writer mutex).
unsafe impl Send for RawConnection {}

/// How long a statement's thread sleeps while only other threads have work of it. Each sleep
/// is a switch of threads on a busy core: at 100 us the projector woke some thousands of times
/// a second during a commit's append; at 1 ms ingest took about 0.8 us less CPU per sign-in,
/// with visibility unchanged (docs/benchmarks.md run 33; 2 ms was no better).
const TASK_WAIT: Duration = Duration::from_millis(1);

/// A message DuckDB owns; "unknown error" for null.
fn c_message(text: *const std::os::raw::c_char) -> String {
    if text.is_null() {
        return "unknown error".into();
    }
    // SAFETY: a NUL-terminated string owned by a handle that is still alive.
    unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned()
}

impl RawConnection {
    /// Runs one statement, discarding any result.
    ///
    /// Through the pending-result API: DuckDB's own blocking execution loops without waiting
    /// while another thread runs the statement's last tasks (`QueryResult::CompleteInternal`
    /// on `NO_TASKS_AVAILABLE`), which on two cores took CPU from the HTTP threads for as long
    /// as a commit's append ran on DuckDB's worker. Here this thread runs the tasks it gets and
    /// sleeps briefly while the rest run elsewhere.
    pub(crate) fn execute(&self, sql: &str) -> Result<()> {
        let c_sql = c_string(sql)?;
        let mut prepared: ffi::duckdb_prepared_statement = ptr::null_mut();
        let mut pending: ffi::duckdb_pending_result = ptr::null_mut();
        // SAFETY: valid pointers; the handles made here are destroyed below, once each, and the
        // messages read before their handle is.
        unsafe {
            let outcome = if ffi::duckdb_prepare(self.handle, c_sql.as_ptr(), &mut prepared) != ffi::DuckDBSuccess {
                Err(c_message(ffi::duckdb_prepare_error(prepared)))
            } else if ffi::duckdb_pending_prepared(prepared, &mut pending) != ffi::DuckDBSuccess {
                Err(c_message(ffi::duckdb_pending_error(pending)))
            } else {
                Self::complete(pending)
            };
            ffi::duckdb_destroy_pending(&mut pending);
            ffi::duckdb_destroy_prepare(&mut prepared);
            outcome.map_err(StoreError::Database)
        }
    }

    /// Executes a pending statement to its end.
    ///
    /// # Safety
    /// `pending` is a valid pending result, destroyed by the caller.
    unsafe fn complete(pending: ffi::duckdb_pending_result) -> std::result::Result<(), String> {
        loop {
            match ffi::duckdb_pending_execute_task(pending) {
                ffi::duckdb_pending_state_DUCKDB_PENDING_RESULT_READY => break,
                ffi::duckdb_pending_state_DUCKDB_PENDING_RESULT_NOT_READY => {}
                ffi::duckdb_pending_state_DUCKDB_PENDING_NO_TASKS_AVAILABLE => std::thread::sleep(TASK_WAIT),
                _ => return Err(c_message(ffi::duckdb_pending_error(pending))),
            }
        }
        let mut result: ffi::duckdb_result = std::mem::zeroed();
        let outcome = match ffi::duckdb_execute_pending(pending, &mut result) {
            ffi::DuckDBSuccess => Ok(()),
            _ => Err(c_message(ffi::duckdb_result_error(&mut result))),
        };
        ffi::duckdb_destroy_result(&mut result);
        outcome
    }

    /// Inserts `batch` (any number of rows; the table's columns, in order) into `table`, in
    /// the connection's current transaction: DuckDB reads the batch where it is, through the
    /// table's batch view ([`RawDatabase::add_batch_views`]), without copying its strings.
    /// Callers insert from one thread at a time (the store's writer mutex): the view has one
    /// slot.
    pub(crate) fn insert_arrow(&self, table: &str, batch: &RecordBatch) -> Result<()> {
        let Some((slot, _)) = self.batch_views.0.iter().find(|(slot, _)| slot.table == table) else {
            return Err(StoreError::Database(format!("no batch view for table {table}")));
        };
        if batch.schema() != slot.schema {
            return Err(StoreError::Database(format!("a batch for {table} whose columns are not the view's")));
        }
        *slot.batch.lock() = Some(batch.clone());
        let first = batch.schema().fields().first().map(|f| f.name().clone()).unwrap_or_default();
        let outcome = self.execute(&insert_statement(table, &format!("memory.main.{}", slot.view_name()), &first));
        // Not left for the next statement if DuckDB did not read it (an error before the scan).
        slot.batch.lock().take();
        outcome
    }
}

/// The batch views of a database, with the streams DuckDB holds references to.
#[derive(Default)]
struct BatchViews(Vec<(Arc<BatchSlot>, Box<BatchStream>)>);

/// Where a batch waits for the `INSERT` that reads it through a table's view.
struct BatchSlot {
    table: String,
    schema: SchemaRef,
    /// The schema as the C data interface has it, exported once: DuckDB gets bitwise copies
    /// of it. It releases none of them: it clears the root's release callback of every schema
    /// a stream gives it (arrow-c.cpp, `FactoryGetSchema` and `duckdb_arrow_scan`), and a
    /// consumer never releases children itself. An export per scan would leak each one.
    exported: FFI_ArrowSchema,
    /// What the next read of the stream gets, once; then the stream ends.
    batch: Mutex<Option<RecordBatch>>,
}

// SAFETY: `exported` is only read (copied bitwise) after it is made, and released once, by
// its own drop, when no connection can scan the view any more.
unsafe impl Send for BatchSlot {}
unsafe impl Sync for BatchSlot {}

impl BatchSlot {
    fn new(table: &str, schema: &SchemaRef) -> Result<Arc<BatchSlot>> {
        let exported = FFI_ArrowSchema::try_from(schema.as_ref())
            .map_err(|e| StoreError::Database(format!("arrow schema: {e}")))?;
        Ok(Arc::new(BatchSlot { table: table.to_string(), schema: schema.clone(), exported, batch: Mutex::new(None) }))
    }

    fn view_name(&self) -> String {
        format!("signet_batch_{}", self.table)
    }

    /// A stream over this slot; the slot must outlive it.
    fn stream(self: &Arc<Self>) -> BatchStream {
        BatchStream {
            get_schema: Some(batch_stream_schema),
            get_next: Some(batch_stream_next),
            get_last_error: Some(batch_stream_error),
            release: Some(batch_stream_release),
            private_data: Arc::as_ptr(self) as *mut c_void,
        }
    }
}

/// The C stream interface's `ArrowArrayStream`
/// (<https://arrow.apache.org/docs/format/CStreamInterface.html>), over a [`BatchSlot`].
#[repr(C)]
struct BatchStream {
    get_schema: Option<unsafe extern "C" fn(*mut BatchStream, *mut FFI_ArrowSchema) -> c_int>,
    get_next: Option<unsafe extern "C" fn(*mut BatchStream, *mut FFI_ArrowArray) -> c_int>,
    get_last_error: Option<unsafe extern "C" fn(*mut BatchStream) -> *const c_char>,
    release: Option<unsafe extern "C" fn(*mut BatchStream)>,
    private_data: *mut c_void,
}

// SAFETY: callbacks and a pointer to a `BatchSlot`, which is `Sync`; DuckDB may call them from
// any of its threads, and the slot's batch is behind a mutex.
unsafe impl Send for BatchStream {}
unsafe impl Sync for BatchStream {}

/// # Safety
/// `stream` is a [`BatchStream`] (or DuckDB's bitwise copy of one) whose slot is alive.
unsafe fn slot_of<'a>(stream: *mut BatchStream) -> &'a BatchSlot {
    // SAFETY: per the caller; `private_data` is the slot's `Arc` pointer.
    unsafe { &*((*stream).private_data as *const BatchSlot) }
}

unsafe extern "C" fn batch_stream_schema(stream: *mut BatchStream, out: *mut FFI_ArrowSchema) -> c_int {
    // SAFETY: DuckDB passes the stream it was given (or its copy) and room for a schema; the
    // copy shares the slot's export, which DuckDB never releases (see `BatchSlot::exported`).
    unsafe { ptr::copy_nonoverlapping(&slot_of(stream).exported, out, 1) };
    0
}

unsafe extern "C" fn batch_stream_next(stream: *mut BatchStream, out: *mut FFI_ArrowArray) -> c_int {
    // SAFETY: as above; `out` is room for an array that DuckDB owns from here (it releases it).
    let slot = unsafe { slot_of(stream) };
    let array = match slot.batch.lock().take() {
        Some(batch) => FFI_ArrowArray::new(&StructArray::from(batch).into_data()),
        // No release callback: the end of the stream.
        None => FFI_ArrowArray::empty(),
    };
    // SAFETY: `out` is writable and holds nothing to drop.
    unsafe { ptr::write(out, array) };
    0
}

unsafe extern "C" fn batch_stream_error(_stream: *mut BatchStream) -> *const c_char {
    ptr::null()
}

unsafe extern "C" fn batch_stream_release(stream: *mut BatchStream) {
    // The memory is the store's (`BatchViews`); released means no callback any more.
    // SAFETY: DuckDB passes a stream it holds.
    unsafe { (*stream).release = None };
}

/// `INSERT INTO table SELECT * FROM source`, written so that DuckDB appends the rows straight
/// into the transaction's storage.
///
/// A plain `INSERT .. SELECT` from a source that numbers its batches (a table scan, the Arrow
/// scan) runs as DuckDB's `BATCH_INSERT` when DuckDB has more than one thread: the rows are
/// gathered into a collection of their own, and that collection, being smaller than a row
/// group, is copied into the transaction's storage when the statement ends. One more copy of
/// every row, and the commit copies them once again (docs/benchmarks.md run 34). A `UNION ALL
/// BY NAME` with an empty scan of `range(0)` (which numbers no batches) makes it a plain,
/// single-threaded `INSERT`, which appends each chunk to the transaction's storage as it
/// comes. The empty side names one column of the source (`column`), so the union has the
/// source's columns, in order, and adds no rows.
pub(crate) fn insert_statement(table: &str, source: &str, column: &str) -> String {
    format!("INSERT INTO {table} SELECT * FROM {source} UNION ALL BY NAME SELECT NULL AS \"{column}\" FROM range(0)")
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        // SAFETY: connected by `raw_connection`, disconnected once.
        unsafe { ffi::duckdb_disconnect(&mut self.handle) };
    }
}
