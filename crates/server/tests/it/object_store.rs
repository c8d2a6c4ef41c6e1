//! The archive and scheduled exports in an S3-compatible object store: moto's S3 server (PyPI
//! `moto[server]`, which `.ci/run` installs) on a loopback port, spoken to over HTTP with
//! signed requests, as to AWS S3 or MinIO.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use signet_server::ServerConfig;
use signet_store::archive::{day_start, verify_archive, Archive, ObjectStoreSettings, Remote};

use crate::retention::{answers, put_policy, signin_at};
use crate::TestServer;

const DAY_US: i64 = 86_400_000_000;

/// One moto S3 server, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto[server] (PyPI; .ci/run installs it)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let moto = Moto { child, endpoint, dir: tempfile::tempdir().unwrap() };
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::get(&moto.endpoint).await.is_err() {
            assert!(Instant::now() < deadline, "moto did not start: python3 -m moto.server -p {port}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        std::fs::write(moto.dir.path().join("secret"), "moto-secret\n").unwrap();
        moto
    }

    async fn bucket(&self, name: &str) {
        let response = reqwest::Client::new().put(format!("{}/{name}", self.endpoint)).send().await.unwrap();
        assert!(response.status().is_success(), "creating bucket {name}: {}", response.status());
    }

    fn settings(&self, url: &str) -> ObjectStoreSettings {
        ObjectStoreSettings {
            url: url.into(),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            allow_http: true,
            access_key_id: Some("signet-test".into()),
            secret_access_key_file: Some(self.dir.path().join("secret")),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_archive_is_kept_in_an_object_store_and_rebuilt_from_it() {
    let moto = Moto::start().await;
    moto.bucket("audit").await;
    let store = moto.settings("s3://audit/signet/prod");
    let config =
        ServerConfig { archive_store: Some(store.clone()), retention_interval: None, ..ServerConfig::default() };
    let server = TestServer::start_with(config.clone()).await;
    let base = signet_model::time::now_micros();
    let lines: Vec<String> = (0..60).flat_map(|day| (0..3).map(move |n| signin_at(base, day, n, "").0)).collect();
    let (status, answer) = server.post("/api/v1/signins", "application/x-ndjson", lines.join("\n")).await;
    assert_eq!(status, 200, "{answer}");
    server.settle().await;
    let admin = server.session("default", "admin@example.com", None).await;
    server.settle().await;
    let (from, to) =
        (signet_model::time::format_time(base - 100 * DAY_US), signet_model::time::format_time(base + DAY_US));
    let before = answers(&server, &from, &to).await;
    assert_eq!(before.ids.len(), 180);

    put_policy(&server, &admin, json!({ "signins": { "hotDays": 20, "archiveDays": 40 } })).await;
    let run = |now: i64| {
        let job = server.state.retention.clone();
        let engine = server.engine.clone();
        async move { tokio::task::spawn_blocking(move || job.run(&engine, None, now).unwrap()).await.unwrap() }
    };
    let report = run(base).await;
    let moved: u64 = report.partitions.iter().map(|p| p.removed).sum();
    assert!(moved > 100, "{report:?}");

    // Every part and manifest is in the bucket, byte for byte, under the prefix.
    let archive = server.state.retention.archive.clone();
    let remote = archive.remote().expect("the archive has its object store");
    let manifests = archive.manifests().unwrap();
    let objects: BTreeSet<String> = remote.list().unwrap().into_iter().collect();
    assert_eq!(objects.len(), 2 * manifests.len(), "{objects:?}");
    for (path, manifest) in &manifests {
        let rel = path.strip_prefix(archive.root()).unwrap().display().to_string();
        assert_eq!(
            remote.get_bytes(&rel).unwrap().unwrap(),
            std::fs::read(path).unwrap(),
            "manifest {rel} in the bucket"
        );
        let part = std::path::Path::new(&rel).with_file_name(&manifest.file).display().to_string();
        assert_eq!(remote.sha256(&part).unwrap().as_deref(), Some(manifest.sha256.as_str()), "{part}");
    }
    let (_, view) = server.get("/api/v1/settings/retention").await;
    assert_eq!(view["archive"]["objectStore"], "s3://audit/signet/prod", "{view}");
    let key = server.engine.ledger().public_key();
    let (checked, problems) = verify_archive(&archive, server.engine.data_dir(), &key).unwrap();
    assert_eq!((checked, problems.len()), (manifests.len() as u64, 0), "{problems:?}");
    let after = answers(&server, &from, &to).await;
    assert!(
        after.ids == before.ids,
        "queries read the working copy: {:?}",
        after.ids.symmetric_difference(&before.ids).collect::<Vec<_>>()
    );
    assert_eq!(after.archived as u64, moved, "{report:?}");
    assert_eq!((after.timeline, after.top_apps), (before.timeline.clone(), before.top_apps.clone()));

    // A changed object in the bucket is caught, and a working copy refuses to take it.
    let (first_path, first) = &manifests[0];
    let first_part = first_path.with_file_name(&first.file);
    let first_rel = first_part.strip_prefix(archive.root()).unwrap().display().to_string();
    remote.put_bytes(&first_rel, b"PAR1 not the archived rows".to_vec()).unwrap();
    let (_, problems) = verify_archive(&archive, server.engine.data_dir(), &key).unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.detail.contains("object store's copy has SHA-256") && p.part.starts_with("s3://audit/")),
        "{problems:?}"
    );
    let fresh = tempfile::tempdir().unwrap();
    let copy = Archive::with_remote(fresh.path().join("archive"), Remote::open(&store).unwrap());
    let refused = tokio::task::spawn_blocking(move || copy.sync().map(|_| ())).await.unwrap();
    assert!(refused.unwrap_err().to_string().contains("its manifest says"), "a corrupt object is not taken");
    remote.put_file(&first_rel, &first_part).unwrap();

    // What an interrupted upload left (a part without its manifest) goes at the next run.
    let stray = "default/signins/2001-01-01/part-00000000000000000007.parquet";
    remote.put_bytes(stray, b"half written".to_vec()).unwrap();
    // Objects that are not the archive's, under the same prefix, are left alone.
    let unrelated = "weekly/weekly_20260101-20260108.parquet";
    remote.put_bytes(unrelated, b"an export".to_vec()).unwrap();
    let again = run(base).await;
    assert!(again.partitions.is_empty(), "{again:?}");
    assert_eq!(again.leftovers_removed, vec![format!("s3://audit/signet/prod/{stray}")]);
    assert_eq!(remote.get_bytes(stray).unwrap(), None);
    assert_eq!(remote.get_bytes(unrelated).unwrap().as_deref(), Some(&b"an export"[..]));
    let (_, problems) = verify_archive(&archive, server.engine.data_dir(), &key).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    remote.delete(unrelated).unwrap();

    // Another node (or this one after losing its disk) starts with an empty data directory:
    // its working copy is fetched from the bucket and the archived days answer as before.
    let other = TestServer::start_with(config.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, view) = other.get("/api/v1/settings/retention").await;
        if view["archive"]["parts"] == json!(manifests.len()) {
            break;
        }
        assert!(Instant::now() < deadline, "the working copy was not fetched: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rebuilt = answers(&other, &from, &to).await;
    assert_eq!(rebuilt.ids.len() as u64, moved, "every archived event, from the fetched copy");
    assert_eq!(rebuilt.archived as u64, moved);
    assert!(rebuilt.ids.is_subset(&before.ids));
    drop(other);

    // The archive period ends: the parts leave the bucket too (manifest first).
    let later = base + 30 * DAY_US;
    let report = run(later).await;
    assert!(!report.deleted_parts.is_empty(), "{report:?}");
    let end = day_start(later) - 60 * DAY_US;
    let left: Vec<String> = remote.list().unwrap();
    let kept = archive.manifests().unwrap();
    assert_eq!(left.len(), 2 * kept.len(), "{left:?}");
    let first_kept = signet_model::time::format_time(end)[..10].to_string();
    assert!(kept.iter().all(|(_, m)| m.day >= first_kept), "nothing older than {first_kept} is left");
    let (_, problems) = verify_archive(&archive, server.engine.data_dir(), &key).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_exports_can_go_to_an_object_store() {
    let moto = Moto::start().await;
    moto.bucket("exports").await;
    let store = moto.settings("s3://exports/weekly");
    let base = signet_model::time::now_micros();
    let start = signet_model::time::format_time(day_start(base) - 2 * DAY_US);
    let job: signet_server::scheduled_export::ExportJobSettings = serde_json::from_value(json!({
        "name": "signins", "kind": "signins", "format": "ndjson", "every_days": 1, "delay_hours": 0,
        "start": start, "store": store,
    }))
    .unwrap();
    let exports =
        std::sync::Arc::new(signet_server::scheduled_export::ScheduledExports::new(vec![job], "default").unwrap());
    let server = TestServer::start().await;
    let lines: Vec<String> = (0..3).flat_map(|day| (0..5).map(move |n| signin_at(base, day, n, "").0)).collect();
    let (status, answer) = server.post("/api/v1/signins", "application/x-ndjson", lines.join("\n")).await;
    assert_eq!(status, 200, "{answer}");
    server.settle().await;
    let engine = server.engine.clone();
    let written = {
        let exports = exports.clone();
        tokio::task::spawn_blocking(move || exports.run_due(&engine, base)).await.unwrap()
    };
    assert_eq!(written.len(), 2, "two whole days before today: {written:?}");

    let remote = Remote::open(&store).unwrap();
    let objects = tokio::task::spawn_blocking(move || {
        let names = remote.list().unwrap();
        let bytes: Vec<(String, Vec<u8>)> =
            names.iter().map(|n| (n.clone(), remote.get_bytes(n).unwrap().unwrap())).collect();
        bytes
    })
    .await
    .unwrap();
    assert_eq!(
        objects.len(),
        4,
        "a file and a manifest per window: {:?}",
        objects.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
    for manifest in &written {
        let file = objects.iter().find(|(n, _)| *n == format!("signins/{}", manifest.file)).expect("the file");
        use sha2::Digest;
        assert_eq!(hex::encode(sha2::Sha256::digest(&file.1)), manifest.sha256);
        let lines = String::from_utf8(file.1.clone()).unwrap().lines().count() as u64;
        assert_eq!((lines, manifest.rows), (5, 5), "{manifest:?}");
        let stem = manifest.file.trim_end_matches(".ndjson");
        let uploaded = objects.iter().find(|(n, _)| *n == format!("signins/{stem}.manifest.json")).expect("manifest");
        let uploaded: signet_server::scheduled_export::ExportManifest = serde_json::from_slice(&uploaded.1).unwrap();
        assert_eq!(&uploaded, manifest);
    }
    let staging = server.engine.data_dir().join("exports").join("staging").join("signins");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0, "nothing is left behind locally");
}
