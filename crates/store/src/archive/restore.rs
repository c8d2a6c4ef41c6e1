//! Bringing archived events back into the hot store (`signet restore`), and finishing what an
//! interrupted expiry or restore left half done before a process reads the archive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use signet_model::LogKind;
use tracing::warn;

use super::{parse_day, part_of, write_durably, Archive, ArchiveLog, Manifest, RestoreHold, DAY_US, HOLD_FILE};
use crate::engine::ArchivedPart;
use crate::error::{io_err, Result, StoreError};
use crate::Engine;

/// The partition an expiry run is removing from the hot store (`DATA/archive-expiring.json`).
#[derive(Serialize, Deserialize)]
pub(super) struct Pending {
    pub(super) organization: String,
    pub(super) kind: String,
    pub(super) day_us: i64,
    pub(super) dir: PathBuf,
}

pub(super) fn pending_path(engine: &Engine) -> PathBuf {
    engine.data_dir().join("archive-expiring.json")
}

pub(super) fn clear_pending(engine: &Engine) -> Result<()> {
    let path = pending_path(engine);
    match std::fs::remove_file(&path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(err)),
        _ => Ok(()),
    }
}

/// Makes queries of `engine` read the archive, after finishing what an interrupted run left
/// half done: the hot rows of a partition whose part was written (they would be counted twice),
/// and restored partitions whose rows did not all get back into the hot store (they would be
/// missing). Every process that opens a data directory with its archive calls this first.
pub fn attach(engine: &Engine, archive: &Archive) -> Result<()> {
    let marker = pending_path(engine);
    if let Ok(bytes) = std::fs::read(&marker) {
        if let Ok(pending) = serde_json::from_slice::<Pending>(&bytes) {
            let parts: Vec<ArchivedPart> = archive
                .manifests()?
                .iter()
                .filter(|(path, _)| path.parent() == Some(pending.dir.as_path()))
                .filter_map(|(path, m)| part_of(path, m))
                .collect();
            if let Some(kind) = LogKind::parse(&pending.kind) {
                let (from, to) = (pending.day_us, pending.day_us + DAY_US);
                let removed = engine.store().expire(&pending.organization, kind, from, to, &parts)?;
                warn!(org = %pending.organization, dir = %pending.dir.display(), removed, "finished an interrupted expiry");
            }
        }
        clear_pending(engine)?;
    }
    let now = signet_model::time::now_micros();
    let mut held: BTreeMap<PathBuf, Vec<ArchivedPart>> = BTreeMap::new();
    for part in archive.parts_at(now)?.into_iter().filter(|p| !p.queried) {
        held.entry(part.path.parent().map(Path::to_path_buf).unwrap_or_default()).or_default().push(part);
    }
    engine.store().set_archive(archive.parts_at(now)?);
    for parts in held.values() {
        // Idempotent: only events not in the hot store already are put back.
        let added = engine.store().restore(&parts[0].org, parts[0].kind, parts)?;
        if added > 0 {
            warn!(dir = %parts[0].path.parent().unwrap_or(Path::new("")).display(), added, "finished an interrupted restore");
        }
    }
    Ok(())
}

/// What a restore did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub partitions: Vec<String>,
    /// Events back in the hot store.
    pub restored: u64,
    pub until: String,
}

/// Puts the archived events of `[from_us, to_us)` (whole days; optionally one organisation
/// and kind) back into the hot store until `until_us`: their parts stay in the archive
/// (queries stop reading them meanwhile) and expiry leaves those days alone; afterwards the
/// next expiry run takes the rows out of the hot store again. Idempotent.
pub fn restore(
    engine: &Engine,
    archive: &Archive,
    from_us: i64,
    to_us: i64,
    only_org: Option<&str>,
    only_log: Option<ArchiveLog>,
    until_us: i64,
) -> Result<RestoreReport> {
    let mut by_dir: BTreeMap<PathBuf, Vec<(PathBuf, Manifest)>> = BTreeMap::new();
    for (path, m) in archive.manifests()? {
        let day = parse_day(&m.day).unwrap_or(i64::MIN);
        if day + DAY_US <= from_us || day >= to_us {
            continue;
        }
        if only_org.is_some_and(|o| o != m.organization) || only_log.is_some_and(|l| Some(l) != ArchiveLog::of(&m)) {
            continue;
        }
        by_dir.entry(path.parent().map(Path::to_path_buf).unwrap_or_default()).or_default().push((path, m));
    }
    let until = signet_model::time::format_time(until_us);
    let mut report = RestoreReport { until: until.clone(), ..RestoreReport::default() };
    for (dir, manifests) in by_dir {
        let held = RestoreHold {
            until: until.clone(),
            until_us,
            restored: signet_model::time::format_time(signet_model::time::now_micros()),
        };
        // The hold first: from here on expiry leaves the day alone and queries read it hot.
        let json = serde_json::to_vec_pretty(&held).map_err(|e| StoreError::Database(e.to_string()))?;
        write_durably(&dir.join(HOLD_FILE), &json)?;
        let parts: Vec<ArchivedPart> = manifests.iter().filter_map(|(path, m)| part_of(path, m)).collect();
        let Some(first) = parts.first() else { continue };
        report.restored += engine.store().restore(&first.org, first.kind, &parts)?;
        report.partitions.push(dir.display().to_string());
    }
    Ok(report)
}
