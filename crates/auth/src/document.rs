//! Small JSON documents replaced whole on every change (accounts and keys, per-organisation
//! settings): a file of the data directory on one node, or a row of a store that several nodes
//! share (ClickHouse's `signet_documents`, see `signet_server::shared`).
//!
//! Every write names the version it makes (the one it read plus one). A shared store refuses a
//! version someone already wrote; the writer then reads the newer document and applies its
//! change again on top of it, so concurrent changes from two nodes are both kept.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One document; see the module.
pub trait Document: Send + Sync {
    /// The current content and its version; `None` when it was never written.
    fn load(&self) -> std::io::Result<Option<(u64, Vec<u8>)>>;

    /// Writes `bytes` as `version`. `Ok(false)`: that version (or a later one) was written by
    /// someone else first; load and try again.
    fn store(&self, version: u64, bytes: &[u8]) -> std::io::Result<bool>;

    /// The current version without the content (to notice other nodes' changes), `None` when
    /// never written.
    fn version(&self) -> std::io::Result<Option<u64>>;

    /// Where it is, for messages.
    fn describe(&self) -> String;
}

/// A document in a file, replaced atomically (temporary file, fsync, rename, fsync of the
/// directory). One process holds the data directory, so versions live in memory only.
pub struct FileDocument {
    path: PathBuf,
    /// Unix permissions of the file (accounts: 0600).
    mode: u32,
    version: AtomicU64,
}

impl FileDocument {
    pub fn new(path: PathBuf, mode: u32) -> FileDocument {
        FileDocument { path, mode, version: AtomicU64::new(0) }
    }

    /// The document `name` of a data directory: `DATA/<name>`, private (0600) under `auth/`.
    pub fn in_data_dir(data_dir: &Path, name: &str) -> FileDocument {
        let mode = if name.starts_with("auth/") { 0o600 } else { 0o644 };
        FileDocument::new(data_dir.join(name), mode)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Document for FileDocument {
    fn load(&self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(Some((self.version.load(Ordering::Acquire), bytes))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    fn store(&self, version: u64, bytes: &[u8]) -> std::io::Result<bool> {
        use std::io::Write;
        let dir = self.path.parent().unwrap_or(&self.path);
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, self.mode);
            let mut file = options.open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        std::fs::File::open(dir)?.sync_all()?;
        self.version.store(version, Ordering::Release);
        Ok(true)
    }

    fn version(&self) -> std::io::Result<Option<u64>> {
        Ok(self.path.exists().then(|| self.version.load(Ordering::Acquire)))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// Where the documents of a deployment are: `name` is the document's file name under its
/// data-directory folder (`auth/accounts.json`, `settings/audit.json`, ...) and its name in a
/// shared store.
pub trait Documents: Send + Sync {
    fn document(&self, name: &str) -> Box<dyn Document>;

    /// The set of entries `name` the nodes share one at a time, where they share any (a
    /// data directory alone keeps its entries in its own files: `None`).
    fn entries(&self, name: &str) -> Option<Box<dyn EntrySet>> {
        let _ = name;
        None
    }
}

/// One entry of an [`EntrySet`]: a keyed record of an organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub org: String,
    pub key: String,
    /// Of two entries of one key, the one with the higher rank is the entry.
    pub rank: u64,
    /// When it was written (microseconds since the epoch, the writer's clock).
    pub written: i64,
    pub body: String,
}

/// How far back from what it has seen a node reads an [`EntrySet`] again: nodes' clocks
/// differ, and an entry may reach the replica read later than a newer one.
pub const SHARED_SKEW_US: i64 = 60_000_000;

/// How often a node deletes a set's entries that no longer matter
/// ([`EntrySet::forget_before`]).
pub const FORGET_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Entries shared by several nodes, written one at a time (too many and too often changed
/// for one [`Document`]: the users directory). Appended; read back by when they were written.
pub trait EntrySet: Send + Sync {
    fn put(&self, entries: &[Entry]) -> std::io::Result<()>;

    /// The entries written after `after` (microseconds), oldest first.
    fn since(&self, after: i64) -> std::io::Result<Vec<Entry>>;

    /// Deletes the entries written before `before` (microseconds), for sets whose old entries
    /// no longer matter (ended sessions). Sets that keep every entry do nothing.
    fn forget_before(&self, before: i64) -> std::io::Result<()> {
        let _ = before;
        Ok(())
    }
}

/// The documents of one data directory.
pub struct DataDirDocuments(pub PathBuf);

impl Documents for DataDirDocuments {
    fn document(&self, name: &str) -> Box<dyn Document> {
        Box::new(FileDocument::in_data_dir(&self.0, name))
    }
}

/// How many times a change is applied again on top of another node's newer document before
/// giving up (each retry means someone else wrote in between).
pub const CHANGE_ATTEMPTS: usize = 8;

/// An [`EntrySet`] in memory for tests: clones share one set, as nodes share a store.
#[cfg(test)]
pub(crate) mod memory {
    use super::{Entry, EntrySet};
    use parking_lot::Mutex;

    /// A set in memory, as two nodes see one store (only what the test needs of one).
    #[derive(Clone, Default)]
    pub(crate) struct MemorySet {
        pub(crate) entries: std::sync::Arc<Mutex<Vec<Entry>>>,
        pub(crate) down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl EntrySet for MemorySet {
        fn put(&self, entries: &[Entry]) -> std::io::Result<()> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(std::io::Error::other("unreachable"));
            }
            self.entries.lock().extend_from_slice(entries);
            Ok(())
        }

        fn since(&self, after: i64) -> std::io::Result<Vec<Entry>> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(std::io::Error::other("unreachable"));
            }
            let mut out: Vec<Entry> = self.entries.lock().iter().filter(|e| e.written > after).cloned().collect();
            out.sort_by_key(|e| e.written);
            Ok(out)
        }

        fn forget_before(&self, before: i64) -> std::io::Result<()> {
            self.entries.lock().retain(|e| e.written >= before);
            Ok(())
        }
    }
}
