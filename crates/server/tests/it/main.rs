//! HTTP tests: a real server on a loopback port 0 over a real data directory, driven by a
//! real HTTP client.

mod api;
mod graph;
mod ingest;
mod reports;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use signet_server::{AppState, ServerConfig};
use signet_store::{Engine, IngestConfig};

pub struct TestServer {
    pub base: String,
    pub engine: Arc<Engine>,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(ServerConfig::default()).await
    }

    pub async fn start_with(config: ServerConfig) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path(), IngestConfig::default()).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = AppState::new(engine.clone(), config);
        tokio::spawn(signet_server::run(listener, state, async move {
            let _ = rx.await;
        }));
        TestServer { base, engine, http: reqwest::Client::new(), shutdown: Some(tx), _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a body with a content type; returns (status, JSON answer).
    pub async fn post(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response =
            self.http.post(self.url(path)).header("content-type", content_type).body(body).send().await.unwrap();
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
