//! Storage errors.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("I/O error on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("event log is corrupt at {path} offset {offset}: {reason}")]
    Corrupt { path: String, offset: u64, reason: String },
    #[error("database error: {0}")]
    Database(String),
    /// A remote store did not answer (connection refused or timed out).
    #[error("the store cannot be reached: {0}")]
    Unreachable(String),
    #[error("data directory {path} has layout version {found}, this build reads up to {supported}")]
    UnsupportedVersion { path: String, found: u32, supported: u32 },
    #[error("data directory {path} is in use by another Signet process (a running server?); stop it, or talk to that server with --server URL")]
    Locked { path: String },
    #[error("ingest queue is full; retry after {retry_after_secs} s")]
    Overloaded { retry_after_secs: u64 },
    #[error("the writer stopped after a failed write and accepts nothing until restarted: {0}")]
    WriterFailed(String),
    #[error("the data directory's disk is full ({free_bytes} bytes free, {reserve_bytes} reserved): ingest resumes by itself once space is freed")]
    DiskFull { free_bytes: u64, reserve_bytes: u64 },
    #[error("tamper evidence: {0}")]
    Trust(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Query(#[from] signet_query::QueryError),
}

impl From<duckdb::Error> for StoreError {
    fn from(err: duckdb::Error) -> StoreError {
        StoreError::Database(err.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl AsRef<std::path::Path>) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.as_ref().display().to_string();
    move |source| StoreError::Io { path, source }
}
