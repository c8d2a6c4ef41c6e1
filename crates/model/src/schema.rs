//! The typed columns of each log kind.
//!
//! One table per kind drives everything that needs to know the columns: the DDL of each storage
//! engine, the Arrow batches, the fields of `$filter` and of the native query API, the CSV export
//! and the console's column chooser. Adding a column here adds it everywhere.

use crate::kind::LogKind;

/// Storage type of a column. Deliberately small, so that every dialect can map it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColType {
    Str,
    Int,
    Float,
    Bool,
    /// UTC timestamp with microsecond precision.
    Time,
    /// A list of strings (`riskEventTypes_v2`, `signInEventTypes`, ...).
    StrList,
}

/// One typed column.
#[derive(Debug, PartialEq, Eq)]
pub struct Column {
    /// Column name in SQL.
    pub name: &'static str,
    /// Name in the native API, CSV headers and the console (camelCase, as Graph spells it).
    pub api: &'static str,
    /// Path of the property in the Graph resource, when `$filter` may use it.
    pub graph_path: Option<&'static str>,
    pub ty: ColType,
}

const fn col(name: &'static str, api: &'static str, graph_path: Option<&'static str>, ty: ColType) -> Column {
    Column { name, api, graph_path, ty }
}

use ColType::*;

/// Not a stored column: true for rows a query read from the archive rather than the hot
/// tables. List queries may ask for it like any other column.
pub static ARCHIVED: Column = col("archived", "archived", None, Bool);

/// Not a column of the embedded store: in a store several nodes share (ClickHouse), the node
/// whose event log holds a row's record when it is another node's; null for this node's own log.
/// List queries may ask for it like any other column.
pub static LOG_NODE: Column = col("log_node", "logNode", None, Str);

/// Columns every table starts with, filled by the store rather than by the normaliser.
pub const COMMON_COLUMNS: usize = 8;

macro_rules! common_columns {
    ($time_api:literal) => {
        [
            col("org_id", "organizationId", None, Str),
            col("id", "id", Some("id"), Str),
            col("revision", "revision", None, Int),
            col("content_hash", "contentHash", None, Int),
            col("event_time", $time_api, Some($time_api), Time),
            col("received_at", "receivedDateTime", None, Time),
            col("log_pos", "logPosition", None, Int),
            col("log_idx", "logIndex", None, Int),
        ]
    };
}

const SIGNIN_COMMON: [Column; COMMON_COLUMNS] = common_columns!("createdDateTime");
const AUDIT_COMMON: [Column; COMMON_COLUMNS] = common_columns!("activityDateTime");
const ACTIVITY_COMMON: [Column; COMMON_COLUMNS] = common_columns!("creationTime");

/// Kind-specific sign-in columns, in the order the normaliser fills them.
pub const SIGNIN_COLUMNS: &[Column] = &[
    col("user_id", "userId", Some("userId"), Str),
    col("user_principal_name", "userPrincipalName", Some("userPrincipalName"), Str),
    col("user_display_name", "userDisplayName", Some("userDisplayName"), Str),
    col("user_type", "userType", Some("userType"), Str),
    col("user_key", "userKey", None, Str),
    // 64-bit hash of user_key: distinct-user counts over integers instead of strings.
    col("user_hash", "userHash", None, Int),
    col("app_id", "appId", Some("appId"), Str),
    col("app_display_name", "appDisplayName", Some("appDisplayName"), Str),
    col("resource_display_name", "resourceDisplayName", Some("resourceDisplayName"), Str),
    col("resource_id", "resourceId", Some("resourceId"), Str),
    col("client_app_used", "clientAppUsed", Some("clientAppUsed"), Str),
    col("is_legacy_client", "isLegacyClient", None, Bool),
    col("user_agent", "userAgent", Some("userAgent"), Str),
    col("ip_address", "ipAddress", Some("ipAddress"), Str),
    col("ip_key", "ipKey", None, Str),
    col("city", "city", Some("location/city"), Str),
    col("state", "state", Some("location/state"), Str),
    col("country", "countryOrRegion", Some("location/countryOrRegion"), Str),
    col("latitude", "latitude", None, Float),
    col("longitude", "longitude", None, Float),
    col("correlation_id", "correlationId", Some("correlationId"), Str),
    col("status", "status", None, Str),
    col("error_code", "errorCode", Some("status/errorCode"), Int),
    col("failure_reason", "failureReason", Some("status/failureReason"), Str),
    col("additional_details", "additionalDetails", Some("status/additionalDetails"), Str),
    col("device_id", "deviceId", Some("deviceDetail/deviceId"), Str),
    col("device_name", "deviceName", Some("deviceDetail/displayName"), Str),
    col("operating_system", "operatingSystem", Some("deviceDetail/operatingSystem"), Str),
    col("browser", "browser", Some("deviceDetail/browser"), Str),
    col("is_compliant", "isCompliant", Some("deviceDetail/isCompliant"), Bool),
    col("is_managed", "isManaged", Some("deviceDetail/isManaged"), Bool),
    col("trust_type", "trustType", Some("deviceDetail/trustType"), Str),
    col("conditional_access_status", "conditionalAccessStatus", Some("conditionalAccessStatus"), Str),
    col("is_interactive", "isInteractive", Some("isInteractive"), Bool),
    col("event_types", "signInEventTypes", Some("signInEventTypes"), StrList),
    col("authentication_requirement", "authenticationRequirement", Some("authenticationRequirement"), Str),
    col("risk_detail", "riskDetail", Some("riskDetail"), Str),
    col("risk_level_aggregated", "riskLevelAggregated", Some("riskLevelAggregated"), Str),
    col("risk_level_during_sign_in", "riskLevelDuringSignIn", Some("riskLevelDuringSignIn"), Str),
    col("risk_state", "riskState", Some("riskState"), Str),
    col("risk_event_types", "riskEventTypes", Some("riskEventTypes_v2"), StrList),
    col("risk_detected", "riskDetected", None, Bool),
    col("auth_methods", "authenticationMethods", None, StrList),
    col("auth_methods_succeeded", "authenticationMethodsSucceeded", None, StrList),
    col("mfa_satisfied_by_claim", "mfaSatisfiedByClaim", None, Bool),
    col("passwordless", "passwordless", None, Bool),
    col("service_principal_id", "servicePrincipalId", Some("servicePrincipalId"), Str),
    col("service_principal_name", "servicePrincipalName", Some("servicePrincipalName"), Str),
    col("token_issuer_type", "tokenIssuerType", Some("tokenIssuerType"), Str),
    col("processing_time_ms", "processingTimeInMilliseconds", Some("processingTimeInMilliseconds"), Int),
    // Last: added by schema version 3 (DuckDB appends added columns at the end).
    col("auth_method_set", "authMethodSet", None, Int),
];

/// Kind-specific directory-audit columns.
pub const AUDIT_COLUMNS: &[Column] = &[
    col("activity_display_name", "activityDisplayName", Some("activityDisplayName"), Str),
    col("category", "category", Some("category"), Str),
    col("correlation_id", "correlationId", Some("correlationId"), Str),
    col("logged_by_service", "loggedByService", Some("loggedByService"), Str),
    col("operation_type", "operationType", Some("operationType"), Str),
    col("result", "result", Some("result"), Str),
    col("result_reason", "resultReason", Some("resultReason"), Str),
    col("initiated_by_user_id", "initiatedByUserId", Some("initiatedBy/user/id"), Str),
    col("initiated_by_upn", "initiatedByUserPrincipalName", Some("initiatedBy/user/userPrincipalName"), Str),
    col("initiated_by_user_name", "initiatedByUserDisplayName", Some("initiatedBy/user/displayName"), Str),
    col("initiated_by_ip", "initiatedByIpAddress", Some("initiatedBy/user/ipAddress"), Str),
    col("initiated_by_app_id", "initiatedByAppId", Some("initiatedBy/app/appId"), Str),
    col("initiated_by_app_name", "initiatedByAppDisplayName", Some("initiatedBy/app/displayName"), Str),
    col("user_key", "userKey", None, Str),
    col("target_ids", "targetIds", Some("targetResources/id"), StrList),
    col("target_names", "targetDisplayNames", Some("targetResources/displayName"), StrList),
    col("target_types", "targetTypes", Some("targetResources/type"), StrList),
    col("target_upns", "targetUserPrincipalNames", Some("targetResources/userPrincipalName"), StrList),
];

/// Kind-specific activity columns (Office 365 / Dynamics 365 activity-logging schema).
pub const ACTIVITY_COLUMNS: &[Column] = &[
    col("operation", "operation", Some("Operation"), Str),
    col("record_type", "recordType", Some("RecordType"), Str),
    col("workload", "workload", Some("Workload"), Str),
    col("source_org_id", "sourceOrganizationId", Some("OrganizationId"), Str),
    col("source_user_key", "sourceUserKey", Some("UserKey"), Str),
    col("user_type", "userType", Some("UserType"), Str),
    col("user_upn", "user", Some("User"), Str),
    col("user_id", "userId", Some("UserId"), Str),
    col("user_key", "userKey", None, Str),
    col("client_ip", "clientIp", Some("ClientIP"), Str),
    col("correlation_id", "correlationId", Some("CorrelationId"), Str),
    col("result_status", "resultStatus", Some("ResultStatus"), Str),
    col("item_type", "itemType", Some("ItemType"), Str),
    col("item_url", "itemUrl", Some("ItemUrl"), Str),
    col("entity_id", "entityId", Some("EntityId"), Str),
    col("entity_name", "entityName", Some("EntityName"), Str),
    col("message", "message", Some("Message"), Str),
    col("query", "query", Some("Query"), Str),
    col("query_results", "queryResults", Some("QueryResults"), Str),
    col("user_agent", "userAgent", Some("UserAgent"), Str),
    col("service_name", "serviceName", Some("ServiceName"), Str),
    col("instance_url", "instanceUrl", Some("InstanceUrl"), Str),
    // Derived from Operation (`activity::operation_category`); last, because it was added to
    // existing tables by a migration (schema version 2).
    col("operation_category", "category", None, Str),
];

/// Columns the normalisers always store in lower case, so that case-insensitive comparisons
/// need not lower-case every row (`status`, the distinct-user key, the IP key).
pub fn stored_lowercase(column: &Column) -> bool {
    matches!(column.name, "status" | "user_key" | "ip_key")
}

/// The table name of a kind.
pub fn table(kind: LogKind) -> &'static str {
    match kind {
        LogKind::SignIn => "signins",
        LogKind::DirectoryAudit => "directory_audits",
        LogKind::Activity => "activities",
    }
}

/// The store-managed leading columns of a kind's table.
pub fn common_columns(kind: LogKind) -> &'static [Column] {
    match kind {
        LogKind::SignIn => &SIGNIN_COMMON,
        LogKind::DirectoryAudit => &AUDIT_COMMON,
        LogKind::Activity => &ACTIVITY_COMMON,
    }
}

/// The columns the normaliser of a kind fills, in order.
pub fn kind_columns(kind: LogKind) -> &'static [Column] {
    match kind {
        LogKind::SignIn => SIGNIN_COLUMNS,
        LogKind::DirectoryAudit => AUDIT_COLUMNS,
        LogKind::Activity => ACTIVITY_COLUMNS,
    }
}

/// Every column of a kind's table: common, then kind-specific.
pub fn all_columns(kind: LogKind) -> impl Iterator<Item = &'static Column> {
    common_columns(kind).iter().chain(kind_columns(kind).iter())
}

/// Finds a column by SQL name or API name.
pub fn find_column(kind: LogKind, name: &str) -> Option<&'static Column> {
    all_columns(kind).find(|c| c.name == name || c.api.eq_ignore_ascii_case(name))
}

/// Finds a column by its Graph property path (`status/errorCode`), case-insensitively as Graph does.
pub fn find_graph_column(kind: LogKind, path: &str) -> Option<&'static Column> {
    all_columns(kind).find(|c| c.graph_path.is_some_and(|p| p.eq_ignore_ascii_case(path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn column_names_are_unique_per_kind() {
        for kind in LogKind::ALL {
            let mut names = HashSet::new();
            let mut apis = HashSet::new();
            for c in all_columns(kind) {
                assert!(names.insert(c.name), "{kind}: duplicate column {}", c.name);
                assert!(apis.insert(c.api.to_ascii_lowercase()), "{kind}: duplicate api name {}", c.api);
            }
        }
    }

    #[test]
    fn graph_paths_resolve() {
        let c = find_graph_column(LogKind::SignIn, "Status/ErrorCode").expect("status/errorCode");
        assert_eq!(c.name, "error_code");
        assert_eq!(find_column(LogKind::SignIn, "appDisplayName").map(|c| c.name), Some("app_display_name"));
        assert!(find_graph_column(LogKind::SignIn, "nope").is_none());
    }
}
