//! Retention: each organisation's policy (how long each log stays hot, how long it is then kept
//! in the archive, legal hold), kept in `DATA/settings/retention.json`, and the expiry job that
//! applies it (`signet_store::archive::expire`) every `retention_interval`, on demand, and from
//! `signet archive`. Changing a policy is an audited change (`RetentionPolicyChanged`); every
//! run that moved or deleted something leaves a `RetentionApplied` record saying what.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use signet_store::archive::{Archive, ArchiveLog, ExpiryReport, ObjectStoreSettings, Remote, Rule};
use signet_store::Engine;
use tracing::{info, warn};

use crate::access_log::{self, AuditNote};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

const MAX_DAYS: u32 = 36_500;

/// A log's field in the policy's JSON.
fn field(log: ArchiveLog) -> &'static str {
    match log {
        ArchiveLog::SignIns => "signins",
        ArchiveLog::DirectoryAudits => "directoryAudits",
        ArchiveLog::Activities => "activities",
        ArchiveLog::AccessLog => "accessLog",
    }
}

/// How long one log kind is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindPolicy {
    /// Days in the hot store, by event time (whole UTC days; at least 1).
    pub hot_days: u32,
    /// Days in the archive after that, then deleted; absent: kept for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_days: Option<u32>,
    /// Suspends moving and deleting this log.
    #[serde(default)]
    pub legal_hold: bool,
}

/// One organisation's retention policy. A log without a policy stays hot for ever.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetentionPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signins: Option<KindPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_audits: Option<KindPolicy>,
    /// Activities the applications sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activities: Option<KindPolicy>,
    /// Signet's own access log (every read of the logs, every change of settings, accounts and
    /// keys); absent: as `activities`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<KindPolicy>,
    /// Suspends moving and deleting every log of the organisation.
    #[serde(default)]
    pub legal_hold: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_hold_reason: Option<String>,
}

impl RetentionPolicy {
    /// The policy set for one log (the access log falls back to activities' in [`Self::rule`]).
    pub fn log(&self, log: ArchiveLog) -> Option<&KindPolicy> {
        match log {
            ArchiveLog::SignIns => self.signins.as_ref(),
            ArchiveLog::DirectoryAudits => self.directory_audits.as_ref(),
            ArchiveLog::Activities => self.activities.as_ref(),
            ArchiveLog::AccessLog => self.access_log.as_ref(),
        }
    }

    /// The rule the expiry job applies to one log.
    pub fn rule(&self, log: ArchiveLog) -> Option<Rule> {
        let policy = match log {
            ArchiveLog::AccessLog => self.access_log.as_ref().or(self.activities.as_ref()),
            other => self.log(other),
        };
        policy.map(|p| Rule {
            hot_days: p.hot_days,
            archive_days: p.archive_days,
            legal_hold: p.legal_hold || self.legal_hold,
        })
    }

    pub fn checked(self) -> Result<RetentionPolicy, String> {
        for log in ArchiveLog::ALL {
            if let Some(p) = self.log(log) {
                if !(1..=MAX_DAYS).contains(&p.hot_days) {
                    return Err(format!("{}.hotDays must be 1-{MAX_DAYS}", field(log)));
                }
                if p.archive_days.is_some_and(|d| d > MAX_DAYS) {
                    return Err(format!("{}.archiveDays must be at most {MAX_DAYS}", field(log)));
                }
            }
        }
        if self.legal_hold_reason.as_ref().is_some_and(|r| r.len() > 500) {
            return Err("legalHoldReason is limited to 500 characters".into());
        }
        Ok(self)
    }

    /// What changed, for the audit record.
    pub fn changes(&self, next: &RetentionPolicy) -> Vec<String> {
        let describe = |p: Option<&KindPolicy>| match p {
            None => "kept hot for ever".to_string(),
            Some(p) => format!(
                "hot {} days, archive {}{}",
                p.hot_days,
                p.archive_days.map_or("for ever".to_string(), |d| format!("{d} days")),
                if p.legal_hold { ", legal hold" } else { "" }
            ),
        };
        let mut out = Vec::new();
        for log in ArchiveLog::ALL {
            if self.log(log) != next.log(log) {
                out.push(format!("{}: {} -> {}", field(log), describe(self.log(log)), describe(next.log(log))));
            }
        }
        if self.legal_hold != next.legal_hold || self.legal_hold_reason != next.legal_hold_reason {
            out.push(match next.legal_hold {
                true => format!("legal hold on ({})", next.legal_hold_reason.as_deref().unwrap_or("no reason given")),
                false => "legal hold lifted".to_string(),
            });
        }
        out
    }
}

/// Every organisation's policy (`DATA/settings/retention.json`; a file that does not parse is an
/// error rather than "keep for ever").
pub type RetentionStore = crate::audit_settings::OrgSettingsFile<RetentionPolicy>;

/// The retention policies' document (`DATA/settings/retention.json`, or shared by the nodes).
pub const POLICIES_DOCUMENT: &str = "settings/retention.json";

/// The archive directory of a data directory when none is configured.
pub fn default_archive_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("archive")
}

/// The archive in `dir`, kept in an object store too when `store` is set.
pub fn open_archive(dir: PathBuf, store: Option<&ObjectStoreSettings>) -> std::io::Result<Archive> {
    Ok(match store {
        None => Archive::new(dir),
        Some(settings) => Archive::with_remote(
            dir,
            Remote::open(settings)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("[archive_store]: {e}")))?,
        ),
    })
}

/// The expiry job: one run at a time, its last report kept for the API.
pub struct RetentionJob {
    pub archive: Archive,
    pub policies: Arc<RetentionStore>,
    running: Mutex<()>,
    last: Mutex<Option<ExpiryReport>>,
    timer: crate::periodic::Periodic,
}

impl RetentionJob {
    pub fn new(archive: Archive, policies: Arc<RetentionStore>) -> RetentionJob {
        RetentionJob { archive, policies, running: Mutex::new(()), last: Mutex::new(None), timer: Default::default() }
    }

    /// Applies the policies at `now_us` (of one organisation, or all), and records what was
    /// done as a `RetentionApplied` event per organisation that had anything moved or deleted.
    pub fn run(&self, engine: &Engine, only: Option<&str>, now_us: i64) -> signet_store::Result<ExpiryReport> {
        let _one_at_a_time = self.running.lock();
        let policies = self.policies.all();
        let rules = |org: &str, log: ArchiveLog| {
            if only.is_some_and(|o| o != org) {
                return None;
            }
            policies.get(org).and_then(|p| p.rule(log))
        };
        let report = signet_store::archive::expire(engine, &self.archive, &rules, now_us)?;
        let mut by_org: BTreeMap<&str, (u64, u64, usize)> = BTreeMap::new();
        for p in &report.partitions {
            let entry = by_org.entry(p.organization.as_str()).or_default();
            entry.0 += p.archived;
            entry.1 += p.removed;
        }
        for part in &report.deleted_parts {
            for org in policies.keys() {
                let dir = self.archive.root().join(signet_store::ledger::org_dir_name(org));
                if Path::new(part).starts_with(&dir) {
                    by_org.entry(org.as_str()).or_default().2 += 1;
                }
            }
        }
        for (org, (archived, removed, deleted)) in by_org {
            let record = access_log::service_event(
                org,
                "RetentionApplied",
                &format!(
                    "retention applied: {archived} revisions archived, {removed} events left the hot store, \
                     {deleted} archive parts deleted at the end of their period"
                ),
                json!({
                    "now": report.now,
                    "partitions": report.partitions.iter().filter(|p| p.organization == org).collect::<Vec<_>>(),
                }),
            );
            if let Err(err) = access_log::store_blocking(engine, org, &record) {
                warn!(org, error = %err, "the RetentionApplied record was not stored");
            }
        }
        *self.last.lock() = Some(report.clone());
        Ok(report)
    }

    /// Brings the archive directory and its object store level (see [`Archive::sync`]) and
    /// lets queries read what arrived.
    pub fn sync(&self, engine: &Engine) -> signet_store::Result<()> {
        let _one_at_a_time = self.running.lock();
        let report = self.archive.sync()?;
        if !report.downloaded.is_empty() || !report.uploaded.is_empty() {
            info!(downloaded = report.downloaded.len(), uploaded = report.uploaded.len(), "archive synchronised");
            engine.store().set_archive(self.archive.parts()?);
        }
        Ok(())
    }

    pub fn last_report(&self) -> Option<ExpiryReport> {
        self.last.lock().clone()
    }

    /// Runs the job every `interval` on its own thread until [`RetentionJob::stop`].
    pub fn start(self: &Arc<Self>, engine: Arc<Engine>, interval: Duration) {
        let job = self.clone();
        self.timer.start("signet-retention", Duration::from_secs(30).min(interval), interval, move || {
            match job.run(&engine, None, signet_model::time::now_micros()) {
                Ok(report) if !report.partitions.is_empty() || !report.deleted_parts.is_empty() => {
                    info!(
                        partitions = report.partitions.len(),
                        deleted = report.deleted_parts.len(),
                        "retention applied"
                    )
                }
                Ok(_) => {}
                Err(err) => warn!(error = %err, "retention run failed; it is retried at the next interval"),
            }
        });
    }

    pub fn stop(&self) {
        self.timer.stop();
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RetentionView {
    policy: RetentionPolicy,
    archive: ArchiveView,
    last_run: Option<ExpiryReport>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArchiveView {
    parts: usize,
    rows: u64,
    bytes: u64,
    oldest_day: Option<String>,
    newest_day: Option<String>,
    /// The object store holding the archive of record, if any (`s3://...`).
    object_store: Option<String>,
}

/// `GET /api/v1/settings/retention`: the policy, what the organisation has in the archive, and
/// the last run.
pub async fn get(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<serde_json::Value>> {
    let org = caller.org().to_string();
    let job = state.retention.clone();
    let view = tokio::task::spawn_blocking(move || -> signet_store::Result<RetentionView> {
        let manifests: Vec<_> = job.archive.manifests()?.into_iter().filter(|(_, m)| m.organization == org).collect();
        let bytes = manifests
            .iter()
            .map(|(path, m)| std::fs::metadata(path.with_file_name(&m.file)).map_or(0, |md| md.len()))
            .sum();
        let last_run = job.last_report().map(|mut report| {
            report.partitions.retain(|p| p.organization == org);
            report.deleted_parts.clear();
            report.held.retain(|h| h.starts_with(&format!("{org}/")));
            report.leftovers_removed.clear();
            report
        });
        Ok(RetentionView {
            policy: job.policies.get(&org),
            archive: ArchiveView {
                parts: manifests.len(),
                rows: manifests.iter().map(|(_, m)| m.rows).sum(),
                bytes,
                oldest_day: manifests.iter().map(|(_, m)| m.day.clone()).min(),
                newest_day: manifests.iter().map(|(_, m)| m.day.clone()).max(),
                object_store: job.archive.remote().map(|r| r.url().to_string()),
            },
            last_run,
        })
    })
    .await??;
    Ok(Json(serde_json::to_value(view).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// `PUT /api/v1/settings/retention` with the whole policy.
pub async fn put(State(state): State<AppState>, caller: Caller, request: Request) -> ApiResult<Response> {
    let body: RetentionPolicy = crate::accounts::read_json(request, 64 * 1024).await?;
    let next = body.checked().map_err(ApiError::BadRequest)?;
    let store = state.retention.policies.clone();
    let org = caller.org().to_string();
    let saved = next.clone();
    let previous = tokio::task::spawn_blocking(move || store.replace(&org, saved))
        .await?
        .map_err(|e| ApiError::Internal(format!("could not save the retention policy: {e}")))?;
    let changes = previous.changes(&next);
    let note = AuditNote {
        detail: Some(if changes.is_empty() { "no change".into() } else { changes.join("; ") }),
        ..AuditNote::default()
    };
    Ok(note.attach(Json(next)))
}

/// `POST /api/v1/settings/retention/run`: applies the caller's organisation's policy now.
pub async fn run_now(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let org = caller.org().to_string();
    let job = state.retention.clone();
    let engine = state.engine.clone();
    let report =
        tokio::task::spawn_blocking(move || job.run(&engine, Some(&org), signet_model::time::now_micros())).await??;
    let moved: u64 = report.partitions.iter().map(|p| p.removed).sum();
    let note = AuditNote {
        detail: Some(format!(
            "{} partitions, {moved} events moved to the archive, {} parts deleted",
            report.partitions.len(),
            report.deleted_parts.len()
        )),
        ..AuditNote::default()
    };
    Ok(note.attach(Json(report)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_checked_and_changes_described() {
        let policy: RetentionPolicy = serde_json::from_str(
            r#"{"signins":{"hotDays":90,"archiveDays":275},"activities":{"hotDays":30,"legalHold":true},"accessLog":{"hotDays":400}}"#,
        )
        .unwrap();
        let policy = policy.checked().unwrap();
        assert_eq!(
            policy.rule(ArchiveLog::SignIns),
            Some(Rule { hot_days: 90, archive_days: Some(275), legal_hold: false })
        );
        assert!(policy.rule(ArchiveLog::Activities).unwrap().legal_hold);
        assert_eq!(policy.rule(ArchiveLog::DirectoryAudits), None, "no policy: hot for ever");
        assert_eq!(policy.rule(ArchiveLog::AccessLog).map(|r| r.hot_days), Some(400), "the access log's own");
        let mut shared = policy.clone();
        shared.access_log = None;
        assert_eq!(shared.rule(ArchiveLog::AccessLog), shared.rule(ArchiveLog::Activities), "else as activities");
        let mut held = policy.clone();
        held.legal_hold = true;
        assert!(held.rule(ArchiveLog::SignIns).unwrap().legal_hold, "an organisation-wide hold holds every log");
        let changes = policy.changes(&held);
        assert_eq!(changes, vec!["legal hold on (no reason given)".to_string()]);
        let changes = RetentionPolicy::default().changes(&policy);
        assert!(changes[0].starts_with("signins: kept hot for ever -> hot 90 days, archive 275 days"), "{changes:?}");
        for bad in [r#"{"signins":{"hotDays":0}}"#, r#"{"signins":{"hotDays":5,"archiveDays":99999}}"#] {
            let policy: RetentionPolicy = serde_json::from_str(bad).unwrap();
            assert!(policy.checked().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<RetentionPolicy>(r#"{"signins":{"hotDays":5,"days":3}}"#).is_err());
    }
}
