//! The same answers on both stores: one Signet over the embedded DuckDB and one over ClickHouse
//! (Debian's clickhouse-server 18.16, started by the test), the same generated events posted to
//! both through the HTTP API, then the native API, the Graph API, every sign-in report, facets,
//! histograms and exports compared response by response.

use std::sync::Arc;

use serde_json::{json, Value};
use signet_server::testkit::TestSignet;
use signet_server::ServerConfig;
use signet_store::clickhouse::{ClickHouseSettings, ClickHouseStore};

const DAY_US: i64 = 86_400_000_000;
/// 2026-10-01T00:00:00Z: the data's last day; it goes back 40 days.
const END: i64 = 1_790_812_800_000_000;

fn time(us: i64) -> String {
    signet_model::time::format_time(us)
}

fn signins(n: i64) -> Vec<String> {
    let apps = ["Outlook", "Teams", "SharePoint", "Payroll", "Wiki", "Azure Portal"];
    let codes = [0, 0, 0, 50126, 50074, 53003, 500121, 0];
    let clients = ["Browser", "Mobile Apps and Desktop clients", "IMAP4", "Exchange ActiveSync"];
    let places = [("Paris", "FR"), ("Boston", "US"), ("Berlin", "DE"), ("Leeds", "GB")];
    (0..n)
        .map(|i| {
            let at = END - (i % 40) * DAY_US + ((i * 7) % 24) * 3_600_000_000 + (i % 60) * 60_000_000 + i;
            let (city, country) = places[(i % 4) as usize];
            let methods = match i % 4 {
                0 => json!([{ "authenticationMethod": "Password", "succeeded": true }]),
                1 => json!([{ "authenticationMethod": "Password", "succeeded": true },
                            { "authenticationMethod": "Text message", "succeeded": i % 3 != 0 }]),
                2 => json!([{ "authenticationMethod": "FIDO2 security key", "succeeded": true }]),
                _ => json!([]),
            };
            json!({
                "id": format!("d-{i:05}"), "createdDateTime": time(at),
                "userId": format!("uid-{}", i % 23), "userPrincipalName": format!("user{}@contoso.com", i % 23),
                "userDisplayName": format!("User {}", i % 23), "appId": format!("app-{}", i % 6),
                "appDisplayName": apps[(i % 6) as usize], "ipAddress": format!("10.{}.{}.{}", i % 5, i % 17, i % 251),
                "clientAppUsed": clients[(i % 4) as usize], "isInteractive": i % 2 == 0,
                "status": { "errorCode": codes[(i % 8) as usize] },
                "location": { "city": city, "countryOrRegion": country },
                "riskLevelAggregated": (["none", "low", "high"][(i % 3) as usize]),
                "conditionalAccessStatus": (["success", "notApplied", "failure"][(i % 3) as usize]),
                "deviceDetail": { "browser": (["Edge 120", "Chrome 119", "Safari 17"][(i % 3) as usize]),
                                  "operatingSystem": (["Windows 11", "macOS", "iOS"][(i % 3) as usize]) },
                "authenticationDetails": methods,
            })
            .to_string()
        })
        .collect()
}

fn audits(n: i64) -> Vec<String> {
    (0..n)
        .map(|i| {
            json!({
                "id": format!("a-{i:04}"), "activityDateTime": time(END - (i % 30) * DAY_US + i * 1000),
                "activityDisplayName": (["Add user", "Update user", "Delete user", "Add member to group"][(i % 4) as usize]),
                "category": (["UserManagement", "GroupManagement"][(i % 2) as usize]),
                "result": if i % 9 == 0 { "failure" } else { "success" },
                "initiatedBy": { "user": { "userPrincipalName": format!("admin{}@contoso.com", i % 3) } },
                "targetResources": [{ "id": format!("u{}", i % 11), "displayName": format!("Target {}", i % 11), "type": "User" }],
            })
            .to_string()
        })
        .collect()
}

fn activities(n: i64) -> Vec<String> {
    (0..n)
        .map(|i| {
            json!({
                "Id": format!("x-{i:04}"), "CreationTime": time(END - (i % 30) * DAY_US + i * 1000),
                "Operation": (["Retrieve", "Update", "Export", "Delete"][(i % 4) as usize]),
                "User": format!("user{}@contoso.com", i % 7), "UserType": "Regular", "ClientIP": "10.9.8.7",
                "ResultStatus": if i % 10 == 0 { "Failed" } else { "Succeeded" },
                "EntityName": (["account", "contact", "lead"][(i % 3) as usize]), "ServiceName": "Dynamics 365",
            })
            .to_string()
        })
        .collect()
}

/// A response with what legitimately differs between two servers taken out: their addresses,
/// and when each received the events.
fn normalised(base: &str, body: &str) -> Value {
    let mut value: Value = serde_json::from_str(&body.replace(base, "BASE")).unwrap_or(Value::String(body.to_string()));
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("receivedDateTime");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

#[tokio::test(flavor = "multi_thread")]
async fn duckdb_and_clickhouse_give_the_same_answers() {
    let config = ServerConfig { retention_interval: None, ..ServerConfig::default() };
    let (duck_dir, ch_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let duck = TestSignet::start(duck_dir.path(), config.clone()).await;
    let settings = ClickHouseSettings {
        url: signet_store::clickhouse::server().url.clone(),
        urls: Vec::new(),
        database: format!("differential_{}", std::process::id()),
        user: None,
        password_file: None,
        node: "node-1".into(),
        cluster: None,
    };
    let store = tokio::task::spawn_blocking(move || ClickHouseStore::open(&settings).unwrap()).await.unwrap();
    let click = TestSignet::start_on(ch_dir.path(), config, Arc::new(store)).await;

    // The same events, in the same order, and a second revision of some sign-ins.
    let mut revised = signins(3000).into_iter().step_by(37).take(20).collect::<Vec<_>>();
    for line in &mut revised {
        *line = line.replace(r#""riskLevelAggregated":"none""#, r#""riskLevelAggregated":"medium""#);
        *line = line.replace(r#""errorCode":0"#, r#""errorCode":50140"#);
    }
    for server in [&duck, &click] {
        for chunk in signins(3000).chunks(500) {
            assert_eq!(server.post_signins(chunk.join("\n")).await, 200);
        }
        assert_eq!(server.post_signins(revised.join("\n")).await, 200);
        assert_eq!(server.post_events("/api/v1/directory-audits", audits(300).join("\n")).await, 200);
        assert_eq!(server.post_events("/api/v1/activities", activities(300).join("\n")).await, 200);
        server.settle().await;
    }

    let (from, to) = (time(END - 45 * DAY_US), time(END + 2 * DAY_US));
    let range = format!("from={from}&to={to}");
    let mut paths: Vec<String> = Vec::new();
    for filter in [
        "",
        "&status=failure",
        "&status=interrupted",
        "&app=Teams",
        "&user=user3@contoso.com",
        "&user=User 1*",
        "&ip=10.1.0.0/16",
        "&errorCode=50126",
        "&country=FR",
        "&clientApp=legacy",
        "&not.app=Outlook",
        "&sort=asc",
        "&limit=7",
        "&columns=id,createdDateTime,userPrincipalName,status,errorCode",
    ] {
        paths.push(format!("/api/v1/signins?{range}&limit=1000{filter}"));
    }
    for report in [
        "signins/timeline?bucket=week",
        "signins/timeline?bucket=day",
        "signins/timeline?bucket=hour",
        "apps/top?limit=10",
        "summary",
        "users/user3@contoso.com/pattern",
        "auth-methods",
    ] {
        let separator = if report.contains('?') { '&' } else { '?' };
        paths.push(format!("/api/v1/reports/{report}{separator}{range}"));
    }
    paths.push(format!("/api/v1/signins/facets?{range}"));
    paths.push(format!("/api/v1/signins/facets?{range}&status=failure"));
    paths.push(format!("/api/v1/signins/histogram?{range}"));
    paths.push(format!("/api/v1/signins/export?format=csv&{range}"));
    paths.push(format!("/api/v1/signins/export?format=ndjson&{range}&app=Payroll"));
    paths.push(format!("/api/v1/directory-audits?{range}&limit=1000"));
    paths.push(format!("/api/v1/directory-audits/facets?{range}"));
    paths.push(format!("/api/v1/activities?{range}&limit=1000&operation=Export"));
    paths.push(format!("/api/v1/activities/facets?{range}&serviceName=Dynamics 365"));
    paths.push("/api/v1/signins/d-00037".into());
    paths.push("/api/v1/directory-audits/a-0005".into());
    for filter in [
        "$top=50",
        "$top=50&$filter=status/errorCode eq 50126",
        "$top=50&$filter=startswith(userPrincipalName, 'user1') and appDisplayName eq 'Teams'",
        "$filter=createdDateTime ge 2026-09-20T00:00:00Z and riskLevelAggregated eq 'medium'",
    ] {
        paths.push(format!("/v1.0/auditLogs/signIns?{filter}"));
    }
    paths.push("/v1.0/auditLogs/directoryAudits?$top=20".into());

    let mut compared = 0;
    for path in &paths {
        let (duck_status, duck_body) = duck.get(path).await;
        let (click_status, click_body) = click.get(path).await;
        assert_eq!(duck_status, 200, "{path}: {duck_body}");
        assert_eq!(click_status, 200, "{path}: {click_body}");
        let (a, b) = (normalised(&duck.base, &duck_body), normalised(&click.base, &click_body));
        assert!(
            a == b,
            "{path} differs:\nDuckDB:     {}\nClickHouse: {}",
            &duck_body[..duck_body.len().min(600)],
            &click_body[..click_body.len().min(600)]
        );
        assert!(duck_body.len() > 40, "{path} answered something: {duck_body}");
        compared += 1;
    }
    assert_eq!(compared, paths.len());

    // Every page of the list, followed by its cursor, on both.
    let mut pages = Vec::new();
    for server in [&duck, &click] {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/signins?{range}&limit=250&status=failure");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (_, body) = server.get(&path).await;
            let page: Value = serde_json::from_str(&body).unwrap();
            ids.extend(page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()));
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        pages.push(ids);
    }
    assert!(pages[0].len() > 500 && pages[0] == pages[1], "{} / {}", pages[0].len(), pages[1].len());
    duck.shutdown().await;
    click.shutdown().await;
}

/// A `signet_*` gauge or counter from the metrics page.
fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in the metrics"))
}

/// Sign-ins stored, by the summary report over the whole data.
async fn total_signins(signet: &TestSignet) -> u64 {
    let (status, body) = signet.get("/api/v1/reports/summary?from=2026-01-01T00:00:00Z&to=2026-12-31T00:00:00Z").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["total"].as_u64().unwrap()
}

/// ClickHouse down for a while: the node keeps acknowledging into its event log (more events
/// than the projector keeps in memory), the lag shows in the metrics; the node restarts while
/// ClickHouse is still down and keeps acknowledging (and recognising re-sends); once ClickHouse
/// is back the node catches up from its log: every event there exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_keeps_acknowledging_while_clickhouse_is_down_and_catches_up() {
    let clickhouse = tokio::task::spawn_blocking(signet_store::clickhouse::local::OwnedServer::start).await.unwrap();
    let settings = ClickHouseSettings {
        url: clickhouse.server.url.clone(),
        urls: Vec::new(),
        database: "outage".into(),
        user: None,
        password_file: None,
        node: "node-1".into(),
        cluster: None,
    };
    let opening = settings.clone();
    let store = tokio::task::spawn_blocking(move || ClickHouseStore::open(&opening).unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = || ServerConfig { retention_interval: None, ..ServerConfig::default() };
    let signet = TestSignet::start_on(dir.path(), config(), Arc::new(store)).await;
    let all = signins(32_000);
    assert_eq!(signet.post_signins(all[..1000].join("\n")).await, 200);
    signet.settle().await;
    assert_eq!(total_signins(&signet).await, 1000);

    let clickhouse = Arc::new(clickhouse);
    let stopping = clickhouse.clone();
    tokio::task::spawn_blocking(move || stopping.kill()).await.unwrap();
    // 30,000 more while it is down: beyond the 25,000 the projector keeps in memory.
    for chunk in all[1000..31_000].chunks(1000) {
        assert_eq!(signet.post_signins(chunk.join("\n")).await, 200, "acknowledged while ClickHouse is down");
    }
    // The projector's first failed attempt may still be under way when the last batch is
    // acknowledged (once, the metrics were read before it had failed).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let page = loop {
        let (_, page) = signet.get("/metrics").await;
        if metric(&page, "signet_store_apply_errors_total") > 0.0 || std::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // The sign-ins, and Signet's own access-log records of the reads made meanwhile.
    assert!(metric(&page, "signet_projection_lag_events") >= 30_000.0, "{page}");
    assert!(metric(&page, "signet_projection_lag_bytes") > 0.0);
    assert!(metric(&page, "signet_store_apply_errors_total") > 0.0, "{page}");

    // The node restarts while ClickHouse is still down: it starts from its event log, keeps
    // acknowledging, and knows what it stored before (a re-send is a duplicate).
    signet.shutdown().await;
    let reopening = settings.clone();
    let refused = tokio::task::spawn_blocking(move || ClickHouseStore::open(&reopening)).await.unwrap();
    assert!(matches!(refused, Err(signet_store::StoreError::Unreachable(_))), "{refused:?}");
    let deferred =
        tokio::task::spawn_blocking(move || ClickHouseStore::open_deferred(&settings).unwrap()).await.unwrap();
    let signet = TestSignet::start_on(dir.path(), config(), Arc::new(deferred)).await;
    assert_eq!(
        signet.post_signins(all[31_000..].join("\n")).await,
        200,
        "acknowledged after a restart without ClickHouse"
    );
    assert_eq!(signet.post_signins(all[5000..6000].join("\n")).await, 200);
    let (_, page) = signet.get("/metrics").await;
    assert_eq!(metric(&page, "signet_duplicates_total{kind=\"signins\"}"), 1000.0, "{page}");
    assert_eq!(metric(&page, "signet_ingested_total{kind=\"signins\"}"), 1000.0, "{page}");

    let starting = clickhouse.clone();
    tokio::task::spawn_blocking(move || starting.restart()).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (_, page) = signet.get("/metrics").await;
        if metric(&page, "signet_projection_lag_events") == 0.0 {
            assert_eq!(metric(&page, "signet_projection_lag_bytes"), 0.0);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no catch-up within 120 s: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(total_signins(&signet).await, 32_000, "every event exactly once");
    // Re-sent after the catch-up: duplicates, not new events.
    assert_eq!(signet.post_signins(all[20_000..21_000].join("\n")).await, 200);
    signet.settle().await;
    assert_eq!(total_signins(&signet).await, 32_000);
}
