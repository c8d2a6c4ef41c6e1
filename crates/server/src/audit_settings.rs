//! Organisation audit settings, as Dynamics 365 names them: auditing on / off
//! (`IsAuditEnabled`), user access auditing (`IsUserAccessAuditEnabled`, effective only while
//! auditing is on) and its interval (`UserAccessAuditingInterval`, hours), read auditing, and per
//! entity: auditing, single-record auditing (a record opened) and multiple-record auditing (the
//! records a page displayed).
//!
//! They decide which activities applications send are recorded: an activity the settings turn
//! off is not stored, and the ingest answer counts it with the reason (`excludedReasons`).
//! Sign-ins and directory audits are the identity provider's records and are always kept.
//! Only administrators change them (`ManageSecuritySettings`); every change is recorded with
//! what changed, and turning user access auditing on or off writes `UserAccessAuditStarted` /
//! `UserAccessAuditStopped`. Kept in `DATA/settings/audit.json`, replaced atomically.

use std::collections::BTreeMap;
use std::path::Path;

use axum::extract::{Request, State};
use axum::http::Uri;
use axum::response::Response;
use axum::Json;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use signet_auth::document::{Document, FileDocument};
use signet_model::Event;

use crate::access_log::{self, AuditNote};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// The user-access actions of the activity log.
pub const USER_ACCESS_VIA_WEB: &str = "UserAccessviaWeb";
pub const USER_ACCESS_VIA_WEB_SERVICES: &str = "UserAccessviaWebServices";
pub const USER_ACCESS_AUDIT_STARTED: &str = "UserAccessAuditStarted";
pub const USER_ACCESS_AUDIT_STOPPED: &str = "UserAccessAuditStopped";

const MAX_ENTITIES: usize = 2000;
const MAX_INTERVAL_HOURS: u32 = 24 * 7;

fn yes() -> bool {
    true
}

fn four() -> u32 {
    4
}

/// One organisation's settings. Missing fields take the defaults (everything on, interval 4 h).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditSettings {
    #[serde(default = "yes")]
    pub is_audit_enabled: bool,
    #[serde(default = "yes")]
    pub is_user_access_audit_enabled: bool,
    /// Hours: at most one user-access record per user, per access type, per interval.
    #[serde(default = "four")]
    pub user_access_auditing_interval: u32,
    #[serde(default = "yes")]
    pub is_read_audit_enabled: bool,
    /// Per entity (`account`, `contact`, `lead`, any name an application reports; compared
    /// without regard to case). Entities not listed follow the organisation's switches.
    #[serde(default)]
    pub entities: BTreeMap<String, EntityAudit>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntityAudit {
    #[serde(default = "yes")]
    pub is_audit_enabled: bool,
    /// Record a record being opened (a `Read`).
    #[serde(default = "yes")]
    pub single_record_audit: bool,
    /// Record the records a page displays (a `ReadMultiple`).
    #[serde(default = "yes")]
    pub multiple_record_audit: bool,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            is_audit_enabled: true,
            is_user_access_audit_enabled: true,
            user_access_auditing_interval: 4,
            is_read_audit_enabled: true,
            entities: BTreeMap::new(),
        }
    }
}

impl AuditSettings {
    /// Checks the values and folds entity names to lower case.
    pub fn checked(mut self) -> Result<AuditSettings, String> {
        if !(1..=MAX_INTERVAL_HOURS).contains(&self.user_access_auditing_interval) {
            return Err(format!("userAccessAuditingInterval must be 1 to {MAX_INTERVAL_HOURS} hours"));
        }
        if self.entities.len() > MAX_ENTITIES {
            return Err(format!("at most {MAX_ENTITIES} entities"));
        }
        let mut folded = BTreeMap::new();
        for (name, entity) in std::mem::take(&mut self.entities) {
            let key = name.trim().to_lowercase();
            if key.is_empty() || key.len() > 128 || key.chars().any(char::is_control) {
                return Err(format!("entity name {name:?} must be 1 to 128 printable characters"));
            }
            if folded.insert(key, entity).is_some() {
                return Err(format!("entity {name:?} is listed twice (names are compared without regard to case)"));
            }
        }
        self.entities = folded;
        Ok(self)
    }

    /// Whether user access is recorded: both switches on.
    pub fn user_access_on(&self) -> bool {
        self.is_audit_enabled && self.is_user_access_audit_enabled
    }

    /// Why an activity an application sent is not recorded under these settings, if so.
    pub fn skip_reason(&self, event: &Event) -> Option<String> {
        let text = |name: &str| event.cell(name).and_then(|c| c.as_str()).unwrap_or("");
        let operation = text("operation");
        if !self.is_audit_enabled {
            return Some("auditing is off for the organisation".into());
        }
        let user_access =
            [USER_ACCESS_VIA_WEB, USER_ACCESS_VIA_WEB_SERVICES].iter().any(|a| a.eq_ignore_ascii_case(operation));
        if user_access {
            return (!self.is_user_access_audit_enabled).then(|| "user access auditing is off".into());
        }
        let category = text("operation_category");
        let read = category == "Read";
        let read_multiple = category == "ReadMultiple";
        if (read || read_multiple) && !self.is_read_audit_enabled {
            return Some("read auditing is off".into());
        }
        let entity_name = text("entity_name").trim().to_lowercase();
        let entity = self.entities.get(&entity_name)?;
        if !entity.is_audit_enabled {
            return Some(format!("auditing is off for entity {entity_name}"));
        }
        if read && !entity.single_record_audit {
            return Some(format!("single record auditing is off for entity {entity_name}"));
        }
        if read_multiple && !entity.multiple_record_audit {
            return Some(format!("multiple record auditing is off for entity {entity_name}"));
        }
        None
    }

    /// What changed from `self` to `next`, in Dynamics' names, for the audit record.
    pub fn changes(&self, next: &AuditSettings) -> Vec<String> {
        let mut out = Vec::new();
        let mut flag = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name}: {a} -> {b}"));
            }
        };
        flag("IsAuditEnabled", self.is_audit_enabled.to_string(), next.is_audit_enabled.to_string());
        flag(
            "IsUserAccessAuditEnabled",
            self.is_user_access_audit_enabled.to_string(),
            next.is_user_access_audit_enabled.to_string(),
        );
        flag(
            "UserAccessAuditingInterval",
            self.user_access_auditing_interval.to_string(),
            next.user_access_auditing_interval.to_string(),
        );
        flag("IsReadAuditEnabled", self.is_read_audit_enabled.to_string(), next.is_read_audit_enabled.to_string());
        let names: std::collections::BTreeSet<&String> = self.entities.keys().chain(next.entities.keys()).collect();
        for name in names {
            let show = |e: Option<&EntityAudit>| match e {
                None => "default".to_string(),
                Some(e) => format!(
                    "audit {}, single {}, multiple {}",
                    on_off(e.is_audit_enabled),
                    on_off(e.single_record_audit),
                    on_off(e.multiple_record_audit)
                ),
            };
            flag(&format!("Entity {name}"), show(self.entities.get(name)), show(next.entities.get(name)));
        }
        out
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// Reads a settings file written by [`replace_file`]: its value, the default when there is no
/// file yet, an error when it does not parse (never a silent fall-back to defaults).
pub(crate) fn read_json_file<T: serde::de::DeserializeOwned + Default>(path: &Path) -> std::io::Result<T> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(err) => Err(err),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file, fsync, rename, fsync of the directory.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(path);
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// One JSON document of per-organisation settings (`DATA/settings/<name>`, or shared by the
/// nodes, see `crate::shared`); organisations never configured have the defaults. Replaced whole
/// on every change.
pub struct OrgSettingsFile<T> {
    document: Box<dyn Document>,
    /// The settings and the document version they were read from.
    settings: Mutex<(u64, BTreeMap<String, T>)>,
}

impl<T: Clone + Default + Serialize + serde::de::DeserializeOwned> OrgSettingsFile<T> {
    /// Opens settings kept in `document`. A document that does not parse is an error: silently
    /// falling back to defaults would change what is recorded or kept behind an administrator.
    pub fn open_document(document: Box<dyn Document>) -> std::io::Result<OrgSettingsFile<T>> {
        let settings = Self::read(&*document)?;
        Ok(OrgSettingsFile { document, settings: Mutex::new(settings) })
    }

    fn read(document: &dyn Document) -> std::io::Result<(u64, BTreeMap<String, T>)> {
        match document.load()? {
            Some((version, bytes)) => serde_json::from_slice(&bytes).map(|all| (version, all)).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", document.describe()))
            }),
            None => Ok((0, BTreeMap::new())),
        }
    }

    pub fn get(&self, org: &str) -> T {
        self.settings.lock().1.get(org).cloned().unwrap_or_default()
    }

    /// Every organisation that has settings.
    pub fn all(&self) -> BTreeMap<String, T> {
        self.settings.lock().1.clone()
    }

    /// Replaces an organisation's settings; returns the previous ones. When another node
    /// changed the document meanwhile, the change is made again on top of its version.
    pub fn replace(&self, org: &str, next: T) -> std::io::Result<T> {
        let mut current = self.settings.lock();
        for _ in 0..signet_auth::document::CHANGE_ATTEMPTS {
            let (version, all) = &*current;
            let previous = all.get(org).cloned().unwrap_or_default();
            let mut copy = all.clone();
            copy.insert(org.to_string(), next.clone());
            let bytes = serde_json::to_vec_pretty(&copy).map_err(std::io::Error::other)?;
            if self.document.store(version + 1, &bytes)? {
                *current = (version + 1, copy);
                return Ok(previous);
            }
            *current = Self::read(&*self.document)?;
        }
        Err(std::io::Error::other(format!("{} kept changing while this change was saved", self.document.describe())))
    }

    /// Reads the document again when another node changed it; returns whether it had.
    pub fn refresh(&self) -> std::io::Result<bool> {
        let version = self.document.version()?;
        let mut current = self.settings.lock();
        if version.is_none_or(|v| v == current.0) {
            return Ok(false);
        }
        *current = Self::read(&*self.document)?;
        Ok(true)
    }
}

/// Every organisation's audit settings (`DATA/settings/audit.json`).
pub type AuditSettingsStore = OrgSettingsFile<AuditSettings>;

/// The audit settings' document (`DATA/settings/audit.json`, or shared by the nodes).
pub const AUDIT_DOCUMENT: &str = "settings/audit.json";

impl AuditSettingsStore {
    pub fn open_audit(data_dir: &Path) -> std::io::Result<AuditSettingsStore> {
        OrgSettingsFile::open_document(Box::new(FileDocument::in_data_dir(data_dir, AUDIT_DOCUMENT)))
    }
}

/// `GET /api/v1/settings/audit`.
pub async fn get(State(state): State<AppState>, caller: Caller) -> Json<AuditSettings> {
    Json(state.audit_settings.get(caller.org()))
}

/// `PUT /api/v1/settings/audit` with the whole settings object.
pub async fn put(State(state): State<AppState>, caller: Caller, request: Request) -> ApiResult<Response> {
    let uri: Uri = request.uri().clone();
    let body: AuditSettings = crate::accounts::read_json(request, 256 * 1024).await?;
    let next = body.checked().map_err(ApiError::BadRequest)?;
    let store = state.audit_settings.clone();
    let org = caller.org().to_string();
    let saved = next.clone();
    let previous = tokio::task::spawn_blocking(move || store.replace(&org, saved))
        .await?
        .map_err(|e| ApiError::Internal(format!("could not save the audit settings: {e}")))?;
    let changes = previous.changes(&next);
    if previous.user_access_on() != next.user_access_on() {
        let (operation, message) = match next.user_access_on() {
            true => (USER_ACCESS_AUDIT_STARTED, "user access auditing started"),
            false => (USER_ACCESS_AUDIT_STOPPED, "user access auditing stopped"),
        };
        let record = access_log::access_event(&caller, operation, "Succeeded", &uri, &AuditNote::default(), message);
        access_log::store(&state, caller.org(), &record).await?;
    }
    let note = AuditNote {
        detail: Some(if changes.is_empty() { "no change".into() } else { changes.join("; ") }),
        ..AuditNote::default()
    };
    Ok(note.attach(Json(next)))
}

/// The records of a change made with the CLI on a stopped server's data directory, as the
/// server writes them for a change through the API: `UserAccessAuditStarted` / `Stopped` when
/// user access auditing flips, then `AuditSettingsChanged` with what changed.
pub fn local_change_records(
    org: &str,
    operator: &str,
    previous: &AuditSettings,
    next: &AuditSettings,
) -> Vec<serde_json::Value> {
    let path = "/api/v1/settings/audit";
    let mut out = Vec::new();
    if previous.user_access_on() != next.user_access_on() {
        let (operation, message) = match next.user_access_on() {
            true => (USER_ACCESS_AUDIT_STARTED, "user access auditing started"),
            false => (USER_ACCESS_AUDIT_STOPPED, "user access auditing stopped"),
        };
        let mut record = access_log::local_access_event(org, operator, operation, path, "", None);
        record["Message"] = serde_json::json!(message);
        out.push(record);
    }
    let changes = previous.changes(next);
    let mut record = access_log::local_access_event(org, operator, "AuditSettingsChanged", path, "", None);
    record["Message"] = serde_json::json!(format!(
        "local command on the data directory: {}",
        if changes.is_empty() { "no change".to_string() } else { changes.join("; ") }
    ));
    out.push(record);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(operation: &str, entity: &str) -> Event {
        let body = serde_json::json!({
            "Id": "x", "CreationTime": "2026-11-20T10:00:00Z", "Operation": operation, "EntityName": entity, "User": "ann@x.com",
        });
        signet_model::normalize(signet_model::LogKind::Activity, body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn switches_decide_what_is_recorded() {
        let mut settings = AuditSettings::default();
        for op in ["Retrieve", "RetrieveMultiple", "Create", USER_ACCESS_VIA_WEB] {
            assert_eq!(settings.skip_reason(&activity(op, "account")), None, "{op}: defaults record everything");
        }
        settings.is_read_audit_enabled = false;
        assert!(settings.skip_reason(&activity("Retrieve", "account")).unwrap().contains("read auditing"));
        assert!(settings.skip_reason(&activity("RetrieveMultiple", "account")).is_some());
        assert_eq!(settings.skip_reason(&activity("Update", "account")), None);

        settings.is_read_audit_enabled = true;
        settings.entities.insert(
            "account".into(),
            EntityAudit { is_audit_enabled: true, single_record_audit: false, multiple_record_audit: true },
        );
        settings.entities.insert(
            "lead".into(),
            EntityAudit { is_audit_enabled: false, single_record_audit: true, multiple_record_audit: true },
        );
        assert!(settings.skip_reason(&activity("Retrieve", "Account")).unwrap().contains("single record"));
        assert_eq!(settings.skip_reason(&activity("RetrieveMultiple", "account")), None);
        assert!(settings.skip_reason(&activity("Update", "lead")).unwrap().contains("entity lead"));
        assert_eq!(
            settings.skip_reason(&activity("Update", "contact")),
            None,
            "unlisted entities follow the organisation"
        );

        settings.is_user_access_audit_enabled = false;
        assert!(settings.skip_reason(&activity(USER_ACCESS_VIA_WEB_SERVICES, "")).is_some());
        assert!(!settings.user_access_on());
        settings.is_user_access_audit_enabled = true;
        settings.is_audit_enabled = false;
        assert!(!settings.user_access_on(), "user access auditing needs auditing on");
        assert!(settings.skip_reason(&activity("Create", "contact")).unwrap().contains("organisation"));
    }

    #[test]
    fn settings_survive_reopening_and_a_broken_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = AuditSettingsStore::open_audit(dir.path()).unwrap();
        let off = AuditSettings { is_read_audit_enabled: false, ..AuditSettings::default() };
        assert_eq!(store.replace("contoso", off.clone()).unwrap(), AuditSettings::default());
        let reopened = AuditSettingsStore::open_audit(dir.path()).unwrap();
        assert_eq!(reopened.get("contoso"), off);
        assert_eq!(reopened.get("default"), AuditSettings::default());
        std::fs::write(dir.path().join("settings/audit.json"), b"{ not json").unwrap();
        assert!(AuditSettingsStore::open_audit(dir.path()).is_err(), "never silently back to defaults");
    }

    #[test]
    fn settings_are_checked_and_changes_named() {
        let bad: AuditSettings = serde_json::from_str(r#"{"userAccessAuditingInterval": 0}"#).unwrap();
        assert!(bad.checked().is_err());
        assert!(serde_json::from_str::<AuditSettings>(r#"{"isAuditEnabled": true, "typo": 1}"#).is_err());
        let twice: AuditSettings = serde_json::from_str(r#"{"entities": {"Account": {}, "account": {}}}"#).unwrap();
        assert!(twice.checked().unwrap_err().contains("twice"));
        let next: AuditSettings = serde_json::from_str(
            r#"{"isReadAuditEnabled": false, "entities": {"Lead": {"singleRecordAudit": false}}}"#,
        )
        .unwrap();
        let next = next.checked().unwrap();
        assert!(next.entities.contains_key("lead"));
        assert_eq!(
            AuditSettings::default().changes(&next),
            vec![
                "IsReadAuditEnabled: true -> false".to_string(),
                "Entity lead: default -> audit on, single off, multiple on".to_string()
            ]
        );
    }
}
