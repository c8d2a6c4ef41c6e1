//! The users directory: user id -> user name and email, per organisation, as Finance and
//! Operations shows its user log. Learned from the events applications send (an activity with
//! `UserId` and `User`, a sign-in with `userId`, `userPrincipalName` and `userDisplayName`) and
//! imported from a user list (JSON or CSV: `POST /api/v1/directory/users`). Imported entries
//! are authoritative: events do not overwrite them.
//!
//! Kept in `DATA/settings/users.json`, replaced atomically: imports at once, learned entries at
//! most every few seconds (and at shutdown). A learned entry lost in a crash is learned again
//! from the next event of that user.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use signet_auth::document::{Entry, EntrySet, SHARED_SKEW_US};
use signet_model::{Event, LogKind};
use tracing::warn;

use crate::audit_settings::{read_json_file, replace_file};

/// Entries per organisation at most (learning stops beyond; imports are refused).
pub const MAX_USERS: usize = 1_000_000;
const LEARNED_WRITE_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Learned,
    Imported,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryUser {
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub source: Source,
    /// When the entry last changed (RFC 3339).
    pub updated: String,
}

type Orgs = BTreeMap<String, BTreeMap<String, DirectoryUser>>;

pub struct UserDirectory {
    path: PathBuf,
    /// org -> lower-case user id -> entry
    orgs: Mutex<Orgs>,
    dirty: Mutex<Option<Instant>>,
    last_write: Mutex<Instant>,
    shared: Option<Shared>,
}

/// The entries' set where the nodes of a ClickHouse deployment share the directory: each node
/// writes the entries it changed (learned or imported) and reads the others' every few seconds,
/// so every node answers with every node's users. The file stays the node's own copy.
pub const USERS_ENTRIES: &str = "users";

struct Shared {
    set: Box<dyn EntrySet>,
    /// (organisation, lower-case id) of entries changed here and not shared yet.
    pending: Mutex<BTreeSet<(String, String)>>,
    /// The newest `written` read.
    seen: Mutex<i64>,
}

/// Which of two entries of one user is the entry: imported before learned, then the newer.
fn rank(user: &DirectoryUser) -> u64 {
    let at = signet_model::time::parse_time(&user.updated).unwrap_or(0).max(0) as u64 & ((1 << 60) - 1);
    match user.source {
        Source::Imported => 1 << 60 | at,
        Source::Learned => at,
    }
}

/// What an event tells about a user: (id, name, email).
pub type Mapping = (String, Option<String>, Option<String>);

/// Where a kind's column is among its cells (looked up once per batch, not per event).
fn cell_at(kind: LogKind, column: &str) -> Option<usize> {
    signet_model::schema::kind_columns(kind).iter().position(|c| c.name == column)
}

fn text(event: &Event, at: Option<usize>) -> Option<&str> {
    event.cells.get(at?).and_then(|c| c.as_str()).map(str::trim).filter(|s| !s.is_empty())
}

/// The user mappings a batch of events carries, once each (the last event of a user wins).
/// On the ingest path: it borrows until the end and copies one mapping per user.
pub fn mappings(events: &[Event]) -> Vec<Mapping> {
    let (activity_id, activity_upn) = (cell_at(LogKind::Activity, "user_id"), cell_at(LogKind::Activity, "user_upn"));
    let [signin_id, signin_upn, signin_name] =
        ["user_id", "user_principal_name", "user_display_name"].map(|column| cell_at(LogKind::SignIn, column));
    // Batches repeat users: sized for a few events per user, it rarely grows.
    // FxHash: SipHash's resistance to chosen keys buys nothing for a map that lives one batch.
    let mut seen: HashMap<&str, (Option<&str>, Option<&str>), rustc_hash::FxBuildHasher> =
        HashMap::with_capacity_and_hasher(events.len().min(4096), Default::default());
    for event in events {
        let (id, name, email) = match event.kind {
            LogKind::Activity => {
                let (Some(id), Some(email)) = (text(event, activity_id), text(event, activity_upn)) else { continue };
                if id.eq_ignore_ascii_case(email) {
                    continue; // Office 365 puts the UPN in both: nothing to map.
                }
                (id, None, Some(email))
            }
            LogKind::SignIn => {
                let Some(id) = text(event, signin_id) else { continue };
                let (email, name) = (text(event, signin_upn), text(event, signin_name));
                if email.is_none() && name.is_none() {
                    continue;
                }
                (id, name, email)
            }
            LogKind::DirectoryAudit => return Vec::new(),
        };
        seen.insert(id, (name, email));
    }
    seen.into_iter()
        .map(|(id, (name, email))| (id.to_string(), name.map(str::to_string), email.map(str::to_string)))
        .collect()
}

impl UserDirectory {
    pub fn open(data_dir: &Path) -> std::io::Result<UserDirectory> {
        UserDirectory::open_shared(data_dir, None)
    }

    /// The directory of `data_dir`, shared through `set` when given (what other nodes wrote is
    /// read at once; if that fails, the node starts with its own copy and reads it later).
    pub fn open_shared(data_dir: &Path, set: Option<Box<dyn EntrySet>>) -> std::io::Result<UserDirectory> {
        let path = data_dir.join("settings").join("users.json");
        let orgs: Orgs = read_json_file(&path)?;
        let directory = UserDirectory {
            path,
            orgs: Mutex::new(orgs),
            dirty: Mutex::new(None),
            last_write: Mutex::new(Instant::now() - LEARNED_WRITE_EVERY),
            shared: set.map(|set| Shared { set, pending: Mutex::default(), seen: Mutex::new(0) }),
        };
        if let Err(err) = directory.refresh() {
            warn!(error = %err, "could not read the users directory the nodes share: this node's copy for now");
        }
        Ok(directory)
    }

    /// Marks an entry changed here, to be shared by the next [`UserDirectory::flush`].
    fn changed(&self, org: &str, key: &str) {
        if let Some(shared) = &self.shared {
            shared.pending.lock().insert((org.to_string(), key.to_string()));
        }
    }

    /// Reads what other nodes wrote since the last read (nothing without sharing); returns
    /// whether it changed an entry.
    pub fn refresh(&self) -> std::io::Result<bool> {
        let Some(shared) = &self.shared else { return Ok(false) };
        let after = *shared.seen.lock() - SHARED_SKEW_US;
        let entries = shared.set.since(after)?;
        let mut changed = false;
        {
            let mut orgs = self.orgs.lock();
            for entry in &entries {
                let Ok(user) = serde_json::from_str::<DirectoryUser>(&entry.body) else {
                    warn!(org = %entry.org, key = %entry.key, "a shared users directory entry does not parse: skipped");
                    continue;
                };
                let users = orgs.entry(entry.org.clone()).or_default();
                if users.get(&entry.key).is_none_or(|mine| rank(mine) < entry.rank) {
                    users.insert(entry.key.clone(), user);
                    changed = true;
                }
            }
        }
        if let Some(newest) = entries.iter().map(|e| e.written).max() {
            let mut seen = shared.seen.lock();
            *seen = (*seen).max(newest);
        }
        if changed {
            self.dirty.lock().get_or_insert_with(Instant::now);
        }
        Ok(changed)
    }

    /// Writes the entries changed here to the shared set; kept for the next try if it fails.
    fn share(&self) -> std::io::Result<()> {
        let Some(shared) = &self.shared else { return Ok(()) };
        let keys = std::mem::take(&mut *shared.pending.lock());
        if keys.is_empty() {
            return Ok(());
        }
        let written = signet_model::time::now_micros();
        let entries: Vec<Entry> = {
            let orgs = self.orgs.lock();
            keys.iter()
                .filter_map(|(org, key)| {
                    let user = orgs.get(org)?.get(key)?;
                    let body = serde_json::to_string(user).ok()?;
                    Some(Entry { org: org.clone(), key: key.clone(), rank: rank(user), written, body })
                })
                .collect()
        };
        if let Err(err) = shared.set.put(&entries) {
            shared.pending.lock().extend(keys);
            return Err(err);
        }
        Ok(())
    }

    /// Records what events told; imported entries win. Blocking (may write the file).
    pub fn learn(&self, org: &str, mappings: Vec<Mapping>) -> std::io::Result<()> {
        let now = signet_model::time::format_time(signet_model::time::now_micros());
        let mut changed = false;
        {
            let mut orgs = self.orgs.lock();
            let users = orgs.entry(org.to_string()).or_default();
            for (id, name, email) in mappings {
                let key = id.to_lowercase();
                let full = users.len() >= MAX_USERS;
                match users.get_mut(&key) {
                    Some(entry) if entry.source == Source::Imported => {}
                    Some(entry) => {
                        let name = name.or_else(|| entry.name.clone());
                        let email = email.or_else(|| entry.email.clone());
                        if (&entry.name, &entry.email) != (&name, &email) {
                            (entry.name, entry.email, entry.updated) = (name, email, now.clone());
                            self.changed(org, &key);
                            changed = true;
                        }
                    }
                    None if !full => {
                        let entry =
                            DirectoryUser { user_id: id, name, email, source: Source::Learned, updated: now.clone() };
                        self.changed(org, &key);
                        users.insert(key, entry);
                        changed = true;
                    }
                    None => {}
                }
            }
        }
        if changed {
            self.dirty.lock().get_or_insert_with(Instant::now);
            if self.last_write.lock().elapsed() >= LEARNED_WRITE_EVERY {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Adds or replaces entries from a user list; (added, updated). Written at once.
    pub fn import(
        &self,
        org: &str,
        users: Vec<(String, Option<String>, Option<String>)>,
    ) -> std::io::Result<(usize, usize)> {
        let now = signet_model::time::format_time(signet_model::time::now_micros());
        let (mut added, mut updated) = (0, 0);
        {
            let mut orgs = self.orgs.lock();
            let entries = orgs.entry(org.to_string()).or_default();
            let new = users.iter().filter(|(id, ..)| !entries.contains_key(&id.to_lowercase())).count();
            if entries.len() + new > MAX_USERS {
                return Err(std::io::Error::other(format!("the users directory holds at most {MAX_USERS} users")));
            }
            for (id, name, email) in users {
                let entry =
                    DirectoryUser { user_id: id.clone(), name, email, source: Source::Imported, updated: now.clone() };
                self.changed(org, &id.to_lowercase());
                match entries.insert(id.to_lowercase(), entry) {
                    Some(_) => updated += 1,
                    None => added += 1,
                }
            }
        }
        self.dirty.lock().get_or_insert_with(Instant::now);
        self.flush()?;
        Ok((added, updated))
    }

    /// Writes the file if anything changed since the last write, and shares what changed
    /// here. An entry that could not be shared (ClickHouse down) is tried again by the next
    /// flush, with a warning, not an error: the file has it meanwhile, and an import is done.
    pub fn flush(&self) -> std::io::Result<()> {
        if let Err(err) = self.share() {
            warn!(error = %err, "could not share the users directory's changes: tried again in a few seconds");
        }
        if self.dirty.lock().take().is_some() {
            let bytes = serde_json::to_vec(&*self.orgs.lock()).map_err(std::io::Error::other)?;
            *self.last_write.lock() = Instant::now();
            if let Err(err) = replace_file(&self.path, &bytes) {
                self.dirty.lock().get_or_insert_with(Instant::now);
                return Err(err);
            }
        }
        Ok(())
    }

    pub fn get(&self, org: &str, user_id: &str) -> Option<DirectoryUser> {
        self.orgs.lock().get(org)?.get(&user_id.to_lowercase()).cloned()
    }

    /// Entries whose id, name or email starts with `prefix` (all without one), by id.
    pub fn list(&self, org: &str, prefix: Option<&str>, limit: usize) -> (usize, Vec<DirectoryUser>) {
        let orgs = self.orgs.lock();
        let Some(users) = orgs.get(org) else { return (0, Vec::new()) };
        let prefix = prefix.map(str::to_lowercase);
        let matches = |u: &DirectoryUser| {
            let Some(p) = &prefix else { return true };
            [Some(&u.user_id), u.name.as_ref(), u.email.as_ref()]
                .into_iter()
                .flatten()
                .any(|v| v.to_lowercase().starts_with(p.as_str()))
        };
        let total = users.values().filter(|u| matches(u)).count();
        (total, users.values().filter(|u| matches(u)).take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(json: &str) -> Event {
        signet_model::normalize(LogKind::Activity, json.as_bytes()).unwrap()
    }

    #[test]
    fn events_teach_ids_and_imports_win() {
        let dir = tempfile::tempdir().unwrap();
        let users = UserDirectory::open(dir.path()).unwrap();
        let events = vec![
            activity(
                r#"{"Id":"1","CreationTime":"2026-11-20T08:00:00Z","Operation":"UserLoggedIn","UserId":"jdoe","User":"john.doe@contoso.com"}"#,
            ),
            activity(
                r#"{"Id":"2","CreationTime":"2026-11-20T08:00:00Z","Operation":"MailItemsAccessed","UserId":"a@contoso.com"}"#,
            ),
        ];
        let learned = mappings(&events);
        assert_eq!(learned, vec![("jdoe".to_string(), None, Some("john.doe@contoso.com".to_string()))]);
        users.learn("o", learned).unwrap();
        assert_eq!(users.get("o", "JDOE").unwrap().email.as_deref(), Some("john.doe@contoso.com"));
        users.import("o", vec![("jdoe".into(), Some("John Doe".into()), Some("jd@contoso.com".into()))]).unwrap();
        users.learn("o", vec![("jdoe".into(), None, Some("other@contoso.com".into()))]).unwrap();
        let entry = users.get("o", "jdoe").unwrap();
        assert_eq!(
            (entry.name.as_deref(), entry.email.as_deref(), entry.source),
            (Some("John Doe"), Some("jd@contoso.com"), Source::Imported)
        );
        assert!(users.get("other-org", "jdoe").is_none(), "organisations are apart");
        // Imports are on disk at once.
        let reopened = UserDirectory::open(dir.path()).unwrap();
        assert_eq!(reopened.get("o", "jdoe").unwrap().name.as_deref(), Some("John Doe"));
        assert_eq!(reopened.list("o", Some("john"), 10).0, 1);
    }

    #[test]
    fn the_last_sign_in_of_a_user_says_who_they_are() {
        let signin = |id: &str, user: &str, name: &str| {
            let json = format!(
                r#"{{"id":"{id}","createdDateTime":"2026-11-20T08:00:00Z","userId":"{user}","userPrincipalName":"{user}@contoso.com","userDisplayName":"{name}"}}"#
            );
            signet_model::normalize(LogKind::SignIn, json.as_bytes()).unwrap()
        };
        let events = [
            signin("1", "u1", "Ann"),
            signin("2", "u2", "Bob"),
            signin("3", "u1", "Ann B"),
            signin("4", "u1", "Ann"),
            signin("5", "u2", "Bob"),
        ];
        let mut learned = mappings(&events);
        learned.sort();
        let expected =
            |id: &str, name: &str| (id.to_string(), Some(name.to_string()), Some(format!("{id}@contoso.com")));
        assert_eq!(learned, vec![expected("u1", "Ann"), expected("u2", "Bob")]);
    }
}
