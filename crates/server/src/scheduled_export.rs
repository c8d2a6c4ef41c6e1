//! Scheduled exports: the "export the sign-in log every seven days" procedure, done by Signet.
//! Each `[[scheduled_export]]` job writes consecutive, gap-free windows of `every_days` days
//! (UTC midnight to midnight) of one log of one organisation, with the list API's filters, as
//! CSV, JSON, NDJSON or Parquet, each file with a manifest beside it:
//!
//! ```text
//! DIRECTORY/<job>/<job>_<from YYYYMMDD>-<to YYYYMMDD>.<csv|json|ndjson|parquet>
//! DIRECTORY/<job>/<job>_<from YYYYMMDD>-<to YYYYMMDD>.manifest.json
//! ```
//! or, with `[scheduled_export.store]` instead of `directory`, the same names under an
//! S3-compatible object store's URL (`s3://bucket/prefix/<job>/...`): the file is written in
//! `DATA/exports/staging/` first, uploaded, then its manifest, then the local copy removed.
//! A window is exported once it ended `delay_hours` ago (events arrive late: identity providers
//! deliver sign-ins minutes to hours after they happen). The job's progress is kept in
//! `DATA/exports/<job>.json`, so a window is neither skipped nor written twice across restarts;
//! a file is written under a temporary name and renamed, then its manifest. Every window written
//! is a `ScheduledExportCompleted` record in the organisation's activity log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use signet_model::LogKind;
use signet_query::native;
use signet_store::archive::Remote;
use signet_store::Engine;
use tracing::{info, warn};

use crate::api::{plan_export, run_export};
use crate::audit_settings::{read_json_file, replace_file};

const DAY_US: i64 = 86_400_000_000;

fn default_format() -> String {
    "csv".into()
}
fn default_every() -> u32 {
    7
}
fn default_delay() -> u32 {
    6
}

/// One `[[scheduled_export]]` table of signet.toml.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportJobSettings {
    /// Names the files and the progress file: letters, digits, `-` and `_`.
    pub name: String,
    /// The organisation exported (default: the deployment's home organisation).
    #[serde(default)]
    pub organization: Option<String>,
    /// `signins`, `directory-audits` or `activities`.
    pub kind: String,
    /// `csv`, `json`, `ndjson` or `parquet`.
    #[serde(default = "default_format")]
    pub format: String,
    /// The list API's filters as a query string, e.g. `status=failure&app=Payroll`.
    #[serde(default)]
    pub filter: String,
    /// Days per file.
    #[serde(default = "default_every")]
    pub every_days: u32,
    /// Hours after a window's end before it is exported (late events).
    #[serde(default = "default_delay")]
    pub delay_hours: u32,
    /// Where the files go: a directory ...
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// ... or an S3-compatible object store (credentials from the AWS environment variables).
    #[serde(default)]
    pub store: Option<signet_store::archive::ObjectStoreSettings>,
    /// First day exported (ISO 8601); default: the window that ended most recently when the
    /// job first runs.
    #[serde(default)]
    pub start: Option<String>,
}

impl ExportJobSettings {
    fn check(&self, home: &str) -> Result<Checked, String> {
        let name = &self.name;
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("scheduled_export {name:?}: the name must be 1-64 letters, digits, '-' or '_'"));
        }
        let kind = LogKind::parse(&self.kind).ok_or_else(|| {
            format!("scheduled_export {name}: kind {:?}: signins, directory-audits or activities", self.kind)
        })?;
        if !matches!(self.format.as_str(), "csv" | "json" | "ndjson" | "parquet") {
            return Err(format!("scheduled_export {name}: format {:?}: csv, json, ndjson or parquet", self.format));
        }
        if !(1..=366).contains(&self.every_days) {
            return Err(format!("scheduled_export {name}: every_days must be 1-366"));
        }
        match (&self.directory, &self.store) {
            (Some(_), None) => {}
            (None, Some(store)) => store.check().map_err(|e| format!("scheduled_export {name}: store: {e}"))?,
            _ => return Err(format!("scheduled_export {name}: set either directory or store")),
        }
        let org = self.organization.clone().unwrap_or_else(|| home.to_string());
        // The filter must be one the list API accepts (checked now, not at the first window).
        let params = crate::graph::parse_query(Some(&self.filter));
        if params
            .iter()
            .any(|(k, _)| matches!(k.as_str(), "from" | "to" | "range" | "days" | "format" | "limit" | "cursor"))
        {
            return Err(format!(
                "scheduled_export {name}: filter: the job sets the time range, format and paging itself"
            ));
        }
        native::request(kind, &params, 0).map_err(|e| format!("scheduled_export {name}: filter: {e}"))?;
        let start = self
            .start
            .as_deref()
            .map(|s| signet_model::time::parse_time(s).map_err(|e| format!("scheduled_export {name}: start: {e}")))
            .transpose()?;
        Ok(Checked { settings: self.clone(), kind, org, params, start, remote: None })
    }
}

#[derive(Clone, Debug)]
struct Checked {
    settings: ExportJobSettings,
    kind: LogKind,
    org: String,
    params: Vec<(String, String)>,
    start: Option<i64>,
    remote: Option<Arc<Remote>>,
}

/// What is written beside each file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExportManifest {
    pub job: String,
    pub organization: String,
    pub kind: String,
    pub format: String,
    pub filter: String,
    pub from: String,
    pub to: String,
    pub rows: u64,
    pub bytes: u64,
    pub file: String,
    pub sha256: String,
    /// The organisation's signed tree head when the file was written.
    pub head: Option<signet_trust::SignedHead>,
    pub created: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Progress {
    /// Start of the next window to export, microseconds.
    next_from_us: i64,
}

/// Every configured job, and the thread that runs them.
pub struct ScheduledExports {
    jobs: Vec<Checked>,
    timer: crate::periodic::Periodic,
    running: Mutex<()>,
}

fn compact_day(time_us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(time_us).map(|d| d.format("%Y%m%d").to_string()).unwrap_or_default()
}

fn day_start(time_us: i64) -> i64 {
    time_us.div_euclid(DAY_US) * DAY_US
}

impl ScheduledExports {
    pub fn new(settings: Vec<ExportJobSettings>, home: &str) -> Result<ScheduledExports, String> {
        let mut jobs: Vec<Checked> = Vec::new();
        for s in settings {
            if jobs.iter().any(|j| j.settings.name == s.name) {
                return Err(format!("scheduled_export {:?} is configured twice", s.name));
            }
            let mut job = s.check(home)?;
            if let Some(store) = &s.store {
                let remote = Remote::open(store).map_err(|e| format!("scheduled_export {}: store: {e}", s.name))?;
                job.remote = Some(Arc::new(remote));
            }
            jobs.push(job);
        }
        Ok(ScheduledExports { jobs, timer: Default::default(), running: Mutex::new(()) })
    }

    /// Writes every window that is due at `now_us`; returns the manifests written.
    pub fn run_due(&self, engine: &Engine, now_us: i64) -> Vec<ExportManifest> {
        let _one_at_a_time = self.running.lock();
        let mut written = Vec::new();
        for job in &self.jobs {
            match run_job(engine, job, now_us) {
                Ok(mut manifests) => written.append(&mut manifests),
                Err(err) => {
                    warn!(job = %job.settings.name, error = %err, "scheduled export failed; retried at the next check")
                }
            }
        }
        written
    }

    /// Checks every minute on its own thread until [`ScheduledExports::stop`].
    pub fn start(self: &Arc<Self>, engine: Arc<Engine>) {
        if self.jobs.is_empty() {
            return;
        }
        let this = self.clone();
        self.timer.start("signet-exports", Duration::ZERO, Duration::from_secs(60), move || {
            this.run_due(&engine, signet_model::time::now_micros());
        });
    }

    pub fn stop(&self) {
        self.timer.stop();
    }
}

fn progress_path(engine: &Engine, name: &str) -> PathBuf {
    engine.data_dir().join("exports").join(format!("{name}.json"))
}

fn run_job(engine: &Engine, job: &Checked, now_us: i64) -> Result<Vec<ExportManifest>, String> {
    let s = &job.settings;
    let period = i64::from(s.every_days) * DAY_US;
    let delay = i64::from(s.delay_hours) * 3_600_000_000;
    let path = progress_path(engine, &s.name);
    let mut progress: Progress = read_json_file(&path).map_err(|e| e.to_string())?;
    if progress.next_from_us == 0 {
        progress.next_from_us = match job.start {
            Some(start) => day_start(start),
            // The window that ended most recently (midnight-aligned), whatever is due now.
            None => day_start(now_us - delay) - period,
        };
    }
    let mut written = Vec::new();
    while progress.next_from_us + period + delay <= now_us {
        let (from, to) = (progress.next_from_us, progress.next_from_us + period);
        let manifest = export_window(engine, job, from, to)?;
        info!(job = %s.name, from = %manifest.from, to = %manifest.to, rows = manifest.rows, "scheduled export written");
        let record = crate::access_log::service_event(
            &job.org,
            "ScheduledExportCompleted",
            &format!(
                "scheduled export {}: {} {} from {} to {}, {} rows, {}",
                s.name, manifest.format, manifest.kind, manifest.from, manifest.to, manifest.rows, manifest.file
            ),
            json!({ "job": s.name, "file": manifest.file, "rows": manifest.rows, "sha256": manifest.sha256 }),
        );
        if let Err(err) = crate::access_log::store_blocking(engine, &job.org, &record) {
            warn!(job = %s.name, error = %err, "the ScheduledExportCompleted record was not stored");
        }
        progress.next_from_us = to;
        let bytes = serde_json::to_vec(&progress).map_err(|e| e.to_string())?;
        replace_file(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(manifest);
    }
    Ok(written)
}

/// Writes one window and its manifest.
fn export_window(engine: &Engine, job: &Checked, from: i64, to: i64) -> Result<ExportManifest, String> {
    let s = &job.settings;
    let dir = match &s.directory {
        Some(directory) => directory.join(&s.name),
        None => engine.data_dir().join("exports").join("staging").join(&s.name),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stem = format!("{}_{}-{}", s.name, compact_day(from), compact_day(to));
    let file = dir.join(format!("{stem}.{}", s.format));
    let tmp = dir.join(format!("{stem}.{}.tmp", s.format));
    let mut params = job.params.clone();
    params.push(("from".into(), signet_model::time::format_time(from)));
    params.push(("to".into(), signet_model::time::format_time(to)));
    let rows = if s.format == "parquet" {
        write_parquet(engine, job, &params, &tmp)?
    } else {
        params.push(("format".into(), s.format.clone()));
        let plan =
            plan_export(&job.org, job.kind, &params, signet_model::time::now_micros()).map_err(|e| e.to_string())?;
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?);
        let mut failed = None;
        let rows = run_export(engine, plan, &mut |chunk: String| {
            use std::io::Write;
            match out.write_all(chunk.as_bytes()) {
                Ok(()) => true,
                Err(err) => {
                    failed = Some(err);
                    false
                }
            }
        })?;
        if let Some(err) = failed {
            return Err(format!("{}: {err}", tmp.display()));
        }
        let file = out.into_inner().map_err(|e| format!("{}: {e}", tmp.display()))?;
        file.sync_all().map_err(|e| format!("{}: {e}", tmp.display()))?;
        rows
    };
    std::fs::rename(&tmp, &file).map_err(|e| format!("{}: {e}", file.display()))?;
    let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let manifest = ExportManifest {
        job: s.name.clone(),
        organization: job.org.clone(),
        kind: job.kind.as_str().to_string(),
        format: s.format.clone(),
        filter: s.filter.clone(),
        from: signet_model::time::format_time(from),
        to: signet_model::time::format_time(to),
        rows,
        bytes: bytes.len() as u64,
        file: file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        head: engine.ledger().current_head(&job.org).map_err(|e| e.to_string())?,
        created: signet_model::time::format_time(signet_model::time::now_micros()),
    };
    let manifest_path = dir.join(format!("{stem}.manifest.json"));
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    replace_file(&manifest_path, &json).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    if let Some(remote) = &job.remote {
        // The file, then its manifest (a reader that sees the manifest finds the file); a crash
        // before the progress file moves on uploads the window again, under the same names.
        remote.put_file(&format!("{}/{}", s.name, manifest.file), &file).map_err(|e| e.to_string())?;
        remote.put_bytes(&format!("{}/{stem}.manifest.json", s.name), json).map_err(|e| e.to_string())?;
        for path in [&file, &manifest_path] {
            std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(manifest)
}

/// Parquet: the matching events (every page of the list) with the archive's columns.
fn write_parquet(engine: &Engine, job: &Checked, params: &[(String, String)], path: &Path) -> Result<u64, String> {
    let request = native::request(job.kind, params, signet_model::time::now_micros()).map_err(|e| e.to_string())?;
    let mut query = request.into_list_query(&job.org, job.kind);
    query.columns = signet_store::record_columns(job.kind);
    query.order = signet_query::SortOrder::Asc;
    query.after = None;
    let mut pointers = Vec::new();
    let take = |rows: Vec<Vec<signet_model::Cell>>| -> Result<bool, String> {
        for row in &rows {
            let row = signet_store::RecordRef::from_row(row).ok_or("an export row without its record's place")?;
            if let Some(node) = &row.node {
                // Parquet parts carry each record's leaf in this node's Merkle tree.
                return Err(format!(
                    "{} {} was logged by node {node}: Parquet exports hold this node's records only (run the job on \
                     every node, or export CSV/JSON/NDJSON)",
                    job.kind.as_str(),
                    row.id
                ));
            }
            pointers.push(row.ptr);
        }
        Ok(true)
    };
    signet_store::scan_with(engine.store().as_ref(), &query, 5000, take, |e| e.to_string())?;
    // An empty window is still a file (with the columns): "nothing happened" is an answer.
    signet_store::archive::write_records_parquet(engine, &job.org, job.kind, &pointers, path)
        .map_err(|e| e.to_string())?;
    Ok(pointers.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> ExportJobSettings {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn jobs_are_checked() {
        let good = settings(r#"{"name":"weekly","kind":"signins","directory":"/tmp/x","filter":"status=failure"}"#);
        let checked = good.check("default").unwrap();
        assert_eq!(
            (checked.org.as_str(), checked.settings.every_days, checked.settings.format.as_str()),
            ("default", 7, "csv")
        );
        for bad in [
            r#"{"name":"we ekly","kind":"signins","directory":"/tmp/x"}"#,
            r#"{"name":"w","kind":"mail","directory":"/tmp/x"}"#,
            r#"{"name":"w","kind":"signins","directory":"/tmp/x","format":"xlsx"}"#,
            r#"{"name":"w","kind":"signins","directory":"/tmp/x","every_days":0}"#,
            r#"{"name":"w","kind":"signins","directory":"/tmp/x","filter":"from=2026-01-01"}"#,
            r#"{"name":"w","kind":"signins","directory":"/tmp/x","filter":"colour=red"}"#,
            r#"{"name":"w","kind":"signins"}"#,
            r#"{"name":"w","kind":"signins","directory":"/tmp/x","store":{"url":"s3://b"}}"#,
            r#"{"name":"w","kind":"signins","store":{"url":"s3://b","endpoint":"http://127.0.0.1:1"}}"#,
        ] {
            assert!(settings(bad).check("default").is_err(), "{bad}");
        }
    }
}
