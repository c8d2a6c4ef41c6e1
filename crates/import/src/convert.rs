//! One record of any supported shape -> its log kind and Graph-shaped (or O365-shaped) JSON.
//! Okta System Log events are converted in [`crate::okta`].

use serde_json::{Map, Value};
use signet_model::LogKind;

/// A record converted to the shape Signet serves, with the source record kept when reshaped.
#[derive(Debug)]
pub struct Converted {
    pub kind: LogKind,
    pub body: Vec<u8>,
    pub original: Option<Vec<u8>>,
}

/// (field, reason)
pub type ConvertError = (String, String);

fn err(field: &str, reason: impl Into<String>) -> ConvertError {
    (field.to_string(), reason.into())
}

/// Detects the shape of one JSON record and converts it.
pub fn convert_record(bytes: &[u8]) -> Result<Converted, ConvertError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| err("(record)", format!("malformed JSON: {e}")))?;
    let Value::Object(obj) = value else { return Err(err("(record)", "a record must be a JSON object")) };
    convert_object(obj, bytes)
}

/// Converts a parsed object (from JSON or a CSV row); `source` is kept as the original record.
pub fn convert_object(obj: Map<String, Value>, source: &[u8]) -> Result<Converted, ConvertError> {
    let reshaped = |kind: LogKind, body: Map<String, Value>| Converted {
        kind,
        body: serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
        original: Some(source.to_vec()),
    };
    if obj.get("properties").is_some_and(Value::is_object) && (obj.contains_key("category") || obj.contains_key("time"))
    {
        let (kind, body) = from_diagnostic(obj)?;
        return Ok(reshaped(kind, body));
    }
    if let Some(kind) = log_analytics_kind(&obj) {
        let body = match kind {
            LogKind::SignIn => la_signin(obj)?,
            LogKind::DirectoryAudit => la_audit(obj)?,
            LogKind::Activity => la_office(obj),
        };
        return Ok(reshaped(kind, body));
    }
    if crate::okta::is_okta_event(&obj) {
        let (kind, body) = crate::okta::convert(&obj)?;
        return Ok(reshaped(kind, body));
    }
    let kind = if obj.contains_key("createdDateTime") {
        LogKind::SignIn
    } else if obj.contains_key("activityDateTime") {
        LogKind::DirectoryAudit
    } else if obj.contains_key("CreationTime") && obj.contains_key("Operation") {
        LogKind::Activity
    } else {
        return Err(err(
            "(record)",
            "unrecognised record: expected a Graph signIn or directoryAudit, an activity record (CreationTime, Operation), \
             a Log Analytics row (TimeGenerated), an Azure diagnostic record (time, category, properties) \
             or an Okta System Log event (uuid, published, eventType)",
        ));
    };
    Ok(Converted { kind, body: source.to_vec(), original: None })
}

/// Azure Monitor diagnostic-settings record: `{time, category, resultType, properties{...}}`.
fn from_diagnostic(mut obj: Map<String, Value>) -> Result<(LogKind, Map<String, Value>), ConvertError> {
    let category = obj.get("category").and_then(Value::as_str).unwrap_or("").to_string();
    let Some(Value::Object(mut props)) = obj.remove("properties") else { return Err(err("properties", "missing")) };
    let time = obj.get("time").cloned();
    let lower = category.to_ascii_lowercase();
    if lower.contains("signin") {
        if !props.contains_key("createdDateTime") {
            props.insert("createdDateTime".into(), time.ok_or_else(|| err("time", "missing"))?);
        }
        if let Some(event_type) = event_type_of_category(&lower) {
            props.entry("signInEventTypes").or_insert_with(|| Value::Array(vec![Value::String(event_type.into())]));
        }
        let status = props.entry("status").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(status) = status {
            if status.get("errorCode").is_none_or(Value::is_null) {
                if let Some(code) = obj.get("resultType").and_then(number_or_string) {
                    status.insert("errorCode".into(), Value::from(code));
                }
            }
        }
        return Ok((LogKind::SignIn, props));
    }
    if lower == "auditlogs" {
        if !props.contains_key("activityDateTime") {
            props.insert("activityDateTime".into(), time.ok_or_else(|| err("time", "missing"))?);
        }
        return Ok((LogKind::DirectoryAudit, props));
    }
    Err(err("category", format!("unsupported diagnostic category {category:?} (SignInLogs, NonInteractiveUserSignInLogs, ServicePrincipalSignInLogs, ManagedIdentitySignInLogs, AuditLogs)")))
}

fn event_type_of_category(lower: &str) -> Option<&'static str> {
    if lower.contains("noninteractive") {
        Some("nonInteractiveUser")
    } else if lower.contains("serviceprincipal") {
        Some("servicePrincipal")
    } else if lower.contains("managedidentity") {
        Some("managedIdentity")
    } else {
        None
    }
}

fn number_or_string(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Which Log Analytics table a row comes from, if it is one.
pub fn log_analytics_kind(obj: &Map<String, Value>) -> Option<LogKind> {
    let table = obj.get("Type").and_then(Value::as_str).unwrap_or("");
    match table {
        "SigninLogs"
        | "AADNonInteractiveUserSignInLogs"
        | "AADServicePrincipalSignInLogs"
        | "AADManagedIdentitySignInLogs" => return Some(LogKind::SignIn),
        "AuditLogs" => return Some(LogKind::DirectoryAudit),
        "OfficeActivity" => return Some(LogKind::Activity),
        _ => {}
    }
    let la_marker =
        obj.contains_key("TimeGenerated") || obj.contains_key("TenantId") || obj.contains_key("SourceSystem");
    if !la_marker {
        return None;
    }
    if obj.contains_key("CreatedDateTime")
        || obj.get("Category").and_then(Value::as_str).is_some_and(|c| c.ends_with("SignInLogs"))
    {
        Some(LogKind::SignIn)
    } else if obj.contains_key("ActivityDisplayName") || obj.contains_key("LoggedByService") {
        Some(LogKind::DirectoryAudit)
    } else if obj.contains_key("Operation") && (obj.contains_key("OfficeWorkload") || obj.contains_key("RecordType")) {
        Some(LogKind::Activity)
    } else {
        None
    }
}

/// Log Analytics bookkeeping columns that have no place in the Graph resource.
const LA_ONLY: &[&str] = &[
    "TenantId",
    "SourceSystem",
    "TimeGenerated",
    "ResourceId",
    "OperationName",
    "OperationVersion",
    "Category",
    "ResultType",
    "ResultSignature",
    "ResultDescription",
    "DurationMs",
    "Resource",
    "ResourceGroup",
    "ResourceProvider",
    "Identity",
    "Level",
    "Location",
    "AADTenantId",
    "Type",
    "_ResourceId",
    "_ItemId",
    "_BilledSize",
    "_IsBillable",
    "InitiatingUserOrApp",
    "InitiatingIpAddress",
    "target",
    "targetDisplayName",
    "targetId",
    "targetType",
    "keyEvents",
    "AccountCustomEntity",
    "IPCustomEntity",
    "keyDisplayName",
    "keyType",
    "keyUsage",
    "keyIdentifier",
];

fn camel(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Parses JSON held in a string (`"{\"city\":...}"`); leaves other values alone.
fn unstring(value: Value) -> Value {
    match &value {
        Value::String(s) => {
            let t = s.trim();
            if (t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']')) {
                serde_json::from_str(t).unwrap_or(value)
            } else {
                value
            }
        }
        _ => value,
    }
}

fn la_rename(obj: Map<String, Value>, renames: &[(&str, &str)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in obj {
        if LA_ONLY.contains(&key.as_str()) {
            continue;
        }
        let name = renames.iter().find(|(from, _)| *from == key).map_or_else(|| camel(&key), |(_, to)| to.to_string());
        if value.is_null() || value.as_str().is_some_and(str::is_empty) {
            continue;
        }
        out.insert(name, unstring(value));
    }
    out
}

fn la_signin(obj: Map<String, Value>) -> Result<Map<String, Value>, ConvertError> {
    let time_generated = obj.get("TimeGenerated").cloned();
    let result_type = obj.get("ResultType").and_then(number_or_string);
    let result_description = obj.get("ResultDescription").cloned();
    let table = obj.get("Type").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
    let mut out = la_rename(
        obj,
        &[
            ("Id", "id"),
            ("IPAddress", "ipAddress"),
            ("LocationDetails", "location"),
            ("ConditionalAccessPolicies", "appliedConditionalAccessPolicies"),
            ("ResourceIdentity", "resourceId"),
            ("RiskEventTypes_V2", "riskEventTypes_v2"),
        ],
    );
    if !out.contains_key("createdDateTime") {
        out.insert(
            "createdDateTime".into(),
            time_generated.ok_or_else(|| err("CreatedDateTime", "missing (and no TimeGenerated)"))?,
        );
    }
    let status = out.entry("status").or_insert_with(|| Value::Object(Map::new()));
    if !status.is_object() {
        *status = Value::Object(Map::new());
    }
    if let Value::Object(status) = status {
        if status.get("errorCode").is_none_or(Value::is_null) {
            if let Some(code) = result_type {
                status.insert("errorCode".into(), Value::from(code));
            }
        }
        if status.get("failureReason").is_none_or(Value::is_null) {
            if let Some(reason) = result_description.filter(|r| r.as_str().is_some_and(|s| !s.is_empty())) {
                status.insert("failureReason".into(), reason);
            }
        }
    }
    if let Some(event_type) = event_type_of_category(&table) {
        out.entry("signInEventTypes").or_insert_with(|| Value::Array(vec![Value::String(event_type.into())]));
    }
    Ok(out)
}

fn la_audit(obj: Map<String, Value>) -> Result<Map<String, Value>, ConvertError> {
    let time_generated = obj.get("TimeGenerated").cloned();
    let operation_name = obj.get("OperationName").cloned();
    let mut out = la_rename(obj, &[("Id", "id"), ("AADOperationType", "operationType")]);
    if !out.contains_key("activityDateTime") {
        out.insert(
            "activityDateTime".into(),
            time_generated.ok_or_else(|| {
                err("ActivityDateTime", "missing (and no TimeGenerated): the export has no time column")
            })?,
        );
    }
    if !out.contains_key("activityDisplayName") {
        if let Some(name) = operation_name {
            out.insert("activityDisplayName".into(), name);
        }
    }
    if let Some(Value::String(name)) = out.get_mut("activityDisplayName") {
        *name = name.trim().to_string();
    }
    Ok(out)
}

/// `OfficeActivity` rows already use the O365 names, with a few Log Analytics renames.
fn la_office(obj: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let time_generated = obj.get("TimeGenerated").cloned();
    for (key, value) in obj {
        let name = match key.as_str() {
            "OfficeId" => "Id",
            "OfficeWorkload" => "Workload",
            "Client_IPAddress" => "ClientIP",
            "TenantId" | "SourceSystem" | "Type" | "TimeGenerated" => continue,
            k if k.ends_with('_') => continue,
            k => k,
        };
        out.insert(name.to_string(), unstring(value));
    }
    if !out.contains_key("CreationTime") {
        if let Some(t) = time_generated {
            out.insert("CreationTime".into(), t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(c: &Converted) -> Value {
        serde_json::from_slice(&c.body).unwrap()
    }

    #[test]
    fn diagnostic_sign_in() {
        let record = br#"{"time":"2019-10-18T09:45:48Z","category":"NonInteractiveUserSignInLogs","resultType":"50140",
            "properties":{"id":"x","userPrincipalName":"a@b.c","status":{"failureReason":"kmsi"}}}"#;
        let c = convert_record(record).unwrap();
        assert_eq!(c.kind, LogKind::SignIn);
        let b = body(&c);
        assert_eq!(b["createdDateTime"], "2019-10-18T09:45:48Z");
        assert_eq!(b["status"]["errorCode"], 50140);
        assert_eq!(b["signInEventTypes"][0], "nonInteractiveUser");
        assert_eq!(c.original.as_deref(), Some(&record[..]));
    }

    #[test]
    fn log_analytics_sign_in_with_json_in_strings() {
        let record = br#"{"TimeGenerated":"2021-04-28T14:08:45Z","Type":"SigninLogs","Id":"r1","ResultType":"50126",
            "ResultDescription":"Invalid username or password","UserPrincipalName":"a@b.c","IPAddress":"1.2.3.4",
            "LocationDetails":"{\"city\":\"Haifa\",\"countryOrRegion\":\"IL\"}","Status":"{}","IsInteractive":"TRUE"}"#;
        let c = convert_record(record).unwrap();
        let b = body(&c);
        assert_eq!(b["id"], "r1");
        assert_eq!(b["createdDateTime"], "2021-04-28T14:08:45Z");
        assert_eq!(b["ipAddress"], "1.2.3.4");
        assert_eq!(b["location"]["city"], "Haifa");
        assert_eq!(b["status"]["errorCode"], 50126);
        assert_eq!(b["status"]["failureReason"], "Invalid username or password");
        assert!(b.get("TimeGenerated").is_none() && b.get("timeGenerated").is_none());
    }

    #[test]
    fn log_analytics_audit_and_office_activity() {
        let audit = br#"{"TimeGenerated":"2021-08-02T13:29:25.983Z","Type":"AuditLogs","Id":"Directory_1","OperationName":"Update application ","ActivityDisplayName":"Update application  ",
            "InitiatedBy":"{\"user\":{\"userPrincipalName\":\"p@x.com\"}}","TargetResources":"[{\"id\":\"t\",\"type\":\"Application\"}]"}"#;
        let c = convert_record(audit).unwrap();
        assert_eq!(c.kind, LogKind::DirectoryAudit);
        let b = body(&c);
        assert_eq!(b["activityDateTime"], "2021-08-02T13:29:25.983Z");
        assert_eq!(b["activityDisplayName"], "Update application");
        assert_eq!(b["initiatedBy"]["user"]["userPrincipalName"], "p@x.com");

        let office = br#"{"TimeGenerated":"2021-08-02T13:32:07Z","Type":"OfficeActivity","OfficeId":"o1","Operation":"MailItemsAccessed","OfficeWorkload":"Exchange","Client_IPAddress":"1.2.3.4","UserId":"p@x.com","OrganizationId_":"dup"}"#;
        let c = convert_record(office).unwrap();
        assert_eq!(c.kind, LogKind::Activity);
        let b = body(&c);
        assert_eq!(b["Id"], "o1");
        assert_eq!(b["CreationTime"], "2021-08-02T13:32:07Z");
        assert_eq!(b["ClientIP"], "1.2.3.4");
        assert!(b.get("OrganizationId_").is_none());
    }

    #[test]
    fn graph_records_pass_through() {
        let c = convert_record(br#"{"id":"a","createdDateTime":"2020-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(c.kind, LogKind::SignIn);
        assert!(c.original.is_none());
        let e = convert_record(br#"{"hello":"world"}"#).unwrap_err();
        assert!(e.1.contains("unrecognised"));
    }
}
