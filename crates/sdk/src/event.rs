//! Typed events, in the wire shapes Signet's ingest API takes: activities in the Office 365 /
//! Dynamics 365 activity-logging schema (PascalCase), sign-ins and directory audits as
//! Microsoft Graph resources (camelCase). Every event gets its id when it is made, so a retry
//! sends the same id and Signet stores it once.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Which log an event goes to (and which ingest route takes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    SignIn,
    DirectoryAudit,
    Activity,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::SignIn, Kind::DirectoryAudit, Kind::Activity];

    /// The ingest route's path.
    pub fn path(self) -> &'static str {
        match self {
            Kind::SignIn => "/api/v1/signins",
            Kind::DirectoryAudit => "/api/v1/directory-audits",
            Kind::Activity => "/api/v1/activities",
        }
    }

    /// The name of the event's id field.
    pub fn id_field(self) -> &'static str {
        match self {
            Kind::Activity => "Id",
            Kind::SignIn | Kind::DirectoryAudit => "id",
        }
    }
}

/// A random (version 4) UUID, as Graph and Office 365 write ids.
pub fn new_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One event ready to send: its kind, id and JSON object.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    kind: Kind,
    id: String,
    body: Map<String, Value>,
}

impl Event {
    /// An event from a JSON object, for fields the typed builders do not cover. The object
    /// gets a fresh id unless it has one.
    pub fn from_json(kind: Kind, mut body: Map<String, Value>) -> Event {
        let id = match body.get(kind.id_field()).and_then(Value::as_str) {
            Some(id) if !id.trim().is_empty() => id.to_string(),
            _ => {
                let id = new_id();
                body.insert(kind.id_field().into(), Value::String(id.clone()));
                id
            }
        };
        Event { kind, id, body }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn json(&self) -> &Map<String, Value> {
        &self.body
    }

    /// Sets (or replaces) a field the typed builders do not have.
    pub fn with_field(mut self, name: &str, value: impl Into<Value>) -> Event {
        if name != self.kind.id_field() {
            self.body.insert(name.to_string(), value.into());
        }
        self
    }
}

fn object(value: impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        // The record types below are structs: they always serialise to objects.
        other => unreachable!("record serialised to {other:?}"),
    }
}

/// User access as Dynamics 365 records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessType {
    /// `UserAccessviaWeb`: a person in the web application (or Outlook).
    Web,
    /// `UserAccessviaWebServices`: SDK and web-service calls.
    WebServices,
}

impl AccessType {
    pub fn operation(self) -> &'static str {
        match self {
            AccessType::Web => "UserAccessviaWeb",
            AccessType::WebServices => "UserAccessviaWebServices",
        }
    }
}

/// An activity record: the activity-logging base schema plus the Dynamics 365 fields.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Activity {
    pub id: String,
    pub creation_time: String,
    pub operation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// The user's sign-in name (UPN / email).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(rename = "ClientIP", skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Multiple-record views: the filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Multiple-record views: the ids of the records returned, comma separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_results: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_url: Option<String>,
}

impl Activity {
    /// An activity happening now, with a fresh id.
    pub fn new(operation: impl Into<String>) -> Activity {
        Activity::at(operation, Utc::now())
    }

    pub fn at(operation: impl Into<String>, time: DateTime<Utc>) -> Activity {
        Activity {
            id: new_id(),
            creation_time: timestamp(time),
            operation: operation.into(),
            record_type: Some("CRM".into()),
            ..Activity::default()
        }
    }

    /// A user-access record of `user` (the server keeps one per user, type and interval).
    pub fn user_access(access: AccessType, user: impl Into<String>) -> Activity {
        Activity::new(access.operation()).user(user)
    }

    /// A session starting (`UserLoggedIn`), for the user log Finance and Operations keeps:
    /// `user_id` is the application's user id, the session id goes in `CorrelationId`, and the
    /// same session id on [`Activity::logged_out`] ends it.
    pub fn logged_in(user_id: impl Into<String>, session_id: impl Into<String>) -> Activity {
        Activity::new("UserLoggedIn").user_id(user_id).correlation_id(session_id)
    }

    /// The session ending (`UserLoggedOut`).
    pub fn logged_out(user_id: impl Into<String>, session_id: impl Into<String>) -> Activity {
        Activity::new("UserLoggedOut").user_id(user_id).correlation_id(session_id)
    }

    pub fn user(mut self, user: impl Into<String>) -> Activity {
        self.user = Some(user.into());
        self
    }

    pub fn user_id(mut self, user_id: impl Into<String>) -> Activity {
        self.user_id = Some(user_id.into());
        self
    }

    pub fn entity(mut self, name: impl Into<String>, id: Option<String>) -> Activity {
        self.entity_name = Some(name.into());
        self.entity_id = id;
        self
    }

    pub fn item_url(mut self, url: impl Into<String>) -> Activity {
        self.item_url = Some(url.into());
        self
    }

    /// What a multiple-record view showed: its filter and the ids of the records returned.
    pub fn query(mut self, query: impl Into<String>, results: &[String]) -> Activity {
        self.query = Some(query.into());
        self.query_results = Some(results.join(","));
        self
    }

    pub fn client_ip(mut self, ip: impl Into<String>) -> Activity {
        self.client_ip = Some(ip.into());
        self
    }

    pub fn correlation_id(mut self, id: impl Into<String>) -> Activity {
        self.correlation_id = Some(id.into());
        self
    }

    pub fn result_status(mut self, status: impl Into<String>) -> Activity {
        self.result_status = Some(status.into());
        self
    }

    pub fn user_agent(mut self, agent: impl Into<String>) -> Activity {
        self.user_agent = Some(agent.into());
        self
    }

    pub fn service(mut self, name: impl Into<String>, instance_url: Option<String>) -> Activity {
        self.service_name = Some(name.into());
        self.instance_url = instance_url;
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> Activity {
        self.message = Some(message.into());
        self
    }
}

impl From<Activity> for Event {
    fn from(activity: Activity) -> Event {
        Event { kind: Kind::Activity, id: activity.id.clone(), body: object(activity) }
    }
}

/// `status` of a Graph sign-in.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInStatus {
    pub error_code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// A sign-in, as the Microsoft Graph `signIn` resource.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignIn {
    pub id: String,
    pub created_date_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_app_used: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_interactive: Option<bool>,
    pub status: SignInStatus,
}

impl SignIn {
    /// A successful sign-in of `user` to application `app` now.
    pub fn success(user: impl Into<String>, app: impl Into<String>) -> SignIn {
        SignIn {
            id: new_id(),
            created_date_time: timestamp(Utc::now()),
            user_principal_name: Some(user.into()),
            app_display_name: Some(app.into()),
            ..SignIn::default()
        }
    }

    /// A failed sign-in with an Entra error code (`50126`: wrong password, ...).
    pub fn failure(user: impl Into<String>, app: impl Into<String>, code: i64, reason: impl Into<String>) -> SignIn {
        let mut sign_in = SignIn::success(user, app);
        sign_in.status = SignInStatus { error_code: code, failure_reason: Some(reason.into()) };
        sign_in
    }

    pub fn at(mut self, time: DateTime<Utc>) -> SignIn {
        self.created_date_time = timestamp(time);
        self
    }

    pub fn ip_address(mut self, ip: impl Into<String>) -> SignIn {
        self.ip_address = Some(ip.into());
        self
    }

    pub fn app_id(mut self, id: impl Into<String>) -> SignIn {
        self.app_id = Some(id.into());
        self
    }
}

impl From<SignIn> for Event {
    fn from(sign_in: SignIn) -> Event {
        Event { kind: Kind::SignIn, id: sign_in.id.clone(), body: object(sign_in) }
    }
}

/// A directory / administration audit, as the Microsoft Graph `directoryAudit` resource.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryAudit {
    pub id: String,
    pub activity_date_time: String,
    pub activity_display_name: String,
    pub category: String,
    /// `success` or `failure`.
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged_by_service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiated_by: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_resources: Vec<Value>,
}

impl DirectoryAudit {
    /// `activity` (e.g. `Add member to role`) in `category` (e.g. `RoleManagement`) by a user.
    pub fn by_user(activity: impl Into<String>, category: impl Into<String>, user: &str) -> DirectoryAudit {
        DirectoryAudit {
            id: new_id(),
            activity_date_time: timestamp(Utc::now()),
            activity_display_name: activity.into(),
            category: category.into(),
            result: "success".into(),
            initiated_by: Some(serde_json::json!({ "user": { "userPrincipalName": user } })),
            ..DirectoryAudit::default()
        }
    }

    /// Adds a target (`{"type": "User", "userPrincipalName": ...}` and the like).
    pub fn target(mut self, target: Value) -> DirectoryAudit {
        self.target_resources.push(target);
        self
    }

    pub fn failed(mut self, reason: impl Into<String>) -> DirectoryAudit {
        self.result = "failure".into();
        self.result_reason = Some(reason.into());
        self
    }
}

impl From<DirectoryAudit> for Event {
    fn from(audit: DirectoryAudit) -> Event {
        Event { kind: Kind::DirectoryAudit, id: audit.id.clone(), body: object(audit) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_4_uuids_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn an_activity_is_the_dynamics_wire_shape() {
        let event: Event = Activity::new("RetrieveMultiple")
            .user("alex@contoso.com")
            .entity("account", None)
            .query("name like 'C%'", &["a1".into(), "a2".into()])
            .client_ip("10.0.0.1")
            .into();
        let json = event.json();
        assert_eq!(json["Operation"], "RetrieveMultiple");
        assert_eq!(json["User"], "alex@contoso.com");
        assert_eq!(json["EntityName"], "account");
        assert_eq!(json["QueryResults"], "a1,a2");
        assert_eq!(json["ClientIP"], "10.0.0.1");
        assert_eq!(json["Id"], event.id());
        assert!(!json.contains_key("EntityId"), "unset fields are left out");
        assert!(json["CreationTime"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn a_json_event_keeps_its_id_or_gets_one() {
        let mut body = Map::new();
        body.insert("id".into(), "given".into());
        assert_eq!(Event::from_json(Kind::SignIn, body).id(), "given");
        let event = Event::from_json(Kind::Activity, Map::new());
        assert_eq!(event.json()["Id"], event.id());
        let renamed = event.clone().with_field("Id", "other");
        assert_eq!(renamed.id(), event.id(), "the id is not changed through with_field");
    }
}
