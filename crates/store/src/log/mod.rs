//! The event log: an append-only, compressed, checksummed file sequence that is the durable
//! source of truth. An event is acknowledged only after the frame holding it is fsync'd; the
//! column store is a projection of this log and can be rebuilt from it.
//!
//! # On-disk layout (version 1)
//! `DATA/log/<global start position, 20 digits>.seg`, each segment:
//! ```text
//! segment header: b"SGNTLOG1" | u32 version = 1 | u32 reserved          (16 bytes)
//! frame*:         u32 magic "SGF1" | u32 compressed length | u32 raw length | u32 record count
//!                 | u32 crc32c(previous 12 bytes ++ payload) | zstd payload
//! payload:        records, encoded as in [`record`]
//! ```
//! The top bit of the record count marks the last frame of a group commit (one `pwrite` +
//! `fdatasync`). A record is addressed by [`RecordPtr`]: the global position of its frame
//! (segment start + offset in the file) and its index in the frame.
//!
//! A torn tail of the last segment (damage after which no *other* commit is intact) is
//! detected on open by the checksum, reported, and cut off; it was never acknowledged. Damage
//! followed by intact later commits is not a torn write but corruption: the log refuses to
//! open rather than cut acknowledged events, and `signet verify` reports where.

pub use signet_trust::record;

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tracing::{info, warn};

pub use record::LogRecord;

use crate::error::{io_err, Result, StoreError};

const SEGMENT_MAGIC: &[u8; 8] = b"SGNTLOG1";
const SEGMENT_VERSION: u32 = 1;
const SEGMENT_HEADER_LEN: u64 = 16;
/// Position of the first frame of a log that was never cut.
pub const FIRST_FRAME: u64 = SEGMENT_HEADER_LEN;
const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"SGF1");
const FRAME_HEADER_LEN: usize = 20;
/// Flag in the record-count word: the last frame of a group commit.
const COMMIT_END: u32 = 1 << 31;
/// Records per frame at most: a random read decompresses one frame.
pub const MAX_FRAME_RECORDS: usize = 256;
/// Uncompressed bytes per frame at most (a larger single record gets a frame of its own).
pub const MAX_FRAME_BYTES: usize = 256 * 1024;
/// A segment is closed once it grows past this.
pub const SEGMENT_TARGET_BYTES: u64 = 256 << 20;
/// No frame may claim more than this raw size (protects against corrupt headers).
const MAX_RAW_FRAME_BYTES: usize = 512 << 20;
const FRAME_CACHE_ENTRIES: usize = 64;
const ZSTD_LEVEL: i32 = 1;
/// The most a writer buffer keeps between commits (a commit's frames are a few MB).
const KEPT_BUFFER_BYTES: usize = 32 << 20;

/// Where one record lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordPtr {
    pub frame_pos: u64,
    pub index: u16,
}

struct Writer {
    file: File,
    segment_start: u64,
    file_len: u64,
    failed: Option<String>,
    /// Reused for every frame: `zstd::bulk::compress` makes and frees a context per call.
    compressor: Option<zstd::bulk::Compressor<'static>>,
    /// A frame's records encoded, its compressed bytes, and a commit's frames: kept between
    /// commits, so that a commit writes into memory touched before rather than fresh pages.
    buffers: [Vec<u8>; 3],
}

/// Damage found at the end of the log by a read-only open (a writer cuts it off instead).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailDamage {
    /// Global position where the damage starts (the log ends here for readers).
    pub position: u64,
    /// Bytes after that position.
    pub bytes: u64,
    pub reason: String,
}

pub struct EventLog {
    dir: PathBuf,
    writer: Mutex<Writer>,
    /// Start positions of the segments, ascending.
    segments: RwLock<Vec<u64>>,
    /// Global position just past the last durable frame.
    end: AtomicU64,
    readers: Mutex<HashMap<u64, Arc<File>>>,
    cache: Mutex<VecDeque<(u64, Arc<Vec<LogRecord>>)>>,
    read_only: bool,
    tail_damage: Option<TailDamage>,
    /// A segment is closed once it grows past this ([`SEGMENT_TARGET_BYTES`] unless set).
    segment_target: AtomicU64,
}

fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}.seg"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// What scanning a segment found.
struct ScanResult {
    /// File offset just past the last valid frame.
    valid_len: u64,
    /// Why scanning stopped early, if it did.
    damage: Option<String>,
    /// Intact commits found after the damage (more than the last one means corruption).
    later_commits: usize,
}

impl EventLog {
    /// Opens (or creates) the log in `dir`, cutting off a torn tail of the last segment.
    pub fn open(dir: impl Into<PathBuf>) -> Result<EventLog> {
        EventLog::open_mode(dir.into(), false)
    }

    /// Opens an existing log for reading only: nothing is created or cut; damage at the tail
    /// is reported by [`EventLog::tail_damage`] and the log ends before it.
    pub fn open_read_only(dir: impl Into<PathBuf>) -> Result<EventLog> {
        EventLog::open_mode(dir.into(), true)
    }

    fn open_mode(dir: PathBuf, read_only: bool) -> Result<EventLog> {
        if read_only && !dir.is_dir() {
            return Err(io_err(&dir)(std::io::Error::new(std::io::ErrorKind::NotFound, "no event log here")));
        }
        if !read_only {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        let mut starts = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(start) = name.strip_suffix(".seg").and_then(|s| s.parse::<u64>().ok()) {
                starts.push(start);
            }
        }
        starts.sort_unstable();
        if starts.is_empty() {
            if read_only {
                return Err(io_err(&dir)(std::io::Error::new(std::io::ErrorKind::NotFound, "no log segments")));
            }
            create_segment(&dir, 0)?;
            starts.push(0);
        }
        for &start in &starts[..starts.len() - 1] {
            check_header(&segment_path(&dir, start))?;
        }
        let last = *starts.last().unwrap_or(&0);
        let last_path = segment_path(&dir, last);
        check_header(&last_path)?;
        let file = OpenOptions::new().read(true).write(!read_only).open(&last_path).map_err(io_err(&last_path))?;
        let scan = scan_segment(&file, &last_path)?;
        let on_disk = file.metadata().map_err(io_err(&last_path))?.len();
        let mut tail_damage = None;
        if let Some(reason) = &scan.damage {
            if scan.later_commits > 0 {
                return Err(StoreError::Corrupt {
                    path: last_path.display().to_string(),
                    offset: scan.valid_len,
                    reason: format!(
                        "{reason}, but {} later commit(s) are intact: this is not a torn write; nothing was cut \
                         (run `signet verify` and restore the segment from a copy)",
                        scan.later_commits
                    ),
                });
            }
            tail_damage = Some(TailDamage {
                position: last + scan.valid_len,
                bytes: on_disk - scan.valid_len,
                reason: reason.clone(),
            });
        }
        if let (Some(reason), false) = (&scan.damage, read_only) {
            warn!(
                segment = %last_path.display(), valid_bytes = scan.valid_len, dropped_bytes = on_disk - scan.valid_len,
                reason = %reason, "event log tail is torn or corrupt; cutting it off (it was never acknowledged)"
            );
            file.set_len(scan.valid_len).map_err(io_err(&last_path))?;
            file.sync_all().map_err(io_err(&last_path))?;
        }
        let end = last + scan.valid_len;
        info!(segments = starts.len(), end, "event log opened");
        Ok(EventLog {
            dir,
            writer: Mutex::new(Writer {
                file,
                segment_start: last,
                file_len: scan.valid_len,
                failed: None,
                compressor: None,
                buffers: Default::default(),
            }),
            segments: RwLock::new(starts),
            end: AtomicU64::new(end),
            readers: Mutex::new(HashMap::new()),
            cache: Mutex::new(VecDeque::new()),
            read_only,
            tail_damage: if read_only { tail_damage } else { None },
            segment_target: AtomicU64::new(SEGMENT_TARGET_BYTES),
        })
    }

    /// Damage after the last intact frame, as a read-only open found it.
    pub fn tail_damage(&self) -> Option<&TailDamage> {
        self.tail_damage.as_ref()
    }

    /// Start positions of the segments, ascending.
    pub fn segment_starts(&self) -> Vec<u64> {
        self.segments.read().clone()
    }

    /// Closes segments once they grow past `bytes` (small segments let tests cut the log).
    pub fn set_segment_target(&self, bytes: u64) {
        self.segment_target.store(bytes.max(SEGMENT_HEADER_LEN + 1), Ordering::Relaxed);
    }

    /// The closed segments, oldest first: (start, end) positions.
    pub fn closed_segments(&self) -> Vec<(u64, u64)> {
        let starts = self.segments.read().clone();
        starts.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Deletes the closed segments that end at or before `position` (oldest first; the open
    /// segment always stays). The log then starts later: readers of those positions get an
    /// error, and the records must be read elsewhere (the archive). Returns the segments
    /// deleted. A crash midway leaves a shorter prefix deleted; nothing else changes.
    pub fn drop_segments_before(&self, position: u64) -> Result<Vec<u64>> {
        if self.read_only {
            return Err(StoreError::WriterFailed("the log is open read-only".into()));
        }
        let mut dropped = Vec::new();
        loop {
            let victim = {
                let mut segments = self.segments.write();
                match (segments.first().copied(), segments.get(1).copied()) {
                    (Some(first), Some(next)) if next <= position => {
                        segments.remove(0);
                        first
                    }
                    _ => break,
                }
            };
            self.readers.lock().remove(&victim);
            self.cache.lock().retain(|(pos, _)| *pos < victim || *pos >= position);
            let path = segment_path(&self.dir, victim);
            fs::remove_file(&path).map_err(io_err(&path))?;
            dropped.push(victim);
        }
        if !dropped.is_empty() {
            sync_dir(&self.dir)?;
            info!(
                segments = dropped.len(),
                start = self.start(),
                "event log cut: its oldest segments are in the archive"
            );
        }
        Ok(dropped)
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Position just past the last durable frame.
    pub fn end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }

    /// Position of the first frame.
    pub fn start(&self) -> u64 {
        self.segments.read().first().copied().unwrap_or(0) + SEGMENT_HEADER_LEN
    }

    /// Appends records in frames, fsyncs once, and returns where each record landed and the
    /// new end. After a failed write or fsync the log refuses all further appends: whether
    /// the data reached the disk is unknown, and retrying would pretend it is.
    pub fn append(&self, records: &[LogRecord]) -> Result<(Vec<RecordPtr>, u64)> {
        self.append_visiting(records, &mut |_| {})
    }

    /// [`Self::append`], calling `encoded` with each record's encoding ([`LogRecord::encode`],
    /// what its Merkle leaf hashes) in order, right after it is written into its frame: the
    /// ledger hashes it there, while it is in the cache, instead of encoding every record a
    /// second time. On an error the calls made so far count for nothing.
    pub fn append_visiting(
        &self,
        records: &[LogRecord],
        encoded: &mut dyn FnMut(&[u8]),
    ) -> Result<(Vec<RecordPtr>, u64)> {
        if self.read_only {
            return Err(StoreError::WriterFailed("the log is open read-only".into()));
        }
        let mut writer = self.writer.lock();
        if let Some(reason) = &writer.failed {
            return Err(StoreError::WriterFailed(reason.clone()));
        }
        match self.append_locked(&mut writer, records, encoded) {
            Ok(done) => Ok(done),
            Err(err) if is_disk_full(&err) => {
                // Nothing of this commit was acknowledged. Cut the file back to its durable
                // length and reopen it, so that no failed write or fsync is ever relied on;
                // later commits write afresh once space is freed.
                match self.recover_writer(&mut writer) {
                    Ok(()) => {
                        warn!(error = %err, "event log write failed: disk full; the commit was refused and the log cut back to its durable end");
                        Err(StoreError::DiskFull { free_bytes: 0, reserve_bytes: 0 })
                    }
                    Err(recovery) => {
                        let reason = format!("{err}; recovering failed too: {recovery}");
                        writer.failed = Some(reason.clone());
                        Err(StoreError::WriterFailed(reason))
                    }
                }
            }
            Err(err) => {
                writer.failed = Some(err.to_string());
                Err(StoreError::WriterFailed(err.to_string()))
            }
        }
    }

    fn recover_writer(&self, writer: &mut Writer) -> Result<()> {
        let path = segment_path(&self.dir, writer.segment_start);
        writer.file.set_len(writer.file_len).map_err(io_err(&path))?;
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(io_err(&path))?;
        file.sync_all().map_err(io_err(&path))?;
        writer.file = file;
        self.cache.lock().clear();
        Ok(())
    }

    fn append_locked(
        &self,
        writer: &mut Writer,
        records: &[LogRecord],
        encoded: &mut dyn FnMut(&[u8]),
    ) -> Result<(Vec<RecordPtr>, u64)> {
        if writer.file_len >= self.segment_target.load(Ordering::Relaxed) {
            let next_start = writer.segment_start + writer.file_len;
            let file = create_segment(&self.dir, next_start)?;
            writer.file = file;
            writer.segment_start = next_start;
            writer.file_len = SEGMENT_HEADER_LEN;
            self.segments.write().push(next_start);
        }
        let [mut raw, mut compressed, mut out] = std::mem::take(&mut writer.buffers);
        out.clear();
        let mut pointers = Vec::with_capacity(records.len());
        let mut frame_start = 0;
        while frame_start < records.len() {
            raw.clear();
            let mut frame_end = frame_start;
            while frame_end < records.len()
                && frame_end - frame_start < MAX_FRAME_RECORDS
                && (frame_end == frame_start || raw.len() + records[frame_end].encoded_len() <= MAX_FRAME_BYTES)
            {
                let from = raw.len();
                records[frame_end].encode(&mut raw);
                encoded(&raw[from..]);
                frame_end += 1;
            }
            let frame_pos = writer.segment_start + writer.file_len + out.len() as u64;
            let compressor = match &mut writer.compressor {
                Some(compressor) => compressor,
                none => none.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(io_err(&self.dir))?),
            };
            compressed.clear();
            compressed.reserve(zstd::zstd_safe::compress_bound(raw.len()));
            compressor.compress_to_buffer(&raw, &mut compressed).map_err(io_err(&self.dir))?;
            let mut header = [0u8; FRAME_HEADER_LEN];
            header[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
            header[4..8].copy_from_slice(&(compressed.len() as u32).to_le_bytes());
            header[8..12].copy_from_slice(&(raw.len() as u32).to_le_bytes());
            let commit_end = if frame_end == records.len() { COMMIT_END } else { 0 };
            header[12..16].copy_from_slice(&((frame_end - frame_start) as u32 | commit_end).to_le_bytes());
            let crc = crc32c::crc32c_append(crc32c::crc32c(&header[4..16]), &compressed);
            header[16..20].copy_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&header);
            out.extend_from_slice(&compressed);
            for index in 0..(frame_end - frame_start) {
                pointers.push(RecordPtr { frame_pos, index: index as u16 });
            }
            frame_start = frame_end;
        }
        let written = self.write_commit(writer, &out);
        // An outsize record (or commit) does not pin its memory for good.
        writer.buffers = [raw, compressed, out].map(|b| if b.capacity() > KEPT_BUFFER_BYTES { Vec::new() } else { b });
        written.map(|end| (pointers, end))
    }

    /// Writes a commit's frames at the end of the current segment and syncs them; the new end.
    fn write_commit(&self, writer: &mut Writer, out: &[u8]) -> Result<u64> {
        let path = segment_path(&self.dir, writer.segment_start);
        writer.file.write_all_at(out, writer.file_len).map_err(io_err(&path))?;
        writer.file.sync_data().map_err(io_err(&path))?;
        writer.file_len += out.len() as u64;
        let end = writer.segment_start + writer.file_len;
        self.end.store(end, Ordering::Release);
        Ok(end)
    }

    fn segment_of(&self, pos: u64) -> Result<u64> {
        let segments = self.segments.read();
        let index = segments.partition_point(|&start| start <= pos);
        if index == 0 {
            return Err(StoreError::Corrupt {
                path: self.dir.display().to_string(),
                offset: pos,
                reason: "position before the first segment".into(),
            });
        }
        Ok(segments[index - 1])
    }

    fn reader(&self, segment: u64) -> Result<Arc<File>> {
        let mut readers = self.readers.lock();
        if let Some(file) = readers.get(&segment) {
            return Ok(file.clone());
        }
        let path = segment_path(&self.dir, segment);
        let file = Arc::new(File::open(&path).map_err(io_err(&path))?);
        readers.insert(segment, file.clone());
        Ok(file)
    }

    /// Reads and decodes the frame at `pos`, returning its records and the next frame's position.
    fn load_frame(&self, pos: u64) -> Result<(Vec<LogRecord>, u64)> {
        let segment = self.segment_of(pos)?;
        let file = self.reader(segment)?;
        let path = segment_path(&self.dir, segment);
        let offset = pos - segment;
        let (raw, next_offset) = read_frame(&file, &path, offset)?;
        let corrupt = |reason: String| StoreError::Corrupt { path: path.display().to_string(), offset, reason };
        let mut records = Vec::new();
        let mut at = 0;
        while at < raw.len() {
            let (record, used) = LogRecord::decode(&raw[at..]).map_err(corrupt)?;
            records.push(record);
            at += used;
        }
        Ok((records, segment + next_offset))
    }

    /// The records of the frame at `pos`, cached.
    pub fn frame(&self, pos: u64) -> Result<Arc<Vec<LogRecord>>> {
        if let Some((_, records)) = self.cache.lock().iter().find(|(p, _)| *p == pos) {
            return Ok(records.clone());
        }
        let (records, _) = self.load_frame(pos)?;
        let records = Arc::new(records);
        let mut cache = self.cache.lock();
        cache.push_front((pos, records.clone()));
        cache.truncate(FRAME_CACHE_ENTRIES);
        Ok(records)
    }

    /// One record.
    pub fn read(&self, ptr: RecordPtr) -> Result<LogRecord> {
        let frame = self.frame(ptr.frame_pos)?;
        frame.get(ptr.index as usize).cloned().ok_or_else(|| StoreError::Corrupt {
            path: self.dir.display().to_string(),
            offset: ptr.frame_pos,
            reason: format!("frame has no record {}", ptr.index),
        })
    }

    /// Visits every record from `from` (a frame position, or a segment start) to the end, in
    /// order, in batches of whole frames; the callback gets the records with their pointers and
    /// the position just past the last frame of the batch.
    pub fn scan(
        &self,
        from: u64,
        batch_records: usize,
        mut visit: impl FnMut(Vec<(RecordPtr, LogRecord)>, u64) -> Result<()>,
    ) -> Result<()> {
        self.scan_until(from, u64::MAX, batch_records, |batch, through| visit(batch, through).map(|()| true))?;
        Ok(())
    }

    /// The records of the whole frames from `from` up to `until` (a frame boundary, e.g. the
    /// applied position), about `max_records` of them at most (whole frames: a little more), and
    /// the position just past them: where to read next.
    pub fn read_batch(&self, from: u64, until: u64, max_records: usize) -> Result<(Vec<(RecordPtr, LogRecord)>, u64)> {
        let mut out = None;
        let reached = self.scan_until(from, until, max_records.max(1), |batch, through| {
            out = Some((batch, through));
            Ok(false)
        })?;
        // Nothing but segment headers in between: the reading still moves on.
        Ok(out.unwrap_or((Vec::new(), reached)))
    }

    /// [`EventLog::scan`] up to `until`, stopping early when the callback answers `false`;
    /// returns the position reached.
    /// Records in `[from, until)`.
    pub(crate) fn count_records(&self, from: u64, until: u64) -> Result<usize> {
        let mut count = 0;
        self.scan_until(from, until, 50_000, |batch, _| {
            count += batch.len();
            Ok(true)
        })?;
        Ok(count)
    }

    fn scan_until(
        &self,
        from: u64,
        until: u64,
        batch_records: usize,
        mut visit: impl FnMut(Vec<(RecordPtr, LogRecord)>, u64) -> Result<bool>,
    ) -> Result<u64> {
        let end = self.end().min(until);
        let mut pos = from.max(self.start());
        let mut batch = Vec::new();
        while pos < end {
            let segment = self.segment_of(pos)?;
            if pos == segment {
                pos += SEGMENT_HEADER_LEN;
                continue;
            }
            let segment_end = self.segments.read().iter().copied().find(|&s| s > segment).unwrap_or(end);
            if pos >= segment_end {
                pos = segment_end;
                continue;
            }
            let (records, next) = self.load_frame(pos)?;
            for (index, record) in records.into_iter().enumerate() {
                batch.push((RecordPtr { frame_pos: pos, index: index as u16 }, record));
            }
            pos = next;
            if batch.len() >= batch_records && !visit(std::mem::take(&mut batch), pos)? {
                return Ok(pos);
            }
        }
        if !batch.is_empty() {
            visit(batch, pos)?;
        }
        Ok(pos)
    }
}

/// Whether an error means the file system is out of space (or quota).
fn is_disk_full(err: &StoreError) -> bool {
    matches!(err, StoreError::Io { source, .. } if matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)))
}

fn create_segment(dir: &Path, start: u64) -> Result<File> {
    let path = segment_path(dir, start);
    let mut file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io_err(&path))?;
    let mut header = Vec::with_capacity(SEGMENT_HEADER_LEN as usize);
    header.extend_from_slice(SEGMENT_MAGIC);
    header.extend_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    file.write_all(&header).map_err(io_err(&path))?;
    file.sync_all().map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok(file)
}

fn check_header(path: &Path) -> Result<()> {
    let file = File::open(path).map_err(io_err(path))?;
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0).map_err(|_| StoreError::Corrupt {
        path: path.display().to_string(),
        offset: 0,
        reason: "segment header is missing".into(),
    })?;
    if &header[0..8] != SEGMENT_MAGIC {
        return Err(StoreError::Corrupt {
            path: path.display().to_string(),
            offset: 0,
            reason: "not a Signet log segment".into(),
        });
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version > SEGMENT_VERSION {
        return Err(StoreError::UnsupportedVersion {
            path: path.display().to_string(),
            found: version,
            supported: SEGMENT_VERSION,
        });
    }
    Ok(())
}

/// Reads and verifies one frame at a file offset: (raw payload, offset of the next frame).
fn read_frame(file: &File, path: &Path, offset: u64) -> Result<(Vec<u8>, u64)> {
    read_frame_flagged(file, path, offset).map(|(raw, next, _)| (raw, next))
}

/// [`read_frame`], also saying whether the frame ends a group commit.
fn read_frame_flagged(file: &File, path: &Path, offset: u64) -> Result<(Vec<u8>, u64, bool)> {
    let (payload, raw_len, next, commit_end) = checked_frame(file, path, offset)?;
    let corrupt =
        |reason: &str| StoreError::Corrupt { path: path.display().to_string(), offset, reason: reason.to_string() };
    let raw = decompress(&payload, raw_len).map_err(|_| corrupt("frame does not decompress"))?;
    if raw.len() != raw_len {
        return Err(corrupt("frame decompressed to the wrong size"));
    }
    Ok((raw, next, commit_end))
}

/// A frame's compressed payload once its header and checksum are checked, its raw length, the
/// offset after it and whether it ends a group commit. Opening the log finds its tail with this
/// alone (a torn write fails the checksum): decompressing every frame of the last segment made
/// starts slower as the segment grew; readers and `signet verify` decompress.
fn checked_frame(file: &File, path: &Path, offset: u64) -> Result<(Vec<u8>, usize, u64, bool)> {
    let corrupt =
        |reason: &str| StoreError::Corrupt { path: path.display().to_string(), offset, reason: reason.to_string() };
    let mut header = [0u8; FRAME_HEADER_LEN];
    file.read_exact_at(&mut header, offset).map_err(|_| corrupt("frame header is truncated"))?;
    let word = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if word(0) != FRAME_MAGIC {
        return Err(corrupt("bad frame magic"));
    }
    let (compressed_len, raw_len) = (word(4) as usize, word(8) as usize);
    if raw_len > MAX_RAW_FRAME_BYTES {
        return Err(corrupt("frame claims an impossible size"));
    }
    let mut payload = vec![0u8; compressed_len];
    file.read_exact_at(&mut payload, offset + FRAME_HEADER_LEN as u64)
        .map_err(|_| corrupt("frame payload is truncated"))?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[4..16]), &payload);
    if crc != word(16) {
        return Err(corrupt("frame checksum mismatch"));
    }
    Ok((payload, raw_len, offset + (FRAME_HEADER_LEN + compressed_len) as u64, word(12) & COMMIT_END != 0))
}

/// zstd decompression with one context per thread: `zstd::bulk::decompress` makes (and zeroes)
/// a new one per call, which was a third of a restart's CPU while opening scanned a 69 MB
/// segment's frames.
fn decompress(payload: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    CONTEXT.with(|context| {
        let mut context = context.borrow_mut();
        if context.is_none() {
            *context = Some(zstd::bulk::Decompressor::new()?);
        }
        context.as_mut().expect("made above").decompress(payload, raw_len)
    })
}

fn scan_segment(file: &File, path: &Path) -> Result<ScanResult> {
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut offset = SEGMENT_HEADER_LEN;
    while offset < len {
        match checked_frame(file, path, offset) {
            Ok((_, _, next, _)) => offset = next,
            Err(StoreError::Corrupt { reason, .. }) => {
                let later_commits = commits_after(file, path, offset, len)?;
                return Ok(ScanResult { valid_len: offset, damage: Some(reason), later_commits });
            }
            Err(other) => return Err(other),
        }
    }
    Ok(ScanResult { valid_len: offset, damage: None, later_commits: 0 })
}

/// Counts intact commits that end after a damaged region, not counting a commit that ends
/// with the last intact frame of the file (the torn write's own later frames may survive).
fn commits_after(file: &File, path: &Path, damaged: u64, len: u64) -> Result<usize> {
    let mut bytes = vec![0u8; (len - damaged) as usize];
    file.read_exact_at(&mut bytes, damaged).map_err(io_err(path))?;
    let magic = FRAME_MAGIC.to_le_bytes();
    let (mut ends, mut last_frame_ends_commit, mut at) = (0usize, false, 1usize);
    while at + FRAME_HEADER_LEN <= bytes.len() {
        if bytes[at..at + 4] != magic {
            at += 1;
            continue;
        }
        match read_frame_flagged(file, path, damaged + at as u64) {
            Ok((_, next, commit_end)) => {
                ends += usize::from(commit_end);
                last_frame_ends_commit = commit_end;
                at = (next - damaged) as usize;
            }
            Err(_) => at += 1,
        }
    }
    Ok(ends - usize::from(last_frame_ends_commit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_model::LogKind;

    fn record(id: usize) -> LogRecord {
        LogRecord {
            kind: LogKind::SignIn,
            revision: 1,
            content_hash: id as u64,
            time_us: id as i64,
            received_us: 0,
            org: "default".into(),
            id: format!("id-{id}"),
            body: format!("{{\"id\":\"id-{id}\"}}").into_bytes().into(),
            original: None,
        }
    }

    #[test]
    fn an_append_shows_each_record_as_encoded_in_order_and_reuses_its_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        for round in 0..2 {
            let records: Vec<_> = (round * 300..round * 300 + 300).map(record).collect();
            let mut seen = Vec::new();
            let (ptrs, _) = log.append_visiting(&records, &mut |encoded| seen.push(encoded.to_vec())).unwrap();
            let expected: Vec<Vec<u8>> = records
                .iter()
                .map(|r| {
                    let mut buf = Vec::new();
                    r.encode(&mut buf);
                    buf
                })
                .collect();
            assert_eq!(seen, expected, "round {round}");
            // The second commit writes through the buffers the first one left: still intact.
            assert_eq!(log.read(ptrs[299]).unwrap(), records[299]);
            assert_eq!(log.read(ptrs[0]).unwrap(), records[0]);
        }
    }

    #[test]
    fn append_read_scan_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        let records: Vec<_> = (0..600).map(record).collect();
        let (ptrs, end) = log.append(&records).unwrap();
        assert_eq!(ptrs.len(), 600);
        assert_eq!(log.end(), end);
        assert_eq!(log.read(ptrs[599]).unwrap(), records[599]);
        assert_eq!(ptrs[256].index, 0, "frames hold at most {MAX_FRAME_RECORDS} records");
        drop(log);

        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.end(), end);
        let mut seen = Vec::new();
        log.scan(0, 100, |batch, _| {
            seen.extend(batch.into_iter().map(|(_, r)| r.id));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 600);
        assert_eq!(seen[0], "id-0");
        let (more, _) = log.append(&[record(600)]).unwrap();
        assert_eq!(log.read(more[0]).unwrap().id, "id-600");

        // Reading in batches up to a bound, as a forwarder does: every record once, in order.
        let (mut from, until) = (0, end);
        let mut read = Vec::new();
        loop {
            let (batch, next) = log.read_batch(from, until, 100).unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(next > from && next <= until);
            read.extend(batch.into_iter().map(|(_, r)| r.id));
            from = next;
        }
        assert_eq!(read.len(), 600, "records past `until` are not read");
        assert_eq!(read[599], "id-599");
    }

    #[test]
    fn torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        let (_, first_end) = log.append(&[record(1)]).unwrap();
        log.append(&[record(2)]).unwrap();
        drop(log);
        let path = segment_path(dir.path(), 0);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 3).unwrap();

        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.end(), first_end, "the torn second frame is dropped");
        let mut ids = Vec::new();
        log.scan(0, 10, |b, _| {
            ids.extend(b.into_iter().map(|(_, r)| r.id));
            Ok(())
        })
        .unwrap();
        assert_eq!(ids, vec!["id-1"]);
    }

    #[test]
    fn flipped_bit_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        let (ptrs, _) = log.append(&[record(1)]).unwrap();
        drop(log);
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let err = read_frame(&file, &path, ptrs[0].frame_pos).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn segments_roll_over() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        log.writer.lock().file_len = SEGMENT_TARGET_BYTES; // pretend the segment is full
        let (ptrs, _) = log.append(&[record(7)]).unwrap();
        assert_eq!(log.segments.read().len(), 2);
        assert_eq!(log.read(ptrs[0]).unwrap().id, "id-7");
    }
}
