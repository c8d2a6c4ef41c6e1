//! The archive: events that leave the hot store are first written here, as Parquet files
//! partitioned by organisation, log kind and day, each with a manifest that makes it verifiable
//! on its own terms.
//!
//! ```text
//! ARCHIVE/<org>/<log>/<YYYY-MM-DD>/part-<first log position, 20 digits>.parquet
//! ARCHIVE/<org>/<log>/<YYYY-MM-DD>/part-<first log position, 20 digits>.json   (the manifest)
//! ```
//! `<log>` is `signins`, `directory-audits`, `activities` or `access-log`: Signet's own access
//! log (activities with `RecordType` `SignetAccess`) has its own retention and its own parts.
//! A part holds every revision of the events it archives, in log order: the kind's typed
//! columns (so DuckDB queries it in place, like the hot table), `latest` (the revision lists
//! show), `leaf` (the record's index in its organisation's Merkle tree), and `body` /
//! `original`: the record byte for byte, so its leaf hash can be recomputed. The manifest holds
//! the row count, time range, log position range, the SHA-256 of the Parquet file, the SHA-256
//! of the rows' leaf hashes, and the signed tree head that covers every row.
//!
//! Expiry ([`expire`]) is idempotent and crash-safe: a part is written to a temporary file,
//! fsync'd and renamed, then its manifest; only then are the rows removed from the hot table,
//! by a delete that takes exactly the rows the partition's parts hold. A crash before the
//! manifest leaves a temporary or unlisted file that the next run deletes; a crash after it
//! leaves rows both archived and hot, which the next run recognises (it skips records already
//! in a part) and removes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryBuilder, BooleanBuilder, Int64Builder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use signet_model::schema::{self, Column};
use signet_model::LogKind;
use signet_query::ast::{Bucket, Zone};
use signet_query::{AggQuery, CmpOp, Expr, GroupBy, Literal, Measure};
use signet_trust::SignedHead;
use tracing::{info, warn};

use crate::engine::{ArchivedPart, StoredEvent};
use crate::error::{io_err, Result, StoreError};
use crate::ledger::{leaf_of, org_dir_name};
use crate::log::{LogRecord, RecordPtr};
use crate::Engine;

pub mod remote;
mod restore;
mod verify;
pub use remote::{ObjectStoreSettings, Remote};
pub use restore::{attach, restore, RestoreReport};
use restore::{clear_pending, pending_path, Pending};
pub use verify::{read_part, read_part_records, verify_archive, ArchiveProblem, ArchivedRecord};

pub const MANIFEST_FORMAT: u32 = 1;

/// The logs retention keeps apart: the three kinds, and Signet's own access log, which is
/// stored as activities but often has to be kept on other terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArchiveLog {
    SignIns,
    DirectoryAudits,
    Activities,
    AccessLog,
}

impl ArchiveLog {
    pub const ALL: [ArchiveLog; 4] =
        [ArchiveLog::SignIns, ArchiveLog::DirectoryAudits, ArchiveLog::Activities, ArchiveLog::AccessLog];

    pub fn kind(self) -> LogKind {
        match self {
            ArchiveLog::SignIns => LogKind::SignIn,
            ArchiveLog::DirectoryAudits => LogKind::DirectoryAudit,
            ArchiveLog::Activities | ArchiveLog::AccessLog => LogKind::Activity,
        }
    }

    /// The name in paths and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveLog::AccessLog => "access-log",
            other => other.kind().as_str(),
        }
    }

    pub fn parse(text: &str) -> Option<ArchiveLog> {
        ArchiveLog::ALL.into_iter().find(|l| l.as_str() == text)
    }

    /// The events of the log among its kind's.
    pub fn filter(self) -> Expr {
        let access = || {
            let column = schema::find_column(LogKind::Activity, "record_type").expect("activities have a RecordType");
            Expr::Compare {
                column,
                op: CmpOp::Eq,
                value: Literal::Str(signet_model::activity::SIGNET_ACCESS_RECORD_TYPE.to_string()),
            }
        };
        match self {
            ArchiveLog::SignIns | ArchiveLog::DirectoryAudits => Expr::True,
            ArchiveLog::Activities => Expr::NotTrue(Box::new(access())),
            ArchiveLog::AccessLog => access(),
        }
    }

    fn of(manifest: &Manifest) -> Option<ArchiveLog> {
        match &manifest.log {
            Some(log) => ArchiveLog::parse(log),
            None => ArchiveLog::ALL.into_iter().find(|l| l.as_str() == manifest.kind),
        }
    }
}
const DAY_US: i64 = 86_400_000_000;

/// What one part holds, written beside it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub organization: String,
    /// `signins`, `directory-audits` or `activities`.
    pub kind: String,
    /// The log within the kind: the kind's name, or `access-log` for Signet's own.
    #[serde(default)]
    pub log: Option<String>,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// The Parquet file's name, in the same directory.
    pub file: String,
    pub rows: u64,
    /// Rows that are the latest revision of their event (what lists and reports count).
    pub latest_rows: u64,
    pub min_time: String,
    pub max_time: String,
    pub min_time_us: i64,
    pub max_time_us: i64,
    /// Event log positions of the first and last row's frame.
    pub first_position: u64,
    pub last_position: u64,
    /// SHA-256 of the Parquet file, hex.
    pub sha256: String,
    /// SHA-256 over the rows' Merkle leaf hashes in row order, hex.
    pub leaves_sha256: String,
    /// A signed head of the organisation's tree covering every row.
    pub head: SignedHead,
    pub created: String,
}

/// A restored partition: back in the hot store, its parts not read by queries, and left alone
/// by expiry, until `until`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RestoreHold {
    pub until: String,
    pub until_us: i64,
    pub restored: String,
}

const HOLD_FILE: &str = "restored-until.json";

/// One retention rule, resolved for an organisation and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Days an event stays in the hot store (by event time, whole UTC days).
    pub hot_days: u32,
    /// Days it is then kept in the archive before it is deleted (`None`: for ever).
    pub archive_days: Option<u32>,
    /// Nothing moves or is deleted while set.
    pub legal_hold: bool,
}

/// What one expiry run did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryReport {
    pub started: String,
    pub now: String,
    pub partitions: Vec<PartitionReport>,
    /// Parts deleted because their archive period ended.
    pub deleted_parts: Vec<String>,
    /// Organisation/kind pairs skipped because of a legal hold.
    pub held: Vec<String>,
    /// Leftovers of an interrupted run removed (files without a manifest).
    pub leftovers_removed: Vec<String>,
    /// Event log segments deleted because every record in them is archived (start positions).
    pub log_segments_cut: Vec<u64>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionReport {
    pub organization: String,
    pub kind: String,
    pub day: String,
    /// Revisions written to a new part (0 when an earlier run had written them).
    pub archived: u64,
    /// Rows removed from the hot store.
    pub removed: u64,
    pub part: Option<String>,
}

/// The archive: a directory, and optionally its copy of record in an object store (the
/// directory is then the working copy queries read).
#[derive(Clone, Debug)]
pub struct Archive {
    root: PathBuf,
    remote: Option<Arc<Remote>>,
}

/// What [`Archive::sync`] copied.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// Parts fetched from the object store into the directory.
    pub downloaded: Vec<String>,
    /// Parts of the directory the object store lacked, uploaded.
    pub uploaded: Vec<String>,
}

fn day_string(day_us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(day_us).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

fn parse_day(day: &str) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

/// Start of the UTC day holding `time_us`.
pub fn day_start(time_us: i64) -> i64 {
    time_us.div_euclid(DAY_US) * DAY_US
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io_err(path))?;
    Ok(hex::encode(hasher.finalize()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Writes a file durably under its final name (temporary file, fsync, rename, fsync of the
/// directory).
fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes).and_then(|_| file.sync_all()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

impl Archive {
    pub fn new(root: impl Into<PathBuf>) -> Archive {
        Archive { root: root.into(), remote: None }
    }

    /// An archive kept in an object store, with `root` as its local working copy.
    pub fn with_remote(root: impl Into<PathBuf>, remote: Remote) -> Archive {
        Archive { root: root.into(), remote: Some(Arc::new(remote)) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_deref()
    }

    /// A path of the directory as an object key relative to the store's prefix.
    fn rel(&self, path: &Path) -> String {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
    }

    /// Makes the directory and the object store hold the same parts: parts only in the store
    /// (another node archived them, or the directory is new) are downloaded and checked against
    /// their manifest's SHA-256; parts only in the directory (archived before the store was
    /// configured) are uploaded, part before manifest. Idempotent; a no-op without a store.
    pub fn sync(&self) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let Some(remote) = self.remote.as_deref() else { return Ok(report) };
        let objects: std::collections::BTreeSet<String> = archive_objects(remote)?.into_iter().collect();
        let local: BTreeMap<String, (PathBuf, Manifest)> =
            self.manifests()?.into_iter().map(|(path, m)| (self.rel(&path), (path, m))).collect();
        for rel in objects.iter().filter(|r| r.ends_with(".json") && !local.contains_key(*r)) {
            let Some(bytes) = remote.get_bytes(rel)? else { continue };
            let manifest = parse_manifest(&remote.describe(rel), &bytes)?;
            let path = self.root.join(rel);
            let dir = path.parent().unwrap_or(&self.root).to_path_buf();
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            let part = path.with_file_name(&manifest.file);
            let part_rel = self.rel(&part);
            let digest = remote.download(&part_rel, &part)?;
            if digest != manifest.sha256 {
                let _ = std::fs::remove_file(&part);
                return Err(StoreError::Corrupt {
                    path: remote.describe(&part_rel),
                    offset: 0,
                    reason: format!("its SHA-256 is {digest}, its manifest says {}", manifest.sha256),
                });
            }
            sync_dir(&dir)?;
            write_durably(&path, &bytes)?;
            info!(part = %remote.describe(&part_rel), rows = manifest.rows, "archive part fetched from the object store");
            report.downloaded.push(part_rel);
        }
        for (rel, (path, manifest)) in &local {
            if objects.contains(rel) {
                continue;
            }
            let part = path.with_file_name(&manifest.file);
            remote.put_file(&self.rel(&part), &part)?;
            remote.put_bytes(rel, std::fs::read(path).map_err(io_err(path))?)?;
            info!(part = %remote.describe(&self.rel(&part)), "archive part uploaded to the object store");
            report.uploaded.push(self.rel(&part));
        }
        Ok(report)
    }

    fn partition_dir(&self, org: &str, log: ArchiveLog, day_us: i64) -> PathBuf {
        self.root.join(org_dir_name(org)).join(log.as_str()).join(day_string(day_us))
    }

    /// Every part with its manifest, oldest day first. Unreadable manifests are errors.
    pub fn manifests(&self) -> Result<Vec<(PathBuf, Manifest)>> {
        let mut out = Vec::new();
        if !self.root.is_dir() {
            return Ok(out);
        }
        for org in read_dirs(&self.root)? {
            for kind in read_dirs(&org)? {
                for day in read_dirs(&kind)? {
                    for entry in std::fs::read_dir(&day).map_err(io_err(&day))? {
                        let path = entry.map_err(io_err(&day))?.path();
                        let is_hold = path.file_name().is_some_and(|n| n == HOLD_FILE);
                        if path.extension().is_some_and(|e| e == "json") && !is_hold {
                            let bytes = std::fs::read(&path).map_err(io_err(&path))?;
                            let manifest = parse_manifest(&path.display().to_string(), &bytes)?;
                            out.push((path, manifest));
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.1.day, &a.1.organization, &a.1.kind, a.1.first_position).cmp(&(
                &b.1.day,
                &b.1.organization,
                &b.1.kind,
                b.1.first_position,
            ))
        });
        Ok(out)
    }

    /// Every part at `now_us`; those of restored partitions are not `queried`.
    pub fn parts_at(&self, now_us: i64) -> Result<Vec<ArchivedPart>> {
        let mut out = Vec::new();
        for (path, m) in self.manifests()? {
            let dir = path.parent().unwrap_or(Path::new("."));
            let restored = hold(dir)?.is_some_and(|h| h.until_us > now_us);
            out.extend(part_of(&path, &m).map(|p| ArchivedPart { queried: !restored, ..p }));
        }
        Ok(out)
    }

    /// The parts as queries see them now.
    pub fn parts(&self) -> Result<Vec<ArchivedPart>> {
        self.parts_at(signet_model::time::now_micros())
    }
}

/// The archive's objects under the store's prefix, as paths relative to it: only keys of the
/// archive's layout (`<org>/<log>/<YYYY-MM-DD>/part-<position>.parquet|json`), so that anything
/// else kept under the same prefix (exports, someone's notes) is neither taken for a part nor
/// deleted as a leftover.
fn archive_objects(remote: &Remote) -> Result<Vec<String>> {
    let is_archive_key = |key: &str| {
        let parts: Vec<&str> = key.split('/').collect();
        let [_, log, day, file] = parts.as_slice() else { return false };
        let stem = file.strip_suffix(".parquet").or_else(|| file.strip_suffix(".json"));
        let position = stem.and_then(|s| s.strip_prefix("part-"));
        ArchiveLog::parse(log).is_some()
            && parse_day(day).is_some()
            && position.is_some_and(|p| p.len() == 20 && p.bytes().all(|b| b.is_ascii_digit()))
    };
    Ok(remote.list()?.into_iter().filter(|key| is_archive_key(key)).collect())
}

fn parse_manifest(what: &str, bytes: &[u8]) -> Result<Manifest> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        path: what.to_string(),
        offset: 0,
        reason: format!("not an archive manifest: {e}"),
    })
}

fn part_of(manifest_path: &Path, m: &Manifest) -> Option<ArchivedPart> {
    Some(ArchivedPart {
        org: m.organization.clone(),
        kind: LogKind::parse(&m.kind)?,
        day_us: parse_day(&m.day)?,
        min_time_us: m.min_time_us,
        max_time_us: m.max_time_us,
        first_position: m.first_position,
        last_position: m.last_position,
        path: manifest_path.with_file_name(&m.file),
        queried: true,
    })
}

/// The restore hold of a partition directory, if any.
fn hold(dir: &Path) -> Result<Option<RestoreHold>> {
    let path = dir.join(HOLD_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| StoreError::Corrupt {
            path: path.display().to_string(),
            offset: 0,
            reason: e.to_string(),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_err(&path)(err)),
    }
}

fn read_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The Parquet columns beyond the kind's typed ones.
fn extra_fields() -> Vec<Field> {
    vec![
        Field::new("latest", DataType::Boolean, false),
        Field::new("leaf", DataType::Int64, false),
        Field::new("body", DataType::Binary, false),
        Field::new("original", DataType::Binary, true),
    ]
}

/// One record on its way into a part.
struct Row {
    stored: StoredEvent,
    record: LogRecord,
    latest: bool,
    leaf: u64,
}

/// Reads records from the log with what a part stores beside them.
fn read_rows(engine: &Engine, org: &str, kind: LogKind, pointers: &[(RecordPtr, bool)]) -> Result<Vec<Row>> {
    let mut rows = Vec::with_capacity(pointers.len());
    for &(ptr, latest) in pointers {
        let record = engine.log().read(ptr)?;
        let leaf = engine.ledger().leaf_index(org, ptr)?.ok_or_else(|| {
            StoreError::Trust(format!("{} {} is not in the Merkle tree of {org}", kind.as_str(), record.id))
        })?;
        let stored = crate::stored_event(ptr, &record, false)?;
        rows.push(Row { stored, record, latest, leaf });
    }
    Ok(rows)
}

/// Writes the records at `pointers` (their latest revisions) as a Parquet file with the
/// archive's columns: the typed columns, `leaf`, and the stored record (`body`, `original`).
/// Scheduled exports use it.
pub fn write_records_parquet(
    engine: &Engine,
    org: &str,
    kind: LogKind,
    pointers: &[RecordPtr],
    path: &Path,
) -> Result<()> {
    let pointers: Vec<(RecordPtr, bool)> = pointers.iter().map(|p| (*p, true)).collect();
    write_parquet(kind, &read_rows(engine, org, kind, &pointers)?, path)
}

/// Writes rows (log order) as one Parquet file through an in-memory DuckDB.
fn write_parquet(kind: LogKind, rows: &[Row], path: &Path) -> Result<()> {
    let stored: Vec<&StoredEvent> = rows.iter().map(|r| &r.stored).collect();
    let typed = crate::duck::arrow::kind_batch(kind, &stored)?;
    let mut latest = BooleanBuilder::with_capacity(rows.len());
    let mut leaf = Int64Builder::with_capacity(rows.len());
    let mut body = BinaryBuilder::new();
    let mut original = BinaryBuilder::new();
    for row in rows {
        latest.append_value(row.latest);
        leaf.append_value(row.leaf as i64);
        body.append_value(&row.record.body);
        match &row.record.original {
            Some(bytes) => original.append_value(bytes),
            None => original.append_null(),
        }
    }
    let mut fields: Vec<Field> = typed.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(extra_fields());
    let mut columns: Vec<ArrayRef> = typed.columns().to_vec();
    columns.push(Arc::new(latest.finish()));
    columns.push(Arc::new(leaf.finish()));
    columns.push(Arc::new(body.finish()));
    columns.push(Arc::new(original.finish()));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| StoreError::Database(format!("archive batch: {e}")))?;

    let conn = duckdb::Connection::open_in_memory()?;
    let mut columns: Vec<&Column> = schema::all_columns(kind).collect();
    let extras = [
        Column { name: "latest", api: "latest", graph_path: None, ty: schema::ColType::Bool },
        Column { name: "leaf", api: "leaf", graph_path: None, ty: schema::ColType::Int },
    ];
    columns.extend(extras.iter());
    let mut ddl = crate::duck::create_table_sql("stage", &columns);
    ddl.pop(); // the closing parenthesis: two BLOB columns follow
    ddl.push_str(", body BLOB, original BLOB)");
    conn.execute_batch(&ddl)?;
    {
        let mut appender = conn.appender("stage")?;
        appender.append_record_batch(batch)?;
        appender.flush()?;
    }
    let tmp = path.with_extension("parquet.tmp");
    let literal = tmp.display().to_string().replace('\'', "''");
    conn.execute_batch(&format!(
        "COPY stage TO '{literal}' (FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE 100000)"
    ))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Days (start, microseconds) with hot rows of `org`/`log` before `before_us`.
fn hot_days(engine: &Engine, org: &str, log: ArchiveLog, before_us: i64) -> Result<Vec<i64>> {
    let kind = log.kind();
    let time = schema::find_column(kind, "event_time").expect("every kind has an event time");
    let query = AggQuery {
        org: org.to_string(),
        kind,
        filter: Expr::And(vec![
            Expr::Compare { column: time, op: CmpOp::Lt, value: Literal::Time(before_us) },
            log.filter(),
        ]),
        group_by: vec![GroupBy::TimeBucket(time, Bucket::Day, Zone::UTC)],
        measures: vec![Measure::Count],
        order_by_first_measure_desc: false,
        limit: None,
    };
    let rows = engine.store().aggregate(&query)?;
    Ok(rows
        .iter()
        .filter_map(|row| match row.first() {
            Some(signet_model::Cell::Time(t)) | Some(signet_model::Cell::Int(t)) => Some(day_start(*t)),
            _ => None,
        })
        .collect())
}

/// Removes the files no manifest lists (what an interrupted run left: a temporary file, a part
/// written before its manifest), in the directory and in the object store.
fn remove_leftovers(archive: &Archive, report: &mut ExpiryReport) -> Result<()> {
    if let Some(remote) = archive.remote() {
        let objects = archive_objects(remote)?;
        let names: std::collections::HashSet<&str> = objects.iter().map(String::as_str).collect();
        for rel in &objects {
            let manifest = rel.strip_suffix(".parquet").map(|stem| format!("{stem}.json"));
            if manifest.is_some_and(|m| !names.contains(m.as_str())) {
                remote.delete(rel)?;
                report.leftovers_removed.push(remote.describe(rel));
            }
        }
    }
    if !archive.root.is_dir() {
        return Ok(());
    }
    let listed: std::collections::HashSet<PathBuf> =
        archive.manifests()?.iter().map(|(path, m)| path.with_file_name(&m.file)).collect();
    for org in read_dirs(&archive.root)? {
        for kind in read_dirs(&org)? {
            for day in read_dirs(&kind)? {
                for entry in std::fs::read_dir(&day).map_err(io_err(&day))? {
                    let path = entry.map_err(io_err(&day))?.path();
                    let manifest = path.extension().is_some_and(|e| e == "json");
                    if !manifest && !listed.contains(&path) {
                        std::fs::remove_file(&path).map_err(io_err(&path))?;
                        report.leftovers_removed.push(path.display().to_string());
                    }
                }
            }
        }
    }
    Ok(())
}

/// Moves one partition (organisation, kind, day) out of the hot store. `known` holds the
/// archive's manifests by partition directory (kept up to date here).
fn expire_partition(
    engine: &Engine,
    archive: &Archive,
    known: &mut BTreeMap<PathBuf, Vec<(PathBuf, Manifest)>>,
    (org, log, day_us): (&str, ArchiveLog, i64),
    now_us: i64,
    report: &mut ExpiryReport,
) -> Result<()> {
    let kind = log.kind();
    let dir = archive.partition_dir(org, log, day_us);
    match hold(&dir)? {
        Some(h) if h.until_us > now_us => {
            report.held.push(format!("{org}/{}/{} (restored until {})", log.as_str(), day_string(day_us), h.until));
            return Ok(());
        }
        Some(_) => {
            let path = dir.join(HOLD_FILE);
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
        None => {}
    }
    let existing = known.entry(dir.clone()).or_default();
    let mut parts: Vec<ArchivedPart> = existing.iter().filter_map(|(path, m)| part_of(path, m)).collect();
    let (from, to) = (day_us, day_us + DAY_US);
    let candidates = engine.store().expiry_candidates(org, kind, from, to, &log.filter(), &parts)?;
    let mut archived = 0;
    let mut part_name = None;
    if !candidates.is_empty() {
        let pointers: Vec<(RecordPtr, bool)> = candidates.iter().map(|c| (c.ptr, c.latest)).collect();
        let rows = read_rows(engine, org, kind, &pointers)?;
        // Every row is in the tree already; the head signed when the run started covers them.
        let head = engine
            .ledger()
            .latest_head(org)
            .filter(|h| rows.iter().all(|r| r.leaf < h.tree_size))
            .ok_or_else(|| StoreError::Trust(format!("no signed head of {org} covers the rows to archive")))?;
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let first_position = rows[0].stored.ptr.frame_pos;
        let name = format!("part-{first_position:020}");
        let parquet = dir.join(format!("{name}.parquet"));
        write_parquet(kind, &rows, &parquet)?;
        let mut leaves = Sha256::new();
        let mut buf = Vec::new();
        for row in &rows {
            leaves.update(leaf_of(&row.record, &mut buf));
        }
        let (min_time_us, max_time_us) =
            rows.iter().map(|r| r.record.time_us).fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            organization: org.to_string(),
            kind: kind.as_str().to_string(),
            log: Some(log.as_str().to_string()),
            day: day_string(day_us),
            file: format!("{name}.parquet"),
            rows: rows.len() as u64,
            latest_rows: rows.iter().filter(|r| r.latest).count() as u64,
            min_time: signet_model::time::format_time(min_time_us),
            max_time: signet_model::time::format_time(max_time_us),
            min_time_us,
            max_time_us,
            first_position,
            last_position: rows.last().map_or(first_position, |r| r.stored.ptr.frame_pos),
            sha256: sha256_file(&parquet)?,
            leaves_sha256: hex::encode(leaves.finalize()),
            head,
            created: signet_model::time::format_time(signet_model::time::now_micros()),
        };
        let manifest_path = dir.join(format!("{name}.json"));
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Database(e.to_string()))?;
        if let Some(remote) = archive.remote() {
            // The object store holds the part and its manifest before the rows may go.
            remote.put_file(&archive.rel(&parquet), &parquet)?;
            remote.put_bytes(&archive.rel(&manifest_path), json.clone())?;
        }
        // From the local manifest on, queries read the part: until the hot rows are gone, a
        // crash would leave them counted twice; the marker lets the next start finish the job.
        let pending =
            Pending { organization: org.to_string(), kind: kind.as_str().to_string(), day_us, dir: dir.clone() };
        let marker = pending_path(engine);
        write_durably(&marker, &serde_json::to_vec(&pending).map_err(|e| StoreError::Database(e.to_string()))?)?;
        write_durably(&manifest_path, &json)?;
        parts.extend(part_of(&manifest_path, &manifest));
        known.entry(dir.clone()).or_default().push((manifest_path.clone(), manifest));
        archived = rows.len() as u64;
        part_name = Some(manifest_path.display().to_string());
    }
    let removed = engine.store().expire(org, kind, from, to, &parts)?;
    clear_pending(engine)?;
    if archived > 0 || removed > 0 {
        info!(org, log = log.as_str(), day = %day_string(day_us), archived, removed, "partition archived");
        report.partitions.push(PartitionReport {
            organization: org.to_string(),
            kind: log.as_str().to_string(),
            day: day_string(day_us),
            archived,
            removed,
            part: part_name,
        });
    }
    Ok(())
}

/// One expiry run at `now_us`: for every organisation and kind with a rule, the days past the
/// hot period move to the archive, and parts past the archive period are deleted; a legal hold
/// stops both. `organizations` lists who has events (the ledger knows).
pub fn expire(
    engine: &Engine,
    archive: &Archive,
    rules: &dyn Fn(&str, ArchiveLog) -> Option<Rule>,
    now_us: i64,
) -> Result<ExpiryReport> {
    let mut report = ExpiryReport {
        started: signet_model::time::format_time(signet_model::time::now_micros()),
        now: signet_model::time::format_time(now_us),
        ..ExpiryReport::default()
    };
    if engine.store().keeps_records() {
        expire_in_store(engine, rules, now_us, &mut report)?;
        cut_log(engine, archive, &mut report)?;
        return Ok(report);
    }
    archive.sync()?;
    remove_leftovers(archive, &mut report)?;
    let mut known: BTreeMap<PathBuf, Vec<(PathBuf, Manifest)>> = BTreeMap::new();
    for (path, manifest) in archive.manifests()? {
        known.entry(path.parent().map(Path::to_path_buf).unwrap_or_default()).or_default().push((path, manifest));
    }
    let today = day_start(now_us);
    let orgs: Vec<String> = engine.ledger().status().orgs.keys().cloned().collect();
    for org in &orgs {
        let mut signed = false;
        for log in ArchiveLog::ALL {
            let Some(rule) = rules(org, log) else { continue };
            if rule.legal_hold {
                report.held.push(format!("{org}/{}", log.as_str()));
                continue;
            }
            let cutoff = today - i64::from(rule.hot_days) * DAY_US;
            for day in hot_days(engine, org, log, cutoff)? {
                if !signed {
                    // One head over the current tree covers every row this run archives.
                    engine.ledger().sign_heads(Some(org))?;
                    signed = true;
                }
                expire_partition(engine, archive, &mut known, (org, log, day), now_us, &mut report)?;
            }
            if let Some(archive_days) = rule.archive_days {
                let end = cutoff - i64::from(archive_days) * DAY_US;
                delete_old_parts(engine, archive, org, log, end, &mut report)?;
            }
        }
    }
    engine.store().set_archive(archive.parts_at(now_us)?);
    cut_log(engine, archive, &mut report)?;
    Ok(report)
}

/// Retention on a store that keeps every record itself (ClickHouse, where the nodes share the
/// rows): there is no Parquet archive, an event stays queryable for `hotDays + archiveDays`
/// and is then deleted from the store ([`crate::EventStore::delete_before`]); without
/// `archiveDays` it is kept. A node's log segments go once every row from them is deleted
/// ([`cut_log`]); its Merkle trees keep their leaves.
fn expire_in_store(
    engine: &Engine,
    rules: &dyn Fn(&str, ArchiveLog) -> Option<Rule>,
    now_us: i64,
    report: &mut ExpiryReport,
) -> Result<()> {
    let today = day_start(now_us);
    let orgs: Vec<String> = engine.ledger().status().orgs.keys().cloned().collect();
    for org in &orgs {
        for log in ArchiveLog::ALL {
            let Some(rule) = rules(org, log) else { continue };
            if rule.legal_hold {
                report.held.push(format!("{org}/{}", log.as_str()));
                continue;
            }
            let Some(archive_days) = rule.archive_days else { continue };
            let end = today - (i64::from(rule.hot_days) + i64::from(archive_days)) * DAY_US;
            let removed = engine.store().delete_before(org, log.kind(), end, &log.filter())?;
            if removed > 0 {
                report.partitions.push(PartitionReport {
                    organization: org.clone(),
                    kind: log.as_str().to_string(),
                    day: format!("before {}", &signet_model::time::format_time(end)[..10]),
                    archived: 0,
                    removed,
                    part: None,
                });
            }
        }
    }
    Ok(())
}

/// The lowest position a forwarder still has to read (its cursor file): the log must keep it.
fn forwarders_position(engine: &Engine) -> Result<u64> {
    let dir = engine.data_dir().join("forward");
    let mut lowest = u64::MAX;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries {
            let path = entry.map_err(io_err(&dir))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&path).map_err(io_err(&path))?;
                let position = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["position"].as_u64())
                    .unwrap_or(0);
                lowest = lowest.min(position);
            }
        }
    }
    Ok(lowest)
}

/// Deletes the event log's oldest closed segments once every record in them is in an archive
/// part (or was deleted at the end of its archive period), the store has applied them, the
/// Merkle trees are durable past them, and no forwarder still has to read them. Their records
/// are then read from the archive; `signet verify` checks them there. On a store that keeps
/// the records (ClickHouse) a segment goes once retention deleted every row from it.
fn cut_log(engine: &Engine, archive: &Archive, report: &mut ExpiryReport) -> Result<()> {
    let closed = engine.log().closed_segments();
    if closed.is_empty() {
        return Ok(());
    }
    let applied = engine.store().applied_position()?;
    let covered = engine.ledger().sync()?;
    let forwarders = forwarders_position(engine)?;
    let parts = archive.parts_at(i64::MIN)?;
    let mut cut_to = None;
    for (start, end) in closed {
        if end > applied || end > covered || end > forwarders {
            break;
        }
        if engine.store().unarchived_between(start, end, &parts)? > 0 {
            break;
        }
        cut_to = Some(end);
    }
    if let Some(end) = cut_to {
        report.log_segments_cut = engine.log().drop_segments_before(end)?;
    }
    Ok(())
}

/// Deletes the parts of days before `end_us` (manifest first: a part without one is a
/// leftover, never listed).
fn delete_old_parts(
    engine: &Engine,
    archive: &Archive,
    org: &str,
    log: ArchiveLog,
    end_us: i64,
    report: &mut ExpiryReport,
) -> Result<()> {
    let old: Vec<(PathBuf, Manifest)> = archive
        .manifests()?
        .into_iter()
        .filter(|(_, m)| m.organization == org && ArchiveLog::of(m) == Some(log))
        .filter(|(_, m)| parse_day(&m.day).is_some_and(|d| d < end_us))
        .collect();
    if old.is_empty() {
        return Ok(());
    }
    // Queries stop reading them first, and their revisions are forgotten (they are gone).
    let gone: Vec<PathBuf> = old.iter().map(|(path, m)| path.with_file_name(&m.file)).collect();
    let (going, keep): (Vec<ArchivedPart>, Vec<ArchivedPart>) =
        archive.parts()?.into_iter().partition(|p| gone.contains(&p.path));
    engine.store().set_archive(keep);
    engine.forget(&going)?;
    for (path, m) in old {
        let parquet = path.with_file_name(&m.file);
        if let Some(remote) = archive.remote() {
            remote.delete(&archive.rel(&path))?;
            remote.delete(&archive.rel(&parquet))?;
        }
        std::fs::remove_file(&path).map_err(io_err(&path))?;
        match std::fs::remove_file(&parquet) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&parquet)(err)),
            _ => {}
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir(dir); // only when empty
        }
        warn!(org, log = log.as_str(), day = %m.day, rows = m.rows, "archive period over: part deleted");
        report.deleted_parts.push(parquet.display().to_string());
    }
    Ok(())
}
