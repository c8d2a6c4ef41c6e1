//! Retention and the archive (issue 6), with a controllable clock: a year of sign-ins, a policy
//! applied at several "nows"; everything expired is in the archive with matching counts and
//! hashes, queries across hot + archive answer as before expiry, verification passes and
//! catches an edited archive, a legal hold stops everything, and reruns change nothing.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use signet_store::archive::{day_start, verify_archive, Archive};

use crate::TestServer;

const DAY_US: i64 = 86_400_000_000;

/// Sign-in `n` of day `day` (days before `base`), with its event time.
pub(crate) fn signin_at(base: i64, day: i64, n: i64, extra: &str) -> (String, i64) {
    let time = base - day * DAY_US - n * 3_600_000_000 - 7_000_000;
    let id = format!("y-{day:03}-{n}");
    let app = ["Payroll", "Mail", "Wiki"][(day + n) as usize % 3];
    let code = if (day + n) % 5 == 0 { 50126 } else { 0 };
    let body = format!(
        r#"{{"id":"{id}","createdDateTime":"{}","userId":"u{n}","userPrincipalName":"user{n}@default.example","appId":"app-{app}","appDisplayName":"{app}","ipAddress":"10.0.{}.{n}","status":{{"errorCode":{code}}}{extra}}}"#,
        signet_model::time::format_time(time),
        day % 250
    );
    (body, time)
}

pub(crate) struct Answers {
    pub ids: BTreeSet<String>,
    pub archived: usize,
    pub timeline: Value,
    pub top_apps: Value,
    pub csv_rows: BTreeSet<String>,
}

/// What the list (every page), the weekly graph, the top applications and the CSV export say
/// about `[from, to)`.
pub(crate) async fn answers(server: &TestServer, from: &str, to: &str) -> Answers {
    let mut ids = BTreeSet::new();
    let mut archived = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/signins?from={from}&to={to}&limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = server.get(&path).await;
        assert_eq!(status, 200, "{page}");
        // The year's sign-ins (the administrator's own sign-in to the console is there too).
        for item in page["items"].as_array().unwrap().iter().filter(|i| i["id"].as_str().unwrap().starts_with("y-")) {
            assert!(ids.insert(item["id"].as_str().unwrap().to_string()), "an event listed twice: {item}");
            archived += usize::from(item["archived"] == json!(true));
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let (_, timeline) = server.get(&format!("/api/v1/reports/signins/timeline?from={from}&to={to}&bucket=week")).await;
    let (_, top_apps) = server.get(&format!("/api/v1/reports/apps/top?from={from}&to={to}")).await;
    let (status, csv) = server.get_text(&format!("/api/v1/signins/export?format=csv&from={from}&to={to}")).await;
    assert_eq!(status, 200, "{csv}");
    let csv_rows = csv.lines().skip(1).map(str::to_string).collect();
    Answers { ids, archived, timeline, top_apps, csv_rows }
}

/// Replaces the organisation's retention policy as the signed-in administrator.
pub(crate) async fn put_policy(server: &TestServer, admin: &crate::Session, policy: Value) {
    let response = admin
        .request(&reqwest::Client::new(), reqwest::Method::PUT, server.url("/api/v1/settings/retention"))
        .json(&policy)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_year_expires_into_the_archive_and_queries_still_answer_the_same() {
    let server = TestServer::start().await;
    let base = signet_model::time::now_micros();
    // A year of sign-ins, four a day, and a second revision of every tenth day's first one.
    let mut times = Vec::new();
    let mut lines = Vec::new();
    for day in 0..365 {
        for n in 0..4 {
            let (body, time) = signin_at(base, day, n, "");
            lines.push(body);
            times.push(time);
        }
    }
    for day in (0..365).step_by(10) {
        lines.push(signin_at(base, day, 0, r#","riskLevelAggregated":"high""#).0);
    }
    for chunk in lines.chunks(1000) {
        let (status, answer) = server.post("/api/v1/signins", "application/x-ndjson", chunk.join("\n")).await;
        assert_eq!(status, 200, "{answer}");
    }
    server.settle().await;
    // The administrator signs in first: that sign-in is part of every answer below.
    let admin = server.session("default", "admin@example.com", None).await;
    server.settle().await;
    let from = signet_model::time::format_time(base - 400 * DAY_US);
    let to = signet_model::time::format_time(base + DAY_US);
    let before = answers(&server, &from, &to).await;
    assert_eq!(before.ids.len(), 365 * 4);
    assert_eq!(before.archived, 0);

    // The policy, set by an administrator: sign-ins hot 90 days, then 300 days in the archive.
    put_policy(&server, &admin, json!({ "signins": { "hotDays": 90, "archiveDays": 300 } })).await;
    let (_, view) = server.get("/api/v1/settings/retention").await;
    assert_eq!(view["policy"]["signins"]["hotDays"], 90, "{view}");

    // Day one: everything older than 90 whole days leaves the hot store.
    let run = |now: i64| {
        let state = server.state.clone();
        let engine = server.engine.clone();
        async move { tokio::task::spawn_blocking(move || state.retention.run(&engine, None, now).unwrap()).await.unwrap() }
    };
    let report = run(base).await;
    let cutoff = day_start(base) - 90 * DAY_US;
    let expired = times.iter().filter(|t| **t < cutoff).count() as u64;
    assert!(expired > 1000, "most of the year is past the hot period ({expired})");
    assert_eq!(report.partitions.iter().map(|p| p.removed).sum::<u64>(), expired, "{report:?}");
    let revisions = (0..365).step_by(10).filter(|d| signin_at(base, *d, 0, "").1 < cutoff).count() as u64;
    assert_eq!(
        report.partitions.iter().map(|p| p.archived).sum::<u64>(),
        expired + revisions,
        "every revision of an expired event is archived"
    );

    // The archive: manifests whose counts and hashes match, covered by signed heads.
    let archive = Archive::new(server.engine.data_dir().join("archive"));
    let manifests = archive.manifests().unwrap();
    assert_eq!(manifests.iter().map(|(_, m)| m.latest_rows).sum::<u64>(), expired);
    assert!(manifests.iter().all(|(_, m)| m.head.tree_size > 0 && m.day < signet_model::time::format_time(cutoff)));
    let key = server.engine.ledger().public_key();
    let (checked, problems) = verify_archive(&archive, server.engine.data_dir(), &key).unwrap();
    assert_eq!((checked, problems.len()), (manifests.len() as u64, 0), "{problems:?}");

    // The same answers, now read partly from the archive; the default list is the hot store.
    let after = answers(&server, &from, &to).await;
    assert!(
        after.ids == before.ids,
        "the list over the year is unchanged ({} / {})",
        after.ids.len(),
        before.ids.len()
    );
    assert_eq!(after.archived as u64, expired, "archived rows are marked");
    assert_eq!(after.timeline, before.timeline, "the weekly graph is unchanged");
    assert_eq!(after.top_apps, before.top_apps, "the top applications are unchanged");
    assert_eq!(after.csv_rows, before.csv_rows, "the CSV export is unchanged");
    let (_, hot) = server.get("/api/v1/signins?limit=1000").await;
    let hot = hot["items"].as_array().unwrap().iter().filter(|i| i["id"].as_str().unwrap().starts_with("y-")).count();
    assert_eq!(hot as u64, 365 * 4 - expired, "the hot store holds the rest");
    let (_, detail) = server.get("/api/v1/signins/y-200-0").await;
    assert_eq!(detail["revisions"].as_array().unwrap().len(), 2, "details and history still read the log: {detail}");

    // Reruns are no-ops; leftovers of an interrupted run are cleaned up.
    let stray = manifests[0].0.with_file_name("part-00000000000000000001.parquet");
    std::fs::write(&stray, b"half written").unwrap();
    let again = run(base).await;
    assert!(again.partitions.is_empty(), "nothing moves twice: {again:?}");
    assert_eq!(again.leftovers_removed, vec![stray.display().to_string()]);

    // The retention change and the run are in Signet's own log.
    server.settle().await;
    let (_, changes) = server.get("/api/v1/activities?operation=RetentionPolicyChanged").await;
    assert_eq!(changes["items"].as_array().unwrap().len(), 1, "{changes}");
    let (_, applied) = server.get("/api/v1/activities?operation=RetentionApplied").await;
    assert!(!applied["items"].as_array().unwrap().is_empty(), "{applied}");

    // A legal hold suspends everything, however late it gets.
    put_policy(
        &server,
        &admin,
        json!({ "signins": { "hotDays": 90, "archiveDays": 300 }, "legalHold": true, "legalHoldReason": "case 42" }),
    )
    .await;
    let held = run(base + 1000 * DAY_US).await;
    assert!(held.partitions.is_empty() && held.deleted_parts.is_empty(), "{held:?}");
    assert_eq!(held.held, vec!["default/signins".to_string()]);
    put_policy(&server, &admin, json!({ "signins": { "hotDays": 90, "archiveDays": 300 } })).await;

    // A hundred days later: the rest is archived, and what has been archived for 300 days
    // past its hot period is deleted.
    let later = base + 100 * DAY_US;
    let report = run(later).await;
    assert!(!report.deleted_parts.is_empty(), "{report:?}");
    let end = day_start(later) - 390 * DAY_US;
    let kept: BTreeSet<String> = (0..365)
        .flat_map(|day| (0..4).map(move |n| (day, n)))
        .filter(|(day, n)| day_start(signin_at(base, *day, *n, "").1) >= end)
        .map(|(day, n)| format!("y-{day:03}-{n}"))
        .collect();
    let last = answers(&server, &from, &to).await;
    assert!(
        last.ids == kept,
        "exactly the events whose archive period has not ended ({} / {})",
        last.ids.len(),
        kept.len()
    );
    assert_eq!(last.archived, kept.len(), "all of them from the archive now");
    let (checked, problems) = verify_archive(&archive, server.engine.data_dir(), &key).unwrap();
    assert!(checked > 0 && problems.is_empty(), "{problems:?}");

    // Tampering with the archive is caught: a flipped byte, and a re-written part whose
    // manifest was "fixed" to match.
    let (manifest_path, manifest) = archive.manifests().unwrap().remove(0);
    let parquet = manifest_path.with_file_name(&manifest.file);
    let original = std::fs::read(&parquet).unwrap();
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    std::fs::write(&parquet, &flipped).unwrap();
    let (_, problems) = verify_archive(&archive, server.engine.data_dir(), &key).unwrap();
    assert!(problems.iter().any(|p| p.detail.contains("SHA-256")), "{problems:?}");

    let conn = duckdb::Connection::open_in_memory().unwrap();
    std::fs::write(&parquet, &original).unwrap();
    let edited = parquet.with_extension("edited");
    conn.execute_batch(&format!(
        "CREATE TABLE t AS SELECT * FROM read_parquet('{p}'); \
         UPDATE t SET body = CAST(replace(CAST(body AS VARCHAR), 'user', 'nobody') AS BLOB) WHERE rowid = 0; \
         COPY t TO '{e}' (FORMAT PARQUET)",
        p = parquet.display(),
        e = edited.display()
    ))
    .unwrap();
    std::fs::rename(&edited, &parquet).unwrap();
    let mut forged = manifest.clone();
    forged.sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&parquet).unwrap()))
    };
    std::fs::write(&manifest_path, serde_json::to_vec(&forged).unwrap()).unwrap();
    let (_, problems) = verify_archive(&archive, server.engine.data_dir(), &key).unwrap();
    assert!(problems.iter().any(|p| p.detail.contains("row 0") && p.detail.contains("modified")), "{problems:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_exports_write_every_window_once_with_a_manifest() {
    let out = tempfile::tempdir().unwrap();
    let base = signet_model::time::now_micros();
    let start = signet_model::time::format_time(day_start(base) - 3 * DAY_US);
    let job = |name: &str, format: &str, filter: &str| -> signet_server::scheduled_export::ExportJobSettings {
        serde_json::from_value(json!({
            "name": name, "kind": "signins", "format": format, "filter": filter, "every_days": 1,
            "delay_hours": 0, "directory": out.path(), "start": start,
        }))
        .unwrap()
    };
    // The jobs run here with the test's clock (a server runs them every minute by itself).
    let exports = std::sync::Arc::new(
        signet_server::scheduled_export::ScheduledExports::new(
            vec![job("daily-csv", "csv", ""), job("failures", "parquet", "status=failure")],
            "default",
        )
        .unwrap(),
    );
    let server = TestServer::start().await;
    let lines: Vec<String> = (0..4).flat_map(|day| (0..10).map(move |n| signin_at(base, day, n, "").0)).collect();
    let (status, answer) = server.post("/api/v1/signins", "application/x-ndjson", lines.join("\n")).await;
    assert_eq!(status, 200, "{answer}");
    server.settle().await;

    let run = || {
        let exports = exports.clone();
        let engine = server.engine.clone();
        async move { tokio::task::spawn_blocking(move || exports.run_due(&engine, base)).await.unwrap() }
    };
    let written = run().await;
    assert_eq!(written.len(), 6, "three whole days before today, for each job: {written:?}");
    for manifest in &written {
        let dir = out.path().join(&manifest.job);
        let bytes = std::fs::read(dir.join(&manifest.file)).unwrap();
        use sha2::Digest;
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), manifest.sha256);
        assert!(manifest.head.is_some(), "a signed head is recorded");
        let filter = if manifest.job == "failures" { "&status=failure" } else { "" };
        let (_, listed) =
            server.get(&format!("/api/v1/signins?from={}&to={}&limit=1000{filter}", manifest.from, manifest.to)).await;
        let expected = listed["items"].as_array().unwrap().len() as u64;
        assert!(expected > 0, "{listed}");
        assert_eq!(manifest.rows, expected, "{manifest:?}");
        if manifest.format == "csv" {
            let text = String::from_utf8(bytes).unwrap();
            assert_eq!(text.lines().count() as u64 - 1, expected, "one CSV line per event after the header");
        } else {
            let conn = duckdb::Connection::open_in_memory().unwrap();
            let path = dir.join(&manifest.file).display().to_string();
            let (rows, failures): (i64, i64) = conn
                .query_row(
                    &format!("SELECT count(*), count(*) FILTER (WHERE error_code <> 0) FROM read_parquet('{path}')"),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((rows as u64, failures as u64), (expected, expected), "only failures, every one of them");
        }
    }
    let windows: BTreeSet<(String, String)> =
        written.iter().filter(|m| m.job == "daily-csv").map(|m| (m.from.clone(), m.to.clone())).collect();
    assert_eq!(windows.len(), 3);
    assert!(run().await.is_empty(), "nothing is written twice");
    server.settle().await;
    let (_, records) = server.get("/api/v1/activities?operation=ScheduledExportCompleted").await;
    assert_eq!(records["items"].as_array().unwrap().len(), 6, "{records}");
}

#[tokio::test(flavor = "multi_thread")]
async fn archived_log_segments_are_cut_and_everything_still_reads_and_verifies() {
    use signet_server::retention::{KindPolicy, RetentionPolicy};
    use signet_server::testkit::TestSignet;
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so that a few thousand events fill several.
    let ingest = signet_store::IngestConfig { segment_bytes: 16 << 10, ..signet_store::IngestConfig::default() };
    let config = signet_server::ServerConfig { retention_interval: None, ..signet_server::ServerConfig::default() };
    let signet = TestSignet::start_with(dir.path(), config.clone(), ingest.clone()).await;
    let base = signet_model::time::now_micros();
    let mut lines: Vec<String> = (0..120).flat_map(|day| (0..40).map(move |n| signin_at(base, day, n, "").0)).collect();
    lines.push(signin_at(base, 100, 0, r#","riskLevelAggregated":"high""#).0);
    for chunk in lines.chunks(200) {
        assert_eq!(signet.post_signins(chunk.join("\n")).await, 200);
    }
    signet.settle().await;
    let from = signet_model::time::format_time(base - 200 * DAY_US);
    let to = signet_model::time::format_time(base + DAY_US);
    let count = |body: &str| -> usize {
        let page: Value = serde_json::from_str(body).unwrap();
        page["value"].as_array().map(Vec::len).unwrap_or(0)
    };
    let graph = format!(
        "/v1.0/auditLogs/signIns?$top=1000&$filter=createdDateTime%20ge%20{from}%20and%20createdDateTime%20lt%20{to}"
    );
    let (_, before) = signet.get(&graph).await;
    assert_eq!(count(&before), 1000);
    let segments_before = signet.engine.log().closed_segments().len();
    assert!(segments_before >= 3, "{segments_before} closed segments");

    // Every log of the organisation hot for 30 days; sixty days later everything is archived
    // and the closed segments of the log are cut.
    let all = KindPolicy { hot_days: 30, archive_days: None, legal_hold: false };
    let policy = RetentionPolicy {
        signins: Some(all),
        directory_audits: Some(all),
        activities: Some(all),
        ..Default::default()
    };
    signet.state.retention.policies.replace("default", policy).unwrap();
    let (job, engine) = (signet.state.retention.clone(), signet.engine.clone());
    let report =
        tokio::task::spawn_blocking(move || job.run(&engine, None, base + 60 * DAY_US).unwrap()).await.unwrap();
    assert_eq!(report.log_segments_cut.len(), segments_before, "{report:?}");
    assert!(signet.engine.log().start() > signet_store::log::FIRST_FRAME);

    // Lists, the Graph API (bodies from the archive now), details with their history, and
    // exports with proofs all still answer.
    let (_, after) = signet.get(&graph).await;
    let ids = |body: &str| -> BTreeSet<String> {
        let page: Value = serde_json::from_str(body).unwrap();
        page["value"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(&after), ids(&before), "the Graph API reads archived records");
    let (status, detail) = signet.get("/api/v1/signins/y-100-0").await;
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!((status, detail["revisions"].as_array().map(Vec::len)), (200, Some(2)), "{detail}");
    assert_eq!(detail["revisions"][1]["body"]["riskLevelAggregated"], "high");
    let (status, export) =
        signet.get(&format!("/api/v1/signins/export?format=ndjson&proofs=true&from={from}&to={to}")).await;
    assert_eq!(status, 200, "{export}");
    let key = signet.engine.ledger().public_key();
    let checked = signet_trust::bundle::verify_export(export.as_bytes(), &key).unwrap();
    assert_eq!(
        (checked.verified, checked.unproven),
        (lines.len() as u64 - 1, 0),
        "every exported event proven, from the archive"
    );

    // `signet verify` (read-only, on the live directory) and the archive check both pass.
    let report =
        signet_store::verify::verify_data_dir(dir.path(), &signet_store::verify::VerifyOptions::default()).unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert!(report.notes.iter().any(|n| n.contains("log segments were cut")), "{:?}", report.notes);
    let archive = Archive::new(dir.path().join("archive"));
    let (_, problems) = verify_archive(&archive, dir.path(), &key).unwrap();
    assert!(problems.is_empty(), "{problems:?}");

    // A restart opens the cut log: the trees are not rebuilt, queries still answer.
    signet.shutdown().await;
    let signet = TestSignet::start_with(dir.path(), config, ingest).await;
    let (_, again) = signet.get(&graph).await;
    assert_eq!(ids(&again), ids(&before));
    signet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_is_kept_on_its_own_terms() {
    let config = signet_server::ServerConfig { retention_interval: None, ..signet_server::ServerConfig::default() };
    let server = TestServer::start_with(config).await;
    let base = signet_model::time::now_micros();
    // An application's activities over the last 30 days.
    let records: Vec<String> = (0..30)
        .map(|day| {
            let time = signet_model::time::format_time(base - day * DAY_US - 60_000_000);
            json!({ "Id": format!("app-{day}"), "CreationTime": time, "Operation": "Update", "User": "ann@contoso.com",
                    "ResultStatus": "Succeeded", "EntityName": "account" })
            .to_string()
        })
        .collect();
    let (status, answer) = server.post("/api/v1/activities", "application/x-ndjson", records.join("\n")).await;
    assert_eq!(status, 200, "{answer}");
    server.settle().await;
    // Activities 10 days hot; Signet's own access log (this policy change, the reads) 100.
    let admin = server.session("default", "admin@example.com", None).await;
    put_policy(&server, &admin, json!({ "activities": { "hotDays": 10 }, "accessLog": { "hotDays": 100 } })).await;
    let (status, _) = server.get("/api/v1/activities?limit=5").await;
    assert_eq!(status, 200);
    server.settle().await;

    let run = |now: i64| {
        let job = server.state.retention.clone();
        let engine = server.engine.clone();
        async move { tokio::task::spawn_blocking(move || job.run(&engine, None, now).unwrap()).await.unwrap() }
    };
    let moved = |report: &signet_store::archive::ExpiryReport, log: &str| -> u64 {
        report.partitions.iter().filter(|p| p.kind == log).map(|p| p.removed).sum()
    };
    let cutoff = day_start(base) - 10 * DAY_US;
    let old = (0..30).filter(|day| base - day * DAY_US - 60_000_000 < cutoff).count() as u64;
    let now = run(base).await;
    assert_eq!((moved(&now, "activities"), moved(&now, "access-log")), (old, 0), "{now:?}");
    let later = run(base + 50 * DAY_US).await;
    assert_eq!((moved(&later, "activities"), moved(&later, "access-log")), (30 - old, 0), "{later:?}");
    let much_later = run(base + 150 * DAY_US).await;
    let access = moved(&much_later, "access-log");
    assert!(access >= 3 && moved(&much_later, "activities") == 0, "{much_later:?}");

    // Each log in its own parts: the access log's hold Signet's records only, and no other part
    // holds any.
    let archive = Archive::new(server.engine.data_dir().join("archive"));
    let conn = duckdb::Connection::open_in_memory().unwrap();
    for (path, manifest) in archive.manifests().unwrap() {
        assert_eq!(manifest.kind, "activities");
        let parquet = path.with_file_name(&manifest.file).display().to_string();
        let (rows, signet): (i64, i64) = conn
            .query_row(
                &format!(
                    "SELECT count(*), count(*) FILTER (record_type = 'SignetAccess') FROM read_parquet('{parquet}')"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        match manifest.log.as_deref() {
            Some("access-log") => assert_eq!(signet, rows, "{parquet}"),
            Some("activities") => assert_eq!(signet, 0, "{parquet}"),
            other => panic!("{other:?}"),
        }
        assert!(parquet.contains(&format!("/{}/", manifest.log.as_deref().unwrap())), "{parquet}");
    }
    // Still answered, from the archive.
    let from = signet_model::time::format_time(base - 40 * DAY_US);
    let (_, changes) = server.get(&format!("/api/v1/activities?from={from}&operation=RetentionPolicyChanged")).await;
    let items = changes["items"].as_array().unwrap();
    assert_eq!((items.len(), &items[0]["archived"]), (1, &json!(true)), "{changes}");
}
