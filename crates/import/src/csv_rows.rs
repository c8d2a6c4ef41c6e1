//! CSV exports: the Log Analytics portal export (`CreatedDateTime [UTC]`, `X_dynamic` /
//! `X_string` column pairs, JSON cells spanning lines) and the Entra portal sign-in download
//! (`Date (UTC)`, `Request ID`, `Username`, ...).

use serde_json::{Map, Value};

use crate::convert::{convert_object, Converted};
use crate::{ImportError, Rejected};

/// Normalises a Log Analytics CSV header: drops ` [UTC]`-style suffixes.
fn clean_header(header: &str) -> String {
    let h = header.trim().trim_start_matches('\u{feff}');
    match h.find(" [") {
        Some(cut) if h.ends_with(']') => h[..cut].to_string(),
        _ => h.to_string(),
    }
}

/// One converted row, with its 1-based data row number.
pub type RowOutcome = (usize, Result<Converted, Rejected>);

/// Converts every row; the number is the 1-based data row.
pub fn convert_csv(text: &str) -> Result<Vec<RowOutcome>, ImportError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers: Vec<String> =
        reader.headers().map_err(|e| ImportError::Csv(e.to_string()))?.iter().map(clean_header).collect();
    let entra_portal = headers.iter().any(|h| h == "Date (UTC)") && headers.iter().any(|h| h == "Request ID");
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let number = i + 1;
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                out.push((
                    number,
                    Err(Rejected { record: number, field: "(row)".into(), reason: format!("malformed CSV row: {e}") }),
                ));
                continue;
            }
        };
        let mut raw = Map::new();
        for (header, cell) in headers.iter().zip(row.iter()) {
            raw.insert(header.clone(), Value::String(cell.to_string()));
        }
        let original = serde_json::to_vec(&Value::Object(raw.clone())).unwrap_or_default();
        let converted = if entra_portal {
            Ok(Converted {
                kind: signet_model::LogKind::SignIn,
                body: entra_portal_row(&raw),
                original: Some(original),
            })
        } else {
            convert_object(merge_dynamic_pairs(raw), &original)
        }
        .map_err(|(field, reason)| Rejected { record: number, field, reason });
        out.push((number, converted));
    }
    Ok(out)
}

/// `X_dynamic` / `X_string` -> `X` (the non-empty one, dynamic first); empty cells dropped.
fn merge_dynamic_pairs(raw: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in raw {
        let empty = value.as_str().is_some_and(|s| s.trim().is_empty());
        let (name, is_dynamic) = match (key.strip_suffix("_dynamic"), key.strip_suffix("_string")) {
            (Some(base), _) => (base.to_string(), true),
            (_, Some(base)) => (base.to_string(), false),
            _ => (key, false),
        };
        if empty {
            continue;
        }
        if is_dynamic || !out.contains_key(&name) {
            out.insert(name, value);
        }
    }
    out
}

fn entra_portal_row(raw: &Map<String, Value>) -> Vec<u8> {
    let get = |name: &str| raw.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let mut body = Map::new();
    let put = |target: &mut Map<String, Value>, key: &str, source: &str| {
        if let Some(v) = get(source) {
            target.insert(key.into(), Value::String(v.to_string()));
        }
    };
    for (key, source) in [
        ("id", "Request ID"),
        ("createdDateTime", "Date (UTC)"),
        ("correlationId", "Correlation ID"),
        ("userId", "User ID"),
        ("userDisplayName", "User"),
        ("userPrincipalName", "Username"),
        ("userType", "User type"),
        ("appDisplayName", "Application"),
        ("appId", "Application ID"),
        ("resourceDisplayName", "Resource"),
        ("resourceId", "Resource ID"),
        ("ipAddress", "IP address"),
        ("clientAppUsed", "Client app"),
        ("userAgent", "User agent"),
        ("authenticationRequirement", "Authentication requirement"),
        ("conditionalAccessStatus", "Conditional Access"),
        ("tokenIssuerType", "Token issuer type"),
    ] {
        put(&mut body, key, source);
    }
    let mut status = Map::new();
    if let Some(code) = get("Sign-in error code") {
        status.insert("errorCode".into(), code.parse::<i64>().map(Value::from).unwrap_or(Value::String(code.into())));
    }
    put(&mut status, "failureReason", "Failure reason");
    body.insert("status".into(), Value::Object(status));
    let mut device = Map::new();
    for (key, source) in [
        ("deviceId", "Device ID"),
        ("browser", "Browser"),
        ("operatingSystem", "Operating System"),
        ("isCompliant", "Compliant"),
        ("isManaged", "Managed"),
        ("trustType", "Join Type"),
    ] {
        put(&mut device, key, source);
    }
    body.insert("deviceDetail".into(), Value::Object(device));
    if let Some(location) = get("Location") {
        // "City, State, CC"
        let parts: Vec<&str> = location.split(',').map(str::trim).collect();
        let mut loc = Map::new();
        let names = ["city", "state", "countryOrRegion"];
        let offset = names.len().saturating_sub(parts.len());
        for (name, part) in names[offset..].iter().zip(parts) {
            if !part.is_empty() {
                loc.insert((*name).into(), Value::String(part.into()));
            }
        }
        body.insert("location".into(), Value::Object(loc));
    }
    let mut mfa = Map::new();
    put(&mut mfa, "authMethod", "Multifactor authentication auth method");
    put(&mut mfa, "authDetail", "Multifactor authentication auth detail");
    if !mfa.is_empty() {
        body.insert("mfaDetail".into(), Value::Object(mfa));
    }
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_analytics_csv_with_multiline_json_cells() {
        let csv = "TenantId,SourceSystem,CreatedDateTime [UTC],Id,UserPrincipalName,Status_dynamic,Status_string,LocationDetails_dynamic,AuthenticationDetails\n\
            t,Azure AD,\"4/28/2021, 2:08:45.221 PM\",r1,a@b.c,\"{\"\"errorCode\"\":50126}\",,\"{\"\"city\"\":\"\"Haifa\"\"}\",\"[\n  {\"\"authenticationMethod\"\": \"\"Password\"\", \"\"succeeded\"\": false}\n]\"\n";
        let rows = convert_csv(csv).unwrap();
        assert_eq!(rows.len(), 1);
        let converted = rows.into_iter().next().unwrap().1.unwrap();
        let event = crate::to_event(converted).unwrap();
        assert_eq!(event.id, "r1");
        let body: Value = serde_json::from_slice(&event.body).unwrap();
        assert_eq!(body["status"]["errorCode"], 50126);
        assert_eq!(body["location"]["city"], "Haifa");
        assert_eq!(body["authenticationDetails"][0]["authenticationMethod"], "Password");
        assert!(event.original.is_some());
    }

    #[test]
    fn entra_portal_download() {
        let csv = "Date (UTC),Request ID,User,Username,Application,IP address,Location,Status,Sign-in error code,Failure reason,Client app\n\
            2024-05-01T10:00:00Z,req-1,Alice,alice@contoso.com,Outlook,1.2.3.4,\"Paris, Ile-de-France, FR\",Failure,50126,Invalid password,IMAP4\n";
        let rows = convert_csv(csv).unwrap();
        let event = crate::to_event(rows.into_iter().next().unwrap().1.unwrap()).unwrap();
        let body: Value = serde_json::from_slice(&event.body).unwrap();
        assert_eq!(body["location"]["countryOrRegion"], "FR");
        assert_eq!(body["status"]["errorCode"], 50126);
        assert_eq!(body["clientAppUsed"], "IMAP4");
    }

    #[test]
    fn rows_without_time_are_rejected_with_a_reason() {
        let csv = "OperationName,SourceSystem,Id,ActivityDisplayName,Result\nUpdate app,Azure AD,Directory_1,Update app,success\n";
        let rows = convert_csv(csv).unwrap();
        let rejected = rows.into_iter().next().unwrap().1.unwrap_err();
        assert_eq!(rejected.field, "ActivityDateTime");
        assert!(rejected.reason.contains("no time column"));
    }
}
