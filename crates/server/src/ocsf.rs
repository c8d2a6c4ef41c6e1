//! Events as OCSF 1.1 records, for forwarders with `format = "ocsf"`: sign-ins as
//! Authentication (class 3002), activities as API Activity (6003), directory audits about user
//! accounts as Account Change (3001) and the other directory audits as Entity Management (3004).
//! The source record goes whole in `unmapped.record`, so nothing is lost in the mapping.

use serde_json::{json, Map, Value};
use signet_model::{CellRef, Event, LogKind};

const VERSION: &str = "1.1.0";

fn text(event: &Event, column: &str) -> Option<String> {
    match event.cell(column)? {
        CellRef::Str(s) if !s.is_empty() => Some(s.to_owned()),
        _ => None,
    }
}

fn list(event: &Event, column: &str) -> Vec<String> {
    match event.cell(column) {
        Some(CellRef::List(values)) => values.to_vec(),
        _ => Vec::new(),
    }
}

/// Drops the null members, recursively, as OCSF producers do.
fn compact(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let kept: Map<String, Value> = map
                .into_iter()
                .map(|(k, v)| (k, compact(v)))
                .filter(|(_, v)| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()))
                .collect();
            Value::Object(kept)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(compact).collect()),
        other => other,
    }
}

/// The OCSF record of one event (`org` is the Signet organisation, `record` its stored JSON).
pub fn record(event: &Event, org: &str, record: &Value) -> Value {
    let time_ms = event.time_us / 1000;
    let metadata = json!({
        "version": VERSION,
        "uid": event.id,
        "tenant_uid": org,
        "product": { "name": "Signet", "vendor_name": "Signet", "version": env!("CARGO_PKG_VERSION") },
        "correlation_uid": text(event, "correlation_id"),
        "log_name": crate::api::kind_names(event.kind).0,
    });
    let mut out = match event.kind {
        LogKind::SignIn => authentication(event),
        LogKind::Activity => api_activity(event),
        LogKind::DirectoryAudit => directory_audit(event),
    };
    let class_uid = out["class_uid"].as_u64().unwrap_or(0);
    let activity_id = out["activity_id"].as_u64().unwrap_or(0);
    let object = out.as_object_mut().expect("mappings build objects");
    object.insert("type_uid".into(), json!(class_uid * 100 + activity_id));
    object.insert("time".into(), json!(time_ms));
    object.insert("metadata".into(), metadata);
    object.insert("unmapped".into(), json!({ "record": record }));
    compact(out)
}

fn status(success: bool, code: Option<String>, detail: Option<String>) -> Value {
    json!({
        "status_id": if success { 1 } else { 2 },
        "status": if success { "Success" } else { "Failure" },
        "status_code": code,
        "status_detail": detail,
        "severity_id": if success { 1 } else { 3 },
        "severity": if success { "Informational" } else { "Medium" },
    })
}

fn merge(mut base: Value, more: Value) -> Value {
    if let (Some(base), Value::Object(more)) = (base.as_object_mut(), more) {
        base.extend(more);
    }
    base
}

/// Authentication (3002), activity Logon (1).
fn authentication(event: &Event) -> Value {
    let success = text(event, "status").as_deref() == Some("success");
    let code = match event.cell("error_code") {
        Some(CellRef::Int(code)) => Some(code.to_string()),
        _ => None,
    };
    let mfa = list(event, "auth_methods").iter().any(|m| !m.eq_ignore_ascii_case("password"));
    merge(
        json!({
            "category_uid": 3, "category_name": "Identity & Access Management",
            "class_uid": 3002, "class_name": "Authentication",
            "activity_id": 1, "activity_name": "Logon",
            "user": { "name": text(event, "user_principal_name"), "uid": text(event, "user_id"),
                      "full_name": text(event, "user_display_name") },
            "service": { "name": text(event, "app_display_name"), "uid": text(event, "app_id") },
            "src_endpoint": {
                "ip": text(event, "ip_address"),
                "location": { "city": text(event, "city"), "region": text(event, "state"), "country": text(event, "country") },
            },
            "http_request": { "user_agent": text(event, "user_agent") },
            "is_mfa": mfa,
            "logon_type": text(event, "client_app_used"),
        }),
        status(success, code, text(event, "failure_reason")),
    )
}

/// API Activity (6003): Create 1, Read 2, Update 3, Delete 4, Other 99.
fn api_activity(event: &Event) -> Value {
    let category = text(event, "operation_category").unwrap_or_default();
    let (activity_id, activity_name) = match category.as_str() {
        "Create" => (1, "Create"),
        "Read" | "ReadMultiple" => (2, "Read"),
        "Update" | "Upsert" => (3, "Update"),
        "Delete" => (4, "Delete"),
        _ => (99, "Other"),
    };
    let result = text(event, "result_status").unwrap_or_default().to_ascii_lowercase();
    let success = !matches!(result.as_str(), "failed" | "failure" | "denied");
    merge(
        json!({
            "category_uid": 6, "category_name": "Application Activity",
            "class_uid": 6003, "class_name": "API Activity",
            "activity_id": activity_id, "activity_name": activity_name,
            "actor": { "user": { "name": text(event, "user_upn"), "uid": text(event, "user_id") } },
            "api": { "operation": text(event, "operation"),
                     "service": { "name": text(event, "service_name").or_else(|| text(event, "workload")) } },
            "src_endpoint": { "ip": text(event, "client_ip") },
            "http_request": { "user_agent": text(event, "user_agent"), "url": { "url_string": text(event, "item_url") } },
            "resources": [{ "uid": text(event, "entity_id"), "type": text(event, "entity_name") }],
        }),
        status(success, None, None),
    )
}

/// Account Change (3001) for audits of user accounts, Entity Management (3004) for the rest.
fn directory_audit(event: &Event) -> Value {
    let name = text(event, "activity_display_name").unwrap_or_default();
    let lower = name.to_lowercase();
    let success = text(event, "result").as_deref() != Some("failure");
    let actor = json!({
        "user": { "name": text(event, "initiated_by_upn"), "uid": text(event, "initiated_by_user_id") },
        "app_name": text(event, "initiated_by_app_name"),
    });
    let targets: Vec<Value> = list(event, "target_ids")
        .into_iter()
        .zip(list(event, "target_types").into_iter().chain(std::iter::repeat(String::new())))
        .zip(list(event, "target_names").into_iter().chain(std::iter::repeat(String::new())))
        .map(|((uid, kind), name)| json!({ "uid": uid, "type": (!kind.is_empty()).then_some(kind), "name": (!name.is_empty()).then_some(name) }))
        .collect();
    let user_account = text(event, "category").as_deref() == Some("UserManagement")
        || list(event, "target_types").iter().any(|t| t.eq_ignore_ascii_case("User"));
    let body = if user_account {
        let (activity_id, activity_name) = match () {
            _ if lower.contains("reset") && lower.contains("password") => (4, "Password Reset"),
            _ if lower.contains("password") => (3, "Password Change"),
            _ if lower.starts_with("add user") || lower.starts_with("create user") => (1, "Create"),
            _ if lower.starts_with("delete user") => (6, "Delete"),
            _ if lower.contains("disable") => (5, "Disable"),
            _ if lower.contains("enable") => (2, "Enable"),
            _ if lower.contains("member to role") || lower.contains("assign") => (7, "Attach Policy"),
            _ if lower.contains("member from role") || lower.contains("unassign") => (8, "Detach Policy"),
            _ => (99, "Other"),
        };
        let upns = list(event, "target_upns");
        json!({
            "category_uid": 3, "category_name": "Identity & Access Management",
            "class_uid": 3001, "class_name": "Account Change",
            "activity_id": activity_id, "activity_name": activity_name,
            "actor": actor,
            "user": { "name": upns.first(), "uid": targets.first().and_then(|t| t["uid"].as_str()) },
            "src_endpoint": { "ip": text(event, "initiated_by_ip") },
        })
    } else {
        let (activity_id, activity_name) = match text(event, "operation_type").unwrap_or_default().as_str() {
            "Add" => (1, "Create"),
            "Update" => (3, "Update"),
            "Delete" => (4, "Delete"),
            _ => (99, "Other"),
        };
        json!({
            "category_uid": 3, "category_name": "Identity & Access Management",
            "class_uid": 3004, "class_name": "Entity Management",
            "activity_id": activity_id, "activity_name": activity_name,
            "actor": actor,
            "entity": targets.first(),
            "comment": name,
            "src_endpoint": { "ip": text(event, "initiated_by_ip") },
        })
    };
    merge(body, status(success, None, text(event, "result_reason")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kind: LogKind, body: &str) -> Value {
        let event = signet_model::normalize(kind, body.as_bytes()).unwrap();
        record(&event, "contoso", &serde_json::from_str(body).unwrap())
    }

    #[test]
    fn a_failed_sign_in_is_a_failed_logon() {
        let ocsf = map(
            LogKind::SignIn,
            r#"{"id":"s1","createdDateTime":"2026-11-20T10:00:00Z","userPrincipalName":"ann@contoso.com","userId":"u1",
                "appDisplayName":"Payroll","ipAddress":"10.1.2.3","status":{"errorCode":50126,"failureReason":"Invalid password"}}"#,
        );
        assert_eq!(
            (ocsf["class_uid"].as_u64(), ocsf["type_uid"].as_u64(), ocsf["activity_id"].as_u64()),
            (Some(3002), Some(300201), Some(1))
        );
        assert_eq!((ocsf["status_id"].as_u64(), ocsf["status_code"].as_str()), (Some(2), Some("50126")));
        assert_eq!(ocsf["user"]["name"], "ann@contoso.com");
        assert_eq!(ocsf["src_endpoint"]["ip"], "10.1.2.3");
        assert_eq!(ocsf["time"], 1_795_168_800_000i64);
        assert_eq!(
            (ocsf["metadata"]["uid"].as_str(), ocsf["metadata"]["tenant_uid"].as_str()),
            (Some("s1"), Some("contoso"))
        );
        assert_eq!(ocsf["unmapped"]["record"]["appDisplayName"], "Payroll", "the source record goes along");
        assert!(ocsf["http_request"].is_null(), "empty objects are left out: {ocsf}");
    }

    #[test]
    fn activities_and_directory_audits_find_their_classes() {
        let read = map(
            LogKind::Activity,
            r#"{"Id":"a1","CreationTime":"2026-11-20T10:00:00Z","Operation":"Retrieve","User":"ann@contoso.com","EntityName":"account","EntityId":"42"}"#,
        );
        assert_eq!(
            (read["class_uid"].as_u64(), read["activity_id"].as_u64(), read["type_uid"].as_u64()),
            (Some(6003), Some(2), Some(600302))
        );
        assert_eq!(
            (read["api"]["operation"].as_str(), read["resources"][0]["type"].as_str()),
            (Some("Retrieve"), Some("account"))
        );
        let reset = map(
            LogKind::DirectoryAudit,
            r#"{"id":"d1","activityDateTime":"2026-11-20T10:00:00Z","activityDisplayName":"Reset user password","category":"UserManagement",
                "result":"success","initiatedBy":{"user":{"userPrincipalName":"admin@contoso.com"}},
                "targetResources":[{"id":"u9","type":"User","userPrincipalName":"bob@contoso.com"}]}"#,
        );
        assert_eq!((reset["class_uid"].as_u64(), reset["activity_id"].as_u64()), (Some(3001), Some(4)));
        assert_eq!(
            (reset["user"]["name"].as_str(), reset["actor"]["user"]["name"].as_str()),
            (Some("bob@contoso.com"), Some("admin@contoso.com"))
        );
        let app = map(
            LogKind::DirectoryAudit,
            r#"{"id":"d2","activityDateTime":"2026-11-20T10:00:00Z","activityDisplayName":"Update application","category":"ApplicationManagement",
                "operationType":"Update","result":"failure","targetResources":[{"id":"app1","type":"Application","displayName":"Payroll"}]}"#,
        );
        assert_eq!(
            (app["class_uid"].as_u64(), app["activity_id"].as_u64(), app["status_id"].as_u64()),
            (Some(3004), Some(3), Some(2))
        );
        assert_eq!(app["entity"]["name"], "Payroll");
    }
}
