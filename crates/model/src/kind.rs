//! Log kinds and organisation ids.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The three logs Signet keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LogKind {
    /// Microsoft Graph `signIn` resources.
    SignIn,
    /// Microsoft Graph `directoryAudit` resources.
    DirectoryAudit,
    /// Office 365 / Dynamics 365 activity-logging records.
    Activity,
}

impl LogKind {
    pub const ALL: [LogKind; 3] = [LogKind::SignIn, LogKind::DirectoryAudit, LogKind::Activity];

    /// Stable one-byte code used in the on-disk event log.
    pub fn code(self) -> u8 {
        match self {
            LogKind::SignIn => 1,
            LogKind::DirectoryAudit => 2,
            LogKind::Activity => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<LogKind> {
        match code {
            1 => Some(LogKind::SignIn),
            2 => Some(LogKind::DirectoryAudit),
            3 => Some(LogKind::Activity),
            _ => None,
        }
    }

    /// Name used in URLs, CLI flags and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::SignIn => "signins",
            LogKind::DirectoryAudit => "directory-audits",
            LogKind::Activity => "activities",
        }
    }

    pub fn parse(text: &str) -> Option<LogKind> {
        match text {
            "signins" | "signin" | "sign-ins" | "signIns" => Some(LogKind::SignIn),
            "directory-audits" | "directoryAudits" | "audits" | "audit" => Some(LogKind::DirectoryAudit),
            "activities" | "activity" => Some(LogKind::Activity),
            _ => None,
        }
    }
}

impl fmt::Display for LogKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An organisation (tenant) id. Always taken from configuration or, later, the verified
/// credential; never from the body of a record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrgId(String);

impl OrgId {
    pub const DEFAULT: &'static str = "default";

    /// Accepts 1-64 characters of `[A-Za-z0-9._-]`.
    pub fn new(id: impl Into<String>) -> Result<OrgId, String> {
        let id = id.into();
        let valid_chars = id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if id.is_empty() || id.len() > 64 || !valid_chars {
            return Err(format!("organisation id {id:?} must be 1-64 characters of A-Z a-z 0-9 . _ -"));
        }
        Ok(OrgId(id))
    }

    pub fn default_org() -> OrgId {
        OrgId(OrgId::DEFAULT.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_codes_round_trip() {
        for kind in LogKind::ALL {
            assert_eq!(LogKind::from_code(kind.code()), Some(kind));
            assert_eq!(LogKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(LogKind::from_code(0), None);
    }

    #[test]
    fn org_ids_are_validated() {
        assert!(OrgId::new("contoso-eu.1").is_ok());
        assert!(OrgId::new("").is_err());
        assert!(OrgId::new("a b").is_err());
        assert!(OrgId::new("x".repeat(65)).is_err());
    }
}
