//! Directory audits: the Microsoft Graph `directoryAudit` resource.

use serde::Deserialize;

use crate::event::{Cell, Event, RecordError};
use crate::json::{nested, opt_string};
use crate::kind::LogKind;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphDirectoryAudit {
    #[serde(deserialize_with = "opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub activity_date_time: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub activity_display_name: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub category: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub correlation_id: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub logged_by_service: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub operation_type: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub result: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub result_reason: Option<String>,
    #[serde(deserialize_with = "nested")]
    pub initiated_by: Option<InitiatedBy>,
    #[serde(deserialize_with = "nested")]
    pub target_resources: Option<Vec<TargetResource>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InitiatedBy {
    pub user: Option<InitiatingUser>,
    pub app: Option<InitiatingApp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InitiatingUser {
    #[serde(deserialize_with = "opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub display_name: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub user_principal_name: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub ip_address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InitiatingApp {
    #[serde(deserialize_with = "opt_string")]
    pub app_id: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub display_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TargetResource {
    #[serde(deserialize_with = "opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub display_name: Option<String>,
    #[serde(rename = "type", deserialize_with = "opt_string")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub user_principal_name: Option<String>,
}

/// Parses and normalises one Graph-shaped directory audit record.
pub fn normalize(body: &bytes::Bytes) -> Result<Event, RecordError> {
    let r: GraphDirectoryAudit = crate::event::parse_record(body)?;
    let id = crate::event::required_id(r.id, "id")?;
    let time_us = crate::event::required_time(r.activity_date_time.as_deref(), "activityDateTime")?;

    let initiated = r.initiated_by.unwrap_or_default();
    let user = initiated.user.unwrap_or_default();
    let app = initiated.app.unwrap_or_default();
    let targets = r.target_resources.unwrap_or_default();
    let collect = |f: fn(&TargetResource) -> Option<&String>| -> Vec<String> {
        targets.iter().filter_map(f).filter(|s| !s.is_empty()).cloned().collect()
    };
    let user_key = crate::signin::user_key(user.id.as_deref(), user.user_principal_name.as_deref());
    let cells = vec![
        Cell::opt_str(r.activity_display_name.map(|s| s.trim().to_string())),
        Cell::opt_str(r.category),
        Cell::opt_str(r.correlation_id),
        Cell::opt_str(r.logged_by_service),
        Cell::opt_str(r.operation_type),
        Cell::opt_str(r.result),
        Cell::opt_str(r.result_reason),
        Cell::opt_str(user.id),
        Cell::opt_str(user.user_principal_name),
        Cell::opt_str(user.display_name),
        Cell::opt_str(user.ip_address),
        Cell::opt_str(app.app_id),
        Cell::opt_str(app.display_name),
        Cell::opt_str(user_key),
        Cell::List(collect(|t| t.id.as_ref())),
        Cell::List(collect(|t| t.display_name.as_ref())),
        Cell::List(collect(|t| t.kind.as_ref())),
        Cell::List(collect(|t| t.user_principal_name.as_ref())),
    ];
    Ok(Event::from_parts(LogKind::DirectoryAudit, id, time_us, cells, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kind's normaliser over plain bytes.
    fn normalize(body: &[u8]) -> Result<Event, RecordError> {
        super::normalize(&bytes::Bytes::copy_from_slice(body))
    }

    #[test]
    fn graph_directory_audit_normalises() {
        let body = br#"{"id":"Directory_1","activityDateTime":"2018-01-09T21:20:02.7215374Z","activityDisplayName":"Add member to group",
          "category":"GroupManagement","result":"success","initiatedBy":{"user":{"id":"u1","userPrincipalName":"admin@contoso.com"}},
          "targetResources":[{"id":"g1","displayName":"Sales","type":"Group"},{"id":"u2","type":"User","userPrincipalName":"bob@contoso.com"}]}"#;
        let event = normalize(body).unwrap();
        assert_eq!(event.id, "Directory_1");
        assert_eq!(event.cells.get(0).unwrap().to_cell(), Cell::Str("Add member to group".into()));
        assert_eq!(event.cells.get(8).unwrap().to_cell(), Cell::Str("admin@contoso.com".into()));
        assert_eq!(event.cells.get(14).unwrap().to_cell(), Cell::List(vec!["g1".into(), "u2".into()]));
        assert_eq!(event.cells.get(17).unwrap().to_cell(), Cell::List(vec!["bob@contoso.com".into()]));
    }

    #[test]
    fn missing_time_is_rejected() {
        let err = normalize(br#"{"id":"x"}"#).unwrap_err();
        assert_eq!(err.field, "activityDateTime");
    }
}
