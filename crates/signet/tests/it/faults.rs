//! Disk full and overload, against a real `signet serve`: the right status codes, nothing
//! acknowledged lost, and recovery by itself afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{create_key, signet, Server};

fn batch(tag: &str, n: usize, size: usize) -> (Vec<String>, Vec<serde_json::Value>) {
    let ids: Vec<String> = (0..size).map(|i| format!("{tag}-{n}-{i}")).collect();
    let body = ids
        .iter()
        .map(|id| {
            serde_json::json!({
                "id": id,
                "createdDateTime": "2026-11-01T10:00:00Z",
                "userPrincipalName": format!("{id}@contoso.com"),
                "userId": format!("uid-{id}"),
                "appDisplayName": "Fault test",
                "ipAddress": "10.1.2.3",
                "status": { "errorCode": 0 },
                // Incompressible filler, so that the disk fills at a useful pace.
                "correlationId": format!("{:032x}{:032x}", rand_like(id, 1), rand_like(id, 2)),
            })
        })
        .collect();
    (ids, body)
}

fn rand_like(text: &str, salt: u64) -> u128 {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d ^ u128::from(salt);
    for b in text.bytes() {
        h = (h ^ u128::from(b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
    }
    h
}

fn stored_ids(data: &Path) -> BTreeMap<String, u32> {
    let log = signet_store::EventLog::open_read_only(data.join("log")).unwrap();
    let mut seen = BTreeMap::new();
    log.scan(0, 50_000, |batch, _| {
        for (_, record) in batch {
            if record.kind == signet_model::LogKind::SignIn {
                *seen.entry(record.id).or_insert(0) += 1;
            }
        }
        Ok(())
    })
    .unwrap();
    seen
}

/// A tmpfs of a fixed size, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, megabytes: u64) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "signet-test", at.to_str().unwrap()])
            .status()
            .expect("run mount");
        assert!(status.success(), "the disk-full test mounts a small tmpfs and needs root (CI runs as root)");
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-l", self.0.to_str().unwrap()]).status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    signet_store::disk::disk_space(path).unwrap().free
}

#[test]
fn disk_full_refuses_with_507_keeps_reads_and_resumes_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), 96);
    let data = disk.0.join("data");
    std::fs::write(
        dir.path().join("signet.toml"),
        "min_free_disk_mb = 24\ndisk_warn_percent = [75, 90]\nhead_interval_seconds = 1\n",
    )
    .unwrap();
    let ingest = create_key(&data, &["--name", "loader", "--type", "ingest"]);
    let read = create_key(&data, &["--name", "reader", "--type", "read", "--role", "SecurityReader"]);
    let mut server = Server::start(dir.path(), &data);
    // Leave about 40 MiB: the reserve is 24 (room for the projection's own writes, which are
    // not refused, and for reads' access records).
    let ballast = disk.0.join("ballast");
    let fill = free_bytes(&disk.0).saturating_sub(40 << 20);
    std::fs::write(&ballast, vec![0xA5u8; fill as usize]).unwrap();

    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let post = |tag: &str, n: usize, size: usize| {
        let (ids, body) = batch(tag, n, size);
        let sent = http.post(format!("{}/api/v1/signins", server.base)).bearer_auth(&ingest).json(&body).send();
        let response = sent.unwrap_or_else(|e| {
            let log = server.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!("request failed: {e}\nserver log, newest first:\n{}", tail.join("\n"))
        });
        (ids, response)
    };
    let mut acked = Vec::new();
    let mut refused = 0;
    let started = Instant::now();
    let mut n = 0;
    while refused < 5 {
        assert!(started.elapsed() < Duration::from_secs(120), "the disk never filled: {}", server.log_text());
        let (ids, response) = post("fill", n, 400);
        n += 1;
        match response.status().as_u16() {
            200 => acked.extend(ids),
            507 => {
                refused += 1;
                assert!(response.headers().contains_key("retry-after"));
                let body: serde_json::Value = response.json().unwrap();
                assert_eq!(body["error"]["code"], "InsufficientStorage", "{body}");
            }
            503 => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("unexpected {other}: {}", response.text().unwrap_or_default()),
        }
    }
    assert!(acked.len() >= 400, "some batches were stored before the disk filled");
    // Reads keep working (and are still audited, out of the reserve).
    let list = http.get(format!("{}/api/v1/signins?$top=5", server.base)).bearer_auth(&read).send().unwrap();
    assert_eq!(list.status().as_u16(), 200);
    let verify = signet(&["verify"], &data);
    assert!(verify.status.success(), "verify works on a full disk: {}", String::from_utf8_lossy(&verify.stdout));
    assert!(server.log_text().contains("disk is filling up"), "a warning was raised before the disk was full");

    // Space freed: writing resumes by itself.
    std::fs::remove_file(&ballast).unwrap();
    let resumed = Instant::now();
    loop {
        let (ids, response) = post("after", n, 10);
        n += 1;
        if response.status().is_success() {
            acked.extend(ids);
            break;
        }
        assert!(resumed.elapsed() < Duration::from_secs(10), "ingest did not resume: {}", response.status());
        std::thread::sleep(Duration::from_millis(100));
    }
    server.stop();
    let stored = stored_ids(&data);
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains_key(*id)).take(5).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert!(stored.values().all(|&c| c == 1), "nothing stored twice");
    let verify = signet(&["verify"], &data);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

#[test]
fn overload_answers_503_with_retry_after_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("signet.toml"),
        "max_in_flight_events = 1000\ningest_queue_mb = 1\ningest_slots = 2\n",
    )
    .unwrap();
    let key = create_key(&data, &["--name", "storm", "--type", "ingest"]);
    let mut server = Server::start(dir.path(), &data);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let (ok, busy) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..12)
        .map(|t| {
            let (base, key, acked, ok, busy, stop) =
                (server.base.clone(), key.clone(), acked.clone(), ok.clone(), busy.clone(), stop.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (ids, body) = batch(&format!("t{t}"), n, 300);
                    n += 1;
                    let response =
                        http.post(format!("{base}/api/v1/signins")).bearer_auth(&key).json(&body).send().unwrap();
                    match response.status().as_u16() {
                        200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            acked.lock().unwrap().extend(ids);
                        }
                        503 => {
                            busy.fetch_add(1, Ordering::Relaxed);
                            let retry = response.headers().get("retry-after").expect("503 carries Retry-After");
                            assert!(retry.to_str().unwrap().parse::<u64>().unwrap() >= 1);
                        }
                        other => panic!("unexpected {other}: {}", response.text().unwrap_or_default()),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    // Verification reads a live directory without disturbing it or being fooled by its growth.
    let verify = signet(&["verify"], &data);
    assert!(verify.status.success(), "verify during the storm: {}", String::from_utf8_lossy(&verify.stdout));
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let peak_kib = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap()))
        .unwrap();
    let (ok, busy) = (ok.load(Ordering::Relaxed), busy.load(Ordering::Relaxed));
    assert!(ok > 0 && busy > 0, "the storm was both served and pushed back ({ok} stored, {busy} refused)");

    // Load gone: latency is back to normal by itself.
    let http = reqwest::blocking::Client::new();
    for i in 0..10 {
        let (ids, body) = batch("calm", i, 5);
        let started = Instant::now();
        let response =
            http.post(format!("{}/api/v1/signins", server.base)).bearer_auth(&key).json(&body).send().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(started.elapsed() < Duration::from_secs(1), "a calm request took {:?}", started.elapsed());
        acked.lock().unwrap().extend(ids);
    }
    server.stop();
    let stored = stored_ids(&data);
    let acked = acked.lock().unwrap();
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains_key(*id)).take(5).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    eprintln!("overload: {ok} batches stored, {busy} refused with 503; peak RSS {} MiB", peak_kib / 1024);
    assert!(peak_kib < 1 << 20, "peak RSS {} MiB", peak_kib / 1024);
}

#[test]
fn a_commit_that_hits_enospc_is_refused_and_the_log_recovers() {
    use signet_store::{EventLog, LogRecord, StoreError};
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), 4);
    let log = EventLog::open(disk.0.join("log")).unwrap();
    let mut rng = signet_trust::fuzzing::SplitMix64(7);
    let record = |i: usize, rng: &mut signet_trust::fuzzing::SplitMix64| LogRecord {
        kind: signet_model::LogKind::Activity,
        revision: 1,
        content_hash: i as u64,
        time_us: i as i64,
        received_us: i as i64,
        org: "default".into(),
        id: format!("r{i}"),
        body: (0..64 * 1024).map(|_| rng.next_u64() as u8).collect(), // incompressible
        original: None,
    };
    let ballast = disk.0.join("ballast");
    std::fs::write(&ballast, vec![1u8; 1 << 20]).unwrap();
    let mut stored = 0;
    let refusal = loop {
        match log.append(&[record(stored, &mut rng)]) {
            Ok(_) => stored += 1,
            Err(err) => break err,
        }
        assert!(stored < 1000, "a 4 MiB disk never filled");
    };
    assert!(matches!(refusal, StoreError::DiskFull { .. }), "{refusal}");
    let end = log.end();
    // Still refused while full (the refused write gave its partial space back, and no more);
    // nothing of the refused commits is counted or left behind.
    let again = log.append(&[record(9000, &mut rng)]).unwrap_err();
    assert!(matches!(again, StoreError::DiskFull { .. }), "{again}");
    assert_eq!(log.end(), end);
    std::fs::remove_file(&ballast).unwrap();
    log.append(&[record(stored, &mut rng)]).expect("writing resumes once space is freed");
    drop(log);
    let log = EventLog::open_read_only(disk.0.join("log")).unwrap();
    assert!(log.tail_damage().is_none(), "the refused commits left no torn tail: {:?}", log.tail_damage());
    let mut ids = Vec::new();
    log.scan(0, 1000, |batch, _| {
        ids.extend(batch.into_iter().map(|(_, r)| r.id));
        Ok(())
    })
    .unwrap();
    let expected: Vec<String> = (0..stored).chain([stored]).map(|i| format!("r{i}")).collect();
    assert_eq!(ids, expected);
}
