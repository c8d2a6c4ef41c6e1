//! The version index (the latest revision and content hash of every event id, which decides new
//! / duplicate / revision on the write path) and its snapshot file.
//!
//! Rebuilding the index reads every stored revision, about 0.4 µs each (3 s at 8M): a start
//! would slow down with the data forever. So the writer saves the index now and then to
//! `version-index.snap` with the log position it covers, and a start reads the snapshot, then
//! only the revisions stored from that position on. Rewriting the whole index at every save
//! wrote 16 times its 28 bytes per id for each new revision (3 % of the server's CPU during
//! ingest, docs/benchmarks.md run 42), so a save appends what was added since the last one to
//! `version-index.delta` instead, until the deltas outgrow the snapshot they follow; then the
//! whole index is saved again and the deltas removed.
//!
//! The snapshot is a cache, never a source of truth: a missing, damaged or unusable one (ahead
//! of the log or the store, or older than revisions the store has forgotten) is ignored and the
//! index is read from the store. Layout, little-endian: magic `SGNVIX01`; the log position
//! covered (u64); the entry count (u64); the count of ids with older revisions (u64); entries
//! (key u128, revision u32, content hash u64); per id with older revisions (key u128, count
//! u32, hashes u64 each); the xxh3-64 of everything before it (u64). Deltas: [`encode_delta`].

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
/// What was added to the index after the snapshot, appended one delta per save.
pub(crate) const DELTA_FILE: &str = "version-index.delta";
const MAGIC: &[u8; 8] = b"SGNVIX01";
const DELTA_MAGIC: &[u8; 8] = b"SGNVID01";
const ENTRY_BYTES: usize = 16 + 4 + 8;
/// A delta's bytes besides its entries: magic, from, to, count, checksum.
const DELTA_OVERHEAD: usize = 8 + 3 * 8 + 8;

/// A save is due once this share of the index (1/16) is new since the last one, and not before
/// this many events: a start then reads at most a sixteenth of the revisions from the store.
/// Encoding the whole index costs the writer ~0.1 s per 8M ids; a delta, 28 bytes per addition.
const SNAPSHOT_MIN_EVENTS: usize = 100_000;
const SNAPSHOT_SHARE: usize = 16;

/// Latest (revision, content hash) of every id, and the hashes of older revisions of the few
/// ids that have them: decides new / duplicate / revision in memory. About 45 bytes per id.
#[derive(Default)]
pub(crate) struct VersionIndex {
    pub(crate) map: LatestMap,
    pub(crate) older: HashMap<u128, Vec<u64>, KeyIsHash>,
}

/// Tables [`LatestMap`] splits the ids into.
const SHARDS: usize = 64;

/// The latest (revision, content hash) of every id, in [`SHARDS`] hash tables chosen by the
/// key's top bits. A hash table grows by doubling and moves every entry at once, the writer
/// (and so every acknowledgement) waiting: at 16M ids one insert into a single table took
/// 2.2 s here, and the old and new tables were both held meanwhile. Split, the tables double
/// one at a time, each a 64th of the index (the worst insert 85 ms at 16M ids, 0.5 ms at 1M
/// instead of 21; docs/benchmarks.md run 43).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LatestMap(Box<[HashMap<u128, Latest, KeyIsHash>]>);

impl Default for LatestMap {
    fn default() -> Self {
        LatestMap((0..SHARDS).map(|_| HashMap::default()).collect())
    }
}

impl LatestMap {
    /// The table of a key: its top bits (the tables hash with the low 64).
    fn shard(key: u128) -> usize {
        (key >> (128 - SHARDS.trailing_zeros())) as usize
    }

    pub(crate) fn get(&self, key: &u128) -> Option<&Latest> {
        self.0[Self::shard(*key)].get(key)
    }

    pub(crate) fn insert(&mut self, key: u128, latest: Latest) -> Option<Latest> {
        self.0[Self::shard(key)].insert(key, latest)
    }

    pub(crate) fn remove(&mut self, key: &u128) -> Option<Latest> {
        self.0[Self::shard(*key)].remove(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.iter().map(HashMap::len).sum()
    }

    /// Room for `additional` more ids spread evenly (plus their spread's margin).
    fn reserve(&mut self, additional: usize) {
        let each = additional / SHARDS;
        for table in self.0.iter_mut() {
            table.reserve(each + each / 16 + 16);
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&u128, &Latest)> {
        self.0.iter().flatten()
    }
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
        if let Some((mut index, position)) = read_snapshot(dir, log_end.min(applied)) {
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
        let (mut index, from) = match read_snapshot(dir, log.end()) {
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
        self.add_key(version_key(v.org, v.kind, v.id), v.revision, v.content_hash);
    }

    fn add_key(&mut self, key: u128, revision: u32, content_hash: u64) {
        match self.map.get(&key).copied() {
            // A copy (a store that may hold a row twice until it merges, read as it is).
            Some((stored, hash)) if stored == revision && hash == content_hash => {}
            Some((stored, _)) if stored >= revision => self.older.entry(key).or_default().push(content_hash),
            Some((_, hash)) => {
                self.older.entry(key).or_default().push(hash);
                self.map.insert(key, (revision, content_hash));
            }
            None => {
                self.map.insert(key, (revision, content_hash));
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
        for (key, (revision, hash)) in self.map.iter() {
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

/// The snapshot in `dir` with the deltas that continue it, and the position they cover: `None`
/// unless the snapshot is sound and `limit` (what both the log and the store hold) reaches its
/// position. Deltas are applied while each continues from where the last ended and reaches no
/// further than `limit`; the first that does not (torn by a crash, left from an older snapshot,
/// ahead of the log) ends them.
fn read_snapshot(dir: &Path, limit: u64) -> Option<(VersionIndex, u64)> {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = read_if_present(&path)?;
    let (mut index, position) = match VersionIndex::decode(&bytes) {
        Ok((_, position)) if position > limit => {
            warn!(position, limit, "version index snapshot is ahead of the log or the store; reading the store");
            return None;
        }
        Ok(found) => found,
        Err(reason) => {
            warn!(path = %path.display(), reason, "version index snapshot damaged; reading the store");
            return None;
        }
    };
    drop(bytes);
    let Some(deltas) = read_if_present(&dir.join(DELTA_FILE)) else {
        return Some((index, position));
    };
    let (reached, applied, stop) = apply_deltas(&mut index, &deltas, position, limit);
    if let Some(reason) = stop {
        debug!(applied, position = reached, reason, "version index deltas end here");
    }
    Some((index, reached))
}

fn read_if_present(path: &Path) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => {
            warn!(path = %path.display(), error = %err, "version index file unreadable; reading the store");
            None
        }
    }
}

/// An id's latest revision and its content hash, as the index holds them.
pub(crate) type Latest = (u32, u64);

/// What the writer added to the index since the last save, in order: key, revision, hash.
type Journal = Vec<(u128, Latest)>;

/// A delta: the index's additions from log position `from` to `to`, replayed in order on load.
/// Layout (little-endian): `SGNVID01`, from u64, to u64, count u64, entries (key u128, revision
/// u32, content hash u64), xxh3-64 of all that (u64).
fn encode_delta(from: u64, to: u64, journal: &[(u128, Latest)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DELTA_OVERHEAD + journal.len() * ENTRY_BYTES);
    out.extend_from_slice(DELTA_MAGIC);
    for n in [from, to, journal.len() as u64] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    for (key, (revision, hash)) in journal {
        out.extend_from_slice(&key.to_le_bytes());
        out.extend_from_slice(&revision.to_le_bytes());
        out.extend_from_slice(&hash.to_le_bytes());
    }
    let sum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Applies the deltas in `bytes` that chain on from `position` (see [`read_snapshot`]). Returns
/// the position reached, how many deltas were applied and, unless all of them were, why not.
fn apply_deltas(
    index: &mut VersionIndex,
    mut bytes: &[u8],
    mut position: u64,
    limit: u64,
) -> (u64, usize, Option<String>) {
    let mut applied = 0;
    while !bytes.is_empty() {
        let chunk = match delta_chunk(bytes) {
            Ok(chunk) => chunk,
            Err(reason) => return (position, applied, Some(reason.into())),
        };
        let mut reader = Reader(&chunk[8..chunk.len() - 8]);
        let (from, to, count) = (reader.u64().unwrap(), reader.u64().unwrap(), reader.u64().unwrap());
        if from != position || to < from || to > limit {
            return (
                position,
                applied,
                Some(format!("a delta from {from} to {to} does not continue {position} within {limit}")),
            );
        }
        for _ in 0..count {
            let key = reader.u128().unwrap();
            let (revision, hash) = (reader.u32().unwrap(), reader.u64().unwrap());
            index.add_key(key, revision, hash);
        }
        (position, applied, bytes) = (to, applied + 1, &bytes[chunk.len()..]);
    }
    (position, applied, None)
}

/// The first delta of `bytes`, whole and with its checksum verified.
fn delta_chunk(bytes: &[u8]) -> std::result::Result<&[u8], &'static str> {
    if bytes.len() < DELTA_OVERHEAD || &bytes[..8] != DELTA_MAGIC {
        return Err("not a delta (torn, or damaged)");
    }
    let count = u64::from_le_bytes(bytes[24..32].try_into().unwrap());
    let len = usize::try_from(count)
        .ok()
        .and_then(|count| count.checked_mul(ENTRY_BYTES))
        .and_then(|entries| entries.checked_add(DELTA_OVERHEAD))
        .filter(|&len| len <= bytes.len())
        .ok_or("a delta cut short")?;
    let (body, sum) = bytes[..len].split_at(len - 8);
    if xxhash_rust::xxh3::xxh3_64(body) != u64::from_le_bytes(sum.try_into().unwrap()) {
        return Err("a delta's checksum does not match");
    }
    Ok(&bytes[..len])
}

/// Saving snapshots: shared by the writer thread (which owns the index) and the engine (which
/// stops them when revisions are forgotten).
pub(crate) struct Snapshots {
    path: PathBuf,
    delta_path: PathBuf,
    /// The data directory's free-space reserve for the event log: a snapshot never eats into it.
    reserve_bytes: u64,
    /// Set once revisions were forgotten: the running index still holds them, so it is never
    /// saved again by this process. Held while a snapshot is renamed into place or a delta
    /// appended.
    stopped: Mutex<bool>,
    writing: AtomicBool,
    /// The next save must be a whole snapshot: none saved by this process yet, or a save failed
    /// (the deltas after it would not continue the file's).
    need_whole: AtomicBool,
    background: Mutex<Option<JoinHandle<()>>>,
}

/// One save: the whole index, or a delta appended to the deltas after it.
enum Save {
    Whole(Vec<u8>),
    Delta(Vec<u8>),
}

/// The writer's side: when the next snapshot is due, and what it adds.
pub(crate) struct SnapshotSchedule {
    snapshots: Arc<Snapshots>,
    since_last: usize,
    due_after: usize,
    /// Additions since the last save, and the position that save covered.
    journal: Journal,
    covered: u64,
    /// Sizes of the whole snapshot and of the deltas saved after it.
    whole_bytes: usize,
    delta_bytes: usize,
}

impl Snapshots {
    pub(crate) fn new(dir: &Path, reserve_bytes: u64) -> Arc<Snapshots> {
        // What a save cut short by a crash left.
        let _ = std::fs::remove_file(dir.join(SNAPSHOT_FILE).with_extension("snap.tmp"));
        Arc::new(Snapshots {
            path: dir.join(SNAPSHOT_FILE),
            delta_path: dir.join(DELTA_FILE),
            reserve_bytes,
            stopped: Mutex::new(false),
            writing: AtomicBool::new(false),
            need_whole: AtomicBool::new(true),
            background: Mutex::new(None),
        })
    }

    /// The writer's schedule, given how many revisions of `index` no snapshot covers yet
    /// (processes killed before they saved add up).
    pub(crate) fn schedule(self: &Arc<Self>, index: &VersionIndex, uncovered: usize) -> SnapshotSchedule {
        SnapshotSchedule {
            snapshots: self.clone(),
            since_last: uncovered,
            due_after: due_after(index),
            journal: Vec::new(),
            covered: 0,
            whole_bytes: 0,
            delta_bytes: 0,
        }
    }

    /// No more snapshots from this process, and the saved one removed: called before the store
    /// forgets revisions.
    pub(crate) fn stop(&self) -> Result<()> {
        let mut stopped = self.stopped.lock();
        *stopped = true;
        for path in [&self.path, &self.delta_path] {
            match std::fs::remove_file(path) {
                Ok(()) => sync_dir(path)?,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(io_err(path)(err)),
            }
        }
        Ok(())
    }

    /// Saves in the background; a save that fails or is skipped makes the next one whole.
    fn save_later(self: &Arc<Self>, save: Save) {
        let spawned = std::thread::Builder::new().name("signet-index-snapshot".into()).spawn({
            let snapshots = self.clone();
            move || {
                snapshots.save_or_mark(&save);
                snapshots.writing.store(false, Ordering::Release);
            }
        });
        match spawned {
            Ok(handle) => *self.background.lock() = Some(handle),
            Err(err) => {
                warn!(error = %err, "no thread to save the version index");
                self.need_whole.store(true, Ordering::Release);
                self.writing.store(false, Ordering::Release);
            }
        }
    }

    fn save_or_mark(&self, save: &Save) {
        match self.save(save) {
            Ok(true) => {}
            Ok(false) => self.need_whole.store(true, Ordering::Release),
            Err(err) => {
                warn!(error = %err, "saving the version index snapshot failed; the next start reads more of the store");
                self.need_whole.store(true, Ordering::Release);
            }
        }
    }

    /// Writes `save`; false when it was not (the disk nearly full, or snapshots stopped).
    fn save(&self, save: &Save) -> Result<bool> {
        use std::io::Write;
        let bytes = match save {
            Save::Whole(bytes) | Save::Delta(bytes) => bytes,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let free = crate::disk::disk_space(dir).map_err(io_err(dir))?.free;
        if free < bytes.len() as u64 + self.reserve_bytes {
            // The event log needs the space more; the next start reads the store instead.
            debug!(free, size = bytes.len(), "not saving the version index: the disk is nearly full");
            return Ok(false);
        }
        // Neither file is synced: after a power cut a file may hold anything, which the
        // checksums refuse, or be older, which is still usable (it covers less). A process
        // killed after a write leaves it whole in the page cache.
        match save {
            Save::Whole(bytes) => {
                let tmp = self.path.with_extension("snap.tmp");
                std::fs::File::create(&tmp).and_then(|mut file| file.write_all(bytes)).map_err(io_err(&tmp))?;
                let stopped = self.stopped.lock();
                if *stopped {
                    std::fs::remove_file(&tmp).map_err(io_err(&tmp))?;
                    return Ok(false);
                }
                std::fs::rename(&tmp, &self.path).map_err(io_err(&self.path))?;
                // The deltas of the snapshot replaced (a crash before this leaves them, and
                // they do not continue this one).
                match std::fs::remove_file(&self.delta_path) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io_err(&self.delta_path)(err)),
                    _ => Ok(true),
                }
            }
            Save::Delta(bytes) => {
                let stopped = self.stopped.lock();
                if *stopped {
                    return Ok(false);
                }
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.delta_path)
                    .map_err(io_err(&self.delta_path))?;
                file.write_all(bytes).map_err(io_err(&self.delta_path))?;
                drop(stopped);
                Ok(true)
            }
        }
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
    /// After a commit that added `added` (key, revision, hash, in order) to `index`, the log
    /// ending at `end`: saves in the background when enough is new and no save is running.
    pub(crate) fn committed(&mut self, index: &VersionIndex, added: impl Iterator<Item = (u128, Latest)>, end: u64) {
        let before = self.journal.len();
        self.journal.extend(added);
        self.since_last += self.journal.len() - before;
        if self.since_last < self.due_after {
            return;
        }
        if *self.snapshots.stopped.lock() {
            self.journal = Vec::new();
            return;
        }
        if self.snapshots.writing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.snapshots.join_background();
        let save = self.next_save(index, end);
        self.snapshots.save_later(save);
    }

    /// At a clean stop, with the log ending at `end`: the index saved if anything is new.
    pub(crate) fn finish(&mut self, index: &VersionIndex, end: u64) {
        self.snapshots.join_background();
        if self.since_last == 0 || *self.snapshots.stopped.lock() {
            return;
        }
        let save = self.next_save(index, end);
        self.snapshots.save_or_mark(&save);
    }

    /// What to save at `end`: a delta while the deltas stay smaller than the whole snapshot
    /// they follow (so a start reads at most twice the index's size, and saving costs about
    /// 56 bytes per added revision instead of 16 times the index's 28 bytes per id), else the
    /// whole index.
    fn next_save(&mut self, index: &VersionIndex, end: u64) -> Save {
        let delta_len = DELTA_OVERHEAD + self.journal.len() * ENTRY_BYTES;
        let whole =
            self.snapshots.need_whole.swap(false, Ordering::AcqRel) || self.delta_bytes + delta_len > self.whole_bytes;
        let save = if whole {
            let started = std::time::Instant::now();
            let bytes = index.encode(end);
            debug!(ids = index.len(), encode_ms = started.elapsed().as_millis() as u64, "saving the version index");
            (self.whole_bytes, self.delta_bytes) = (bytes.len(), 0);
            Save::Whole(bytes)
        } else {
            debug!(added = self.journal.len(), from = self.covered, to = end, "saving the version index's additions");
            self.delta_bytes += delta_len;
            Save::Delta(encode_delta(self.covered, end, &self.journal))
        };
        self.journal.clear();
        (self.covered, self.since_last, self.due_after) = (end, 0, due_after(index));
        save
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
    fn ids_spread_over_every_table_and_each_is_found_in_its_own() {
        let mut map = LatestMap::default();
        map.reserve(20_000);
        let keys: Vec<u128> = (0..20_000).map(|n| version_key("org", LogKind::SignIn, &format!("id-{n}"))).collect();
        for (n, key) in keys.iter().enumerate() {
            assert_eq!(map.insert(*key, (1, n as u64)), None);
        }
        assert_eq!(map.insert(keys[7], (2, 99)), Some((1, 7)), "a second revision replaces the first");
        assert_eq!(map.len(), 20_000);
        // 312.5 ids per table on average; a table with none or double would mean the top
        // bits do not spread (every doubling would then be the whole index's again).
        let sizes: Vec<usize> = map.0.iter().map(HashMap::len).collect();
        assert!(sizes.iter().all(|&n| (200..=450).contains(&n)), "{sizes:?}");
        for (n, key) in keys.iter().enumerate().skip(8) {
            assert_eq!(map.0[LatestMap::shard(*key)].get(key), Some(&(1, n as u64)));
        }
        assert_eq!(map.get(&keys[7]), Some(&(2, 99)));
        assert_eq!(map.remove(&keys[7]), Some((2, 99)));
        assert_eq!((map.get(&keys[7]), map.len(), map.iter().count()), (None, 19_999, 19_999));
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
        std::fs::write(dir.path().join(SNAPSHOT_FILE), sample().encode(500)).unwrap();
        assert!(read_snapshot(dir.path(), 499).is_none());
        assert_eq!(read_snapshot(dir.path(), 500).map(|(index, p)| (index.len(), p)), Some((200, 500)));
    }

    fn entry(n: u32) -> VersionEntry<'static> {
        let id: &'static str = Box::leak(format!("id-{}", n % 150).into_boxed_str());
        VersionEntry { org: "org-a", kind: LogKind::SignIn, id, revision: 1 + n / 150, content_hash: 7_000 + n as u64 }
    }

    /// A schedule that saves after every commit, and the index it follows.
    struct Writer {
        index: VersionIndex,
        schedule: SnapshotSchedule,
        next: u32,
    }

    impl Writer {
        fn new(dir: &Path) -> Writer {
            let index = VersionIndex::default();
            let schedule = Snapshots::new(dir, 0).schedule(&index, 0);
            Writer { index, schedule, next: 0 }
        }

        /// Adds `n` revisions as one commit ending at log position `end`, then lets a save run.
        fn commit(&mut self, n: u32, end: u64) {
            let added: Vec<_> = (self.next..self.next + n)
                .map(|i| {
                    let v = entry(i);
                    let added = (version_key(v.org, v.kind, v.id), (v.revision, v.content_hash));
                    self.index.add(v);
                    added
                })
                .collect();
            self.next += n;
            self.schedule.due_after = 1;
            self.schedule.committed(&self.index, added.into_iter(), end);
            self.schedule.snapshots.join_background();
        }
    }

    fn same(a: &VersionIndex, b: &VersionIndex) {
        assert_eq!(a.map, b.map);
        assert_eq!(a.older, b.older);
    }

    #[test]
    fn deltas_after_the_snapshot_read_back_as_the_same_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Writer::new(dir.path());
        writer.commit(100, 1_000);
        let whole = std::fs::read(dir.path().join(SNAPSHOT_FILE)).unwrap();
        assert!(!dir.path().join(DELTA_FILE).exists(), "a process's first save is whole");
        // New ids, then new revisions of ids the snapshot holds (older hashes): deltas while
        // they are smaller than the snapshot.
        writer.commit(40, 2_000);
        writer.commit(20, 3_000);
        assert_eq!(std::fs::read(dir.path().join(SNAPSHOT_FILE)).unwrap(), whole);
        let deltas = std::fs::read(dir.path().join(DELTA_FILE)).unwrap();
        assert_eq!(deltas.len(), 2 * DELTA_OVERHEAD + 60 * ENTRY_BYTES);
        let (read, position) = read_snapshot(dir.path(), 3_000).unwrap();
        assert_eq!(position, 3_000);
        same(&read, &writer.index);
        assert!(!read.older.is_empty());
        // What a start reads when the log or the store reaches less far: the deltas within it.
        let (_, position) = read_snapshot(dir.path(), 2_999).unwrap();
        assert_eq!(position, 2_000);
        // Once the deltas would outgrow the snapshot, the whole index is saved again and the
        // deltas are removed.
        writer.commit(100, 4_000);
        assert!(!dir.path().join(DELTA_FILE).exists());
        let (read, position) = read_snapshot(dir.path(), 4_000).unwrap();
        assert_eq!(position, 4_000);
        same(&read, &writer.index);
        writer.schedule.finish(&writer.index, 4_000);
        writer.commit(10, 5_000);
        writer.schedule.finish(&writer.index, 5_000);
        let (read, position) = read_snapshot(dir.path(), 5_000).unwrap();
        assert_eq!(position, 5_000);
        same(&read, &writer.index);
    }

    #[test]
    fn deltas_end_at_the_first_that_is_torn_damaged_or_does_not_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Writer::new(dir.path());
        writer.commit(100, 1_000);
        writer.commit(10, 2_000);
        let at_2000 = (writer.index.map.clone(), writer.index.older.clone());
        writer.commit(10, 3_000);
        let delta_path = dir.path().join(DELTA_FILE);
        let deltas = std::fs::read(&delta_path).unwrap();
        let first = DELTA_OVERHEAD + 10 * ENTRY_BYTES;
        let reached = |bytes: &[u8]| {
            std::fs::write(&delta_path, bytes).unwrap();
            let (index, position) = read_snapshot(dir.path(), u64::MAX).unwrap();
            (position, (index.map, index.older) == at_2000)
        };
        assert_eq!(reached(&deltas[..deltas.len() - 1]), (2_000, true), "torn");
        let mut flipped = deltas.clone();
        flipped[first + 40] ^= 1;
        assert_eq!(reached(&flipped), (2_000, true), "damaged");
        // Left by a crash between a whole save and the removal of the deltas it replaced.
        assert_eq!(reached(&deltas[first..]).0, 1_000, "not continuing the snapshot");
        let mut huge = deltas.clone();
        huge[first + 24..first + 32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(reached(&huge), (2_000, true), "a count beyond the file");
        assert_eq!(reached(&deltas).0, 3_000);
    }

    #[test]
    fn a_failed_save_makes_the_next_one_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Writer::new(dir.path());
        writer.commit(100, 1_000);
        writer.commit(10, 2_000);
        // A delta lost (as if the disk had been full): the next save cannot continue the file.
        writer.schedule.snapshots.need_whole.store(true, Ordering::Release);
        writer.commit(10, 3_000);
        assert!(!dir.path().join(DELTA_FILE).exists());
        let (read, position) = read_snapshot(dir.path(), 3_000).unwrap();
        assert_eq!(position, 3_000);
        same(&read, &writer.index);
        // Stopped (revisions forgotten): both files removed, nothing saved again.
        writer.commit(10, 4_000);
        assert!(dir.path().join(DELTA_FILE).exists());
        writer.schedule.snapshots.stop().unwrap();
        assert!(!dir.path().join(SNAPSHOT_FILE).exists() && !dir.path().join(DELTA_FILE).exists());
        writer.commit(10, 5_000);
        writer.schedule.finish(&writer.index, 5_000);
        assert!(!dir.path().join(SNAPSHOT_FILE).exists() && !dir.path().join(DELTA_FILE).exists());
    }
}
