use serde_json::json;

use crate::{signin, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn every_body_shape_is_accepted_and_retries_are_safe() {
    let server = TestServer::start().await;
    let one = signin("one", 1, "a@x.com", "Teams", 0, "");
    let (status, answer) = server.post("/api/v1/signins", "application/json", one.clone()).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)), "{answer}");

    let array =
        format!("[{},{}]", signin("two", 1, "a@x.com", "Teams", 0, ""), signin("three", 1, "b@x.com", "Teams", 0, ""));
    let (status, answer) = server.post("/api/v1/signins", "application/json", array).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(2)), "{answer}");

    let page = format!(r#"{{"@odata.context":"x","value":[{}]}}"#, signin("four", 1, "c@x.com", "Teams", 0, ""));
    let (status, answer) = server.post("/api/v1/signins", "application/json; charset=utf-8", page).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)), "{answer}");

    let ndjson = format!("{}\r\n\n{}\n", signin("five", 1, "c@x.com", "Teams", 0, ""), one);
    let (status, answer) = server.post("/api/v1/signins", "application/x-ndjson", ndjson).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
        (Some(1), Some(1)),
        "a re-sent event is a duplicate"
    );

    let revised = signin("one", 1, "a@x.com", "Teams", 50074, "");
    let (_, answer) = server.post("/api/v1/signins", "application/json", revised).await;
    assert_eq!((answer["accepted"].as_u64(), answer["revisions"].as_u64()), (Some(1), Some(1)), "{answer}");

    server.settle().await;
    let (_, list) = server.get("/api/v1/signins?limit=100").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 5, "five distinct sign-ins, latest revisions only");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_error_and_loses_nothing_else() {
    let server =
        TestServer::start_with(signet_server::ServerConfig { max_body_bytes: 4096, ..Default::default() }).await;

    let (status, answer) = server.post("/api/v1/signins", "application/json", "[{\"id\":\"a\",}]").await;
    assert_eq!(status, 400);
    assert!(answer["error"]["message"].as_str().unwrap().contains("line 1"), "{answer}");

    let (status, answer) = server.post("/api/v1/signins", "application/json", b"{\"id\":\"\xff\"}".to_vec()).await;
    assert_eq!(status, 400);
    assert!(answer["error"]["message"].as_str().unwrap().contains("UTF-8"), "{answer}");

    let (status, answer) = server.post("/api/v1/signins", "text/csv", "a,b").await;
    assert_eq!(status, 415, "{answer}");
    let response = server.writer.post(server.url("/api/v1/signins")).body("{}").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 415);

    let big = format!("[{}]", vec![signin("big", 1, "a@x.com", "Teams", 0, ""); 20].join(","));
    let (status, answer) = server.post("/api/v1/signins", "application/json", big).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "RequestEntityTooLarge");

    let (status, answer) = server.post("/api/v1/signins", "application/json", "  ").await;
    assert_eq!(status, 400, "{answer}");

    // Two good records around two bad ones: the good ones are stored, the bad ones named.
    let batch = [
        signin("good-1", 1, "a@x.com", "Teams", 0, ""),
        r#"{"id":"bad-time","createdDateTime":"yesterday"}"#.to_string(),
        r#"{"id":"bad-code","createdDateTime":"2024-01-01T00:00:00Z","status":{"errorCode":"oops"}}"#.to_string(),
        signin("good-2", 1, "a@x.com", "Teams", 0, ""),
    ]
    .join("\n");
    let (status, answer) = server.post("/api/v1/signins", "application/x-ndjson", batch).await;
    assert_eq!(status, 207, "{answer}");
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["rejected"], 2);
    assert_eq!(
        answer["errors"][0],
        json!({"index": 1, "line": 2, "field": "createdDateTime", "reason": answer["errors"][0]["reason"]})
    );
    assert_eq!(answer["errors"][1]["field"], "status.errorCode");
    assert!(answer["errors"][0]["reason"].as_str().unwrap().contains("yesterday"));

    let (status, answer) =
        server.post("/api/v1/signins", "application/json", r#"[{"createdDateTime":"2024-01-01T00:00:00Z"}]"#).await;
    assert_eq!(status, 400, "every record rejected");
    assert_eq!(answer["errors"][0]["field"], "id");

    server.settle().await;
    let (_, list) = server.get("/api/v1/signins?range=7d").await;
    let ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"good-1") && ids.contains(&"good-2"));

    let (_, metrics) = server.get_text("/metrics").await;
    assert!(metrics.contains("signet_rejected_total{kind=\"signins\"} 3"), "{metrics}");
    assert!(metrics.contains("signet_ingested_total{kind=\"signins\"} 2"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_bodies_are_decompressed_within_the_limit() {
    use std::io::Write;
    let server =
        TestServer::start_with(signet_server::ServerConfig { max_body_bytes: 64 << 10, ..Default::default() }).await;
    let post = |encoding: &'static str, body: Vec<u8>| {
        let request = server
            .writer
            .post(server.url("/api/v1/signins"))
            .header("content-type", "application/x-ndjson")
            .header("content-encoding", encoding)
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let records = |prefix: &str| {
        (0..20).map(|i| signin(&format!("{prefix}-{i}"), 1, "a@x.com", "Teams", 0, "")).collect::<Vec<_>>().join("\n")
    };

    // What log shippers send: gzip (Fluent Bit, Vector, Logstash), zstd, deflate (zlib).
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(records("gz").as_bytes()).unwrap();
    let (status, answer) = post("gzip", gzip.finish().unwrap()).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(20)), "{answer}");
    let (status, answer) = post("zstd", zstd::encode_all(records("zst").as_bytes(), 3).unwrap()).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(20)), "{answer}");
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(records("df").as_bytes()).unwrap();
    let (status, answer) = post("deflate", zlib.finish().unwrap()).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(20)), "{answer}");

    // A body that decompresses past the limit is refused like a large one (no unbounded memory).
    let bomb = zstd::encode_all(&vec![b' '; 8 << 20][..], 19).unwrap();
    assert!(bomb.len() < 4096, "{} bytes", bomb.len());
    let (status, answer) = post("zstd", bomb).await;
    assert_eq!(status, 413, "{answer}");
    // Not what it says it is, and an encoding Signet does not read: clear errors.
    let (status, answer) = post("gzip", records("plain").into_bytes()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("request body"), "{answer}");
    let (status, answer) = post("br", b"x".to_vec()).await;
    assert_eq!(status, 415, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("gzip, deflate, zstd"), "{answer}");
    let refused = server
        .writer
        .post(server.url("/api/v1/signins"))
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "br")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["accept-encoding"], "gzip, deflate, zstd", "RFC 9110 12.5.3");
    let (status, _) = post("identity", records("id").into_bytes()).await;
    assert_eq!(status, 200);
    // Clients learn it before they send (signet import --server compresses only then).
    let (_, health) = server.get("/healthz").await;
    assert_eq!(health["requestEncodings"], serde_json::json!(["gzip", "deflate", "zstd"]), "{health}");
    let (_, metrics) = server.get_text("/metrics").await;
    for (encoding, count) in [("gzip", 2), ("deflate", 1), ("zstd", 2)] {
        let line = format!("signet_http_compressed_requests_total{{encoding=\"{encoding}\"}} {count}\n");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }

    server.settle().await;
    let (_, list) = server.get("/api/v1/signins?limit=1000").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 80, "20 per accepted body, nothing from the refused ones");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_the_queue_has_no_room_for_is_refused_before_it_is_parsed() {
    // The projection applies only every 10 s, and the writer waits for it while anything is
    // unprojected: after a first batch, a second stays in flight (its bytes counted) for 3 s.
    let ingest = signet_store::IngestConfig {
        projection_interval: std::time::Duration::from_secs(10),
        projection_eager_events: usize::MAX,
        max_unprojected_events: 0,
        max_in_flight_bytes: 64 << 10,
        ..Default::default()
    };
    let server = TestServer::start_with_ingest(signet_server::ServerConfig::default(), ingest).await;
    let post = |body: String| {
        let request =
            server.writer.post(server.url("/api/v1/signins")).header("content-type", "application/x-ndjson").body(body);
        async move {
            let response = request.send().await.unwrap();
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            (response.status().as_u16(), retry_after, response.text().await.unwrap())
        }
    };
    let (status, _, answer) = post(signin("first", 1, "a@x.com", "Teams", 0, "")).await;
    assert_eq!(status, 200, "{answer}");
    let held = tokio::spawn(post(signin("second", 1, "a@x.com", "Teams", 0, "")));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // Not JSON at all: parsed, it would be a 400. The queue has no room for 65,000 more bytes
    // now, so it is turned away unread, as busy.
    let (status, retry_after, answer) = post("x".repeat(65_000)).await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("1")), "{answer}");
    // A compressed body declares no size of its own: it is read (decompressed), and turned
    // away before it is parsed.
    let compressed = server
        .writer
        .post(server.url("/api/v1/signins"))
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "zstd")
        .body(zstd::encode_all("x".repeat(65_000).as_bytes(), 3).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.status().as_u16(), 503, "{}", compressed.text().await.unwrap());
    held.await.unwrap();
    // A body that fits is read (and this one refused for what it is).
    let (status, _, answer) = post("x".repeat(1_000)).await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_being_read_holds_its_room_in_the_queue() {
    // Nothing is queued, but a request whose 40,000-byte body is still arriving holds room for
    // it: a second one of the same size does not fit beside it (64 KB), and is turned away
    // unread instead of being parsed and then refused when the first one's events take the room.
    let ingest = signet_store::IngestConfig { max_in_flight_bytes: 64 << 10, ..Default::default() };
    let server = TestServer::start_with_ingest(signet_server::ServerConfig::default(), ingest).await;
    let post = |body: reqwest::Body| {
        let request = server
            .writer
            .post(server.url("/api/v1/signins"))
            .header("content-type", "application/x-ndjson")
            .header("content-length", "40000")
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            (response.status().as_u16(), retry_after, response.text().await.unwrap())
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    tx.send(Ok(vec![b'x'; 10_000])).await.unwrap();
    let arriving = tokio::spawn(post(reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx))));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Not JSON: were it read, it would be a 400.
    let (status, retry_after, answer) = post("x".repeat(40_000).into()).await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("1")), "{answer}");
    // The first body completes (and is refused for what it is), which gives its room back.
    tx.send(Ok(vec![b'x'; 30_000])).await.unwrap();
    drop(tx);
    let (status, _, answer) = arriving.await.unwrap();
    assert_eq!(status, 400, "{answer}");
    let (status, _, answer) = post("x".repeat(40_000).into()).await;
    assert_eq!(status, 400, "read and parsed now: {answer}");
    let (_, metrics) = server.get_text("/metrics").await;
    assert!(metrics.contains("\nsignet_ingest_admitted_bytes 0\n"), "every request gave its room back: {metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_audits_and_activities_are_ingested() {
    let server = TestServer::start().await;
    let audit = r#"{"id":"Directory_1","activityDateTime":"2024-01-09T21:20:02Z","activityDisplayName":"Add member to group","category":"GroupManagement","result":"success","initiatedBy":{"user":{"userPrincipalName":"admin@x.com"}},"targetResources":[{"id":"g1","displayName":"Sales","type":"Group"}]}"#;
    let (status, answer) = server.post("/api/v1/directory-audits", "application/json", audit).await;
    assert_eq!(status, 200, "{answer}");
    let activity = r#"{"Id":"act-1","CreationTime":"2024-01-09T10:00:00","Operation":"Retrieve","User":"bob@x.com","EntityName":"Account","UserType":"Regular","OrganizationId":"ignored-org"}"#;
    let (status, answer) = server.post("/api/v1/activities", "application/json", activity).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = server
        .post("/api/v1/activities", "application/json", r#"{"Id":"x","CreationTime":"2024-01-09T10:00:00"}"#)
        .await;
    assert_eq!((status, answer["errors"][0]["field"].as_str()), (400, Some("Operation")));
    server.settle().await;
    let (_, list) = server.get("/api/v1/activities?operation=retrieve&from=2024-01-01T00:00:00Z").await;
    assert_eq!(list["items"][0]["id"], "act-1");
    assert_eq!(list["items"][0]["user"], "bob@x.com");
    let (_, list) = server.get("/api/v1/directory-audits?user=admin@x.com&from=2024-01-01T00:00:00Z").await;
    assert_eq!(list["items"][0]["activityDisplayName"], "Add member to group");
}

#[tokio::test(flavor = "multi_thread")]
async fn import_endpoint_keeps_the_source_record() {
    let server = TestServer::start().await;
    let la = r#"{"TimeGenerated":"2021-04-28T14:08:45Z","Type":"SigninLogs","Id":"la-1","ResultType":"50126","UserPrincipalName":"a@b.c","LocationDetails":"{\"city\":\"Haifa\"}"}"#;
    let (status, answer) = server.post("/api/v1/import", "application/octet-stream", la).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["signIns"], 1);
    server.settle().await;
    let (status, detail) = server.get("/api/v1/signins/la-1").await;
    assert_eq!(status, 200, "{detail}");
    let revision = &detail["revisions"][0];
    assert_eq!(revision["body"]["location"]["city"], "Haifa");
    assert_eq!(revision["original"]["LocationDetails"], "{\"city\":\"Haifa\"}");
    assert_eq!(detail["errorCode"]["code"], 50126);
}

#[tokio::test]
async fn an_okta_event_hook_is_verified_then_delivers_events() {
    let server = TestServer::start().await;
    let hook = server.url("/api/v1/okta/event-hook");
    // Okta's one-time verification, with the ingest key as the hook's Authorization header.
    let verified = server.writer.get(&hook).header("X-Okta-Verification-Challenge", "chal-123").send().await.unwrap();
    assert_eq!(verified.status(), 200);
    assert_eq!(verified.json::<serde_json::Value>().await.unwrap(), serde_json::json!({ "verification": "chal-123" }));
    let call = serde_json::json!({
        "eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "contentType": "application/json",
        "data": { "events": [
            { "uuid": "hook-1", "published": "2026-01-05T10:00:00.000Z", "eventType": "user.authentication.sso",
              "actor": { "id": "00u1", "type": "User", "alternateId": "ann@x.com" }, "outcome": { "result": "SUCCESS" },
              "target": [{ "id": "0oa1", "type": "AppInstance", "displayName": "Workday" }] },
            { "uuid": "hook-2", "published": "2026-01-05T10:01:00.000Z", "eventType": "group.user_membership.add",
              "displayMessage": "Add user to group membership", "actor": { "id": "00uA", "type": "User", "alternateId": "admin@x.com" },
              "outcome": { "result": "SUCCESS" } },
            { "uuid": "", "published": "2026-01-05T10:02:00.000Z", "eventType": "user.session.start" }
        ] }
    });
    let (status, answer) = server.post("/api/v1/okta/event-hook", "application/json", call.to_string()).await;
    assert_eq!(status, 207, "{answer}");
    assert_eq!((answer["accepted"].as_i64(), answer["rejected"].as_i64()), (Some(2), Some(1)), "{answer}");
    assert_eq!(answer["errors"][0]["field"], "uuid");
    server.settle().await;
    let (_, page) = server.get("/api/v1/signins?range=10y&app=Workday&columns=id,userPrincipalName").await;
    assert_eq!(page["items"][0]["userPrincipalName"], "ann@x.com", "{page}");
    // Okta retries a call it has no answer to: the same events again are duplicates.
    let (_, again) = server.post("/api/v1/okta/event-hook", "application/json", call.to_string()).await;
    assert_eq!(again["duplicates"], 2, "{again}");
    let (status, _) = server.post("/api/v1/okta/event-hook", "application/json", "{\"events\": []}").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_ins_teach_the_users_directory() {
    let server = TestServer::start().await;
    let body = [signin("d1", 1, "zed@x.com", "Teams", 0, ""), signin("d2", 2, "yan@x.com", "Teams", 0, "")].join("\n");
    let (status, answer) = server.post("/api/v1/signins", "application/x-ndjson", body).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(2)), "{answer}");
    // Learned in the background after the answer.
    let mut learned = serde_json::Value::Null;
    for _ in 0..50 {
        learned = server.get("/api/v1/directory/users?q=uid-zed").await.1;
        if learned["total"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let user = &learned["users"][0];
    assert_eq!(
        (user["userId"].as_str(), user["name"].as_str(), user["email"].as_str(), user["source"].as_str()),
        (Some("uid-zed@x.com"), Some("User zed@x.com"), Some("zed@x.com"), Some("learned")),
        "{learned}"
    );
}
