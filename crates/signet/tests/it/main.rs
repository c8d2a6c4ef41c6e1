//! The `signet` binary end to end: demo data into a data directory, then the commands an
//! administrator runs against it, then the same commands against a running server.

use std::path::Path;
use std::process::{Command, Output};

fn signet(args: &[&str], data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(args)
        .env("SIGNET_DATA_DIR", data)
        .env_remove("SIGNET_SERVER")
        .output()
        .expect("run signet")
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

#[test]
fn commands_work_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["serve", "--listen", &listen, "--data", data.to_str().unwrap()])
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    let base = format!("http://{listen}");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(started.elapsed().as_secs() < 60, "server did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let with_server = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", base.as_str()]);
        signet(&all, &data)
    };
    ok(with_server(&["demo", "--signins", "500", "--days", "5"]));
    // The data directory is held by the server: local mode must refuse, not corrupt it.
    let refused = signet(&["query"], &data);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let summary: serde_json::Value =
        serde_json::from_str(&ok(with_server(&["report", "summary", "--days", "10"]))).unwrap();
    assert!(summary["total"].as_i64().unwrap() >= 500, "{summary}");
    let page = ok(with_server(&["query", "--limit", "3"]));
    assert!(page.contains("(3 rows)"), "{page}");
    server.kill().unwrap();
    let _ = server.wait();
}
