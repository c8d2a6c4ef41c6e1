//! Console sessions: random 256-bit ids kept only as SHA-256 digests, each with its own CSRF
//! token, an idle timeout and an absolute lifetime. Sessions live in memory: a restart signs
//! everyone out, which is the safe direction.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::secret::{self, Secret};

#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: String,
    pub org: String,
    /// Sent back by the console in `X-CSRF-Token` on every state-changing request.
    pub csrf: String,
    pub created_us: i64,
    pub last_seen_us: i64,
}

pub struct SessionStore {
    sessions: Mutex<HashMap<String, Session>>,
    idle_us: i64,
    lifetime_us: i64,
}

impl SessionStore {
    pub fn new(idle: std::time::Duration, lifetime: std::time::Duration) -> SessionStore {
        SessionStore {
            sessions: Mutex::new(HashMap::new()),
            idle_us: idle.as_micros() as i64,
            lifetime_us: lifetime.as_micros() as i64,
        }
    }

    fn alive(&self, session: &Session, now_us: i64) -> bool {
        now_us - session.last_seen_us < self.idle_us && now_us - session.created_us < self.lifetime_us
    }

    /// Starts a session; the returned token is the cookie value. Always a fresh id, so a
    /// session id planted before sign-in is worthless after it (no fixation).
    pub fn create(&self, user_id: &str, org: &str, now_us: i64) -> (Secret, Session) {
        let token = Secret::new(secret::random_token(32));
        let session = Session {
            user_id: user_id.to_string(),
            org: org.to_string(),
            csrf: secret::random_token(32),
            created_us: now_us,
            last_seen_us: now_us,
        };
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, s| self.alive(s, now_us));
        sessions.insert(secret::token_digest(token.expose()), session.clone());
        (token, session)
    }

    /// The live session of `token`, touched; expired sessions are removed.
    pub fn lookup(&self, token: &str, now_us: i64) -> Option<Session> {
        let digest = secret::token_digest(token);
        let mut sessions = self.sessions.lock();
        let session = sessions.get_mut(&digest)?;
        if !self.alive(session, now_us) {
            sessions.remove(&digest);
            return None;
        }
        session.last_seen_us = now_us;
        Some(session.clone())
    }

    pub fn remove(&self, token: &str) {
        self.sessions.lock().remove(&secret::token_digest(token));
    }

    /// Ends every session of an account (disabled, deleted, password changed).
    pub fn remove_user(&self, user_id: &str) {
        self.sessions.lock().retain(|_, s| s.user_id != user_id);
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        store.remove_user("u1");
        assert!(store.lookup(b.expose(), 2).is_none());
        assert!(store.is_empty());
    }
}
