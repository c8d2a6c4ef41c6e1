//! Activities: the Office 365 / Dynamics 365 activity-logging base schema (Id, CreationTime,
//! Operation, OrganizationId, UserKey, UserType, User, ClientIP, CorrelationId, ResultStatus)
//! plus the application fields (UserId, ItemType, ItemUrl, EntityId, EntityName, Message,
//! Fields, Query, QueryResults, UserAgent, ServiceName, InstanceUrl, ...).

use serde::Deserialize;

use crate::event::{Cell, Event, RecordError};
use crate::json::opt_string;
use crate::kind::LogKind;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ActivityRecord {
    #[serde(deserialize_with = "opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub creation_time: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub operation: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub record_type: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub workload: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub organization_id: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub user_key: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub user_type: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub user: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub user_id: Option<String>,
    #[serde(rename = "ClientIP", alias = "ClientIp", deserialize_with = "opt_string")]
    pub client_ip: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub correlation_id: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub result_status: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub item_type: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub item_url: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub entity_id: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub entity_name: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub message: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub query: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub query_results: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub user_agent: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub service_name: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub instance_url: Option<String>,
}

/// Office 365 writes `UserType` as a number; the activity schema names them.
fn user_type_name(raw: Option<String>) -> Option<String> {
    let raw = raw?;
    let named = match raw.as_str() {
        "0" => "Regular",
        "1" => "Reserved",
        "2" => "Admin",
        "3" => "DcAdmin",
        "4" => "System",
        "5" => "Application",
        "6" => "ServicePrincipal",
        "7" => "CustomPolicy",
        "8" => "SystemPolicy",
        _ => return Some(raw),
    };
    Some(named.to_string())
}

/// Operation name prefixes and the category they fall in, first match wins (so the longer
/// `RetrieveMultiple` comes before `Retrieve`, `ExportToExcel` before `Export`). The Dynamics 365
/// activity-logging rules: views of many records are `ReadMultiple`, single reads `Read`, and
/// changes are their own verb.
/// `RecordType` of the records Signet writes about itself (its access log): refused from
/// applications, kept apart by retention.
pub const SIGNET_ACCESS_RECORD_TYPE: &str = "SignetAccess";

pub const OPERATION_CATEGORIES: &[(&str, &str)] = &[
    ("RetrieveMultiple", "ReadMultiple"),
    ("ExportToExcel", "ReadMultiple"),
    ("RollUp", "ReadMultiple"),
    ("RetrieveEntitiesForAggregateQuery", "ReadMultiple"),
    ("RetrieveRecordWall", "ReadMultiple"),
    ("RetrievePersonalWall", "ReadMultiple"),
    ("ExecuteFetch", "ReadMultiple"),
    ("Retrieve", "Read"),
    ("Search", "Read"),
    ("Get", "Read"),
    ("Export", "Read"),
    ("Create", "Create"),
    ("Update", "Update"),
    ("Upsert", "Upsert"),
    ("Delete", "Delete"),
    ("Assign", "Assign"),
    ("Share", "Share"),
    ("Unshare", "Unshare"),
    ("ModifyAccess", "Share"),
    ("GrantAccess", "Share"),
    ("RevokeAccess", "Unshare"),
    ("Associate", "Associate"),
    ("Disassociate", "Disassociate"),
    ("Merge", "Merge"),
    ("SetState", "SetState"),
    ("Import", "Import"),
    ("BulkDelete", "Delete"),
    ("Publish", "Publish"),
    ("Execute", "Execute"),
    ("Send", "Send"),
    ("Qualify", "Qualify"),
    ("Win", "Win"),
    ("Lose", "Lose"),
    ("Close", "Close"),
    ("Cancel", "Cancel"),
];

/// The category of an operation name: the first [`OPERATION_CATEGORIES`] prefix that ends at a
/// word boundary (the end, or an upper-case letter or digit: `RetrieveMultiple` is a
/// `Retrieve...`, `Getaway` is not a `Get`). Anything else is `Other` (Office 365's
/// `MailItemsAccessed`, `SharePointFileOperation`, ...).
pub fn operation_category(operation: &str) -> &'static str {
    let word_ends = |rest: &str| rest.chars().next().is_none_or(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    OPERATION_CATEGORIES
        .iter()
        .find(|(prefix, _)| {
            operation.strip_prefix(prefix).is_some_and(|rest| word_ends(rest) && !operation.starts_with("SharePoint"))
        })
        .map_or("Other", |(_, category)| category)
}

/// Operations Dynamics 365 does not log (its activity-logging exclusion list): look-ups a client
/// makes on its own, not a user's access to data. The default of `activity_exclusions`.
pub const DEFAULT_EXCLUDED_OPERATIONS: &[&str] = &[
    "WhoAmI",
    "RetrieveFilteredForms",
    "TriggerServiceEndpointCheck",
    "QueryExpressionToFetchXml",
    "FetchXmlToQueryExpression",
    "FireNotificationEvent",
    "RetrieveMetadataChanges",
    "RetrieveEntityChanges",
    "RetrieveProvisionedLanguagePackVersion",
    "RetrieveInstalledLanguagePackVersion",
    "RetrieveProvisionedLanguages",
    "RetrieveAvailableLanguages",
    "RetrieveDeprovisionedLanguages",
    "RetrieveInstalledLanguagePacks",
    "GetAllTimeZonesWithDisplayName",
    "GetTimeZoneCodeByLocalizedName",
    "IsReportingDataConnectorInstalled",
    "LocalTimeFromUtcTime",
    "UtcTimeFromLocalTime",
    "IsBackOfficeInstalled",
    "FormatAddress",
    "IsSupportUserRole",
    "IsComponentCustomizable",
    "ConfigureReportingDataConnector",
    "CheckClientCompatibility",
    "RetrieveAttribute",
];

/// Parses and normalises one activity record.
pub fn normalize(body: &bytes::Bytes) -> Result<Event, RecordError> {
    let r: ActivityRecord = crate::event::parse_record(body)?;
    let id = crate::event::required_id(r.id, "Id")?;
    let time_us = crate::event::required_time(r.creation_time.as_deref(), "CreationTime")?;
    let operation = r.operation.ok_or_else(|| RecordError::new("Operation", "required"))?;

    let user_access =
        ["UserAccessviaWeb", "UserAccessviaWebServices"].iter().any(|a| a.eq_ignore_ascii_case(&operation));
    if user_access
        && [&r.user, &r.user_id, &r.user_key].iter().all(|v| v.as_deref().is_none_or(|v| v.trim().is_empty()))
    {
        return Err(RecordError::new("User", "a user access record needs the user (User, UserId or UserKey)"));
    }
    // Office 365 puts the UPN in UserId; the Dynamics schema puts it in User.
    let upn = r.user.clone().or_else(|| r.user_id.clone().filter(|u| u.contains('@')));
    let key = crate::signin::user_key(None, upn.as_deref()).or_else(|| r.user_id.as_ref().map(|u| u.to_lowercase()));
    let category = operation_category(&operation);
    let cells = vec![
        Cell::Str(operation),
        Cell::opt_str(r.record_type),
        Cell::opt_str(r.workload),
        Cell::opt_str(r.organization_id),
        Cell::opt_str(r.user_key),
        Cell::opt_str(user_type_name(r.user_type)),
        Cell::opt_str(upn),
        Cell::opt_str(r.user_id),
        Cell::opt_str(key),
        Cell::opt_str(r.client_ip),
        Cell::opt_str(r.correlation_id),
        Cell::opt_str(r.result_status),
        Cell::opt_str(r.item_type),
        Cell::opt_str(r.item_url),
        Cell::opt_str(r.entity_id),
        Cell::opt_str(r.entity_name),
        Cell::opt_str(r.message),
        Cell::opt_str(r.query),
        Cell::opt_str(r.query_results),
        Cell::opt_str(r.user_agent),
        Cell::opt_str(r.service_name),
        Cell::opt_str(r.instance_url),
        Cell::Str(category.to_string()),
    ];
    Ok(Event::from_parts(LogKind::Activity, id, time_us, cells, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kind's normaliser over plain bytes.
    fn normalize(body: &[u8]) -> Result<Event, RecordError> {
        super::normalize(&bytes::Bytes::copy_from_slice(body))
    }

    #[test]
    fn o365_record_normalises() {
        let body = br#"{"Id":"a1","CreationTime":"2021-08-02T13:32:07","Operation":"MailItemsAccessed","UserType":2,
            "UserId":"Pgustavo@simulandlabs.com","ClientIP":"1.2.3.4","ResultStatus":"Succeeded","RecordType":"50"}"#;
        let event = normalize(body).unwrap();
        assert_eq!(event.cells.get(0).unwrap().to_cell(), Cell::Str("MailItemsAccessed".into()));
        assert_eq!(event.cells.get(5).unwrap().to_cell(), Cell::Str("Admin".into()));
        assert_eq!(event.cells.get(6).unwrap().to_cell(), Cell::Str("Pgustavo@simulandlabs.com".into()));
        assert_eq!(event.cells.get(8).unwrap().to_cell(), Cell::Str("pgustavo@simulandlabs.com".into()));
    }

    #[test]
    fn operations_fall_in_their_dynamics_category() {
        for (operation, category) in [
            ("RetrieveMultiple", "ReadMultiple"),
            ("ExportToExcel", "ReadMultiple"),
            ("RollUp", "ReadMultiple"),
            ("RetrieveEntitiesForAggregateQuery", "ReadMultiple"),
            ("RetrieveRecordWall", "ReadMultiple"),
            ("RetrievePersonalWall", "ReadMultiple"),
            ("ExecuteFetch", "ReadMultiple"),
            ("Retrieve", "Read"),
            ("RetrieveUserSettings", "Read"),
            ("Search", "Read"),
            ("GetQuantityDecimal", "Read"),
            ("Export", "Read"),
            ("Create", "Create"),
            ("CreateMultiple", "Create"),
            ("Update", "Update"),
            ("Delete", "Delete"),
            ("Assign", "Assign"),
            ("Share", "Share"),
            ("ModifyAccess", "Share"),
            ("Getaway", "Other"),
            ("SharePointFileOperation", "Other"),
            ("MailItemsAccessed", "Other"),
            ("", "Other"),
        ] {
            assert_eq!(operation_category(operation), category, "{operation}");
        }
        let event =
            normalize(br#"{"Id":"a1","CreationTime":"2021-08-02T13:32:07Z","Operation":"RetrieveMultiple"}"#).unwrap();
        assert_eq!(event.cell("operation_category").and_then(|c| c.as_str()), Some("ReadMultiple"));
    }

    #[test]
    fn operation_is_required() {
        let err = normalize(br#"{"Id":"a1","CreationTime":"2021-08-02T13:32:07Z"}"#).unwrap_err();
        assert_eq!(err.field, "Operation");
    }
}
