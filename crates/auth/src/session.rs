//! Console sessions: random 256-bit ids kept only as SHA-256 digests, each with its own CSRF
//! token, an idle timeout and an absolute lifetime.
//!
//! A lone node keeps them in a file of its data directory ([`SessionStore::persisted`],
//! `DATA/auth/sessions.jsonl`, 0600: the ids' digests, never the ids), written the way the
//! nodes of a deployment share them (below) and read once at start, so a restart (an upgrade,
//! a configuration change) does not sign everyone out; a session's last use reaches the file
//! at most once a minute, so after a restart its idle timeout may come that much early.
//!
//! The nodes of a ClickHouse deployment share them through an [`EntrySet`]
//! ([`SESSIONS_ENTRIES`]): a sign-in is written before it is answered, so the next request may
//! reach any node (no sticky sessions); a node that meets a session id it does not know reads
//! the set again at once (at most every [`MISS_REFRESH_EVERY`], so unknown cookies cannot make
//! it query the store for each request). A sign-out, and the end of every session of an account
//! (password changed), are written at once too and reach the other nodes with their next read
//! (every two seconds). A session's last use is shared at most once a minute: another node may
//! judge it idle that much early.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::document::{Entry, EntrySet, FORGET_EVERY, SHARED_SKEW_US};
use crate::secret::{self, Secret};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub user_id: String,
    pub org: String,
    /// Sent back by the console in `X-CSRF-Token` on every state-changing request.
    pub csrf: String,
    pub created_us: i64,
    pub last_seen_us: i64,
}

/// The entry set where the nodes of a deployment share console sessions.
pub const SESSIONS_ENTRIES: &str = "sessions";

/// The shortest time between two reads of the shared sessions caused by unknown session ids.
pub const MISS_REFRESH_EVERY: Duration = Duration::from_millis(100);

/// How often at most a session's last use is written to the shared set.
const SHARE_USE_EVERY_US: i64 = 60_000_000;

/// One shared entry's body.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum Shared {
    /// A session, created or last used (key: the id's digest).
    Session(Session),
    /// Signed out (key: the id's digest).
    Ended,
    /// Every session of the account created before `before_us` ended (key: `user:<id>`).
    #[serde(rename_all = "camelCase")]
    UserEnded { before_us: i64 },
}

struct Kept {
    session: Session,
    /// The last use the shared set has.
    shared_us: i64,
}

/// What a node keeps of the shared set.
struct Sharing {
    set: Box<dyn EntrySet>,
    /// The newest `written` read.
    seen: Mutex<i64>,
    /// Digests of sessions whose state is to be written by the next [`SessionStore::flush`].
    pending: Mutex<HashSet<String>>,
    /// Sign-outs and account ends not written yet (the set could not be reached).
    unwritten: Mutex<Vec<Entry>>,
    /// Ended sessions' digests, when they ended: an older entry read again does not revive one.
    ended: Mutex<HashMap<String, i64>>,
    /// Per account: sessions created before this ended.
    users_ended: Mutex<HashMap<String, i64>>,
    /// When an unknown session id last made this node read the set.
    last_miss_refresh: Mutex<Option<Instant>>,
    /// Other nodes write the set too: an unknown session id may be theirs (read the set
    /// again). A lone node's own file holds nothing it does not know.
    others_write: bool,
    last_forget: Mutex<Option<Instant>>,
}

pub struct SessionStore {
    sessions: Mutex<HashMap<String, Kept>>,
    idle_us: i64,
    lifetime_us: i64,
    sharing: Option<Sharing>,
}

fn user_key(user_id: &str) -> String {
    format!("user:{user_id}")
}

impl SessionStore {
    pub fn new(idle: Duration, lifetime: Duration) -> SessionStore {
        SessionStore {
            sessions: Mutex::new(HashMap::new()),
            idle_us: idle.as_micros() as i64,
            lifetime_us: lifetime.as_micros() as i64,
            sharing: None,
        }
    }

    /// Sessions shared with other nodes through `set`; what they hold is read at once (if that
    /// fails, with a warning, by the next [`SessionStore::refresh`]).
    pub fn shared(idle: Duration, lifetime: Duration, set: Box<dyn EntrySet>, now_us: i64) -> SessionStore {
        SessionStore::kept_in(idle, lifetime, set, now_us, true)
    }

    /// Sessions a lone node keeps in `set` (its data directory's file), read once now: the
    /// sessions alive before a restart are alive after it.
    pub fn persisted(idle: Duration, lifetime: Duration, set: Box<dyn EntrySet>, now_us: i64) -> SessionStore {
        SessionStore::kept_in(idle, lifetime, set, now_us, false)
    }

    fn kept_in(
        idle: Duration,
        lifetime: Duration,
        set: Box<dyn EntrySet>,
        now_us: i64,
        others_write: bool,
    ) -> SessionStore {
        let mut store = SessionStore::new(idle, lifetime);
        store.sharing = Some(Sharing {
            set,
            // The first read starts where a session still alive may have been created.
            seen: Mutex::new(now_us - store.lifetime_us),
            pending: Mutex::default(),
            unwritten: Mutex::default(),
            ended: Mutex::default(),
            users_ended: Mutex::default(),
            last_miss_refresh: Mutex::new(None),
            last_forget: Mutex::new(None),
            others_write,
        });
        if let Err(err) = store.refresh(now_us) {
            match others_write {
                true => warn!(error = %err, "could not read the sessions the nodes share: read again later"),
                false => {
                    warn!(error = %err, "could not read the sessions kept before this start: everyone signs in again")
                }
            }
        }
        store
    }

    fn alive(&self, session: &Session, now_us: i64) -> bool {
        now_us - session.last_seen_us < self.idle_us && now_us - session.created_us < self.lifetime_us
    }

    /// A session's last use is shared at most this often (and well within the idle timeout).
    fn share_use_every(&self) -> i64 {
        SHARE_USE_EVERY_US.min(self.idle_us / 4)
    }

    /// Starts a session; the returned token is the cookie value. Always a fresh id, so a
    /// session id planted before sign-in is worthless after it (no fixation). Shared before it
    /// returns (when that fails: a warning, and the next flush tries again).
    pub fn create(&self, user_id: &str, org: &str, now_us: i64) -> (Secret, Session) {
        let token = Secret::new(secret::random_token(32));
        let session = Session {
            user_id: user_id.to_string(),
            org: org.to_string(),
            csrf: secret::random_token(32),
            created_us: now_us,
            last_seen_us: now_us,
        };
        let digest = secret::token_digest(token.expose());
        {
            let mut sessions = self.sessions.lock();
            sessions.retain(|_, kept| self.alive(&kept.session, now_us));
            sessions.insert(digest.clone(), Kept { session: session.clone(), shared_us: now_us });
        }
        if let Some(sharing) = &self.sharing {
            let entry = Entry {
                org: org.to_string(),
                key: digest.clone(),
                rank: 0,
                written: now_us,
                body: body(&Shared::Session(session.clone())),
            };
            if let Err(err) = sharing.set.put(&[entry]) {
                warn!(error = %err, "a new session could not be shared yet: other nodes do not know it until it is");
                sharing.pending.lock().insert(digest);
            }
        }
        (token, session)
    }

    /// The live session of `digest` here, touched; an expired one is removed.
    fn lookup_here(&self, digest: &str, now_us: i64) -> Option<Session> {
        let mut sessions = self.sessions.lock();
        let kept = sessions.get_mut(digest)?;
        if !self.alive(&kept.session, now_us) {
            sessions.remove(digest);
            return None;
        }
        kept.session.last_seen_us = now_us;
        if let Some(sharing) = &self.sharing {
            if now_us - kept.shared_us >= self.share_use_every() {
                sharing.pending.lock().insert(digest.to_string());
            }
        }
        Some(kept.session.clone())
    }

    /// The live session of `token`, touched; expired sessions are removed. A session id this
    /// node does not know makes it read the shared sessions first (at most every
    /// [`MISS_REFRESH_EVERY`]).
    pub fn lookup(&self, token: &str, now_us: i64) -> Option<Session> {
        let digest = secret::token_digest(token);
        if let Some(session) = self.lookup_here(&digest, now_us) {
            return Some(session);
        }
        let sharing = self.sharing.as_ref().filter(|sharing| sharing.others_write)?;
        let mut last = sharing.last_miss_refresh.lock();
        // Another request's read may have brought it meanwhile.
        if let Some(session) = self.lookup_here(&digest, now_us) {
            return Some(session);
        }
        if last.is_some_and(|at| at.elapsed() < MISS_REFRESH_EVERY) {
            return None;
        }
        *last = Some(Instant::now());
        if let Err(err) = self.refresh(now_us) {
            warn!(error = %err, "could not read the sessions the nodes share");
            return None;
        }
        drop(last);
        self.lookup_here(&digest, now_us)
    }

    /// Ends a session (signed out), on every node. Only a session this node knows is written
    /// to the shared set (a signed-in request has been looked up, so its session is known): an
    /// unknown id, such as one presented to the public sign-in call, writes nothing there.
    pub fn remove(&self, token: &str) {
        let digest = secret::token_digest(token);
        let removed = self.sessions.lock().remove(&digest);
        if let (Some(sharing), Some(kept)) = (&self.sharing, removed) {
            let now_us = signet_model::time::now_micros();
            sharing.ended.lock().insert(digest.clone(), now_us);
            let entry =
                Entry { org: kept.session.org, key: digest, rank: 1, written: now_us, body: body(&Shared::Ended) };
            self.write_now(sharing, entry);
        }
    }

    /// Ends every session of an account (disabled, deleted, password changed), on every node.
    pub fn remove_user(&self, org: &str, user_id: &str) {
        self.sessions.lock().retain(|_, kept| kept.session.user_id != user_id);
        if let Some(sharing) = &self.sharing {
            let now_us = signet_model::time::now_micros();
            let before_us = now_us + 1;
            sharing.users_ended.lock().insert(user_id.to_string(), before_us);
            let entry = Entry {
                org: org.to_string(),
                key: user_key(user_id),
                rank: 1,
                written: now_us,
                body: body(&Shared::UserEnded { before_us }),
            };
            self.write_now(sharing, entry);
        }
    }

    /// Writes an ending now; kept for the next flush when the set cannot be reached.
    fn write_now(&self, sharing: &Sharing, entry: Entry) {
        if let Err(err) = sharing.set.put(std::slice::from_ref(&entry)) {
            warn!(error = %err, "the end of a session could not be shared yet: other nodes accept it until it is");
            sharing.unwritten.lock().push(entry);
        }
    }

    /// Reads what the other nodes wrote since the last read (nothing without sharing); returns
    /// whether it changed a session here.
    pub fn refresh(&self, now_us: i64) -> std::io::Result<bool> {
        let Some(sharing) = &self.sharing else { return Ok(false) };
        let after = *sharing.seen.lock() - SHARED_SKEW_US;
        let entries = sharing.set.since(after)?;
        let mut changed = false;
        {
            let mut sessions = self.sessions.lock();
            let mut ended = sharing.ended.lock();
            let mut users_ended = sharing.users_ended.lock();
            for entry in &entries {
                let Ok(shared) = serde_json::from_str::<Shared>(&entry.body) else {
                    warn!(org = %entry.org, "a shared session entry does not parse: skipped");
                    continue;
                };
                match shared {
                    Shared::Session(session) => {
                        let gone = ended.contains_key(&entry.key)
                            || users_ended.get(&session.user_id).is_some_and(|before| session.created_us < *before);
                        if gone || !self.alive(&session, now_us) {
                            continue;
                        }
                        match sessions.get_mut(&entry.key) {
                            Some(kept) => {
                                if session.last_seen_us > kept.session.last_seen_us {
                                    kept.session.last_seen_us = session.last_seen_us;
                                }
                                kept.shared_us = kept.shared_us.max(session.last_seen_us);
                            }
                            None => {
                                let shared_us = session.last_seen_us;
                                sessions.insert(entry.key.clone(), Kept { session, shared_us });
                                changed = true;
                            }
                        }
                    }
                    Shared::Ended => {
                        changed |= sessions.remove(&entry.key).is_some();
                        ended.insert(entry.key.clone(), entry.written);
                    }
                    Shared::UserEnded { before_us } => {
                        let Some(user_id) = entry.key.strip_prefix("user:") else { continue };
                        let before = users_ended.entry(user_id.to_string()).or_insert(before_us);
                        *before = (*before).max(before_us);
                        let count = sessions.len();
                        sessions
                            .retain(|_, kept| kept.session.user_id != user_id || kept.session.created_us >= before_us);
                        changed |= sessions.len() != count;
                    }
                }
            }
            sessions.retain(|_, kept| self.alive(&kept.session, now_us));
            // Older endings no longer matter: their sessions are past their lifetime.
            let horizon = now_us - self.lifetime_us - 2 * SHARED_SKEW_US;
            ended.retain(|_, at| *at > horizon);
            users_ended.retain(|_, before| *before > horizon);
        }
        if let Some(newest) = entries.iter().map(|e| e.written).max() {
            let mut seen = sharing.seen.lock();
            *seen = (*seen).max(newest);
        }
        Ok(changed)
    }

    /// Writes what is due to the shared set: sessions' last uses (at most once a minute each),
    /// and what could not be written before; deletes the entries of sessions that have ended
    /// anyway (hourly). Nothing without sharing.
    pub fn flush(&self, now_us: i64) -> std::io::Result<()> {
        let Some(sharing) = &self.sharing else { return Ok(()) };
        let mut entries = std::mem::take(&mut *sharing.unwritten.lock());
        let digests = std::mem::take(&mut *sharing.pending.lock());
        {
            let mut sessions = self.sessions.lock();
            for digest in &digests {
                let Some(kept) = sessions.get_mut(digest) else { continue };
                kept.shared_us = kept.session.last_seen_us;
                entries.push(Entry {
                    org: kept.session.org.clone(),
                    key: digest.clone(),
                    rank: 0,
                    written: now_us,
                    body: body(&Shared::Session(kept.session.clone())),
                });
            }
        }
        if !entries.is_empty() {
            if let Err(err) = sharing.set.put(&entries) {
                let endings = entries.into_iter().filter(|e| e.rank > 0);
                sharing.unwritten.lock().extend(endings);
                sharing.pending.lock().extend(digests);
                return Err(err);
            }
        }
        let mut last_forget = sharing.last_forget.lock();
        if last_forget.is_none_or(|at| at.elapsed() >= FORGET_EVERY) {
            *last_forget = Some(Instant::now());
            sharing.set.forget_before(now_us - self.lifetime_us - 2 * SHARED_SKEW_US)?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn body(shared: &Shared) -> String {
    serde_json::to_string(shared).expect("a session entry serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::memory::MemorySet;
    use std::time::Duration;

    const MIN: i64 = 60_000_000;

    #[test]
    fn sessions_expire_when_idle_and_at_their_lifetime() {
        let store = SessionStore::new(Duration::from_secs(600), Duration::from_secs(3600));
        let (token, session) = store.create("u1", "default", 0);
        assert_eq!(store.lookup(token.expose(), 5 * MIN).unwrap().csrf, session.csrf);
        assert!(store.lookup(token.expose(), 14 * MIN).is_some(), "touched at 5 min, idle limit 10");
        assert!(store.lookup(token.expose(), 25 * MIN).is_none(), "idle for 11 minutes");

        let (token, _) = store.create("u1", "default", 0);
        for minute in (5..60).step_by(5) {
            assert!(store.lookup(token.expose(), minute * MIN).is_some());
        }
        assert!(store.lookup(token.expose(), 60 * MIN).is_none(), "absolute lifetime reached");
    }

    #[test]
    fn ids_are_fresh_and_removal_is_immediate() {
        let store = SessionStore::new(Duration::from_secs(600), Duration::from_secs(3600));
        let (a, sa) = store.create("u1", "default", 0);
        let (b, sb) = store.create("u1", "default", 0);
        assert_ne!(a, b);
        assert_ne!(sa.csrf, sb.csrf);
        store.remove(a.expose());
        assert!(store.lookup(a.expose(), 1).is_none());
        assert!(store.lookup(b.expose(), 1).is_some());
        store.remove_user("default", "u1");
        assert!(store.lookup(b.expose(), 2).is_none());
        assert!(store.is_empty());
    }

    /// Two nodes on one set, started at `NOW` (idle limit 30 minutes, lifetime 12 hours).
    fn two_nodes() -> (MemorySet, i64, SessionStore, SessionStore) {
        let set = MemorySet::default();
        let node = || {
            SessionStore::shared(Duration::from_secs(1800), Duration::from_secs(12 * 3600), Box::new(set.clone()), NOW)
        };
        let (one, two) = (node(), node());
        (set, NOW, one, two)
    }

    const NOW: i64 = 1_000 * MIN;

    fn wait_out_miss_limit() {
        std::thread::sleep(MISS_REFRESH_EVERY + Duration::from_millis(20));
    }

    #[test]
    fn a_session_made_on_one_node_works_on_the_other_at_once_and_ends_on_both() {
        let (set, now, one, two) = two_nodes();
        let (token, session) = one.create("u1", "org-a", now);
        let seen = two.lookup(token.expose(), now + 1).expect("read from the set on a miss");
        assert_eq!(
            (seen.user_id.as_str(), seen.org.as_str(), seen.csrf.as_str()),
            ("u1", "org-a", session.csrf.as_str())
        );
        assert!(set.entries.lock().iter().all(|e| !e.body.contains(token.expose())), "only the id's digest is shared");

        // Signed out on node 2: node 1 stops accepting it once it has read the set.
        two.remove(token.expose());
        assert!(two.lookup(token.expose(), now + 2).is_none());
        assert!(one.lookup(token.expose(), now + 2).is_some(), "not read yet");
        assert!(one.refresh(now + 3).unwrap());
        assert!(one.lookup(token.expose(), now + 4).is_none());
        // Reading the session's own entry again (within the skew window) does not revive it.
        one.refresh(now + 5).unwrap();
        wait_out_miss_limit();
        assert!(one.lookup(token.expose(), now + 6).is_none());
        assert!(two.lookup(token.expose(), now + 6).is_none());
    }

    #[test]
    fn ending_an_accounts_sessions_reaches_every_node_and_spares_later_ones() {
        let (_, now, one, two) = two_nodes();
        let (a, _) = one.create("u1", "org-a", now);
        let (b, _) = two.create("u1", "org-a", now);
        let (other, _) = two.create("u2", "org-a", now);
        one.refresh(now).unwrap();
        assert!(one.lookup(b.expose(), now + 1).is_some());
        // The password changed on node 1.
        std::thread::sleep(Duration::from_millis(2));
        let changed = signet_model::time::now_micros();
        one.remove_user("org-a", "u1");
        assert!(one.lookup(a.expose(), now + 2).is_none() && one.lookup(b.expose(), now + 2).is_none());
        two.refresh(now + 3).unwrap();
        assert!(two.lookup(b.expose(), now + 4).is_none(), "node 2's own session of the account ended too");
        assert!(two.lookup(other.expose(), now + 4).is_some(), "another account's session stays");
        // A sign-in after the change is a new session that works everywhere.
        let (later, _) = two.create("u1", "org-a", changed + 1_000);
        wait_out_miss_limit();
        assert!(one.lookup(later.expose(), changed + 2_000).is_some());
    }

    #[test]
    fn last_use_is_shared_at_most_once_a_minute_and_keeps_the_session_alive_elsewhere() {
        let (set, now, one, two) = two_nodes();
        let (token, _) = one.create("u1", "org-a", now);
        let written = || set.entries.lock().len();
        assert_eq!(written(), 1);
        // Used on node 1 every 10 minutes for 50 minutes; idle limit 30 minutes.
        for minute in (10..=50).step_by(10) {
            assert!(one.lookup(token.expose(), now + minute * MIN).is_some());
            one.lookup(token.expose(), now + minute * MIN + 1).unwrap();
            one.flush(now + minute * MIN + 2).unwrap();
        }
        assert_eq!(written(), 6, "one write per use a minute or more after the last shared one");
        one.flush(now + 50 * MIN + 3).unwrap();
        assert_eq!(written(), 6, "nothing new to write");
        // Node 2 never saw it used, but the shared last use keeps it alive there.
        two.refresh(now + 55 * MIN).unwrap();
        assert!(two.lookup(token.expose(), now + 55 * MIN).is_some());
        assert!(two.lookup(token.expose(), now + 90 * MIN).is_none(), "idle for 35 minutes");
    }

    #[test]
    fn an_unreachable_set_keeps_sessions_working_here_and_writes_them_later() {
        let (set, now, one, two) = two_nodes();
        set.down.store(true, std::sync::atomic::Ordering::SeqCst);
        let (token, _) = one.create("u1", "org-a", now);
        let (ended, _) = one.create("u1", "org-a", now);
        assert!(one.lookup(token.expose(), now + 1).is_some(), "works on the node that made it");
        assert!(two.lookup(token.expose(), now + 1).is_none(), "the other node cannot know it");
        one.remove(ended.expose());
        assert!(one.flush(now + 2).is_err());
        set.down.store(false, std::sync::atomic::Ordering::SeqCst);
        one.flush(now + 3).unwrap();
        wait_out_miss_limit();
        assert!(two.lookup(token.expose(), now + 4).is_some(), "written by the next flush");
        wait_out_miss_limit();
        assert!(two.lookup(ended.expose(), now + 4).is_none(), "its end was written too");
    }

    #[test]
    fn unknown_ids_read_the_set_at_most_every_interval() {
        let (_, now, one, two) = two_nodes();
        assert!(two.lookup("forged", now).is_none());
        // Made on node 1 right after node 2's read for an unknown id: not read again yet.
        let (token, _) = one.create("u1", "org-a", now);
        assert!(two.lookup(token.expose(), now + 1).is_none(), "within the interval: no second read");
        wait_out_miss_limit();
        assert!(two.lookup(token.expose(), now + 2).is_some());
    }

    #[test]
    fn an_unknown_session_id_writes_nothing_to_the_set() {
        let (set, _, one, _) = two_nodes();
        one.remove("presented-at-sign-in");
        assert!(set.entries.lock().is_empty());
    }

    #[test]
    fn old_entries_are_deleted_from_the_set() {
        let (set, now, one, _) = two_nodes();
        one.create("u1", "org-a", now);
        let later = now + 13 * 60 * MIN;
        one.create("u1", "org-a", later);
        one.flush(later).unwrap();
        let kept: Vec<i64> = set.entries.lock().iter().map(|e| e.written).collect();
        assert_eq!(kept, vec![later], "the session past its 12-hour lifetime is forgotten");
    }

    fn kept_in_file(dir: &std::path::Path, now_us: i64) -> SessionStore {
        let set = crate::document::FileEntrySet::in_data_dir(dir, "auth/sessions.jsonl");
        SessionStore::persisted(Duration::from_secs(600), Duration::from_secs(3600), Box::new(set), now_us)
    }

    #[test]
    fn a_lone_nodes_sessions_survive_a_restart_and_so_do_their_ends() {
        let dir = tempfile::tempdir().unwrap();
        let t = signet_model::time::now_micros();
        let before = kept_in_file(dir.path(), t);
        let (kept, session) = before.create("u1", "default", t);
        let (signed_out, _) = before.create("u1", "default", t);
        let (of_ended_account, _) = before.create("u2", "default", t);
        let (touched, _) = before.create("u3", "default", t);
        before.remove(signed_out.expose());
        before.remove_user("default", "u2");
        // Used 8 minutes in: the last use reaches the file with the next flush.
        assert!(before.lookup(touched.expose(), t + 8 * MIN).is_some());
        before.flush(t + 8 * MIN).unwrap();
        drop(before);

        let after = kept_in_file(dir.path(), t + MIN);
        let found = after.lookup(kept.expose(), t + MIN).expect("a session alive before the restart is alive after it");
        assert_eq!((found.csrf, found.user_id), (session.csrf, session.user_id));
        assert!(after.lookup(signed_out.expose(), t + MIN).is_none(), "signed out before the restart");
        assert!(after.lookup(of_ended_account.expose(), t + MIN).is_none(), "its account's sessions ended");
        drop(after);
        // 15 minutes in, idle limit 10: alive only because the use at 8 minutes was kept.
        let later = kept_in_file(dir.path(), t + 15 * MIN);
        assert!(later.lookup(touched.expose(), t + 15 * MIN).is_some(), "its last use was kept");
        assert!(later.lookup(kept.expose(), t + 15 * MIN).is_none(), "idle since its start");
        // Only the ids' digests are in the file, never the ids.
        let text = std::fs::read_to_string(dir.path().join("auth/sessions.jsonl")).unwrap();
        assert!(!text.contains(kept.expose()) && text.contains(&secret::token_digest(kept.expose())));
    }

    #[test]
    fn a_lone_node_does_not_read_its_file_for_unknown_ids() {
        let dir = tempfile::tempdir().unwrap();
        let t = signet_model::time::now_micros();
        let store = kept_in_file(dir.path(), t);
        // Written behind the store's back (as no one does): an unknown id does not re-read.
        let (token, _) = kept_in_file(dir.path(), t).create("u1", "default", t);
        assert!(store.lookup(token.expose(), t).is_none());
    }
}
