//! Importing export files: Okta System Log, activity records split into parts and put back
//! together, files larger than a server's request limit.

use crate::{create_key, ok, signet, signet_with_key, Server};

#[test]
fn okta_system_log_imports_as_sign_ins_and_directory_audits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // What `GET /api/v1/logs` returns: a JSON array of LogEvents.
    let events = serde_json::json!([
        {"uuid": "ok-1", "published": "2026-11-20T08:00:00.000Z", "eventType": "user.session.start",
         "displayMessage": "User login to Okta", "actor": {"id": "00u1", "type": "User", "alternateId": "ana@example.com"},
         "client": {"ipAddress": "203.0.113.9", "userAgent": {"browser": "FIREFOX", "os": "Mac OS X"}},
         "outcome": {"result": "FAILURE", "reason": "INVALID_CREDENTIALS"},
         "authenticationContext": {"credentialType": "PASSWORD"}},
        {"uuid": "ok-2", "published": "2026-11-20T08:01:00.000Z", "eventType": "user.authentication.sso",
         "actor": {"id": "00u1", "type": "User", "alternateId": "ana@example.com"},
         "outcome": {"result": "SUCCESS"}, "target": [{"id": "0oa9", "type": "AppInstance", "displayName": "Salesforce.com"}]},
        {"uuid": "ok-3", "published": "2026-11-20T09:00:00.000Z", "eventType": "user.lifecycle.suspend",
         "displayMessage": "Suspend Okta user", "actor": {"id": "00uA", "type": "User", "alternateId": "admin@example.com"},
         "outcome": {"result": "SUCCESS"}, "target": [{"id": "00u1", "type": "User", "alternateId": "ana@example.com"}]}
    ]);
    let input = dir.path().join("okta-logs.json");
    std::fs::write(&input, events.to_string()).unwrap();
    let imported = ok(signet(&["import", input.to_str().unwrap()], &data));
    assert!(imported.contains("imported 3 "), "{imported}");

    let query = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["query", "--range", "10y", "--output", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&ok(signet(&all, &data))).unwrap()
    };
    let failures = query(&["--user", "ana@example.com", "--status", "failure", "--columns", "id,status,errorCode"]);
    assert_eq!(failures.as_array().unwrap().len(), 1, "{failures}");
    assert_eq!(failures[0]["id"], "ok-1");
    assert_eq!(failures[0]["errorCode"], 50126);
    let apps = query(&["--app", "Salesforce.com", "--columns", "id,appDisplayName"]);
    assert_eq!(apps[0]["id"], "ok-2", "{apps}");
    let audits = query(&["--kind", "directory-audits", "--columns", "id,activityDisplayName,loggedByService"]);
    assert_eq!(audits[0]["activityDisplayName"], "Suspend Okta user", "{audits}");
    assert_eq!(audits[0]["loggedByService"], "Okta");
}

#[test]
fn large_activities_export_in_parts_for_a_limited_destination_and_import_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (source, target) = (dir.path().join("source"), dir.path().join("target"));
    let results: Vec<String> = (0..2000).map(|i| format!("{i:08}-0000-4000-8000-000000000000")).collect();
    let record = serde_json::json!({
        "Id": "grid-1", "CreationTime": "2026-11-20T10:00:00Z", "Operation": "RetrieveMultiple",
        "User": "ann@contoso.com", "EntityName": "account", "QueryResults": results.join(","),
    });
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, format!("{record}\n")).unwrap();
    ok(signet(&["import", input.to_str().unwrap()], &source));
    let parts = dir.path().join("parts.ndjson");
    let export = [
        "export",
        "--kind",
        "activities",
        "--format",
        "ndjson",
        "--max-record-bytes",
        "3072",
        "--range",
        "10y",
        "-p",
        "id=grid-1",
        "-o",
        parts.to_str().unwrap(),
    ];
    ok(signet(&export, &source));
    let text = std::fs::read_to_string(&parts).unwrap();
    assert!(text.lines().count() > 20 && text.lines().all(|l| l.len() <= 3072), "{} lines", text.lines().count());
    let refused = signet(&["export", "--kind", "signins", "--max-record-bytes", "3072"], &source);
    assert!(!refused.status.success(), "only activities in NDJSON are cut");

    ok(signet(&["import", parts.to_str().unwrap()], &target));
    let rows = ok(signet(
        &[
            "query",
            "--kind",
            "activities",
            "--range",
            "10y",
            "-p",
            "id=grid-1",
            "--output",
            "json",
            "--columns",
            "queryResults",
        ],
        &target,
    ));
    let rows: serde_json::Value = serde_json::from_str(&rows).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "one record, not its parts");
    assert_eq!(rows[0]["queryResults"].as_str(), Some(results.join(",").as_str()));
}

#[test]
fn a_file_larger_than_the_request_limit_imports_through_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ingest = create_key(&data, &["--name", "loader", "--type", "ingest"]);
    let read = create_key(&data, &["--name", "cli", "--type", "read", "--role", "GlobalReader"]);
    // The server reads ./signet.toml: requests of 64 KiB at most (a refused request may be cut
    // off while it is sent, or answered 413: both make the client halve its pieces).
    std::fs::write(dir.path().join("signet.toml"), "max_body_bytes = 65536\n").unwrap();
    let export = dir.path().join("export.ndjson");
    ok(signet(&["demo", "--signins", "3000", "--days", "5", "--seed", "4", "--out", export.to_str().unwrap()], &data));
    let size = std::fs::metadata(&export).unwrap().len();
    assert!(size > 16 * 65_536, "{size} bytes: several times the limit");
    // One bad line in the middle keeps its line number in the answer.
    let mut lines: Vec<String> = std::fs::read_to_string(&export).unwrap().lines().map(str::to_string).collect();
    let replaced_sign_in = lines[1500].contains("\"createdDateTime\"");
    lines[1500] = r#"{"id":"broken","createdDateTime":"yesterday"}"#.into();
    std::fs::write(&export, lines.join("\n")).unwrap();

    let server = Server::start(dir.path(), &data);
    let with_server = |args: &[&str], key: &str| {
        let mut all = args.to_vec();
        all.extend(["--server", server.base.as_str()]);
        signet_with_key(&all, &data, key)
    };
    // The server says it takes zstd, so the pieces go compressed (the limit applies to what
    // they decompress to: the halving above still happens).
    let zstd_requests = || {
        let metrics = reqwest::blocking::Client::new()
            .get(format!("{}/metrics", server.base))
            .bearer_auth(&read)
            .send()
            .unwrap()
            .text()
            .unwrap();
        let line = metrics.lines().find(|l| l.starts_with("signet_http_compressed_requests_total{encoding=\"zstd\"}"));
        line.and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).expect("the zstd counter")
    };
    assert_eq!(zstd_requests(), 0);
    let imported = ok(with_server(&["import", export.to_str().unwrap()], &ingest));
    assert!(imported.contains(&format!("imported {} ", lines.len() - 1)), "{imported}");
    assert!(imported.contains("1 rejected") && imported.contains("record 1501: createdDateTime"), "{imported}");
    let compressed = zstd_requests();
    assert!(compressed > 16, "{compressed} compressed requests");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let summary: serde_json::Value =
        serde_json::from_str(&ok(with_server(&["report", "summary", "--days", "30"], &read))).unwrap();
    assert_eq!(summary["total"].as_i64().unwrap(), 3000 - i64::from(replaced_sign_in), "{summary}");
    // --no-compress sends them plain (every record is a duplicate now).
    let again = ok(with_server(&["import", "--no-compress", export.to_str().unwrap()], &ingest));
    assert!(again.contains("imported 0 ") && again.contains(&format!("{} duplicates", lines.len() - 1)), "{again}");
    assert_eq!(zstd_requests(), compressed, "no compressed request with --no-compress");
}

#[test]
fn files_that_cannot_be_mapped_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // An empty file: a clear error naming it, not a crash (an empty file cannot be mapped).
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "").unwrap();
    let output = signet(&["import", empty.to_str().unwrap()], &data);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("empty.json"), "{stderr}");

    // A pipe (`/dev/stdin`, and `-` for standard input): read, not mapped.
    let record = r#"{"id":"piped-1","createdDateTime":"2026-11-20T08:00:00Z","userPrincipalName":"ana@example.com","status":{"errorCode":0}}"#;
    let mut command = std::process::Command::new(crate::signet_bin());
    command.args(["import", "--format", "ndjson", "/dev/stdin"]).env("SIGNET_DATA_DIR", &data);
    command.env_remove("SIGNET_SERVER");
    let imported = ok(crate::with_stdin(command, &format!("{record}\n")));
    assert!(imported.contains("imported 1 "), "{imported}");
    let mut command = std::process::Command::new(crate::signet_bin());
    command.args(["import", "-"]).env("SIGNET_DATA_DIR", &data);
    command.env_remove("SIGNET_SERVER");
    let imported = ok(crate::with_stdin(command, &record.replace("piped-1", "piped-2")));
    assert!(imported.contains("imported 1 "), "{imported}");
    assert!(imported.starts_with("-: "), "{imported}");
    let found = ok(signet(&["query", "--range", "10y", "--output", "json", "--columns", "id"], &data));
    assert!(found.contains("piped-1") && found.contains("piped-2"), "{found}");
}
