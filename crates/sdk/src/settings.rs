//! The organisation's audit settings as Signet answers them at `GET /api/v1/ingest/settings`,
//! cached, so the middleware does not send what Signet would not record. Signet applies them
//! itself at ingest: the cache saves requests, it decides nothing on its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Deserialize;

fn yes() -> bool {
    true
}

fn four() -> u32 {
    4
}

/// Dynamics 365's audit settings of one organisation.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuditSettings {
    #[serde(default = "yes")]
    pub is_audit_enabled: bool,
    #[serde(default = "yes")]
    pub is_user_access_audit_enabled: bool,
    /// Hours: Signet keeps one user-access record per user, access type and interval.
    #[serde(default = "four")]
    pub user_access_auditing_interval: u32,
    #[serde(default = "yes")]
    pub is_read_audit_enabled: bool,
    /// Per entity, lower-case names.
    #[serde(default)]
    pub entities: BTreeMap<String, EntityAudit>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EntityAudit {
    #[serde(default = "yes")]
    pub is_audit_enabled: bool,
    #[serde(default = "yes")]
    pub single_record_audit: bool,
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

/// What an activity does, as far as the settings are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// One record opened (`Retrieve`, ...).
    Read,
    /// The records a page displays (`RetrieveMultiple`, ...).
    ReadMultiple,
    /// Anything else (`Create`, `Update`, `Delete`, ...).
    Change,
}

impl AuditSettings {
    pub fn records_user_access(&self) -> bool {
        self.is_audit_enabled && self.is_user_access_audit_enabled
    }

    /// Whether Signet records an activity of this kind on this entity.
    pub fn records(&self, access: Access, entity: &str) -> bool {
        if !self.is_audit_enabled {
            return false;
        }
        let read = access != Access::Change;
        if read && !self.is_read_audit_enabled {
            return false;
        }
        let Some(entity) = self.entities.get(&entity.trim().to_lowercase()) else { return true };
        entity.is_audit_enabled
            && match access {
                Access::Read => entity.single_record_audit,
                Access::ReadMultiple => entity.multiple_record_audit,
                Access::Change => true,
            }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.user_access_auditing_interval.max(1)) * 3600)
    }
}

/// The last answer and when it came.
pub(crate) struct SettingsCache {
    ttl: Duration,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    current: Option<Arc<AuditSettings>>,
    /// When the read that gave `current` started.
    fetched: Option<Instant>,
    refreshing: bool,
}

impl SettingsCache {
    pub fn new(ttl: Duration) -> SettingsCache {
        SettingsCache { ttl, state: Mutex::new(CacheState::default()) }
    }

    /// The cached settings, and whether the caller should refresh them (only one caller is
    /// told to at a time).
    pub fn snapshot(&self) -> (Option<Arc<AuditSettings>>, bool) {
        let mut state = self.state.lock();
        let stale = state.fetched.is_none_or(|at| at.elapsed() >= self.ttl);
        let refresh = stale && !state.refreshing;
        if refresh {
            state.refreshing = true;
        }
        (state.current.clone(), refresh)
    }

    /// Stores the answer of a read that started at `started`, unless a later read already
    /// answered; a failed read keeps the previous settings and is tried again after the TTL.
    pub fn store(&self, fetched: Option<AuditSettings>, started: Instant) {
        let mut state = self.state.lock();
        state.refreshing = false;
        if state.fetched.is_some_and(|at| at > started) {
            return;
        }
        if let Some(settings) = fetched {
            state.current = Some(Arc::new(settings));
        }
        state.fetched = Some(started);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_decide_like_signet() {
        let settings: AuditSettings = serde_json::from_str(
            r#"{"isReadAuditEnabled":true,"entities":{"account":{"singleRecordAudit":false},"lead":{"isAuditEnabled":false}}}"#,
        )
        .unwrap();
        assert!(settings.records(Access::ReadMultiple, "Account"));
        assert!(!settings.records(Access::Read, "account"));
        assert!(settings.records(Access::Change, "account"));
        assert!(!settings.records(Access::Change, "lead"));
        assert!(settings.records(Access::Read, "contact"));
        let off = AuditSettings { is_read_audit_enabled: false, ..AuditSettings::default() };
        assert!(!off.records(Access::Read, "contact") && off.records(Access::Change, "contact"));
        let all_off = AuditSettings { is_audit_enabled: false, ..AuditSettings::default() };
        assert!(!all_off.records_user_access() && !all_off.records(Access::Change, "x"));
    }

    #[test]
    fn one_refresh_at_a_time() {
        let cache = SettingsCache::new(Duration::from_secs(60));
        assert_eq!(cache.snapshot(), (None, true));
        assert_eq!(cache.snapshot(), (None, false), "a refresh is already running");
        let (older, newer) = (Instant::now(), Instant::now() + Duration::from_millis(1));
        cache.store(Some(AuditSettings { user_access_auditing_interval: 8, ..AuditSettings::default() }), newer);
        cache.store(Some(AuditSettings::default()), older);
        let (current, refresh) = cache.snapshot();
        assert!(!refresh);
        assert_eq!(current.unwrap().user_access_auditing_interval, 8, "a slower, older read does not win");
    }
}
