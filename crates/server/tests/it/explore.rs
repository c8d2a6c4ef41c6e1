//! The console's explorer APIs (facets, histogram, live stream, schema, saved views,
//! exports of every log) and the embedded console assets.

use reqwest::Method;
use serde_json::{json, Value};
use signet_auth::Role;

use crate::{signin, TestServer};

async fn loaded() -> TestServer {
    let server = TestServer::start().await;
    let mut records = Vec::new();
    for i in 0..30 {
        let (app, code) = match i % 3 {
            0 => ("Teams", 0),
            1 => ("Outlook", 50126),
            _ => ("Teams", 50074),
        };
        // Every fifth sign-in has no client app: exclusion must keep it.
        let extra = if i % 5 == 0 { r#","operatingSystem":"Windows""# } else { r#","operatingSystem":"iOS""# };
        let mut record = signin(&format!("e{i}"), i, &format!("user{}@example.com", i % 4), app, code, extra);
        if i % 5 == 0 {
            record = record.replace(r#""clientAppUsed":"Browser","#, "");
        }
        records.push(record);
    }
    server.load(&records).await;
    server
}

fn counts(facet: &Value) -> Vec<(String, i64)> {
    facet["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (v["value"].as_str().map_or_else(|| v["value"].to_string(), str::to_string), v["count"].as_i64().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn facets_count_the_filtered_events_and_exclusion_keeps_empty_fields() {
    let server = loaded().await;
    let (status, answer) =
        server.get("/api/v1/signins/facets?days=30&fields=appDisplayName,status,clientAppUsed").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["total"], 30);
    assert_eq!(counts(&answer["facets"][0]), vec![("Teams".into(), 20), ("Outlook".into(), 10)]);
    assert_eq!(
        counts(&answer["facets"][1]),
        vec![("failure".into(), 10), ("interrupted".into(), 10), ("success".into(), 10)]
    );
    assert_eq!(counts(&answer["facets"][2]), vec![("Browser".into(), 24), ("null".into(), 6)]);

    // The facets follow the list's filters.
    let (_, answer) = server.get("/api/v1/signins/facets?days=30&app=Outlook&fields=status").await;
    assert_eq!(answer["total"], 10);
    assert_eq!(counts(&answer["facets"][0]), vec![("failure".into(), 10)]);

    // Excluding a value keeps the events where the field is empty, like the facet shows.
    let (_, answer) = server.get("/api/v1/signins/facets?days=30&not.clientAppUsed=Browser&fields=status").await;
    assert_eq!(answer["total"], 6);
    let (_, list) = server.get("/api/v1/signins?days=30&not.app=Teams&not.status=failure&limit=100").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "Outlook sign-ins all failed");
    let (_, list) = server.get("/api/v1/signins?days=30&not.app=Outlook,Teams&limit=100").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);

    // Clear errors for fields that cannot be faceted or negated.
    let (status, answer) = server.get("/api/v1/signins/facets?fields=latitude").await;
    assert_eq!(status, 400);
    assert!(answer["error"]["message"].as_str().unwrap().contains("latitude"), "{answer}");
    let (status, _) = server.get("/api/v1/signins/facets?not.limit=3").await;
    assert_eq!(status, 400);
    let (status, _) = server.get("/api/v1/signins/facets?fields=nope").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn histogram_buckets_follow_the_range_and_add_up_to_the_count() {
    let server = loaded().await;
    for (query, width) in [("days=2", 3600), ("range=24h&buckets=24", 3600), ("range=7d&buckets=30", 6 * 3600)] {
        let (status, answer) = server.get(&format!("/api/v1/signins/histogram?{query}")).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["bucketSeconds"], width, "{query}");
        assert_eq!(answer["series"]["values"], json!(["success", "failure", "interrupted"]));
        let points = answer["points"].as_array().unwrap();
        let total: i64 = points.iter().map(|p| p["total"].as_i64().unwrap()).sum();
        let split: i64 = points.iter().flat_map(|p| p["counts"].as_array().unwrap()).map(|c| c.as_i64().unwrap()).sum();
        let (_, facets) = server.get(&format!("/api/v1/signins/facets?{query}&fields=status")).await;
        assert_eq!(total, facets["total"].as_i64().unwrap(), "{query}");
        assert_eq!(split, total, "every sign-in has one of the three statuses");
        // buckets are contiguous and aligned
        for pair in points.windows(2) {
            let a = signet_model::time::parse_time(pair[0]["start"].as_str().unwrap()).unwrap();
            let b = signet_model::time::parse_time(pair[1]["start"].as_str().unwrap()).unwrap();
            assert_eq!(b - a, width * 1_000_000);
        }
    }
    // In a time zone, bars are that zone's hours and days, and each says where it ends.
    let (_, answer) = server.get("/api/v1/signins/histogram?range=7d&buckets=7&tz=Asia/Kolkata").await;
    assert_eq!(answer["bucketSeconds"], 86_400);
    let points = answer["points"].as_array().unwrap();
    for point in points {
        let start = signet_model::time::parse_time(point["start"].as_str().unwrap()).unwrap();
        let end = signet_model::time::parse_time(point["end"].as_str().unwrap()).unwrap();
        assert_eq!(end - start, 86_400_000_000);
        // Midnight in India (UTC+05:30) is 18:30 UTC.
        assert_eq!(start.rem_euclid(86_400_000_000), 18 * 3_600_000_000 + 1_800_000_000, "{point}");
    }
    let total: i64 = points.iter().map(|p| p["total"].as_i64().unwrap()).sum();
    let (_, facets) = server.get("/api/v1/signins/facets?range=7d&fields=status").await;
    assert_eq!(total, facets["total"].as_i64().unwrap(), "nothing is lost by the shift");
    // A zoomed range gets minute buckets.
    let now = signet_model::time::now_micros();
    let from = signet_model::time::format_time(now - 30 * 60_000_000);
    let to = signet_model::time::format_time(now);
    let (_, answer) = server.get(&format!("/api/v1/signins/histogram?from={from}&to={to}")).await;
    assert_eq!(answer["bucketSeconds"], 60);
    let (status, _) = server.get("/api/v1/signins/histogram?buckets=0").await;
    assert_eq!(status, 400);
    // The other logs split by their result.
    let (status, answer) = server.get("/api/v1/activities/histogram?days=1").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["series"]["field"], "resultStatus");
}

/// Reads server-sent events until one named `event` arrives (or the time is up).
async fn next_event(response: &mut reqwest::Response, buffer: &mut String, event: &str) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let name = block.lines().find_map(|l| l.strip_prefix("event: ").or_else(|| l.strip_prefix("event:")));
            let data: String =
                block.lines().filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:"))).collect();
            if name == Some(event) {
                return serde_json::from_str(&data).ok();
            }
        }
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return None,
        }
    }
}

#[tokio::test]
async fn live_stream_sends_new_matching_events_once_whatever_their_time() {
    let server = loaded().await;
    let mut response =
        server.http.get(server.url("/api/v1/signins/live?app=Outlook&columns=appDisplayName")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    assert!(next_event(&mut response, &mut buffer, "ready").await.is_some());
    // A late event (a year old) and a non-matching one arrive; only the match is sent.
    let late = signin("late-1", 24 * 365, "late@example.com", "Outlook", 0, "");
    let other = signin("other-1", 0, "other@example.com", "Teams", 0, "");
    server.load(&[late, other]).await;
    let message = next_event(&mut response, &mut buffer, "rows").await.expect("a rows message");
    let items = message["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{message}");
    assert_eq!(items[0]["id"], "late-1");
    assert_eq!(message["columns"], json!(["id", "createdDateTime", "appDisplayName"]));
    // Nothing is sent twice.
    server.load(&[signin("late-2", 1, "late@example.com", "Outlook", 0, "")]).await;
    let message = next_event(&mut response, &mut buffer, "rows").await.expect("a second rows message");
    let ids: Vec<&str> = message["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["late-2"]);
    // Opening the stream is an audited read.
    server.settle().await;
    let (_, access) = server.get("/api/v1/activities?days=1&operation=SignInsLiveViewed").await;
    assert_eq!(access["items"].as_array().unwrap().len(), 1, "{access}");
}

#[tokio::test]
async fn schema_lists_the_columns_the_console_may_show() {
    let server = TestServer::start().await;
    let (status, answer) = server.get("/api/v1/schema/signins").await;
    assert_eq!(status, 200);
    let columns = answer["columns"].as_array().unwrap();
    let find = |name: &str| columns.iter().find(|c| c["name"] == name).cloned();
    assert_eq!(find("appDisplayName").unwrap()["default"], true);
    assert_eq!(find("ipAddress").unwrap()["filterable"], true);
    assert_eq!(find("latitude").unwrap()["filterable"], false);
    assert!(find("organizationId").is_none() && find("logPosition").is_none() && find("userHash").is_none());
    let (status, _) = server.get("/api/v1/schema/nothing").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn saved_views_are_per_account_validated_and_survive_a_restart() {
    let server = TestServer::start().await;
    let ann = server.session("default", "ann@example.com", Some(Role::SecurityReader)).await;
    let bob = server.session("default", "bob@example.com", Some(Role::SecurityReader)).await;
    let put = |session: &crate::Session, body: Value| {
        session.request(&server.anonymous, Method::PUT, server.url("/api/v1/me/views")).json(&body).send()
    };
    let get = |session: &crate::Session| {
        session.request(&server.anonymous, Method::GET, server.url("/api/v1/me/views")).send()
    };
    let views = json!({ "views": [{ "name": "Failures", "page": "/signins", "query": "status=failure&range=7d" }] });
    assert_eq!(put(&ann, views.clone()).await.unwrap().status(), 200);
    let mine: Value = get(&ann).await.unwrap().json().await.unwrap();
    assert_eq!(mine, views);
    let theirs: Value = get(&bob).await.unwrap().json().await.unwrap();
    assert_eq!(theirs, json!({ "views": [] }));
    for (bad, field) in [
        (json!({ "views": [{ "name": "", "page": "/signins", "query": "" }] }), "views[0].name"),
        (json!({ "views": [{ "name": "x", "page": "/elsewhere", "query": "" }] }), "views[0].page"),
        (json!({ "views": [{ "name": "x", "page": "/signins", "query": "a".repeat(5000) }] }), "views[0].query"),
    ] {
        let response = put(&ann, bad).await.unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains(field), "{body}");
    }
    // Still the first set; and on disk for the next start.
    let mine: Value = get(&ann).await.unwrap().json().await.unwrap();
    assert_eq!(mine, views);
    let document = signet_auth::document::FileDocument::in_data_dir(
        server.engine.data_dir(),
        signet_server::views::VIEWS_DOCUMENT,
    );
    let reopened = signet_server::views::ViewStore::open_document(Box::new(document)).unwrap();
    let owner = format!("default/{}", server.directory.user_by_name("ann@example.com").unwrap().id);
    assert_eq!(reopened.get(&owner).len(), 1);
    // A key has no views.
    let (status, _) = server.get("/api/v1/me/views").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn every_log_exports_with_the_list_filters() {
    let server = TestServer::start().await;
    let audits = [
        json!({ "id": "a1", "activityDateTime": "2026-01-05T10:00:00Z", "activityDisplayName": "Add user", "category": "UserManagement", "result": "success" }),
        json!({ "id": "a2", "activityDateTime": "2026-01-05T11:00:00Z", "activityDisplayName": "=HYPERLINK(\"x\")", "category": "UserManagement", "result": "failure" }),
    ];
    let (status, _) = server.post("/api/v1/directory-audits", "application/json", json!(audits).to_string()).await;
    assert_eq!(status, 200);
    server.settle().await;
    let (status, csv) = server.get_text("/api/v1/directory-audits/export?format=csv&from=2026-01-01T00:00:00Z").await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("id,activityDateTime,activityDisplayName"), "{csv}");
    assert!(csv.contains("'=HYPERLINK"), "formula neutralised: {csv}");
    let (_, ndjson) =
        server.get_text("/api/v1/directory-audits/export?format=ndjson&from=2026-01-01T00:00:00Z&result=failure").await;
    let records: Vec<Value> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["id"], "a2");
    let (status, _) = server.get_text("/api/v1/activities/export?format=json&days=1").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn console_assets_are_embedded_cached_and_locked_down() {
    let server = TestServer::start().await;
    let response = server.anonymous.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(headers["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = response.text().await.unwrap();
    for asset in ["/assets/app.js", "/assets/app.css"] {
        assert!(html.contains(asset), "{asset} linked from the shell");
    }
    for asset in ["app.js", "util.js", "explorer.js", "pages.js", "charts.js", "app.css", "favicon.svg"] {
        let response = server.anonymous.get(server.url(&format!("/assets/{asset}"))).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        let tag = response.headers()["etag"].clone();
        let again = server
            .anonymous
            .get(server.url(&format!("/assets/{asset}")))
            .header("if-none-match", tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{asset}");
    }
    let response = server.anonymous.get(server.url("/assets/../Cargo.toml")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let response = server.anonymous.get(server.url("/assets/secret.js")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}
