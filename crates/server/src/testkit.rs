//! A real Signet for the tests of its clients (the SDK, the example application): the server on
//! a loopback port over a data directory the caller owns, an ingest key, a Global reader key and
//! a Global administrator who can sign in. Not used by the binary.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use signet_auth::{Directory, KeyKind, NewUser, Role, Secret};
use signet_store::{Engine, IngestConfig};

use crate::{AppState, ServerConfig};

/// The Global administrator's sign-in name and password.
pub const ADMIN: (&str, &str) = ("admin@example.com", "test password 0123");

pub struct TestSignet {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub ingest_key: String,
    pub read_key: String,
    pub engine: Arc<Engine>,
    /// The server's state (its jobs can be run with a test's clock).
    pub state: AppState,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestSignet {
    /// Starts Signet over `data_dir` (kept by the caller, so a test can start it again).
    pub async fn start(data_dir: &Path, config: ServerConfig) -> TestSignet {
        TestSignet::start_with(data_dir, config, IngestConfig::default()).await
    }

    /// [`TestSignet::start`] with the store's settings (e.g. small log segments).
    pub async fn start_with(data_dir: &Path, config: ServerConfig, ingest: IngestConfig) -> TestSignet {
        let engine = Arc::new(Engine::open(data_dir, ingest).expect("open the store"));
        TestSignet::start_engine(engine, config).await
    }

    /// [`TestSignet::start`] over another store than the embedded DuckDB (e.g. ClickHouse).
    pub async fn start_on(
        data_dir: &Path,
        config: ServerConfig,
        store: Arc<dyn signet_store::EventStore>,
    ) -> TestSignet {
        // Opening replays the log into the store: blocking calls, off the async threads. A store
        // other than the embedded one lags in the log, as with `storage = "clickhouse"`.
        let data_dir = data_dir.to_path_buf();
        let ingest = IngestConfig { lag_in_log: true, ..IngestConfig::default() };
        let engine = tokio::task::spawn_blocking(move || {
            Engine::open_with_store(data_dir, store, ingest, &signet_store::TrustConfig::default())
        })
        .await
        .expect("join")
        .expect("open the store");
        TestSignet::start_engine(Arc::new(engine), config).await
    }

    async fn start_engine(engine: Arc<Engine>, config: ServerConfig) -> TestSignet {
        let directory = Arc::new(Directory::open_in_data_dir(engine.data_dir(), &config.org).expect("directory"));
        if directory.user_by_name(ADMIN.0).is_none() {
            let admin = NewUser {
                username: ADMIN.0.into(),
                display_name: None,
                role: Some(Role::GlobalAdministrator),
                password: Some(Secret::new(ADMIN.1)),
            };
            directory.create_user(&config.org, admin).expect("create the administrator");
        }
        let (_, read_key) = directory
            .create_key(&config.org, "test reader", KeyKind::Read { role: Role::GlobalReader }, "testkit")
            .expect("read key");
        let (_, ingest_key) =
            directory.create_key(&config.org, "test writer", KeyKind::Ingest { app: None }, "testkit").expect("key");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let state = AppState::new(engine.clone(), directory, config).expect("state");
        let kept = state.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(crate::run(listener, state, async move {
            let _ = rx.await;
        }));
        TestSignet {
            base,
            ingest_key: ingest_key.expose().to_string(),
            read_key: read_key.expose().to_string(),
            engine,
            state: kept,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            running: Some(running),
        }
    }

    /// Stores sign-ins (Graph JSON, one per line) with the ingest key; the status.
    pub async fn post_signins(&self, ndjson: String) -> u16 {
        self.post_events("/api/v1/signins", ndjson).await
    }

    /// Stores events (one JSON record per line) at an ingest path with the ingest key; the status.
    pub async fn post_events(&self, path: &str, ndjson: String) -> u16 {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.ingest_key)
            .header("content-type", "application/x-ndjson")
            .body(ndjson)
            .send()
            .await
            .expect("post sign-ins");
        response.status().as_u16()
    }

    /// Stops serving and waits until the server has shut down (the store closed), so that the
    /// data directory can be opened again.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(running) = self.running.take() {
            running.await.expect("server task").expect("clean shutdown");
        }
    }

    /// Waits until every acknowledged event is visible to queries.
    pub async fn settle(&self) {
        let engine = self.engine.clone();
        let visible =
            tokio::task::spawn_blocking(move || engine.wait_visible(Duration::from_secs(10))).await.expect("join");
        assert!(visible, "acknowledged events did not become visible within 10 s");
    }

    /// `GET /api/v1/activities?{query}` with the reader key (over the last year, oldest first):
    /// the rows.
    pub async fn activities(&self, query: &str) -> Vec<Value> {
        self.settle().await;
        let url = format!("{}/api/v1/activities?range=1y&sort=asc&limit=1000&{query}", self.base);
        let response = self.http.get(url).bearer_auth(&self.read_key).send().await.expect("list activities");
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("JSON page");
        page["items"].as_array().cloned().unwrap_or_default()
    }

    /// `GET {path}` with the reader key: (status, body as text).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response =
            self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.read_key).send().await.expect("get");
        (response.status().as_u16(), response.text().await.expect("body"))
    }

    /// Replaces the organisation's audit settings as the Global administrator; the status.
    pub async fn put_audit_settings(&self, settings: &Value) -> u16 {
        let login = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&serde_json::json!({ "username": ADMIN.0, "password": ADMIN.1 }))
            .send()
            .await
            .expect("sign in");
        assert_eq!(login.status(), 200, "the administrator signs in");
        let cookie =
            login.headers()["set-cookie"].to_str().expect("cookie").split(';').next().unwrap_or("").to_string();
        let me: Value = login.json().await.expect("JSON");
        let csrf = me["csrfToken"].as_str().unwrap_or_default().to_string();
        let response = self
            .http
            .put(format!("{}/api/v1/settings/audit", self.base))
            .header("cookie", cookie)
            .header("x-csrf-token", csrf)
            .json(settings)
            .send()
            .await
            .expect("put the audit settings");
        response.status().as_u16()
    }

    /// Stops serving (the data directory stays).
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestSignet {
    fn drop(&mut self) {
        self.stop();
    }
}
