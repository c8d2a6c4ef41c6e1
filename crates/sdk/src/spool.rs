//! The queue of events not yet acknowledged by Signet: segments of NDJSON lines, on disk when
//! the client has a spool directory (so events survive the application restarting while Signet
//! is unreachable), in memory otherwise.
//!
//! Events are appended to the open segment; a segment is sealed when it holds a batch, when it
//! has waited `linger`, or on flush, and is deleted only once every event in it was answered
//! (stored, a duplicate, excluded or rejected). At start every segment left by an earlier
//! process is sealed and sent first. A line cut short by a crash mid-write was never
//! acknowledged to the application (the append had not returned), and is skipped with a warning.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::warn;

use crate::event::{Event, Kind};
use crate::{Durability, SdkError};

/// One queued event: its kind and JSON.
#[derive(Clone, Debug)]
pub(crate) struct Line {
    pub kind: Kind,
    pub json: String,
}

#[derive(Serialize)]
struct LineOut<'a> {
    kind: Kind,
    event: &'a serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct LineIn<'a> {
    kind: Kind,
    #[serde(borrow)]
    event: &'a RawValue,
}

/// A sealed segment waiting to be sent.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    pub seq: u64,
    path: Option<PathBuf>,
    lines: Option<Vec<Line>>,
    count: usize,
    bytes: u64,
}

struct OpenSegment {
    seq: u64,
    /// The segment's file, on disk.
    file: Option<(File, PathBuf)>,
    lines: Vec<Line>,
    bytes: u64,
    opened: Instant,
}

struct State {
    open: Option<OpenSegment>,
    sealed: VecDeque<Segment>,
    next_seq: u64,
    /// Every segment up to this one was answered.
    done_through: u64,
    pending_events: usize,
    pending_bytes: u64,
}

pub(crate) struct Limits {
    pub batch_size: usize,
    pub max_pending_events: usize,
    pub max_pending_bytes: u64,
    pub durability: Durability,
}

pub(crate) struct Spool {
    dir: Option<PathBuf>,
    /// Held while the spool is open: one client per spool directory.
    _lock: Option<File>,
    limits: Limits,
    state: Mutex<State>,
}

/// Locks `dir/LOCK` (an advisory lock the operating system drops with the process).
fn lock_dir(dir: &Path) -> Result<File, SdkError> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SdkError::Spool(format!("{}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(SdkError::Spool(format!(
            "{} is in use by another Signet client (one client per spool directory)",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(SdkError::Spool(format!("{}: {e}", path.display()))),
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("seg-{seq:020}.ndjson"))
}

fn segment_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("seg-")?.strip_suffix(".ndjson")?.parse().ok()
}

impl Spool {
    /// A spool in `dir` (created if missing; segments found there are queued first), or in
    /// memory.
    pub fn open(dir: Option<PathBuf>, limits: Limits) -> Result<Spool, SdkError> {
        let mut state = State {
            open: None,
            sealed: VecDeque::new(),
            next_seq: 1,
            done_through: 0,
            pending_events: 0,
            pending_bytes: 0,
        };
        let mut lock = None;
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).map_err(|e| SdkError::Spool(format!("{}: {e}", dir.display())))?;
            lock = Some(lock_dir(dir)?);
            let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
                .map_err(|e| SdkError::Spool(format!("{}: {e}", dir.display())))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter_map(|path| segment_seq(&path).map(|seq| (seq, path)))
                .collect();
            found.sort();
            for (seq, path) in found {
                let lines = read_segment(&path)?;
                let bytes = lines.iter().map(|l| l.json.len() as u64 + 1).sum();
                state.pending_events += lines.len();
                state.pending_bytes += bytes;
                state.sealed.push_back(Segment { seq, path: Some(path), lines: None, count: lines.len(), bytes });
                state.next_seq = seq + 1;
            }
            state.done_through = state.sealed.front().map_or(state.next_seq - 1, |s| s.seq - 1);
        }
        Ok(Spool { dir, _lock: lock, limits, state: Mutex::new(state) })
    }

    pub fn on_disk(&self) -> bool {
        self.dir.is_some()
    }

    /// Queues an event; once this returns, the event is in the spool (on disk, or in memory).
    pub fn append(&self, event: &Event) -> Result<(), SdkError> {
        let json = serde_json::to_string(event.json()).map_err(|e| SdkError::Spool(e.to_string()))?;
        let mut state = self.state.lock();
        let size = json.len() as u64 + 1;
        if state.pending_events >= self.limits.max_pending_events
            || state.pending_bytes + size > self.limits.max_pending_bytes
        {
            return Err(SdkError::Full { pending: state.pending_events });
        }
        if state.open.is_none() {
            let seq = state.next_seq;
            let file = match &self.dir {
                Some(dir) => Some(self.create_segment(dir, seq)?),
                None => None,
            };
            state.next_seq += 1;
            state.open = Some(OpenSegment { seq, file, lines: Vec::new(), bytes: 0, opened: Instant::now() });
        }
        let open = state.open.as_mut().expect("opened above");
        if let Some((file, _)) = open.file.as_mut() {
            let mut line = serde_json::to_vec(&LineOut { kind: event.kind(), event: event.json() })
                .map_err(|e| SdkError::Spool(e.to_string()))?;
            line.push(b'\n');
            file.write_all(&line).map_err(|e| SdkError::Spool(format!("spool write: {e}")))?;
            if self.limits.durability == Durability::Fsync {
                file.sync_data().map_err(|e| SdkError::Spool(format!("spool fsync: {e}")))?;
            }
        }
        open.lines.push(Line { kind: event.kind(), json });
        open.bytes += size;
        state.pending_events += 1;
        state.pending_bytes += size;
        if state.open.as_ref().is_some_and(|o| o.lines.len() >= self.limits.batch_size) {
            seal(&mut state, self.on_disk());
        }
        Ok(())
    }

    fn create_segment(&self, dir: &Path, seq: u64) -> Result<(File, PathBuf), SdkError> {
        let path = segment_path(dir, seq);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| SdkError::Spool(format!("{}: {e}", path.display())))?;
        if self.limits.durability == Durability::Fsync {
            // The new name must survive a power cut as well as its content.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| SdkError::Spool(format!("{}: {e}", dir.display())))?;
        }
        Ok((file, path))
    }

    /// Seals the open segment if it has events; returns the last sequence number queued.
    pub fn seal_now(&self) -> u64 {
        let mut state = self.state.lock();
        seal(&mut state, self.on_disk());
        state.next_seq - 1
    }

    /// The oldest segment to send: a sealed one, or the open one once it waited `linger`.
    /// `Err(wait)` when there is nothing yet (`None`: nothing at all).
    pub fn next(&self, linger: Duration) -> Result<Segment, Option<Duration>> {
        let mut state = self.state.lock();
        if let Some(segment) = state.sealed.front() {
            return Ok(segment.clone());
        }
        let Some(open) = state.open.as_ref() else { return Err(None) };
        let waited = open.opened.elapsed();
        if waited < linger {
            return Err(Some(linger - waited));
        }
        seal(&mut state, self.on_disk());
        Ok(state.sealed.front().expect("sealed above").clone())
    }

    /// The events of a segment, in the order they were queued.
    pub fn lines(&self, segment: &Segment) -> Result<Vec<Line>, SdkError> {
        match (&segment.lines, &segment.path) {
            (Some(lines), _) => Ok(lines.clone()),
            (None, Some(path)) => read_segment(path),
            (None, None) => Ok(Vec::new()),
        }
    }

    /// Every event of the oldest segment was answered: forget it.
    pub fn done(&self, segment: &Segment) -> Result<(), SdkError> {
        let mut state = self.state.lock();
        debug_assert_eq!(state.sealed.front().map(|s| s.seq), Some(segment.seq), "segments are answered in order");
        if let Some(path) = &segment.path {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(SdkError::Spool(format!("{}: {e}", path.display()))),
            }
        }
        state.sealed.pop_front();
        state.pending_events -= segment.count;
        state.pending_bytes -= segment.bytes;
        state.done_through = segment.seq;
        Ok(())
    }

    /// Every segment up to this sequence number was answered.
    pub fn done_through(&self) -> u64 {
        self.state.lock().done_through
    }

    pub fn pending(&self) -> usize {
        self.state.lock().pending_events
    }

    /// Where rejected records are kept (spooled clients only).
    pub fn rejected_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("rejected.ndjson"))
    }
}

fn seal(state: &mut State, on_disk: bool) {
    let Some(open) = state.open.take() else { return };
    if open.lines.is_empty() {
        state.open = Some(open);
        return;
    }
    let count = open.lines.len();
    // On disk the file is the copy; sealed segments are read back when their turn comes.
    let path = open.file.map(|(_, path)| path);
    debug_assert_eq!(path.is_some(), on_disk);
    let lines = (!on_disk).then_some(open.lines);
    state.sealed.push_back(Segment { seq: open.seq, path, lines, count, bytes: open.bytes });
}

fn read_segment(path: &Path) -> Result<Vec<Line>, SdkError> {
    let file = match File::open(path) {
        Ok(file) => file,
        // Removed behind the client's back: nothing left to send from it (and no reason to stop
        // sending the segments after it).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            warn!(spool = %path.display(), "a spool segment disappeared before it was sent");
            return Ok(Vec::new());
        }
        Err(e) => return Err(SdkError::Spool(format!("{}: {e}", path.display()))),
    };
    let mut lines = Vec::new();
    for (number, text) in BufReader::new(file).split(b'\n').enumerate() {
        let text = text.map_err(|e| SdkError::Spool(format!("{}: {e}", path.display())))?;
        if text.is_empty() {
            continue;
        }
        match serde_json::from_slice::<LineIn>(&text) {
            Ok(line) => lines.push(Line { kind: line.kind, json: line.event.get().to_string() }),
            Err(e) => warn!(
                spool = %path.display(),
                line = number + 1,
                error = %e,
                "skipping a spool line cut short (a crash during the write; it was never acknowledged)"
            ),
        }
    }
    Ok(lines)
}
