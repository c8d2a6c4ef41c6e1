use std::collections::HashSet;

use crate::{signin, TestServer};

async fn thirty(server: &TestServer) {
    let records: Vec<String> = (0..30)
        .map(|i| {
            signin(
                &format!("g{i:02}"),
                i,
                if i % 2 == 0 { "even@x.com" } else { "odd@x.com" },
                "Teams",
                if i % 3 == 0 { 50126 } else { 0 },
                r#","riskEventTypes_v2":["unfamiliarFeatures"]"#,
            )
        })
        .collect();
    server.load(&records).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_follow_next_links_to_the_end() {
    let server = TestServer::start().await;
    thirty(&server).await;
    let mut url = server.url("/v1.0/auditLogs/signIns?$top=7");
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let page: serde_json::Value = server.http.get(&url).send().await.unwrap().json().await.unwrap();
        pages += 1;
        for item in page["value"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_string());
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(ids.len(), 30);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 30, "no duplicates across pages");
    assert_eq!(ids[0], "g00", "newest first");
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_and_single_records() {
    let server = TestServer::start().await;
    thirty(&server).await;
    let (status, page) = server.get("/v1.0/auditLogs/signIns?$filter=status/errorCode%20eq%2050126%20and%20userPrincipalName%20eq%20'even@x.com'").await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["value"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["g00", "g06", "g12", "g18", "g24"]);
    let (_, page) = server.get("/v1.0/auditLogs/signIns?$filter=riskEventTypes_v2/any(t:t%20eq%20'unfamiliarFeatures')&$top=1&$select=id,userPrincipalName").await;
    let first = &page["value"][0];
    assert_eq!(first.as_object().unwrap().len(), 2, "$select keeps only the named properties: {first}");
    let (_, page) = server.get("/v1.0/auditLogs/signIns?$orderby=createdDateTime%20asc&$top=1").await;
    assert_eq!(page["value"][0]["id"], "g29");

    let (status, error) = server.get("/v1.0/auditLogs/signIns?$filter=endswith(userPrincipalName,'x.com')").await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "Request_UnsupportedQuery");
    assert!(error["error"]["message"].as_str().unwrap().contains("endswith"), "{error}");
    let (status, _) = server.get("/v1.0/auditLogs/signIns?$top=5000").await;
    assert_eq!(status, 400);

    let (status, record) = server.get("/v1.0/auditLogs/signIns/g03").await;
    assert_eq!(status, 200);
    assert_eq!(record["userPrincipalName"], "odd@x.com");
    assert_eq!(record["location"]["city"], "Paris");
    let raw = server.http.get(server.url("/v1.0/auditLogs/signIns/g03")).send().await.unwrap().text().await.unwrap();
    assert!(raw.starts_with(r#"{"id":"g03","createdDateTime""#), "served byte for byte as sent: {raw}");
    let (status, error) = server.get("/v1.0/auditLogs/signIns/nope").await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["code"], "Request_ResourceNotFound");
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_audits_through_graph() {
    let server = TestServer::start().await;
    let audits = [
        r#"{"id":"d1","activityDateTime":"2024-02-01T10:00:00Z","activityDisplayName":"Add user","category":"UserManagement","result":"success"}"#,
        r#"{"id":"d2","activityDateTime":"2024-02-01T11:00:00Z","activityDisplayName":"Delete user","category":"UserManagement","result":"failure"}"#,
    ];
    let (status, _) = server.post("/api/v1/directory-audits", "application/x-ndjson", audits.join("\n")).await;
    assert_eq!(status, 200);
    server.settle().await;
    let (_, page) = server.get("/v1.0/auditLogs/directoryAudits?$filter=result%20eq%20'failure'").await;
    assert_eq!(page["value"].as_array().unwrap().len(), 1);
    assert_eq!(page["value"][0]["id"], "d2");
    let (status, _) = server.get("/v1.0/auditLogs/directoryAudits/d1").await;
    assert_eq!(status, 200);
}
