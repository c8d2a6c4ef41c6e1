//! Roles and permissions: the one table that says who may do what.
//!
//! Every route of the server names one [`Permission`] (see `signet_server::routes`); whether a
//! caller holds it is decided here and nowhere else.

use serde::{Deserialize, Serialize};

/// The administrator roles of the Entra sign-in log documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    GlobalAdministrator,
    SecurityAdministrator,
    SecurityReader,
    GlobalReader,
    ReportsReader,
}

/// What a request needs. `Public` routes need nothing; every other route needs a verified
/// credential holding the permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// The caller's own sign-ins: every signed-in account has it.
    ReadOwnSignIns,
    /// Sign-in, directory-audit and activity lists, details, the Graph-compatible API.
    ReadLogs,
    /// Reports (timelines, top applications, patterns, authentication methods).
    ReadReports,
    /// Bulk export of the logs.
    Export,
    /// Read settings (audit switches, retention, security policy).
    ReadSettings,
    /// Change security settings (audit switches, retention, alert rules).
    ManageSecuritySettings,
    /// Create, list and revoke ingest keys.
    ManageIngestKeys,
    /// Create, list and revoke read keys.
    ManageReadKeys,
    /// Create, change and remove accounts and their roles.
    ManageUsers,
    /// Write events (ingest and import).
    IngestEvents,
    /// Operational metrics of the deployment (only within the home organisation: they count
    /// every organisation's traffic).
    ReadMetrics,
}

use Permission::*;

/// Permissions that change nothing; a read key never holds more than these. (A key has no
/// sign-ins of its own, so `ReadOwnSignIns` is not among them.)
pub const READ_ONLY: &[Permission] = &[ReadLogs, ReadReports, Export, ReadSettings, ReadMetrics];

/// Every permission, in matrix order.
pub const ALL_PERMISSIONS: &[Permission] = &[
    ReadOwnSignIns,
    ReadLogs,
    ReadReports,
    Export,
    ReadSettings,
    ManageSecuritySettings,
    ManageIngestKeys,
    ManageReadKeys,
    ManageUsers,
    IngestEvents,
    ReadMetrics,
];

/// The matrix. Keep it the only place that grants anything.
const MATRIX: &[(Role, &[Permission])] = &[
    // Everything, including accounts, roles, keys and settings.
    (Role::GlobalAdministrator, ALL_PERMISSIONS),
    (
        Role::SecurityAdministrator,
        &[
            ReadOwnSignIns,
            ReadLogs,
            ReadReports,
            Export,
            ReadSettings,
            ManageSecuritySettings,
            ManageIngestKeys,
            ReadMetrics,
        ],
    ),
    (Role::SecurityReader, &[ReadOwnSignIns, ReadLogs, ReadReports, Export, ReadSettings, ReadMetrics]),
    (Role::GlobalReader, &[ReadOwnSignIns, ReadLogs, ReadReports, Export, ReadSettings, ReadMetrics]),
    (Role::ReportsReader, &[ReadOwnSignIns, ReadLogs, ReadReports]),
];

/// What an account without an administrator role may do.
const EVERY_ACCOUNT: &[Permission] = &[ReadOwnSignIns];

/// What an ingest key may do.
const INGEST_KEY: &[Permission] = &[IngestEvents];

impl Role {
    pub const ALL: [Role; 5] = [
        Role::GlobalAdministrator,
        Role::SecurityAdministrator,
        Role::SecurityReader,
        Role::GlobalReader,
        Role::ReportsReader,
    ];

    pub fn permissions(self) -> &'static [Permission] {
        MATRIX.iter().find(|(role, _)| *role == self).map_or(&[], |(_, permissions)| permissions)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::GlobalAdministrator => "GlobalAdministrator",
            Role::SecurityAdministrator => "SecurityAdministrator",
            Role::SecurityReader => "SecurityReader",
            Role::GlobalReader => "GlobalReader",
            Role::ReportsReader => "ReportsReader",
        }
    }

    /// Parses a role name; case, spaces, dashes and underscores do not matter
    /// ("Global administrator", "global-reader", "SecurityReader").
    pub fn parse(text: &str) -> Option<Role> {
        let folded: String = text.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase();
        Role::ALL.into_iter().find(|role| role.as_str().to_lowercase() == folded)
    }

    /// Whether a user may grant this role to an account or read key: only roles whose
    /// permissions the granter holds itself.
    pub fn grantable_by(self, granter: &[Permission]) -> bool {
        self.permissions().iter().all(|p| granter.contains(p))
    }
}

/// What a verified credential is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// A signed-in account, with its administrator role if any.
    Account(Option<Role>),
    /// An ingest key.
    IngestKey,
    /// A read key bound to a role: the role's read-only permissions.
    ReadKey(Role),
}

impl Grant {
    /// Whether the grant holds `permission`.
    pub fn allows(&self, permission: Permission) -> bool {
        match self {
            Grant::Account(None) => EVERY_ACCOUNT.contains(&permission),
            Grant::Account(Some(role)) => role.permissions().contains(&permission),
            Grant::IngestKey => INGEST_KEY.contains(&permission),
            Grant::ReadKey(role) => READ_ONLY.contains(&permission) && role.permissions().contains(&permission),
        }
    }

    /// Every permission held, in matrix order.
    pub fn permissions(&self) -> Vec<Permission> {
        ALL_PERMISSIONS.iter().copied().filter(|p| self.allows(*p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_rules_hold() {
        let admin = Grant::Account(Some(Role::GlobalAdministrator));
        assert!(ALL_PERMISSIONS.iter().all(|p| admin.allows(*p)));

        let secadmin = Grant::Account(Some(Role::SecurityAdministrator));
        assert!(secadmin.allows(ManageSecuritySettings) && secadmin.allows(ManageIngestKeys));
        assert!(!secadmin.allows(ManageUsers) && !secadmin.allows(ManageReadKeys));

        for reader in [Role::SecurityReader, Role::GlobalReader] {
            let grant = Grant::Account(Some(reader));
            assert!(grant.allows(ReadLogs) && grant.allows(Export) && grant.allows(ReadSettings));
            assert!(READ_ONLY.iter().all(|p| grant.allows(*p)));
            let changes = grant.permissions().into_iter().any(|p| !READ_ONLY.contains(&p) && p != ReadOwnSignIns);
            assert!(!changes, "{reader:?} changes something");
        }

        let reports = Grant::Account(Some(Role::ReportsReader));
        assert!(reports.allows(ReadReports) && reports.allows(ReadLogs));
        assert!(!reports.allows(ReadSettings) && !reports.allows(Export));

        assert_eq!(Grant::Account(None).permissions(), vec![ReadOwnSignIns]);
        assert_eq!(Grant::IngestKey.permissions(), vec![IngestEvents]);
        let key = Grant::ReadKey(Role::GlobalAdministrator);
        assert!(key.permissions().iter().all(|p| READ_ONLY.contains(p)));
        assert!(!key.allows(IngestEvents));
    }

    #[test]
    fn roles_parse_loosely_and_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("Global administrator"), Some(Role::GlobalAdministrator));
        assert_eq!(Role::parse("security-reader"), Some(Role::SecurityReader));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn only_held_permissions_can_be_granted() {
        let secadmin = Role::SecurityAdministrator.permissions();
        assert!(Role::SecurityReader.grantable_by(secadmin));
        assert!(!Role::GlobalAdministrator.grantable_by(secadmin));
    }
}
