//! Signet's HTTP server (axum).
//!
//! # Layout
//! - [`app`] builds the router from an [`AppState`]; [`run`] serves it on a listener until a
//!   shutdown future resolves (tests start it on port 0).
//! - [`routes`]: the route table: every route with its permission and audit rule.
//! - [`auth`]: verifies credentials (API keys, session cookies + CSRF) and checks the route's
//!   permission in front of every handler; [`access_log`] records every read and change;
//!   [`forwarded`] finds the client's address behind trusted reverse proxies.
//! - [`oidc`]: console sign-in through OpenID Connect providers.
//! - [`accounts`]: sign-in / sign-out, "my sign-ins", accounts, API keys, settings.
//! - [`ingest`]: `POST /api/v1/{signins,directory-audits,activities}`.
//! - [`graph`]: the Microsoft Graph-compatible reads under `/v1.0/auditLogs/...`.
//! - [`api`]: the native query API, event details, export, error codes.
//! - [`reports`]: timeline, top applications, summary, user pattern, authentication methods.
//! - [`error`]: the one mapping from errors to HTTP statuses and OData-shaped bodies.
//! - [`explore`]: facets, histograms and live streams for the console's log explorer.
//! - [`console`]: the web console's embedded assets.
//! - [`audit_settings`]: the organisation's audit switches and what they let through;
//!   [`user_access`]: one user-access record per user, access type and interval.
//! - [`metrics`], [`csv_out`]: Prometheus text and formula-safe CSV.

pub mod access_log;
pub mod accounts;
pub mod activity_reports;
pub mod api;
pub mod audit_settings;
pub mod auth;
pub mod body_pool;
pub mod console;
pub mod csv_out;
pub mod error;
pub mod explore;
pub mod forward;
pub mod forwarded;
pub mod graph;
pub mod import;
pub mod ingest;
pub mod metrics;
pub mod ocsf;
pub mod oidc;
pub mod periodic;
pub mod reports;
pub mod retention;
pub mod routes;
pub mod scheduled_export;
pub mod shared;
pub mod syslog;
pub mod testkit;
pub mod trust;
pub mod user_access;
pub mod user_directory;
pub mod user_sessions;
pub mod views;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use signet_auth::{Directory, LoginGuard, LoginPolicy, SessionStore};
use signet_model::Cell;
use signet_store::Engine;

/// Server settings that handlers need.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The deployment's home organisation (single-organisation installs use only this one).
    pub org: String,
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Sessions end after this long without a request.
    pub session_idle: Duration,
    /// Sessions end this long after sign-in, whatever the activity.
    pub session_lifetime: Duration,
    /// Mark the session cookie `Secure` (set when Signet is reached over HTTPS).
    pub secure_cookies: bool,
    /// Reverse proxies whose forwarding headers name the client (none by default).
    pub trusted_proxies: forwarded::TrustedProxies,
    /// Lockout and rate limits of password sign-in.
    pub login: LoginPolicy,
    /// Ingest and import requests handled at once; more get 503 + Retry-After before their
    /// body is read. With `max_body_bytes` this bounds the memory request bodies take.
    pub ingest_slots: usize,
    /// Activity operations not stored when applications send them (compared without regard to
    /// case); counted in the ingest answer (`excluded`) and in metrics.
    pub activity_exclusions: Vec<String>,
    /// Where new events are streamed to (`[[forward]]`).
    pub forward: Vec<forward::ForwardSettings>,
    /// The archive directory (default `DATA/archive`).
    pub archive_dir: Option<std::path::PathBuf>,
    /// The archive's copy of record in an S3-compatible object store (`[archive_store]`); the
    /// archive directory is then its working copy.
    pub archive_store: Option<signet_store::archive::ObjectStoreSettings>,
    /// How often the retention policies are applied (None: only on demand).
    pub retention_interval: Option<Duration>,
    /// Exports written on a schedule (`[[scheduled_export]]`).
    pub scheduled_exports: Vec<scheduled_export::ExportJobSettings>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            org: signet_model::OrgId::DEFAULT.to_string(),
            max_body_bytes: 64 << 20,
            session_idle: Duration::from_secs(30 * 60),
            session_lifetime: Duration::from_secs(12 * 3600),
            secure_cookies: false,
            trusted_proxies: forwarded::TrustedProxies::default(),
            login: LoginPolicy::default(),
            ingest_slots: 16,
            activity_exclusions: signet_model::activity::DEFAULT_EXCLUDED_OPERATIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            forward: Vec::new(),
            archive_dir: None,
            archive_store: None,
            retention_interval: Some(Duration::from_secs(3600)),
            scheduled_exports: Vec::new(),
        }
    }
}

/// Where a lone node keeps its console sessions (the ids' digests): see `signet_auth::session`.
pub const SESSIONS_FILE: &str = "auth/sessions.jsonl";

/// How often a lone node writes its sessions' last uses to [`SESSIONS_FILE`] (each at most
/// once a minute; the file is compacted hourly).
const SESSIONS_FLUSH_EVERY: Duration = Duration::from_secs(15);

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: Arc<ServerConfig>,
    pub http_metrics: Arc<metrics::HttpMetrics>,
    pub directory: Arc<Directory>,
    pub sessions: Arc<SessionStore>,
    pub login: Arc<LoginGuard>,
    pub ingest_slots: Arc<tokio::sync::Semaphore>,
    /// Buffers the ingest routes read request bodies into, reused.
    pub bodies: Arc<body_pool::BodyPool>,
    pub views: Arc<views::ViewStore>,
    /// OpenID Connect providers (none unless configured).
    pub oidc: Arc<oidc::Providers>,
    pub audit_settings: Arc<audit_settings::AuditSettingsStore>,
    /// Which users' accesses are recorded for which interval.
    pub user_access: Arc<user_access::UserAccessIndex>,
    /// User id -> name and email (learned from events, imported).
    pub user_directory: Arc<user_directory::UserDirectory>,
    /// Streams out to other tools (started by [`run`]).
    pub forwarders: Arc<forward::Forwarders>,
    /// Retention policies and the expiry job (started by [`run`]).
    pub retention: Arc<retention::RetentionJob>,
    /// Exports on a schedule (started by [`run`]).
    pub exports: Arc<scheduled_export::ScheduledExports>,
    /// Whether accounts, keys and settings are shared with other nodes ([`shared`]): [`run`]
    /// then reads their changes.
    pub shared_documents: bool,
}

impl AppState {
    /// Fails when a settings file of the data directory cannot be read.
    pub fn new(engine: Arc<Engine>, directory: Arc<Directory>, config: ServerConfig) -> std::io::Result<AppState> {
        let documents = signet_auth::document::DataDirDocuments(engine.data_dir().to_path_buf());
        AppState::with_documents(engine, directory, config, &documents, false)
    }

    /// [`AppState::new`] with the settings in `documents`; `shared`: other nodes change them too.
    pub fn with_documents(
        engine: Arc<Engine>,
        directory: Arc<Directory>,
        config: ServerConfig,
        documents: &dyn signet_auth::document::Documents,
        shared: bool,
    ) -> std::io::Result<AppState> {
        let now = signet_model::time::now_micros();
        let sessions = Arc::new(match documents.entries(signet_auth::session::SESSIONS_ENTRIES) {
            Some(set) => SessionStore::shared(config.session_idle, config.session_lifetime, set, now),
            // A lone node keeps its sessions in its data directory: a restart keeps them.
            None => SessionStore::persisted(
                config.session_idle,
                config.session_lifetime,
                Box::new(signet_auth::document::FileEntrySet::in_data_dir(engine.data_dir(), SESSIONS_FILE)),
                now,
            ),
        });
        let login = Arc::new(LoginGuard::new(directory.clone(), config.login.clone()));
        let ingest_slots = Arc::new(tokio::sync::Semaphore::new(config.ingest_slots.max(1)));
        let views = Arc::new(views::ViewStore::open_document(documents.document(views::VIEWS_DOCUMENT))?);
        let audit_settings = Arc::new(audit_settings::AuditSettingsStore::open_document(
            documents.document(audit_settings::AUDIT_DOCUMENT),
        )?);
        let user_directory = Arc::new(user_directory::UserDirectory::open_shared(
            engine.data_dir(),
            documents.entries(user_directory::USERS_ENTRIES),
        )?);
        let forwarders = Arc::new(
            forward::Forwarders::new(config.forward.clone())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        );
        let archive_dir =
            config.archive_dir.clone().unwrap_or_else(|| retention::default_archive_dir(engine.data_dir()));
        let archive = retention::open_archive(archive_dir, config.archive_store.as_ref())?;
        match signet_store::archive::attach(&engine, &archive) {
            Ok(()) => {}
            // Collecting must not stop over a bad archive file: start, say so loudly, and let
            // `signet verify` name it (expiry refuses to run until it is fixed).
            Err(err) => tracing::error!(error = %err, "the archive cannot be read: queries read the hot store only"),
        }
        let policies =
            Arc::new(retention::RetentionStore::open_document(documents.document(retention::POLICIES_DOCUMENT))?);
        let retention = Arc::new(retention::RetentionJob::new(archive, policies));
        let exports = Arc::new(
            scheduled_export::ScheduledExports::new(config.scheduled_exports.clone(), &config.org)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        );
        Ok(AppState {
            shared_documents: shared,
            exports,
            retention,
            forwarders,
            audit_settings,
            user_directory,
            user_access: Arc::default(),
            views,
            oidc: Arc::new(oidc::Providers::none()),
            engine,
            config: Arc::new(config),
            http_metrics: Arc::default(),
            directory,
            sessions,
            login,
            ingest_slots,
            bodies: Arc::default(),
        })
    }
}

impl AppState {
    /// Signs users in through these OpenID Connect providers too.
    pub fn with_oidc(mut self, providers: oidc::Providers) -> AppState {
        self.oidc = Arc::new(providers);
        self
    }
}

/// The router, built from [`routes::ROUTES`] only: each route behind its access check.
pub fn app(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let mut router = Router::new();
    for (spec, handler) in routes::routes() {
        let guarded = handler.route_layer(middleware::from_fn_with_state((state.clone(), spec), auth::guard));
        router = router.route(spec.path, guarded);
    }
    router
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(limit))
        // Compressed request bodies (log shippers send gzip): the limit above applies to what
        // they decompress to, so a small body that expands without end is a 413, not memory.
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .layer(middleware::from_fn(error::accepted_content_encoding))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn_with_state(state.clone(), forwarded::resolve))
        .with_state(state)
}

async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    if let Some(encoding) = request.headers().get(axum::http::header::CONTENT_ENCODING) {
        state.http_metrics.count_encoding(encoding.to_str().unwrap_or("").trim());
    }
    let response = next.run(request).await.into_response();
    state.http_metrics.observe(started.elapsed(), response.status().is_server_error());
    response
}

/// Serves the app on `listener` until `shutdown` resolves, then drains the write path.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let engine = state.engine.clone();
    let directory = state.directory.clone();
    let home = state.config.org.clone();
    let flusher = tokio::spawn(flush_key_use(directory.clone()));
    let refresher = periodic::Periodic::default();
    if state.shared_documents {
        let (directory, audit, policies, views, users, sessions, oidc) = (
            directory.clone(),
            state.audit_settings.clone(),
            state.retention.policies.clone(),
            state.views.clone(),
            state.user_directory.clone(),
            state.sessions.clone(),
            state.oidc.clone(),
        );
        refresher.start("signet-shared", shared::REFRESH_INTERVAL, shared::REFRESH_INTERVAL, move || {
            let now = signet_model::time::now_micros();
            if let Err(err) = sessions.flush(now) {
                tracing::warn!(error = %err, "could not write the console sessions' changes the nodes share");
            }
            if let Err(err) = oidc.forget_old_sign_ins(now) {
                tracing::warn!(error = %err, "could not delete old sign-ins in progress the nodes share");
            }
            let results = [
                ("console sessions", sessions.refresh(now).map(|_| false).map_err(|e| e.to_string())),
                ("accounts", directory.refresh().map_err(|e| e.to_string())),
                ("audit settings", audit.refresh().map_err(|e| e.to_string())),
                ("retention policies", policies.refresh().map_err(|e| e.to_string())),
                ("saved views", views.refresh().map_err(|e| e.to_string())),
                ("users directory", users.refresh().map_err(|e| e.to_string())),
            ];
            for (what, result) in results {
                match result {
                    Ok(true) => tracing::info!(document = what, "another node changed a shared document: read again"),
                    Ok(false) => {}
                    Err(err) => tracing::warn!(document = what, error = %err, "could not read a shared document"),
                }
            }
        });
    } else {
        // Sessions' last uses to the data directory's file (at most once a minute each).
        let sessions = state.sessions.clone();
        refresher.start("signet-sessions", SESSIONS_FLUSH_EVERY, SESSIONS_FLUSH_EVERY, move || {
            if let Err(err) = sessions.flush(signet_model::time::now_micros()) {
                tracing::warn!(error = %err, "could not save the console sessions' last uses");
            }
        });
    }
    let sessions = state.sessions.clone();
    let users = state.user_directory.clone();
    let users_flusher = tokio::spawn(flush_user_directory(users.clone()));
    let forwarders = state.forwarders.clone();
    forwarders.start(engine.clone());
    let retention = state.retention.clone();
    if retention.archive.remote().is_some() {
        // A new or stale working copy catches up with the object store while the server runs.
        let (job, engine) = (retention.clone(), engine.clone());
        tokio::task::spawn_blocking(move || {
            if let Err(err) = job.sync(&engine) {
                tracing::error!(error = %err, "the archive could not be synchronised with its object store");
            }
        });
    }
    if let Some(interval) = state.config.retention_interval {
        retention.start(engine.clone(), interval);
    }
    let exports = state.exports.clone();
    exports.start(engine.clone());
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, service).with_graceful_shutdown(shutdown).await;
    flusher.abort();
    users_flusher.abort();
    tokio::task::spawn_blocking(move || {
        forwarders.stop();
        retention.stop();
        exports.stop();
        refresher.stop();
    })
    .await
    .map_err(std::io::Error::other)?;
    served?;
    tokio::task::spawn_blocking(move || {
        let stopped = access_log::service_event(
            &home,
            "SignetLoggingStopped",
            "Signet stopped collecting events (clean shutdown); the final tree heads follow",
            serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }),
        );
        if let Err(err) = access_log::store_blocking(&engine, &home, &stopped) {
            tracing::error!(error = %err, "could not record the logging stop");
        }
        engine.shutdown();
        if let Err(err) = directory.flush_key_use() {
            tracing::error!(error = %err, "could not save API keys' last-used times");
        }
        if let Err(err) = users.flush() {
            tracing::error!(error = %err, "could not save the users directory");
        }
        if let Err(err) = sessions.flush(signet_model::time::now_micros()) {
            tracing::error!(error = %err, "could not save the console sessions' last uses");
        }
    })
    .await
    .map_err(std::io::Error::other)?;
    Ok(())
}

/// Saves API keys' last-used times every minute.
async fn flush_key_use(directory: Arc<Directory>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let directory = directory.clone();
        if let Ok(Err(err)) = tokio::task::spawn_blocking(move || directory.flush_key_use()).await {
            tracing::error!(error = %err, "could not save API keys' last-used times");
        }
    }
}

/// Saves users learned from events every few seconds (learning writes at most that often too).
async fn flush_user_directory(users: Arc<user_directory::UserDirectory>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let users = users.clone();
        if let Ok(Err(err)) = tokio::task::spawn_blocking(move || users.flush()).await {
            tracing::error!(error = %err, "could not save the users directory");
        }
    }
}

/// A cell as JSON: times as RFC 3339 UTC strings.
pub fn cell_json(cell: &Cell) -> serde_json::Value {
    match cell {
        Cell::Null => serde_json::Value::Null,
        Cell::Str(s) => s.as_str().into(),
        Cell::Int(i) => (*i).into(),
        Cell::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Cell::Bool(b) => (*b).into(),
        Cell::Time(t) => signet_model::time::format_time(*t).into(),
        Cell::List(items) => items.clone().into(),
    }
}

/// A cell as text (CSV, tables): lists joined with `; `.
pub fn cell_text(cell: &Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Str(s) => s.clone(),
        Cell::Int(i) => i.to_string(),
        Cell::Float(f) => f.to_string(),
        Cell::Bool(b) => b.to_string(),
        Cell::Time(t) => signet_model::time::format_time(*t),
        Cell::List(items) => items.join("; "),
    }
}
