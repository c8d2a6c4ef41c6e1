//! Streaming out: forwarders deliver newly stored events to other tools (a SIEM's HTTP
//! collector, a webhook, a syslog receiver), continuously, at least once, in log order, from a
//! cursor kept in `DATA/forward/<name>.json` that survives restarts.
//!
//! Each forwarder is a thread that reads the event log in whole frames from its cursor up to the
//! position the store has applied (so only committed events leave), keeps what its filters
//! admit (log kinds, organisations, failures only), and delivers a batch. The cursor moves only
//! after the batch is delivered; failures are retried with exponential back-off (at least the
//! receiver's `Retry-After`), never skipped. A crash between delivery and the cursor write
//! delivers that batch again: receivers de-duplicate by (`organization`, `kind`, `id`,
//! `revision`). Activities larger than `max_record_bytes` are sent in parts
//! (`signet_import::parts`). `/metrics` shows each forwarder's lag, deliveries and failures.
//!
//! Destinations, by the scheme of `url`:
//! - `https://` (or `http://` to loopback): a POST per batch, body `{"destination", "from",
//!   "to", "events": [{"kind", "organization", "id", "revision", "received", "record"}]}`, or
//!   with `format = "ocsf"` the events as OCSF 1.1 records. Headers: `X-Signet-Signature:
//!   t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, `X-Signet-Destination`,
//!   `X-Signet-Cursor` (the `to` position). Delivered = a 2xx answer.
//! - `tcp://`, `tls://`, `udp://`, `relp://` `host:port`: one RFC 5424 syslog message per event
//!   (`crate::syslog`), MSG the event as JSON (`signet` or `ocsf` format) or a CEF line
//!   (`format = "cef"`). Delivered = acknowledged for RELP; written for TCP/TLS, where a broken
//!   connection resends what went over it in the last seconds; sent for UDP (lossy).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use signet_model::{CellRef, LogKind};
use signet_store::Engine;
use tracing::{info, warn};

use crate::audit_settings::replace_file;

fn default_batch() -> usize {
    500
}

/// Where a new forwarder (no cursor yet) starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// Everything in the log.
    #[default]
    Beginning,
    /// Only what is stored from now on.
    End,
}

/// What each event of a batch carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The record as stored, with its kind, organisation, id, revision and reception time.
    #[default]
    Signet,
    /// An OCSF 1.1 record (`crate::ocsf`), the stored record in `unmapped.record`.
    Ocsf,
    /// An ArcSight CEF line as the syslog MSG (`crate::syslog::cef`); syslog destinations only.
    Cef,
}

fn default_facility() -> u8 {
    13 // log audit
}

/// One `[[forward]]` table of signet.toml.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSettings {
    /// Names the cursor file and the metrics: letters, digits, `-` and `_`.
    pub name: String,
    /// The receiver: `https://...` (or `http://` to loopback) for a webhook; `tcp://`, `tls://`,
    /// `udp://` or `relp://` + `host:port` for syslog.
    pub url: String,
    /// Webhooks: key of the `X-Signet-Signature` HMAC (at least 16 characters). Never logged or
    /// shown.
    #[serde(default, serialize_with = "redacted")]
    pub secret: String,
    /// Plain `http://`, `tcp://`, `udp://` or `relp://` to a host that is not loopback.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Syslog: the facility (0-23; default 13, log audit).
    #[serde(default = "default_facility")]
    pub facility: u8,
    /// Syslog: the HOSTNAME field (default: this machine's name).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Syslog over TLS: PEM file of the CAs to trust instead of the public web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Log kinds sent: `signins`, `directory-audits`, `activities` (default: all).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Organisations sent (default: all).
    #[serde(default)]
    pub organizations: Vec<String>,
    /// Only failed sign-ins, failed directory audits and failed activities.
    #[serde(default)]
    pub failures_only: bool,
    /// Events per request at most.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Activities larger than this many bytes go in parts (the receiver's record size limit).
    #[serde(default)]
    pub max_record_bytes: Option<usize>,
    #[serde(default)]
    pub start: Start,
    #[serde(default)]
    pub format: Format,
}

fn redacted<S: serde::Serializer>(_: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str("[redacted]")
}

impl std::fmt::Debug for ForwardSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardSettings")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .field("kinds", &self.kinds)
            .field("organizations", &self.organizations)
            .field("failures_only", &self.failures_only)
            .finish_non_exhaustive()
    }
}

impl ForwardSettings {
    fn check(&self) -> Result<Vec<LogKind>, String> {
        let name = &self.name;
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("forward {name:?}: the name must be 1-64 letters, digits, '-' or '_'"));
        }
        let syslog = crate::syslog::Target::parse(&self.url).map_err(|e| format!("forward {name}: url: {e}"))?;
        let (plaintext, loopback) = match &syslog {
            Some(target) => (target.protocol != crate::syslog::Protocol::Tls, target.is_loopback()),
            None => {
                let url = reqwest::Url::parse(&self.url).map_err(|e| format!("forward {name}: url: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(format!(
                        "forward {name}: url must be https://, http://, tcp://, tls://, udp:// or relp://"
                    ));
                }
                let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]" | "::1"));
                (url.scheme() == "http", loopback)
            }
        };
        if plaintext && !loopback && !self.allow_plaintext {
            return Err(format!(
                "forward {name}: {} sends in the clear; use https:// or tls://, or set allow_plaintext = true",
                self.url
            ));
        }
        match &syslog {
            None if self.secret.len() < 16 => {
                return Err(format!("forward {name}: secret must be at least 16 characters"));
            }
            None if self.format == Format::Cef => {
                return Err(format!("forward {name}: format \"cef\" is for syslog destinations"));
            }
            Some(_) if self.facility > 23 => return Err(format!("forward {name}: facility must be 0-23")),
            _ => {}
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return Err(format!("forward {name}: batch_size must be 1-10000"));
        }
        if self.max_record_bytes.is_some_and(|b| b < 1024) {
            return Err(format!("forward {name}: max_record_bytes must be at least 1024"));
        }
        let kinds: Vec<LogKind> = match self.kinds.is_empty() {
            true => LogKind::ALL.to_vec(),
            false => {
                self.kinds
                    .iter()
                    .map(|k| {
                        LogKind::ALL.into_iter().find(|kind| crate::api::kind_names(*kind).0 == k.as_str()).ok_or_else(
                            || format!("forward {name}: kind {k:?}: signins, directory-audits or activities"),
                        )
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(kinds)
    }
}

/// What `/metrics` shows of one forwarder.
#[derive(Default)]
struct Status {
    name: String,
    lag_bytes: AtomicU64,
    delivered: AtomicU64,
    failures: AtomicU64,
    last_delivery_us: AtomicI64,
}

/// A metric of every forwarder: (name, help, type, value).
type Metric = (&'static str, &'static str, &'static str, fn(&Status) -> String);

/// Every configured forwarder.
pub struct Forwarders {
    settings: Vec<(ForwardSettings, Vec<LogKind>)>,
    statuses: Vec<Arc<Status>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Forwarders {
    pub fn new(settings: Vec<ForwardSettings>) -> Result<Forwarders, String> {
        let mut checked = Vec::new();
        for s in settings {
            if checked.iter().any(|(other, _): &(ForwardSettings, _)| other.name == s.name) {
                return Err(format!("forward {:?} is configured twice", s.name));
            }
            let kinds = s.check()?;
            checked.push((s, kinds));
        }
        let statuses =
            checked.iter().map(|(s, _)| Arc::new(Status { name: s.name.clone(), ..Status::default() })).collect();
        Ok(Forwarders { settings: checked, statuses, stop: Arc::default(), threads: Mutex::new(Vec::new()) })
    }

    pub fn none() -> Forwarders {
        Forwarders::new(Vec::new()).expect("no settings to check")
    }

    /// Starts one thread per forwarder.
    pub fn start(&self, engine: Arc<Engine>) {
        let mut threads = self.threads.lock();
        for ((settings, kinds), status) in self.settings.iter().zip(&self.statuses) {
            let forwarder = Forwarder {
                settings: settings.clone(),
                kinds: kinds.clone(),
                cursor_file: engine.data_dir().join("forward").join(format!("{}.json", settings.name)),
                engine: engine.clone(),
                status: status.clone(),
                stop: self.stop.clone(),
            };
            let name = format!("forward-{}", settings.name);
            match std::thread::Builder::new().name(name).spawn(move || forwarder.run()) {
                Ok(thread) => threads.push(thread),
                Err(err) => warn!(forwarder = %settings.name, error = %err, "could not start a forwarder"),
            }
        }
    }

    /// Stops the threads (a delivery in flight finishes or times out first).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.lock().drain(..) {
            let _ = thread.join();
        }
    }

    /// Prometheus lines for `/metrics`.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        if self.statuses.is_empty() {
            return out;
        }
        let metrics: [Metric; 4] = [
            ("signet_forward_lag_bytes", "Event log bytes stored but not yet delivered.", "gauge", |s| {
                s.lag_bytes.load(Ordering::Relaxed).to_string()
            }),
            ("signet_forward_delivered_total", "Events delivered (acknowledged by the receiver).", "counter", |s| {
                s.delivered.load(Ordering::Relaxed).to_string()
            }),
            ("signet_forward_failures_total", "Failed delivery attempts (retried).", "counter", |s| {
                s.failures.load(Ordering::Relaxed).to_string()
            }),
            (
                "signet_forward_last_delivery_timestamp_seconds",
                "When the receiver last acknowledged a batch.",
                "gauge",
                |s| format!("{:.3}", s.last_delivery_us.load(Ordering::Relaxed) as f64 / 1e6),
            ),
        ];
        for (name, help, kind, value) in metrics {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for status in &self.statuses {
                let _ = writeln!(out, "{name}{{destination=\"{}\"}} {}", status.name, value(status));
            }
        }
        out
    }
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    position: u64,
}

struct Forwarder {
    settings: ForwardSettings,
    kinds: Vec<LogKind>,
    cursor_file: PathBuf,
    engine: Arc<Engine>,
    status: Arc<Status>,
    stop: Arc<AtomicBool>,
}

const IDLE: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One event as it leaves: the stored record (or one part of it) and its normalised form.
struct Entry<'a> {
    record: &'a signet_store::LogRecord,
    /// Event log position of the frame holding the record.
    position: u64,
    body: Value,
    event: Option<signet_model::Event>,
    failed: bool,
}

/// How a batch reached the destination.
enum Outcome {
    Delivered,
    /// Stopped while retrying: the cursor does not move.
    Stopped,
    /// A syslog connection broke: what went over it since this position may be lost, so the
    /// forwarder goes back there (duplicates, not gaps).
    ResendFrom(u64),
}

enum Transport {
    Webhook(reqwest::blocking::Client),
    Syslog {
        sink: crate::syslog::Sink,
        hostname: String,
        /// Batches written on the current TCP/TLS connection: (first position, when).
        recent: std::collections::VecDeque<(u64, std::time::Instant)>,
    },
}

impl Forwarder {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps in small steps; false when asked to stop.
    fn pause(&self, wait: Duration) -> bool {
        let until = std::time::Instant::now() + wait;
        while std::time::Instant::now() < until {
            if self.stopping() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(until - std::time::Instant::now()));
        }
        !self.stopping()
    }

    fn transport(&self) -> Result<Transport, String> {
        Ok(match crate::syslog::Target::parse(&self.settings.url)? {
            Some(target) => Transport::Syslog {
                sink: crate::syslog::Sink::new(target, self.settings.ca_file.as_deref())?,
                hostname: self.settings.hostname.clone().unwrap_or_else(crate::syslog::local_hostname),
                recent: Default::default(),
            },
            None => Transport::Webhook(
                reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
        })
    }

    fn run(self) {
        let mut transport = match self.transport() {
            Ok(transport) => transport,
            Err(err) => return warn!(forwarder = %self.settings.name, error = %err, "forwarder not started"),
        };
        let mut position = match self.load_cursor() {
            Ok(position) => position,
            Err(err) => {
                return warn!(forwarder = %self.settings.name, error = %err, "forwarder cursor unreadable; not started")
            }
        };
        info!(forwarder = %self.settings.name, position, "forwarder started");
        while !self.stopping() {
            if let Some(from) = connection_lost(&mut transport) {
                warn!(forwarder = %self.settings.name, from, "syslog connection closed by the receiver; resending its last seconds");
                position = position.min(from);
            }
            let applied = match self.engine.store().applied_position() {
                Ok(applied) => applied,
                Err(err) => {
                    warn!(forwarder = %self.settings.name, error = %err, "forwarder cannot read the store position");
                    self.pause(Duration::from_secs(1));
                    continue;
                }
            };
            self.status.lag_bytes.store(applied.saturating_sub(position), Ordering::Relaxed);
            if position >= applied {
                self.pause(IDLE);
                continue;
            }
            let (records, next) = match self.engine.log().read_batch(position, applied, self.settings.batch_size) {
                Ok(read) => read,
                Err(err) => {
                    warn!(forwarder = %self.settings.name, error = %err, "forwarder cannot read the log");
                    self.pause(Duration::from_secs(1));
                    continue;
                }
            };
            let entries: Vec<Entry> =
                records.iter().flat_map(|(ptr, record)| self.entries(ptr.frame_pos, record)).collect();
            if !entries.is_empty() {
                let outcome = match &mut transport {
                    Transport::Webhook(http) => {
                        let events: Vec<Value> = entries.iter().map(|e| self.json(e)).collect();
                        self.deliver(http, position, next, &events)
                    }
                    Transport::Syslog { sink, hostname, recent } => {
                        let messages: Vec<Vec<u8>> = entries.iter().map(|e| self.syslog_message(e, hostname)).collect();
                        self.deliver_syslog(sink, recent, position, &messages)
                    }
                };
                match outcome {
                    Outcome::Delivered => self.count_delivered(entries.len()),
                    Outcome::Stopped => return,
                    Outcome::ResendFrom(from) => {
                        position = from;
                        continue;
                    }
                }
            }
            position = next;
            if let Err(err) = self.save_cursor(position) {
                warn!(forwarder = %self.settings.name, error = %err, "forwarder cursor not saved (the batch may be sent again)");
            }
            self.status.lag_bytes.store(applied.saturating_sub(position), Ordering::Relaxed);
        }
    }

    fn count_delivered(&self, events: usize) {
        self.status.delivered.fetch_add(events as u64, Ordering::Relaxed);
        self.status.last_delivery_us.store(signet_model::time::now_micros(), Ordering::Relaxed);
    }

    /// Counts a failed attempt and waits before the next (at least `retry_after`); false when
    /// asked to stop meanwhile.
    fn back_off(&self, failures: &mut u32, retry_after: Option<Duration>) -> bool {
        self.status.failures.fetch_add(1, Ordering::Relaxed);
        *failures += 1;
        let backoff = Duration::from_millis(250).saturating_mul(1 << (*failures).min(10)).min(MAX_BACKOFF);
        self.pause(retry_after.map_or(backoff, |after| after.max(backoff.min(after * 2))))
    }

    fn load_cursor(&self) -> std::io::Result<u64> {
        match std::fs::read(&self.cursor_file) {
            Ok(bytes) => serde_json::from_slice::<Cursor>(&bytes).map(|c| c.position).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", self.cursor_file.display()))
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let position = match self.settings.start {
                    Start::Beginning => 0,
                    Start::End => self.engine.store().applied_position().map_err(std::io::Error::other)?,
                };
                self.save_cursor(position)?;
                Ok(position)
            }
            Err(err) => Err(err),
        }
    }

    fn save_cursor(&self, position: u64) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&Cursor { position }).map_err(std::io::Error::other)?;
        replace_file(&self.cursor_file, &bytes)
    }

    /// What the filters admit of one record (several entries for a record sent in parts).
    fn entries<'a>(&self, position: u64, record: &'a signet_store::LogRecord) -> Vec<Entry<'a>> {
        if !self.kinds.contains(&record.kind) {
            return Vec::new();
        }
        if !self.settings.organizations.is_empty() && !self.settings.organizations.contains(&record.org) {
            return Vec::new();
        }
        let event = signet_model::normalize(record.kind, &record.body).ok();
        let failed = event.as_ref().is_some_and(failed);
        if self.settings.failures_only && !failed {
            return Vec::new();
        }
        let body: Value = serde_json::from_slice(&record.body).unwrap_or(Value::Null);
        let limit = match (&self.transport_limit(), self.settings.max_record_bytes) {
            (Some(transport), Some(configured)) => Some(configured.min(*transport)),
            (transport, configured) => configured.or(*transport),
        };
        let parts = match (limit, &body) {
            (Some(limit), Value::Object(object)) if record.kind == LogKind::Activity && record.body.len() > limit => {
                match signet_import::parts::split(object, limit) {
                    Ok(parts) => parts.into_iter().map(Value::Object).collect(),
                    Err(err) => {
                        warn!(forwarder = %self.settings.name, id = %record.id, error = %err, "sent whole: cannot cut it to the limit");
                        vec![body]
                    }
                }
            }
            _ => vec![body],
        };
        if parts.len() == 1 {
            let body = parts.into_iter().next().expect("one part");
            return vec![Entry { record, position, body, event, failed }];
        }
        parts
            .into_iter()
            .map(|body| {
                // Each part of a cut record is a valid record of its kind: mapped on its own.
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                let event = signet_model::normalize(record.kind, &bytes).ok();
                Entry { record, position, body, event, failed }
            })
            .collect()
    }

    /// The record size UDP can carry (room left for the syslog header).
    fn transport_limit(&self) -> Option<usize> {
        self.settings.url.starts_with("udp://").then_some(crate::syslog::MAX_DATAGRAM - 1024)
    }

    /// The JSON form of an entry: Signet's envelope, or OCSF.
    fn json(&self, entry: &Entry) -> Value {
        let record = entry.record;
        if self.settings.format == Format::Ocsf {
            if let Some(event) = &entry.event {
                return crate::ocsf::record(event, &record.org, &entry.body);
            }
        }
        json!({
            "kind": crate::api::kind_names(record.kind).0,
            "organization": record.org,
            "id": record.id,
            "revision": record.revision,
            "received": signet_model::time::format_time(record.received_us),
            "record": entry.body,
        })
    }

    fn syslog_message(&self, entry: &Entry, hostname: &str) -> Vec<u8> {
        let record = entry.record;
        let msg = match (self.settings.format, &entry.event) {
            (Format::Cef, Some(event)) => crate::syslog::cef(event, &record.org, entry.failed),
            _ => self.json(entry).to_string(),
        };
        let params = [
            ("org", record.org.clone()),
            ("kind", crate::api::kind_names(record.kind).0.to_string()),
            ("id", record.id.clone()),
            ("rev", record.revision.to_string()),
            ("pos", entry.position.to_string()),
        ];
        crate::syslog::rfc5424(&crate::syslog::Message {
            facility: self.settings.facility,
            severity: crate::syslog::severity(record.kind, entry.failed),
            time_us: entry.event.as_ref().map_or(record.received_us, |e| e.time_us),
            hostname,
            msgid: crate::syslog::msgid(record.kind),
            params: &params,
            msg: &msg,
        })
    }

    /// POSTs until the receiver acknowledges.
    fn deliver(&self, http: &reqwest::blocking::Client, from: u64, to: u64, events: &[Value]) -> Outcome {
        let body = json!({ "destination": self.settings.name, "from": from, "to": to, "events": events }).to_string();
        let mut failures = 0u32;
        loop {
            let timestamp = signet_model::time::now_micros() / 1_000_000;
            let signature =
                hex::encode(hmac_sha256(self.settings.secret.as_bytes(), format!("{timestamp}.{body}").as_bytes()));
            let sent = http
                .post(&self.settings.url)
                .header("content-type", "application/json")
                .header("x-signet-signature", format!("t={timestamp},v1={signature}"))
                .header("x-signet-destination", &self.settings.name)
                .header("x-signet-cursor", to.to_string())
                .body(body.clone())
                .send();
            let retry_after = match sent {
                Ok(response) if response.status().is_success() => return Outcome::Delivered,
                Ok(response) => {
                    let status = response.status();
                    warn!(forwarder = %self.settings.name, %status, "receiver refused a batch; retrying");
                    response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs)
                }
                Err(err) => {
                    warn!(forwarder = %self.settings.name, error = %err.without_url(), "receiver unreachable; retrying");
                    None
                }
            };
            if !self.back_off(&mut failures, retry_after) {
                return Outcome::Stopped;
            }
        }
    }

    /// Sends until the transport reports the batch delivered, or a TCP/TLS connection breaks
    /// with recent batches on it (then the forwarder resends from the oldest of them).
    fn deliver_syslog(
        &self,
        sink: &mut crate::syslog::Sink,
        recent: &mut std::collections::VecDeque<(u64, std::time::Instant)>,
        from: u64,
        messages: &[Vec<u8>],
    ) -> Outcome {
        let streamed = matches!(sink.target().protocol, crate::syslog::Protocol::Tcp | crate::syslog::Protocol::Tls);
        let mut failures = 0u32;
        loop {
            match sink.send(messages) {
                Ok(()) => {
                    if streamed {
                        recent.retain(|(_, at)| at.elapsed() < crate::syslog::RESEND_WINDOW);
                        recent.push_back((from, std::time::Instant::now()));
                    }
                    return Outcome::Delivered;
                }
                Err(err) => {
                    warn!(forwarder = %self.settings.name, error = %err, "syslog receiver unreachable; retrying");
                    let resend = resend_point(recent);
                    if !self.back_off(&mut failures, None) {
                        return Outcome::Stopped;
                    }
                    if let Some(position) = resend.filter(|&p| p < from) {
                        return Outcome::ResendFrom(position);
                    }
                }
            }
        }
    }
}

/// Where to resend from after a TCP/TLS connection broke: the oldest batch written on it within
/// the resend window. Forgets the connection's batches.
fn resend_point(recent: &mut std::collections::VecDeque<(u64, std::time::Instant)>) -> Option<u64> {
    let from = recent.iter().filter(|(_, at)| at.elapsed() < crate::syslog::RESEND_WINDOW).map(|(p, _)| *p).min();
    recent.clear();
    from
}

/// A syslog connection found closed while idle: where to resend from.
fn connection_lost(transport: &mut Transport) -> Option<u64> {
    match transport {
        Transport::Syslog { sink, recent, .. } => match sink.connection_lost() {
            true => resend_point(recent),
            false => None,
        },
        Transport::Webhook(_) => None,
    }
}

/// Whether an event is a failure: a sign-in that did not succeed, a directory audit with result
/// failure, an activity whose ResultStatus is Failed / Failure / Denied.
fn failed(event: &signet_model::Event) -> bool {
    let text = |name: &str| match event.cell(name) {
        Some(CellRef::Str(s)) => s.to_ascii_lowercase(),
        _ => String::new(),
    };
    match event.kind {
        LogKind::SignIn => !text("status").is_empty() && text("status") != "success",
        LogKind::DirectoryAudit => text("result") == "failure",
        LogKind::Activity => matches!(text("result_status").as_str(), "failed" | "failure" | "denied"),
    }
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// The data directory's forwarder cursors (for `signet verify`-like tools and tests).
pub fn cursor_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("forward").join(format!("{name}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let long_key = [0xaa; 131];
        let mac = hmac_sha256(&long_key, b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(hex::encode(mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }

    #[test]
    fn settings_are_checked_and_the_secret_never_shown() {
        let settings: ForwardSettings =
            toml_like(r#"{"name":"siem","url":"http://127.0.0.1:9/in","secret":"0123456789abcdef0123"}"#);
        assert_eq!(settings.check().unwrap(), LogKind::ALL.to_vec());
        assert!(!format!("{settings:?}").contains("0123456789abcdef"));
        assert!(!serde_json::to_string(&settings).unwrap().contains("0123456789abcdef"));
        for bad in [
            r#"{"name":"siem","url":"http://example.com/in","secret":"0123456789abcdef0123"}"#,
            r#"{"name":"si em","url":"https://example.com/in","secret":"0123456789abcdef0123"}"#,
            r#"{"name":"siem","url":"https://example.com/in","secret":"short"}"#,
            r#"{"name":"siem","url":"https://example.com/in","secret":"0123456789abcdef0123","kinds":["mail"]}"#,
            r#"{"name":"siem","url":"tcp://siem.example.com:514"}"#,
            r#"{"name":"siem","url":"udp://siem.example.com"}"#,
            r#"{"name":"siem","url":"tls://siem.example.com:6514","facility":24}"#,
            r#"{"name":"siem","url":"https://example.com/in","secret":"0123456789abcdef0123","format":"cef"}"#,
            r#"{"name":"siem","url":"ftp://example.com/in","secret":"0123456789abcdef0123"}"#,
        ] {
            assert!(toml_like(bad).check().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<ForwardSettings>(r#"{"name":"x","url":"u","secret":"s","colour":1}"#).is_err());
        for good in [
            r#"{"name":"siem","url":"tls://siem.example.com:6514","format":"cef"}"#,
            r#"{"name":"siem","url":"tcp://siem.example.com:514","allow_plaintext":true}"#,
            r#"{"name":"siem","url":"relp://127.0.0.1:2514"}"#,
        ] {
            assert!(toml_like(good).check().is_ok(), "{good}");
        }
    }

    fn toml_like(json: &str) -> ForwardSettings {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn failures_are_told_apart() {
        let failed = |kind, body: &[u8]| failed(&signet_model::normalize(kind, body).unwrap());
        assert!(failed(
            LogKind::SignIn,
            br#"{"id":"1","createdDateTime":"2026-11-20T10:00:00Z","status":{"errorCode":50126}}"#
        ));
        assert!(!failed(
            LogKind::SignIn,
            br#"{"id":"1","createdDateTime":"2026-11-20T10:00:00Z","status":{"errorCode":0}}"#
        ));
        assert!(failed(
            LogKind::Activity,
            br#"{"Id":"1","CreationTime":"2026-11-20T10:00:00Z","Operation":"Retrieve","ResultStatus":"Failed"}"#
        ));
    }
}
