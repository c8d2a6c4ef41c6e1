//! User access records, as Dynamics 365 keeps them: at most one `UserAccessviaWeb` and one
//! `UserAccessviaWebServices` record per user per interval (`UserAccessAuditingInterval`
//! hours, intervals aligned on the Unix epoch, in the event's own time). Signet decides, not
//! the client: the first record of an interval is stored, the others are not (the ingest answer
//! counts them), so a chatty client cannot flood the log.
//!
//! The decision survives restarts: a (user, access type, interval) not claimed in this process
//! is looked up in the store, which holds every acknowledged event when the server starts (the
//! log is replayed before it serves). Claims of a batch that fails to be stored are released.

use std::collections::HashMap;

use parking_lot::Mutex;
use signet_model::schema::find_column;
use signet_model::{Event, LogKind};
use signet_query::{CmpOp, Expr, ListQuery, Literal, SortOrder};
use signet_store::Engine;

use crate::audit_settings::{USER_ACCESS_VIA_WEB, USER_ACCESS_VIA_WEB_SERVICES};

const HOUR_US: i64 = 3_600_000_000;
/// Claims kept in memory at most; beyond, the oldest intervals are forgotten (and looked up in
/// the store again if they come back).
const MAX_CLAIMS: usize = 1_000_000;

/// One user's access of one type in one interval.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct AccessKey {
    org: String,
    user: String,
    /// The canonical action name (`UserAccessviaWeb` or `UserAccessviaWebServices`).
    action: &'static str,
    start_us: i64,
    length_us: i64,
}

/// The canonical user-access action of an operation name, if it is one.
pub fn user_access_action(operation: &str) -> Option<&'static str> {
    [USER_ACCESS_VIA_WEB, USER_ACCESS_VIA_WEB_SERVICES].into_iter().find(|a| a.eq_ignore_ascii_case(operation))
}

/// The key of a user-access event (`None` for other events; normalisation already refused
/// user-access records without a user).
pub fn key_of(org: &str, event: &Event, interval_hours: u32) -> Option<AccessKey> {
    // Only activities have an operation (and looking a sign-in's up by name is not free).
    if event.kind != LogKind::Activity {
        return None;
    }
    let text = |name: &str| event.cell(name).and_then(|c| c.as_str()).filter(|s| !s.trim().is_empty());
    let action = user_access_action(text("operation")?)?;
    let user = text("user_key").or_else(|| text("source_user_key"))?;
    let length_us = i64::from(interval_hours.max(1)) * HOUR_US;
    let start_us = event.time_us.div_euclid(length_us) * length_us;
    Some(AccessKey { org: org.to_string(), user: user.to_lowercase(), action, start_us, length_us })
}

#[derive(Default)]
pub struct UserAccessIndex {
    claims: Mutex<HashMap<AccessKey, ()>>,
}

impl UserAccessIndex {
    /// Whether the store already holds a record for the key (a claim of an earlier process).
    fn stored(engine: &Engine, key: &AccessKey) -> signet_store::Result<bool> {
        let column = |name: &str| find_column(LogKind::Activity, name).expect("activity column");
        let filter = Expr::and(vec![
            Expr::Compare { column: column("user_key"), op: CmpOp::Eq, value: Literal::Str(key.user.clone()) },
            Expr::Compare { column: column("operation"), op: CmpOp::Eq, value: Literal::Str(key.action.to_string()) },
            Expr::Compare { column: column("event_time"), op: CmpOp::Ge, value: Literal::Time(key.start_us) },
            Expr::Compare {
                column: column("event_time"),
                op: CmpOp::Lt,
                value: Literal::Time(key.start_us + key.length_us),
            },
        ]);
        let query = ListQuery {
            org: key.org.clone(),
            kind: LogKind::Activity,
            filter,
            order: SortOrder::Desc,
            limit: 1,
            after: None,
            columns: vec![column("id")],
        };
        Ok(!engine.store().list(&query)?.is_empty())
    }

    /// Claims the key for a record about to be stored; `false` when the interval already has
    /// its record (claimed in this process, or stored before it started).
    pub fn claim(&self, engine: &Engine, key: &AccessKey) -> signet_store::Result<bool> {
        if self.claims.lock().contains_key(key) {
            return Ok(false);
        }
        // Looked up outside the lock; two racing claims are settled by the insert below.
        let stored = Self::stored(engine, key)?;
        let mut claims = self.claims.lock();
        if claims.len() >= MAX_CLAIMS {
            let oldest = claims.keys().map(|k| k.start_us).min().unwrap_or(0);
            claims.retain(|k, _| k.start_us > oldest);
        }
        let fresh = claims.insert(key.clone(), ()).is_none();
        Ok(fresh && !stored)
    }

    /// Gives claims back (their batch was not stored).
    pub fn release(&self, keys: &[AccessKey]) {
        let mut claims = self.claims.lock();
        for key in keys {
            claims.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(operation: &str, user: &str, time: &str) -> Event {
        let body = serde_json::json!({ "Id": format!("{operation}-{user}-{time}"), "CreationTime": time, "Operation": operation, "User": user });
        signet_model::normalize(LogKind::Activity, body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn intervals_align_on_the_epoch_in_event_time() {
        let a = key_of("o", &event("UserAccessviaWeb", "Ann@X.com", "2026-11-20T08:00:00Z"), 4).unwrap();
        let b = key_of("o", &event("useraccessviaweb", "ann@x.com", "2026-11-20T11:59:59Z"), 4).unwrap();
        let c = key_of("o", &event("UserAccessviaWeb", "ann@x.com", "2026-11-20T12:00:00Z"), 4).unwrap();
        let d = key_of("o", &event("UserAccessviaWebServices", "ann@x.com", "2026-11-20T09:00:00Z"), 4).unwrap();
        assert_eq!(a, b, "same user, same type, same 4-hour interval");
        assert_ne!(a, c, "next interval");
        assert_ne!(a, d, "other access type");
        assert!(key_of("o", &event("Retrieve", "ann@x.com", "2026-11-20T08:00:00Z"), 4).is_none());
        let hourly = key_of("o", &event("UserAccessviaWeb", "ann@x.com", "2026-11-20T08:00:00Z"), 1).unwrap();
        assert_ne!(a, hourly, "the interval length is part of the key");
    }
}
