//! The account store: organisations, accounts and API keys of one deployment, kept in
//! `DATA/auth/accounts.json` (replaced atomically: write, fsync, rename, fsync directory).
//!
//! Secrets are never stored: passwords as Argon2id PHC strings, keys as SHA-256 digests of
//! 256-bit random values. The file is small (thousands of accounts at most), so every change
//! rewrites it and readers work on an in-memory copy.

use std::collections::HashMap;
use std::path::Path;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::document::{Document, FileDocument};
use crate::error::{AuthError, Result};
use crate::role::{Grant, Permission, Role};
use crate::secret::{self, Secret};

/// Version of the accounts file this build reads and writes.
pub const ACCOUNTS_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    pub display_name: String,
    pub created_us: i64,
}

/// An account. Serialised into the accounts file only; the API shows [`UserView`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub org: String,
    /// Sign-in name, lowercase (a UPN or e-mail address). Unique in the deployment.
    pub username: String,
    pub display_name: String,
    pub role: Option<Role>,
    /// Argon2id PHC string; `None` for accounts that sign in through OpenID Connect only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) password_hash: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    pub created_us: i64,
    /// Set when repeated wrong passwords lock the account.
    #[serde(default)]
    pub locked_until_us: Option<i64>,
    /// The OpenID Connect identity the account signs in with, once linked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalIdentity>,
}

/// An identity at an OpenID Connect provider: the issuer and its stable subject id (never the
/// user name, which users or administrators of the provider can change).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalIdentity {
    /// Name of the provider in Signet's configuration.
    pub provider: String,
    pub issuer: String,
    pub subject: String,
}

/// A verified OpenID Connect sign-in, to be matched with (or to create) an account.
#[derive(Clone, Debug)]
pub struct ExternalLogin {
    pub org: String,
    pub identity: ExternalIdentity,
    pub username: String,
    pub display_name: Option<String>,
    /// `Some(role)`: the provider decides the account's role (set on every sign-in);
    /// `None`: the role is managed in Signet.
    pub role: Option<Option<Role>>,
}

/// What an OpenID Connect sign-in comes to.
#[derive(Clone, Debug)]
pub enum ExternalSignIn {
    /// The account (found, linked or created) may sign in.
    Ready(User),
    /// The account exists but is disabled.
    Disabled(User),
    /// The identity cannot be given an account; the reason says why.
    Refused(String),
}

/// An account as the API shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Option<Role>,
    pub disabled: bool,
    pub has_password: bool,
    /// The OpenID Connect provider the account signs in with, if any.
    pub identity_provider: Option<String>,
    pub created_date_time: String,
    pub locked_until: Option<String>,
}

impl User {
    pub fn view(&self) -> UserView {
        UserView {
            id: self.id.clone(),
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
            disabled: self.disabled,
            has_password: self.password_hash.is_some(),
            identity_provider: self.external.as_ref().map(|e| e.provider.clone()),
            created_date_time: signet_model::time::format_time(self.created_us),
            locked_until: self.locked_until_us.map(signet_model::time::format_time),
        }
    }

    pub fn password_hash(&self) -> Option<&str> {
        self.password_hash.as_deref()
    }
}

/// What a key may do.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum KeyKind {
    /// Writes events only; with `app`, only events of that source application.
    Ingest { app: Option<String> },
    /// Reads with the read-only permissions of `role`.
    Read { role: Role },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub org: String,
    pub name: String,
    pub kind: KeyKind,
    pub(crate) secret_digest: String,
    pub created_us: i64,
    pub created_by: String,
    pub last_used_us: Option<i64>,
    pub revoked_us: Option<i64>,
}

/// A key as the API lists it (never the secret).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub kind: KeyKind,
    pub created_date_time: String,
    pub created_by: String,
    pub last_used_date_time: Option<String>,
    pub revoked_date_time: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    organizations: Vec<Organization>,
    users: Vec<User>,
    keys: Vec<ApiKey>,
}

/// Who a verified credential is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The organisation every read and write of the request is confined to.
    pub org: String,
    pub subject: Subject,
    pub grant: Grant,
    /// Whether `org` is the deployment's home organisation.
    pub home: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    User { id: String, username: String, display_name: String },
    Key { id: String, name: String, app: Option<String> },
}

impl Principal {
    /// Whether the principal holds `permission`. Deployment metrics count every
    /// organisation's traffic, so only the home organisation may read them.
    pub fn allows(&self, permission: Permission) -> bool {
        if permission == Permission::ReadMetrics && !self.home {
            return false;
        }
        self.grant.allows(permission)
    }

    /// The name recorded in the access log: the account name, or `key:<name>`.
    pub fn name(&self) -> String {
        match &self.subject {
            Subject::User { username, .. } => username.clone(),
            Subject::Key { name, .. } => format!("key:{name}"),
        }
    }

    /// Stable id of the subject (account id or key id).
    pub fn subject_id(&self) -> &str {
        match &self.subject {
            Subject::User { id, .. } | Subject::Key { id, .. } => id,
        }
    }

    /// The activity schema's `UserType`.
    pub fn user_type(&self) -> &'static str {
        match (&self.subject, &self.grant) {
            (Subject::Key { .. }, _) => "Application",
            (_, Grant::Account(Some(_))) => "Admin",
            _ => "Regular",
        }
    }

    /// The account name when the principal is an account (whose own sign-ins it may read).
    pub fn username(&self) -> Option<&str> {
        match &self.subject {
            Subject::User { username, .. } => Some(username),
            Subject::Key { .. } => None,
        }
    }
}

/// A new account.
#[derive(Debug)]
pub struct NewUser {
    pub username: String,
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub password: Option<Secret>,
}

/// A change to an account; `None` fields stay as they are.
#[derive(Debug, Default)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub role: Option<Option<Role>>,
    pub disabled: Option<bool>,
    pub password: Option<Secret>,
    /// Clears a lockout.
    pub unlock: bool,
}

/// Prefix of every API key, so that secret scanners recognise leaked keys.
pub const KEY_PREFIX: &str = "sgk_";
const KEY_ID_HEX: usize = 16;

/// Splits `sgk_<16 hex id>_<secret>`.
fn parse_key(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    if rest.len() <= KEY_ID_HEX + 1 || !rest.is_char_boundary(KEY_ID_HEX) {
        return None;
    }
    let (id, secret) = rest.split_at(KEY_ID_HEX);
    let secret = secret.strip_prefix('_')?;
    id.bytes().all(|b| b.is_ascii_hexdigit()).then_some((id, secret))
}

/// Checks and normalises an account name.
fn normalize_username(name: &str) -> Result<String> {
    let name = name.trim().to_lowercase();
    if name.is_empty() || name.len() > 256 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AuthError::Invalid("the user name must be 1 to 256 characters without spaces".into()));
    }
    Ok(name)
}

/// Checks an organisation id: what [`signet_model::OrgId`] accepts.
pub fn check_org_id(id: &str) -> Result<()> {
    signet_model::OrgId::new(id.to_string()).map(|_| ()).map_err(AuthError::Invalid)
}

pub struct Directory {
    document: Box<dyn Document>,
    home_org: String,
    /// The state and the document version it was read from.
    state: RwLock<(u64, State)>,
    /// Serialises changes: read, change a copy, persist, publish.
    writer: Mutex<()>,
    /// Keys used since the last flush (id -> time): last-used times are written in batches,
    /// not on every request.
    key_use: Mutex<HashMap<String, i64>>,
}

/// The name of the accounts document (`DATA/auth/accounts.json`).
pub const ACCOUNTS_DOCUMENT: &str = "auth/accounts.json";

impl Directory {
    /// Opens (or starts) the accounts file in `dir`. `home_org` is the deployment's own
    /// organisation; it always exists.
    pub fn open(dir: &Path, home_org: &str) -> Result<Directory> {
        let document = FileDocument::new(dir.join("accounts.json"), 0o600);
        Directory::open_document(Box::new(document), home_org)
    }

    /// Opens the accounts of a deployment's documents ([`ACCOUNTS_DOCUMENT`]).
    pub fn open_in(documents: &dyn crate::document::Documents, home_org: &str) -> Result<Directory> {
        Directory::open_document(documents.document(ACCOUNTS_DOCUMENT), home_org)
    }

    /// Opens the accounts document of a deployment (a data directory's file, or a store the
    /// nodes share).
    pub fn open_document(document: Box<dyn Document>, home_org: &str) -> Result<Directory> {
        check_org_id(home_org)?;
        let (version, state) = Self::read(&*document, home_org)?;
        Ok(Directory {
            document,
            home_org: home_org.to_string(),
            state: RwLock::new((version, state)),
            writer: Mutex::new(()),
            key_use: Mutex::new(HashMap::new()),
        })
    }

    fn read(document: &dyn Document, home_org: &str) -> Result<(u64, State)> {
        let corrupt = |reason: String| AuthError::Corrupt { path: document.describe(), reason };
        let io = |source| AuthError::Io { path: document.describe(), source };
        let (version, mut state) = match document.load().map_err(io)? {
            Some((version, bytes)) => {
                (version, serde_json::from_slice::<State>(&bytes).map_err(|e| corrupt(e.to_string()))?)
            }
            None => (0, State { version: ACCOUNTS_VERSION, ..State::default() }),
        };
        if state.version > ACCOUNTS_VERSION {
            return Err(corrupt(format!(
                "version {} is newer than this build reads ({ACCOUNTS_VERSION})",
                state.version
            )));
        }
        if !state.organizations.iter().any(|o| o.id == home_org) {
            state.organizations.push(Organization {
                id: home_org.to_string(),
                display_name: home_org.to_string(),
                created_us: signet_model::time::now_micros(),
            });
        }
        Ok((version, state))
    }

    /// Opens the account store of a data directory (`DATA/auth/`). The caller holds the data
    /// directory's lock, so that one process at a time changes it.
    pub fn open_in_data_dir(data_dir: &Path, home_org: &str) -> Result<Directory> {
        Directory::open(&data_dir.join("auth"), home_org)
    }

    /// Reads the document again when another node changed it; returns whether it had.
    pub fn refresh(&self) -> Result<bool> {
        let io = |source| AuthError::Io { path: self.document.describe(), source };
        let current = self.document.version().map_err(io)?;
        if current.is_none_or(|v| v == self.state.read().0) {
            return Ok(false);
        }
        let _writer = self.writer.lock();
        let (version, state) = Self::read(&*self.document, &self.home_org)?;
        *self.state.write() = (version, state);
        Ok(true)
    }

    pub fn home_org(&self) -> &str {
        &self.home_org
    }

    /// Applies `change` to a copy of the state, persists it, then publishes it. On error
    /// nothing changes, in memory or on disk. When another node wrote the document meanwhile,
    /// `change` is applied again to its version (so it may run more than once).
    fn change<T>(&self, mut change: impl FnMut(&mut State) -> Result<T>) -> Result<T> {
        let _writer = self.writer.lock();
        let io = |source| AuthError::Io { path: self.document.describe(), source };
        for _ in 0..crate::document::CHANGE_ATTEMPTS {
            let (version, mut next) = self.state.read().clone();
            let out = change(&mut next)?;
            let bytes = serde_json::to_vec_pretty(&next).map_err(|e| AuthError::Internal(e.to_string()))?;
            if self.document.store(version + 1, &bytes).map_err(io)? {
                *self.state.write() = (version + 1, next);
                return Ok(out);
            }
            *self.state.write() = Self::read(&*self.document, &self.home_org)?;
        }
        Err(AuthError::Conflict(format!(
            "{} kept changing while this change was saved; try again",
            self.document.describe()
        )))
    }

    /// The state as last read or written.
    fn current(&self) -> parking_lot::MappedRwLockReadGuard<'_, State> {
        parking_lot::RwLockReadGuard::map(self.state.read(), |(_, state)| state)
    }

    // ---- organisations ----

    pub fn organizations(&self) -> Vec<Organization> {
        self.current().organizations.clone()
    }

    pub fn create_organization(&self, id: &str, display_name: &str) -> Result<Organization> {
        check_org_id(id)?;
        self.change(|state| {
            if state.organizations.iter().any(|o| o.id == id) {
                return Err(AuthError::Conflict(format!("organisation {id} already exists")));
            }
            let org = Organization {
                id: id.to_string(),
                display_name: display_name.to_string(),
                created_us: signet_model::time::now_micros(),
            };
            state.organizations.push(org.clone());
            Ok(org)
        })
    }

    fn require_org(state: &State, org: &str) -> Result<()> {
        match state.organizations.iter().any(|o| o.id == org) {
            true => Ok(()),
            false => Err(AuthError::NotFound(format!("organisation {org} does not exist"))),
        }
    }

    // ---- accounts ----

    /// Whether the home organisation has an enabled Global administrator with a password.
    pub fn has_admin(&self) -> bool {
        self.current().users.iter().any(|u| {
            u.org == self.home_org
                && u.role == Some(Role::GlobalAdministrator)
                && !u.disabled
                && u.password_hash.is_some()
        })
    }

    pub fn users(&self, org: &str) -> Vec<User> {
        self.current().users.iter().filter(|u| u.org == org).cloned().collect()
    }

    pub fn user(&self, org: &str, id: &str) -> Option<User> {
        self.current().users.iter().find(|u| u.org == org && u.id == id).cloned()
    }

    pub fn user_by_name(&self, username: &str) -> Option<User> {
        let name = username.trim().to_lowercase();
        self.current().users.iter().find(|u| u.username == name).cloned()
    }

    pub fn create_user(&self, org: &str, new: NewUser) -> Result<User> {
        let username = normalize_username(&new.username)?;
        let password_hash = match &new.password {
            Some(password) => {
                secret::check_password_policy(password, &username)?;
                Some(secret::hash_password(password)?)
            }
            None => None,
        };
        self.change(|state| {
            Self::require_org(state, org)?;
            if state.users.iter().any(|u| u.username == username) {
                return Err(AuthError::Conflict(format!("an account named {username} already exists")));
            }
            let user = User {
                id: secret::random_uuid(),
                org: org.to_string(),
                display_name: new.display_name.clone().unwrap_or_else(|| username.clone()),
                username: username.clone(),
                role: new.role,
                password_hash: password_hash.clone(),
                disabled: false,
                created_us: signet_model::time::now_micros(),
                locked_until_us: None,
                external: None,
            };
            state.users.push(user.clone());
            Ok(user)
        })
    }

    /// Finds, links or creates the account of a verified OpenID Connect sign-in, in one change.
    ///
    /// The account is found by issuer and subject. A first sign-in links to an account of the
    /// same name only when an administrator created it for single sign-on (same organisation,
    /// no password, not linked to another identity); otherwise it creates one. A name taken by
    /// a password account is refused: the provider's user name alone must never open an
    /// account that someone else's password protects. Name, display name and (when the
    /// provider decides roles) role follow the provider on every sign-in.
    pub fn sign_in_external(&self, login: &ExternalLogin) -> Result<ExternalSignIn> {
        let username = normalize_username(&login.username)?;
        let found = {
            let state = self.current();
            state.users.iter().find(|u| u.external.as_ref() == Some(&login.identity)).cloned()
        };
        if let Some(user) = found.as_ref().filter(|u| u.disabled) {
            return Ok(ExternalSignIn::Disabled(user.clone()));
        }
        self.change(|state| {
            Self::require_org(state, &login.org)?;
            let by_identity = state.users.iter().position(|u| u.external.as_ref() == Some(&login.identity));
            let at = match by_identity {
                Some(at) => at,
                None => match state.users.iter().position(|u| u.username == username) {
                    Some(at) => {
                        let user = &state.users[at];
                        if user.org != login.org {
                            return Ok(ExternalSignIn::Refused(format!(
                                "the name {username} belongs to an account of another organisation"
                            )));
                        }
                        if user.password_hash.is_some() || user.external.is_some() {
                            return Ok(ExternalSignIn::Refused(format!(
                                "the name {username} belongs to an account that signs in another way; an administrator must remove it or choose another name"
                            )));
                        }
                        if user.disabled {
                            return Ok(ExternalSignIn::Disabled(user.clone()));
                        }
                        state.users[at].external = Some(login.identity.clone());
                        at
                    }
                    None => {
                        state.users.push(User {
                            id: secret::random_uuid(),
                            org: login.org.clone(),
                            username: username.clone(),
                            display_name: username.clone(),
                            role: None,
                            password_hash: None,
                            disabled: false,
                            created_us: signet_model::time::now_micros(),
                            locked_until_us: None,
                            external: Some(login.identity.clone()),
                        });
                        state.users.len() - 1
                    }
                },
            };
            if state.users[at].org != login.org {
                return Ok(ExternalSignIn::Refused("the identity is linked to an account of another organisation".into()));
            }
            let taken = state.users.iter().enumerate().any(|(i, u)| i != at && u.username == username);
            let user = &mut state.users[at];
            if user.username != username {
                match taken {
                    true => tracing::warn!(
                        account = %user.username,
                        wanted = %username,
                        "the provider renamed an account to a name already taken; keeping the old name"
                    ),
                    false => user.username = username.clone(),
                }
            }
            if let Some(name) = login.display_name.as_ref().filter(|n| !n.trim().is_empty()) {
                user.display_name = name.trim().to_string();
            }
            if let Some(role) = login.role {
                user.role = role;
            }
            Ok(ExternalSignIn::Ready(user.clone()))
        })
    }

    /// Whether removing `id` from the Global administrators would leave `org` without one.
    fn is_last_admin(state: &State, org: &str, id: &str) -> bool {
        let admins = state
            .users
            .iter()
            .filter(|u| u.org == org && u.role == Some(Role::GlobalAdministrator) && !u.disabled)
            .collect::<Vec<_>>();
        admins.len() == 1 && admins[0].id == id
    }

    pub fn update_user(&self, org: &str, id: &str, patch: UserPatch) -> Result<User> {
        let password_hash = match &patch.password {
            Some(password) => {
                let name = self.user(org, id).map(|u| u.username).unwrap_or_default();
                secret::check_password_policy(password, &name)?;
                Some(secret::hash_password(password)?)
            }
            None => None,
        };
        self.change(|state| {
            let demotes = matches!(patch.role, Some(role) if role != Some(Role::GlobalAdministrator));
            if (demotes || patch.disabled == Some(true)) && Self::is_last_admin(state, org, id) {
                return Err(AuthError::Conflict(
                    "this is the organisation's last enabled Global administrator; appoint another first".into(),
                ));
            }
            let user = state
                .users
                .iter_mut()
                .find(|u| u.org == org && u.id == id)
                .ok_or_else(|| AuthError::NotFound(format!("no account {id}")))?;
            if let Some(name) = &patch.display_name {
                user.display_name = name.clone();
            }
            if let Some(role) = patch.role {
                user.role = role;
            }
            if let Some(disabled) = patch.disabled {
                user.disabled = disabled;
            }
            if password_hash.is_some() {
                user.password_hash = password_hash.clone();
            }
            if patch.unlock {
                user.locked_until_us = None;
            }
            Ok(user.clone())
        })
    }

    pub fn delete_user(&self, org: &str, id: &str) -> Result<User> {
        self.change(|state| {
            if Self::is_last_admin(state, org, id) {
                return Err(AuthError::Conflict(
                    "this is the organisation's last enabled Global administrator; appoint another first".into(),
                ));
            }
            let at = state
                .users
                .iter()
                .position(|u| u.org == org && u.id == id)
                .ok_or_else(|| AuthError::NotFound(format!("no account {id}")))?;
            Ok(state.users.remove(at))
        })
    }

    /// Locks (or unlocks, with `None`) an account after repeated failures.
    pub fn set_locked_until(&self, id: &str, until_us: Option<i64>) -> Result<()> {
        self.change(|state| {
            if let Some(user) = state.users.iter_mut().find(|u| u.id == id) {
                user.locked_until_us = until_us;
            }
            Ok(())
        })
    }

    /// The principal of a signed-in account, re-read on every request so that a role change,
    /// a disabled account or a deleted one takes effect at once.
    pub fn principal_for_user(&self, user_id: &str) -> Option<Principal> {
        let state = self.current();
        let user = state.users.iter().find(|u| u.id == user_id && !u.disabled)?;
        Some(Principal {
            org: user.org.clone(),
            subject: Subject::User {
                id: user.id.clone(),
                username: user.username.clone(),
                display_name: user.display_name.clone(),
            },
            grant: Grant::Account(user.role),
            home: user.org == self.home_org,
        })
    }

    // ---- keys ----

    /// Creates a key; the token is returned once and never stored.
    pub fn create_key(&self, org: &str, name: &str, kind: KeyKind, created_by: &str) -> Result<(ApiKey, Secret)> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(AuthError::Invalid("the key name must be 1 to 200 characters".into()));
        }
        if let KeyKind::Ingest { app: Some(app) } = &kind {
            if app.trim().is_empty() {
                return Err(AuthError::Invalid("the key's source application must not be blank".into()));
            }
        }
        let id = secret::random_hex(KEY_ID_HEX / 2);
        let token = Secret::new(format!("{KEY_PREFIX}{id}_{}", secret::random_token(32)));
        let key = ApiKey {
            id,
            org: org.to_string(),
            name: name.to_string(),
            kind,
            secret_digest: secret::token_digest(token.expose()),
            created_us: signet_model::time::now_micros(),
            created_by: created_by.to_string(),
            last_used_us: None,
            revoked_us: None,
        };
        self.change(|state| {
            Self::require_org(state, org)?;
            state.keys.push(key.clone());
            Ok(())
        })?;
        Ok((key, token))
    }

    pub fn keys(&self, org: &str) -> Vec<KeyView> {
        let used = self.key_use.lock().clone();
        self.current()
            .keys
            .iter()
            .filter(|k| k.org == org)
            .map(|k| KeyView {
                id: k.id.clone(),
                name: k.name.clone(),
                kind: k.kind.clone(),
                created_date_time: signet_model::time::format_time(k.created_us),
                created_by: k.created_by.clone(),
                last_used_date_time: used.get(&k.id).copied().or(k.last_used_us).map(signet_model::time::format_time),
                revoked_date_time: k.revoked_us.map(signet_model::time::format_time),
            })
            .collect()
    }

    pub fn key(&self, org: &str, id: &str) -> Option<ApiKey> {
        self.current().keys.iter().find(|k| k.org == org && k.id == id).cloned()
    }

    /// Revokes a key; it stops working for the very next request.
    pub fn revoke_key(&self, org: &str, id: &str) -> Result<ApiKey> {
        self.change(|state| {
            let key = state
                .keys
                .iter_mut()
                .find(|k| k.org == org && k.id == id)
                .ok_or_else(|| AuthError::NotFound(format!("no key {id}")))?;
            if key.revoked_us.is_none() {
                key.revoked_us = Some(signet_model::time::now_micros());
            }
            Ok(key.clone())
        })
    }

    /// The principal of a bearer key, or `None` when the key is unknown, wrong or revoked.
    pub fn authenticate_key(&self, token: &str) -> Option<Principal> {
        let (id, _) = parse_key(token)?;
        let digest = secret::token_digest(token);
        let state = self.current();
        let key = state.keys.iter().find(|k| k.id == id)?;
        if !secret::digests_equal(&key.secret_digest, &digest) || key.revoked_us.is_some() {
            return None;
        }
        self.key_use.lock().insert(key.id.clone(), signet_model::time::now_micros());
        let (grant, app) = match &key.kind {
            KeyKind::Ingest { app } => (Grant::IngestKey, app.clone()),
            KeyKind::Read { role } => (Grant::ReadKey(*role), None),
        };
        Some(Principal {
            org: key.org.clone(),
            subject: Subject::Key { id: key.id.clone(), name: key.name.clone(), app },
            grant,
            home: key.org == self.home_org,
        })
    }

    /// Writes last-used times gathered since the previous flush.
    pub fn flush_key_use(&self) -> Result<()> {
        let used = std::mem::take(&mut *self.key_use.lock());
        if used.is_empty() {
            return Ok(());
        }
        self.change(|state| {
            for key in state.keys.iter_mut() {
                if let Some(at) = used.get(&key.id) {
                    key.last_used_us = Some(key.last_used_us.map_or(*at, |old| old.max(*at)));
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
#[path = "directory_tests.rs"]
mod tests;
