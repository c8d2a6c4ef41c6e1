//! The example CRM on a loopback port, recording through signet-sdk into a real Signet: the
//! documented Dynamics 365 examples, user access per interval, and the audit settings.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use signet_sdk::Client;
use signet_server::testkit::TestSignet;
use signet_server::ServerConfig;

struct Setup {
    signet: TestSignet,
    client: Client,
    crm: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

const COLUMNS: &str = "columns=id,operation,category,entityName,entityId,itemUrl,query,queryResults,correlationId,user,resultStatus,serviceName,clientIp";

impl Setup {
    async fn start() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let signet = TestSignet::start(dir.path(), ServerConfig::default()).await;
        let client = Client::builder(&signet.base, &signet.ingest_key)
            .spool_dir(dir.path().join("crm-spool"))
            .linger(Duration::from_millis(20))
            .build()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let crm = format!("http://{}", listener.local_addr().unwrap());
        let app = signet_example_crm::app(client.clone()).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Setup { signet, client, crm, http: reqwest::Client::new(), _dir: dir }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.crm))
            .bearer_auth("alex-token")
            .header("accept", "application/json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self, collection: &str, name: &str) -> String {
        let (status, body) =
            self.call(reqwest::Method::POST, &format!("/api/{collection}"), Some(json!({ "name": name }))).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Everything the CRM recorded, as Signet lists it (oldest first).
    async fn recorded(&self, filter: &str) -> Vec<Value> {
        tokio::time::timeout(Duration::from_secs(30), self.client.flush()).await.unwrap().unwrap();
        self.signet.activities(&format!("{COLUMNS}&{filter}")).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_an_account_is_one_retrieve_with_entity_id_name_and_url() {
    let setup = Setup::start().await;
    let account = setup.create("accounts", "Contoso Pharmaceuticals").await;
    let (status, _) = setup.call(reqwest::Method::GET, &format!("/api/accounts/{account}"), None).await;
    assert_eq!(status, 200);
    let reads = setup.recorded("operation=Retrieve").await;
    assert_eq!(reads.len(), 1, "{reads:?}");
    let read = &reads[0];
    assert_eq!(read["category"], "Read");
    assert_eq!(read["entityName"], "account");
    assert_eq!(read["entityId"], account.as_str());
    assert_eq!(read["itemUrl"], format!("/api/accounts/{account}"));
    assert_eq!((read["user"].as_str(), read["resultStatus"].as_str()), (Some("alex@contoso.com"), Some("Succeeded")));
    assert_eq!(read["serviceName"], "Contoso CRM");
    assert_eq!(read["clientIp"], "127.0.0.1");
    let creates = setup.recorded("operation=Create").await;
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0]["entityId"], account.as_str(), "the id the handler made is recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn viewing_accounts_in_a_grid_is_one_retrieve_multiple_with_query_and_results() {
    let setup = Setup::start().await;
    let contoso = setup.create("accounts", "Contoso").await;
    let coho = setup.create("accounts", "Coho Winery").await;
    setup.create("accounts", "Fabrikam").await;
    let (status, page) = setup.call(reqwest::Method::GET, "/api/accounts?name=C", None).await;
    assert_eq!((status, page["value"].as_array().map(Vec::len)), (200, Some(2)));
    let grids = setup.recorded("category=ReadMultiple").await;
    assert_eq!(grids.len(), 1, "{grids:?}");
    assert_eq!(grids[0]["operation"], "RetrieveMultiple");
    assert_eq!(grids[0]["entityName"], "account");
    assert_eq!(grids[0]["query"], "name=C");
    let mut shown: Vec<&str> = grids[0]["queryResults"].as_str().unwrap().split(',').collect();
    shown.sort();
    let mut expected = vec![contoso.as_str(), coho.as_str()];
    expected.sort();
    assert_eq!(shown, expected, "the ids of the records displayed");
}

#[tokio::test(flavor = "multi_thread")]
async fn converting_a_lead_records_its_five_steps_under_one_correlation_id() {
    let setup = Setup::start().await;
    let lead = setup.create("leads", "Adventure Works").await;
    let (status, converted) = setup.call(reqwest::Method::POST, &format!("/api/leads/{lead}/qualify"), None).await;
    assert_eq!(status, 200, "{converted}");
    let changes = setup.recorded("category=Create,Update").await;
    let steps: Vec<(String, String, String)> = changes
        .iter()
        .skip(1) // the lead's creation
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (text("operation"), text("entityName"), text("entityId"))
        })
        .collect();
    let (contact, opportunity) = (converted["contact"].as_str().unwrap(), converted["opportunity"].as_str().unwrap());
    let step = |op: &str, entity: &str, id: &str| (op.to_string(), entity.to_string(), id.to_string());
    // Steps made within a microsecond of each other may list in either order.
    let mut steps = steps;
    steps.sort();
    let mut expected = vec![
        step("Create", "contact", contact),
        step("Create", "opportunity", opportunity),
        step("Update", "opportunity", opportunity),
        step("Update", "lead", &lead),
        step("Update", "lead", &lead),
    ];
    expected.sort();
    assert_eq!(steps, expected);
    let correlations: std::collections::BTreeSet<&str> =
        changes.iter().skip(1).map(|r| r["correlationId"].as_str().unwrap()).collect();
    assert_eq!(correlations.len(), 1, "one request, one correlation id: {correlations:?}");
    assert!(setup.recorded("operation=Qualify").await.is_empty(), "the handler recorded the steps, not the layer");
}

#[tokio::test(flavor = "multi_thread")]
async fn user_access_is_recorded_once_per_user_access_type_and_interval() {
    let setup = Setup::start().await;
    for _ in 0..5 {
        assert_eq!(setup.call(reqwest::Method::GET, "/api/accounts", None).await.0, 200);
    }
    for _ in 0..2 {
        let page =
            setup.http.get(format!("{}/", setup.crm)).bearer_auth("alex-token").header("accept", "text/html").send();
        assert_eq!(page.await.unwrap().status(), 200);
    }
    let anonymous = setup.http.get(format!("{}/api/accounts", setup.crm)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let access = setup.recorded("operation=UserAccess*").await;
    let operations: Vec<&str> = access.iter().map(|r| r["operation"].as_str().unwrap()).collect();
    assert_eq!(operations, vec!["UserAccessviaWebServices", "UserAccessviaWeb"], "{access:?}");
    assert!(access.iter().all(|r| r["user"] == "alex@contoso.com"));
    // A second process of the application does not know what the first sent: Signet decides.
    let other = Client::builder(&setup.signet.base, &setup.signet.ingest_key).build().unwrap();
    other.record(signet_sdk::Activity::user_access(signet_sdk::AccessType::WebServices, "alex@contoso.com")).unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(30), other.flush()).await.unwrap().unwrap();
    assert_eq!((stats.accepted, stats.excluded), (0, 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_organisations_audit_settings_decide_what_the_application_sends() {
    let setup = Setup::start().await;
    let account = setup.create("accounts", "Contoso").await;
    let lead = setup.create("leads", "Litware").await;
    let settings = json!({
        "entities": { "account": { "singleRecordAudit": false }, "lead": { "isAuditEnabled": false } }
    });
    assert_eq!(setup.signet.put_audit_settings(&settings).await, 200);
    setup.client.refresh_audit_settings().await.unwrap();
    let before = setup.client.stats().recorded;
    setup.call(reqwest::Method::GET, &format!("/api/accounts/{account}"), None).await;
    setup.call(reqwest::Method::GET, &format!("/api/leads/{lead}"), None).await;
    assert_eq!(setup.client.stats().recorded, before, "reads the settings turn off are not even sent");
    setup.call(reqwest::Method::GET, "/api/accounts", None).await;
    setup.call(reqwest::Method::PATCH, &format!("/api/accounts/{account}"), Some(json!({ "phone": "555" }))).await;
    let recorded = setup.recorded("category=Read,ReadMultiple,Update").await;
    let operations: Vec<(&str, &str)> =
        recorded.iter().map(|r| (r["operation"].as_str().unwrap(), r["entityName"].as_str().unwrap())).collect();
    assert_eq!(operations, vec![("RetrieveMultiple", "account"), ("Update", "account")]);
}
