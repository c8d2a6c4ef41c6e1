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
        replace_file(&self.path, &self.path.with_extension("json.tmp"), self.mode, bytes)?;
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
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Replaces `path` with `bytes` atomically: written to `tmp` (with `mode`) and synced, renamed
/// over `path`, then the directory synced.
fn replace_file(path: &Path, tmp: &Path, mode: u32, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(path);
    std::fs::create_dir_all(dir)?;
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// An [`EntrySet`] in a file of one node's data directory (what a lone node keeps of its
/// console sessions, so that a restart does not sign everyone out): one JSON line per entry,
/// appended and synced to disk before [`EntrySet::put`] returns. [`EntrySet::forget_before`]
/// rewrites the file (temporary file, fsync, rename, fsync of the directory) with the entries
/// still wanted, the entry of each key only (the higher rank, then the later write). A line cut
/// short by a crash is skipped when read and does not swallow the next append.
pub struct FileEntrySet {
    path: PathBuf,
    /// Unix permissions of the file (under `auth/`: 0600).
    mode: u32,
    /// One change of the file at a time (appends from requests, rewrites from the flusher).
    lock: parking_lot::Mutex<()>,
}

impl FileEntrySet {
    /// The entry set `name` of a data directory: `DATA/<name>`, private (0600) under `auth/`.
    pub fn in_data_dir(data_dir: &Path, name: &str) -> FileEntrySet {
        let mode = if name.starts_with("auth/") { 0o600 } else { 0o644 };
        FileEntrySet { path: data_dir.join(name), mode, lock: parking_lot::Mutex::new(()) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry of the file, in the order written; lines that do not parse are skipped.
    fn read_all(&self) -> std::io::Result<Vec<Entry>> {
        let text = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        let mut entries = Vec::new();
        for line in text.split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
            match serde_json::from_slice::<Entry>(line) {
                Ok(entry) => entries.push(entry),
                Err(_) => {
                    tracing::warn!(file = %self.path.display(), "an entry line does not parse (cut short by a crash?): skipped")
                }
            }
        }
        Ok(entries)
    }

    fn lines(entries: &[Entry]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        for entry in entries {
            serde_json::to_writer(&mut out, entry).map_err(std::io::Error::other)?;
            out.push(b'\n');
        }
        Ok(out)
    }
}

impl EntrySet for FileEntrySet {
    fn put(&self, entries: &[Entry]) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom, Write};
        if entries.is_empty() {
            return Ok(());
        }
        let _guard = self.lock.lock();
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, self.mode);
        let mut file = options.open(&self.path)?;
        let mut bytes = Vec::new();
        // A line a crash cut short is ended first, so that it does not take this one with it.
        if file.seek(SeekFrom::End(0))? > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::End(-1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                bytes.push(b'\n');
            }
        }
        bytes.extend(Self::lines(entries)?);
        file.write_all(&bytes)?;
        file.sync_data()
    }

    fn since(&self, after: i64) -> std::io::Result<Vec<Entry>> {
        let _guard = self.lock.lock();
        let mut entries: Vec<Entry> = self.read_all()?.into_iter().filter(|e| e.written > after).collect();
        entries.sort_by_key(|e| e.written);
        Ok(entries)
    }

    fn forget_before(&self, before: i64) -> std::io::Result<()> {
        let _guard = self.lock.lock();
        let mut kept: Vec<Entry> = Vec::new();
        let mut at: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
        for entry in self.read_all()?.into_iter().filter(|e| e.written >= before) {
            let key = (entry.org.clone(), entry.key.clone());
            match at.get(&key) {
                Some(&i) if (kept[i].rank, kept[i].written) > (entry.rank, entry.written) => {}
                Some(&i) => kept[i] = entry,
                None => {
                    at.insert(key, kept.len());
                    kept.push(entry);
                }
            }
        }
        kept.sort_by_key(|e| e.written);
        replace_file(&self.path, &self.path.with_extension("tmp"), self.mode, &Self::lines(&kept)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, rank: u64, written: i64) -> Entry {
        Entry { org: "o".into(), key: key.into(), rank, written, body: format!("{{\"at\":{written}}}") }
    }

    #[test]
    fn a_file_entry_set_appends_survives_a_cut_line_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let set = FileEntrySet::in_data_dir(dir.path(), "auth/sessions.jsonl");
        assert_eq!(set.since(0).unwrap(), vec![], "no file yet");
        set.put(&[entry("a", 0, 10), entry("b", 0, 20)]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(set.path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "private under auth/");
        }
        // A crash in the middle of an append leaves a line without its end.
        let mut bytes = std::fs::read(set.path()).unwrap();
        bytes.extend_from_slice(br#"{"org":"o","key":"c","ra"#);
        std::fs::write(set.path(), &bytes).unwrap();
        set.put(&[entry("a", 0, 30), entry("a", 1, 25)]).unwrap();
        let keys = |entries: Vec<Entry>| entries.into_iter().map(|e| (e.key, e.rank, e.written)).collect::<Vec<_>>();
        assert_eq!(
            keys(set.since(15).unwrap()),
            vec![("b".into(), 0, 20), ("a".into(), 1, 25), ("a".into(), 0, 30)],
            "after 15, oldest first; the cut line skipped, the next append whole"
        );
        // Compaction: entries before 15 go, and of each key only its entry stays (the higher
        // rank, then the later write).
        set.forget_before(15).unwrap();
        assert_eq!(keys(set.since(0).unwrap()), vec![("b".into(), 0, 20), ("a".into(), 1, 25)]);
        let text = std::fs::read_to_string(set.path()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        set.put(&[entry("d", 0, 40)]).unwrap();
        assert_eq!(keys(set.since(30).unwrap()), vec![("d".into(), 0, 40)]);
    }
}
