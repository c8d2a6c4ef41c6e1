//! DuckDB's C API where duckdb-rs has no fast path: the projection's writes.
//!
//! duckdb-rs' `Appender::append_record_batch` converts Arrow arrays into DuckDB vectors value by
//! value through the C API (one call, one UTF-8 check and one copy per string), which was about
//! half of the projection's time. Here DuckDB converts each Arrow batch itself, column by column
//! and without copying strings (`duckdb_data_chunk_from_arrow`), and appends the chunk
//! (`duckdb_append_data_chunk`). That needs a raw connection, so the database is opened through
//! the C API and duckdb-rs connections are made from the same database handle.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr;

use arrow::array::{Array, StructArray};
use arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow::record_batch::RecordBatch;
use duckdb::{ffi, Connection};

use crate::duck::DIALECT;
use crate::error::{Result, StoreError};

/// Rows per DuckDB data chunk (DuckDB's vector size).
pub(crate) const CHUNK_ROWS: usize = 2048;

fn c_string(text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| StoreError::Database(format!("a NUL byte in {text:?}")))
}

/// The name the database file is attached under.
const DATABASE: &str = "signet";

/// A database opened through the C API; closed when dropped (connections made from it keep the
/// database itself alive until they are dropped too).
pub(crate) struct RawDatabase {
    handle: ffi::duckdb_database,
    /// The file is attached to an in-memory instance: every connection starts with `USE`.
    attached: bool,
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
    pub(crate) fn open(path: &Path) -> Result<RawDatabase> {
        if path == Path::new(":memory:") {
            return Self::open_raw(path);
        }
        let mut database = Self::open_raw(Path::new(":memory:"))?;
        let attach = format!(
            "ATTACH {} AS {DATABASE} (RECOVERY_MODE NO_WAL_WRITES)",
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
        Ok(RawDatabase { handle: db, attached: false })
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
        let conn = RawConnection(con);
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
pub(crate) struct RawConnection(ffi::duckdb_connection);

// SAFETY: used by one thread at a time (the store keeps it behind its writer mutex).
unsafe impl Send for RawConnection {}

impl RawConnection {
    /// Runs one or more statements, discarding any result.
    pub(crate) fn execute(&self, sql: &str) -> Result<()> {
        let c_sql = c_string(sql)?;
        // SAFETY: duckdb_result is a plain C struct DuckDB fills; destroyed below either way.
        let mut result: ffi::duckdb_result = unsafe { std::mem::zeroed() };
        let state = unsafe { ffi::duckdb_query(self.0, c_sql.as_ptr(), &mut result) };
        let outcome = if state == ffi::DuckDBSuccess {
            Ok(())
        } else {
            let error = unsafe { ffi::duckdb_result_error(&mut result) };
            let message = if error.is_null() {
                "unknown error".to_string()
            } else {
                unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned()
            };
            Err(StoreError::Database(message))
        };
        unsafe { ffi::duckdb_destroy_result(&mut result) };
        outcome
    }

    /// An appender for `table`, inside the connection's current transaction.
    pub(crate) fn appender(&self, table: &str) -> Result<ArrowAppender<'_>> {
        let c_table = c_string(table)?;
        let mut appender: ffi::duckdb_appender = ptr::null_mut();
        // SAFETY: valid pointers; the appender is destroyed by ArrowAppender's Drop.
        let state = unsafe { ffi::duckdb_appender_create(self.0, ptr::null(), c_table.as_ptr(), &mut appender) };
        let appender = ArrowAppender { connection: self, appender, converted: ptr::null_mut() };
        if state != ffi::DuckDBSuccess {
            return Err(appender.error(&format!("creating an appender for {table}")));
        }
        Ok(appender)
    }
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        // SAFETY: connected by `raw_connection`, disconnected once.
        unsafe { ffi::duckdb_disconnect(&mut self.0) };
    }
}

/// Appends Arrow record batches of one schema to one table.
pub(crate) struct ArrowAppender<'c> {
    connection: &'c RawConnection,
    appender: ffi::duckdb_appender,
    /// DuckDB's reading of the batches' Arrow schema, made at the first batch.
    converted: ffi::duckdb_arrow_converted_schema,
}

/// The message of a DuckDB error data object, which is destroyed.
fn take_error(mut error: ffi::duckdb_error_data) -> Option<String> {
    if error.is_null() {
        return None;
    }
    // SAFETY: a valid error data object, destroyed once here.
    unsafe {
        let message = ffi::duckdb_error_data_has_error(error).then(|| {
            let text = ffi::duckdb_error_data_message(error);
            if text.is_null() {
                "unknown error".to_string()
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        });
        ffi::duckdb_destroy_error_data(&mut error);
        message
    }
}

impl ArrowAppender<'_> {
    fn error(&self, doing: &str) -> StoreError {
        let message = if self.appender.is_null() {
            None
        } else {
            // SAFETY: a valid appender.
            take_error(unsafe { ffi::duckdb_appender_error_data(self.appender) })
        };
        StoreError::Database(format!("{doing}: {}", message.unwrap_or_else(|| "unknown error".into())))
    }

    /// Appends a batch of at most [`CHUNK_ROWS`] rows whose columns are the table's, in order.
    pub(crate) fn append(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() > CHUNK_ROWS {
            return Err(StoreError::Database(format!(
                "an Arrow chunk of {} rows (at most {CHUNK_ROWS})",
                batch.num_rows()
            )));
        }
        if self.converted.is_null() {
            let mut schema = FFI_ArrowSchema::try_from(batch.schema().as_ref())
                .map_err(|e| StoreError::Database(format!("arrow schema: {e}")))?;
            // SAFETY: the FFI schema outlives the call; DuckDB copies what it needs into
            // `converted`, which is destroyed by Drop.
            let error = unsafe {
                ffi::duckdb_schema_from_arrow(
                    self.connection.0,
                    (&mut schema as *mut FFI_ArrowSchema).cast(),
                    &mut self.converted,
                )
            };
            if let Some(message) = take_error(error) {
                return Err(StoreError::Database(format!("arrow schema: {message}")));
            }
        }
        let data = StructArray::from(batch.clone()).into_data();
        let mut array = FFI_ArrowArray::new(&data);
        let mut chunk: ffi::duckdb_data_chunk = ptr::null_mut();
        // SAFETY: DuckDB takes ownership of the array (it clears `release`, so dropping `array`
        // afterwards frees nothing) and keeps its buffers alive as long as the chunk needs them.
        let error = unsafe {
            ffi::duckdb_data_chunk_from_arrow(
                self.connection.0,
                (&mut array as *mut FFI_ArrowArray).cast(),
                self.converted,
                &mut chunk,
            )
        };
        if let Some(message) = take_error(error) {
            return Err(StoreError::Database(format!("arrow chunk: {message}")));
        }
        // SAFETY: a valid appender and chunk; the chunk is destroyed right after.
        let state = unsafe { ffi::duckdb_append_data_chunk(self.appender, chunk) };
        unsafe { ffi::duckdb_destroy_data_chunk(&mut chunk) };
        if state != ffi::DuckDBSuccess {
            return Err(self.error("appending a chunk"));
        }
        Ok(())
    }

    /// Writes what was appended into the transaction.
    pub(crate) fn close(self) -> Result<()> {
        // SAFETY: a valid appender; Drop destroys it.
        if unsafe { ffi::duckdb_appender_close(self.appender) } != ffi::DuckDBSuccess {
            return Err(self.error("closing an appender"));
        }
        Ok(())
    }
}

impl Drop for ArrowAppender<'_> {
    fn drop(&mut self) {
        // SAFETY: each handle is valid or null, and destroyed once.
        unsafe {
            if !self.converted.is_null() {
                ffi::duckdb_destroy_arrow_converted_schema(&mut self.converted);
            }
            if !self.appender.is_null() {
                ffi::duckdb_appender_destroy(&mut self.appender);
            }
        }
    }
}
