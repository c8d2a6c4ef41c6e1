//! Command-line interface: argument definitions and the commands.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;
use signet_model::{catalog, LogKind};
use signet_server::{api, reports, AppState};
use signet_store::{Engine, IngestConfig};

use crate::config::Config;
use crate::demo::{self, DemoOptions};
use crate::lifecycle;

#[derive(Parser)]
#[command(
    name = "signet",
    version,
    about = "Sign-in and audit logs: collect, keep tamper-evidently, answer in milliseconds."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server: the web console at / and the APIs.
    Serve(ServeArgs),
    /// Accounts of a stopped server's data directory (the first Global administrator).
    #[command(subcommand)]
    Admin(crate::admin::AdminCommand),
    /// Organisations (for deployments serving several tenants).
    #[command(subcommand)]
    Org(crate::admin::OrgCommand),
    /// API keys for machines: ingest keys and read keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(crate::admin::ApiKeyCommand),
    /// Organisation settings of a stopped server's data directory (audit switches).
    #[command(subcommand)]
    Settings(crate::settings::SettingsCommand),
    /// Import identity-provider exports (Graph JSON, Log Analytics, Azure diagnostics, portal CSV).
    Import(ImportArgs),
    /// List events with filters or a Graph $filter.
    Query(QueryArgs),
    /// Run a report: timeline, top-apps, summary, user-pattern, auth-methods.
    Report(ReportArgs),
    /// Export every matching sign-in (CSV, JSON or NDJSON), no row cap.
    Export(ExportArgs),
    /// Explain a sign-in error code (AADSTS...).
    Error(ErrorArgs),
    /// Generate realistic demo sign-ins and directory audits.
    Demo(DemoArgs),
    /// Measure ingest and query performance against a running server.
    Bench(crate::bench::BenchArgs),
    /// Recompute the Merkle trees from the event log and check them against the signed heads
    /// (and published copies); exit code 1 names the first bad position.
    Verify(crate::trust::VerifyArgs),
    /// Move events to the archive: by each organisation's retention policy, or everything
    /// before a day (server stopped).
    Archive(crate::archive::ArchiveArgs),
    /// Bring archived events of a time range back into the hot store for a while (server stopped).
    Restore(crate::archive::RestoreArgs),
    /// The key that signs tree heads.
    #[command(subcommand)]
    Keys(crate::trust::KeysCommand),
    /// Check proofs offline with nothing but the public key.
    #[command(subcommand)]
    Proof(crate::trust::ProofCommand),
    /// The ClickHouse store for scale-out: create or migrate its schema.
    #[command(subcommand)]
    Clickhouse(crate::clickhouse::ClickhouseCommand),
}

/// Where a command's data lives.
#[derive(Args, Clone)]
pub(crate) struct Target {
    /// Data directory, when no server holds it.
    #[arg(long, env = "SIGNET_DATA_DIR", default_value = "./signet-data")]
    data: PathBuf,
    /// A running server's base URL (e.g. http://127.0.0.1:8080); overrides --data.
    #[arg(long, env = "SIGNET_SERVER")]
    pub(crate) server: Option<String>,
    /// Organisation (local mode only; with --server the key decides).
    #[arg(long, default_value = signet_model::OrgId::DEFAULT)]
    pub(crate) org: String,
    /// API key for --server (read key for reads, ingest key for imports). Prefer the
    /// environment variable: command lines are visible to other local users.
    #[arg(long, env = "SIGNET_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

impl Target {
    /// A request to the server with the key, if one is given.
    pub(crate) fn authorize(&self, request: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }
}

#[derive(Args)]
struct ServeArgs {
    /// Config file (default: ./signet.toml when present).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (overrides the config).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Listen address (overrides the config; default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Load this many demo sign-ins first when the data directory is empty.
    #[arg(long, num_args = 0..=1, default_missing_value = "100000")]
    demo: Option<usize>,
}

/// Filters shared by query, report and export.
#[derive(Args, Clone, Default)]
struct Filters {
    /// User id, UPN or display name (trailing * = prefix).
    #[arg(long)]
    user: Option<String>,
    /// Application name or id (trailing * = prefix).
    #[arg(long)]
    app: Option<String>,
    /// success, failure, interrupted (comma-separated).
    #[arg(long)]
    status: Option<String>,
    /// Time preset: 24h, 7d, 1m, 90d, ...
    #[arg(long)]
    range: Option<String>,
    /// Start (ISO 8601).
    #[arg(long)]
    from: Option<String>,
    /// End (ISO 8601, exclusive).
    #[arg(long)]
    to: Option<String>,
    /// A Microsoft Graph $filter expression.
    #[arg(long)]
    filter: Option<String>,
    /// Any native filter as key=value (ip=10.0.0.0/8, clientApp=legacy, errorCode=50126, ...).
    #[arg(short = 'p', long = "param", value_parser = parse_pair)]
    params: Vec<(String, String)>,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?}: expected key=value"))
}

impl Filters {
    fn to_params(&self) -> Vec<(String, String)> {
        let mut params = Vec::new();
        for (key, value) in [
            ("user", &self.user),
            ("app", &self.app),
            ("status", &self.status),
            ("range", &self.range),
            ("from", &self.from),
            ("to", &self.to),
            ("filter", &self.filter),
        ] {
            if let Some(v) = value {
                params.push((key.to_string(), v.clone()));
            }
        }
        params.extend(self.params.iter().cloned());
        params
    }
}

#[derive(Args)]
pub(crate) struct ImportArgs {
    /// Files to import (`-`: standard input).
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// auto, json, ndjson or csv.
    #[arg(long, default_value = "auto")]
    pub(crate) format: String,
    /// With --server: send the pieces uncompressed even when the server takes zstd (e.g. for
    /// a proxy in between that refuses compressed request bodies).
    #[arg(long)]
    pub(crate) no_compress: bool,
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
    Csv,
}

#[derive(Args)]
struct QueryArgs {
    /// signins, directory-audits or activities.
    #[arg(long, default_value = "signins")]
    kind: String,
    #[command(flatten)]
    filters: Filters,
    /// Rows (1-1000).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Columns (API names, comma-separated).
    #[arg(long)]
    columns: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
struct ReportArgs {
    /// timeline, top-apps, summary, user-pattern or auth-methods.
    name: String,
    /// Days back (default: 30, summary 7, user-pattern 90).
    #[arg(long)]
    days: Option<i64>,
    /// day or week (timeline).
    #[arg(long)]
    bucket: Option<String>,
    /// How many applications (top-apps).
    #[arg(long)]
    n: Option<usize>,
    /// Time zone of days, weeks and hours (IANA name, e.g. Europe/Paris; default UTC).
    #[arg(long)]
    tz: Option<String>,
    #[command(flatten)]
    filters: Filters,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
struct ExportArgs {
    /// Which log: signins, directory-audits or activities.
    #[arg(long, default_value = "signins")]
    kind: String,
    /// csv, json or ndjson.
    #[arg(long, default_value = "csv")]
    format: String,
    /// Output file (default: standard output).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Columns for CSV (API names, comma-separated).
    #[arg(long)]
    columns: Option<String>,
    /// For a destination with a record size limit (activities, ndjson): records longer than
    /// this many bytes are cut into parts that `signet import` puts back together.
    #[arg(long)]
    max_record_bytes: Option<usize>,
    #[command(flatten)]
    filters: Filters,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
struct ErrorArgs {
    /// The code, e.g. 50126 or AADSTS50126.
    code: String,
}

#[derive(Args)]
struct DemoArgs {
    /// Sign-ins to generate.
    #[arg(long, default_value_t = 100_000)]
    signins: usize,
    /// Days the sign-ins span (ending now, or at --end).
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Distinct users.
    #[arg(long, default_value_t = 500)]
    users: usize,
    /// Random seed: the same seed and --end give the same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// End of the period (ISO 8601; default: now, to the hour).
    #[arg(long)]
    end: Option<String>,
    /// Write NDJSON to this file instead of storing the events.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    target: Target,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Admin(command) => crate::admin::admin(command),
        Command::Org(command) => crate::admin::org(command),
        Command::ApiKey(command) => crate::admin::api_key(command),
        Command::Settings(command) => crate::settings::run(command),
        Command::Import(args) => crate::import::run(args),
        Command::Query(args) => query(args),
        Command::Report(args) => report(args),
        Command::Export(args) => export(args),
        Command::Error(args) => error_code(args),
        Command::Demo(args) => demo_command(args),
        Command::Bench(args) => {
            init_logging("warn");
            crate::bench::run(args)
        }
        Command::Verify(args) => exit_unless(crate::trust::verify(args)?),
        Command::Keys(command) => crate::trust::keys(command),
        Command::Archive(args) => crate::archive::archive(args),
        Command::Restore(args) => crate::archive::restore(args),
        Command::Proof(command) => exit_unless(crate::trust::proof(command)?),
        Command::Clickhouse(command) => crate::clickhouse::run(command),
    }
}

/// Exit code 1 when a check failed (errors that stopped the check also exit 1, via main, with
/// an `error:` line instead of a report).
fn exit_unless(ok: bool) -> anyhow::Result<()> {
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub(crate) fn open_engine(target: &Target) -> anyhow::Result<Engine> {
    let engine = Engine::open(&target.data, IngestConfig::default())
        .with_context(|| format!("opening data directory {}", target.data.display()))?;
    // Queries whose time range reaches past the hot store read the archive (its default place).
    let archive = signet_store::archive::Archive::new(signet_server::retention::default_archive_dir(&target.data));
    signet_store::archive::attach(&engine, &archive)?;
    Ok(engine)
}

/// Records a read made directly on a data directory in the organisation's access log, as the
/// server records reads through its API.
fn record_local_read(
    engine: &Engine,
    org: &str,
    operation: &str,
    path: &str,
    params: &[(String, String)],
    rows: Option<u64>,
) -> anyhow::Result<()> {
    let operator = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", v.replace(['&', ' ', '#'], "_"))).collect();
    let record = signet_server::access_log::local_access_event(org, &operator, operation, path, &query.join("&"), rows);
    let event = signet_model::normalize(LogKind::Activity, record.to_string().as_bytes())
        .map_err(|e| anyhow::anyhow!("access record: {}: {}", e.field, e.reason))?;
    engine.pipeline().submit_blocking(org, vec![event]).context("recording the read in the access log")?;
    Ok(())
}

pub(crate) fn client() -> anyhow::Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build()?)
}

fn server_get(target: &Target, base: &str, path: &str, params: &[(String, String)]) -> anyhow::Result<Value> {
    let request = client()?.get(format!("{}{path}", base.trim_end_matches('/'))).query(params);
    let response = target.authorize(request).send()?;
    let status = response.status();
    let body: Value = response.json().context("the server's answer is not JSON")?;
    if !status.is_success() {
        bail!("server answered {status}: {}", body["error"]["message"].as_str().unwrap_or("(no message)"));
    }
    Ok(body)
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_ref())?;
    if let Some(data) = args.data {
        config.data_dir = data;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    init_logging(&config.log);
    let engine = Arc::new(config.open_engine()?);
    if let Some(url) = &config.publish_heads_url {
        engine.ledger().add_sink(crate::trust::webhook_sink(url.clone())?);
    }
    let (documents, shared) = config.documents()?;
    let directory = Arc::new(signet_auth::Directory::open_in(&*documents, &config.org)?);
    if let Some(count) = args.demo {
        seed_demo_if_empty(&engine, &config.org, count)?;
        create_demo_admin(&directory, &config.org)?;
    }
    if !directory.has_admin() {
        if !config.listen.ip().is_loopback() {
            bail!(
                "refusing to listen on {} while no Global administrator exists: run `signet admin create --user NAME --data {}` first",
                config.listen,
                config.data_dir.display()
            );
        }
        eprintln!(
            "No Global administrator yet: stop the server and run `signet admin create --user NAME --data {}`.",
            config.data_dir.display()
        );
    }
    lifecycle::record_logging_started(&engine, &config)?;
    let state = AppState::with_documents(engine, directory, config.server_config(), &*documents, shared)
        .context("reading the data directory's settings")?
        .with_oidc(config.oidc_providers()?.share_pending(documents.entries(signet_auth::oidc::PENDING_ENTRIES)));
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let address = listener.local_addr()?;
        let shutdown = lifecycle::shutdown_signal().context("handling SIGINT and SIGTERM")?;
        tracing::info!(%address, data = %config.data_dir.display(), "signet listening");
        eprintln!("Signet is listening on http://{address}/ (data: {})", config.data_dir.display());
        signet_server::run(listener, state, shutdown).await?;
        anyhow::Ok(())
    })
}

fn seed_demo_if_empty(engine: &Engine, org: &str, count: usize) -> anyhow::Result<()> {
    let existing = engine.store().count(org, LogKind::SignIn, &signet_query::Expr::True)?;
    if existing > 0 {
        eprintln!("Data directory already holds {existing} sign-ins; not adding demo data.");
        return Ok(());
    }
    let options = DemoOptions { signins: count, days: 30, users: 500, seed: 42, end_us: hour_now() };
    eprintln!("Loading {count} demo sign-ins...");
    let started = Instant::now();
    let outcome = store_demo(engine, org, &options)?;
    eprintln!("Loaded {} events in {:.1?}.", outcome, started.elapsed());
    Ok(())
}

/// The demo's administrator: created once with a random password printed once. Never a
/// default password.
fn create_demo_admin(directory: &signet_auth::Directory, org: &str) -> anyhow::Result<()> {
    if directory.has_admin() {
        return Ok(());
    }
    let password = crate::admin::generated_password();
    let new = signet_auth::NewUser {
        username: "admin@signet.local".into(),
        display_name: Some("Demo administrator".into()),
        role: Some(signet_auth::Role::GlobalAdministrator),
        password: Some(password.clone()),
    };
    let user = directory.create_user(org, new)?;
    let kind = signet_auth::KeyKind::Read { role: signet_auth::Role::GlobalReader };
    let (_, key) = directory.create_key(org, "demo reader", kind, &user.username)?;
    eprintln!("Demo administrator: {} / password (shown once): {}", user.username, password.expose());
    eprintln!("Demo read key (Global reader, shown once): export SIGNET_API_KEY={}", key.expose());
    Ok(())
}

fn hour_now() -> i64 {
    let now = signet_model::time::now_micros();
    now - now.rem_euclid(3_600_000_000)
}

fn store_demo(engine: &Engine, org: &str, options: &DemoOptions) -> anyhow::Result<usize> {
    let mut total = 0;
    let audits = demo::directory_audits(options, (options.signins / 200).max(10));
    let activities = demo::activities(options, (options.signins / 20).max(50));
    for (kind, records) in
        [(LogKind::SignIn, demo::signins(options)), (LogKind::DirectoryAudit, audits), (LogKind::Activity, activities)]
    {
        for chunk in records.chunks(20_000) {
            let events: Vec<_> = chunk.iter().map(|r| signet_model::normalize(kind, r)).collect::<Result<_, _>>()?;
            let outcome = crate::demo::submit_patiently(engine, org, events)?;
            total += outcome.accepted;
        }
    }
    engine.wait_visible(Duration::from_secs(30));
    Ok(total)
}

fn query(args: QueryArgs) -> anyhow::Result<()> {
    let kind = LogKind::parse(&args.kind)
        .with_context(|| format!("--kind {}: expected signins, directory-audits or activities", args.kind))?;
    let mut params = args.filters.to_params();
    params.push(("limit".into(), args.limit.to_string()));
    if let Some(columns) = &args.columns {
        params.push(("columns".into(), columns.clone()));
    }
    let page = match &args.target.server {
        Some(server) => server_get(&args.target, server, &format!("/api/v1/{}", kind.as_str()), &params)?,
        None => {
            let engine = open_engine(&args.target)?;
            let mut request = signet_query::native::request(kind, &params, signet_model::time::now_micros())?;
            if request.columns.is_empty() {
                request.columns = api::default_columns(kind);
            }
            let query = request.into_list_query(&args.target.org, kind);
            let rows = engine.store().list(&query)?;
            let rows = &rows[..rows.len().min(query.limit)];
            let operation = match kind {
                LogKind::SignIn => "SignInsListed",
                LogKind::DirectoryAudit => "DirectoryAuditsListed",
                LogKind::Activity => "ActivitiesListed",
            };
            let path = format!("/api/v1/{}", kind.as_str());
            record_local_read(&engine, &args.target.org, operation, &path, &params, Some(rows.len() as u64))?;
            serde_json::json!({
                "columns": query.columns.iter().map(|c| c.api).collect::<Vec<_>>(),
                "items": api::rows_json(&query.columns, rows),
            })
        }
    };
    print_page(&page, args.output)
}

fn text_of(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join("; "),
        other => other.to_string(),
    }
}

fn print_page(page: &Value, output: Output) -> anyhow::Result<()> {
    let columns: Vec<String> = page["columns"].as_array().map(|c| c.iter().map(text_of).collect()).unwrap_or_default();
    let items = page["items"].as_array().cloned().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?,
        Output::Csv => {
            let mut text = String::new();
            signet_server::csv_out::push_row(&mut text, columns.iter().map(String::as_str));
            for item in &items {
                let cells: Vec<String> = columns.iter().map(|c| text_of(&item[c])).collect();
                signet_server::csv_out::push_row(&mut text, cells.iter().map(String::as_str));
            }
            out.write_all(text.as_bytes())?;
        }
        Output::Table => {
            let cells: Vec<Vec<String>> = items
                .iter()
                .map(|item| columns.iter().map(|c| text_of(&item[c]).chars().take(40).collect()).collect())
                .collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).chain([c.len()]).max().unwrap_or(0))
                .collect();
            let line = |row: Vec<&str>| {
                row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ")
            };
            writeln!(out, "{}", line(columns.iter().map(String::as_str).collect()))?;
            for row in &cells {
                writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
            }
            writeln!(out, "({} rows)", items.len())?;
        }
    }
    Ok(())
}

fn report(args: ReportArgs) -> anyhow::Result<()> {
    let mut params = args.filters.to_params();
    if let Some(days) = args.days {
        params.push(("days".into(), days.to_string()));
    }
    if let Some(bucket) = &args.bucket {
        params.push(("bucket".into(), bucket.clone()));
    }
    if let Some(n) = args.n {
        params.push(("n".into(), n.to_string()));
    }
    if let Some(tz) = &args.tz {
        params.push(("tz".into(), tz.clone()));
    }
    let user = args.filters.user.clone();
    let path = match args.name.as_str() {
        "timeline" => "/api/v1/reports/signins/timeline".to_string(),
        "top-apps" => "/api/v1/reports/apps/top".to_string(),
        "summary" => "/api/v1/reports/summary".to_string(),
        "auth-methods" => "/api/v1/reports/auth-methods".to_string(),
        "user-pattern" => {
            let user = user.clone().context("user-pattern needs --user")?;
            params.retain(|(k, _)| k != "user");
            format!("/api/v1/reports/users/{user}/pattern")
        }
        other => bail!("unknown report {other:?}: timeline, top-apps, summary, user-pattern, auth-methods"),
    };
    let value = match &args.target.server {
        Some(server) => server_get(&args.target, server, &path, &params)?,
        None => {
            let engine = open_engine(&args.target)?;
            let (org, now) = (args.target.org.as_str(), signet_model::time::now_micros());
            record_local_read(&engine, org, "ReportViewed", &path, &params, None)?;
            match args.name.as_str() {
                "timeline" => reports::timeline(&engine, org, params, now)?,
                "top-apps" => reports::top_apps(&engine, org, params, now)?,
                "summary" => reports::summary(&engine, org, params, now)?,
                "auth-methods" => reports::auth_methods(&engine, org, params, now)?,
                _ => reports::user_pattern(&engine, org, user.as_deref().unwrap_or(""), params, now)?,
            }
        }
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

fn export(args: ExportArgs) -> anyhow::Result<()> {
    let kind = match args.kind.as_str() {
        "signins" | "sign-ins" => LogKind::SignIn,
        "directory-audits" | "audits" => LogKind::DirectoryAudit,
        "activities" => LogKind::Activity,
        other => bail!("--kind {other:?}: expected signins, directory-audits or activities"),
    };
    let (route_name, action_name) = api::kind_names(kind);
    let route = format!("/api/v1/{route_name}/export");
    let mut params = args.filters.to_params();
    params.push(("format".into(), args.format.clone()));
    if let Some(columns) = &args.columns {
        params.push(("columns".into(), columns.clone()));
    }
    let mut sink: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    if let Some(limit) = args.max_record_bytes {
        if kind != LogKind::Activity || !matches!(args.format.as_str(), "ndjson" | "jsonl") {
            bail!("--max-record-bytes applies to --kind activities --format ndjson");
        }
        sink = Box::new(crate::split_out::SplitWriter::new(sink, limit));
    }
    let rows = match &args.target.server {
        Some(server) => {
            let request = client()?.get(format!("{}{route}", server.trim_end_matches('/'))).query(&params);
            let mut response = args.target.authorize(request).send()?;
            if !response.status().is_success() {
                let body: Value = response.json().unwrap_or_default();
                bail!("server answered: {}", body["error"]["message"].as_str().unwrap_or("(no message)"));
            }
            response.copy_to(&mut sink)?;
            None
        }
        None => {
            let engine = open_engine(&args.target)?;
            let plan = api::plan_export(&args.target.org, kind, &params, signet_model::time::now_micros())?;
            let mut write_error = None;
            let rows = api::run_export(&engine, plan, &mut |chunk| match sink.write_all(chunk.as_bytes()) {
                Ok(()) => true,
                Err(e) => {
                    write_error = Some(e);
                    false
                }
            })
            .map_err(anyhow::Error::msg)?;
            if let Some(e) = write_error {
                return Err(e.into());
            }
            record_local_read(
                &engine,
                &args.target.org,
                &format!("{action_name}Exported"),
                &route,
                &params,
                Some(rows),
            )?;
            Some(rows)
        }
    };
    sink.flush()?;
    if let (Some(rows), Some(path)) = (rows, &args.output) {
        eprintln!("exported {rows} {kind} events to {}", path.display());
    }
    Ok(())
}

fn error_code(args: ErrorArgs) -> anyhow::Result<()> {
    let code = catalog::parse_code(&args.code).with_context(|| format!("{:?} is not an error code", args.code))?;
    match catalog::lookup(code) {
        Some(info) => {
            println!("{} ({})", info.name, if info.interrupt { "interrupt" } else if code == 0 { "success" } else { "failure" });
            println!("Meaning:     {}", info.meaning);
            println!("Remediation: {}", info.remediation);
            println!("More:        {}", info.lookup_url);
            Ok(())
        }
        None => bail!("AADSTS{code} is not in Signet's catalogue; look it up at https://login.microsoftonline.com/error?code={code}"),
    }
}

fn demo_command(args: DemoArgs) -> anyhow::Result<()> {
    let end_us = match &args.end {
        Some(end) => signet_model::time::parse_time(end).map_err(anyhow::Error::msg)?,
        None => hour_now(),
    };
    let options = DemoOptions {
        signins: args.signins,
        days: args.days.max(1),
        users: args.users.max(1),
        seed: args.seed,
        end_us,
    };
    if let Some(path) = &args.out {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for record in demo::signins(&options) {
            file.write_all(&record)?;
            file.write_all(b"\n")?;
        }
        file.flush()?;
        eprintln!("wrote demo sign-ins to {}", path.display());
        return Ok(());
    }
    let started = Instant::now();
    let stored = match &args.target.server {
        Some(server) => {
            let http = client()?;
            let mut accepted = 0u64;
            for (path, records) in [
                ("/api/v1/signins", demo::signins(&options)),
                ("/api/v1/directory-audits", demo::directory_audits(&options, (options.signins / 200).max(10))),
                ("/api/v1/activities", demo::activities(&options, (options.signins / 20).max(50))),
            ] {
                for chunk in records.chunks(5000) {
                    let body = chunk.join(&b'\n');
                    let request = http
                        .post(format!("{}{path}", server.trim_end_matches('/')))
                        .header("content-type", "application/x-ndjson")
                        .body(body);
                    let response = args.target.authorize(request).send()?;
                    let status = response.status();
                    let answer: Value = response.json()?;
                    if !status.is_success() {
                        bail!("server answered {status}: {answer}");
                    }
                    accepted += answer["accepted"].as_u64().unwrap_or(0);
                }
            }
            accepted as usize
        }
        None => {
            let engine = open_engine(&args.target)?;
            let stored = store_demo(&engine, &args.target.org, &options)?;
            engine.shutdown();
            stored
        }
    };
    eprintln!("stored {stored} demo events in {:.1?}", started.elapsed());
    Ok(())
}
