//! Free space of the data directory's file system, checked before events are accepted.
//!
//! Ingest is refused (HTTP 507) while free space is below a reserve, so that a full disk never
//! turns into a half-written commit: the reserve keeps room for what must still be written
//! (Signet's own access records, so that reads keep working and stay audited; the store's
//! projection; the final heads). Warnings are logged when usage crosses the configured
//! thresholds, once per crossing, and writing resumes by itself when space is freed. The check
//! costs one `statvfs` at most every [`REFRESH`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::{info, warn};

use crate::error::{Result, StoreError};

/// How old a free-space reading may be.
pub const REFRESH: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
pub struct DiskPolicy {
    /// Ingest is refused while less than this many bytes are free.
    pub reserve_bytes: u64,
    /// Usage fractions (0..1) at which a warning is raised, ascending.
    pub warn_at: Vec<f64>,
}

impl Default for DiskPolicy {
    fn default() -> Self {
        DiskPolicy { reserve_bytes: 256 << 20, warn_at: vec![0.75, 0.90] }
    }
}

/// One reading of the file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    pub total: u64,
    pub free: u64,
}

impl DiskSpace {
    pub fn used_fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            1.0 - self.free as f64 / self.total as f64
        }
    }
}

/// Reads the free space of the file system holding `path` (space available to this user).
pub fn disk_space(path: &std::path::Path) -> std::io::Result<DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a valid out-pointer.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let unit = stat.f_frsize as u64;
    Ok(DiskSpace { total: stat.f_blocks as u64 * unit, free: stat.f_bavail as u64 * unit })
}

pub struct DiskGuard {
    path: PathBuf,
    policy: DiskPolicy,
    checked: Mutex<Option<Instant>>,
    free: AtomicU64,
    total: AtomicU64,
    /// How many warning thresholds the usage is above.
    level: AtomicUsize,
    pub refusals: AtomicU64,
}

impl DiskGuard {
    pub fn new(path: PathBuf, policy: DiskPolicy) -> DiskGuard {
        let guard = DiskGuard {
            path,
            policy,
            checked: Mutex::new(None),
            free: AtomicU64::new(u64::MAX),
            total: AtomicU64::new(0),
            level: AtomicUsize::new(0),
            refusals: AtomicU64::new(0),
        };
        guard.refresh(true);
        guard
    }

    fn refresh(&self, force: bool) {
        {
            let mut checked = self.checked.lock();
            if !force && checked.is_some_and(|at| at.elapsed() < REFRESH) {
                return;
            }
            *checked = Some(Instant::now());
        }
        let space = match disk_space(&self.path) {
            Ok(space) => space,
            Err(err) => {
                warn!(path = %self.path.display(), error = %err, "cannot read the file system's free space");
                return;
            }
        };
        self.free.store(space.free, Ordering::Relaxed);
        self.total.store(space.total, Ordering::Relaxed);
        let used = space.used_fraction();
        let level = self.policy.warn_at.iter().filter(|&&t| used >= t).count();
        let previous = self.level.swap(level, Ordering::Relaxed);
        if level > previous {
            warn!(
                path = %self.path.display(), used_percent = format!("{:.1}", used * 100.0), free_bytes = space.free,
                reserve_bytes = self.policy.reserve_bytes,
                "the data directory's disk is filling up; ingest stops when free space falls below the reserve"
            );
        } else if level < previous {
            info!(path = %self.path.display(), used_percent = format!("{:.1}", used * 100.0), "disk usage fell below a warning threshold");
        }
    }

    /// Fails with [`StoreError::DiskFull`] while free space is below the reserve.
    pub fn check(&self) -> Result<()> {
        self.refresh(false);
        let free = self.free.load(Ordering::Relaxed);
        if free < self.policy.reserve_bytes {
            self.refusals.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::DiskFull { free_bytes: free, reserve_bytes: self.policy.reserve_bytes });
        }
        Ok(())
    }

    /// The latest reading.
    pub fn space(&self) -> DiskSpace {
        self.refresh(false);
        DiskSpace { total: self.total.load(Ordering::Relaxed), free: self.free.load(Ordering::Relaxed) }
    }
}
