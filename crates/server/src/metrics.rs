//! Prometheus text exposition of Signet's counters.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use signet_model::LogKind;
use signet_store::IngestMetrics;

/// Upper bounds (seconds) of the request latency histogram.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// HTTP-level counters.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    pub rejected: [AtomicU64; 3],
    /// Activities not stored (exclusion list, audit settings, repeated user access).
    pub excluded: AtomicU64,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    /// Requests whose body came compressed, per [`crate::error::CONTENT_ENCODINGS`] entry.
    compressed: [AtomicU64; crate::error::CONTENT_ENCODINGS.len()],
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_micros_sum: AtomicU64,
}

impl HttpMetrics {
    pub fn observe(&self, elapsed: Duration, server_error: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if server_error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_micros_sum.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts a request body sent with this `Content-Encoding` (ignored unless Signet takes it).
    pub fn count_encoding(&self, encoding: &str) {
        if let Some(at) = crate::error::CONTENT_ENCODINGS.iter().position(|e| encoding.eq_ignore_ascii_case(e)) {
            self.compressed[at].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn add_rejected(&self, kind: LogKind, n: usize) {
        self.rejected[kind.code() as usize - 1].fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// User and system CPU time of this process, in seconds.
fn process_cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the rusage it is given; it is read only when the call succeeded.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

/// Resident memory of this process in bytes (Linux; `/proc/self/statm` counts pages).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().map(|page| pages * page)
}

pub fn render(http: &HttpMetrics, ingest: &IngestMetrics, engine: &signet_store::Engine) -> String {
    let mut out = String::new();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let per_kind = |out: &mut String, name: &str, help: &str, values: &[AtomicU64; 3]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for kind in LogKind::ALL {
            let _ = writeln!(out, "{name}{{kind=\"{}\"}} {}", kind.as_str(), load(&values[kind.code() as usize - 1]));
        }
    };
    per_kind(&mut out, "signet_ingested_total", "Events accepted and durably stored.", &ingest.accepted);
    per_kind(&mut out, "signet_duplicates_total", "Identical re-sends, not stored again.", &ingest.duplicates);
    per_kind(&mut out, "signet_revisions_total", "New revisions of already stored events.", &ingest.revisions);
    per_kind(&mut out, "signet_rejected_total", "Records rejected as invalid.", &http.rejected);
    let _ = writeln!(
        out,
        "# HELP signet_activities_excluded_total Activities not stored: operation on the exclusion list, turned off by the audit settings, or a repeated user access in its interval.\n# TYPE signet_activities_excluded_total counter\nsignet_activities_excluded_total {}",
        load(&http.excluded)
    );
    let gauge = |out: &mut String, name: &str, help: &str, kind: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    gauge(
        &mut out,
        "signet_overloaded_total",
        "Ingest requests refused because the queue was full.",
        "counter",
        load(&ingest.overloaded).to_string(),
    );
    gauge(
        &mut out,
        "signet_ingest_queue_depth",
        "Events queued or being written.",
        "gauge",
        ingest.in_flight.load(Ordering::Relaxed).to_string(),
    );
    gauge(
        &mut out,
        "signet_log_commits_total",
        "Group commits (fsyncs) of the event log.",
        "counter",
        load(&ingest.commits).to_string(),
    );
    gauge(
        &mut out,
        "signet_log_commit_seconds_sum",
        "Time spent in group commits.",
        "counter",
        format!("{:.6}", load(&ingest.commit_micros_total) as f64 / 1e6),
    );
    gauge(
        &mut out,
        "signet_projection_lag_events",
        "Acknowledged events not yet visible to queries.",
        "gauge",
        ingest.unprojected.load(Ordering::Relaxed).to_string(),
    );
    let lag = load(&ingest.log_end).saturating_sub(load(&ingest.applied));
    gauge(
        &mut out,
        "signet_projection_lag_bytes",
        "Event log bytes not yet visible to queries.",
        "gauge",
        lag.to_string(),
    );
    gauge(
        &mut out,
        "signet_store_apply_errors_total",
        "Failed attempts to apply events to the store (retried).",
        "counter",
        load(&ingest.apply_errors).to_string(),
    );
    gauge(
        &mut out,
        "signet_http_errors_total",
        "HTTP responses with a 5xx status.",
        "counter",
        load(&http.errors).to_string(),
    );
    let name = "signet_http_compressed_requests_total";
    let _ =
        writeln!(out, "# HELP {name} Requests whose body was compressed, by Content-Encoding.\n# TYPE {name} counter");
    for (encoding, count) in crate::error::CONTENT_ENCODINGS.iter().zip(&http.compressed) {
        let _ = writeln!(out, "{name}{{encoding=\"{encoding}\"}} {}", load(count));
    }
    let disk = engine.disk().space();
    gauge(
        &mut out,
        "signet_disk_free_bytes",
        "Free space of the data directory's file system.",
        "gauge",
        disk.free.to_string(),
    );
    gauge(
        &mut out,
        "signet_disk_used_ratio",
        "Used fraction of the data directory's file system.",
        "gauge",
        format!("{:.4}", disk.used_fraction()),
    );
    gauge(
        &mut out,
        "signet_disk_full_refusals_total",
        "Ingest requests refused (507) because free space was below the reserve.",
        "counter",
        load(&engine.disk().refusals).to_string(),
    );
    gauge(
        &mut out,
        "signet_ingest_queue_bytes",
        "Event bytes queued or being written.",
        "gauge",
        ingest.in_flight_bytes.load(Ordering::Relaxed).to_string(),
    );
    // The names Prometheus' client libraries give these, so dashboards find them.
    if let Some(seconds) = process_cpu_seconds() {
        gauge(
            &mut out,
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            format!("{seconds:.3}"),
        );
    }
    if let Some(bytes) = resident_bytes() {
        gauge(&mut out, "process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", bytes.to_string());
    }
    gauge(
        &mut out,
        "signet_ingest_admitted_bytes",
        "Queue room held for ingest requests whose bodies are being read and parsed.",
        "gauge",
        ingest.admitted_bytes.load(Ordering::Relaxed).to_string(),
    );
    let trust = engine.ledger().status();
    let _ = writeln!(out, "# HELP signet_tree_unsigned_events Events not yet covered by a signed tree head.\n# TYPE signet_tree_unsigned_events gauge");
    for (org, status) in &trust.orgs {
        let _ = writeln!(out, "signet_tree_unsigned_events{{org=\"{org}\"}} {}", status.tree_size - status.signed_size);
    }
    gauge(
        &mut out,
        "signet_tree_signing_halted",
        "1 when the node found its log contradicting its signed heads and stopped signing.",
        "gauge",
        u8::from(trust.halted.is_some()).to_string(),
    );
    let name = "signet_http_request_duration_seconds";
    let _ = writeln!(out, "# HELP {name} HTTP request latency.\n# TYPE {name} histogram");
    for (bound, bucket) in BUCKETS.iter().zip(&http.latency_buckets) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", load(bucket));
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", load(&http.requests));
    let _ = writeln!(out, "{name}_sum {:.6}", load(&http.latency_micros_sum) as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {}", load(&http.requests));
    out
}
