//! The write path: a bounded queue, one writer thread that group-commits to the event log, and
//! one projector thread that applies committed events to the column store in batches.
//!
//! ```text
//! submit() --bounded--> writer: classify (new / duplicate / revision), append frames, fsync,
//!                               reply to every request in the group
//!                       --bounded--> projector: EventStore::apply every <= 100 ms, or at once
//!                                    for >= 20,480 events (a DuckDB row group; under load
//!                                    it waits up to 300 ms to gather them)
//! ```
//! A request is answered only after its events are fsync'd. When the queue is full, `submit`
//! fails at once with [`StoreError::Overloaded`] (the HTTP layer answers 503 + Retry-After);
//! nothing is dropped silently. Urgent requests ([`Pipeline::submit_urgent`]: the access log's
//! records, which a read's answer waits for) wait in a list of their own that the writer commits
//! before its next group and while it waits for the projection.
//!
//! What a slow store does depends on [`IngestConfig::lag_in_log`]. Without it (the embedded
//! store) a slow projector holds the writer back, which fills the queue: the back-pressure reaches
//! the client instead of memory, and what is acknowledged is visible within about a second. With
//! it (a remote store such as ClickHouse, which may be unreachable for a while) a store that takes
//! writes holds the writer back the same way, but one that fails does not: the writer keeps
//! acknowledging, and beyond `max_unprojected_events` it stops handing events to the projector,
//! which reads them back from the event log once the store takes writes again (and the writer is
//! not held back while it does). The log, bounded by the disk thresholds, holds the backlog; the
//! lag is in the metrics.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use signet_model::{Event, LogKind};
use signet_trust::merkle;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

mod projector;

use crate::engine::{EventStore, StoredEvent};
use crate::error::{Result, StoreError};
use crate::ledger::Ledger;
use crate::log::{EventLog, LogRecord};
use crate::versions::{version_key, Latest, SnapshotSchedule, VersionIndex};

/// Tuning of the write path.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Events queued or being written at most; beyond it `submit` answers Overloaded.
    pub max_in_flight_events: usize,
    /// Events per group commit at most.
    pub group_max_events: usize,
    /// How long committed events may wait before they are applied to the store.
    pub projection_interval: Duration,
    /// Events per store batch at most.
    pub projection_max_events: usize,
    /// A batch this large is applied at once instead of at the end of `projection_interval`:
    /// under load the projector works whenever committed events wait, rather than sleeping
    /// through part of every interval while the writer is held back by what it has not applied.
    /// DuckDB's row group by default: a batch of at least a row group takes DuckDB's bulk path
    /// (see `duck::ROW_GROUP_ROWS`).
    pub projection_eager_events: usize,
    /// How long a batch may keep gathering towards `projection_eager_events` when events
    /// arrive fast enough to reach it in that time: at the end of `projection_interval` the
    /// projector waits on (once) only if the rate since the batch's first event would fill it
    /// by then. Light traffic is applied after `projection_interval` as before.
    pub projection_bulk_wait: Duration,
    /// Committed events not yet visible to queries, at most. The writer waits beyond it, the
    /// queue fills and clients get 503: an acknowledged event stays visible within about a
    /// second even under overload, instead of the projection falling further behind.
    pub max_unprojected_events: usize,
    /// Events' bytes (body and source record) queued or being written at most; beyond it
    /// `submit` answers Overloaded. Bounds the write path's memory.
    pub max_in_flight_bytes: usize,
    /// Free space below which ingest is refused, and warning thresholds.
    pub disk: crate::disk::DiskPolicy,
    /// Event log segments are closed past this size (only closed segments can be cut once
    /// archived).
    pub segment_bytes: u64,
    /// Keep acknowledging while the store fails; the projector catches up from the event log
    /// (see the module documentation).
    pub lag_in_log: bool,
    /// After this long without new events, the projector lets the store settle what it wrote
    /// ([`EventStore::settle`]: DuckDB checkpoints, so queries after a burst scan compressed
    /// row groups and a crash leaves nothing for the next start to apply again).
    pub settle_after_idle: Duration,
    /// A period of `settle_after_idle` in which the projector applied at most this many events
    /// counts as idle: light traffic (a few sign-ins, the access log of the very queries that
    /// read the burst) does not put the settle off, which left the last up to 256 MB of a
    /// burst uncompressed and the reports about a third slower for as long as it lasted.
    pub settle_below_events: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_in_flight_events: 400_000,
            group_max_events: 20_000,
            projection_interval: Duration::from_millis(100),
            projection_max_events: 100_000,
            projection_eager_events: crate::duck::ROW_GROUP_ROWS,
            projection_bulk_wait: Duration::from_millis(300),
            // Room for a full batch to gather while the next group commits.
            max_unprojected_events: 3 * crate::duck::ROW_GROUP_ROWS,
            max_in_flight_bytes: 256 << 20,
            disk: crate::disk::DiskPolicy::default(),
            segment_bytes: crate::log::SEGMENT_TARGET_BYTES,
            lag_in_log: false,
            settle_after_idle: Duration::from_secs(2),
            settle_below_events: 2_000,
        }
    }
}

/// What happened to a submitted batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Events stored: new ids plus new revisions of known ids.
    pub accepted: usize,
    /// Of the accepted, how many were new revisions of an id already stored.
    pub revisions: usize,
    /// Identical re-sends, not stored again.
    pub duplicates: usize,
}

/// Counters the metrics endpoint exposes.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    pub accepted: [AtomicU64; 3],
    pub duplicates: [AtomicU64; 3],
    pub revisions: [AtomicU64; 3],
    pub overloaded: AtomicU64,
    pub in_flight: AtomicUsize,
    pub in_flight_bytes: AtomicUsize,
    /// Bytes of requests admitted ([`Pipeline::admit`]) whose events are not yet submitted.
    pub admitted_bytes: AtomicUsize,
    /// Committed events not yet applied to the store.
    pub unprojected: AtomicUsize,
    pub commits: AtomicU64,
    pub commit_micros_total: AtomicU64,
    pub log_end: AtomicU64,
    pub applied: AtomicU64,
    pub apply_errors: AtomicU64,
}

/// Room in the ingest queue held for a request whose body is being read ([`Pipeline::admit`]).
#[derive(Debug)]
pub struct Admission {
    metrics: Arc<IngestMetrics>,
    bytes: AtomicUsize,
}

impl Admission {
    /// Gives the room back (once; dropping gives it back too): call it just before the
    /// request's events are submitted, which counts them in the queue itself.
    pub fn release(&self) {
        let bytes = self.bytes.swap(0, Ordering::AcqRel);
        if bytes > 0 {
            self.metrics.admitted_bytes.fetch_sub(bytes, Ordering::AcqRel);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.release();
    }
}

/// How long a commit waits for the projection to catch up before it is refused with 503.
const PROJECTION_WAIT: Duration = Duration::from_secs(3);

/// Committed events that urgent requests may still add beyond `max_unprojected_events` and the
/// group of batches that may overshoot it.
const URGENT_SLACK: usize = 10_000;

/// Records per store batch when the projector reads its backlog from the log.
const LOG_BATCH_RECORDS: usize = 20_000;

/// What the writer hands the projector after a commit.
enum Committed {
    /// A group's events, which the log holds from position `start` to `end`.
    Events { events: Vec<StoredEvent>, start: u64, end: u64 },
    /// Committed events are in the log only: read them from there.
    InLog,
}

/// State the writer and the projector share.
#[derive(Default)]
struct Handoff {
    /// Events handed over in `Committed::Events` and not yet taken by the projector.
    queued: AtomicUsize,
    /// A `Committed::InLog` is on its way (one at a time is enough).
    in_log_sent: std::sync::atomic::AtomicBool,
    /// Shutting down: a store that fails is not retried any longer (the log has the events; the
    /// next start applies them).
    stopping: std::sync::atomic::AtomicBool,
    /// The store fails, or the projector reads a backlog from the log: with `lag_in_log` the
    /// writer does not wait for the projector then.
    absorbing: std::sync::atomic::AtomicBool,
}

fn kind_index(kind: LogKind) -> usize {
    kind.code() as usize - 1
}

struct Request {
    org: String,
    events: Vec<Event>,
    bytes: usize,
    received_us: i64,
    reply: oneshot::Sender<Result<Outcome>>,
}

/// What the writer's queue carries.
enum Message {
    Batch(Request),
    /// An urgent request waits in [`Pipeline::urgent`] (the writer may have taken it already).
    Wake,
}

/// Requests committed ahead of the queue ([`Pipeline::submit_urgent`]).
type Urgent = Arc<Mutex<Vec<Request>>>;

/// The write path's handle.
pub struct Pipeline {
    tx: Mutex<Option<SyncSender<Message>>>,
    urgent: Urgent,
    config: IngestConfig,
    metrics: Arc<IngestMetrics>,
    projected: Arc<(Mutex<u64>, Condvar)>,
    handoff: Arc<Handoff>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Pipeline {
    pub(crate) fn start(
        log: Arc<EventLog>,
        store: Arc<dyn EventStore>,
        ledger: Arc<Ledger>,
        versions: (VersionIndex, SnapshotSchedule),
        store_applied: Option<u64>,
        config: IngestConfig,
        metrics: Arc<IngestMetrics>,
    ) -> Pipeline {
        let (tx, rx) = mpsc::sync_channel::<Message>(config.max_in_flight_events.max(1));
        let urgent = Urgent::default();
        // Unbounded on purpose: what it holds is bounded by `max_unprojected_events` (the writer
        // commits nothing more while the projection is that far behind), and a writer that
        // blocked here while the store cannot take events would hang every request.
        let (ptx, prx) = mpsc::channel::<Committed>();
        let handoff = Arc::new(Handoff::default());
        // Unknown while the store is unreachable: the whole log counts as lag until it answers.
        let applied = store_applied.unwrap_or_else(|| log.start());
        // Then the log's end before the writer starts: the backlog of earlier processes ends here.
        let unknown = store_applied.is_none().then(|| log.end());
        let projected = Arc::new((Mutex::new(applied), Condvar::new()));
        metrics.log_end.store(log.end(), Ordering::Relaxed);
        metrics.applied.store(applied, Ordering::Relaxed);

        let keep_records = store.keeps_records();
        let writer = {
            let (metrics, config, log, handoff) = (metrics.clone(), config.clone(), log.clone(), handoff.clone());
            let queues = (rx, urgent.clone());
            std::thread::Builder::new()
                .name("signet-writer".into())
                .spawn(move || {
                    writer_loop(queues, ptx, (log, ledger), versions, config, metrics, handoff, keep_records)
                })
                .expect("spawn writer thread")
        };
        let projector = {
            let (metrics, config, projected, handoff) =
                (metrics.clone(), config.clone(), projected.clone(), handoff.clone());
            std::thread::Builder::new()
                .name("signet-projector".into())
                .spawn(move || {
                    projector::projector_loop(prx, store, log, config, metrics, (projected, unknown), handoff)
                })
                .expect("spawn projector thread")
        };
        Pipeline {
            tx: Mutex::new(Some(tx)),
            urgent,
            config,
            metrics,
            projected,
            handoff,
            threads: Mutex::new(vec![writer, projector]),
        }
    }

    /// Queues events of one organisation; the receiver resolves once they are durable.
    pub fn submit(&self, org: &str, events: Vec<Event>) -> Result<oneshot::Receiver<Result<Outcome>>> {
        self.enqueue(org, events, false)
    }

    /// Like [`Pipeline::submit`], for the few events an answer waits on (the access log's record
    /// of a read, which is served only once that record is durable): committed in the writer's
    /// next group, ahead of the batches queued before them, and waiting for the projection only
    /// when it is further behind than a burst leaves it (`max_unprojected_events`, a group and
    /// `URGENT_SLACK`). During a burst that fills the queue a read then waits for one group
    /// commit instead of the whole queue (docs/benchmarks.md run 41). Refused when the queue is
    /// full, like any batch.
    pub fn submit_urgent(&self, org: &str, events: Vec<Event>) -> Result<oneshot::Receiver<Result<Outcome>>> {
        self.enqueue(org, events, true)
    }

    fn enqueue(&self, org: &str, events: Vec<Event>, urgent: bool) -> Result<oneshot::Receiver<Result<Outcome>>> {
        let (reply, receiver) = oneshot::channel();
        if events.is_empty() {
            let _ = reply.send(Ok(Outcome::default()));
            return Ok(receiver);
        }
        let n = events.len();
        let bytes: usize = events.iter().map(|e| e.body.len() + e.original.as_ref().map_or(0, Vec::len) + 256).sum();
        let release = || {
            self.metrics.in_flight.fetch_sub(n, Ordering::AcqRel);
            self.metrics.in_flight_bytes.fetch_sub(bytes, Ordering::AcqRel);
        };
        let in_flight = self.metrics.in_flight.fetch_add(n, Ordering::AcqRel);
        let in_flight_bytes = self.metrics.in_flight_bytes.fetch_add(bytes, Ordering::AcqRel);
        if in_flight > 0
            && (in_flight + n > self.config.max_in_flight_events
                || in_flight_bytes + bytes > self.config.max_in_flight_bytes)
        {
            release();
            self.metrics.overloaded.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Overloaded { retry_after_secs: 1 });
        }
        let request =
            Request { org: org.to_string(), events, bytes, received_us: signet_model::time::now_micros(), reply };
        let guard = self.tx.lock();
        let Some(tx) = guard.as_ref() else {
            release();
            return Err(StoreError::ShuttingDown);
        };
        if urgent {
            self.urgent.lock().push(request);
            // A full queue needs no wake-up: the writer looks at the urgent requests before each
            // group and while it waits for the projection.
            if let Err(TrySendError::Disconnected(_)) = tx.try_send(Message::Wake) {
                self.urgent.lock().clear();
                release();
                return Err(StoreError::ShuttingDown);
            }
            return Ok(receiver);
        }
        match tx.try_send(Message::Batch(request)) {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(_)) => {
                release();
                self.metrics.overloaded.fetch_add(1, Ordering::Relaxed);
                Err(StoreError::Overloaded { retry_after_secs: 1 })
            }
            Err(TrySendError::Disconnected(_)) => {
                release();
                Err(StoreError::ShuttingDown)
            }
        }
    }

    /// Admits a request of about `bytes` before its body is read and parsed: `None` when the
    /// queue's byte budget has no room for it next to what is queued and what the requests
    /// admitted before it are about to submit. [`Pipeline::submit`] still decides; admission
    /// keeps concurrent requests from all parsing a body the queue then has no room for (under
    /// overload that parsing is what the cores are short of). When nothing is queued or
    /// admitted, any size is admitted, as `submit` accepts any batch into an empty queue. The
    /// room is held until the [`Admission`] is released or dropped.
    pub fn admit(&self, bytes: usize) -> Option<Admission> {
        let admitted = self.metrics.admitted_bytes.fetch_add(bytes, Ordering::AcqRel);
        let in_flight = self.metrics.in_flight_bytes.load(Ordering::Acquire);
        let before = in_flight.saturating_add(admitted);
        if before == 0 || before.saturating_add(bytes) <= self.config.max_in_flight_bytes {
            return Some(Admission { metrics: self.metrics.clone(), bytes: AtomicUsize::new(bytes) });
        }
        self.metrics.admitted_bytes.fetch_sub(bytes, Ordering::AcqRel);
        None
    }

    /// Submits and waits (for synchronous callers such as `signet import`).
    pub fn submit_blocking(&self, org: &str, events: Vec<Event>) -> Result<Outcome> {
        let receiver = self.submit(org, events)?;
        receiver.blocking_recv().map_err(|_| StoreError::ShuttingDown)?
    }

    /// Waits until everything durable in the log up to `position` is visible to queries.
    pub fn wait_projected(&self, position: u64, timeout: Duration) -> bool {
        let (lock, condvar) = &*self.projected;
        let deadline = Instant::now() + timeout;
        let mut applied = lock.lock();
        while *applied < position {
            if condvar.wait_until(&mut applied, deadline).timed_out() {
                return *applied >= position;
            }
        }
        true
    }

    pub fn metrics(&self) -> &Arc<IngestMetrics> {
        &self.metrics
    }

    /// Stops accepting, drains the queue, applies everything, and joins the threads.
    pub fn shutdown(&self) {
        self.tx.lock().take();
        self.handoff.stopping.store(true, Ordering::Release);
        for handle in self.threads.lock().drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[allow(clippy::too_many_arguments)]
fn writer_loop(
    (rx, urgent): (Receiver<Message>, Urgent),
    ptx: mpsc::Sender<Committed>,
    (log, ledger): (Arc<EventLog>, Arc<Ledger>),
    (mut index, mut snapshots): (VersionIndex, SnapshotSchedule),
    config: IngestConfig,
    metrics: Arc<IngestMetrics>,
    handoff: Arc<Handoff>,
    keep_records: bool,
) {
    // A batch taken from the queue that waits while urgent requests are committed first.
    let mut next: Option<Request> = None;
    'groups: loop {
        let urgent_group = std::mem::take(&mut *urgent.lock());
        let first = match (urgent_group.is_empty(), next.take()) {
            (false, taken) => {
                next = taken;
                None
            }
            (true, Some(first)) => Some(first),
            (true, None) => match rx.recv() {
                Ok(Message::Batch(first)) => Some(first),
                Ok(Message::Wake) => continue,
                Err(_) => break,
            },
        };
        // Hold back while the projection is far behind, but not forever: a store that cannot
        // take events (its disk is full, say) turns into 503s for the waiting requests instead
        // of requests that hang. Urgent requests (a few events each) are let past the limit by a
        // group and `URGENT_SLACK` events, not further: a store that takes nothing still bounds
        // them.
        let waiting = Instant::now();
        let held_back = |limit: usize| match config.lag_in_log {
            // A remote store that takes writes holds the writer back like the embedded one (what
            // is acknowledged stays visible within seconds); one that fails, or whose backlog is
            // being read from the log, does not: the log absorbs.
            true => handoff.queued.load(Ordering::Acquire) > limit && !handoff.absorbing.load(Ordering::Acquire),
            false => metrics.unprojected.load(Ordering::Acquire) > limit,
        };
        // Whether the group is refused for a projection too far behind; `None` when an urgent
        // request came while waiting (when `for_urgent`, the wait ends for it).
        let wait = |limit: usize, for_urgent: bool| {
            while held_back(limit) {
                if for_urgent && !urgent.lock().is_empty() {
                    return None;
                }
                if waiting.elapsed() > PROJECTION_WAIT {
                    return Some(true);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Some(false)
        };
        let (group, behind) = match first {
            // A group of batches committed just under the limit may leave the projection up to
            // a group beyond it: urgent requests wait only past that.
            None => {
                let limit = config.max_unprojected_events + config.group_max_events + URGENT_SLACK;
                (urgent_group, wait(limit, false) == Some(true))
            }
            Some(first) => {
                let Some(behind) = wait(config.max_unprojected_events, true) else {
                    next = Some(first);
                    continue 'groups;
                };
                let mut group = vec![first];
                let mut group_events = group[0].events.len();
                while group_events < config.group_max_events {
                    match rx.try_recv() {
                        Ok(Message::Batch(request)) => {
                            group_events += request.events.len();
                            group.push(request);
                        }
                        Ok(Message::Wake) => {}
                        Err(_) => break,
                    }
                }
                (group, behind)
            }
        };
        let started = Instant::now();
        let group_events: usize = group.iter().map(|r| r.events.len()).sum();
        let group_bytes: usize = group.iter().map(|r| r.bytes).sum();
        if behind {
            metrics.in_flight.fetch_sub(group_events, Ordering::AcqRel);
            metrics.in_flight_bytes.fetch_sub(group_bytes, Ordering::AcqRel);
            warn!(
                requests = group.len(),
                events = group_events,
                "the store is behind; refusing a commit group with 503"
            );
            for request in group {
                metrics.overloaded.fetch_add(1, Ordering::Relaxed);
                let _ = request.reply.send(Err(StoreError::Overloaded { retry_after_secs: 2 }));
            }
            continue;
        }
        let mut records = Vec::with_capacity(group_events);
        let mut stored = Vec::with_capacity(group_events);
        let mut outcomes = Vec::with_capacity(group.len());
        // Each addition to the index: its key, what it replaced (undone if the log refuses
        // the commit) and what it is (the snapshot's next delta).
        let mut undo: Vec<(u128, Option<Latest>, Latest)> = Vec::with_capacity(group_events);
        let mut undo_older: Vec<u128> = Vec::new();
        let mut replies = Vec::with_capacity(group.len());
        for request in group {
            let mut outcome = Outcome::default();
            for mut event in request.events {
                let key = version_key(&request.org, event.kind, &event.id);
                let previous = index.map.get(&key).copied();
                let revision = match previous {
                    // Records stored before the value hash keep their older hash: one of them
                    // sent again matches that (computed only when the value hash does not).
                    Some((_, hash))
                        if index.is_known(key, hash, event.content_hash)
                            || index.is_known(key, hash, event.legacy_content_hash()) =>
                    {
                        outcome.duplicates += 1;
                        metrics.duplicates[kind_index(event.kind)].fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Some((revision, hash)) => {
                        outcome.revisions += 1;
                        index.older.entry(key).or_default().push(hash);
                        undo_older.push(key);
                        revision + 1
                    }
                    None => 1,
                };
                outcome.accepted += 1;
                undo.push((key, previous, (revision, event.content_hash)));
                index.map.insert(key, (revision, event.content_hash));
                records.push(LogRecord {
                    kind: event.kind,
                    revision,
                    content_hash: event.content_hash,
                    time_us: event.time_us,
                    received_us: request.received_us,
                    org: request.org.clone(),
                    id: event.id.clone(),
                    body: std::mem::take(&mut event.body),
                    original: event.original.take(),
                });
                stored.push((request.org.clone(), revision, request.received_us, event));
            }
            outcomes.push(outcome);
            replies.push(request.reply);
        }
        let start = log.end();
        let mut leaves = Vec::with_capacity(records.len());
        let result = match records.is_empty() {
            true => Ok((Vec::new(), start)),
            false => log.append_visiting(&records, &mut |encoded| leaves.push(merkle::leaf_hash(encoded))),
        };
        metrics.in_flight.fetch_sub(group_events, Ordering::AcqRel);
        metrics.in_flight_bytes.fetch_sub(group_bytes, Ordering::AcqRel);
        match result {
            Ok((pointers, end)) => {
                // Counted before the end moves: the projector may read the log up to it at once.
                metrics.unprojected.fetch_add(records.len(), Ordering::AcqRel);
                if !records.is_empty() {
                    ledger.append(&records, &leaves, &pointers, end);
                }
                metrics.commits.fetch_add(1, Ordering::Relaxed);
                metrics.commit_micros_total.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                metrics.log_end.store(end, Ordering::Release);
                for (record, _) in records.iter().zip(&pointers) {
                    metrics.accepted[kind_index(record.kind)].fetch_add(1, Ordering::Relaxed);
                    if record.revision > 1 {
                        metrics.revisions[kind_index(record.kind)].fetch_add(1, Ordering::Relaxed);
                    }
                }
                let committed = records.len();
                if keep_records {
                    // The store keeps each record (ClickHouse: other nodes read it there).
                    for (record, (_, _, _, event)) in records.into_iter().zip(stored.iter_mut()) {
                        event.body = record.body;
                        event.original = record.original;
                    }
                } else {
                    // Before the acknowledgements: the bodies are slices of their requests'
                    // buffers, which go back to the server's pool with the last of them, so a
                    // client's next request finds its last one's buffer there.
                    drop(records);
                }
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
                if committed > 0 {
                    snapshots.committed(&index, undo.iter().map(|&(key, _, added)| (key, added)), end);
                }
                let events: Vec<StoredEvent> = stored
                    .into_iter()
                    .zip(pointers)
                    .map(|((org, revision, received_us, event), ptr)| StoredEvent {
                        org,
                        revision,
                        received_us,
                        ptr,
                        event,
                    })
                    .collect();
                let message = if events.is_empty() {
                    None
                } else if config.lag_in_log
                    && handoff.absorbing.load(Ordering::Acquire)
                    && handoff.queued.load(Ordering::Acquire) + events.len() > config.max_unprojected_events
                {
                    // The store fails (or a backlog is being read): these stay in the log only,
                    // and the projector reads them from there. A store that takes writes is
                    // never handed events this way: the writer waits for it instead.
                    (!handoff.in_log_sent.swap(true, Ordering::AcqRel)).then_some(Committed::InLog)
                } else {
                    handoff.queued.fetch_add(events.len(), Ordering::AcqRel);
                    Some(Committed::Events { events, start, end })
                };
                if message.is_some_and(|m| ptx.send(m).is_err()) {
                    error!("projector is gone; committed events will be applied at the next start");
                }
            }
            Err(err) => {
                error!(error = %err, events = records.len(), "event log write failed; the commit is refused");
                for key in undo_older.into_iter().rev() {
                    if let Some(hashes) = index.older.get_mut(&key) {
                        hashes.pop();
                    }
                }
                for (key, previous, _) in undo.into_iter().rev() {
                    match previous {
                        Some(v) => index.map.insert(key, v),
                        None => index.map.remove(&key),
                    };
                }
                for reply in replies {
                    let refusal = match &err {
                        StoreError::DiskFull { free_bytes, reserve_bytes } => {
                            StoreError::DiskFull { free_bytes: *free_bytes, reserve_bytes: *reserve_bytes }
                        }
                        other => StoreError::WriterFailed(other.to_string()),
                    };
                    let _ = reply.send(Err(refusal));
                }
            }
        }
    }
    snapshots.finish(&index, log.end());
    info!("writer stopped");
}
