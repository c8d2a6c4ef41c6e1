//! Streaming out (issue 6): a forwarder delivers to a real HTTP receiver on a loopback port,
//! which the test stops mid-stream and starts again; nothing is lost or reordered, every request
//! is signed, filters hold, and the cursor survives.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use serde_json::Value;
use signet_server::forward::{hmac_sha256, ForwardSettings};
use signet_server::ServerConfig;

use crate::{signin, TestServer};

const SECRET: &str = "receiver-shared-secret-0123";

#[derive(Clone, Default)]
struct Inbox {
    /// (destination, event entry) in arrival order.
    got: Arc<Mutex<Vec<(String, Value)>>>,
    bad_signatures: Arc<AtomicUsize>,
}

struct Receiver {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let signature = header("x-signet-signature");
    let (t, v1) = signature.split_once(",v1=").unwrap_or(("", ""));
    let t = t.strip_prefix("t=").unwrap_or("");
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&body);
    if hex::encode(hmac_sha256(SECRET.as_bytes(), &signed)) != v1 {
        inbox.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    let batch: Value = serde_json::from_slice(&body).unwrap();
    let destination = header("x-signet-destination");
    let mut got = inbox.got.lock();
    for event in batch["events"].as_array().unwrap() {
        got.push((destination.clone(), event.clone()));
    }
    StatusCode::OK
}

impl Receiver {
    async fn start(address: SocketAddr, inbox: Inbox) -> Receiver {
        let listener = loop {
            match tokio::net::TcpListener::bind(address).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let app = axum::Router::new().route("/in", axum::routing::post(receive)).with_state(inbox);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Receiver { shutdown: Some(tx), done }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.done.await;
    }
}

fn settings(name: &str, url: &str, extra: &str) -> ForwardSettings {
    let json = format!(r#"{{"name":"{name}","url":"{url}","secret":"{SECRET}","batch_size":50{extra}}}"#);
    serde_json::from_str(&json).unwrap()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_survives_a_receiver_outage_without_loss_or_reordering() {
    let address: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let url = format!("http://{address}/in");
    let inbox = Inbox::default();
    let receiver = Receiver::start(address, inbox.clone()).await;
    let config = ServerConfig {
        forward: vec![
            settings("siem", &url, ""),
            settings("alerts", &url, r#","kinds":["signins"],"failures_only":true"#),
            settings("ocsf", &url, r#","kinds":["signins"],"format":"ocsf""#),
        ],
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let batch = |first: usize| -> String {
        (first..first + 50)
            .map(|n| {
                signin(
                    &format!("s-{n:04}"),
                    1,
                    "ann@default.example",
                    "Payroll",
                    if n % 10 == 0 { 50126 } else { 0 },
                    "",
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for first in (0..200).step_by(50) {
        let (status, answer) = server.post("/api/v1/signins", "application/x-ndjson", batch(first)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let arrived = |inbox: &Inbox, destination: &str| inbox.got.lock().iter().filter(|(d, _)| d == destination).count();
    wait_for("the first half", || arrived(&inbox, "siem") >= 200).await;

    // The receiver goes away; events keep arriving at Signet.
    receiver.stop().await;
    for first in (200..400).step_by(50) {
        let (status, answer) = server.post("/api/v1/signins", "application/x-ndjson", batch(first)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let failures = || {
        let server = &server;
        async move {
            let (_, metrics) = server.get_text("/metrics").await;
            metrics
                .lines()
                .find(|l| l.starts_with("signet_forward_failures_total{destination=\"siem\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        }
    };
    for _ in 0..100 {
        if failures().await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failures().await > 0, "deliveries to the stopped receiver failed and are retried");
    let receiver = Receiver::start(address, inbox.clone()).await;
    wait_for("everything", || arrived(&inbox, "siem") >= 400).await;
    wait_for("the failures", || arrived(&inbox, "alerts") >= 40).await;
    wait_for("the OCSF copy", || arrived(&inbox, "ocsf") >= 400).await;

    let got = inbox.got.lock().clone();
    let ids = |destination: &str| -> Vec<String> {
        let mut first_seen = Vec::new();
        for (_, event) in got.iter().filter(|(d, _)| d == destination) {
            let id = event["id"].as_str().unwrap().to_string();
            if !first_seen.contains(&id) {
                first_seen.push(id);
            }
        }
        first_seen
    };
    let expected: Vec<String> = (0..400).map(|n| format!("s-{n:04}")).collect();
    let siem = ids("siem");
    // Signet's own records (its access log) go too; the sign-ins arrive complete and in order.
    let signins: Vec<String> = siem.into_iter().filter(|id| id.starts_with("s-")).collect();
    assert_eq!(signins, expected, "every sign-in once (first arrivals), in the order it was stored");
    let alerts = ids("alerts");
    let failed: Vec<String> = (0..400).filter(|n| n % 10 == 0).map(|n| format!("s-{n:04}")).collect();
    assert_eq!(alerts, failed, "the failures-only forwarder sends failed sign-ins only");
    assert_eq!(inbox.bad_signatures.load(Ordering::SeqCst), 0, "every request carries a valid signature");
    let sample = got.iter().find(|(_, e)| e["id"] == "s-0001").unwrap();
    assert_eq!((sample.1["kind"].as_str(), sample.1["organization"].as_str()), (Some("signins"), Some("default")));
    assert_eq!(sample.1["record"]["userPrincipalName"], "ann@default.example", "the record as stored");
    let ocsf = got.iter().find(|(d, e)| d == "ocsf" && e["metadata"]["uid"] == "s-0010").unwrap();
    assert_eq!((ocsf.1["class_uid"].as_u64(), ocsf.1["status_id"].as_u64()), (Some(3002), Some(2)), "{}", ocsf.1);
    assert_eq!(ocsf.1["user"]["name"], "ann@default.example");

    // The cursor is on disk, at the position delivered.
    let cursor: Value = serde_json::from_slice(
        &std::fs::read(signet_server::forward::cursor_path(server.engine.data_dir(), "siem")).unwrap(),
    )
    .unwrap();
    assert!(cursor["position"].as_u64().unwrap() > 0, "{cursor}");
    let (_, metrics) = server.get_text("/metrics").await;
    assert!(metrics.contains("signet_forward_lag_bytes{destination=\"siem\"}"), "{metrics}");
    receiver.stop().await;
}

#[test]
fn forward_settings_are_checked_when_the_server_starts() {
    let bad = ServerConfig { forward: vec![settings("siem", "http://example.com/in", "")], ..ServerConfig::default() };
    let dir = tempfile::tempdir().unwrap();
    let engine =
        std::sync::Arc::new(signet_store::Engine::open(dir.path(), signet_store::IngestConfig::default()).unwrap());
    let directory =
        std::sync::Arc::new(signet_auth::Directory::open_in_data_dir(engine.data_dir(), "default").unwrap());
    let refused = signet_server::AppState::new(engine, directory, bad).err().expect("refused");
    assert!(refused.to_string().contains("https"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cursor_survives_a_restart_of_signet() {
    use signet_server::testkit::TestSignet;
    let address: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let inbox = Inbox::default();
    let receiver = Receiver::start(address, inbox.clone()).await;
    let config = ServerConfig {
        forward: vec![settings("siem", &format!("http://{address}/in"), r#","kinds":["signins"]"#)],
        ..ServerConfig::default()
    };
    let batch = |first: usize| -> String {
        (first..first + 100)
            .map(|n| signin(&format!("r-{n:04}"), 1, "ann@default.example", "Payroll", 0, ""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let arrived = |inbox: &Inbox| inbox.got.lock().len();
    let dir = tempfile::tempdir().unwrap();
    let signet = TestSignet::start(dir.path(), config.clone()).await;
    assert_eq!(signet.post_signins(batch(0)).await, 200);
    wait_for("the first 100", || arrived(&inbox) >= 100).await;
    signet.shutdown().await;

    let signet = TestSignet::start(dir.path(), config).await;
    assert_eq!(signet.post_signins(batch(100)).await, 200);
    wait_for("the next 100", || arrived(&inbox) >= 200).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<String> = inbox.got.lock().iter().map(|(_, e)| e["id"].as_str().unwrap().to_string()).collect();
    let expected: Vec<String> = (0..200).map(|n| format!("r-{n:04}")).collect();
    assert_eq!(ids, expected, "after the restart delivery went on from the cursor: nothing again, nothing missing");
    signet.shutdown().await;
    receiver.stop().await;
}
