//! Activity logging as Dynamics 365 does it (issue 5): operation categories, the exclusion
//! list, and the documented examples replayed through the ingest API.

use serde_json::{json, Value};

use crate::TestServer;

fn activity(id: &str, operation: &str, entity: &str, extra: Value) -> Value {
    let mut record = json!({
        "Id": id, "CreationTime": "2026-11-20T10:00:00Z", "Operation": operation,
        "OrganizationId": "contoso-crm", "UserType": "Regular", "User": "ann@contoso.com",
        "ClientIP": "10.1.2.3", "ResultStatus": "Succeeded", "EntityName": entity,
        "ServiceName": "Dynamics 365", "InstanceUrl": "https://contoso.crm.dynamics.com",
    });
    record.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    record
}

#[tokio::test(flavor = "multi_thread")]
async fn documented_examples_are_categorised_and_noise_is_excluded() {
    let server = TestServer::start().await;
    let account = "c0a8b2e4-59d6-4f6a-9c3e-000000000001";
    let batch = vec![
        // Reading an Account record.
        activity(
            "read-1",
            "Retrieve",
            "account",
            json!({
                "EntityId": account,
                "ItemUrl": format!("https://contoso.crm.dynamics.com/main.aspx?etn=account&id={account}&pagetype=entityrecord"),
                "ItemType": "account",
            }),
        ),
        // Viewing accounts in a grid.
        activity(
            "grid-1",
            "RetrieveMultiple",
            "account",
            json!({
                "Query": "<fetch><entity name=\"account\"><filter><condition attribute=\"statecode\" operator=\"eq\" value=\"0\"/></filter></entity></fetch>",
                "QueryResults": format!("{account},c0a8b2e4-59d6-4f6a-9c3e-000000000002"),
            }),
        ),
        // Converting a lead to an opportunity.
        activity("conv-1", "Create", "contact", json!({ "EntityId": "contact-1" })),
        activity("conv-2", "Create", "opportunity", json!({ "EntityId": "opp-1" })),
        activity("conv-3", "Update", "opportunity", json!({ "EntityId": "opp-1" })),
        activity("conv-4", "Update", "lead", json!({ "EntityId": "lead-1" })),
        activity("conv-5", "Update", "lead", json!({ "EntityId": "lead-1" })),
        // What a client does on its own: not logged, but counted.
        activity("noise-1", "WhoAmI", "", json!({})),
        activity("noise-2", "retrievefilteredforms", "", json!({})),
        activity("noise-3", "RetrieveMetadataChanges", "", json!({})),
    ];
    let body: Vec<String> = batch.iter().map(Value::to_string).collect();
    let (status, answer) = server.post("/api/v1/activities", "application/x-ndjson", body.join("\n")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["excluded"].as_u64(), answer["rejected"].as_u64()),
        (Some(7), Some(3), Some(0)),
        "{answer}"
    );
    server.settle().await;

    let list = |query: &'static str| {
        let server = &server;
        async move {
            let (status, page) = server
                .get(&format!(
                    "/api/v1/activities?range=1y&columns=id,operation,category,entityName,query,queryResults&{query}"
                ))
                .await;
            assert_eq!(status, 200, "{page}");
            page["items"].as_array().unwrap().clone()
        }
    };
    let all = list("").await;
    assert_eq!(all.len(), 7, "excluded operations are not stored: {all:?}");
    let category = |id: &str| all.iter().find(|r| r["id"] == id).map(|r| r["category"].clone()).unwrap();
    assert_eq!(category("read-1"), "Read");
    assert_eq!(category("grid-1"), "ReadMultiple");
    assert_eq!(category("conv-1"), "Create");
    assert_eq!(category("conv-5"), "Update");

    let grid = list("category=ReadMultiple").await;
    assert_eq!(grid.len(), 1);
    assert!(grid[0]["query"].as_str().unwrap().contains("statecode"), "the filter is kept");
    assert!(grid[0]["queryResults"].as_str().unwrap().contains(account), "the record ids shown are kept");
    assert_eq!(list("category=Update&entityName=lead").await.len(), 2);
    assert_eq!(list("category=Create,Update").await.len(), 5, "the lead conversion: 2 creates, 3 updates");

    let (_, metrics) = server.get_text("/metrics").await;
    assert!(metrics.lines().any(|l| l == "signet_activities_excluded_total 3"), "{metrics}");

    // A batch of nothing but excluded operations was handled as asked.
    let (status, answer) = server
        .post("/api/v1/activities", "application/json", activity("noise-4", "WhoAmI", "", json!({})).to_string())
        .await;
    assert_eq!((status, answer["excluded"].as_u64(), answer["accepted"].as_u64()), (200, Some(1), Some(0)), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_exclusion_list_is_configurable() {
    let config = signet_server::ServerConfig { activity_exclusions: vec![], ..signet_server::ServerConfig::default() };
    let server = TestServer::start_with(config).await;
    let (status, answer) = server
        .post("/api/v1/activities", "application/json", activity("w-1", "WhoAmI", "", json!({})).to_string())
        .await;
    assert_eq!((status, answer["accepted"].as_u64(), answer["excluded"].as_u64()), (200, Some(1), Some(0)), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_settings_decide_what_is_recorded_and_every_change_is_recorded() {
    let server = TestServer::start().await;
    let admin =
        server.session("default", "admin@default.example", Some(signet_auth::Role::SecurityAdministrator)).await;
    let put = |body: Value| {
        let request = admin.request(&server.anonymous, reqwest::Method::PUT, server.url("/api/v1/settings/audit"));
        async move {
            let response =
                request.header("content-type", "application/json").body(body.to_string()).send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, defaults) = server.get("/api/v1/settings/audit").await;
    assert_eq!(status, 200);
    assert_eq!(defaults["isAuditEnabled"], true);
    assert_eq!(defaults["userAccessAuditingInterval"], 4);

    let (status, saved) = put(json!({
        "isReadAuditEnabled": false,
        "entities": { "Lead": { "isAuditEnabled": false } },
    }))
    .await;
    assert_eq!(status, 200, "{saved}");
    assert!(saved["entities"]["lead"].is_object(), "entity names are folded: {saved}");
    let (status, refused) = put(json!({ "userAccessAuditingInterval": 0 })).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(server.get("/api/v1/settings/audit").await.1, saved, "a refused change changes nothing");

    let send = |records: Vec<Value>| {
        let body: Vec<String> = records.iter().map(Value::to_string).collect();
        let server = &server;
        async move { server.post("/api/v1/activities", "application/x-ndjson", body.join("\n")).await }
    };
    let (status, answer) = send(vec![
        activity("s-1", "Retrieve", "account", json!({})),
        activity("s-2", "RetrieveMultiple", "account", json!({})),
        activity("s-3", "Update", "lead", json!({})),
        activity("s-4", "Create", "contact", json!({})),
        activity("s-5", "UserAccessviaWeb", "", json!({})),
    ])
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["excludedReasons"]["read auditing is off"], 2, "{answer}");
    assert_eq!(answer["excludedReasons"]["auditing is off for entity lead"], 1, "{answer}");

    // Turning user access auditing off and on again: recorded as Dynamics records it.
    let (status, _) = put(json!({ "isUserAccessAuditEnabled": false })).await;
    assert_eq!(status, 200);
    let (_, answer) = send(vec![activity("s-6", "UserAccessviaWebServices", "", json!({}))]).await;
    assert_eq!(answer["excludedReasons"]["user access auditing is off"], 1, "{answer}");
    let (status, _) = put(json!({})).await;
    assert_eq!(status, 200);
    server.settle().await;

    let (_, page) = server
        .get("/api/v1/activities?range=1d&columns=operation,user,message&operation=UserAccessAudit*,AuditSettingsChanged&sort=asc")
        .await;
    let rows: Vec<(String, String, String)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or("").to_string();
            (text("operation"), text("user"), text("message"))
        })
        .collect();
    let operations: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        operations,
        [
            "AuditSettingsChanged",
            "AuditSettingsChanged", // the refused change is recorded too, as a failure
            "UserAccessAuditStopped",
            "AuditSettingsChanged",
            "UserAccessAuditStarted",
            "AuditSettingsChanged"
        ],
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r.1 == "admin@default.example"), "who changed it: {rows:?}");
    assert!(
        rows[0].2.contains("IsReadAuditEnabled: true -> false")
            && rows[0].2.contains("Entity lead: default -> audit off"),
        "{rows:?}"
    );
    assert!(rows[1].2.ends_with("-> 400"), "{rows:?}");
    assert!(rows[3].2.contains("IsUserAccessAuditEnabled: true -> false"), "{rows:?}");
    assert!(rows[3].2.contains("IsReadAuditEnabled: false -> true"), "PUT replaces the whole object: {rows:?}");
    assert!(rows[5].2.contains("IsUserAccessAuditEnabled: false -> true"), "{rows:?}");
}

fn access(id: &str, action: &str, user: &str, time: &str) -> Value {
    json!({ "Id": id, "CreationTime": time, "Operation": action, "User": user, "UserType": "Regular", "ClientIP": "10.0.0.9" })
}

#[tokio::test(flavor = "multi_thread")]
async fn one_user_access_record_per_user_type_and_interval_even_after_a_restart() {
    let server = TestServer::start().await;
    let send = |records: Vec<Value>| {
        let body: Vec<String> = records.iter().map(Value::to_string).collect();
        let server = &server;
        async move { server.post("/api/v1/activities", "application/x-ndjson", body.join("\n")).await }
    };
    let repeat = "user access already recorded for this user, access type and interval";
    // The default interval is 4 hours, aligned on the epoch: 08:00-12:00, 12:00-16:00 (UTC).
    let (status, answer) = send(vec![
        access("u1", "UserAccessviaWeb", "ann@x.com", "2026-11-20T08:00:00Z"),
        access("u2", "UserAccessviaWeb", "ANN@x.com", "2026-11-20T08:30:00Z"),
        access("u3", "useraccessviaweb", "ann@x.com", "2026-11-20T11:59:59Z"),
        access("u4", "UserAccessviaWebServices", "ann@x.com", "2026-11-20T09:00:00Z"),
        access("u5", "UserAccessviaWeb", "bob@x.com", "2026-11-20T10:00:00Z"),
        access("u6", "UserAccessviaWeb", "ann@x.com", "2026-11-20T12:00:00Z"),
    ])
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["excludedReasons"][repeat].as_u64()),
        (Some(4), Some(2)),
        "{answer}"
    );
    // A chatty client, one request at a time.
    for (n, minute) in ["09:15", "10:45", "11:30"].iter().enumerate() {
        let (_, answer) =
            send(vec![access(&format!("c{n}"), "UserAccessviaWeb", "ann@x.com", &format!("2026-11-20T{minute}:00Z"))])
                .await;
        assert_eq!((answer["accepted"].as_u64(), answer["excluded"].as_u64()), (Some(0), Some(1)), "{answer}");
    }
    // Retrying the first record is still safe (not a new record).
    let (_, answer) = send(vec![access("u1", "UserAccessviaWeb", "ann@x.com", "2026-11-20T08:00:00Z")]).await;
    assert_eq!(answer["accepted"], 0, "{answer}");
    server.settle().await;
    let (_, page) = server
        .get("/api/v1/activities?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z&operation=UserAccess*&columns=id")
        .await;
    let mut ids: Vec<&str> = page["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["u1", "u4", "u5", "u6"]);

    // A restart forgets the claims in memory; the store still knows the intervals.
    use signet_server::user_access::{key_of, UserAccessIndex};
    let restarted = UserAccessIndex::default();
    let engine = server.engine.clone();
    let verdicts = tokio::task::spawn_blocking(move || {
        let probe = |user: &str, time: &str, hours: u32| {
            let body = access("probe", "UserAccessviaWeb", user, time).to_string();
            let event = signet_model::normalize(signet_model::LogKind::Activity, body.as_bytes()).unwrap();
            restarted.claim(&engine, &key_of("default", &event, hours).unwrap()).unwrap()
        };
        [
            probe("ann@x.com", "2026-11-20T10:00:00Z", 4),  // stored u1 covers it
            probe("ann@x.com", "2026-11-20T08:45:00Z", 1),  // a shorter interval: u1 is in 08:00-09:00 too
            probe("ann@x.com", "2026-11-20T09:30:00Z", 1),  // 09:00-10:00 has no web record of ann
            probe("carl@x.com", "2026-11-20T10:00:00Z", 4), // nobody recorded carl
            probe("carl@x.com", "2026-11-20T11:00:00Z", 4), // ... until just now
        ]
    })
    .await
    .unwrap();
    assert_eq!(verdicts, [false, false, true, true, false]);

    // Without a user there is nothing to count per user: a clear rejection.
    let (status, answer) =
        send(vec![json!({ "Id": "nouser", "CreationTime": "2026-11-20T08:00:00Z", "Operation": "UserAccessviaWeb" })])
            .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["errors"][0]["field"], "User", "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn preconfigured_activity_reports_count_what_their_rules_say() {
    let server = TestServer::start().await;
    let by = |user: &str| json!({ "User": user });
    let batch = vec![
        activity("r-oob", "Retrieve", "account", json!({})),
        activity("r-oob-2", "Update", "Contact", json!({})),
        activity("r-custom", "Create", "new_project", json!({})),
        activity("r-admin", "Update", "systemuser", json!({})),
        activity("r-other", "Retrieve", "savedquery", json!({})),
        activity("r-bulk", "BulkDelete", "account", json!({})),
        activity("r-import", "ImportRecordsImport", "", json!({})),
        activity(
            "r-center",
            "Retrieve",
            "",
            json!({ "ItemUrl": "https://admin.powerplatform.microsoft.com/environments", "ServiceName": "Power Platform admin center" }),
        ),
        activity("r-internal", "Retrieve", "", json!({ "UserType": 3 })),
        activity("r-access", "UserAccessviaWeb", "", json!({})),
        activity("r-plugin", "SetState", "sdkmessageprocessingstep", json!({})),
        activity("r-activate", "ActivateProcess", "", json!({})),
        activity("r-excel-1", "ExportToExcel", "account", by("ann@contoso.com")),
        activity("r-excel-2", "ExportToExcel", "contact", by("ann@contoso.com")),
        activity("r-report", "ExportReport", "", by("bob@contoso.com")),
    ];
    let body: Vec<String> = batch.iter().map(Value::to_string).collect();
    let (status, answer) = server.post("/api/v1/activities", "application/x-ndjson", body.join("\n")).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(15)), "{answer}");
    server.settle().await;

    let range = "from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z";
    let (status, overview) = server.get(&format!("/api/v1/reports/activities?{range}")).await;
    assert_eq!(status, 200, "{overview}");
    let count = |id: &str| {
        overview["reports"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap()["count"].as_u64().unwrap()
    };
    // account, Contact, the bulk delete on account, the exports of account and contact.
    assert_eq!(count("out-of-box-entity"), 5);
    assert_eq!(count("custom-entity"), 1);
    assert_eq!(count("admin-entity"), 2, "systemuser and the plug-in step");
    assert_eq!(count("other-entity"), 1, "savedquery");
    assert_eq!(count("bulk-actions"), 2);
    assert_eq!(count("admin-center"), 1);
    assert_eq!(count("internal-tool"), 1, "UserType 3 is a datacenter operator");
    assert_eq!(count("sign-in-out"), 1);
    assert_eq!(count("process-activation"), 2);
    assert_eq!(count("exports"), 3);

    let (status, exports) = server.get(&format!("/api/v1/reports/activities/exports?{range}")).await;
    assert_eq!(status, 200, "{exports}");
    assert_eq!(exports["total"], 3);
    assert_eq!(exports["byUser"][0], json!({ "value": "ann@contoso.com", "count": 2 }), "exports by user: {exports}");
    assert_eq!(exports["byUser"][1], json!({ "value": "bob@contoso.com", "count": 1 }));
    assert!(exports["rule"].as_str().unwrap().contains("ExportToExcel"), "the rule is shown");

    // The report is a filter like any other: the list, with more filters, and the export.
    let (_, page) = server.get(&format!("/api/v1/activities?report=exports&user=ann*&columns=id&{range}")).await;
    let mut ids: Vec<&str> = page["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec!["r-excel-1", "r-excel-2"]);
    let link = exports["list"].as_str().unwrap();
    let (status, linked) = server.get(&format!("{link}&columns=id")).await;
    assert_eq!((status, linked["items"].as_array().map(Vec::len)), (200, Some(3)), "{link}");
    let (status, csv) =
        server.get_text(&format!("/api/v1/activities/export?format=csv&report=custom-entity&{range}")).await;
    assert_eq!(status, 200);
    assert!(csv.contains("new_project") && !csv.contains("savedquery"), "{csv}");

    let (status, unknown) = server.get("/api/v1/reports/activities/everything").await;
    assert_eq!(status, 404, "{unknown}");
    let (status, bad) = server.get("/api/v1/activities?report=everything").await;
    assert_eq!(status, 400);
    assert!(bad.to_string().contains("exports"), "the error lists the reports: {bad}");
}

#[tokio::test(flavor = "multi_thread")]
async fn user_login_sessions_with_names_from_the_users_directory() {
    let server = TestServer::start().await;
    // The users directory, imported as Finance and Operations exports it.
    let csv = "User ID,User name,Email,Enabled\njdoe,John Doe,john.doe@contoso.com,Yes\n";
    let (status, answer) = server.post("/api/v1/directory/users", "text/csv", csv).await;
    assert_eq!((status, answer["added"].as_u64()), (200, Some(1)), "{answer}");
    let (status, refused) =
        server.post("/api/v1/directory/users", "text/csv", "User ID,Email\nok,a@b.c\n,x@contoso.com\n").await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused.to_string().contains("user 1"), "which row: {refused}");

    let event = |id: &str, op: &str, at: &str, user: &str, email: &str, session: &str| json!({ "Id": id, "CreationTime": at, "Operation": op, "UserId": user, "User": email, "CorrelationId": session });
    let batch = [
        event("e1", "UserLoggedIn", "2026-11-10T08:00:00Z", "jdoe", "", "s1"),
        event("e2", "UserLoggedOut", "2026-11-10T12:30:00Z", "jdoe", "", "s1"),
        event("e3", "UserLoggedIn", "2026-11-12T09:00:00Z", "asmith", "anna.smith@contoso.com", "s2"),
        event("e4", "UserLoggedIn", "2026-11-14T07:00:00Z", "jdoe", "", "s3"),
        event("e5", "UserLoggedOut", "2026-11-14T08:00:00Z", "jdoe", "", "s3"),
        event("e6", "UserLoggedIn", "2026-11-01T07:00:00Z", "bwhite", "", "s4"),
    ];
    let body: Vec<String> = batch.iter().map(Value::to_string).collect();
    let (status, answer) = server.post("/api/v1/activities", "application/x-ndjson", body.join("\n")).await;
    assert_eq!(status, 200, "{answer}");
    server.settle().await;

    // asmith's email is learned from the events (in the background; imported entries are not
    // overwritten).
    let mut learned = Value::Null;
    for _ in 0..50 {
        learned = server.get("/api/v1/directory/users?q=anna").await.1;
        if learned["total"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(learned["users"][0]["userId"], "asmith", "{learned}");
    assert_eq!(learned["users"][0]["source"], "learned");
    let (_, jdoe) = server.get("/api/v1/directory/users?q=jdoe").await;
    assert_eq!(
        (jdoe["users"][0]["source"].as_str(), jdoe["users"][0]["name"].as_str()),
        (Some("imported"), Some("John Doe"))
    );

    // Everyone who signed in during the 7 days before 15 November.
    let (status, report) = server.get("/api/v1/reports/signed-in-users?before=2026-11-15&days=7").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["from"].as_str(), report["to"].as_str()),
        (Some("2026-11-08T00:00:00Z"), Some("2026-11-15T00:00:00Z"))
    );
    let users = report["users"].as_array().unwrap();
    let ids: Vec<&str> = users.iter().map(|u| u["userId"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["asmith", "jdoe"], "bwhite signed in before the window: {report}");
    let jdoe = &users[1];
    assert_eq!((jdoe["userName"].as_str(), jdoe["email"].as_str()), (Some("John Doe"), Some("john.doe@contoso.com")));
    assert_eq!((jdoe["sessions"].as_i64(), jdoe["lastSignIn"].as_str()), (Some(2), Some("2026-11-14T07:00:00Z")));

    // Sessions, newest first, with their end when the user signed out.
    let (status, page) = server.get("/api/v1/reports/sessions?from=2026-11-01T00:00:00Z&to=2026-11-20T00:00:00Z").await;
    assert_eq!(status, 200, "{page}");
    let sessions = page["sessions"].as_array().unwrap();
    let summary: Vec<(&str, Option<&str>, Option<i64>)> = sessions
        .iter()
        .map(|s| (s["sessionId"].as_str().unwrap(), s["end"].as_str(), s["durationSeconds"].as_i64()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("s3", Some("2026-11-14T08:00:00Z"), Some(3600)),
            ("s2", None, None),
            ("s1", Some("2026-11-10T12:30:00Z"), Some(16200)),
            ("s4", None, None),
        ]
    );
    assert_eq!(sessions[0]["userName"], "John Doe");

    assert_eq!(sessions[1]["email"], "anna.smith@contoso.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_records_are_stored_whole_and_split_ones_are_imported_whole() {
    let server = TestServer::start().await;
    // A grid of 5,000 records: about 185 KB of QueryResults, far above Dynamics' 3 KB.
    let ids: Vec<String> = (0..5000).map(|i| format!("{i:08}-0000-4000-8000-000000000000")).collect();
    let results = ids.join(",");
    let big =
        activity("big-1", "RetrieveMultiple", "account", json!({ "QueryResults": results, "Query": "statecode eq 0" }));
    let (status, answer) = server.post("/api/v1/activities", "application/json", big.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    server.settle().await;
    let (_, page) = server.get("/api/v1/activities?id=big-1&columns=queryResults&range=1y").await;
    assert_eq!(page["items"][0]["queryResults"].as_str().map(str::len), Some(results.len()), "stored whole");

    // The same record cut into 3 KB parts for a limited destination comes back whole through the
    // importer, and an incomplete set is reported without losing the other records.
    let mut second = big.clone();
    second["Id"] = json!("big-2");
    let parts = signet_import::parts::split(second.as_object().unwrap(), 3072).unwrap();
    assert!(parts.len() > 50, "{} parts", parts.len());
    let mut file: Vec<String> = parts.iter().rev().map(|p| Value::Object(p.clone()).to_string()).collect();
    let mut third = big.clone();
    third["Id"] = json!("big-3");
    let mut broken = signet_import::parts::split(third.as_object().unwrap(), 3072).unwrap();
    broken.remove(3);
    file.extend(broken.iter().map(|p| Value::Object(p.clone()).to_string()));
    file.push(activity("small-1", "Retrieve", "account", json!({})).to_string());
    let (status, answer) = server.post("/api/v1/import", "application/x-ndjson", file.join("\n")).await;
    assert_eq!(status, 207, "{answer}");
    assert_eq!(answer["accepted"].as_u64(), Some(2), "big-2 and small-1");
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), broken.len(), "every part of the incomplete set is named");
    assert!(errors[0]["reason"].as_str().unwrap().contains("parts [4]"), "{answer}");
    server.settle().await;
    let (_, page) = server.get("/api/v1/activities?id=big-2&columns=queryResults,correlationId&range=1y").await;
    assert_eq!(page["items"][0]["queryResults"].as_str(), Some(results.as_str()), "reassembled");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}
