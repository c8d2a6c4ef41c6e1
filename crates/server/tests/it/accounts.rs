//! Sign-in, sessions, CSRF, lockout, keys, the self-audit and the access log over HTTP.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use signet_auth::Role;
use signet_server::ServerConfig;

use crate::{keyed_client, signin, TestServer, PASSWORD};

async fn status(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Items of a native list page as seen by the test's read key.
async fn items(server: &TestServer, path: &str) -> Vec<Value> {
    server.settle().await;
    let (code, page) = server.get(path).await;
    assert_eq!(code, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_sign_in_never_reuses_a_presented_session_id() {
    let server = TestServer::start().await;
    let first = server.session("default", "ann@example.com", Some(Role::GlobalReader)).await;
    // Sign in again while presenting the first session's cookie (as a fixation attacker would
    // have planted it): a fresh id is issued and the presented one ends.
    let response = server
        .anonymous
        .post(server.url("/api/v1/auth/login"))
        .header("cookie", &first.cookie)
        .json(&json!({ "username": "ann@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(!set_cookie.contains(first.cookie.trim_start_matches("signet_session=")));
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP by default");
    let (code, _) = status(first.request(&server.anonymous, Method::GET, server.url("/api/v1/auth/me"))).await;
    assert_eq!(code, 401, "the presented session must end");
}

#[tokio::test]
async fn a_lone_nodes_sessions_are_kept_for_its_next_start() {
    let server = TestServer::start().await;
    let ann = server.session("default", "ann@example.com", Some(Role::GlobalReader)).await;
    let bob = server.session("default", "bob@example.com", Some(Role::GlobalReader)).await;
    let (code, _) = status(bob.request(&server.anonymous, Method::POST, server.url("/api/v1/auth/logout"))).await;
    assert_eq!(code, 204);
    // What the next start reads: the data directory's file.
    let token = |session: &crate::Session| session.cookie.trim_start_matches("signet_session=").to_string();
    let now = signet_model::time::now_micros();
    let next_start = signet_auth::SessionStore::persisted(
        server.state.config.session_idle,
        server.state.config.session_lifetime,
        Box::new(signet_auth::document::FileEntrySet::in_data_dir(
            server.engine.data_dir(),
            signet_server::SESSIONS_FILE,
        )),
        now,
    );
    let kept = next_start.lookup(&token(&ann), now).expect("the signed-in session is kept");
    assert_eq!(kept.csrf, ann.csrf);
    assert!(next_start.lookup(&token(&bob), now).is_none(), "the signed-out one is not");
}

#[tokio::test]
async fn secure_cookies_when_configured() {
    let server = TestServer::start_with(ServerConfig { secure_cookies: true, ..ServerConfig::default() }).await;
    let session = server.session("default", "ann@example.com", None).await;
    assert!(session.set_cookie.contains("; Secure"), "{}", session.set_cookie);
}

#[tokio::test]
async fn state_changing_requests_need_the_csrf_token() {
    let server = TestServer::start().await;
    let admin = server.login("admin@example.com", PASSWORD).await.unwrap();
    let body = json!({ "name": "k", "type": "ingest" });
    let url = server.url("/api/v1/keys");
    let without = server.anonymous.post(&url).header("cookie", &admin.cookie).json(&body);
    assert_eq!(status(without).await.0, 403);
    let wrong = server.anonymous.post(&url).header("cookie", &admin.cookie).header("x-csrf-token", "guess").json(&body);
    let (code, answer) = status(wrong).await;
    assert_eq!(code, 403);
    assert!(answer["error"]["message"].as_str().unwrap().contains("CSRF"), "{answer}");
    let (code, _) = status(admin.request(&server.anonymous, Method::POST, url.clone()).json(&body)).await;
    assert_eq!(code, 201);
    // Reads need no token; bearer keys need none (no cookie, no ambient authority).
    assert_eq!(status(server.anonymous.get(&url).header("cookie", &admin.cookie)).await.0, 200);
}

#[tokio::test]
async fn wrong_passwords_lock_the_account_and_every_attempt_is_a_sign_in_event() {
    let server = TestServer::start().await;
    server.session("default", "bob@example.com", None).await;
    for _ in 0..5 {
        assert_eq!(server.login("bob@example.com", "not the password!").await.unwrap_err(), 401);
    }
    // Locked: even the right password is refused.
    let response = server
        .anonymous
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({ "username": "bob@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let answer: Value = response.json().await.unwrap();
    assert!(answer["error"]["message"].as_str().unwrap().contains("locked"), "{answer}");
    assert_eq!(server.login("nobody@example.com", PASSWORD).await.unwrap_err(), 401);

    let events =
        items(&server, "/api/v1/signins?app=Signet%20console&columns=userPrincipalName,errorCode,status&limit=100")
            .await;
    let codes = |upn: &str| -> Vec<i64> {
        let mut codes: Vec<i64> =
            events.iter().filter(|e| e["userPrincipalName"] == upn).map(|e| e["errorCode"].as_i64().unwrap()).collect();
        codes.sort();
        codes
    };
    assert_eq!(codes("bob@example.com"), vec![0, 50053, 50126, 50126, 50126, 50126, 50126]);
    assert_eq!(codes("nobody@example.com"), vec![50034]);

    // An administrator unlocks the account.
    let admin = server.login("admin@example.com", PASSWORD).await.unwrap();
    let id = server.directory.user_by_name("bob@example.com").unwrap().id;
    let unlock = admin
        .request(&server.anonymous, Method::PATCH, server.url(&format!("/api/v1/users/{id}")))
        .json(&json!({ "unlock": true }));
    assert_eq!(status(unlock).await.0, 200);
    assert!(server.login("bob@example.com", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn one_address_hammering_sign_in_gets_429_with_retry_after() {
    let mut config = ServerConfig::default();
    config.login.attempts_per_address = 3;
    let server = TestServer::start_with(config).await;
    for _ in 0..3 {
        assert_eq!(server.login("x@example.com", "whatever password").await.unwrap_err(), 401);
    }
    let response = server
        .anonymous
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({ "username": "x@example.com", "password": "whatever password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_recorded_and_limited() {
    let login = |server: &TestServer, forwarded_for: &str| {
        server
            .anonymous
            .post(server.url("/api/v1/auth/login"))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({ "username": "x@example.com", "password": "whatever password" }))
            .send()
    };
    let read_as = |server: &TestServer, forwarded_for: &str, path: &str| {
        server.http.get(server.url(path)).header("x-forwarded-for", forwarded_for).send()
    };

    // Without trusted proxies the header is anyone's to write, and ignored.
    let direct = TestServer::start().await;
    assert_eq!(read_as(&direct, "198.51.100.7", "/api/v1/signins?limit=1").await.unwrap().status(), 200);
    let log = items(&direct, "/api/v1/activities?limit=20&columns=operation,clientIp").await;
    let listed = log.iter().find(|e| e["operation"] == "SignInsListed").unwrap();
    assert_eq!(listed["clientIp"], "127.0.0.1", "a spoofed header must not be believed: {log:?}");

    // Signet behind a proxy at 127.0.0.1 (the test's connection), which appends what it saw.
    let mut config = ServerConfig {
        trusted_proxies: signet_server::forwarded::TrustedProxies::parse(&["127.0.0.1"]).unwrap(),
        ..ServerConfig::default()
    };
    config.login.attempts_per_address = 2;
    let proxied = TestServer::start_with(config).await;
    // The client wrote 10.6.6.6 itself; the proxy appended 203.0.113.50.
    let response = read_as(&proxied, "10.6.6.6, 203.0.113.50", "/api/v1/signins?limit=1").await.unwrap();
    assert_eq!(response.status(), 200);
    let log = items(&proxied, "/api/v1/activities?limit=20&columns=operation,clientIp").await;
    let listed = log.iter().find(|e| e["operation"] == "SignInsListed").unwrap();
    assert_eq!(listed["clientIp"], "203.0.113.50", "{log:?}");

    // The sign-in limit counts each client behind the proxy, not the proxy.
    for _ in 0..2 {
        assert_eq!(login(&proxied, "203.0.113.50").await.unwrap().status(), 401);
    }
    assert_eq!(login(&proxied, "203.0.113.50").await.unwrap().status(), 429);
    assert_eq!(login(&proxied, "203.0.113.51").await.unwrap().status(), 401, "another client is not limited");
    let attempts = items(&proxied, "/api/v1/signins?limit=20&columns=ipAddress,status").await;
    assert!(attempts.iter().any(|a| a["ipAddress"] == "203.0.113.51"), "{attempts:?}");
}

#[tokio::test]
async fn disabled_accounts_and_idle_sessions_stop_at_once() {
    let server =
        TestServer::start_with(ServerConfig { session_idle: Duration::from_millis(800), ..ServerConfig::default() })
            .await;
    let admin = server.login("admin@example.com", PASSWORD).await.unwrap();
    let carol = server.session("default", "carol@example.com", Some(Role::SecurityReader)).await;
    let me = server.url("/api/v1/auth/me");
    assert_eq!(status(carol.request(&server.anonymous, Method::GET, me.clone())).await.0, 200);
    let id = server.directory.user_by_name("carol@example.com").unwrap().id;
    let disable = admin
        .request(&server.anonymous, Method::PATCH, server.url(&format!("/api/v1/users/{id}")))
        .json(&json!({ "disabled": true }));
    assert_eq!(status(disable).await.0, 200);
    assert_eq!(status(carol.request(&server.anonymous, Method::GET, me.clone())).await.0, 401);
    assert_eq!(server.login("carol@example.com", PASSWORD).await.unwrap_err(), 401);

    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(status(admin.request(&server.anonymous, Method::GET, me)).await.0, 401, "idle session expired");
}

#[tokio::test]
async fn role_changes_take_effect_on_the_next_request() {
    let server = TestServer::start().await;
    let admin = server.login("admin@example.com", PASSWORD).await.unwrap();
    let dave = server.session("default", "dave@example.com", Some(Role::GlobalReader)).await;
    let list = server.url("/api/v1/signins");
    assert_eq!(status(dave.request(&server.anonymous, Method::GET, list.clone())).await.0, 200);
    let id = server.directory.user_by_name("dave@example.com").unwrap().id;
    let demote = admin
        .request(&server.anonymous, Method::PATCH, server.url(&format!("/api/v1/users/{id}")))
        .json(&json!({ "role": null }));
    assert_eq!(status(demote).await.0, 200);
    assert_eq!(status(dave.request(&server.anonymous, Method::GET, list)).await.0, 403);

    // The last Global administrator cannot be demoted, disabled or removed.
    let admin_id = server.directory.user_by_name("admin@example.com").unwrap().id;
    let url = server.url(&format!("/api/v1/users/{admin_id}"));
    let (code, answer) =
        status(admin.request(&server.anonymous, Method::PATCH, url.clone()).json(&json!({ "role": "GlobalReader" })))
            .await;
    assert_eq!(code, 409, "{answer}");
    assert_eq!(status(admin.request(&server.anonymous, Method::DELETE, url)).await.0, 409);
}

#[tokio::test]
async fn keys_are_shown_once_listed_without_secrets_and_revoked_at_once() {
    let server = TestServer::start().await;
    let admin = server.login("admin@example.com", PASSWORD).await.unwrap();
    let create = admin
        .request(&server.anonymous, Method::POST, server.url("/api/v1/keys"))
        .json(&json!({ "name": "siem", "type": "read", "role": "SecurityReader" }));
    let (code, created) = status(create).await;
    assert_eq!(code, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("sgk_"));
    let key_id = created["key"]["id"].as_str().unwrap().to_string();

    let siem = keyed_client(&token);
    assert_eq!(status(siem.get(server.url("/api/v1/signins"))).await.0, 200);
    assert_eq!(
        status(siem.post(server.url("/api/v1/keys")).json(&json!({ "name": "x", "type": "ingest" }))).await.0,
        403,
        "read keys change nothing"
    );

    let (_, listed) = status(admin.request(&server.anonymous, Method::GET, server.url("/api/v1/keys"))).await;
    let text = listed.to_string();
    assert!(!text.contains(&token[21..]), "the list shows a secret: {text}");
    let entry = listed["value"].as_array().unwrap().iter().find(|k| k["id"] == key_id.as_str()).unwrap().clone();
    assert!(entry["lastUsedDateTime"].is_string(), "{entry}");

    let revoke = admin.request(&server.anonymous, Method::DELETE, server.url(&format!("/api/v1/keys/{key_id}")));
    assert_eq!(status(revoke).await.0, 204);
    let (code, answer) = status(siem.get(server.url("/api/v1/signins"))).await;
    assert_eq!(code, 401, "{answer}");

    // A Security administrator manages ingest keys but not read keys.
    let sec = server.session("default", "sec@example.com", Some(Role::SecurityAdministrator)).await;
    let read_key = sec
        .request(&server.anonymous, Method::POST, server.url("/api/v1/keys"))
        .json(&json!({ "name": "r", "type": "read", "role": "GlobalReader" }));
    assert_eq!(status(read_key).await.0, 403);
    let ingest_key = sec
        .request(&server.anonymous, Method::POST, server.url("/api/v1/keys"))
        .json(&json!({ "name": "i", "type": "ingest", "app": "Payroll" }));
    assert_eq!(status(ingest_key).await.0, 201);
}

#[tokio::test]
async fn an_application_bound_ingest_key_writes_only_its_application() {
    let server = TestServer::start().await;
    let (_, token) = server
        .directory
        .create_key("default", "payroll", signet_auth::KeyKind::Ingest { app: Some("Payroll".into()) }, "t")
        .unwrap();
    let payroll = keyed_client(token.expose());
    let body = [signin("p1", 1, "a@example.com", "Payroll", 0, ""), signin("p2", 1, "a@example.com", "Mail", 0, "")]
        .join("\n");
    let request = payroll.post(server.url("/api/v1/signins")).header("content-type", "application/x-ndjson").body(body);
    let (code, answer) = status(request).await;
    assert_eq!(code, 207, "{answer}");
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["errors"][0]["index"], 1);
    assert_eq!(answer["errors"][0]["field"], "appId");
    let import = payroll.post(server.url("/api/v1/import")).body("{\"value\":[]}");
    assert_eq!(status(import).await.0, 403);
}

#[tokio::test]
async fn nobody_can_forge_signets_own_records() {
    let server = TestServer::start().await;
    let forged = json!({ "Id": "f1", "CreationTime": "2026-01-01T00:00:00Z", "Operation": "SignInsListed", "RecordType": "SignetAccess" });
    let (code, answer) = server.post("/api/v1/activities", "application/json", forged.to_string()).await;
    assert_eq!(code, 400, "{answer}");
    assert_eq!(answer["errors"][0]["field"], "RecordType");
    let console = signin("f2", 1, "a@example.com", "Signet console", 0, "")
        .replace("app-Signet console", signet_server::ingest::SIGNET_APP_ID);
    let (code, answer) = server.post("/api/v1/signins", "application/json", console).await;
    assert_eq!(code, 400, "{answer}");
}

#[tokio::test]
async fn every_read_and_change_is_in_the_access_log() {
    let server = TestServer::start().await;
    server
        .load(&[signin("s1", 1, "a@example.com", "Mail", 0, ""), signin("s2", 2, "b@example.com", "Mail", 0, "")])
        .await;
    let (code, _) = server.get("/api/v1/signins?app=Mail&limit=5").await;
    assert_eq!(code, 200);
    let (code, _) = server.get("/v1.0/auditLogs/signIns/s1").await;
    assert_eq!(code, 200);
    let (code, _) = server.get_text("/api/v1/signins/export?format=csv").await;
    assert_eq!(code, 200);
    // A refused attempt is recorded too.
    let reports = server.session("default", "rr@example.com", Some(Role::ReportsReader)).await;
    let (code, _) = status(reports.request(&server.anonymous, Method::GET, server.url("/api/v1/signins/export"))).await;
    assert_eq!(code, 403);
    let admin = server.login("admin@example.com", PASSWORD).await.unwrap();
    let create = admin
        .request(&server.anonymous, Method::POST, server.url("/api/v1/users"))
        .json(&json!({ "username": "eve@example.com", "role": "GlobalReader", "password": PASSWORD }));
    assert_eq!(status(create).await.0, 201);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = items(&server, "/api/v1/activities?limit=100&columns=operation,user,resultStatus,query,queryResults,itemUrl,entityId,clientIp,workload").await;
    let find = |operation: &str, result: &str| {
        log.iter()
            .find(|e| e["operation"] == operation && e["resultStatus"] == result)
            .cloned()
            .unwrap_or_else(|| panic!("no {operation}/{result} in {log:#?}"))
    };
    let listed = find("SignInsListed", "Succeeded");
    assert_eq!(listed["user"], "key:reader");
    assert_eq!(listed["query"], "app=Mail&limit=5");
    assert_eq!(listed["queryResults"], "2");
    assert_eq!(listed["clientIp"], "127.0.0.1");
    assert_eq!(listed["workload"], "Signet");
    assert_eq!(find("GraphSignInViewed", "Succeeded")["entityId"], "s1");
    assert_eq!(find("SignInsExported", "Succeeded")["query"], "format=csv");
    assert_eq!(find("SignInsExportCompleted", "Succeeded")["queryResults"], "2");
    assert_eq!(find("SignInsExported", "Denied")["user"], "rr@example.com");
    let created = find("UserCreated", "Succeeded");
    assert_eq!(created["user"], "admin@example.com");
    assert_eq!(created["entityId"], "eve@example.com");
}

#[tokio::test]
async fn everyone_sees_their_own_sign_ins_and_only_those() {
    let server = TestServer::start().await;
    server
        .load(&[signin("m1", 1, "Fay@Example.com", "Mail", 0, ""), signin("m2", 1, "gus@example.com", "Mail", 0, "")])
        .await;
    let fay = server.session("default", "fay@example.com", None).await;
    assert_eq!(fay.me["permissions"], json!(["ReadOwnSignIns"]));
    let (code, page) =
        status(fay.request(&server.anonymous, Method::GET, server.url("/api/v1/me/signins?user=gus*"))).await;
    assert_eq!(code, 200);
    assert!(page["items"].as_array().unwrap().is_empty(), "a filter cannot widen the view: {page}");
    server.settle().await;
    let (_, page) = status(fay.request(
        &server.anonymous,
        Method::GET,
        server.url("/api/v1/me/signins?columns=id,userPrincipalName"),
    ))
    .await;
    let ids: Vec<&str> = page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"m1") && !ids.contains(&"m2"), "{page}");
    assert_eq!(ids.len(), 2, "m1 and Fay's own console sign-in: {page}");
}
