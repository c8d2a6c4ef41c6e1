use std::time::Duration;

use signet_model::{normalize, LogKind};
use signet_query::Expr;
use signet_store::conformance::signin_json;
use signet_store::{Engine, IngestConfig, StoreError};

fn event(id: &str, code: i64) -> signet_model::Event {
    normalize(LogKind::SignIn, signin_json(id, 1, "alice@contoso.com", "Outlook", code, "").as_bytes()).unwrap()
}

fn count(engine: &Engine) -> u64 {
    assert!(engine.wait_visible(Duration::from_secs(10)), "projection did not catch up");
    engine.store().count("default", LogKind::SignIn, &Expr::True).unwrap()
}

#[test]
fn duplicates_and_revisions_through_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
    let first = engine.pipeline().submit_blocking("default", vec![event("a", 0), event("b", 50126)]).unwrap();
    assert_eq!((first.accepted, first.duplicates, first.revisions), (2, 0, 0));
    let again = engine.pipeline().submit_blocking("default", vec![event("a", 0), event("b", 0)]).unwrap();
    assert_eq!((again.accepted, again.duplicates, again.revisions), (1, 1, 1), "a is a duplicate, b a revision");
    assert_eq!(count(&engine), 2);
    let detail = engine.detail("default", LogKind::SignIn, "b").unwrap().unwrap();
    assert_eq!(detail.revisions.len(), 2);
    assert_eq!(detail.revisions[0].body["status"]["errorCode"], 50126);
    assert_eq!(detail.revisions[1].body["status"]["errorCode"], 0);
    // Another organisation may use the same id.
    let other = engine.pipeline().submit_blocking("other", vec![event("a", 0)]).unwrap();
    assert_eq!(other.accepted, 1);
}

/// Bytes whose owner says when it is dropped (as an HTTP request's pooled buffer returns to
/// its pool).
struct Owner(Vec<u8>, std::sync::Arc<std::sync::atomic::AtomicBool>);

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Slow to let go: a drop after the acknowledgement is seen as not yet done.
        std::thread::sleep(Duration::from_millis(100));
        self.1.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn the_bodies_of_a_request_are_let_go_before_it_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let text = [
        signin_json("a", 1, "alice@contoso.com", "Outlook", 0, ""),
        signin_json("b", 1, "bob@contoso.com", "Teams", 0, ""),
    ];
    let body = bytes::Bytes::from_owner(Owner(text.join("\n").into_bytes(), dropped.clone()));
    let split = text[0].len();
    let events = [body.slice(..split), body.slice(split + 1..)]
        .iter()
        .map(|record| signet_model::normalize_shared(LogKind::SignIn, record, None).unwrap())
        .collect();
    drop(body);
    assert!(!dropped.load(std::sync::atomic::Ordering::SeqCst), "the events hold the body");
    let outcome = engine.pipeline().submit_blocking("default", events).unwrap();
    assert_eq!(outcome.accepted, 2);
    assert!(dropped.load(std::sync::atomic::Ordering::SeqCst), "the buffer was given back before the acknowledgement");
    assert_eq!(count(&engine), 2);
}

#[test]
fn resending_an_older_revision_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
        let pipeline = engine.pipeline();
        assert_eq!(pipeline.submit_blocking("default", vec![event("x", 50074)]).unwrap().accepted, 1);
        assert_eq!(pipeline.submit_blocking("default", vec![event("x", 0)]).unwrap().revisions, 1);
        let again = pipeline.submit_blocking("default", vec![event("x", 50074), event("x", 0)]).unwrap();
        assert_eq!((again.accepted, again.duplicates), (0, 2), "both versions are already stored");
        engine.shutdown();
    }
    let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
    let again = engine.pipeline().submit_blocking("default", vec![event("x", 50074)]).unwrap();
    assert_eq!(again.duplicates, 1, "older revisions are remembered across restarts");
    assert_eq!(engine.detail("default", LogKind::SignIn, "x").unwrap().unwrap().revisions.len(), 2);
}

#[test]
fn a_record_written_in_another_key_order_or_escaping_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
    let pipeline = engine.pipeline();
    let first = r#"{"id":"k","createdDateTime":"2026-11-20T08:00:00Z","userDisplayName":"Zoë","status":{"errorCode":0,"failureReason":null}}"#;
    // As a shipper that parses and writes records again may send it: other member order,
    // whitespace, escapes and number spelling.
    let again = r#"{ "status": {"failureReason": null, "errorCode": 0.0},
        "userDisplayName": "Zo\u00eb", "createdDateTime": "2026-11-20T08:00:00Z", "id": "k" }"#;
    let changed =
        r#"{"id":"k","createdDateTime":"2026-11-20T08:00:00Z","userDisplayName":"Zoë","status":{"errorCode":50126}}"#;
    let submit = |json: &str| {
        pipeline.submit_blocking("default", vec![normalize(LogKind::SignIn, json.as_bytes()).unwrap()]).unwrap()
    };
    assert_eq!(submit(first).accepted, 1);
    assert_eq!(submit(again).duplicates, 1);
    assert_eq!(submit(changed).revisions, 1);
}

#[test]
fn a_record_stored_with_the_legacy_hash_is_a_duplicate_when_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
    let pipeline = engine.pipeline();
    // Stored by a version that hashed the minified text.
    let mut old = event("old", 0);
    old.content_hash = signet_model::json::legacy_content_hash(&old.body);
    assert_ne!(old.content_hash, event("old", 0).content_hash);
    assert_eq!(pipeline.submit_blocking("default", vec![old]).unwrap().accepted, 1);
    let again = pipeline.submit_blocking("default", vec![event("old", 0)]).unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 1));
    let changed = pipeline.submit_blocking("default", vec![event("old", 50126)]).unwrap();
    assert_eq!(changed.revisions, 1);
}

#[test]
fn restart_keeps_everything_and_the_duplicate_index() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
        let events: Vec<_> = (0..1000).map(|i| event(&format!("e{i}"), 0)).collect();
        engine.pipeline().submit_blocking("default", events).unwrap();
        engine.shutdown();
    }
    let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
    assert_eq!(count(&engine), 1000);
    let again = engine.pipeline().submit_blocking("default", vec![event("e5", 0)]).unwrap();
    assert_eq!(again.duplicates, 1, "the duplicate index is rebuilt on open");
}

#[test]
fn a_start_reads_the_index_snapshot_and_the_revisions_stored_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("version-index.snap");
    let batch = |ids: std::ops::Range<u32>, code| ids.map(|i| event(&format!("e{i}"), code)).collect::<Vec<_>>();
    let open = || Engine::open(dir.path(), IngestConfig::default()).unwrap();
    {
        let engine = open();
        engine.pipeline().submit_blocking("default", batch(0..300, 0)).unwrap();
        engine.shutdown();
    }
    let covers_the_first = std::fs::read(&snapshot).expect("the index is saved at shutdown");
    {
        let engine = open();
        let more = engine.pipeline().submit_blocking("default", [batch(300..500, 0), batch(0..50, 50126)].concat());
        let more = more.unwrap();
        assert_eq!((more.accepted, more.revisions), (250, 50));
        engine.shutdown();
    }
    let everything = || [batch(0..500, 0), batch(0..50, 50126)].concat();
    // As after a crash before the second save: a snapshot older than the store.
    std::fs::write(&snapshot, &covers_the_first).unwrap();
    {
        let engine = open();
        let again = engine.pipeline().submit_blocking("default", everything()).unwrap();
        assert_eq!((again.accepted, again.duplicates), (0, 550), "the revisions after the snapshot are read");
        engine.shutdown();
    }
    // A damaged snapshot is ignored: the index comes from the store.
    let mut damaged = std::fs::read(&snapshot).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    std::fs::write(&snapshot, &damaged).unwrap();
    let engine = open();
    let again = engine.pipeline().submit_blocking("default", everything()).unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 550));
    assert_eq!(count(&engine), 500);
    // Once revisions are forgotten (archive deleted), this process's index (which still holds
    // them) is never saved again: the next start reads the store.
    engine.pipeline().submit_blocking("default", batch(500..510, 0)).unwrap();
    engine.forget(&[]).unwrap();
    assert!(!snapshot.exists());
    engine.shutdown();
    assert!(!snapshot.exists(), "not saved at shutdown either");
}

#[test]
fn a_start_trusts_the_index_deltas_saved_after_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let batch = |ids: std::ops::Range<u32>, code| ids.map(|i| event(&format!("e{i}"), code)).collect::<Vec<_>>();
    let open = || Engine::open(dir.path(), IngestConfig::default()).unwrap();
    {
        let engine = open();
        // 100,000 new ids: the process's first save, the whole index.
        for start in (0..100_000).step_by(10_000) {
            engine.pipeline().submit_blocking("default", batch(start..start + 10_000, 0)).unwrap();
        }
        // New ids and new revisions of ids the snapshot holds: saved at shutdown as a delta.
        let more = [batch(100_000..140_000, 0), batch(0..10_000, 50126)].concat();
        let more = engine.pipeline().submit_blocking("default", more).unwrap();
        assert_eq!((more.accepted, more.revisions), (50_000, 10_000));
        engine.shutdown();
    }
    let deltas = std::fs::metadata(dir.path().join("version-index.delta")).expect("a delta follows the snapshot");
    assert!(deltas.len() > 50_000 * 28, "{} bytes", deltas.len());
    // The delta covers the whole log, so the start takes the revisions of ids e0..e9999 and
    // the ids from e100000 on from it alone: each answer below depends on it being right.
    let engine = open();
    let latest = engine.pipeline().submit_blocking("default", batch(0..10_000, 50126)).unwrap();
    assert_eq!((latest.accepted, latest.duplicates), (0, 10_000), "the latest revisions are known");
    let older = engine.pipeline().submit_blocking("default", batch(0..10_000, 0)).unwrap();
    assert_eq!((older.accepted, older.duplicates), (0, 10_000), "so are the revisions they replaced");
    let third = engine.pipeline().submit_blocking("default", batch(0..10, 50074)).unwrap();
    assert_eq!((third.accepted, third.revisions), (10, 10));
    let new_in_delta = engine.pipeline().submit_blocking("default", batch(100_000..140_000, 0)).unwrap();
    assert_eq!(new_in_delta.duplicates, 40_000);
    assert_eq!(count(&engine), 140_000);
    assert_eq!(engine.detail("default", LogKind::SignIn, "e3").unwrap().unwrap().revisions.len(), 3);
}

#[test]
fn a_lost_projection_is_rebuilt_from_the_event_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
        let events: Vec<_> = (0..500).map(|i| event(&format!("e{i}"), if i % 2 == 0 { 0 } else { 50126 })).collect();
        engine.pipeline().submit_blocking("default", events).unwrap();
        engine.pipeline().submit_blocking("default", vec![event("e1", 0)]).unwrap();
        engine.shutdown();
    }
    // The event log is the source of truth: remove the database and reopen.
    std::fs::remove_file(dir.path().join("signet.duckdb")).unwrap();
    let _ = std::fs::remove_file(dir.path().join("signet.duckdb.wal"));
    let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
    assert_eq!(count(&engine), 500);
    assert_eq!(engine.detail("default", LogKind::SignIn, "e1").unwrap().unwrap().revisions.len(), 2);
    let failures = signet_query::native::filter(LogKind::SignIn, &[("status".into(), "failure".into())], 0).unwrap();
    assert_eq!(
        engine.store().count("default", LogKind::SignIn, &failures).unwrap(),
        249,
        "e1's latest revision is a success"
    );
}

#[test]
fn a_second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
    match Engine::open(dir.path(), IngestConfig::default()) {
        Err(StoreError::Locked { .. }) => {}
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("a second engine opened the same data directory"),
    }
}

#[test]
fn overload_is_refused_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let config = IngestConfig { max_in_flight_events: 1000, ..IngestConfig::default() };
    let engine = Engine::open(dir.path(), config).unwrap();
    let batches: Vec<Vec<_>> = (0..200).map(|b| (0..400).map(|i| event(&format!("b{b}-{i}"), 0)).collect()).collect();
    let mut receivers = Vec::new();
    let mut refused = 0;
    for events in batches {
        match engine.pipeline().submit("default", events) {
            Ok(receiver) => receivers.push(receiver),
            Err(StoreError::Overloaded { retry_after_secs }) => {
                assert!(retry_after_secs >= 1);
                refused += 1;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    let mut acknowledged = 0;
    for receiver in receivers {
        acknowledged += receiver.blocking_recv().unwrap().unwrap().accepted;
    }
    assert!(refused > 0, "a 1000-event queue must refuse some of 200 batches of 400 submitted at once");
    assert_eq!(count(&engine) as usize, acknowledged, "every acknowledged event is stored, nothing else");
}

#[test]
fn admission_holds_room_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let config = IngestConfig { max_in_flight_bytes: 100_000, ..IngestConfig::default() };
    let engine = Engine::open(dir.path(), config).unwrap();
    let pipeline = engine.pipeline();
    // Into an empty queue any size is admitted, as submit accepts any batch there.
    let large = pipeline.admit(1_000_000).expect("an empty queue admits any size");
    assert!(pipeline.admit(1).is_none(), "nothing fits beside it");
    drop(large);
    let first = pipeline.admit(60_000).unwrap();
    assert!(pipeline.admit(60_000).is_none(), "60,000 + 60,000 bytes exceed the 100,000-byte budget");
    let small = pipeline.admit(40_000).expect("60,000 + 40,000 fit");
    first.release();
    first.release(); // once only: the room is not given back twice
    assert_eq!(pipeline.metrics().admitted_bytes.load(std::sync::atomic::Ordering::Acquire), 40_000);
    assert!(pipeline.admit(60_000).is_some(), "released room is available again");
    drop(small);
    assert_eq!(pipeline.metrics().admitted_bytes.load(std::sync::atomic::Ordering::Acquire), 0);
}

#[test]
fn a_newer_layout_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("VERSION"), "{\"layout\": 99}").unwrap();
    match Engine::open(dir.path(), IngestConfig::default()) {
        Err(StoreError::UnsupportedVersion { found: 99, .. }) => {}
        Err(other) => panic!("expected UnsupportedVersion, got {other}"),
        Ok(_) => panic!("opened a data directory from the future"),
    }
}

/// A data directory written by layout version 1 (event log only; the DuckDB projection is
/// rebuilt on open) must always open and read the same. Regenerate nothing here: if this test
/// fails, a change broke the on-disk format and needs a migration.
#[test]
fn layout_v1_fixture_opens() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layout-v1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture.join("VERSION"), dir.path().join("VERSION")).unwrap();
    std::fs::create_dir(dir.path().join("log")).unwrap();
    for entry in std::fs::read_dir(fixture.join("log")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join("log").join(path.file_name().unwrap())).unwrap();
    }
    let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
    assert_eq!(count(&engine), 2);
    let success = signet_query::native::filter(LogKind::SignIn, &[("status".into(), "success".into())], 0).unwrap();
    assert_eq!(
        engine.store().count("default", LogKind::SignIn, &success).unwrap(),
        2,
        "fixture-2's latest revision succeeded"
    );
    let detail = engine.detail("default", LogKind::SignIn, "fixture-2").unwrap().unwrap();
    assert_eq!(detail.revisions.len(), 2);
    assert_eq!(detail.revisions[0].body["status"]["errorCode"], 50126);
    assert_eq!(engine.store().count("default", LogKind::DirectoryAudit, &Expr::True).unwrap(), 1);
    assert_eq!(engine.store().count("default", LogKind::Activity, &Expr::True).unwrap(), 1);
    let again = engine.pipeline().submit_blocking("default", vec![event("fixture-1", 0)]).unwrap();
    assert_eq!(again.revisions, 1, "a different body under a fixture id is a new revision");
}

/// Copies what a crash would leave of a running engine's data directory (the event log is
/// fsynced before anything is acknowledged; DuckDB's file holds its last checkpoint).
fn crash_image(dir: &std::path::Path) -> tempfile::TempDir {
    let image = tempfile::tempdir().unwrap();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(from) = stack.pop() {
        for entry in std::fs::read_dir(&from).unwrap() {
            let entry = entry.unwrap();
            let to = image.path().join(entry.path().strip_prefix(dir).unwrap());
            if entry.file_type().unwrap().is_dir() {
                std::fs::create_dir_all(&to).unwrap();
                stack.push(entry.path());
            } else if entry.file_name() != "LOCK" {
                std::fs::copy(entry.path(), to).unwrap();
            }
        }
    }
    image
}

#[test]
fn a_crash_loses_only_uncheckpointed_projection_which_the_event_log_redoes() {
    let dir = tempfile::tempdir().unwrap();
    let config = IngestConfig { settle_after_idle: Duration::from_secs(3600), ..IngestConfig::default() };
    let engine = Engine::open(dir.path(), config.clone()).unwrap();
    let events: Vec<_> = (0..30_000).map(|i| event(&format!("c{i}"), 0)).collect();
    engine.pipeline().submit_blocking("default", events).unwrap();
    assert!(engine.wait_visible(Duration::from_secs(30)));
    assert_eq!(count(&engine), 30_000);
    let image = crash_image(dir.path());
    assert!(!image.path().join("signet.duckdb.wal").exists(), "DuckDB writes no WAL of its own");
    {
        // The file alone: the projection's commits since the last checkpoint are not in it.
        let store = signet_store::duck::DuckStore::open(&image.path().join("signet.duckdb")).unwrap();
        use signet_store::EventStore;
        assert!(store.count("default", LogKind::SignIn, &Expr::True).unwrap() < 30_000);
    }
    let restarted = Engine::open(image.path(), config).unwrap();
    assert!(restarted.wait_visible(Duration::from_secs(30)));
    assert_eq!(count(&restarted), 30_000, "applied again from the event log");
    let events: Vec<_> = (0..30_000).map(|i| event(&format!("c{i}"), 0)).collect();
    let outcome = restarted.pipeline().submit_blocking("default", events).unwrap();
    assert_eq!(outcome.duplicates, 30_000, "the version index knows every acknowledged event");
}

#[test]
fn a_wal_left_by_an_earlier_version_is_replayed_and_checkpointed_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signet.duckdb");
    let conn = duckdb::Connection::open(&path).unwrap();
    conn.execute_batch(
        "SET wal_autocheckpoint = '1GB'; CREATE TABLE earlier (n BIGINT); CHECKPOINT; \
         INSERT INTO earlier SELECT * FROM range(1000)",
    )
    .unwrap();
    // The files as a crash of that version leaves them: the insert is only in the WAL.
    let image = tempfile::tempdir().unwrap();
    for file in ["signet.duckdb", "signet.duckdb.wal"] {
        std::fs::copy(dir.path().join(file), image.path().join(file)).unwrap();
    }
    drop(conn);
    let store = signet_store::duck::DuckStore::open(&image.path().join("signet.duckdb")).unwrap();
    assert!(!image.path().join("signet.duckdb.wal").exists(), "replayed and checkpointed at once");
    drop(store);
    let reopened = duckdb::Connection::open(image.path().join("signet.duckdb")).unwrap();
    let n: i64 = reopened.query_row("SELECT count(*) FROM earlier", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1000);
}

#[test]
fn an_idle_store_checkpoints_what_a_burst_left_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = IngestConfig { settle_after_idle: Duration::from_millis(200), ..IngestConfig::default() };
    let engine = Engine::open(dir.path(), config).unwrap();
    let events: Vec<_> = (0..5000).map(|i| event(&format!("w{i}"), 0)).collect();
    engine.pipeline().submit_blocking("default", events).unwrap();
    assert_eq!(count(&engine), 5000);
    // Below the 256 MB autocheckpoint, the burst is in the file only once the store is idle.
    let in_file = || {
        let image = crash_image(dir.path());
        let store = signet_store::duck::DuckStore::open(&image.path().join("signet.duckdb")).unwrap();
        use signet_store::EventStore;
        store.count("default", LogKind::SignIn, &Expr::True).unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while in_file() < 5000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(in_file(), 5000, "checkpointed once ingest went idle");
    assert_eq!(count(&engine), 5000);
}

#[test]
fn light_traffic_after_a_burst_does_not_put_off_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = IngestConfig {
        settle_after_idle: Duration::from_millis(300),
        projection_interval: Duration::from_millis(10),
        ..IngestConfig::default()
    };
    let engine = Engine::open(dir.path(), config).unwrap();
    let events: Vec<_> = (0..5000).map(|i| event(&format!("b{i}"), 0)).collect();
    engine.pipeline().submit_blocking("default", events).unwrap();
    let in_file = || {
        let image = crash_image(dir.path());
        let store = signet_store::duck::DuckStore::open(&image.path().join("signet.duckdb")).unwrap();
        use signet_store::EventStore;
        store.count("default", LogKind::SignIn, &Expr::True).unwrap()
    };
    // An event every 50 ms, never 300 ms without one (what queries' access log looks like).
    let started = std::time::Instant::now();
    let mut trickled: u64 = 0;
    while in_file() < 5000 && started.elapsed() < Duration::from_secs(20) {
        for _ in 0..4 {
            engine.pipeline().submit_blocking("default", vec![event(&format!("t{trickled}"), 0)]).unwrap();
            trickled += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(in_file() >= 5000, "the burst was checkpointed while the trickle went on ({trickled} events)");
    assert!(engine.wait_visible(Duration::from_secs(10)));
    assert_eq!(count(&engine), 5000 + trickled);
}

#[test]
fn a_large_batch_is_projected_at_once_and_a_small_one_at_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let config = IngestConfig {
        projection_interval: Duration::from_secs(3),
        projection_eager_events: 3,
        ..IngestConfig::default()
    };
    let engine = Engine::open(dir.path(), config).unwrap();
    let visible = |n: u64| engine.store().count("default", LogKind::SignIn, &Expr::True).unwrap() == n;
    let pipeline = engine.pipeline();
    // Below the eager size: applied when the interval ends, not before.
    pipeline.submit_blocking("default", vec![event("a", 0), event("b", 0)]).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(visible(0), "a small batch waits for the interval to gather more");
    assert!(engine.wait_visible(Duration::from_secs(10)));
    assert!(visible(2));
    // At the eager size: applied as soon as it is committed (well inside the interval).
    let started = std::time::Instant::now();
    pipeline.submit_blocking("default", vec![event("c", 0), event("d", 0), event("e", 0)]).unwrap();
    assert!(engine.wait_visible(Duration::from_secs(10)));
    assert!(visible(5));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn an_urgent_request_is_committed_ahead_of_batches_held_back_by_the_projection() {
    let dir = tempfile::tempdir().unwrap();
    // One committed event unprojected holds the writer back, and the projector waits 3 s to
    // gather small batches: a batch submitted now waits for that projection.
    let config = IngestConfig {
        max_unprojected_events: 1,
        projection_interval: Duration::from_secs(3),
        projection_eager_events: 1000,
        ..IngestConfig::default()
    };
    let engine = Engine::open(dir.path(), config).unwrap();
    let pipeline = engine.pipeline();
    pipeline.submit_blocking("default", vec![event("a", 0), event("b", 0)]).unwrap();
    let mut held = pipeline.submit("default", vec![event("c", 0)]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(held.try_recv().is_err(), "the batch waits for the projection");
    let urgent = pipeline.submit_urgent("default", vec![event("d", 0)]).unwrap();
    let outcome = urgent.blocking_recv().unwrap().unwrap();
    assert_eq!(outcome.accepted, 1);
    assert!(held.try_recv().is_err(), "the urgent request did not wait for the batch before it");
    // The batch is committed once the projection catches up, and nothing is lost or doubled.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let outcome = loop {
        match held.try_recv() {
            Ok(outcome) => break outcome.unwrap(),
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(err) => panic!("the held batch was never committed: {err}"),
        }
    };
    assert_eq!(outcome.accepted, 1);
    assert!(engine.wait_visible(Duration::from_secs(10)));
    assert_eq!(count(&engine), 4);
    drop(engine);
    let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
    assert_eq!(count(&engine), 4, "all four durable");
}

/// What a crash leaves when the last checkpoint followed a projection batch that ended inside
/// a log frame (the projector cuts full batches at whole row groups, wherever the frames end):
/// the file holds the frame's first records and says how many. Made here from a complete file,
/// since a real crash lands on that moment only by chance.
#[test]
fn a_restart_after_a_batch_cut_inside_a_frame_applies_the_rest_of_the_frame_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
        let events: Vec<_> = (0..3000).map(|i| event(&format!("f{i}"), 0)).collect();
        engine.pipeline().submit_blocking("default", events).unwrap();
        engine.shutdown();
    }
    let path = dir.path().join("signet.duckdb");
    let (frame, records, held) = {
        let conn = duckdb::Connection::open(&path).unwrap();
        let frames: Vec<(i64, i64)> = conn
            .prepare("SELECT log_pos, count(*) FROM signins GROUP BY log_pos ORDER BY log_pos")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(frames.len() >= 3, "the batch spans frames: {frames:?}");
        let (frame, records) = frames[1];
        assert!(records >= 2, "a frame of several records: {frames:?}");
        let held = records / 2;
        // The crash image: the frame's first `held` records applied, nothing after them.
        conn.execute_batch(&format!(
            "DELETE FROM signins WHERE log_pos > {frame} OR (log_pos = {frame} AND log_idx >= {held}); \
             UPDATE signet_meta SET value = CASE key WHEN 'applied_position' THEN '{frame}' ELSE '{held}' END \
             WHERE key IN ('applied_position', 'applied_in_frame'); CHECKPOINT"
        ))
        .unwrap();
        (frame, records, held)
    };
    let engine = Engine::open(dir.path(), IngestConfig::default()).unwrap();
    assert_eq!(count(&engine), 3000, "frame {frame} cut after {held} of its {records} records");
    drop(engine); // checkpointed as DuckDB closes the file
    let conn = duckdb::Connection::open(&path).unwrap();
    let (rows, distinct, in_frame): (i64, i64, i64) = conn
        .query_row(
            &format!("SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE log_pos = {frame}) FROM signins"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((rows, distinct), (3000, 3000), "every sign-in once");
    assert_eq!(in_frame, records, "the cut frame whole again");
}
