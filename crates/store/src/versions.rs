//! The version index (the latest revision and content hash of every event id, which decides new
//! / duplicate / revision on the write path) and its snapshot file.
//!
//! Rebuilding the index reads every stored revision, about 0.4 µs each (3 s at 8M): a start
//! would slow down with the data forever. So the writer saves the index now and then to
//! `version-index.snap` with the log position it covers, and a start reads the snapshot, then
//! only the revisions stored from that position on.
//!
//! The snapshot is a cache, never a source of truth: a missing, damaged or unusable one (ahead
//! of the log or the store, or older than revisions the store has forgotten) is ignored and the
//! index is read from the store. Layout, little-endian: magic `SGNVIX01`; the log position
//! covered (u64); the entry count (u64); the count of ids with older revisions (u64); entries
//! (key u128, revision u32, content hash u64); per id with older revisions (key u128, count
//! u32, hashes u64 each); the xxh3-64 of everything before it (u64).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use signet_model::LogKind;
use tracing::{debug, info, warn};

use crate::engine::{EventStore, VersionEntry};
use crate::error::{io_err, Result};

pub(crate) const SNAPSHOT_FILE: &str = "version-index.snap";
const MAGIC: &[u8; 8] = b"SGNVIX01";
const ENTRY_BYTES: usize = 16 + 4 + 8;

/// A snapshot is saved once this share of the index (1/16) is new since the last one, and not
/// before this many events: saving 8M ids costs the writer ~0.1 s, a start then reads at most
/// a sixteenth of the revisions from the store.
const SNAPSHOT_MIN_EVENTS: usize = 100_000;
const SNAPSHOT_SHARE: usize = 16;

/// Latest (revision, content hash) of every id, and the hashes of older revisions of the few
/// ids that have them: decides new / duplicate / revision in memory. About 45 bytes per id.
#[derive(Default)]
pub(crate) struct VersionIndex {
    pub(crate) map: HashMap<u128, (u32, u64), KeyIsHash>,
    pub(crate) older: HashMap<u128, Vec<u64>, KeyIsHash>,
}

/// The index's keys are xxh3-128 hashes already: the map uses their low 64 bits instead of
/// hashing them again with SipHash.
#[derive(Clone, Copy, Default)]
pub(crate) struct KeyIsHash;

impl std::hash::BuildHasher for KeyIsHash {
    type Hasher = LowBits;

    fn build_hasher(&self) -> LowBits {
        LowBits(0)
    }
}

#[derive(Default)]
pub(crate) struct LowBits(u64);

impl std::hash::Hasher for LowBits {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed (`write_u128`); anything else still spreads.
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }

    fn write_u128(&mut self, key: u128) {
        self.0 ^= key as u64;
    }
}

pub(crate) fn version_key(org: &str, kind: LogKind, id: &str) -> u128 {
    // Built on the stack when it fits (every real id does): restarts compute one per stored
    // revision.
    let len = org.len() + id.len() + 3;
    let mut stack = [0u8; 256];
    let mut heap = Vec::new();
    let key: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    key[..org.len()].copy_from_slice(org.as_bytes());
    key[org.len()..org.len() + 3].copy_from_slice(&[0, kind.code(), 0]);
    key[org.len() + 3..].copy_from_slice(id.as_bytes());
    xxhash_rust::xxh3::xxh3_128(key)
}

impl VersionIndex {
    /// The index of what `store` holds: from the snapshot in `dir` and the revisions stored
    /// after it when the snapshot is usable, else from every stored revision. `log_end` is the
    /// end of the event log, which the store has applied entirely. Also returns how many
    /// revisions no snapshot covers (they count towards the next save).
    pub(crate) fn load(dir: &Path, store: &dyn EventStore, log_end: u64) -> Result<(VersionIndex, usize)> {
        let started = std::time::Instant::now();
        let applied = store.applied_position()?;
        if let Some((mut index, position)) = read_snapshot(&dir.join(SNAPSHOT_FILE), log_end.min(applied)) {
            let from_snapshot = index.map.len();
            let mut after = 0;
            let read = store.for_each_version_from(position, &mut |v| {
                after += 1;
                index.add(v)
            })?;
            if read {
                info!(
                    ids = index.map.len(),
                    from_snapshot,
                    after,
                    position,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "version index read from its snapshot and the revisions after it"
                );
                return Ok((index, after));
            }
        }
        let mut index = VersionIndex::default();
        // One allocation instead of a doubling table's every size (each zeroed page by page).
        if let Some(count) = store.version_count()? {
            index.map.reserve(count as usize);
        }
        store.for_each_version(&mut |v| index.add(v))?;
        info!(
            ids = index.map.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "version index read from every stored revision"
        );
        let uncovered = index.revisions();
        Ok((index, uncovered))
    }

    /// The index when the store cannot be reached (a remote store that is down while the node
    /// starts): the snapshot and what this node's event log holds after it, or the whole log.
    /// Only what this node (or, through the snapshot, the store) knew: revisions another node
    /// stored meanwhile are learnt at the next start with the store up.
    pub(crate) fn load_from_log(dir: &Path, log: &crate::log::EventLog) -> Result<(VersionIndex, usize)> {
        let started = std::time::Instant::now();
        let (mut index, from) = match read_snapshot(&dir.join(SNAPSHOT_FILE), log.end()) {
            Some((index, position)) => (index, position.max(log.start())),
            None => (VersionIndex::default(), log.start()),
        };
        let mut after = 0;
        log.scan(from, 50_000, |batch, _| {
            after += batch.len();
            for (_, r) in &batch {
                index.add(VersionEntry {
                    org: &r.org,
                    kind: r.kind,
                    id: &r.id,
                    revision: r.revision,
                    content_hash: r.content_hash,
                });
            }
            Ok(())
        })?;
        info!(
            ids = index.map.len(),
            after,
            from,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "version index read from its snapshot and the event log (the store is unreachable)"
        );
        Ok((index, after))
    }

    fn add(&mut self, v: VersionEntry<'_>) {
        let key = version_key(v.org, v.kind, v.id);
        match self.map.get(&key).copied() {
            // A copy (a store that may hold a row twice until it merges, read as it is).
            Some((revision, hash)) if revision == v.revision && hash == v.content_hash => {}
            Some((revision, _)) if revision >= v.revision => self.older.entry(key).or_default().push(v.content_hash),
            Some((_, hash)) => {
                self.older.entry(key).or_default().push(hash);
                self.map.insert(key, (v.revision, v.content_hash));
            }
            None => {
                self.map.insert(key, (v.revision, v.content_hash));
            }
        }
    }

    /// Whether this content is already stored under the id, as the latest or an older revision.
    pub(crate) fn is_known(&self, key: u128, latest_hash: u64, hash: u64) -> bool {
        latest_hash == hash || self.older.get(&key).is_some_and(|hashes| hashes.contains(&hash))
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn revisions(&self) -> usize {
        self.map.len() + self.older.values().map(Vec::len).sum::<usize>()
    }

    fn encode(&self, position: u64) -> Vec<u8> {
        let older_bytes: usize = self.older.values().map(|h| 20 + 8 * h.len()).sum();
        let mut out = Vec::with_capacity(32 + self.map.len() * ENTRY_BYTES + older_bytes + 8);
        out.extend_from_slice(MAGIC);
        for n in [position, self.map.len() as u64, self.older.len() as u64] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for (key, (revision, hash)) in &self.map {
            out.extend_from_slice(&key.to_le_bytes());
            out.extend_from_slice(&revision.to_le_bytes());
            out.extend_from_slice(&hash.to_le_bytes());
        }
        for (key, hashes) in &self.older {
            out.extend_from_slice(&key.to_le_bytes());
            out.extend_from_slice(&(hashes.len() as u32).to_le_bytes());
            for hash in hashes {
                out.extend_from_slice(&hash.to_le_bytes());
            }
        }
        let sum = xxhash_rust::xxh3::xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> std::result::Result<(VersionIndex, u64), String> {
        let (body, sum) = bytes.split_at_checked(bytes.len().saturating_sub(8)).ok_or("too short")?;
        if sum.len() != 8 || body.len() < 32 || &body[..8] != MAGIC {
            return Err("not a version index snapshot".into());
        }
        if xxhash_rust::xxh3::xxh3_64(body) != u64::from_le_bytes(sum.try_into().unwrap()) {
            return Err("checksum mismatch".into());
        }
        let mut reader = Reader(&body[8..]);
        let position = reader.u64()?;
        let (entries, olders) = (reader.u64()? as usize, reader.u64()? as usize);
        if entries.saturating_mul(ENTRY_BYTES) > reader.0.len() {
            return Err("entry count beyond the file".into());
        }
        let mut index = VersionIndex::default();
        index.map.reserve(entries);
        for _ in 0..entries {
            let key = reader.u128()?;
            let value = (reader.u32()?, reader.u64()?);
            index.map.insert(key, value);
        }
        for _ in 0..olders {
            let key = reader.u128()?;
            let count = reader.u32()? as usize;
            let hashes = (0..count).map(|_| reader.u64()).collect::<std::result::Result<Vec<_>, _>>()?;
            index.older.insert(key, hashes);
        }
        if !reader.0.is_empty() {
            return Err("bytes after the last entry".into());
        }
        Ok((index, position))
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let (head, rest) = self.0.split_at_checked(N).ok_or("truncated")?;
        self.0 = rest;
        Ok(head.try_into().unwrap())
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        self.take().map(u64::from_le_bytes)
    }

    fn u128(&mut self) -> std::result::Result<u128, String> {
        self.take().map(u128::from_le_bytes)
    }
}

/// The snapshot at `path` and the position it covers, if it is sound and `limit` (what both the
/// log and the store hold) reaches its position.
fn read_snapshot(path: &Path, limit: u64) -> Option<(VersionIndex, u64)> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            warn!(path = %path.display(), error = %err, "version index snapshot unreadable; reading the store");
            return None;
        }
    };
    match VersionIndex::decode(&bytes) {
        Ok((_, position)) if position > limit => {
            warn!(position, limit, "version index snapshot is ahead of the log or the store; reading the store");
            None
        }
        Ok(found) => Some(found),
        Err(reason) => {
            warn!(path = %path.display(), reason, "version index snapshot damaged; reading the store");
            None
        }
    }
}

/// Saving snapshots: shared by the writer thread (which owns the index) and the engine (which
/// stops them when revisions are forgotten).
pub(crate) struct Snapshots {
    path: PathBuf,
    /// The data directory's free-space reserve for the event log: a snapshot never eats into it.
    reserve_bytes: u64,
    /// Set once revisions were forgotten: the running index still holds them, so it is never
    /// saved again by this process. Held while a snapshot is renamed into place.
    stopped: Mutex<bool>,
    writing: AtomicBool,
    background: Mutex<Option<JoinHandle<()>>>,
}

/// The writer's side: when the next snapshot is due.
pub(crate) struct SnapshotSchedule {
    snapshots: Arc<Snapshots>,
    since_last: usize,
    due_after: usize,
}

impl Snapshots {
    pub(crate) fn new(dir: &Path, reserve_bytes: u64) -> Arc<Snapshots> {
        // What a save cut short by a crash left.
        let _ = std::fs::remove_file(dir.join(SNAPSHOT_FILE).with_extension("snap.tmp"));
        Arc::new(Snapshots {
            path: dir.join(SNAPSHOT_FILE),
            reserve_bytes,
            stopped: Mutex::new(false),
            writing: AtomicBool::new(false),
            background: Mutex::new(None),
        })
    }

    /// The writer's schedule, given how many revisions of `index` no snapshot covers yet
    /// (processes killed before they saved add up).
    pub(crate) fn schedule(self: &Arc<Self>, index: &VersionIndex, uncovered: usize) -> SnapshotSchedule {
        SnapshotSchedule { snapshots: self.clone(), since_last: uncovered, due_after: due_after(index) }
    }

    /// No more snapshots from this process, and the saved one removed: called before the store
    /// forgets revisions.
    pub(crate) fn stop(&self) -> Result<()> {
        let mut stopped = self.stopped.lock();
        *stopped = true;
        match std::fs::remove_file(&self.path) {
            Ok(()) => sync_dir(&self.path),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io_err(&self.path)(err)),
        }
    }

    fn save(&self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let free = crate::disk::disk_space(dir).map_err(io_err(dir))?.free;
        if free < bytes.len() as u64 + self.reserve_bytes {
            // The event log needs the space more; the next start reads the store instead.
            debug!(free, size = bytes.len(), "not saving the version index: the disk is nearly full");
            return Ok(());
        }
        let tmp = self.path.with_extension("snap.tmp");
        // Not synced: after a power cut the file may hold anything, which its checksum
        // refuses, or be the previous snapshot, which is still usable (it covers less). A
        // process killed after the rename leaves it whole in the page cache.
        std::fs::File::create(&tmp).and_then(|mut file| file.write_all(bytes)).map_err(io_err(&tmp))?;
        let stopped = self.stopped.lock();
        if *stopped {
            return std::fs::remove_file(&tmp).map_err(io_err(&tmp));
        }
        std::fs::rename(&tmp, &self.path).map_err(io_err(&self.path))
    }

    fn join_background(&self) {
        if let Some(handle) = self.background.lock().take() {
            let _ = handle.join();
        }
    }
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

fn due_after(index: &VersionIndex) -> usize {
    (index.revisions() / SNAPSHOT_SHARE).max(SNAPSHOT_MIN_EVENTS)
}

impl SnapshotSchedule {
    /// After a commit of `events` new revisions ending at log position `end`: saves the index
    /// in the background when enough is new and no save is running.
    pub(crate) fn committed(&mut self, index: &VersionIndex, events: usize, end: u64) {
        self.since_last += events;
        if self.since_last < self.due_after || *self.snapshots.stopped.lock() {
            return;
        }
        if self.snapshots.writing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.snapshots.join_background();
        let started = std::time::Instant::now();
        let bytes = index.encode(end);
        debug!(ids = index.len(), encode_ms = started.elapsed().as_millis() as u64, "saving the version index");
        self.since_last = 0;
        self.due_after = due_after(index);
        let snapshots = self.snapshots.clone();
        let spawned = std::thread::Builder::new().name("signet-index-snapshot".into()).spawn({
            let snapshots = snapshots.clone();
            move || {
                if let Err(err) = snapshots.save(&bytes) {
                    warn!(error = %err, "saving the version index snapshot failed; the next start reads the store");
                }
                snapshots.writing.store(false, Ordering::Release);
            }
        });
        match spawned {
            Ok(handle) => *snapshots.background.lock() = Some(handle),
            Err(err) => {
                warn!(error = %err, "no thread to save the version index");
                snapshots.writing.store(false, Ordering::Release);
            }
        }
    }

    /// At a clean stop, with the log ending at `end`: the index saved if anything is new.
    pub(crate) fn finish(&mut self, index: &VersionIndex, end: u64) {
        self.snapshots.join_background();
        if self.since_last == 0 || *self.snapshots.stopped.lock() {
            return;
        }
        if let Err(err) = self.snapshots.save(&index.encode(end)) {
            warn!(error = %err, "saving the version index snapshot at shutdown failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> VersionIndex {
        let mut index = VersionIndex::default();
        for (i, org) in ["org-a", "org-b"].iter().enumerate() {
            for n in 0..100u32 {
                let id = format!("id-{n}");
                index.add(VersionEntry { org, kind: LogKind::SignIn, id: &id, revision: 1, content_hash: n as u64 });
                if n % 10 == i as u32 {
                    index.add(VersionEntry { org, kind: LogKind::SignIn, id: &id, revision: 2, content_hash: 1000 });
                }
            }
        }
        index
    }

    #[test]
    fn a_snapshot_reads_back_as_the_same_index() {
        let index = sample();
        let (back, position) = VersionIndex::decode(&index.encode(4242)).unwrap();
        assert_eq!(position, 4242);
        assert_eq!(back.map, index.map);
        assert_eq!(back.older, index.older);
        assert_eq!(back.revisions(), 220);
    }

    #[test]
    fn a_damaged_snapshot_is_refused() {
        let bytes = sample().encode(7);
        for cut in [0, 8, 31, bytes.len() / 2, bytes.len() - 1] {
            assert!(VersionIndex::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[100] ^= 1;
        assert_eq!(VersionIndex::decode(&flipped).err().as_deref(), Some("checksum mismatch"));
    }

    #[test]
    fn a_snapshot_ahead_of_the_log_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SNAPSHOT_FILE);
        std::fs::write(&path, sample().encode(500)).unwrap();
        assert!(read_snapshot(&path, 499).is_none());
        assert_eq!(read_snapshot(&path, 500).map(|(index, p)| (index.len(), p)), Some((200, 500)));
    }
}
