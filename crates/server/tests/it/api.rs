use crate::{signin, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn native_list_filters_columns_and_cursors() {
    let server = TestServer::start().await;
    let mut records: Vec<String> =
        (0..12).map(|i| signin(&format!("n{i:02}"), i, "alice@contoso.com", "Teams", 0, "")).collect();
    records.push(signin("imap", 2, "bob@contoso.com", "Exchange", 50126, r#","clientAppUsed":"IMAP4""#));
    records.push(signin("old", 24 * 40, "bob@contoso.com", "Exchange", 0, ""));
    server.load(&records).await;

    let (_, page) = server.get("/api/v1/signins?range=7d&limit=5&columns=ipAddress,clientAppUsed").await;
    assert_eq!(page["columns"], serde_json::json!(["id", "createdDateTime", "ipAddress", "clientAppUsed"]));
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    let mut seen = page["items"].as_array().unwrap().len();
    let mut cursor = page["nextCursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let (_, page) = server.get(&format!("/api/v1/signins?range=7d&limit=5&cursor={c}")).await;
        seen += page["items"].as_array().unwrap().len();
        cursor = page["nextCursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen, 13, "the 40-day-old sign-in is outside 7 days");

    let (_, page) = server.get("/api/v1/signins?clientApp=legacy&range=1m").await;
    assert_eq!(page["items"][0]["id"], "imap");
    let (_, page) = server.get("/api/v1/signins?user=BOB*&status=failure,interrupted&range=1m").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page) = server.get("/api/v1/signins?ip=10.1.2.0/24&range=1m").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "n02 and imap are 2 hours old");
    let (_, page) = server.get("/api/v1/signins?range=90d&errorCode=0&app=Exchange").await;
    assert_eq!(page["items"][0]["id"], "old");

    let (status, error) = server.get("/api/v1/signins?status=maybe").await;
    assert_eq!(status, 400);
    assert!(error["error"]["message"].as_str().unwrap().contains("maybe"));
    let (status, _) = server.get("/api/v1/signins?nosuchfield=1").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn details_show_every_revision_and_the_error_code() {
    let server = TestServer::start().await;
    server.load(&[signin("r1", 1, "a@x.com", "Teams", 50074, "")]).await;
    server.load(&[signin("r1", 1, "a@x.com", "Teams", 0, "")]).await;
    let (status, detail) = server.get("/api/v1/signins/r1").await;
    assert_eq!(status, 200);
    let revisions = detail["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 2);
    assert_eq!(revisions[0]["body"]["status"]["errorCode"], 50074);
    assert_eq!(revisions[1]["revision"], 2);
    assert_eq!(detail["errorCode"]["code"], 0);
    let (_, page) = server.get("/api/v1/signins?range=1m&columns=revision,status").await;
    assert_eq!(page["items"][0]["revision"], 2);
    assert_eq!(page["items"][0]["status"], "success");
}

#[tokio::test(flavor = "multi_thread")]
async fn export_streams_everything_safely() {
    let server = TestServer::start().await;
    let mut records: Vec<String> =
        (0..2500).map(|i| signin(&format!("e{i}"), i % 100, "a@x.com", "Teams", 0, "")).collect();
    records.push(signin(
        "evil",
        1,
        "evil@x.com",
        "Teams",
        0,
        r#","userDisplayName":"=HYPERLINK(\"http://x\",\"click\")""#,
    ));
    server.load(&records).await;

    let (status, csv) = server.get_text("/api/v1/signins/export?format=csv&range=1m&columns=userDisplayName").await;
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), vec!["id", "createdDateTime", "userDisplayName"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2501);
    let evil = rows.iter().find(|r| &r[0] == "evil").unwrap();
    assert_eq!(&evil[2], "'=HYPERLINK(\"http://x\",\"click\")", "formula cells are neutralised");

    let (_, ndjson) = server.get_text("/api/v1/signins/export?format=ndjson&range=1m&user=evil@x.com").await;
    let lines: Vec<serde_json::Value> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["userDisplayName"], "=HYPERLINK(\"http://x\",\"click\")", "JSON keeps the record as sent");
    let (_, json) = server.get_text("/api/v1/signins/export?format=json&range=1m").await;
    let all: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(all.len(), 2501);
    let (status, _) = server.get_text("/api/v1/signins/export?format=xlsx").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_page_through_everything_exactly_once() {
    let server = TestServer::start().await;
    // 60 hours x 25 events: many events share a timestamp, so pages end inside runs of ties;
    // ~1 MB of records, so that the export hands out several chunks.
    let records: Vec<String> =
        (0..1500).map(|i| signin(&format!("p{i:03}"), i % 60, "a@x.com", "Teams", 0, "")).collect();
    server.load(&records).await;
    let engine = server.engine.clone();
    let export = move |format: &str, page_rows: usize, stop_after: Option<usize>| {
        let params = vec![("format".to_string(), format.to_string()), ("range".to_string(), "1m".to_string())];
        let plan = signet_server::api::plan_export(
            "default",
            signet_model::LogKind::SignIn,
            &params,
            signet_model::time::now_micros(),
        )
        .unwrap()
        .with_page_rows(page_rows);
        let mut out = String::new();
        let mut chunks = 0;
        let mut sink = |chunk: String| {
            out.push_str(&chunk);
            chunks += 1;
            stop_after.is_none_or(|n| chunks < n)
        };
        let rows = signet_server::api::run_export(&engine, plan, &mut sink).unwrap();
        (rows, out)
    };
    let ids = |ndjson: &str| -> Vec<String> {
        ndjson
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (rows, whole) = tokio::task::spawn_blocking({
        let e = export.clone();
        move || e("ndjson", 100_000, None)
    })
    .await
    .unwrap();
    assert_eq!(rows, 1500);
    for page_rows in [7, 1499, 1500, 1501] {
        let (rows, paged) = tokio::task::spawn_blocking({
            let e = export.clone();
            move || e("ndjson", page_rows, None)
        })
        .await
        .unwrap();
        assert_eq!(rows, 1500, "pages of {page_rows}");
        assert_eq!(ids(&paged), ids(&whole), "pages of {page_rows}: same events, same order, none twice");
        let (_, csv) = tokio::task::spawn_blocking({
            let e = export.clone();
            move || e("csv", page_rows, None)
        })
        .await
        .unwrap();
        assert_eq!(csv.lines().count(), 1501, "CSV header + every row, pages of {page_rows}");
    }
    let mut sorted = ids(&whole);
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 1500);
    // A client that goes away stops the export (the reading thread ends too: this returns).
    let (rows, _) = tokio::task::spawn_blocking({
        let e = export.clone();
        move || e("ndjson", 1, Some(1))
    })
    .await
    .unwrap();
    assert!(rows < 1500, "stopped after the first chunk, wrote {rows}");
}

#[tokio::test(flavor = "multi_thread")]
async fn error_codes_health_and_metrics() {
    let server = TestServer::start().await;
    let (status, info) = server.get("/api/v1/errors/AADSTS50074").await;
    assert_eq!(status, 200);
    assert_eq!(info["interrupt"], true);
    assert!(info["remediation"].as_str().unwrap().len() > 10);
    let (status, _) = server.get("/api/v1/errors/99999999").await;
    assert_eq!(status, 404);
    let (status, _) = server.get("/api/v1/errors/abc").await;
    assert_eq!(status, 400);
    let (_, all) = server.get("/api/v1/errors").await;
    assert!(all["value"].as_array().unwrap().len() >= 28);
    let (status, health) = server.get("/healthz").await;
    assert_eq!((status, health["backend"].as_str()), (200, Some("duckdb")));
    let (_, metrics) = server.get_text("/metrics").await;
    for name in [
        "signet_ingested_total",
        "signet_ingest_queue_depth",
        "signet_http_request_duration_seconds_count",
        "signet_projection_lag_bytes",
        "signet_ingest_admitted_bytes",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(name), "{name} missing from {metrics}");
    }
    let value = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap();
        line[name.len() + 1..].parse().unwrap()
    };
    assert!(value("process_cpu_seconds_total") > 0.0);
    assert!(value("process_resident_memory_bytes") > 1e6, "a running server holds more than a megabyte");
    let (status, _) = server.get("/no/such/route").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_description_matches_the_routes() {
    use signet_server::routes::{Access, ROUTES};
    let server = TestServer::start().await;
    let (status, doc) = server.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            assert!(
                ROUTES.iter().any(|r| r.path == path && r.method.as_str() == method),
                "{method} {path} is documented but not served"
            );
            documented.push((method, path.clone()));
        }
    }
    for route in ROUTES.iter().filter(|r| r.access == Access::Needs(signet_auth::Permission::IngestEvents)) {
        assert!(
            documented.iter().any(|(m, p)| m == route.method.as_str() && p == route.path),
            "ingest route {} {} is not in the OpenAPI description",
            route.method,
            route.path
        );
    }
    // Every reference resolves.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"").skip(1).map(|rest| rest.split('"').next().unwrap()) {
        let pointer = reference.strip_prefix('#').unwrap();
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {reference}");
    }
    // The documented answer is what ingest answers.
    let activity = serde_json::json!({ "Id": "oa-1", "CreationTime": "2026-11-20T10:00:00Z", "Operation": "WhoAmI" });
    let (_, answer) = server.post("/api/v1/activities", "application/json", activity.to_string()).await;
    for field in doc["components"]["schemas"]["IngestResponse"]["required"].as_array().unwrap() {
        assert!(answer.get(field.as_str().unwrap()).is_some(), "{field} missing from {answer}");
    }
}
