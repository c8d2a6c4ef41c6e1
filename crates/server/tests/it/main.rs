//! HTTP tests: a real server on a loopback port 0 over a real data directory, driven by a
//! real HTTP client.

mod access;
mod accounts;
mod activity;
mod api;
mod clickhouse;
mod explore;
mod forward;
mod graph;
mod ingest;
mod object_store;
mod reports;
mod retention;
mod syslog;
mod trust;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use signet_auth::{Directory, KeyKind, NewUser, Role, Secret};
use signet_server::{AppState, ServerConfig};
use signet_store::{Engine, IngestConfig};

/// Password of every account the tests create.
pub const PASSWORD: &str = "test password 0123";

pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub engine: Arc<Engine>,
    pub directory: Arc<Directory>,
    /// Sends a Global reader read key (org `default`) on every request.
    pub http: reqwest::Client,
    /// Sends an ingest key (org `default`) on every request.
    pub writer: reqwest::Client,
    /// A client without credentials.
    pub anonymous: reqwest::Client,
    pub read_key: Secret,
    pub ingest_key: Secret,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// A client that sends `Authorization: Bearer <key>`.
pub fn keyed_client(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {key}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(ServerConfig::default()).await
    }

    pub async fn start_with(config: ServerConfig) -> TestServer {
        TestServer::start_with_ingest(config, IngestConfig::default()).await
    }

    /// [`TestServer::start_with`] with the write path's settings.
    pub async fn start_with_ingest(config: ServerConfig, ingest: IngestConfig) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path(), ingest).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let directory = Arc::new(Directory::open_in_data_dir(engine.data_dir(), &config.org).unwrap());
        directory
            .create_user(
                &config.org,
                NewUser {
                    username: "admin@example.com".into(),
                    display_name: None,
                    role: Some(Role::GlobalAdministrator),
                    password: Some(Secret::new(PASSWORD)),
                },
            )
            .unwrap();
        let (_, read_key) =
            directory.create_key(&config.org, "reader", KeyKind::Read { role: Role::GlobalReader }, "test").unwrap();
        let (_, ingest_key) =
            directory.create_key(&config.org, "writer", KeyKind::Ingest { app: None }, "test").unwrap();
        let state = AppState::new(engine.clone(), directory.clone(), config).unwrap();
        let kept = state.clone();
        tokio::spawn(signet_server::run(listener, state, async move {
            let _ = rx.await;
        }));
        TestServer {
            base,
            state: kept,
            engine,
            directory,
            http: keyed_client(read_key.expose()),
            writer: keyed_client(ingest_key.expose()),
            anonymous: reqwest::Client::new(),
            read_key,
            ingest_key,
            shutdown: Some(tx),
            _dir: dir,
        }
    }

    /// Creates an account and signs it in; returns its session.
    pub async fn session(&self, org: &str, username: &str, role: Option<Role>) -> Session {
        let new =
            NewUser { username: username.into(), display_name: None, role, password: Some(Secret::new(PASSWORD)) };
        if self.directory.user_by_name(username).is_none() {
            self.directory.create_user(org, new).unwrap();
        }
        self.login(username, PASSWORD).await.expect("sign-in succeeds")
    }

    /// Signs in; `Err(status)` on failure.
    pub async fn login(&self, username: &str, password: &str) -> Result<Session, u16> {
        let response = self
            .anonymous
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap();
        if response.status() != 200 {
            return Err(response.status().as_u16());
        }
        let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
        let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string();
        let me: Value = response.json().await.unwrap();
        Ok(Session {
            cookie: format!("signet_session={token}"),
            set_cookie: cookie,
            csrf: me["csrfToken"].as_str().unwrap().to_string(),
            me,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a body with a content type; returns (status, JSON answer).
    pub async fn post(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response =
            self.writer.post(self.url(path)).header("content-type", content_type).body(body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Waits until every acknowledged event is visible to queries.
    pub async fn settle(&self) {
        let engine = self.engine.clone();
        let visible = tokio::task::spawn_blocking(move || engine.wait_visible(Duration::from_secs(10))).await.unwrap();
        assert!(visible, "acknowledged events did not become visible within 10 s");
    }

    /// Stores sign-ins (Graph JSON strings) and waits until they are visible.
    pub async fn load(&self, records: &[String]) {
        let (status, answer) = self.post("/api/v1/signins", "application/x-ndjson", records.join("\n")).await;
        assert_eq!(status, 200, "{answer}");
        self.settle().await;
    }
}

/// A signed-in console session.
#[derive(Clone, Debug)]
pub struct Session {
    /// `Cookie` header value.
    pub cookie: String,
    /// The `Set-Cookie` the sign-in answered.
    pub set_cookie: String,
    pub csrf: String,
    pub me: Value,
}

impl Session {
    /// A request with the session cookie and, for unsafe methods, the CSRF token.
    pub fn request(&self, http: &reqwest::Client, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let unsafe_method = !matches!(method, reqwest::Method::GET | reqwest::Method::HEAD);
        let request = http.request(method, url).header("cookie", &self.cookie);
        if unsafe_method {
            request.header("x-csrf-token", &self.csrf)
        } else {
            request
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A sign-in `hours_ago` hours before now.
pub fn signin(id: &str, hours_ago: i64, upn: &str, app: &str, code: i64, extra: &str) -> String {
    let created = signet_model::time::format_time(signet_model::time::now_micros() - hours_ago * 3_600_000_000);
    format!(
        r#"{{"id":"{id}","createdDateTime":"{created}","userId":"uid-{upn}","userPrincipalName":"{upn}","userDisplayName":"User {upn}","appId":"app-{app}","appDisplayName":"{app}","ipAddress":"10.1.{}.{}","clientAppUsed":"Browser","isInteractive":true,"status":{{"errorCode":{code}}},"location":{{"city":"Paris","countryOrRegion":"FR"}}{extra}}}"#,
        hours_ago % 250,
        id.len() % 250 + 1
    )
}
