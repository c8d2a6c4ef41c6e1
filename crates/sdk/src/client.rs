//! The client: [`Client::record`] queues an event in the spool and returns; a background task
//! sends the spool in batches, one request at a time, oldest first.
//!
//! Retrying is safe because every event carries its id from the moment it is made: Signet
//! stores an id once and counts the repeats as duplicates. Transient failures (no connection,
//! timeouts, 5xx) back off exponentially with jitter; 429 and 503 wait at least `Retry-After`.
//! A refused credential or a wrong URL keeps the events and retries at the longest back-off, so
//! that fixing the configuration delivers them. Records Signet rejects (a bad field) are not
//! retried: they are reported ([`Client::rejections`], and `rejected.ndjson` in the spool).

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tracing::{debug, warn};

use crate::event::{Event, Kind};
use crate::settings::{AuditSettings, SettingsCache};
use crate::spool::{Limits, Line, Segment, Spool};
use crate::SdkError;

/// How hard an accepted event is kept before Signet acknowledges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Written to the operating system before `record` returns: survives the application
    /// crashing or restarting (not a power cut).
    Process,
    /// Also fsynced: survives a power cut; each `record` costs a disk flush.
    Fsync,
}

/// Builds a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    server: String,
    api_key: String,
    spool_dir: Option<std::path::PathBuf>,
    durability: Durability,
    batch_size: usize,
    max_batch_bytes: usize,
    linger: Duration,
    max_pending_events: Option<usize>,
    max_pending_bytes: u64,
    min_backoff: Duration,
    max_backoff: Duration,
    request_timeout: Duration,
    settings_ttl: Duration,
}

impl ClientBuilder {
    /// A client of the Signet at `server` (`http://127.0.0.1:8080`) with an ingest key.
    pub fn new(server: impl Into<String>, api_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            server: server.into().trim_end_matches('/').to_string(),
            api_key: api_key.into(),
            spool_dir: None,
            durability: Durability::Process,
            batch_size: 500,
            max_batch_bytes: 4 << 20,
            linger: Duration::from_millis(500),
            max_pending_events: None,
            max_pending_bytes: 1 << 30,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            settings_ttl: Duration::from_secs(300),
        }
    }

    /// Keeps unsent events in this directory, so they survive the application restarting.
    /// One client per directory at a time: the directory is locked while the client runs.
    pub fn spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Events per request at most (default 500).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// Request body size at most (default 4 MiB; Signet's limit is 64 MiB by default). A batch
    /// Signet still finds too large (413) is split in halves.
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes.max(1);
        self
    }

    /// How long an event may wait for its batch to fill before it is sent (default 0.5 s).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Events waiting at most; `record` answers [`SdkError::Full`] beyond (default 100,000 in
    /// memory, 10,000,000 with a spool directory).
    pub fn max_pending_events(mut self, events: usize) -> Self {
        self.max_pending_events = Some(events);
        self
    }

    /// Bytes of events waiting at most (default 1 GiB).
    pub fn max_pending_bytes(mut self, bytes: u64) -> Self {
        self.max_pending_bytes = bytes;
        self
    }

    /// Back-off between attempts: from `min`, doubling, up to `max` (defaults 0.2 s and 60 s).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long the organisation's audit settings are cached (default 5 minutes).
    pub fn settings_ttl(mut self, ttl: Duration) -> Self {
        self.settings_ttl = ttl;
        self
    }

    /// Opens the spool and starts sending. Call inside a Tokio runtime.
    pub fn build(self) -> Result<Client, SdkError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| SdkError::Config("the Signet client needs a Tokio runtime".into()))?;
        if !(self.server.starts_with("http://") || self.server.starts_with("https://")) {
            return Err(SdkError::Config(format!("server {:?} must be an http:// or https:// URL", self.server)));
        }
        let max_pending_events = self.max_pending_events.unwrap_or(match self.spool_dir {
            Some(_) => 10_000_000,
            None => 100_000,
        });
        let limits = Limits {
            batch_size: self.batch_size,
            max_pending_events,
            max_pending_bytes: self.max_pending_bytes,
            durability: self.durability,
        };
        let spool = Spool::open(self.spool_dir.clone(), limits)?;
        let http = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .user_agent(concat!("signet-sdk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SdkError::Config(e.to_string()))?;
        let (progress, _) = watch::channel(spool.done_through());
        let inner = Arc::new(Inner {
            settings: SettingsCache::new(self.settings_ttl),
            config: self,
            spool,
            http,
            stats: Mutex::new(Stats::default()),
            rejections: Mutex::new(Vec::new()),
            wake: Notify::new(),
            progress,
            stop: watch::channel(false).0,
        });
        inner.stats.lock().pending = inner.spool.pending();
        let task = runtime.spawn(send_loop(inner.clone()));
        Ok(Client { handle: Arc::new(Handle { inner, task: Mutex::new(Some(task)) }) })
    }
}

/// What the client did so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Events the application recorded (queued).
    pub recorded: u64,
    /// Events Signet stored.
    pub accepted: u64,
    /// Events Signet already had (a retry of a request whose answer was lost).
    pub duplicates: u64,
    /// Events Signet did not store on purpose (exclusion list, audit settings, user access
    /// already recorded in the interval).
    pub excluded: u64,
    /// Events Signet refused (a bad field); see [`Client::rejections`].
    pub rejected: u64,
    /// Requests sent again after a failure.
    pub retries: u64,
    /// Events `record` refused because the spool was full.
    pub refused: u64,
    /// Events waiting to be sent.
    pub pending: usize,
    /// The last failure, until a request succeeds.
    pub last_error: Option<String>,
}

/// A record Signet refused, with its reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub kind: Kind,
    pub id: String,
    pub field: String,
    pub reason: String,
}

const MAX_KEPT_REJECTIONS: usize = 1000;

struct Inner {
    config: ClientBuilder,
    spool: Spool,
    http: reqwest::Client,
    settings: SettingsCache,
    stats: Mutex<Stats>,
    rejections: Mutex<Vec<Rejection>>,
    wake: Notify,
    /// Every segment up to this sequence number was answered.
    progress: watch::Sender<u64>,
    stop: watch::Sender<bool>,
}

struct Handle {
    inner: Arc<Inner>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The last handle is gone: stop sending (spooled events wait for the next start).
        self.inner.stop.send_replace(true);
    }
}

/// A handle to the sender; cheap to clone, share one per application.
#[derive(Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

/// What [`Client::shutdown`] left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Events not delivered before the deadline.
    pub undelivered: usize,
    /// Whether those are kept in the spool directory for the next start (otherwise they are
    /// lost with the process).
    pub spooled: bool,
}

impl Client {
    pub fn builder(server: impl Into<String>, api_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(server, api_key)
    }

    fn inner(&self) -> &Inner {
        &self.handle.inner
    }

    /// Queues an event. When this returns `Ok`, the event is in the spool and will be sent
    /// (again after a restart, with a spool directory). A short file append: fine to call from
    /// async code. [`SdkError::Full`] when the spool is at its limit (Signet has been
    /// unreachable for long): the caller decides what to do with the event.
    pub fn record(&self, event: impl Into<Event>) -> Result<(), SdkError> {
        let event = event.into();
        let inner = self.inner();
        if *inner.stop.borrow() {
            return Err(SdkError::Stopped);
        }
        if let Err(err) = inner.spool.append(&event) {
            if matches!(err, SdkError::Full { .. }) {
                inner.stats.lock().refused += 1;
            }
            return Err(err);
        }
        let mut stats = inner.stats.lock();
        stats.recorded += 1;
        stats.pending = inner.spool.pending();
        drop(stats);
        inner.wake.notify_one();
        Ok(())
    }

    /// Sends everything queued so far and waits until Signet answered for all of it. Wrap it
    /// in `tokio::time::timeout` to bound the wait.
    pub async fn flush(&self) -> Result<Stats, SdkError> {
        let inner = self.inner();
        let target = inner.spool.seal_now();
        inner.wake.notify_one();
        let mut progress = inner.progress.subscribe();
        let mut stop = inner.stop.subscribe();
        loop {
            if *progress.borrow_and_update() >= target {
                return Ok(self.stats());
            }
            if *stop.borrow_and_update() {
                return Err(SdkError::Stopped);
            }
            tokio::select! {
                changed = progress.changed() => if changed.is_err() { return Err(SdkError::Stopped) },
                _ = stop.changed() => {}
            }
        }
    }

    /// Delivers what it can within `deadline`, then stops the sender. What is left stays in
    /// the spool directory for the next start.
    pub async fn shutdown(self, deadline: Duration) -> ShutdownReport {
        let _ = tokio::time::timeout(deadline, self.flush()).await;
        self.inner().stop.send_replace(true);
        let task = self.handle.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        ShutdownReport { undelivered: self.inner().spool.pending(), spooled: self.inner().spool.on_disk() }
    }

    pub fn stats(&self) -> Stats {
        let mut stats = self.inner().stats.lock().clone();
        stats.pending = self.inner().spool.pending();
        stats
    }

    /// The latest records Signet refused (up to 1,000; with a spool directory every one is
    /// also in `rejected.ndjson` there).
    pub fn rejections(&self) -> Vec<Rejection> {
        self.inner().rejections.lock().clone()
    }

    /// The organisation's audit settings as last read from Signet (refreshed in the background
    /// when older than the TTL); `None` until the first answer.
    pub fn audit_settings(&self) -> Option<Arc<AuditSettings>> {
        let inner = self.handle.inner.clone();
        let (current, refresh) = inner.settings.snapshot();
        if refresh {
            tokio::spawn(async move {
                let started = Instant::now();
                let fetched = fetch_settings(&inner).await;
                inner.settings.store(fetched.ok(), started);
            });
        }
        current
    }

    /// Reads the audit settings now (and caches them).
    pub async fn refresh_audit_settings(&self) -> Result<Arc<AuditSettings>, SdkError> {
        let started = Instant::now();
        let fetched = fetch_settings(self.inner()).await;
        self.inner().settings.store(fetched.as_ref().ok().cloned(), started);
        fetched.map(Arc::new)
    }
}

async fn fetch_settings(inner: &Inner) -> Result<AuditSettings, SdkError> {
    let url = format!("{}/api/v1/ingest/settings", inner.config.server);
    let response = inner
        .http
        .get(url)
        .bearer_auth(&inner.config.api_key)
        .send()
        .await
        .map_err(|e| SdkError::Http(e.without_url().to_string()))?;
    if !response.status().is_success() {
        return Err(SdkError::Http(format!("reading the audit settings: HTTP {}", response.status())));
    }
    response.json().await.map_err(|e| SdkError::Http(e.without_url().to_string()))
}

async fn send_loop(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        let wait = match inner.spool.next(inner.config.linger) {
            Ok(segment) => {
                if deliver(&inner, &segment).await.is_err() {
                    return; // Stopped mid-delivery: the segment stays queued.
                }
                if let Err(err) = inner.spool.done(&segment) {
                    warn!(error = %err, "could not remove a delivered spool segment (it will be sent again)");
                }
                inner.progress.send_replace(segment.seq);
                continue;
            }
            Err(wait) => wait.unwrap_or(Duration::from_secs(3600)),
        };
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The sender was asked to stop.
struct Stopped;

async fn deliver(inner: &Inner, segment: &Segment) -> Result<(), Stopped> {
    let lines = loop {
        match inner.spool.lines(segment) {
            Ok(lines) => break lines,
            Err(err) => {
                note_error(inner, err.to_string());
                pause(inner, inner.config.max_backoff).await?;
            }
        }
    };
    for kind in Kind::ALL {
        let of_kind: Vec<&Line> = lines.iter().filter(|l| l.kind == kind).collect();
        for batch in batches(&of_kind, inner.config.batch_size, inner.config.max_batch_bytes) {
            send_batch(inner, kind, batch).await?;
        }
    }
    Ok(())
}

/// Splits lines into batches of at most `size` events and about `bytes` bytes.
fn batches<'a>(lines: &[&'a Line], size: usize, bytes: usize) -> Vec<Vec<&'a Line>> {
    let mut out: Vec<Vec<&Line>> = Vec::new();
    let mut current_bytes = 0;
    for line in lines {
        let fits = out.last().is_some_and(|b| b.len() < size && current_bytes + line.json.len() < bytes);
        if !fits {
            out.push(Vec::new());
            current_bytes = 0;
        }
        current_bytes += line.json.len() + 1;
        out.last_mut().expect("pushed above").push(line);
    }
    out
}

#[derive(Deserialize)]
struct IngestAnswer {
    #[serde(default)]
    accepted: u64,
    #[serde(default)]
    duplicates: u64,
    #[serde(default)]
    excluded: u64,
    #[serde(default)]
    rejected: u64,
    #[serde(default)]
    errors: Vec<AnswerError>,
}

#[derive(Deserialize)]
struct AnswerError {
    index: usize,
    field: String,
    reason: String,
}

enum Attempt {
    Answered(IngestAnswer),
    /// The whole batch is refused for a reason no retry changes.
    Refused(String),
    TooLarge,
    Retry {
        after: Option<Duration>,
        error: String,
        slow: bool,
    },
}

async fn send_batch(inner: &Inner, kind: Kind, batch: Vec<&Line>) -> Result<(), Stopped> {
    // A stack, so a batch split on 413 is sent first half first.
    let mut work = vec![batch];
    while let Some(batch) = work.pop() {
        let body = body_of(&batch);
        let mut failures = 0u32;
        loop {
            match attempt(inner, kind, body.clone()).await {
                Attempt::Answered(answer) => {
                    account(inner, kind, &batch, answer);
                    break;
                }
                Attempt::Refused(reason) => {
                    let answer = IngestAnswer {
                        accepted: 0,
                        duplicates: 0,
                        excluded: 0,
                        rejected: batch.len() as u64,
                        errors: (0..batch.len())
                            .map(|index| AnswerError { index, field: String::new(), reason: reason.clone() })
                            .collect(),
                    };
                    account(inner, kind, &batch, answer);
                    break;
                }
                Attempt::TooLarge if batch.len() > 1 => {
                    let (first, second) = batch.split_at(batch.len() / 2);
                    work.push(second.to_vec());
                    work.push(first.to_vec());
                    break;
                }
                Attempt::TooLarge => {
                    let reason = "larger than the server accepts in one request (413)".to_string();
                    let answer = IngestAnswer {
                        accepted: 0,
                        duplicates: 0,
                        excluded: 0,
                        rejected: 1,
                        errors: vec![AnswerError { index: 0, field: String::new(), reason }],
                    };
                    account(inner, kind, &batch, answer);
                    break;
                }
                Attempt::Retry { after, error, slow } => {
                    failures += 1;
                    inner.stats.lock().retries += 1;
                    note_error(inner, error);
                    let backoff = match slow {
                        true => inner.config.max_backoff,
                        false => backoff(inner.config.min_backoff, inner.config.max_backoff, failures),
                    };
                    pause(inner, after.map_or(backoff, |after| after.max(backoff.min(after * 2)))).await?;
                }
            }
        }
    }
    Ok(())
}

fn body_of(batch: &[&Line]) -> String {
    let mut body = String::with_capacity(batch.iter().map(|l| l.json.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, line) in batch.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&line.json);
    }
    body.push(']');
    body
}

async fn attempt(inner: &Inner, kind: Kind, body: String) -> Attempt {
    let url = format!("{}{}", inner.config.server, kind.path());
    let sent = inner
        .http
        .post(url)
        .bearer_auth(&inner.config.api_key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(err) => return Attempt::Retry { after: None, error: err.without_url().to_string(), slow: false },
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = response.text().await.unwrap_or_default();
    match status {
        200 | 207 | 400 => match serde_json::from_str::<IngestAnswer>(&text) {
            Ok(answer) if status != 400 || answer.rejected > 0 => Attempt::Answered(answer),
            _ if status == 400 => Attempt::Refused(format!("HTTP 400: {}", error_message(&text))),
            Ok(_) => unreachable!("only a 400 reaches here with an answer"),
            Err(err) => Attempt::Retry { after: None, error: format!("unreadable answer: {err}"), slow: false },
        },
        413 => Attempt::TooLarge,
        429 | 503 => Attempt::Retry { after: retry_after, error: format!("HTTP {status} (busy)"), slow: false },
        401 | 403 | 404 | 405 | 415 => Attempt::Retry {
            after: None,
            error: format!("HTTP {status}: {} (check the server URL and the ingest key)", error_message(&text)),
            slow: true,
        },
        _ => Attempt::Retry {
            after: retry_after,
            error: format!("HTTP {status}: {}", error_message(&text)),
            slow: false,
        },
    }
}

/// The message of a Graph-shaped error answer, or the start of the text.
fn error_message(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.chars().take(200).collect())
}

fn account(inner: &Inner, kind: Kind, batch: &[&Line], answer: IngestAnswer) {
    let mut rejections = Vec::new();
    for error in answer.errors {
        let id = batch
            .get(error.index)
            .and_then(|line| serde_json::from_str::<serde_json::Value>(&line.json).ok())
            .and_then(|v| v[kind.id_field()].as_str().map(str::to_string))
            .unwrap_or_default();
        rejections.push(Rejection { kind, id, field: error.field, reason: error.reason });
    }
    {
        let mut stats = inner.stats.lock();
        stats.accepted += answer.accepted;
        stats.duplicates += answer.duplicates;
        stats.excluded += answer.excluded;
        stats.rejected += answer.rejected;
        stats.last_error = None;
    }
    debug!(kind = ?kind, events = batch.len(), accepted = answer.accepted, rejected = answer.rejected, "batch answered");
    if rejections.is_empty() {
        return;
    }
    warn!(kind = ?kind, rejected = rejections.len(), first_reason = %rejections[0].reason, "Signet rejected records");
    if let Some(path) = inner.spool.rejected_path() {
        if let Err(err) = append_rejections(&path, batch, &rejections) {
            warn!(error = %err, "could not write rejected.ndjson");
        }
    }
    let mut kept = inner.rejections.lock();
    kept.extend(rejections);
    let overflow = kept.len().saturating_sub(MAX_KEPT_REJECTIONS);
    kept.drain(..overflow);
}

fn append_rejections(path: &std::path::Path, batch: &[&Line], rejections: &[Rejection]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    for rejection in rejections {
        let event = batch
            .iter()
            .find_map(|line| {
                let value: serde_json::Value = serde_json::from_str(&line.json).ok()?;
                (value[rejection.kind.id_field()].as_str() == Some(rejection.id.as_str())).then_some(value)
            })
            .unwrap_or(serde_json::Value::Null);
        let record = serde_json::json!({ "rejection": rejection, "event": event });
        writeln!(file, "{record}")?;
    }
    file.sync_data()
}

fn note_error(inner: &Inner, error: String) {
    warn!(error = %error, "Signet did not take the events; they are kept and sent again");
    inner.stats.lock().last_error = Some(error);
}

/// Exponential back-off with full jitter: a random wait up to `min * 2^failures`, capped.
fn backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    let ceiling = min.saturating_mul(1u32 << failures.min(20)).min(max);
    let low = ceiling / 2;
    low + ceiling.saturating_sub(low).mul_f64(rand::random::<f64>())
}

/// Sleeps, unless asked to stop.
async fn pause(inner: &Inner, wait: Duration) -> Result<(), Stopped> {
    let mut stop = inner.stop.subscribe();
    if *stop.borrow_and_update() {
        return Err(Stopped);
    }
    let started = Instant::now();
    tokio::select! {
        _ = tokio::time::sleep(wait) => Ok(()),
        _ = stop.changed() => {
            debug!(waited_ms = started.elapsed().as_millis() as u64, "sender stopped during a back-off");
            Err(Stopped)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(bytes: usize) -> Line {
        Line { kind: Kind::Activity, json: "x".repeat(bytes) }
    }

    #[test]
    fn batches_respect_count_and_size() {
        let lines: Vec<Line> = (0..10).map(|_| line(100)).collect();
        let refs: Vec<&Line> = lines.iter().collect();
        let by_count = batches(&refs, 4, 1 << 20);
        assert_eq!(by_count.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        let by_size = batches(&refs, 100, 350);
        assert_eq!(by_size.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 3, 1]);
        let huge = [line(1000)];
        let one: Vec<&Line> = huge.iter().collect();
        assert_eq!(batches(&one, 10, 10).len(), 1, "an event larger than the limit still goes, alone");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        for failures in 1..30 {
            let wait = backoff(min, max, failures);
            let ceiling = min.saturating_mul(1 << failures.min(20)).min(max);
            assert!(wait >= ceiling / 2 && wait <= ceiling, "{failures}: {wait:?}");
        }
    }

    #[test]
    fn a_batch_body_is_a_json_array() {
        let lines = [
            Line { kind: Kind::Activity, json: "{\"a\":1}".into() },
            Line { kind: Kind::Activity, json: "{\"b\":2}".into() },
        ];
        let refs: Vec<&Line> = lines.iter().collect();
        let body: serde_json::Value = serde_json::from_str(&body_of(&refs)).unwrap();
        assert_eq!(body, serde_json::json!([{"a":1},{"b":2}]));
    }
}
