//! The projector: applies committed events to the store in batches, reads a backlog back from
//! the event log when the store could not take them, and lets the store settle when ingest goes
//! quiet (see the parent module for the write path as a whole).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use signet_model::LogKind;
use tracing::{debug, error, info, warn};

use super::{kind_index, Committed, Handoff, IngestConfig, IngestMetrics, LOG_BATCH_RECORDS};
use crate::engine::{EventStore, StoredEvent};
use crate::error::Result;
use crate::log::EventLog;

/// When the projector lets the store settle (see [`IngestConfig::settle_after_idle`]): one
/// period after the first apply since the last settle, if that period stayed quiet; otherwise
/// one period later. A settle that fails is tried again soon, then less and less often.
struct SettleSchedule {
    period: Duration,
    quiet_events: usize,
    due: Option<Instant>,
    /// Events applied since `due` was set or last looked at.
    applied: usize,
    failures: u32,
}

/// How soon a settle that failed is tried again (doubling with each failure in a row, up to
/// [`SETTLE_RETRY_MAX`]), and every how many failures in a row one is logged as a warning (the
/// others at debug: with queries running, the first tries often fail).
const SETTLE_RETRY: Duration = Duration::from_millis(100);
const SETTLE_RETRY_MAX: Duration = Duration::from_secs(30);
const SETTLE_WARN_EVERY: u32 = 20;

impl SettleSchedule {
    fn new(config: &IngestConfig) -> SettleSchedule {
        SettleSchedule {
            period: config.settle_after_idle,
            quiet_events: config.settle_below_events,
            due: None,
            applied: 0,
            failures: 0,
        }
    }

    fn applied(&mut self, events: usize) {
        self.applied += events;
        self.due.get_or_insert_with(|| Instant::now() + self.period);
    }

    /// Settles the store if it is time and the last period was quiet.
    fn run_if_due(&mut self, store: &dyn EventStore) {
        if self.due.is_none_or(|at| at > Instant::now()) {
            return;
        }
        let events = std::mem::take(&mut self.applied);
        if events > self.quiet_events {
            self.due = Some(Instant::now() + self.period);
            return;
        }
        let started = Instant::now();
        match store.settle() {
            Ok(()) => {
                let elapsed_ms = started.elapsed().as_millis() as u64;
                debug!(elapsed_ms, events, "store settled while idle");
                (self.due, self.failures) = (None, 0);
            }
            // Not lost: the store's own log still holds it. DuckDB refuses to checkpoint while
            // a commit of the projector is still kept for queries that began before it: they
            // end within moments, so try again soon (and less often if it keeps failing: a
            // checkpoint that fails late, on a full disk say, has done its work for nothing).
            Err(err) => {
                self.failures += 1;
                match self.failures % SETTLE_WARN_EVERY {
                    0 => warn!(error = %err, failures = self.failures, "settling the store while idle failed"),
                    _ => debug!(error = %err, "settling the store while idle failed; trying again"),
                }
                let backoff = SETTLE_RETRY.saturating_mul(1 << (self.failures - 1).min(16));
                self.due = Some(Instant::now() + backoff.min(SETTLE_RETRY_MAX));
            }
        }
    }
}

/// The batch the projector is gathering: since when, and whether its deadline was extended.
#[derive(Default)]
struct Gathering {
    since: Option<Instant>,
    extended: bool,
}

impl Gathering {
    /// At the end of `projection_interval`: the later deadline to wait for, when the batch is
    /// short of `projection_eager_events` but its events arrive fast enough to fill it within
    /// `projection_bulk_wait` of its first one (once per batch).
    fn extend(&mut self, pending: usize, config: &IngestConfig) -> Option<Instant> {
        let since = self.since?;
        let eager = config.projection_eager_events.min(config.projection_max_events);
        if self.extended || pending == 0 || pending >= eager {
            return None;
        }
        let elapsed = since.elapsed().as_micros().max(1);
        let wait = config.projection_bulk_wait.as_micros();
        if wait <= elapsed || (pending as u128) * wait < (eager as u128) * elapsed {
            return None;
        }
        self.extended = true;
        Some(since + config.projection_bulk_wait)
    }
}

pub(super) fn projector_loop(
    prx: Receiver<Committed>,
    store: Arc<dyn EventStore>,
    log: Arc<EventLog>,
    config: IngestConfig,
    metrics: Arc<IngestMetrics>,
    (projected, position_unknown): (Arc<(Mutex<u64>, Condvar)>, Option<u64>),
    handoff: Arc<Handoff>,
) {
    let mut applied = *projected.0.lock();
    let published = |position: u64| {
        metrics.applied.store(position, Ordering::Relaxed);
        let (lock, condvar) = &*projected;
        *lock.lock() = position;
        condvar.notify_all();
    };
    // Events handed over, in log order, and the log position just past them.
    let mut pending: Vec<StoredEvent> = Vec::new();
    let mut next = applied;
    // Whether committed events beyond `next` are in the log only.
    let mut behind = false;
    let mut deadline: Option<Instant> = None;
    let mut gather = Gathering::default();
    let mut settle = SettleSchedule::new(&config);
    let mut disconnected = false;
    if let Some(started_at_end) = position_unknown {
        // The store was unreachable at the start: learn where it stands once it answers, then
        // catch up from the log (the writer does not wait meanwhile).
        handoff.absorbing.store(true, Ordering::Release);
        let Some(position) = store_position_when_reachable(&*store, &metrics, &handoff) else {
            info!("projector stopped before the store answered; the next start applies the log");
            return;
        };
        // What earlier processes committed and the store lacks counts as lag too (this
        // process's commits are counted by the writer).
        match log.count_records(position, started_at_end) {
            Ok(backlog) => {
                metrics.unprojected.fetch_add(backlog, Ordering::AcqRel);
            }
            Err(err) => {
                warn!(error = %err, "counting the event log's backlog failed; the lag in events is short of it")
            }
        }
        info!(position, "the store answers; catching up from the event log");
        applied = position;
        published(applied);
        next = applied;
        behind = true;
        deadline = Some(Instant::now());
    }
    loop {
        let wake = deadline.or(settle.due);
        let wait = wake.map_or(Duration::from_secs(3600), |d| d.saturating_duration_since(Instant::now()));
        // Whether the batch is applied because it is full (not at its deadline or at the end).
        let mut full = false;
        match prx.recv_timeout(wait) {
            Ok(Committed::Events { mut events, start, end }) => {
                handoff.queued.fetch_sub(events.len(), Ordering::AcqRel);
                if start > next {
                    behind = true;
                }
                if !behind && end > next {
                    // A log catch-up may have ended inside this group (it reads whole frames).
                    events.retain(|e| e.ptr.frame_pos >= next);
                    if pending.is_empty() {
                        gather = Gathering { since: Some(Instant::now()), extended: false };
                        deadline = gather.since.map(|since| since + config.projection_interval);
                    }
                    pending.extend(events);
                    next = end;
                    if pending.len() < config.projection_eager_events.min(config.projection_max_events) {
                        continue;
                    }
                    full = true;
                }
            }
            Ok(Committed::InLog) => {
                handoff.in_log_sent.store(false, Ordering::Release);
                behind = true;
            }
            Err(RecvTimeoutError::Timeout) => {
                if !behind && deadline.is_some_and(|at| at <= Instant::now()) {
                    if let Some(until) = gather.extend(pending.len(), &config) {
                        deadline = Some(until);
                        continue;
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => disconnected = true,
        }
        if !pending.is_empty() {
            // A full batch goes to the store in whole row groups when it writes those best; the
            // rest (the first events of a frame may be in the batch) starts the next batch. Not
            // when the log is to be read: it is read from the applied position, whole frames.
            let rest = match store.batch_rows() {
                Some(rows) if full && !behind => pending.split_off(row_group_cut(&pending, rows)),
                _ => Vec::new(),
            };
            let through = rest.first().map_or(next, |e| e.ptr.frame_pos);
            if !apply_with_retry(&*store, &pending, through, &metrics, &handoff) {
                break;
            }
            if !behind {
                handoff.absorbing.store(false, Ordering::Release);
            }
            metrics.unprojected.fetch_sub(pending.len(), Ordering::AcqRel);
            settle.applied(pending.len());
            pending = rest;
            applied = through;
            published(applied);
        }
        if pending.is_empty() && !behind {
            settle.run_if_due(&*store);
        }
        if behind && !disconnected {
            // Everything committed so far, from the log (written while the store was failing).
            handoff.absorbing.store(true, Ordering::Release);
            let Some(reached) = catch_up_from_log(&log, &*store, applied, &metrics, &published, &handoff) else {
                break;
            };
            handoff.absorbing.store(false, Ordering::Release);
            applied = reached;
            next = applied;
            behind = false;
            settle.applied(0);
        }
        deadline = None;
        if !pending.is_empty() {
            // The rest of a batch cut at a row group: gathering again, due like any batch.
            gather = Gathering { since: Some(Instant::now()), extended: false };
            deadline = gather.since.map(|since| since + config.projection_interval);
        }
        if disconnected {
            break;
        }
    }
    info!("projector stopped");
}

/// Where to cut a batch so that the rows it adds to its busiest table are a multiple of `rows`:
/// the events before the cut are applied now, the rest starts the next batch. A table gets
/// one row per (organisation, id) of its kind in the batch (the newest revision), so revisions
/// of an id the batch holds already add none. `events.len()` when there is nothing to cut:
/// fewer rows than `rows`, or an exact multiple already.
fn row_group_cut(events: &[StoredEvent], rows: usize) -> usize {
    use std::hash::BuildHasher;
    let key = |e: &StoredEvent| rustc_hash::FxBuildHasher.hash_one((e.event.kind, e.org.as_str(), e.event.id.as_str()));
    let mut seen: HashSet<u64, rustc_hash::FxBuildHasher> =
        HashSet::with_capacity_and_hasher(events.len(), Default::default());
    let mut per_kind = [0usize; LogKind::ALL.len()];
    for e in events {
        if seen.insert(key(e)) {
            per_kind[kind_index(e.event.kind)] += 1;
        }
    }
    let (busiest, count) = per_kind.iter().copied().enumerate().max_by_key(|&(_, n)| n).unwrap_or((0, 0));
    let whole = count / rows * rows;
    if whole == 0 || whole == count {
        return events.len();
    }
    // The event that brings the busiest table's new rows to `whole`; the cut is just after it.
    seen.clear();
    let mut added = 0;
    for (i, e) in events.iter().enumerate() {
        if kind_index(e.event.kind) == busiest && seen.insert(key(e)) {
            added += 1;
            if added == whole {
                return i + 1;
            }
        }
    }
    events.len()
}

/// Applies what the log holds from `from` up to its current end; returns the position reached,
/// or `None` when it stopped short because the pipeline is shutting down.
fn catch_up_from_log(
    log: &EventLog,
    store: &dyn EventStore,
    mut from: u64,
    metrics: &IngestMetrics,
    published: &dyn Fn(u64),
    handoff: &Handoff,
) -> Option<u64> {
    let mut delay = Duration::from_millis(50);
    let keep = store.keeps_records();
    loop {
        let target = metrics.log_end.load(Ordering::Acquire);
        if from >= target {
            return Some(from);
        }
        let batch = log.read_batch(from, target, LOG_BATCH_RECORDS).and_then(|(records, through)| {
            let events = records
                .iter()
                .map(|(ptr, record)| crate::stored_event(*ptr, record, keep))
                .collect::<Result<Vec<_>>>()?;
            Ok((events, through))
        });
        match batch {
            Ok((events, through)) => {
                if !apply_with_retry(store, &events, through, metrics, handoff) {
                    return None;
                }
                // Saturating: after a start with the store unreachable, the backlog includes
                // events an earlier process committed (never counted here).
                let _ = metrics
                    .unprojected
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(events.len())));
                from = through;
                published(from);
                delay = Duration::from_millis(50);
            }
            Err(err) => {
                // The log is the durable copy; a read that fails is retried, not skipped.
                metrics.apply_errors.fetch_add(1, Ordering::Relaxed);
                error!(error = %err, position = from, "reading the event log to catch up failed");
                if !pause(delay, &handoff.stopping) {
                    return None;
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The store's applied position, asked with back-off until it answers; `None` when the
/// pipeline shuts down first.
fn store_position_when_reachable(store: &dyn EventStore, metrics: &IngestMetrics, handoff: &Handoff) -> Option<u64> {
    let mut delay = Duration::from_millis(100);
    loop {
        match store.applied_position() {
            Ok(position) => return Some(position),
            Err(err) => {
                metrics.apply_errors.fetch_add(1, Ordering::Relaxed);
                debug!(error = %err, retry_in_ms = delay.as_millis() as u64, "the store does not answer yet");
                if !pause(delay, &handoff.stopping) {
                    return None;
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The store must eventually take every committed event: retry with back-off (the events are
/// safe in the log meanwhile; the writer is held back, or with `lag_in_log` the log absorbs
/// what the projector does not hold). Gives up only
/// when the pipeline is shutting down (`false`): the next start applies them from the log.
fn apply_with_retry(
    store: &dyn EventStore,
    events: &[StoredEvent],
    through: u64,
    metrics: &IngestMetrics,
    handoff: &Handoff,
) -> bool {
    let mut delay = Duration::from_millis(50);
    loop {
        match store.apply(events, through) {
            Ok(()) => return true,
            Err(err) => {
                metrics.apply_errors.fetch_add(1, Ordering::Relaxed);
                warn!(error = %err, events = events.len(), retry_in_ms = delay.as_millis() as u64, "applying events to the store failed");
                handoff.absorbing.store(true, Ordering::Release);
                if !pause(delay, &handoff.stopping) {
                    warn!(events = events.len(), "stopping with events not applied to the store; the event log has them and the next start applies them");
                    return false;
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Sleeps `delay`, or less if the pipeline starts shutting down (`false` then).
fn pause(delay: Duration, stopping: &std::sync::atomic::AtomicBool) -> bool {
    let until = Instant::now() + delay;
    while !stopping.load(Ordering::Acquire) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gathering_for(elapsed: Duration) -> Gathering {
        Gathering { since: Some(Instant::now() - elapsed), extended: false }
    }

    #[test]
    fn a_batch_waits_on_only_when_its_rate_fills_a_row_group_in_time() {
        let config = IngestConfig {
            projection_interval: Duration::from_millis(100),
            projection_eager_events: 20_480,
            projection_bulk_wait: Duration::from_millis(300),
            ..IngestConfig::default()
        };
        // 100,000 events/s: 10,000 in the first 100 ms, 30,000 by 300 ms.
        let mut fast = gathering_for(Duration::from_millis(100));
        let until = fast.extend(10_000, &config).expect("fast enough to fill a row group");
        assert_eq!(Some(until), fast.since.map(|since| since + config.projection_bulk_wait));
        assert_eq!(fast.extend(12_000, &config), None, "extended once per batch");
        // 50,000 events/s would reach 15,000 by 300 ms: applied now, as before.
        assert_eq!(gathering_for(Duration::from_millis(100)).extend(5_000, &config), None);
        // A single event, a full batch, nothing gathered, and a batch already past the wait.
        assert_eq!(gathering_for(Duration::from_millis(100)).extend(1, &config), None);
        assert_eq!(gathering_for(Duration::from_millis(100)).extend(20_480, &config), None);
        assert_eq!(Gathering::default().extend(10_000, &config), None);
        assert_eq!(gathering_for(Duration::from_millis(350)).extend(19_000, &config), None);
    }

    fn event(kind: LogKind, id: &str) -> StoredEvent {
        let json = match kind {
            LogKind::SignIn => crate::conformance::signin_json(id, 0, "u@x", "Teams", 0, ""),
            _ => {
                format!(r#"{{"id":"{id}","activityDateTime":"2024-01-01T00:00:00Z","activityDisplayName":"Add user"}}"#)
            }
        };
        crate::conformance::stored("o", kind, &json, 1, 1)
    }

    #[test]
    fn a_full_batch_is_cut_where_its_busiest_table_has_whole_row_groups() {
        let (s, a) = (LogKind::SignIn, LogKind::DirectoryAudit);
        let batch = |events: &[(LogKind, &str)]| events.iter().map(|(k, id)| event(*k, id)).collect::<Vec<_>>();
        // Row groups of 2: `a` again is a revision (no new row), so the 4th new sign-in is `d`.
        let events = batch(&[(s, "a"), (s, "b"), (s, "a"), (a, "x"), (s, "c"), (s, "d"), (s, "e")]);
        assert_eq!(row_group_cut(&events, 2), 6);
        assert_eq!(row_group_cut(&events[..6], 2), 6, "an exact multiple is applied whole");
        assert_eq!(row_group_cut(&events[..2], 4), 2, "less than a row group: whole");
        // The audits are the busiest table here.
        let events = batch(&[(a, "x"), (s, "a"), (a, "y"), (a, "z")]);
        assert_eq!(row_group_cut(&events, 2), 3);
    }
}
