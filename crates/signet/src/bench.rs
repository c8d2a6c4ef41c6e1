//! `signet bench`: measures a running server over HTTP, the way a client sees it. Figures go
//! into docs/benchmarks.md with the command that produced them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::demo::{self, DemoOptions};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
    /// API key: an ingest key for `bench ingest`, a read key for `bench queries`.
    #[arg(long, global = true, env = "SIGNET_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Read key for `bench ingest`'s visibility probe (default: --api-key).
    #[arg(long, global = true, env = "SIGNET_READ_KEY", hide_env_values = true)]
    read_key: Option<String>,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// POST generated sign-ins as NDJSON batches from several connections; report events/s,
    /// then how long an acknowledged event takes to become visible to queries.
    Ingest {
        /// One server, or several separated by commas (nodes sharing a ClickHouse database):
        /// connection i sends to server i mod n, with key i mod n of the API key when it lists
        /// one key per node (comma-separated).
        #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
        server: Vec<String>,
        #[arg(long, default_value_t = 1_000_000)]
        signins: usize,
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        #[arg(long, default_value_t = 4)]
        connections: usize,
        #[arg(long, default_value_t = 30)]
        days: i64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// In-process stages of the write path, without HTTP: parse+normalise, durable commit
    /// (compress + fsync), projection into DuckDB.
    Pipeline {
        /// Data directory to create (must not exist).
        #[arg(long)]
        data: std::path::PathBuf,
        #[arg(long, default_value_t = 200_000)]
        signins: usize,
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
    },
    /// Time every report, a filtered list page, a Graph page and a full CSV export.
    Queries {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, default_value_t = 21)]
        runs: usize,
    },
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let _ = API_KEY.set(args.api_key.clone());
    let _ = READ_KEY.set(args.read_key.clone().or_else(|| args.api_key.clone()));
    match args.what {
        BenchCommand::Ingest { server, signins, batch, connections, days, seed } => {
            ingest(&server, signins, batch, connections, days, seed)
        }
        BenchCommand::Queries { server, runs } => queries(&server, runs),
        BenchCommand::Pipeline { data, signins, batch } => pipeline(&data, signins, batch),
    }
}

/// The keys of this run (set once by [`run`]).
static API_KEY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
static READ_KEY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// An HTTP client sending the API key on every request.
fn client() -> anyhow::Result<reqwest::blocking::Client> {
    client_with(API_KEY.get())
}

fn client_with(key: Option<&Option<String>>) -> anyhow::Result<reqwest::blocking::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(Some(key)) = key {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).default_headers(headers).build()?)
}

/// Posts one NDJSON body, again after `Retry-After` while the server answers 429 or 503. The
/// body is shared, not copied per attempt: a fresh 15 MB copy per batch cost the load
/// generator, which runs on the server's two cores, about a second of CPU per million events.
fn post_ndjson(http: &reqwest::blocking::Client, url: &str, body: Bytes) -> anyhow::Result<Value> {
    loop {
        let response = http.post(url).header("content-type", "application/x-ndjson").body(body.clone()).send()?;
        let status = response.status();
        if status.as_u16() == 503 || status.as_u16() == 429 {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            std::thread::sleep(Duration::from_millis(wait * 200));
            continue;
        }
        let answer: Value = response.json()?;
        if !status.is_success() {
            bail!("server answered {status}: {answer}");
        }
        return Ok(answer);
    }
}

/// Sends `bodies` from `connections` threads (connection i to server i mod n with key i mod n),
/// counting what was accepted and each batch's latency.
fn send_batches(
    bases: &[String],
    keys: &[Option<String>],
    bodies: Vec<Bytes>,
    connections: usize,
    accepted: &Arc<AtomicUsize>,
    latencies: &Arc<Mutex<Vec<Duration>>>,
) -> anyhow::Result<()> {
    let bodies = Arc::new(Mutex::new(bodies));
    let workers: Vec<_> = (0..connections.max(1))
        .map(|i| {
            let (bodies, accepted, latencies, url) = (
                bodies.clone(),
                accepted.clone(),
                latencies.clone(),
                format!("{}/api/v1/signins", bases[i % bases.len()]),
            );
            let key = keys[i % keys.len()].clone();
            std::thread::spawn(move || -> anyhow::Result<()> {
                let http = client_with(Some(&key))?;
                loop {
                    let Some(body) = bodies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop() else {
                        return Ok(());
                    };
                    let sent = Instant::now();
                    let answer = post_ndjson(&http, &url, body)?;
                    latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(sent.elapsed());
                    accepted.fetch_add(
                        answer["accepted"].as_u64().unwrap_or(0) as usize
                            + answer["duplicates"].as_u64().unwrap_or(0) as usize,
                        Ordering::Relaxed,
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    Ok(())
}

/// Counters of the servers' `/metrics`, summed over the servers.
struct ServerCounters {
    cpu_seconds: f64,
    refused: u64,
}

/// Reads the servers' CPU time and 503 count from `/metrics` (with the read key); `None` when
/// one of them does not answer them (an older server, or a key without access).
fn server_counters(reader: &reqwest::blocking::Client, bases: &[String]) -> Option<ServerCounters> {
    let mut total = ServerCounters { cpu_seconds: 0.0, refused: 0 };
    for base in bases {
        let text = reader.get(format!("{base}/metrics")).send().ok()?.error_for_status().ok()?.text().ok()?;
        let value = |name: &str| {
            text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        };
        total.cpu_seconds += value("process_cpu_seconds_total")?;
        total.refused += value("signet_overloaded_total").unwrap_or(0.0) as u64;
    }
    Some(total)
}

fn ingest(
    servers: &[String],
    signins: usize,
    batch: usize,
    connections: usize,
    days: i64,
    seed: u64,
) -> anyhow::Result<()> {
    let bases: Vec<String> = servers.iter().map(|s| s.trim_end_matches('/').to_string()).collect();
    let base = bases.first().cloned().ok_or_else(|| anyhow::anyhow!("no --server"))?;
    let keys: Vec<Option<String>> = match API_KEY.get().cloned().flatten() {
        Some(keys) => keys.split(',').map(|k| Some(k.to_string())).collect(),
        None => vec![None],
    };
    let now = signet_model::time::now_micros();
    // Over 2M sign-ins are generated and sent a million at a time (10M at once would take about
    // 36 GB of memory); only the sending is timed.
    let slices = if signins > 2_000_000 { signins.div_ceil(1_000_000) } else { 1 };
    let end_us = now - now.rem_euclid(3_600_000_000);
    let (mut count, mut bytes, mut elapsed) = (0usize, 0usize, Duration::ZERO);
    let accepted = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let reader = client_with(READ_KEY.get())?;
    let mut counters_before = None;
    for slice in 0..slices {
        let part = signins / slices + usize::from(slice < signins % slices);
        eprintln!("generating {part} sign-ins (slice {} of {slices})...", slice + 1);
        let options = DemoOptions { signins: part, days, users: 5000, seed, end_us };
        let records = demo::signins_slice(&options, slice as u64);
        bytes += records.iter().map(|r| r.len() + 1).sum::<usize>();
        let bodies: Vec<Bytes> = records.chunks(batch.max(1)).map(|c| Bytes::from(c.join(&b'\n'))).collect();
        count += records.len();
        drop(records);
        eprintln!("sending {} batches over {connections} connections...", bodies.len());
        if counters_before.is_none() {
            counters_before = Some(server_counters(&reader, &bases));
        }
        let started = Instant::now();
        send_batches(&bases, &keys, bodies, connections, &accepted, &latencies)?;
        elapsed += started.elapsed();
    }
    let acknowledged = accepted.load(Ordering::Relaxed);
    let counters_after = server_counters(&reader, &bases);
    let mut latencies = latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    latencies.sort();
    let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p) as usize).copied().unwrap_or_default();
    println!("| ingest | {count} sign-ins, batches of {batch}, {connections} connections to {} node(s) | {:.1} s | **{:.0} events/s** ({:.0} MB/s) | batch ack p50 {:.0?}, p99 {:.0?} |",
        bases.len(), elapsed.as_secs_f64(), acknowledged as f64 / elapsed.as_secs_f64(), bytes as f64 / 1e6 / elapsed.as_secs_f64(), pct(0.5), pct(0.99));
    if let (Some(Some(before)), Some(after)) = (counters_before, counters_after) {
        let (cpu, refused) = (after.cpu_seconds - before.cpu_seconds, after.refused - before.refused);
        println!(
            "| server | CPU while sending: {cpu:.1} s, {:.1} µs per event | | {refused} requests answered 503 (sent again) |",
            cpu * 1e6 / acknowledged.max(1) as f64
        );
    }

    // Visibility (first node): a fresh event, acknowledged, then polled for until a query
    // returns it.
    let http = client_with(Some(&keys[0]))?;
    let mut visible = Vec::new();
    for i in 0..20 {
        let id = format!("visibility-probe-{seed}-{i}-{now}");
        let record = format!(
            r#"{{"id":"{id}","createdDateTime":"{}","userPrincipalName":"probe@contoso.com","status":{{"errorCode":0}}}}"#,
            signet_model::time::format_time(signet_model::time::now_micros())
        );
        post_ndjson(&http, &format!("{base}/api/v1/signins"), Bytes::from(record))?;
        let acked = Instant::now();
        loop {
            let response =
                reader.get(format!("{base}/api/v1/signins")).query(&[("id", id.as_str()), ("limit", "1")]).send()?;
            // A key that cannot read (an ingest key without SIGNET_READ_KEY) is said as such,
            // not waited on as an event that never shows.
            let status = response.status();
            if !status.is_success() {
                bail!(
                    "the visibility probe cannot list sign-ins ({status}: {}); give a read key \
                     (--read-key or SIGNET_READ_KEY)",
                    response.text().unwrap_or_default().trim()
                );
            }
            let answer: Value = response.json()?;
            if answer["items"].as_array().is_some_and(|a| !a.is_empty()) {
                visible.push(acked.elapsed());
                break;
            }
            if acked.elapsed() > Duration::from_secs(30) {
                bail!("event {id} not visible after 30 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    visible.sort();
    println!(
        "| ack -> visible | 20 single events, polled every 5 ms | | median {:.0?} | max {:.0?} |",
        visible[visible.len() / 2],
        visible[visible.len() - 1]
    );
    Ok(())
}

fn pipeline(data: &std::path::Path, signins: usize, batch: usize) -> anyhow::Result<()> {
    anyhow::ensure!(!data.exists(), "{} exists; give a new directory", data.display());
    let now = signet_model::time::now_micros();
    let options = DemoOptions { signins, days: 30, users: 5000, seed: 11, end_us: now - now.rem_euclid(3_600_000_000) };
    let records = demo::signins(&options);
    let bodies: Vec<Bytes> = records.chunks(batch.max(1)).map(|c| c.join(&b'\n').into()).collect();
    let count = records.len();
    let bytes: usize = bodies.iter().map(Bytes::len).sum();
    drop(records);

    let started = Instant::now();
    let mut batches = Vec::with_capacity(bodies.len());
    for body in &bodies {
        let (events, errors) = signet_server::ingest::parse_batch(
            signet_model::LogKind::SignIn,
            signet_import::body::Framing::Ndjson,
            body,
            &signet_server::ingest::WritePolicy::default(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(errors.is_empty(), "demo records rejected");
        batches.push(events);
    }
    let parse = started.elapsed();

    let engine = signet_store::Engine::open(data, signet_store::IngestConfig::default())?;
    let started = Instant::now();
    let receivers: Vec<_> = batches
        .into_iter()
        .map(|events| loop {
            match engine.pipeline().submit("default", events.clone()) {
                Ok(r) => break Ok(r),
                Err(signet_store::StoreError::Overloaded { .. }) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => break Err(e),
            }
        })
        .collect::<Result<_, _>>()?;
    for r in receivers {
        r.blocking_recv().map_err(|_| anyhow::anyhow!("writer gone"))??;
    }
    let commit = started.elapsed();
    anyhow::ensure!(engine.wait_visible(Duration::from_secs(600)), "projection did not finish");
    let visible = started.elapsed();
    let m = engine.pipeline().metrics();
    println!("| stage ({count} sign-ins, {:.0} MB NDJSON, batches of {batch}) | time | rate |", bytes as f64 / 1e6);
    println!("|---|---|---|");
    println!(
        "| split + parse + normalise (1 thread) | {:.2} s | {:.0} events/s |",
        parse.as_secs_f64(),
        count as f64 / parse.as_secs_f64()
    );
    println!(
        "| durable commit: classify, compress, write, fsync ({} group commits) | {:.2} s | {:.0} events/s |",
        m.commits.load(Ordering::Relaxed),
        commit.as_secs_f64(),
        count as f64 / commit.as_secs_f64()
    );
    println!(
        "| ... and projected into DuckDB (all visible) | {:.2} s | {:.0} events/s |",
        visible.as_secs_f64(),
        count as f64 / visible.as_secs_f64()
    );
    engine.shutdown();
    Ok(())
}

fn timed(http: &reqwest::blocking::Client, url: &str, runs: usize) -> anyhow::Result<(Duration, Duration, Value)> {
    let mut times = Vec::with_capacity(runs);
    let mut last = Value::Null;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let response = http.get(url).send()?;
        let status = response.status();
        last = response.json()?;
        times.push(started.elapsed());
        if !status.is_success() {
            bail!("{url}: {status} {last}");
        }
    }
    times.sort();
    Ok((times[times.len() / 2], times[(times.len() * 9 / 10).min(times.len() - 1)], last))
}

fn queries(server: &str, runs: usize) -> anyhow::Result<()> {
    let base = server.trim_end_matches('/');
    let http = client()?;
    let summary: Value = http.get(format!("{base}/api/v1/reports/summary?days=36500")).send()?.json()?;
    let total = summary["total"].as_i64().unwrap_or(0);
    // The user with the most sign-ins over the last week: the largest pattern to compute.
    let top_users: Value =
        http.get(format!("{base}/api/v1/signins/facets?range=7d&fields=userPrincipalName")).send()?.json()?;
    let user = top_users["facets"][0]["values"]
        .as_array()
        .and_then(|values| values.iter().find_map(|v| v["value"].as_str()))
        .context("no user to profile")?
        .to_string();
    println!("| query ({total} sign-ins stored, {runs} runs each) | median | p90 |");
    println!("|---|---|---|");
    let endpoints = [
        ("timeline, daily, 30 days", "/api/v1/reports/signins/timeline?bucket=day&days=30".to_string()),
        ("timeline, weekly, 30 days", "/api/v1/reports/signins/timeline?bucket=week&days=30".to_string()),
        ("top 3 apps with weekly series, 30 days", "/api/v1/reports/apps/top?n=3&days=30".to_string()),
        ("summary, 7 days", "/api/v1/reports/summary?days=7".to_string()),
        ("user sign-in pattern, 90 days, the most active user", format!("/api/v1/reports/users/{user}/pattern?days=90")),
        ("authentication methods, 30 days", "/api/v1/reports/auth-methods?days=30".to_string()),
        ("list page: failures, 7 days, 50 rows", "/api/v1/signins?status=failure&range=7d&limit=50".to_string()),
        (
            "list page: user prefix + legacy clients, 1 month",
            "/api/v1/signins?user=adele*&clientApp=legacy&range=1m&limit=50".to_string(),
        ),
        (
            "list page: CIDR 131.107.0.0/16, 24 hours",
            "/api/v1/signins?ip=131.107.0.0/16&range=24h&limit=50".to_string(),
        ),
        (
            "Graph page: $filter errorCode ne 0, $top=50",
            "/v1.0/auditLogs/signIns?$filter=status/errorCode%20ne%200&$top=50".to_string(),
        ),
        // What the console's sign-ins page asks on every filter change (three requests in parallel).
        (
            "console list: default columns, 24 hours, 100 rows",
            "/api/v1/signins?range=24h&limit=100&columns=createdDateTime,userDisplayName,appDisplayName,status,riskLevelAggregated,authenticationRequirement".to_string(),
        ),
        ("console histogram: 7 days, 90 bars", "/api/v1/signins/histogram?range=7d&buckets=90".to_string()),
        ("console facets: 8 fields, 7 days", "/api/v1/signins/facets?range=7d".to_string()),
        ("console facets: 8 fields, 30 days", "/api/v1/signins/facets?range=1m".to_string()),
        ("console histogram: 30 days, failures", "/api/v1/signins/histogram?range=1m&status=failure".to_string()),
        (
            "console facets: 30 days, app + exclusion",
            "/api/v1/signins/facets?range=1m&app=Microsoft%20Teams&not.clientAppUsed=Browser".to_string(),
        ),
    ];
    for (name, path) in endpoints {
        let (median, p90, _) = timed(&http, &format!("{base}{path}"), runs)?;
        println!("| {name} | {:.1} ms | {:.1} ms |", median.as_secs_f64() * 1e3, p90.as_secs_f64() * 1e3);
    }
    let started = Instant::now();
    let mut response = http.get(format!("{base}/api/v1/signins/export?format=csv&range=1y")).send()?;
    let mut sink = CountingSink::default();
    response.copy_to(&mut sink)?;
    let elapsed = started.elapsed();
    let rows = sink.lines.saturating_sub(1);
    println!(
        "| CSV export, all rows of the last year ({rows} rows, {:.0} MB) | {:.2} s | **{:.0} rows/s** |",
        sink.bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

#[derive(Default)]
struct CountingSink {
    bytes: usize,
    lines: usize,
}

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len();
        self.lines += buf.iter().filter(|b| **b == b'\n').count();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
