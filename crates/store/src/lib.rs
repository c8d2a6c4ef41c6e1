//! Signet's storage: the durable event log, the `EventStore` trait with its conformance suite,
//! and the embedded DuckDB engine.
//!
//! # Layout
//! - [`disk`]: free-space guard: ingest refused below a reserve, warnings at thresholds.
//! - [`log`]: the append-only, compressed, checksummed event log (the source of truth).
//! - [`engine`]: the [`EventStore`] trait every column store implements.
//! - [`duck`]: the DuckDB implementation (the embedded default).
//! - [`clickhouse`]: the ClickHouse implementation (scale-out), over its HTTP interface.
//! - [`ingest`]: the write path: bounded queue, group commit, projection into the store.
//! - [`ledger`]: tamper evidence: per-organisation Merkle trees over the log, signed heads.
//! - [`verify`]: `signet verify`: recomputes everything from the files and names what is wrong.
//! - [`conformance`]: the test suite every `EventStore` must pass.
//! - [`Engine`] (here): opens a data directory, recovers, and ties the pieces together.
//!
//! # Data directory (layout version 1)
//! ```text
//! DATA/VERSION          {"layout": 1}
//! DATA/log/*.seg        the event log (see [`log`])
//! DATA/trust/           signing key, signed heads, Merkle trees (see [`ledger`])
//! DATA/signet.duckdb    the DuckDB projection (rebuildable from the log)
//! ```

pub mod archive;
pub mod clickhouse;
pub mod conformance;
pub mod disk;
pub mod duck;
pub mod engine;
pub mod error;
pub mod ingest;
pub mod ledger;
pub mod log;
pub mod verify;
mod versions;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use signet_model::{normalize_shared, LogKind};
use tracing::{info, warn};

pub use engine::{
    record_columns, scan_with, ArchivedPart, EventStore, ExpiryCandidate, RecordRef, RevisionRef, StoredEvent,
};
pub use error::{Result, StoreError};
pub use ingest::{Admission, IngestConfig, IngestMetrics, Outcome, Pipeline};
pub use ledger::{Ledger, TrustConfig};
pub use log::{EventLog, LogRecord, RecordPtr};

/// Layout version of the data directory this build writes and reads.
pub const LAYOUT_VERSION: u32 = 1;

/// An opened data directory: log + store + write path.
pub struct Engine {
    /// Held for the engine's lifetime: one process per data directory.
    _lock: std::fs::File,
    data_dir: PathBuf,
    log: Arc<EventLog>,
    store: Arc<dyn EventStore>,
    pipeline: Pipeline,
    /// The version index's snapshots (see `versions`).
    snapshots: Arc<versions::Snapshots>,
    ledger: Arc<Ledger>,
    disk: disk::DiskGuard,
    head_timer: parking_lot::Mutex<Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    closed: std::sync::atomic::AtomicBool,
}

/// One event with all its revisions, newest last.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetail {
    pub kind: LogKind,
    pub id: String,
    pub revisions: Vec<RevisionDetail>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionDetail {
    pub revision: u32,
    pub received_date_time: String,
    pub content_hash: String,
    /// The record as served by the Graph-compatible API.
    pub body: serde_json::Value,
    /// The source record, when an importer reshaped it.
    pub original: Option<serde_json::Value>,
}

/// Takes the data directory's lock file, so that two processes never write one event log (or
/// one account store). Held until the file is dropped.
pub fn lock_data_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(error::io_err(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path: dir.display().to_string() }),
        Err(std::fs::TryLockError::Error(e)) => Err(error::io_err(&path)(e)),
    }
}

fn check_layout(dir: &Path) -> Result<()> {
    let path = dir.join("VERSION");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                path: path.display().to_string(),
                offset: 0,
                reason: e.to_string(),
            })?;
            let found = value.get("layout").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
            if found > LAYOUT_VERSION || found == 0 {
                return Err(StoreError::UnsupportedVersion {
                    path: path.display().to_string(),
                    found,
                    supported: LAYOUT_VERSION,
                });
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&path, format!("{{\"layout\": {LAYOUT_VERSION}}}\n")).map_err(error::io_err(&path))
        }
        Err(err) => Err(error::io_err(&path)(err)),
    }
}

impl Engine {
    /// Opens or creates a data directory with the embedded DuckDB store; heads are signed at
    /// shutdown only (see [`Engine::open_with`]).
    pub fn open(data_dir: impl Into<PathBuf>, config: IngestConfig) -> Result<Engine> {
        Engine::open_with(data_dir, config, &TrustConfig::default())
    }

    /// Opens or creates a data directory with the embedded DuckDB store.
    pub fn open_with(data_dir: impl Into<PathBuf>, config: IngestConfig, trust: &TrustConfig) -> Result<Engine> {
        let data_dir = data_dir.into();
        std::fs::create_dir_all(&data_dir).map_err(error::io_err(&data_dir))?;
        check_layout(&data_dir)?;
        let lock = lock_data_dir(&data_dir)?;
        let store: Arc<dyn EventStore> = Arc::new(duck::DuckStore::open(&data_dir.join("signet.duckdb"))?);
        Engine::open_locked(lock, data_dir, store, config, trust)
    }

    /// Opens a data directory's event log with any store (e.g. ClickHouse), replaying what the
    /// store lacks.
    pub fn open_with_store(
        data_dir: PathBuf,
        store: Arc<dyn EventStore>,
        config: IngestConfig,
        trust: &TrustConfig,
    ) -> Result<Engine> {
        std::fs::create_dir_all(&data_dir).map_err(error::io_err(&data_dir))?;
        check_layout(&data_dir)?;
        let lock = lock_data_dir(&data_dir)?;
        Engine::open_locked(lock, data_dir, store, config, trust)
    }

    fn open_locked(
        lock: std::fs::File,
        data_dir: PathBuf,
        store: Arc<dyn EventStore>,
        config: IngestConfig,
        trust: &TrustConfig,
    ) -> Result<Engine> {
        let log = Arc::new(EventLog::open(data_dir.join("log"))?);
        log.set_segment_target(config.segment_bytes);
        let ledger = Arc::new(Ledger::open(&data_dir, &log, trust)?);
        // A remote store that is down does not keep the node from starting: it acknowledges
        // into its log, and the projector applies the backlog once the store answers.
        let (replayed, (index, uncovered)) = match replay(&log, &*store) {
            Ok(replayed) => (Some(replayed), versions::VersionIndex::load(&data_dir, &*store, log.end())?),
            Err(StoreError::Unreachable(why)) if config.lag_in_log => {
                warn!(backend = store.backend(), error = %why, "the store is unreachable; starting from the event log, the projection catches up when it answers");
                (None, versions::VersionIndex::load_from_log(&data_dir, &log)?)
            }
            Err(err) => return Err(err),
        };
        info!(backend = store.backend(), replayed, ids = index.len(), "storage ready");
        let metrics = Arc::new(IngestMetrics::default());
        let snapshots = versions::Snapshots::new(&data_dir, config.disk.reserve_bytes);
        let schedule = snapshots.schedule(&index, uncovered);
        let pipeline = ingest::Pipeline::start(
            log.clone(),
            store.clone(),
            ledger.clone(),
            (index, schedule),
            replayed.map(|_| log.end()),
            config.clone(),
            metrics,
        );
        let head_timer = trust.head_interval.map(|interval| start_head_timer(ledger.clone(), interval));
        let disk = disk::DiskGuard::new(data_dir.clone(), config.disk.clone());
        Ok(Engine {
            _lock: lock,
            data_dir,
            log,
            store,
            pipeline,
            snapshots,
            ledger,
            disk,
            head_timer: parking_lot::Mutex::new(head_timer),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The free-space guard of the data directory (checked before ingest).
    pub fn disk(&self) -> &disk::DiskGuard {
        &self.disk
    }

    /// The tamper-evidence ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn log(&self) -> &Arc<EventLog> {
        &self.log
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Forgets the revisions `parts` hold ([`EventStore::forget`]). The running version index
    /// still counts them as duplicates until the next start, so its snapshot is removed first
    /// and not saved again by this process: the next start reads the index from the store.
    pub fn forget(&self, parts: &[ArchivedPart]) -> Result<u64> {
        self.snapshots.stop()?;
        self.store.forget(parts)
    }

    /// Waits until every acknowledged event is visible to queries.
    pub fn wait_visible(&self, timeout: Duration) -> bool {
        self.pipeline.wait_projected(self.log.end(), timeout)
    }

    /// The record at `ptr`: from the event log, or, when its segment was cut after archiving,
    /// from the archive.
    pub fn record(&self, ptr: RecordPtr) -> Result<LogRecord> {
        if ptr.frame_pos >= self.log.start() {
            return self.log.read(ptr);
        }
        self.store.archived_record(ptr)?.ok_or_else(|| StoreError::Corrupt {
            path: self.log.dir().display().to_string(),
            offset: ptr.frame_pos,
            reason: "the record's log segment was cut and no archive part holds it (deleted at the end of its \
                     archive period?)"
                .into(),
        })
    }

    /// The records of listed rows, in order: this node's from its event log (or the archive),
    /// other nodes' from the store they share (one query for all of them).
    pub fn records(&self, org: &str, kind: LogKind, refs: &[RecordRef]) -> Result<Vec<LogRecord>> {
        let foreign: Vec<&RecordRef> = refs.iter().filter(|r| r.node.is_some()).collect();
        let mut fetched =
            if foreign.is_empty() { Vec::new() } else { self.store.foreign_records(org, kind, &foreign)? }.into_iter();
        refs.iter()
            .map(|r| match &r.node {
                None => self.record(r.ptr),
                Some(node) => fetched.next().flatten().ok_or_else(|| {
                    StoreError::Database(format!(
                        "{} {} revision at {}:{} of node {node}'s event log: the {} store does not hold its record",
                        kind.as_str(),
                        r.id,
                        r.ptr.frame_pos,
                        r.ptr.index,
                        self.store.backend()
                    ))
                }),
            })
            .collect()
    }

    /// The Graph-shaped bodies of listed rows, in order (see [`Engine::records`]).
    pub fn bodies(&self, org: &str, kind: LogKind, refs: &[RecordRef]) -> Result<Vec<Vec<u8>>> {
        Ok(self.records(org, kind, refs)?.into_iter().map(|r| r.body.into()).collect())
    }

    /// The record of one revision (see [`Engine::records`]).
    pub fn revision_record(&self, org: &str, kind: LogKind, id: &str, revision: &RevisionRef) -> Result<LogRecord> {
        let mut records = self.records(org, kind, &[revision.record_ref(id)])?;
        records.pop().ok_or_else(|| StoreError::Database("no record".into()))
    }

    /// The stored body of an event's latest revision, byte for byte, or `None`.
    pub fn latest_body(&self, org: &str, kind: LogKind, id: &str) -> Result<Option<Vec<u8>>> {
        match self.store.revisions(org, kind, id)?.last() {
            Some(latest) => Ok(Some(self.revision_record(org, kind, id, latest)?.body.into())),
            None => Ok(None),
        }
    }

    /// An event with every revision, or `None`.
    pub fn detail(&self, org: &str, kind: LogKind, id: &str) -> Result<Option<EventDetail>> {
        let revisions = self.store.revisions(org, kind, id)?;
        if revisions.is_empty() {
            return Ok(None);
        }
        let refs: Vec<RecordRef> = revisions.iter().map(|r| r.record_ref(id)).collect();
        let records = self.records(org, kind, &refs)?;
        let mut out = Vec::with_capacity(revisions.len());
        for (r, record) in revisions.into_iter().zip(records) {
            let parse = |bytes: &[u8]| serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null);
            out.push(RevisionDetail {
                revision: r.revision,
                received_date_time: signet_model::time::format_time(r.received_us),
                content_hash: format!("{:016x}", r.content_hash),
                body: parse(&record.body),
                original: record.original.as_deref().map(parse),
            });
        }
        Ok(Some(EventDetail { kind, id: id.to_string(), revisions: out }))
    }

    /// Stops the write path after applying everything queued, and signs the final heads.
    pub fn shutdown(&self) {
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        self.pipeline.shutdown();
        if let Some((stop, handle)) = self.head_timer.lock().take() {
            drop(stop);
            let _ = handle.join();
        }
        if let Err(err) = self.ledger.close() {
            tracing::warn!(error = %err, "no final tree heads were signed at shutdown");
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Signs heads every `interval` until the sender is dropped.
fn start_head_timer(
    ledger: Arc<Ledger>,
    interval: Duration,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("signet-heads".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                if let Err(err) = ledger.sign_heads(None) {
                    tracing::warn!(error = %err, "signing tree heads failed");
                }
            }
        })
        .expect("spawn head thread");
    (tx, handle)
}

/// A logged record as the store applies it (normalised again from its stored body).
/// The store's view of a logged record; `keep_record`: with its body and original (for stores
/// that keep them, [`EventStore::keeps_records`]).
pub(crate) fn stored_event(ptr: RecordPtr, record: &LogRecord, keep_record: bool) -> Result<StoredEvent> {
    let mut event = normalize_shared(record.kind, &record.body, None).map_err(|e| StoreError::Corrupt {
        path: "log".into(),
        offset: ptr.frame_pos,
        reason: format!("logged record {} no longer normalises: {e}", record.id),
    })?;
    event.content_hash = record.content_hash;
    event.time_us = record.time_us;
    if keep_record {
        event.body = record.body.clone();
        event.original = record.original.clone();
    } else {
        event.body = bytes::Bytes::new();
        event.original = None;
    }
    Ok(StoredEvent { org: record.org.clone(), revision: record.revision, received_us: record.received_us, ptr, event })
}

/// Applies to the store whatever the log holds beyond the store's applied position.
pub(crate) fn replay(log: &EventLog, store: &dyn EventStore) -> Result<usize> {
    let applied = store.applied_position()?;
    if applied >= log.end() {
        return Ok(0);
    }
    info!(from = applied, to = log.end(), "replaying the event log into the store");
    let mut total = 0;
    let keep = store.keeps_records();
    log.scan(applied, 50_000, |batch, through| {
        let events = batch.iter().map(|(ptr, record)| stored_event(*ptr, record, keep)).collect::<Result<Vec<_>>>()?;
        total += events.len();
        store.apply(&events, through)
    })?;
    Ok(total)
}
