//! The SDK against a real Signet (in process, on a loopback port, over a DuckDB data
//! directory), sometimes through a loopback proxy that injects the failures a network and an
//! overloaded server produce.

mod proxy;

use std::time::Duration;

use serde_json::{json, Map, Value};
use signet_sdk::{Activity, Client, DirectoryAudit, Event, Kind, SdkError, SignIn};
use signet_server::testkit::TestSignet;
use signet_server::ServerConfig;

use proxy::{Fault, Proxy};

async fn signet() -> (TestSignet, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (TestSignet::start(dir.path(), ServerConfig::default()).await, dir)
}

/// A loopback address nothing listens on.
async fn unreachable() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn fast(server: &str, key: &str) -> signet_sdk::ClientBuilder {
    Client::builder(server, key)
        .linger(Duration::from_millis(20))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
}

async fn flush(client: &Client) -> signet_sdk::Stats {
    tokio::time::timeout(Duration::from_secs(30), client.flush()).await.expect("flushed within 30 s").unwrap()
}

fn ids(rows: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = rows.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_every_kind_arrive_with_their_ids() {
    let (signet, _dir) = signet().await;
    let client = fast(&signet.base, &signet.ingest_key).build().unwrap();
    let activity = Activity::new("Retrieve").user("alex@contoso.com").entity("account", Some("a-1".into()));
    let activity_id = activity.id.clone();
    let sign_in = SignIn::failure("alex@contoso.com", "Contoso CRM", 50126, "Invalid username or password");
    let sign_in_id = sign_in.id.clone();
    let audit = DirectoryAudit::by_user("Add member to role", "RoleManagement", "admin@contoso.com")
        .target(json!({ "type": "User", "userPrincipalName": "alex@contoso.com" }));
    let audit_id = audit.id.clone();
    client.record(activity).unwrap();
    client.record(sign_in).unwrap();
    client.record(audit).unwrap();
    let stats = flush(&client).await;
    assert_eq!((stats.recorded, stats.accepted, stats.rejected, stats.pending), (3, 3, 0, 0), "{stats:?}");

    let rows = signet.activities("columns=id,operation,entityName,entityId,user").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], activity_id.as_str());
    assert_eq!((rows[0]["operation"].as_str(), rows[0]["entityId"].as_str()), (Some("Retrieve"), Some("a-1")));
    let http = reqwest::Client::new();
    for (path, id) in [("signins", &sign_in_id), ("directory-audits", &audit_id)] {
        let url = format!("{}/api/v1/{path}/{id}", signet.base);
        let response = http.get(url).bearer_auth(&signet.read_key).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} {id} is stored");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_is_retried_with_the_same_ids_and_stored_once() {
    let (signet, _dir) = signet().await;
    let proxy = Proxy::start(&signet.base, vec![Fault::ForwardThenFail]).await;
    let client = fast(&proxy.base, &signet.ingest_key).build().unwrap();
    let mut sent = Vec::new();
    for n in 0..10 {
        let activity = Activity::new("Update").user("sam@contoso.com").entity("lead", Some(format!("l-{n}")));
        sent.push(activity.id.clone());
        client.record(activity).unwrap();
    }
    let stats = flush(&client).await;
    assert_eq!(stats.retries, 1, "{stats:?}");
    assert_eq!(
        (stats.accepted, stats.duplicates),
        (0, 10),
        "the first attempt was stored, the retry found it: {stats:?}"
    );
    assert_eq!(proxy.requests().len(), 2);
    sent.sort();
    assert_eq!(ids(&signet.activities("columns=id").await), sent, "each event stored once");
}

#[tokio::test(flavor = "multi_thread")]
async fn busy_answers_are_retried_no_sooner_than_retry_after() {
    let (signet, _dir) = signet().await;
    let proxy = Proxy::start(
        &signet.base,
        vec![Fault::Busy { status: 429, retry_after: 1 }, Fault::Busy { status: 503, retry_after: 1 }],
    )
    .await;
    let client = fast(&proxy.base, &signet.ingest_key).build().unwrap();
    client.record(Activity::new("Create").user("sam@contoso.com").entity("contact", None)).unwrap();
    let stats = flush(&client).await;
    assert_eq!((stats.accepted, stats.retries), (1, 2), "{stats:?}");
    let times = proxy.requests();
    assert_eq!(times.len(), 3);
    for pair in times.windows(2) {
        let waited = pair[1].at.duration_since(pair[0].at);
        assert!(waited >= Duration::from_millis(950), "retried after {waited:?}, before Retry-After: 1");
    }
    assert_eq!(signet.activities("columns=id").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_spool_keeps_events_across_a_restart_while_signet_is_unreachable() {
    let spool = tempfile::tempdir().unwrap();
    let nowhere = unreachable().await;
    let first = fast(&nowhere, "sgk_unused").spool_dir(spool.path()).batch_size(50).build().unwrap();
    let mut sent = Vec::new();
    for n in 0..120 {
        let activity = Activity::new("Retrieve").user("alex@contoso.com").entity("account", Some(format!("a-{n}")));
        sent.push(activity.id.clone());
        first.record(activity).unwrap();
    }
    let report = first.shutdown(Duration::from_millis(300)).await;
    assert_eq!((report.undelivered, report.spooled), (120, true));
    let segments = std::fs::read_dir(spool.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("seg-"))
        .count();
    assert!(segments >= 3, "120 events in batches of 50 are at least 3 segments, found {segments} files");

    // The application starts again; Signet is back.
    let (signet, _dir) = signet().await;
    let second = fast(&signet.base, &signet.ingest_key).spool_dir(spool.path()).build().unwrap();
    assert_eq!(second.stats().pending, 120, "the spool is picked up");
    let stats = flush(&second).await;
    assert_eq!((stats.accepted, stats.pending), (120, 0), "{stats:?}");
    sent.sort();
    assert_eq!(ids(&signet.activities("columns=id").await), sent);
    let left: Vec<_> = std::fs::read_dir(spool.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        .collect();
    assert!(left.is_empty(), "delivered segments are removed: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_cut_short_by_a_crash_is_skipped_and_the_rest_delivered() {
    let spool = tempfile::tempdir().unwrap();
    let whole = |n: u32| {
        let event: Event =
            Activity::new("Retrieve").user("alex@contoso.com").entity("account", Some(n.to_string())).into();
        json!({ "kind": "activity", "event": event.json() }).to_string()
    };
    let torn = &whole(3)[..40];
    let content = format!("{}\n{}\n{torn}", whole(1), whole(2));
    std::fs::write(spool.path().join("seg-00000000000000000007.ndjson"), content).unwrap();
    let (signet, _dir) = signet().await;
    let client = fast(&signet.base, &signet.ingest_key).spool_dir(spool.path()).build().unwrap();
    let stats = flush(&client).await;
    assert_eq!((stats.accepted, stats.rejected), (2, 0), "{stats:?}");
    // New events go after the old segment, not into it.
    client.record(Activity::new("Create").user("alex@contoso.com").entity("account", None)).unwrap();
    assert_eq!(flush(&client).await.accepted, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_records_are_reported_and_the_rest_stored() {
    let spool = tempfile::tempdir().unwrap();
    let (signet, _dir) = signet().await;
    let client = fast(&signet.base, &signet.ingest_key).spool_dir(spool.path()).build().unwrap();
    client.record(Activity::new("Retrieve").user("alex@contoso.com").entity("account", None)).unwrap();
    let mut bad = Map::new();
    bad.insert("CreationTime".into(), "yesterday-ish".into());
    bad.insert("Operation".into(), "Retrieve".into());
    let bad = Event::from_json(Kind::Activity, bad);
    let bad_id = bad.id().to_string();
    client.record(bad).unwrap();
    let stats = flush(&client).await;
    assert_eq!((stats.accepted, stats.rejected, stats.pending), (1, 1, 0), "{stats:?}");
    let rejections = client.rejections();
    assert_eq!(rejections.len(), 1);
    assert_eq!((rejections[0].id.as_str(), rejections[0].field.as_str()), (bad_id.as_str(), "CreationTime"));
    let kept = std::fs::read_to_string(spool.path().join("rejected.ndjson")).unwrap();
    let record: Value = serde_json::from_str(kept.lines().next().unwrap()).unwrap();
    assert_eq!(record["event"]["CreationTime"], "yesterday-ish", "the refused event is kept whole: {record}");
    assert_eq!(record["rejection"]["field"], "CreationTime");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_spool_refuses_new_events_instead_of_dropping_old_ones() {
    let nowhere = unreachable().await;
    let client = fast(&nowhere, "sgk_unused").max_pending_events(3).build().unwrap();
    for _ in 0..3 {
        client.record(Activity::new("Retrieve").user("a@contoso.com")).unwrap();
    }
    let refused = client.record(Activity::new("Retrieve").user("a@contoso.com"));
    assert!(matches!(refused, Err(SdkError::Full { pending: 3 })), "{refused:?}");
    let stats = client.stats();
    assert_eq!((stats.recorded, stats.refused, stats.pending), (3, 1, 3));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(client.stats().last_error.is_some(), "the failure to reach Signet is visible");
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_larger_than_signet_takes_are_split() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig { max_body_bytes: 4096, ..ServerConfig::default() };
    let signet = TestSignet::start(dir.path(), config).await;
    let proxy = Proxy::start(&signet.base, Vec::new()).await;
    let client = fast(&proxy.base, &signet.ingest_key).build().unwrap();
    for n in 0..40 {
        let activity = Activity::new("Update").user("sam@contoso.com").message(format!("{n} {}", "x".repeat(300)));
        client.record(activity).unwrap();
    }
    let stats = flush(&client).await;
    assert_eq!((stats.accepted, stats.rejected), (40, 0), "{stats:?}");
    assert!(proxy.requests().len() >= 7, "24 KB in requests of at most 4 KB: {} requests", proxy.requests().len());
    assert_eq!(signet.activities("columns=id").await.len(), 40);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ingest_key_reads_its_organisations_audit_settings() {
    let (signet, _dir) = signet().await;
    let client = fast(&signet.base, &signet.ingest_key).build().unwrap();
    let settings = client.refresh_audit_settings().await.unwrap();
    assert_eq!((settings.user_access_auditing_interval, settings.is_audit_enabled), (4, true));
    let changed = json!({ "userAccessAuditingInterval": 8, "entities": { "Account": { "singleRecordAudit": false } } });
    assert_eq!(signet.put_audit_settings(&changed).await, 200);
    let settings = client.refresh_audit_settings().await.unwrap();
    assert_eq!(settings.user_access_auditing_interval, 8);
    assert!(!settings.records(signet_sdk::settings::Access::Read, "account"));
    assert_eq!(client.audit_settings().as_deref(), Some(&*settings), "cached");
    let wrong = fast(&signet.base, "sgk_not-a-key").build().unwrap();
    assert!(wrong.refresh_audit_settings().await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn one_client_per_spool_directory() {
    let spool = tempfile::tempdir().unwrap();
    let nowhere = unreachable().await;
    let first = fast(&nowhere, "sgk_unused").spool_dir(spool.path()).build().unwrap();
    let second = fast(&nowhere, "sgk_unused").spool_dir(spool.path()).build();
    assert!(matches!(&second, Err(SdkError::Spool(m)) if m.contains("in use")), "{:?}", second.err());
    first.shutdown(Duration::from_millis(50)).await;
    fast(&nowhere, "sgk_unused").spool_dir(spool.path()).build().expect("free again once the first client stopped");
}
