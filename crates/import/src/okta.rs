//! Okta System Log `LogEvent` records (`GET /api/v1/logs`, log streaming, SIEM exports) ->
//! Graph-shaped sign-ins and directory audits.
//!
//! Authentication events (`user.session.start`, `user.authentication.*`) become sign-ins; every
//! other event (user and group lifecycle, application, policy and system changes, sign-outs,
//! policy evaluations, ...) becomes a directory audit logged by the service "Okta". The Okta
//! record is kept whole as the source record, so whatever has no Graph counterpart is still
//! there. The mapping is summarised in the README ("Okta System Log", under the HTTP API).

use serde_json::{json, Map, Value};
use signet_model::LogKind;

use crate::convert::ConvertError;

/// True for an Okta System Log event: `uuid`, `published` and `eventType` are always present.
pub fn is_okta_event(obj: &Map<String, Value>) -> bool {
    obj.contains_key("eventType") && obj.contains_key("published") && obj.contains_key("uuid")
}

/// Converts one Okta `LogEvent`.
pub fn convert(obj: &Map<String, Value>) -> Result<(LogKind, Map<String, Value>), ConvertError> {
    let id = text(obj, &["uuid"]).ok_or_else(|| err("uuid", "missing or empty"))?;
    let published = text(obj, &["published"]).ok_or_else(|| err("published", "missing or empty"))?;
    let event_type = text(obj, &["eventType"]).ok_or_else(|| err("eventType", "missing or empty"))?;
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    let correlation = text(obj, &["transaction", "id"]);
    if is_sign_in(event_type) {
        out.insert("createdDateTime".into(), json!(published));
        sign_in(obj, event_type, &mut out);
        put(&mut out, "correlationId", correlation);
        Ok((LogKind::SignIn, out))
    } else {
        out.insert("activityDateTime".into(), json!(published));
        audit(obj, event_type, &mut out);
        put(&mut out, "correlationId", correlation);
        Ok((LogKind::DirectoryAudit, out))
    }
}

fn err(field: &str, reason: &str) -> ConvertError {
    (field.to_string(), reason.to_string())
}

/// An application's sign-on policy refused a user: a failed sign-in to that application.
const APP_ACCESS_DENIED: &str = "application.policy.sign_on.deny_access";

/// Okta's authentication events; sign-outs (`...universal_logout`) are not sign-ins.
fn is_sign_in(event_type: &str) -> bool {
    event_type == "user.session.start"
        || event_type == APP_ACCESS_DENIED
        || (event_type.starts_with("user.authentication.") && !event_type.contains("logout"))
}

/// The string at `path`, if it is a non-empty string other than Okta's `"null"` placeholder.
fn text<'a>(obj: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let mut current = obj;
    for key in parents {
        current = current.get(*key)?.as_object()?;
    }
    current.get(*last)?.as_str().map(str::trim).filter(|s| !s.is_empty() && *s != "null")
}

fn put(out: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        out.insert(key.to_string(), json!(value));
    }
}

/// Okta writes `unknown` for the id and name of an actor it could not identify (a sign-in
/// with a user name that matches nobody); the typed user name is then in `alternateId`.
fn known(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.eq_ignore_ascii_case("unknown"))
}

fn targets(obj: &Map<String, Value>) -> Vec<&Map<String, Value>> {
    match obj.get("target") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    }
}

fn sign_in(obj: &Map<String, Value>, event_type: &str, out: &mut Map<String, Value>) {
    let actor_type = text(obj, &["actor", "type"]).unwrap_or("User");
    if actor_type == "User" {
        put(out, "userId", known(text(obj, &["actor", "id"])));
        put(out, "userPrincipalName", known(text(obj, &["actor", "alternateId"])));
        put(out, "userDisplayName", known(text(obj, &["actor", "displayName"])));
        out.insert("signInEventTypes".into(), json!(["interactiveUser"]));
        out.insert("isInteractive".into(), json!(true));
    } else {
        put(out, "servicePrincipalId", known(text(obj, &["actor", "id"])));
        put(out, "servicePrincipalName", known(text(obj, &["actor", "displayName"])));
        out.insert("signInEventTypes".into(), json!(["servicePrincipal"]));
        out.insert("isInteractive".into(), json!(false));
    }

    // The application signed in to: the target app instance of an SSO, Okta itself otherwise.
    let app = targets(obj).into_iter().find(|t| t.get("type").and_then(Value::as_str) == Some("AppInstance"));
    match app {
        Some(app) => {
            put(out, "appId", text(app, &["id"]));
            put(out, "appDisplayName", text(app, &["displayName"]));
            put(out, "resourceDisplayName", text(app, &["displayName"]));
        }
        None => {
            out.insert("appDisplayName".into(), json!("Okta"));
            out.insert("resourceDisplayName".into(), json!("Okta"));
        }
    }

    put(out, "ipAddress", text(obj, &["client", "ipAddress"]));
    if let Some(location) = location(obj) {
        out.insert("location".into(), location);
    }
    put(out, "userAgent", text(obj, &["client", "userAgent", "rawUserAgent"]));
    let browser = text(obj, &["client", "userAgent", "browser"]).filter(|b| !b.eq_ignore_ascii_case("unknown"));
    let mut device = Map::new();
    put(&mut device, "browser", browser);
    put(&mut device, "operatingSystem", known(text(obj, &["client", "userAgent", "os"])));
    // Okta Identity Engine adds a `device` object for registered devices (Okta Verify).
    put(&mut device, "deviceId", text(obj, &["device", "id"]));
    put(&mut device, "displayName", text(obj, &["device", "name"]));
    if let Some(managed) = obj.get("device").and_then(|d| d.get("managed")).and_then(Value::as_bool) {
        device.insert("isManaged".into(), json!(managed));
    }
    if !device.is_empty() {
        out.insert("deviceDetail".into(), Value::Object(device));
    }
    if browser.is_some() {
        out.insert("clientAppUsed".into(), json!("Browser"));
    }

    let result = text(obj, &["outcome", "result"]).unwrap_or("UNKNOWN").to_ascii_uppercase();
    let reason = text(obj, &["outcome", "reason"]);
    let code = match error_code(&result, reason) {
        failure if event_type == APP_ACCESS_DENIED && failure != 0 && failure != 50074 => 53003,
        code => code,
    };
    let mut status = Map::new();
    status.insert("errorCode".into(), json!(code));
    if code != 0 {
        let reason = reason.map(str::to_string).unwrap_or_else(|| format!("Okta outcome {result}"));
        status.insert("failureReason".into(), json!(reason));
    }
    let message = text(obj, &["displayMessage"]).unwrap_or(event_type);
    status.insert("additionalDetails".into(), json!(format!("Okta {event_type}: {message}")));
    out.insert("status".into(), Value::Object(status));

    let steps = authentication_steps(obj, event_type, code == 0, text(obj, &["published"]));
    let multi_factor = event_type == "user.authentication.auth_via_mfa"
        || steps.iter().any(|s| s["authenticationStepRequirement"] == "Multi-factor authentication");
    if !steps.is_empty() {
        out.insert("authenticationDetails".into(), Value::Array(steps));
    }
    if multi_factor {
        out.insert("authenticationRequirement".into(), json!("multiFactorAuthentication"));
    }

    // `debugData.risk` looks like "{reasons=Anomalous Device, level=HIGH}"; ThreatInsight
    // marks addresses it suspects of credential attacks with `threatSuspected`.
    if let Some(level) = text(obj, &["debugContext", "debugData", "risk"]).and_then(risk_level) {
        out.insert("riskLevelDuringSignIn".into(), json!(level));
    }
    if text(obj, &["debugContext", "debugData", "threatSuspected"]).is_some_and(|t| t.eq_ignore_ascii_case("true")) {
        out.insert("riskEventTypes_v2".into(), json!(["maliciousIPAddress"]));
    }
}

/// Okta's outcome as an Entra error code: the nearest Entra code for the reasons Okta
/// documents, AADSTS50012 ("the identity provider reported an error") for other failures.
fn error_code(result: &str, reason: Option<&str>) -> i64 {
    match result {
        "SUCCESS" | "ALLOW" => return 0,
        // More verification was asked for: an interrupt, like Entra's "strong auth required".
        "CHALLENGE" => return 50074,
        _ => {}
    }
    let reason = reason.unwrap_or("").to_ascii_uppercase().replace([' ', '-'], "_");
    let has = |needle: &str| reason.contains(needle);
    if has("INVALID_CREDENTIALS") || has("INVALID_PASSWORD") {
        50126
    } else if has("UNKNOWN_USER") || has("USER_NOT_FOUND") {
        50034
    } else if has("LOCKED_OUT") {
        50053
    } else if has("PASSWORD_EXPIRED") {
        50055
    } else if has("SUSPENDED") || has("DEACTIVATED") {
        50057
    } else if has("VERIFICATION_ERROR") || has("INVALID_FACTOR") {
        500121
    } else if has("NOT_ASSIGNED") {
        50105
    } else if result == "DENY" {
        // A sign-on policy denied access: Entra's "blocked by Conditional Access".
        53003
    } else {
        50012
    }
}

/// The credential or factor the event used, as an authentication step with Entra's method name.
fn authentication_steps(obj: &Map<String, Value>, event_type: &str, succeeded: bool, at: Option<&str>) -> Vec<Value> {
    let factor = text(obj, &["debugContext", "debugData", "factor"]);
    let credential = text(obj, &["authenticationContext", "credentialType"]);
    let Some(raw) = factor.or(credential) else { return Vec::new() };
    let method = method_name(raw);
    let requirement = if event_type == "user.authentication.auth_via_mfa" || (method != "Password" && factor.is_some())
    {
        "Multi-factor authentication"
    } else {
        "Primary authentication"
    };
    let mut step = Map::new();
    step.insert("authenticationMethod".into(), json!(method));
    step.insert("succeeded".into(), json!(succeeded));
    step.insert("authenticationStepRequirement".into(), json!(requirement));
    if let Some(at) = at {
        step.insert("authenticationStepDateTime".into(), json!(at));
    }
    vec![Value::Object(step)]
}

/// Okta factor and credential types -> the method names Entra's sign-in log uses; anything
/// else is kept as Okta names it.
fn method_name(okta: &str) -> String {
    let upper = okta.to_ascii_uppercase();
    let name = match upper.as_str() {
        "PASSWORD" => "Password",
        "OKTA_VERIFY_PUSH" | "PUSH" => "Mobile app notification",
        "SMS" | "SMS_FACTOR" => "Text message",
        "CALL" | "CALL_FACTOR" => "Phone call",
        "OTP" | "TOTP" | "GOOGLE_AUTHENTICATOR" | "OKTA_VERIFY_TOTP" | "TOKEN:SOFTWARE:TOTP" => {
            "OATH verification code"
        }
        "FIDO_WEBAUTHN" | "WEBAUTHN" | "U2F" => "FIDO2 security key",
        "EMAIL" | "EMAIL_FACTOR" => "Email verification code",
        "CERTIFICATE" | "X509" | "SMART_CARD" => "X.509 Certificate",
        _ => return okta.to_string(),
    };
    name.to_string()
}

fn risk_level(risk: &str) -> Option<&'static str> {
    let upper = risk.to_ascii_uppercase();
    let level = upper.split(['{', '}', ',']).find_map(|part| part.trim().strip_prefix("LEVEL="))?;
    match level.trim() {
        "LOW" => Some("low"),
        "MEDIUM" => Some("medium"),
        "HIGH" => Some("high"),
        _ => None,
    }
}

fn location(obj: &Map<String, Value>) -> Option<Value> {
    let geo = obj.get("client")?.get("geographicalContext")?.as_object()?;
    let mut location = Map::new();
    put(&mut location, "city", text(geo, &["city"]));
    put(&mut location, "state", text(geo, &["state"]));
    put(&mut location, "countryOrRegion", text(geo, &["country"]));
    let coordinate = |key: &str| geo.get("geolocation").and_then(|g| g.get(key)).and_then(Value::as_f64);
    if let (Some(latitude), Some(longitude)) = (coordinate("lat"), coordinate("lon")) {
        location.insert("geoCoordinates".into(), json!({"latitude": latitude, "longitude": longitude}));
    }
    (!location.is_empty()).then_some(Value::Object(location))
}

fn audit(obj: &Map<String, Value>, event_type: &str, out: &mut Map<String, Value>) {
    out.insert("activityDisplayName".into(), json!(text(obj, &["displayMessage"]).unwrap_or(event_type)));
    out.insert("category".into(), json!(category(event_type)));
    out.insert("loggedByService".into(), json!("Okta"));
    out.insert("operationType".into(), json!(operation_type(event_type)));
    let result = text(obj, &["outcome", "result"]).map(str::to_ascii_uppercase);
    let result = match result.as_deref() {
        Some("SUCCESS") | Some("ALLOW") => "success".to_string(),
        Some("FAILURE") | Some("DENY") => "failure".to_string(),
        Some(other) => other.to_ascii_lowercase(),
        None => "unknown".to_string(),
    };
    out.insert("result".into(), json!(result));
    put(out, "resultReason", text(obj, &["outcome", "reason"]));

    let actor_type = text(obj, &["actor", "type"]).unwrap_or("User");
    let initiated = if actor_type == "User" {
        let mut user = Map::new();
        put(&mut user, "id", known(text(obj, &["actor", "id"])));
        put(&mut user, "displayName", known(text(obj, &["actor", "displayName"])));
        put(&mut user, "userPrincipalName", known(text(obj, &["actor", "alternateId"])));
        put(&mut user, "ipAddress", text(obj, &["client", "ipAddress"]));
        json!({ "user": user })
    } else {
        let mut app = Map::new();
        put(&mut app, "appId", known(text(obj, &["actor", "id"])));
        put(&mut app, "displayName", known(text(obj, &["actor", "displayName"])));
        json!({ "app": app })
    };
    out.insert("initiatedBy".into(), initiated);

    let resources: Vec<Value> = targets(obj)
        .into_iter()
        .map(|t| {
            let mut resource = Map::new();
            put(&mut resource, "id", text(t, &["id"]));
            put(&mut resource, "displayName", text(t, &["displayName"]));
            put(&mut resource, "type", text(t, &["type"]));
            if text(t, &["type"]) == Some("User") {
                put(&mut resource, "userPrincipalName", text(t, &["alternateId"]));
            }
            Value::Object(resource)
        })
        .collect();
    out.insert("targetResources".into(), Value::Array(resources));

    let mut details = vec![json!({"key": "eventType", "value": event_type})];
    for (key, path) in [
        ("legacyEventType", &["legacyEventType"][..]),
        ("severity", &["severity"][..]),
        ("transactionType", &["transaction", "type"][..]),
        ("externalSessionId", &["authenticationContext", "externalSessionId"][..]),
        ("userAgent", &["client", "userAgent", "rawUserAgent"][..]),
    ] {
        if let Some(value) = text(obj, path) {
            details.push(json!({"key": key, "value": value}));
        }
    }
    out.insert("additionalDetails".into(), Value::Array(details));
}

/// Entra's directory-audit categories for Okta's event-type families.
fn category(event_type: &str) -> &'static str {
    let starts = |prefix: &str| event_type.starts_with(prefix);
    if event_type.contains("privilege") || starts("iam.role") {
        "RoleManagement"
    } else if starts("user.session") || starts("user.account") || starts("user.lifecycle") || starts("user.mfa") {
        "UserManagement"
    } else if starts("group.") {
        "GroupManagement"
    } else if starts("application.") || starts("app.") {
        "ApplicationManagement"
    } else if starts("policy.") || starts("zone.") || starts("network_zone.") {
        "Policy"
    } else if starts("device.") {
        "Device"
    } else if starts("system.") || starts("org.") {
        "DirectoryManagement"
    } else if starts("user.") {
        "UserManagement"
    } else {
        "Other"
    }
}

/// Graph's operation types from the event type's verb (`group.user_membership.add` -> Add).
fn operation_type(event_type: &str) -> &'static str {
    let verb = event_type.rsplit('.').next().unwrap_or("");
    match verb {
        "create" | "add" | "activate" | "grant" => "Add",
        "delete" | "remove" | "deactivate" | "revoke" => "Delete",
        "assign" => "Assign",
        "unassign" => "Unassign",
        "update" | "change" | "reset" | "suspend" | "unsuspend" | "lock" | "unlock" | "reset_password" => "Update",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_model::Cell;

    fn object(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    const SSO_FAILURE: &str = r#"{"uuid":"e1","published":"2024-03-05T08:15:00.123Z","eventType":"user.authentication.sso",
        "displayMessage":"User single sign on to app","version":"0","severity":"WARN",
        "actor":{"id":"00u1","type":"User","alternateId":"ana@example.com","displayName":"Ana Lima"},
        "client":{"ipAddress":"203.0.113.9","device":"Computer",
          "userAgent":{"rawUserAgent":"Mozilla/5.0 (Windows NT 10.0) Chrome/120","os":"Windows 10","browser":"CHROME"},
          "geographicalContext":{"city":"Lisbon","state":"Lisboa","country":"Portugal","geolocation":{"lat":38.7,"lon":-9.1}}},
        "outcome":{"result":"FAILURE","reason":"User is not assigned to this application"},
        "target":[{"id":"0oa9","type":"AppInstance","alternateId":"Salesforce","displayName":"Salesforce.com"}],
        "transaction":{"type":"WEB","id":"Xk1"},
        "debugContext":{"debugData":{"threatSuspected":"true","risk":"{reasons=Anomalous Location, level=HIGH}"}}}"#;

    #[test]
    fn an_sso_to_an_app_is_a_sign_in_to_that_app() {
        let (kind, b) = convert(&object(SSO_FAILURE)).unwrap();
        assert_eq!(kind, LogKind::SignIn);
        assert_eq!(b["id"], "e1");
        assert_eq!(b["createdDateTime"], "2024-03-05T08:15:00.123Z");
        assert_eq!(b["userId"], "00u1");
        assert_eq!(b["userPrincipalName"], "ana@example.com");
        assert_eq!(b["appId"], "0oa9");
        assert_eq!(b["appDisplayName"], "Salesforce.com");
        assert_eq!(b["ipAddress"], "203.0.113.9");
        assert_eq!(b["location"]["countryOrRegion"], "Portugal");
        assert_eq!(b["location"]["geoCoordinates"]["longitude"], -9.1);
        assert_eq!(b["deviceDetail"]["browser"], "CHROME");
        assert_eq!(b["clientAppUsed"], "Browser");
        assert_eq!(b["correlationId"], "Xk1");
        assert_eq!(b["status"]["errorCode"], 50105);
        assert_eq!(b["status"]["failureReason"], "User is not assigned to this application");
        assert_eq!(b["riskLevelDuringSignIn"], "high");
        assert_eq!(b["riskEventTypes_v2"][0], "maliciousIPAddress");
    }

    #[test]
    fn converted_sign_ins_normalise_into_the_columns_reports_use() {
        let record = SSO_FAILURE.replace('\n', " ");
        let converted = crate::convert::convert_record(record.as_bytes()).unwrap();
        assert_eq!(converted.original.as_deref(), Some(record.as_bytes()));
        let event = crate::to_event(converted).unwrap();
        assert_eq!(event.id, "e1");
        let cell = |name: &str| event.cell(name).unwrap().to_cell();
        assert_eq!(cell("status"), Cell::Str("failure".into()));
        assert_eq!(cell("error_code"), Cell::Int(50105));
        assert_eq!(cell("risk_detected"), Cell::Bool(true));
        assert_eq!(cell("is_legacy_client"), Cell::Bool(false));
        assert_eq!(cell("app_display_name").as_str(), Some("Salesforce.com"));
        assert_eq!(cell("user_key").as_str(), Some("00u1"));
    }

    #[test]
    fn outcomes_map_to_the_nearest_entra_codes() {
        assert_eq!(error_code("SUCCESS", None), 0);
        assert_eq!(error_code("ALLOW", None), 0);
        assert_eq!(error_code("CHALLENGE", None), 50074);
        assert_eq!(error_code("FAILURE", Some("INVALID_CREDENTIALS")), 50126);
        assert_eq!(error_code("FAILURE", Some("LOCKED_OUT")), 50053);
        assert_eq!(error_code("FAILURE", Some("VERIFICATION_ERROR")), 500121);
        assert_eq!(error_code("FAILURE", Some("UNKNOWN_USER")), 50034);
        assert_eq!(error_code("DENY", Some("Sign-on policy evaluation resulted in DENY")), 53003);
        assert_eq!(error_code("FAILURE", Some("something new")), 50012);
        assert_eq!(error_code("UNKNOWN", None), 50012);
    }

    #[test]
    fn an_unknown_user_keeps_the_typed_name_only() {
        let (kind, b) = convert(&object(
            r#"{"uuid":"e2","published":"2024-03-05T08:16:00Z","eventType":"user.session.start",
            "actor":{"id":"unknown","type":"User","alternateId":"bob@example.com","displayName":"unknown"},
            "outcome":{"result":"FAILURE","reason":"INVALID_CREDENTIALS"},
            "authenticationContext":{"credentialType":"PASSWORD"}}"#,
        ))
        .unwrap();
        assert_eq!(kind, LogKind::SignIn);
        assert!(b.get("userId").is_none() && b.get("userDisplayName").is_none());
        assert_eq!(b["userPrincipalName"], "bob@example.com");
        assert_eq!(b["appDisplayName"], "Okta");
        assert_eq!(b["status"]["errorCode"], 50126);
        assert_eq!(b["authenticationDetails"][0]["authenticationMethod"], "Password");
        assert_eq!(b["authenticationDetails"][0]["succeeded"], false);
        assert!(b.get("authenticationRequirement").is_none());
    }

    #[test]
    fn an_app_sign_on_policy_denial_is_a_sign_in_blocked_by_policy() {
        let (kind, b) = convert(&object(
            r#"{"uuid":"e7","published":"2024-03-05T08:18:00Z","eventType":"application.policy.sign_on.deny_access",
            "actor":{"id":"00u1","type":"User","alternateId":"ana@example.com"},"outcome":{"result":"FAILURE"},
            "target":[{"id":"0oa9","type":"AppInstance","displayName":"Salesforce.com"}]}"#,
        ))
        .unwrap();
        assert_eq!(kind, LogKind::SignIn);
        assert_eq!(b["appDisplayName"], "Salesforce.com");
        assert_eq!(b["status"]["errorCode"], 53003);
        assert_eq!(b["status"]["failureReason"], "Okta outcome FAILURE");
    }

    #[test]
    fn an_mfa_event_records_the_factor() {
        let (_, b) = convert(&object(
            r#"{"uuid":"e3","published":"2024-03-05T08:17:00Z","eventType":"user.authentication.auth_via_mfa",
            "actor":{"id":"00u1","type":"User","alternateId":"ana@example.com"},"outcome":{"result":"SUCCESS"},
            "debugContext":{"debugData":{"factor":"OKTA_VERIFY_PUSH"}}}"#,
        ))
        .unwrap();
        assert_eq!(b["status"]["errorCode"], 0);
        assert!(b["status"].get("failureReason").is_none());
        assert_eq!(b["authenticationDetails"][0]["authenticationMethod"], "Mobile app notification");
        assert_eq!(b["authenticationDetails"][0]["authenticationStepRequirement"], "Multi-factor authentication");
        assert_eq!(b["authenticationRequirement"], "multiFactorAuthentication");
    }

    #[test]
    fn admin_changes_and_sign_outs_are_directory_audits() {
        let (kind, b) = convert(&object(
            r#"{"uuid":"e4","published":"2024-03-05T09:00:00Z","eventType":"group.user_membership.add",
            "displayMessage":"Add user to group membership","severity":"INFO",
            "actor":{"id":"00uA","type":"User","alternateId":"admin@example.com","displayName":"Admin"},
            "client":{"ipAddress":"198.51.100.7"},"outcome":{"result":"SUCCESS"},
            "target":[{"id":"00u1","type":"User","alternateId":"ana@example.com","displayName":"Ana Lima"},
                      {"id":"00g1","type":"UserGroup","alternateId":"unknown","displayName":"Finance"}],
            "transaction":{"type":"WEB","id":"Xk2"}}"#,
        ))
        .unwrap();
        assert_eq!(kind, LogKind::DirectoryAudit);
        assert_eq!(b["activityDateTime"], "2024-03-05T09:00:00Z");
        assert_eq!(b["activityDisplayName"], "Add user to group membership");
        assert_eq!(b["category"], "GroupManagement");
        assert_eq!(b["operationType"], "Add");
        assert_eq!(b["loggedByService"], "Okta");
        assert_eq!(b["result"], "success");
        assert_eq!(b["correlationId"], "Xk2");
        assert_eq!(b["initiatedBy"]["user"]["userPrincipalName"], "admin@example.com");
        assert_eq!(b["initiatedBy"]["user"]["ipAddress"], "198.51.100.7");
        assert_eq!(b["targetResources"][0]["userPrincipalName"], "ana@example.com");
        assert_eq!(b["targetResources"][1]["displayName"], "Finance");
        assert!(b["targetResources"][1].get("userPrincipalName").is_none());
        assert_eq!(b["additionalDetails"][0]["value"], "group.user_membership.add");

        let (kind, b) = convert(&object(
            r#"{"uuid":"e5","published":"2024-03-05T09:01:00Z","eventType":"user.session.end","displayMessage":"User logout from Okta",
            "actor":{"id":"00u1","type":"User","alternateId":"ana@example.com"},"outcome":{"result":"SUCCESS"}}"#,
        ))
        .unwrap();
        assert_eq!(kind, LogKind::DirectoryAudit);
        assert_eq!(b["category"], "UserManagement");
        assert_eq!(b["operationType"], "Other");
    }

    #[test]
    fn a_system_actor_initiates_as_an_app_and_missing_ids_are_named() {
        let (_, b) = convert(&object(
            r#"{"uuid":"e6","published":"2024-03-05T09:02:00Z","eventType":"user.lifecycle.deactivate",
            "actor":{"id":"0oaS","type":"SystemPrincipal","displayName":"Okta System"},"outcome":{"result":"SUCCESS"}}"#,
        ))
        .unwrap();
        assert_eq!(b["initiatedBy"]["app"]["displayName"], "Okta System");
        assert_eq!(b["operationType"], "Delete");
        let missing =
            convert(&object(r#"{"uuid":"","published":"2024-03-05T09:02:00Z","eventType":"x"}"#)).unwrap_err();
        assert_eq!(missing.0, "uuid");
    }
}
