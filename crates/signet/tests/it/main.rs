//! The `signet` binary end to end: demo data into a data directory, then the commands an
//! administrator runs against it, then the same commands against a running server.

mod crash;
mod faults;
mod import;

use std::path::Path;
use std::process::{Command, Output};

/// The binary under test: this build's, or `TEST_SIGNET_BIN` (e.g. to run the hour-long crash test
/// against copies of the binaries while the target directory is rebuilt).
fn signet_bin() -> std::ffi::OsString {
    std::env::var_os("TEST_SIGNET_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_signet").into())
}

fn signet(args: &[&str], data: &Path) -> Output {
    Command::new(signet_bin())
        .args(args)
        .env("SIGNET_DATA_DIR", data)
        .env_remove("SIGNET_SERVER")
        .output()
        .expect("run signet")
}

/// Runs `command` with `stdin` as its standard input.
fn with_stdin(mut command: Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run signet");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait for signet")
}

fn ok(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "signet failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn commands_work_on_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(signet(&["demo", "--signins", "3000", "--days", "10", "--seed", "3"], &data));

    let table = ok(signet(&["query", "--status", "failure", "--range", "1m", "--limit", "5"], &data));
    assert!(table.contains("(5 rows)"), "{table}");
    let json =
        ok(signet(&["query", "--range", "1m", "-p", "clientApp=legacy", "--output", "json", "--limit", "3"], &data));
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(rows.as_array().unwrap().iter().all(|r| r["clientAppUsed"] != "Browser"));
    let graph =
        ok(signet(&["query", "--filter", "status/errorCode eq 50126", "--output", "csv", "--limit", "2"], &data));
    assert!(graph.lines().count() >= 2, "{graph}");

    let summary: serde_json::Value =
        serde_json::from_str(&ok(signet(&["report", "summary", "--days", "30"], &data))).unwrap();
    let total = summary["total"].as_i64().unwrap();
    assert!((3000..3100).contains(&total), "3000 sign-ins plus none lost: {summary}");
    let top: serde_json::Value = serde_json::from_str(&ok(signet(&["report", "top-apps", "--n", "3"], &data))).unwrap();
    assert_eq!(top["apps"].as_array().unwrap().len(), 3);

    let file = dir.path().join("out.csv");
    ok(signet(&["export", "--range", "1m", "-o", file.to_str().unwrap()], &data));
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(csv::Reader::from_reader(exported.as_bytes()).records().count() as i64, total);

    let explained = ok(signet(&["error", "AADSTS50126"], &data));
    assert!(explained.contains("Remediation"), "{explained}");
    let unknown = signet(&["error", "123456789"], &data);
    assert!(!unknown.status.success());

    let ndjson = dir.path().join("demo.ndjson");
    ok(signet(&["demo", "--signins", "100", "--seed", "9", "--out", ndjson.to_str().unwrap()], &data));
    let lines = std::fs::read_to_string(&ndjson).unwrap().lines().count();
    let imported = ok(signet(&["import", ndjson.to_str().unwrap()], &data));
    assert!(imported.contains(&format!("imported {lines} ")), "{lines} lines: {imported}");
    let again = ok(signet(&["import", ndjson.to_str().unwrap()], &data));
    assert!(again.contains("imported 0 ") && again.contains(&format!("{lines} duplicates")), "{again}");

    // Reads made directly on the data directory are in the access log too.
    let log = ok(signet(
        &[
            "query",
            "--kind",
            "activities",
            "--user",
            "cli:*",
            "--output",
            "json",
            "--limit",
            "50",
            "--columns",
            "operation,user,query",
        ],
        &data,
    ));
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let operations: Vec<&str> = log.as_array().unwrap().iter().filter_map(|r| r["operation"].as_str()).collect();
    for operation in ["SignInsListed", "ReportViewed", "SignInsExported"] {
        assert!(operations.contains(&operation), "{operation} missing from {log}");
    }
    assert!(
        !log.as_array().unwrap().is_empty()
            && log.as_array().unwrap().iter().all(|r| r["user"].as_str().unwrap().starts_with("cli:")),
        "{log}"
    );
}

#[test]
fn archive_verify_and_restore_on_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(signet(&["demo", "--signins", "2000", "--days", "10", "--seed", "5"], &data));
    let total = |data: &Path| -> i64 {
        let summary: serde_json::Value =
            serde_json::from_str(&ok(signet(&["report", "summary", "--days", "30"], data))).unwrap();
        summary["total"].as_i64().unwrap()
    };
    let before = total(&data);
    let day = 86_400_000_000;
    let cut = signet_model::time::format_time(signet_model::time::now_micros() - 5 * day);
    let report: serde_json::Value =
        serde_json::from_str(&ok(signet(&["archive", "--before", &cut, "--kind", "signins"], &data))).unwrap();
    let moved: u64 = report["partitions"].as_array().unwrap().iter().map(|p| p["removed"].as_u64().unwrap()).sum();
    assert!(moved > 500, "about half the demo sign-ins are older than five days: {report}");
    assert_eq!(total(&data), before, "a report over 30 days reads the archive too");
    let hot: serde_json::Value =
        serde_json::from_str(&ok(signet(&["report", "summary", "--days", "4"], &data))).unwrap();
    assert!(hot["total"].as_i64().unwrap() < before - moved as i64 + 100, "{hot}");

    let verified = ok(signet(&["verify"], &data));
    assert!(verified.starts_with("OK") && verified.contains("archive part(s) checked"), "{verified}");

    let from = signet_model::time::format_time(signet_model::time::now_micros() - 30 * day);
    let restored: serde_json::Value =
        serde_json::from_str(&ok(signet(&["restore", "--from", &from, "--to", &cut, "--days", "7"], &data))).unwrap();
    assert_eq!(restored["restored"].as_u64(), Some(moved), "{restored}");
    assert_eq!(total(&data), before, "restored events are counted once");
    let again: serde_json::Value =
        serde_json::from_str(&ok(signet(&["restore", "--from", &from, "--to", &cut], &data))).unwrap();
    assert_eq!(again["restored"].as_u64(), Some(0), "restoring twice adds nothing: {again}");
    let kept: serde_json::Value = serde_json::from_str(&ok(signet(&["archive"], &data))).unwrap();
    assert!(kept["partitions"].as_array().unwrap().is_empty(), "{kept}");

    // An archived part edited after the fact fails verification.
    let part = walk(&data.join("archive")).into_iter().find(|p| p.extension().is_some_and(|e| e == "parquet")).unwrap();
    let mut bytes = std::fs::read(&part).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&part, bytes).unwrap();
    let failed = signet(&["verify"], &data);
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stdout).contains("ArchiveDiffers"));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn audit_settings_change_on_a_data_directory_and_the_change_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let shown: serde_json::Value = serde_json::from_str(&ok(signet(&["settings", "audit", "show"], &data))).unwrap();
    assert_eq!(shown["isUserAccessAuditEnabled"], true);
    let set = ok(signet(
        &["settings", "audit", "set", "--user-access", "off", "--interval", "8", "--entity", "Account=single:off"],
        &data,
    ));
    let set: serde_json::Value = serde_json::from_str(&set).unwrap();
    assert_eq!(
        (set["isUserAccessAuditEnabled"].clone(), set["userAccessAuditingInterval"].clone()),
        (false.into(), 8.into())
    );
    assert_eq!(set["entities"]["account"]["singleRecordAudit"], false);
    let shown: serde_json::Value = serde_json::from_str(&ok(signet(&["settings", "audit", "show"], &data))).unwrap();
    assert_eq!(shown, set, "the change is kept");
    let refused = signet(&["settings", "audit", "set", "--interval", "0"], &data);
    assert!(
        !refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("userAccessAuditingInterval")
    );
    let refused = signet(&["settings", "audit", "set", "--read", "maybe"], &data);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("not on or off"));

    let log = ok(signet(
        &["query", "--kind", "activities", "--output", "json", "--columns", "operation,user,message", "--range", "1d"],
        &data,
    ));
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let find = |op: &str| log.as_array().unwrap().iter().find(|r| r["operation"] == op).cloned();
    assert!(find("UserAccessAuditStopped").is_some(), "{log}");
    let changed = find("AuditSettingsChanged").unwrap_or_else(|| panic!("{log}"));
    let message = changed["message"].as_str().unwrap();
    assert!(
        message.contains("IsUserAccessAuditEnabled: true -> false")
            && message.contains("UserAccessAuditingInterval: 4 -> 8"),
        "{message}"
    );
    assert!(changed["user"].as_str().unwrap().starts_with("cli:"), "{changed}");
}

#[test]
fn bad_arguments_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = signet(&["query", "--status", "sometimes"], &data);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sometimes"));
    let out = signet(&["report", "nonsense"], &data);
    assert!(!out.status.success());
    let missing = dir.path().join("missing.json");
    let out = signet(&["import", missing.to_str().unwrap()], &data);
    assert!(!out.status.success());
}

/// A `signet serve` child, stopped (SIGINT, then SIGKILL) when dropped, even on a failed test.
struct Server {
    child: std::process::Child,
    base: String,
    log: std::path::PathBuf,
}

impl Server {
    /// Starts `signet serve` on a free port. A probed port is free only until it is released:
    /// a server of another test may take it first, and a connection would then reach that
    /// server (the crash test restarts 100 times). So the child counts as started once its own
    /// log says it listens there; a child that could not bind is started again on another port.
    fn start(dir: &Path, data: &Path) -> Server {
        let log = dir.join("server.log");
        for _ in 0..5 {
            let port = {
                let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                probe.local_addr().unwrap().port()
            };
            let listen = format!("127.0.0.1:{port}");
            let child = Command::new(signet_bin())
                .args(["serve", "--listen", &listen, "--data", data.to_str().unwrap()])
                .env("RUST_LOG", "debug")
                // A shell set up for the command-line client: these are not server settings.
                .env("SIGNET_API_KEY", "sgk_0000000000000000_not-a-key")
                .env("SIGNET_SERVER", "http://127.0.0.1:1")
                .current_dir(dir)
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut server = Server { child, base: format!("http://{listen}"), log: log.clone() };
            let listening = format!("Signet is listening on http://{listen}/");
            let started = std::time::Instant::now();
            loop {
                let text = server.log_text();
                if text.contains(&listening) {
                    return server;
                }
                if server.child.try_wait().unwrap().is_some() {
                    assert!(text.contains("binding"), "server exited: {text}");
                    break; // the port was taken meanwhile: another one
                }
                assert!(started.elapsed().as_secs() < 60, "server did not start: {text}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        panic!("no free port for the server after 5 attempts");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server the way an operator does (Ctrl-C) and waits for it.
    fn stop(&mut self) {
        self.stop_with("-INT");
    }

    /// Sends `signal` (`kill`'s option) and waits for the server to exit (kills it after 30 s).
    fn stop_with(&mut self, signal: &str) {
        let _ = Command::new("kill").args([signal, &self.child.id().to_string()]).status();
        let started = std::time::Instant::now();
        while started.elapsed().as_secs() < 30 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a key with the CLI on a stopped server's data directory; returns the token.
fn create_key(data: &Path, args: &[&str]) -> String {
    let mut all = vec!["api-key", "create"];
    all.extend_from_slice(args);
    ok(signet(&all, data)).trim().to_string()
}

/// [`create_key`] with the node's configuration (`DIR/signet.toml`): on ClickHouse, a key of
/// the accounts the nodes share, valid on every node.
fn create_shared_key(dir: &Path, data: &Path, args: &[&str]) -> String {
    let config = dir.join("signet.toml");
    let mut all = vec!["api-key", "create", "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    ok(signet(&all, data)).trim().to_string()
}

/// A Global reader key made through the API by a signed-in administrator: its one-time answer.
fn create_key_through_api(http: &reqwest::blocking::Client, base: &str, cookie: &str, csrf: &str) -> serde_json::Value {
    http.post(format!("{base}/api/v1/keys"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .json(&serde_json::json!({ "name": "api-made", "type": "read", "role": "GlobalReader" }))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn signet_with_key(args: &[&str], data: &Path, key: &str) -> Output {
    Command::new(signet_bin())
        .args(args)
        .env("SIGNET_DATA_DIR", data)
        .env("SIGNET_API_KEY", key)
        .output()
        .expect("run signet")
}

#[test]
fn commands_work_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ingest = create_key(&data, &["--name", "loader", "--type", "ingest"]);
    let read = create_key(&data, &["--name", "cli", "--type", "read", "--role", "GlobalReader"]);
    assert!(ingest.starts_with("sgk_") && read.starts_with("sgk_"), "{ingest} {read}");
    let server = Server::start(dir.path(), &data);
    let with_server = |args: &[&str], key: &str| {
        let mut all = args.to_vec();
        all.extend(["--server", server.base.as_str()]);
        signet_with_key(&all, &data, key)
    };
    ok(with_server(&["demo", "--signins", "500", "--days", "5"], &ingest));
    // The data directory is held by the server: local mode must refuse, not corrupt it.
    let refused = signet(&["query"], &data);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // So must account changes.
    assert!(!signet(&["api-key", "list"], &data).status.success());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let summary: serde_json::Value =
        serde_json::from_str(&ok(with_server(&["report", "summary", "--days", "10"], &read))).unwrap();
    assert!(summary["total"].as_i64().unwrap() >= 500, "{summary}");
    let page = ok(with_server(&["query", "--limit", "3"], &read));
    assert!(page.contains("(3 rows)"), "{page}");
    // Each key does its own job only, and no key means no answer.
    let denied = with_server(&["query", "--limit", "3"], &ingest);
    assert!(String::from_utf8_lossy(&denied.stderr).contains("403"), "{}", String::from_utf8_lossy(&denied.stderr));
    let mut anonymous = vec!["query", "--server", server.base.as_str()];
    anonymous.push("--limit=1");
    let out = Command::new(signet_bin()).args(&anonymous).env_remove("SIGNET_API_KEY").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn no_listening_beyond_loopback_without_an_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = signet(&["serve", "--listen", "0.0.0.0:0", "--data", data.to_str().unwrap()], &data);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no Global administrator") && stderr.contains("signet admin create"), "{stderr}");
}

#[test]
fn no_secret_reaches_logs_metrics_errors_or_stored_events() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let password = "Correct-Horse-Battery-4711";
    let mut admin = Command::new(signet_bin())
        .args(["admin", "create", "--user", "root@example.com", "--password-stdin"])
        .env("SIGNET_DATA_DIR", &data)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    admin.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let created = admin.wait_with_output().unwrap();
    assert!(created.status.success());
    assert!(!String::from_utf8_lossy(&created.stdout).contains(password));
    let read = create_key(&data, &["--name", "metrics", "--type", "read", "--role", "SecurityReader"]);
    let ingest = create_key(&data, &["--name", "in", "--type", "ingest"]);

    let mut server = Server::start(dir.path(), &data);
    let http = reqwest::blocking::Client::new();
    let mut answers = String::new();
    let mut send = |request: reqwest::blocking::RequestBuilder| {
        let response = request.send().unwrap();
        let headers = format!("{:?}", response.headers());
        let text = response.text().unwrap();
        answers.push_str(&headers);
        answers.push_str(&text);
        text
    };
    let login = |password: &str| {
        http.post(format!("{}/api/v1/auth/login", server.base))
            .json(&serde_json::json!({ "username": "root@example.com", "password": password }))
    };
    send(login("Correct-Horse-Battery-0000"));
    let response = login(password).send().unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let session = cookie.split_once('=').unwrap().1.to_string();
    let me: serde_json::Value = response.json().unwrap();
    let csrf = me["csrfToken"].as_str().unwrap().to_string();
    // A key made through the API (its one-time answer is the only place it may appear).
    let created = create_key_through_api(&http, &server.base, &cookie, &csrf);
    let api_key = created["token"].as_str().unwrap().to_string();
    send(http.get(format!("{}/api/v1/signins", server.base)).bearer_auth(&api_key));
    send(http.get(format!("{}/api/v1/signins", server.base)).bearer_auth(format!("{api_key}x")));
    send(
        http.post(format!("{}/api/v1/signins", server.base))
            .bearer_auth(&ingest)
            .header("content-type", "application/json")
            .body("{\"id\":1}"),
    );
    send(http.get(format!("{}/api/v1/keys", server.base)).header("cookie", &cookie));
    send(http.get(format!("{}/api/v1/activities?limit=1000", server.base)).bearer_auth(&read));
    send(
        http.get(format!(
            "{}/api/v1/signins?limit=1000&columns=id,userPrincipalName,failureReason,additionalDetails",
            server.base
        ))
        .bearer_auth(&read),
    );
    let metrics = send(http.get(format!("{}/metrics", server.base)).bearer_auth(&read));
    assert!(metrics.contains("signet_"), "{metrics}");
    server.stop();

    // The records themselves, as stored: every event body in the data directory.
    let events = ok(signet(&["export", "--format", "ndjson", "--range", "1y"], &data));
    let activities = ok(signet(&["query", "--kind", "activities", "--output", "json", "--limit", "1000"], &data));
    assert!(activities.contains("SignInsListed"), "the reads were recorded: {activities}");
    let accounts = std::fs::read_to_string(data.join("auth/accounts.json")).unwrap();
    let sessions = std::fs::read_to_string(data.join("auth/sessions.jsonl")).unwrap();
    assert!(!sessions.is_empty(), "the console session is kept for the next start");
    let places = [
        ("server log", server.log_text()),
        ("sessions file", sessions),
        ("HTTP answers", answers),
        ("stored sign-ins", events),
        ("stored activities", activities),
        ("account store", accounts),
    ];
    let secret_part = |token: &str| token[21..].to_string();
    let secrets = [
        ("password", password.to_string()),
        ("session id", session),
        ("read key", secret_part(&read)),
        ("ingest key", secret_part(&ingest)),
        ("API-made key", secret_part(&api_key)),
    ];
    for (place, text) in &places {
        for (what, secret) in &secrets {
            assert!(!text.contains(secret.as_str()), "the {what} appears in the {place}");
        }
    }
}

#[test]
fn clickhouse_init_creates_and_migrates_the_schema() {
    let server = signet_store::clickhouse::server();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = ok(signet(&["clickhouse", "init", "--url", &server.url, "--database", "cli_init"], &data));
    assert!(first.contains("database cli_init: schema version 5"), "{first}");
    let again = ok(signet(&["clickhouse", "init", "--url", &server.url, "--database", "cli_init"], &data));
    assert_eq!(first, again, "idempotent");
    let ask = |sql: &'static str| {
        reqwest::blocking::Client::new().post(&server.url).body(sql).send().unwrap().text().unwrap()
    };
    let tables = ask("SELECT name FROM system.tables WHERE database = 'cli_init' ORDER BY name");
    let tables: Vec<&str> = tables.lines().collect();
    assert_eq!(
        tables,
        [
            "activities",
            "directory_audits",
            "signet_applied",
            "signet_documents",
            "signet_entries",
            "signet_migrations",
            "signins",
            "superseded"
        ]
    );
    // Migration 2 added the sign-ins' method set key after migration 1 made the table, 3 the
    // node and record columns.
    let columns = ask("SELECT name FROM system.columns WHERE database = 'cli_init' AND table = 'signins'");
    let last: Vec<&str> = columns.lines().rev().take(4).collect();
    assert_eq!(last, ["original", "body", "node", "auth_method_set"]);
    let refused = signet(&["clickhouse", "init", "--url", &server.url, "--database", "no-dashes"], &data);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("letters, digits and _"));

    // On a cluster: created ON CLUSTER, so every server has the tables.
    let cluster = signet_store::clickhouse::cluster();
    let name = signet_store::clickhouse::LocalCluster::NAME;
    let url = &cluster.servers[0].server.url;
    let args = ["clickhouse", "init", "--url", url, "--database", "cli_cluster", "--cluster", name];
    let first = ok(signet(&args, &data));
    assert!(first.contains(&format!("database cli_cluster on cluster {name}: schema version 5")), "{first}");
    assert_eq!(ok(signet(&args, &data)), first, "idempotent");
    for server in &cluster.servers {
        let tables = reqwest::blocking::Client::new()
            .post(&server.server.url)
            .body("SELECT name, engine FROM system.tables WHERE database = 'cli_cluster' ORDER BY name")
            .send()
            .unwrap()
            .text()
            .unwrap();
        let tables: Vec<&str> = tables.lines().collect();
        assert_eq!(
            tables,
            [
                "activities\tDistributed",
                "activities_local\tReplicatedReplacingMergeTree",
                "directory_audits\tDistributed",
                "directory_audits_local\tReplicatedReplacingMergeTree",
                "signet_applied\tReplicatedReplacingMergeTree",
                "signet_documents\tReplicatedReplacingMergeTree",
                "signet_entries\tReplicatedReplacingMergeTree",
                "signins\tDistributed",
                "signins_local\tReplicatedReplacingMergeTree",
                "superseded\tDistributed",
                "superseded_local\tReplicatedReplacingMergeTree",
            ],
            "{}",
            server.server.url
        );
    }
}

/// `storage = "clickhouse"`: `signet serve` keeps its event log in the data directory and the
/// queryable projection in ClickHouse; a restart replays nothing twice.
#[test]
fn serve_on_clickhouse() {
    let clickhouse = signet_store::clickhouse::server();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("signet.toml"),
        format!("storage = \"clickhouse\"\n[clickhouse]\nurl = \"{}\"\ndatabase = \"serve_test\"\n", clickhouse.url),
    )
    .unwrap();
    let ingest = create_key(&data, &["--name", "loader", "--type", "ingest"]);
    let read = create_key(&data, &["--name", "cli", "--type", "read", "--role", "GlobalReader"]);
    let total = |server: &Server| -> i64 {
        let out = signet_with_key(&["report", "summary", "--days", "10", "--server", &server.base], &data, &read);
        serde_json::from_str::<serde_json::Value>(&ok(out)).unwrap()["total"].as_i64().unwrap()
    };
    let mut server = Server::start(dir.path(), &data);
    ok(signet_with_key(&["demo", "--signins", "400", "--days", "5", "--server", &server.base], &data, &ingest));
    std::thread::sleep(std::time::Duration::from_millis(800));
    let first = total(&server);
    assert!(first >= 400, "{first}");
    let log = server.log_text();
    assert!(log.lines().any(|l| l.contains("storage ready") && l.contains("clickhouse")), "{log}");
    server.stop();
    let server = Server::start(dir.path(), &data);
    assert_eq!(total(&server), first, "the same count after a restart");
    let rows: String = reqwest::blocking::Client::new()
        .post(&clickhouse.url)
        .body("SELECT count() FROM serve_test.signins FINAL")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(rows.trim().parse::<i64>().unwrap() >= 400, "the rows are in ClickHouse: {rows}");
    // What ClickHouse holds, row by row against the node's log (the node stopped).
    let mut server = server;
    server.stop();
    let verify = Command::new(signet_bin())
        .args(["verify", "--projection"])
        .env("SIGNET_DATA_DIR", &data)
        .env_remove("SIGNET_SERVER")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}{}", String::from_utf8_lossy(&verify.stderr));
    assert!(report.contains("ClickHouse compared with the event log"), "{report}");
}

/// Two nodes on one ClickHouse database share accounts, API keys and settings: an
/// administrator and keys made with the CLI on node 1's directory work on node 2; a key made and
/// then revoked through node 1's API works, then stops working, on node 2; audit settings,
/// saved views and the users directory changed on one node are the other's too; console
/// sessions work on either node and end on both (signed out, or the password changed); and a node
/// restarted while ClickHouse is unreachable
/// still signs keys in with its local copy.
#[test]
fn two_nodes_share_accounts_keys_and_settings() {
    let clickhouse = signet_store::clickhouse::server();
    let database = format!("shared_docs_{}", std::process::id());
    let root = tempfile::tempdir().unwrap();
    let nodes: Vec<(std::path::PathBuf, std::path::PathBuf)> = (1..=2)
        .map(|n| {
            let dir = root.path().join(format!("node-{n}"));
            std::fs::create_dir_all(&dir).unwrap();
            let toml = format!(
                "storage = \"clickhouse\"\n[clickhouse]\nurl = \"{}\"\ndatabase = \"{database}\"\nnode = \"node-{n}\"\n",
                clickhouse.url
            );
            std::fs::write(dir.join("signet.toml"), toml).unwrap();
            (dir.clone(), dir.join("data"))
        })
        .collect();
    // The CLI on node 1's directory, its signet.toml read from the working directory.
    let cli = |args: &[&str], stdin: &str| {
        let mut command = Command::new(signet_bin());
        command.args(args).args(["--data", nodes[0].1.to_str().unwrap()]).current_dir(&nodes[0].0);
        command.env_remove("SIGNET_SERVER");
        ok(with_stdin(command, stdin)).trim().to_string()
    };
    let password = "Correct-Horse-Battery-2024";
    cli(&["admin", "create", "--user", "root@example.com", "--password-stdin"], &format!("{password}\n"));
    let read = cli(&["api-key", "create", "--name", "auditor", "--type", "read", "--role", "GlobalReader"], "");
    let ingest = cli(&["api-key", "create", "--name", "ingest", "--type", "ingest"], "");
    // A key node 2 made in its own directory before it shared (no config): set aside, not merged.
    let own = create_key(&nodes[1].1, &["--name", "own", "--type", "read", "--role", "GlobalReader"]);
    let mut servers: Vec<Server> = nodes.iter().map(|(dir, data)| Server::start(dir, data)).collect();
    let http = reqwest::blocking::Client::new();
    let status = |base: &str, key: &str| -> u16 {
        // Settings are in memory: the answer depends on the key only, ClickHouse up or not.
        let url = format!("{base}/api/v1/settings/audit");
        http.get(url).bearer_auth(key).send().unwrap().status().as_u16()
    };
    assert_eq!(status(&servers[1].base, &read), 200, "a key made on node 1's directory works on node 2");
    assert_eq!(status(&servers[1].base, &own), 401, "node 2's own earlier key is not the deployment's");
    assert!(nodes[1].1.join("auth/accounts.json.before-sharing").exists(), "node 2's own accounts are kept aside");

    // Node 2 signs the administrator in; node 1 makes a key through its API.
    let login = |node: usize| {
        let response = http
            .post(format!("{}/api/v1/auth/login", servers[node].base))
            .json(&serde_json::json!({ "username": "root@example.com", "password": password }))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "node {} signs the shared administrator in", node + 1);
        let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let me: serde_json::Value = response.json().unwrap();
        (cookie, me["csrfToken"].as_str().unwrap().to_string())
    };
    let (cookie, csrf) = login(0);
    let (cookie_2, _) = login(1);
    let created = create_key_through_api(&http, &servers[0].base, &cookie, &csrf);
    let made = created["token"].as_str().unwrap().to_string();
    let within = |what: &str, check: &dyn Fn() -> bool| {
        let started = std::time::Instant::now();
        while !check() {
            assert!(started.elapsed().as_secs() < 15, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    within("a key made on node 1 works on node 2", &|| status(&servers[1].base, &made) == 200);

    // Console sessions are the deployment's: one made on node 1 works on node 2 at once (no
    // sticky sessions needed), and signing out on node 2 ends it on node 1 too.
    let me = |node: usize, cookie: &str| -> u16 {
        let url = format!("{}/api/v1/auth/me", servers[node].base);
        http.get(url).header("cookie", cookie).send().unwrap().status().as_u16()
    };
    let (roaming, roaming_csrf) = login(0);
    assert_eq!(me(1, &roaming), 200, "a session made on node 1 works on node 2 at once");
    let signed_out = http
        .post(format!("{}/api/v1/auth/logout", servers[1].base))
        .header("cookie", &roaming)
        .header("x-csrf-token", &roaming_csrf)
        .send()
        .unwrap();
    assert!(signed_out.status().is_success(), "{}", signed_out.status());
    assert_eq!(me(1, &roaming), 401);
    within("signed out on node 2, the session ends on node 1", &|| me(0, &roaming) == 401);
    // A password changed through node 1 ends the account's sessions on node 2 too.
    let ops = http
        .post(format!("{}/api/v1/users", servers[0].base))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&serde_json::json!({ "username": "ops@example.com", "password": password, "role": "GlobalReader" }))
        .send()
        .unwrap();
    assert_eq!(ops.status(), 201);
    let ops: serde_json::Value = ops.json().unwrap();
    within("an account made on node 1 is known to node 2", &|| {
        let url = format!("{}/api/v1/users", servers[1].base);
        http.get(url).bearer_auth(&read).send().unwrap().text().unwrap().contains("ops@example.com")
    });
    let signed_in = http
        .post(format!("{}/api/v1/auth/login", servers[1].base))
        .json(&serde_json::json!({ "username": "ops@example.com", "password": password }))
        .send()
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let ops_cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    assert_eq!(me(1, &ops_cookie), 200);
    let changed = http
        .patch(format!("{}/api/v1/users/{}", servers[0].base, ops["id"].as_str().unwrap()))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&serde_json::json!({ "password": "Another-Correct-Horse-2025" }))
        .send()
        .unwrap();
    assert!(changed.status().is_success(), "{}", changed.text().unwrap());
    within("a password changed on node 1 ends the account's session on node 2", &|| me(1, &ops_cookie) == 401);
    let revoked = http
        .delete(format!("{}/api/v1/keys/{}", servers[0].base, created["key"]["id"].as_str().unwrap()))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.text().unwrap());
    within("a key revoked on node 1 stops working on node 2", &|| status(&servers[1].base, &made) == 401);

    // Audit settings changed on node 1 are node 2's.
    let settings = |node: usize| -> serde_json::Value {
        let url = format!("{}/api/v1/settings/audit", servers[node].base);
        http.get(url).bearer_auth(&read).send().unwrap().json().unwrap()
    };
    let mut changed = settings(0);
    let flipped = !changed["isReadAuditEnabled"].as_bool().unwrap();
    changed["isReadAuditEnabled"] = flipped.into();
    let put = http
        .put(format!("{}/api/v1/settings/audit", servers[0].base))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&changed)
        .send()
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().unwrap());
    within("audit settings changed on node 1 reach node 2", &|| {
        settings(1)["isReadAuditEnabled"].as_bool() == Some(flipped)
    });

    // The administrator's saved views, saved on node 1, are there on node 2.
    let views = serde_json::json!({ "views": [{ "name": "failures", "page": "/signins", "query": "status=failure" }] });
    let saved = http
        .put(format!("{}/api/v1/me/views", servers[0].base))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&views)
        .send()
        .unwrap();
    assert!(saved.status().is_success(), "{}", saved.text().unwrap());
    within("saved views reach node 2", &|| {
        let url = format!("{}/api/v1/me/views", servers[1].base);
        let answer = http.get(url).header("cookie", &cookie_2).send().unwrap();
        answer.json::<serde_json::Value>().ok().as_ref() == Some(&views)
    });

    // The users directory: learned from an event on node 1, listed by node 2; imported on
    // node 2 (an imported entry wins over a learned one), listed so by node 1.
    let activity = r#"{"Id":"dir-1","CreationTime":"2026-11-20T08:00:00Z","Operation":"UserLoggedIn","UserId":"jdoe","User":"john.doe@contoso.com"}"#;
    let sent = http
        .post(format!("{}/api/v1/activities", servers[0].base))
        .bearer_auth(&ingest)
        .header("content-type", "application/json")
        .body(activity)
        .send()
        .unwrap();
    assert!(sent.status().is_success(), "{}", sent.text().unwrap());
    let directory_entry = |node: usize| -> serde_json::Value {
        let url = format!("{}/api/v1/directory/users?q=jdoe", servers[node].base);
        let answer: serde_json::Value = http.get(url).bearer_auth(&read).send().unwrap().json().unwrap();
        answer["users"][0].clone()
    };
    within("a user learned on node 1 is in node 2's directory", &|| {
        directory_entry(1)["email"].as_str() == Some("john.doe@contoso.com")
    });
    let imported = http
        .post(format!("{}/api/v1/directory/users", servers[1].base))
        .bearer_auth(&ingest)
        .json(&serde_json::json!([{ "userId": "jdoe", "name": "John Doe", "email": "jd@contoso.com" }]))
        .send()
        .unwrap();
    assert!(imported.status().is_success(), "{}", imported.text().unwrap());
    within("a user imported on node 2 is in node 1's directory", &|| {
        let entry = directory_entry(0);
        entry["name"].as_str() == Some("John Doe") && entry["source"].as_str() == Some("imported")
    });

    // Node 2 restarted with ClickHouse out of reach: it still knows the keys (its local copy).
    servers[1].stop();
    let toml = nodes[1].0.join("signet.toml");
    let text = std::fs::read_to_string(&toml).unwrap().replace(&clickhouse.url, "http://127.0.0.1:9");
    std::fs::write(&toml, text).unwrap();
    servers[1] = Server::start(&nodes[1].0, &nodes[1].1);
    assert_eq!(
        status(&servers[1].base, &read),
        200,
        "node 2 without ClickHouse still signs keys in: {}",
        servers[1].log_text()
    );
    assert_eq!(status(&servers[1].base, &made), 401, "and knows the revocation");
    // The CLI on node 1's directory reads the shared settings too.
    let shown: serde_json::Value = serde_json::from_str(&cli(&["settings", "audit", "show"], "")).unwrap();
    assert_eq!(shown["isReadAuditEnabled"].as_bool(), Some(flipped), "{shown}");
}
