//! The access matrix, end to end: every route x every kind of caller x own / other
//! organisation, with the exact status. The expectations below are written independently of
//! the server's route table; a route added there without a row here fails
//! `every_route_has_an_expectation`.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};
use signet_auth::{KeyKind, NewUser, Role, Secret};
use signet_server::routes::ROUTES;

use crate::{keyed_client, signin, Session, TestServer, PASSWORD};

/// Callers, by the name the table uses.
const GA: &str = "GlobalAdministrator";
const SA: &str = "SecurityAdministrator";
const SR: &str = "SecurityReader";
const GR: &str = "GlobalReader";
const RR: &str = "ReportsReader";
const USER: &str = "User";
const INGEST: &str = "IngestKey";
const READ: &str = "ReadKey";

const READERS: &[&str] = &[GA, SA, SR, GR, RR, READ];
const EXPORTERS: &[&str] = &[GA, SA, SR, GR, READ];
const EVERY_ACCOUNT: &[&str] = &[GA, SA, SR, GR, RR, USER];

/// Who may call a route.
#[derive(Clone, Copy)]
enum Who {
    Anyone,
    AnyCredential,
    Only(&'static [&'static str]),
}

/// One route: method, path, who may call it, status for a permitted caller of the owning
/// organisation, status for a permitted caller of another organisation.
struct Row {
    method: &'static str,
    path: &'static str,
    who: Who,
    own: u16,
    other: u16,
}

const fn row(method: &'static str, path: &'static str, who: Who, own: u16, other: u16) -> Row {
    Row { method, path, who, own, other }
}

use Who::*;

const TABLE: &[Row] = &[
    row("GET", "/", Anyone, 200, 200),
    row("GET", "/assets/{file}", Anyone, 200, 200),
    row("GET", "/api/v1/schema/{kind}", AnyCredential, 200, 200),
    row("GET", "/healthz", Anyone, 200, 200),
    row("GET", "/api/v1/openapi.json", Anyone, 200, 200),
    // Deployment metrics count every organisation's traffic: home organisation only.
    row("GET", "/metrics", Only(&[GA, SA, SR, GR, READ]), 200, 403),
    row("GET", "/api/v1/auth/me", AnyCredential, 200, 200),
    row("GET", "/api/v1/auth/providers", Anyone, 200, 200),
    // No identity provider is configured here (tests/e2e/oidc.test.mjs runs one).
    row("GET", "/api/v1/auth/oidc/{provider}/login", Anyone, 404, 404),
    row("GET", "/api/v1/auth/oidc/{provider}/callback", Anyone, 404, 404),
    row("POST", "/api/v1/signins", Only(&[GA, INGEST]), 200, 200),
    row("POST", "/api/v1/directory-audits", Only(&[GA, INGEST]), 200, 200),
    row("POST", "/api/v1/activities", Only(&[GA, INGEST]), 200, 200),
    row("POST", "/api/v1/import", Only(&[GA, INGEST]), 200, 200),
    // Without Okta's X-Okta-Verification-Challenge header: 400 once the access check passed.
    row("GET", "/api/v1/okta/event-hook", Only(&[GA, INGEST]), 400, 400),
    row("POST", "/api/v1/okta/event-hook", Only(&[GA, INGEST]), 200, 200),
    row("GET", "/api/v1/ingest/settings", Only(&[GA, INGEST]), 200, 200),
    row("POST", "/api/v1/directory/users", Only(&[GA, INGEST]), 200, 200),
    row("GET", "/api/v1/directory/users", Only(READERS), 200, 200),
    row("GET", "/api/v1/signins", Only(READERS), 200, 200),
    row("GET", "/api/v1/directory-audits", Only(READERS), 200, 200),
    row("GET", "/api/v1/activities", Only(READERS), 200, 200),
    row("GET", "/api/v1/signins/export", Only(EXPORTERS), 200, 200),
    row("GET", "/api/v1/directory-audits/export", Only(EXPORTERS), 200, 200),
    row("GET", "/api/v1/activities/export", Only(EXPORTERS), 200, 200),
    row("GET", "/api/v1/signins/facets", Only(READERS), 200, 200),
    row("GET", "/api/v1/directory-audits/facets", Only(READERS), 200, 200),
    row("GET", "/api/v1/activities/facets", Only(READERS), 200, 200),
    row("GET", "/api/v1/signins/histogram", Only(READERS), 200, 200),
    row("GET", "/api/v1/directory-audits/histogram", Only(READERS), 200, 200),
    row("GET", "/api/v1/activities/histogram", Only(READERS), 200, 200),
    // Live streams: the status and the first second of the stream are checked.
    row("GET", "/api/v1/signins/live", Only(READERS), 200, 200),
    row("GET", "/api/v1/directory-audits/live", Only(READERS), 200, 200),
    row("GET", "/api/v1/activities/live", Only(READERS), 200, 200),
    row("GET", "/api/v1/signins/{id}", Only(READERS), 200, 404),
    row("GET", "/api/v1/directory-audits/{id}", Only(READERS), 200, 404),
    row("GET", "/api/v1/activities/{id}", Only(READERS), 200, 404),
    row("GET", "/api/v1/me/signins", Only(EVERY_ACCOUNT), 200, 200),
    // Saved views belong to accounts; keys have none.
    row("GET", "/api/v1/me/views", Only(EVERY_ACCOUNT), 200, 200),
    row("PUT", "/api/v1/me/views", Only(EVERY_ACCOUNT), 200, 200),
    row("GET", "/api/v1/errors", AnyCredential, 200, 200),
    row("GET", "/api/v1/errors/{code}", AnyCredential, 200, 200),
    row("GET", "/api/v1/reports/signins/timeline", Only(READERS), 200, 200),
    row("GET", "/api/v1/reports/apps/top", Only(READERS), 200, 200),
    row("GET", "/api/v1/reports/summary", Only(READERS), 200, 200),
    row("GET", "/api/v1/reports/users/{user}/pattern", Only(READERS), 200, 200),
    row("GET", "/api/v1/reports/auth-methods", Only(READERS), 200, 200),
    row("GET", "/api/v1/reports/sessions", Only(READERS), 200, 200),
    row("GET", "/api/v1/reports/signed-in-users", Only(READERS), 200, 200),
    row("GET", "/api/v1/reports/activities", Only(READERS), 200, 200),
    row("GET", "/api/v1/reports/activities/{report}", Only(READERS), 200, 200),
    row("GET", "/v1.0/auditLogs/signIns", Only(READERS), 200, 200),
    row("GET", "/v1.0/auditLogs/signIns/{id}", Only(READERS), 200, 404),
    row("GET", "/v1.0/auditLogs/directoryAudits", Only(READERS), 200, 200),
    row("GET", "/v1.0/auditLogs/directoryAudits/{id}", Only(READERS), 200, 404),
    // The public key is public; heads and proofs are the caller's own organisation's.
    row("GET", "/api/v1/trust/key", Anyone, 200, 200),
    row("GET", "/api/v1/trust/head", Only(READERS), 200, 200),
    row("GET", "/api/v1/trust/heads", Only(READERS), 200, 200),
    row("GET", "/api/v1/trust/status", Only(&[GA, SA, SR, GR, READ]), 200, 200),
    row("GET", "/api/v1/trust/proof/inclusion", Only(READERS), 200, 404),
    row("GET", "/api/v1/trust/proof/consistency", Only(READERS), 200, 200),
    row("GET", "/api/v1/settings", Only(&[GA, SA, SR, GR, READ]), 200, 200),
    row("GET", "/api/v1/settings/audit", Only(&[GA, SA, SR, GR, READ]), 200, 200),
    row("PUT", "/api/v1/settings/audit", Only(&[GA, SA]), 200, 200),
    row("GET", "/api/v1/settings/retention", Only(&[GA, SA, SR, GR, READ]), 200, 200),
    row("PUT", "/api/v1/settings/retention", Only(&[GA, SA]), 200, 200),
    row("POST", "/api/v1/settings/retention/run", Only(&[GA, SA]), 200, 200),
    row("GET", "/api/v1/users", Only(&[GA, SA, SR, GR, READ]), 200, 200),
    row("POST", "/api/v1/users", Only(&[GA]), 201, 201),
    row("PATCH", "/api/v1/users/{id}", Only(&[GA]), 200, 404),
    row("DELETE", "/api/v1/users/{id}", Only(&[GA]), 204, 404),
    row("GET", "/api/v1/keys", Only(&[GA, SA]), 200, 200),
    row("POST", "/api/v1/keys", Only(&[GA, SA]), 201, 201),
    row("DELETE", "/api/v1/keys/{id}", Only(&[GA, SA]), 204, 404),
    // Last: sign-out ends the caller's session, sign-in replaces it.
    row("POST", "/api/v1/auth/logout", AnyCredential, 204, 204),
    row("POST", "/api/v1/auth/login", Anyone, 200, 200),
];

#[test]
fn every_route_has_an_expectation() {
    let served: BTreeSet<(String, &str)> = ROUTES.iter().map(|r| (r.method.to_string(), r.path)).collect();
    let expected: BTreeSet<(String, &str)> = TABLE.iter().map(|r| (r.method.to_string(), r.path)).collect();
    let untested: Vec<_> = served.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(&served).collect();
    assert!(untested.is_empty(), "routes without a row in the access table: {untested:?}");
    assert!(missing.is_empty(), "rows for routes the server does not have: {missing:?}");
    assert_eq!(ROUTES.len(), TABLE.len(), "a route is listed twice");
}

enum Credential {
    None,
    Key(String),
    Session(Session),
}

struct Caller {
    name: &'static str,
    /// The organisation of the caller; the data under test belongs to `default`.
    org: &'static str,
    credential: Credential,
}

/// Ids of things in organisation `default` that the paths refer to.
struct Fixture {
    signin: &'static str,
    audit: &'static str,
    activity: String,
}

async fn callers(server: &TestServer) -> Vec<Caller> {
    server.directory.create_organization("contoso", "Contoso").unwrap();
    let mut callers = vec![
        Caller { name: "anonymous", org: "default", credential: Credential::None },
        Caller { name: INGEST, org: "default", credential: Credential::Key(server.ingest_key.expose().into()) },
        Caller { name: READ, org: "default", credential: Credential::Key(server.read_key.expose().into()) },
    ];
    for (name, role) in [
        (GA, Some(Role::GlobalAdministrator)),
        (SA, Some(Role::SecurityAdministrator)),
        (SR, Some(Role::SecurityReader)),
        (GR, Some(Role::GlobalReader)),
        (RR, Some(Role::ReportsReader)),
        (USER, None),
    ] {
        let session = server.session("default", &format!("{}@default.example", name.to_lowercase()), role).await;
        callers.push(Caller { name, org: "default", credential: Credential::Session(session) });
    }
    // Another organisation's most powerful credentials.
    let session = server.session("contoso", "ga@contoso.example", Some(Role::GlobalAdministrator)).await;
    callers.push(Caller { name: GA, org: "contoso", credential: Credential::Session(session) });
    let (_, key) = server.directory.create_key("contoso", "in", KeyKind::Ingest { app: None }, "t").unwrap();
    callers.push(Caller { name: INGEST, org: "contoso", credential: Credential::Key(key.expose().into()) });
    let (_, key) =
        server.directory.create_key("contoso", "r", KeyKind::Read { role: Role::GlobalReader }, "t").unwrap();
    callers.push(Caller { name: READ, org: "contoso", credential: Credential::Key(key.expose().into()) });
    callers
}

fn allowed(who: Who, caller: &Caller) -> bool {
    match (who, &caller.credential) {
        (Anyone, _) => true,
        (_, Credential::None) => false,
        (AnyCredential, _) => true,
        (Only(names), _) => names.contains(&caller.name),
    }
}

/// A concrete request for a row: the path with ids filled in, and a body.
fn concrete(server: &TestServer, row: &Row, fixture: &Fixture, n: usize) -> (String, Option<(String, Vec<u8>)>) {
    let user_id = || {
        let new = NewUser {
            username: format!("victim{n}@default.example"),
            display_name: None,
            role: None,
            password: Some(Secret::new(PASSWORD)),
        };
        server.directory.create_user("default", new).unwrap().id
    };
    let key_id = || {
        server.directory.create_key("default", &format!("victim{n}"), KeyKind::Ingest { app: None }, "t").unwrap().0.id
    };
    let path = match row.path {
        "/api/v1/signins/{id}" | "/v1.0/auditLogs/signIns/{id}" => row.path.replace("{id}", fixture.signin),
        "/api/v1/directory-audits/{id}" | "/v1.0/auditLogs/directoryAudits/{id}" => {
            row.path.replace("{id}", fixture.audit)
        }
        "/api/v1/activities/{id}" => row.path.replace("{id}", &fixture.activity),
        "/api/v1/users/{id}" => row.path.replace("{id}", &user_id()),
        "/api/v1/keys/{id}" => row.path.replace("{id}", &key_id()),
        "/api/v1/errors/{code}" => row.path.replace("{code}", "50126"),
        "/assets/{file}" => row.path.replace("{file}", "app.js"),
        "/api/v1/schema/{kind}" => row.path.replace("{kind}", "signins"),
        path if path.contains("{provider}") => path.replace("{provider}", "corp"),
        path if path.ends_with("/facets") || path.ends_with("/histogram") || path.ends_with("/export") => {
            format!("{path}?days=36500")
        }
        "/api/v1/trust/proof/inclusion" => format!("{}?kind=signins&id={}", row.path, fixture.signin),
        "/api/v1/trust/proof/consistency" => format!("{}?first=1", row.path),
        "/api/v1/reports/users/{user}/pattern" => row.path.replace("{user}", "ann@default.example"),
        "/api/v1/reports/activities/{report}" => row.path.replace("{report}", "exports"),
        other => other.to_string(),
    };
    let json = |value: Value| Some(("application/json".to_string(), value.to_string().into_bytes()));
    let body = match (row.method, row.path) {
        ("POST", "/api/v1/signins") => {
            json(serde_json::from_str(&signin(&format!("new-s{n}"), 1, "x@default.example", "App", 0, "")).unwrap())
        }
        ("POST", "/api/v1/directory-audits") => json(audit(&format!("new-a{n}"), "Add user")),
        ("POST", "/api/v1/activities") => json(activity(&format!("new-c{n}"), "Retrieve")),
        ("POST", "/api/v1/import") => json(
            json!({ "value": [serde_json::from_str::<Value>(&signin(&format!("imp-{n}"), 1, "y@default.example", "App", 0, "")).unwrap()] }),
        ),
        ("POST", "/api/v1/okta/event-hook") => json(json!({ "eventType": "com.okta.event_hook", "data": { "events": [{
            "uuid": format!("okta-{n}"), "published": "2026-01-05T10:00:00Z", "eventType": "user.session.start",
            "actor": { "id": "00u1", "type": "User", "alternateId": "z@default.example" }, "outcome": { "result": "SUCCESS" },
        }] } })),
        ("POST", "/api/v1/users") => json(json!({ "username": format!("new{n}@example.com"), "password": PASSWORD })),
        ("PATCH", "/api/v1/users/{id}") => json(json!({ "displayName": "Renamed" })),
        ("POST", "/api/v1/keys") => json(json!({ "name": format!("k{n}"), "type": "ingest" })),
        ("PUT", "/api/v1/settings/audit") => json(json!({ "userAccessAuditingInterval": 4 })),
        ("PUT", "/api/v1/settings/retention") => json(json!({ "activities": { "hotDays": 3650 } })),
        ("POST", "/api/v1/directory/users") => {
            json(json!([{ "userId": format!("u{n}"), "email": "u@default.example" }]))
        }
        ("PUT", "/api/v1/me/views") => {
            json(json!({ "views": [{ "name": "mine", "page": "/signins", "query": "status=failure" }] }))
        }
        ("POST", "/api/v1/auth/login") => json(json!({ "username": "probe@default.example", "password": PASSWORD })),
        _ => None,
    };
    (path, body)
}

fn audit(id: &str, name: &str) -> Value {
    json!({ "id": id, "activityDateTime": "2026-01-05T10:00:00Z", "activityDisplayName": name,
            "category": "UserManagement", "result": "success", "loggedByService": "Core Directory" })
}

fn activity(id: &str, operation: &str) -> Value {
    json!({ "Id": id, "CreationTime": "2026-01-05T10:00:00Z", "Operation": operation, "User": "ann@default.example" })
}

#[tokio::test]
async fn every_route_every_caller_every_organisation() {
    let mut config = signet_server::ServerConfig::default();
    config.login.attempts_per_address = 10_000;
    let server = TestServer::start_with(config).await;
    server.load(&[signin("own-s1", 2, "ann@default.example", "MarkerAppOwn", 0, "")]).await;
    let (status, _) = server
        .post("/api/v1/directory-audits", "application/json", audit("own-a1", "MarkerAuditOwn").to_string())
        .await;
    assert_eq!(status, 200);
    let (status, _) =
        server.post("/api/v1/activities", "application/json", activity("own-c1", "MarkerOpOwn").to_string()).await;
    assert_eq!(status, 200);
    server.settle().await;
    let fixture = Fixture { signin: "own-s1", audit: "own-a1", activity: "own-c1".into() };
    server
        .directory
        .create_user(
            "default",
            NewUser {
                username: "probe@default.example".into(),
                display_name: None,
                role: None,
                password: Some(Secret::new(PASSWORD)),
            },
        )
        .unwrap();

    let callers = callers(&server).await;
    let mut failures = Vec::new();
    let mut n = 0;
    for row in TABLE {
        for caller in &callers {
            n += 1;
            let (path, body) = concrete(&server, row, &fixture, n);
            let method = Method::from_bytes(row.method.as_bytes()).unwrap();
            let url = server.url(&path);
            let mut request = match &caller.credential {
                Credential::None => server.anonymous.request(method, url),
                Credential::Key(key) => keyed_client(key).request(method, url),
                Credential::Session(session) => session.request(&server.anonymous, method, url),
            };
            if let Some((content_type, bytes)) = body {
                request = request.header("content-type", content_type).body(bytes);
            }
            let mut response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = if row.path.ends_with("/live") {
                // A stream that stays open: read what arrives in the first second.
                let mut text = String::new();
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(400);
                while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, response.chunk()).await {
                    text.push_str(&String::from_utf8_lossy(&chunk));
                }
                text
            } else {
                response.text().await.unwrap_or_default()
            };
            let expected = match (allowed(row.who, caller), &caller.credential) {
                (false, Credential::None) => 401,
                (false, _) => 403,
                (true, _) if caller.org == "default" => row.own,
                (true, _) => row.other,
            };
            if status != expected {
                failures.push(format!(
                    "{} {path} as {} of {}: {status}, expected {expected}: {}",
                    row.method,
                    caller.name,
                    caller.org,
                    &text[..text.len().min(200)]
                ));
            }
            // Another organisation never sees this one's records, whatever the route.
            let markers = ["MarkerAppOwn", "MarkerAuditOwn", "MarkerOpOwn"];
            if caller.org != "default" && markers.iter().any(|m| text.contains(m)) {
                failures.push(format!(
                    "{} {path} as {} of {} leaked another organisation's record",
                    row.method, caller.name, caller.org
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));

    // Writes by the other organisation landed in its own log only.
    server.settle().await;
    let engine = server.engine.clone();
    let (own, other) = tokio::task::spawn_blocking(move || {
        let store = engine.store();
        let ids = |org: &str| store.count(org, signet_model::LogKind::SignIn, &signet_query::Expr::True).unwrap();
        (ids("default"), ids("contoso"))
    })
    .await
    .unwrap();
    assert!(own > 0 && other > 0, "own {own}, other {other}");
}
