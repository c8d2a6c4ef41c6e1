//! OpenID Connect sign-ins in progress: what the callback needs of the sign-in it finishes
//! (state, nonce, PKCE verifier, browser binding), kept by the node that started it.
//!
//! The nodes of a ClickHouse deployment share them through an [`EntrySet`]
//! ([`PENDING_ENTRIES`]), so the provider may send the browser back to any node: a start is
//! written before the browser is sent to the provider, a callback this node did not start
//! reads the set (only when the browser brings its binding cookie; callbacks are throttled as
//! sign-in attempts), and a finished sign-in is written too, so that no node finishes it twice.
//! The set holds the PKCE verifier and the nonce (for at most [`PENDING_LIFETIME_SECS`]): as
//! with the rest of `signet_entries`, ClickHouse must be Signet's alone.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::document::{Entry, EntrySet, FORGET_EVERY, SHARED_SKEW_US};
use crate::oidc::{pkce_challenge, MAX_PENDING, PENDING_LIFETIME_SECS};
use crate::secret::{self, Secret};

/// The entry set where the nodes of a deployment share sign-ins in progress.
pub const PENDING_ENTRIES: &str = "oidc-pending";

/// A sign-in started at a provider and not yet finished.
#[derive(Clone, Debug)]
pub struct Pending {
    pub provider: String,
    pub nonce: String,
    pub verifier: Secret,
    /// Digest of the browser-binding cookie's value.
    binding_digest: String,
    pub created_us: i64,
}

/// A [`Pending`] as the shared set holds it (an entry of rank 0; a callback that took it
/// writes an entry of rank 1 with the same key).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shared {
    provider: String,
    nonce: String,
    verifier: String,
    binding_digest: String,
    created_us: i64,
}

/// What the browser is sent to the provider with.
#[derive(Debug)]
pub struct Started {
    pub state: String,
    /// The value of the short-lived cookie that ties the callback to this browser.
    pub binding: Secret,
    pub nonce: String,
    pub code_challenge: String,
}

/// Why a callback does not match a started sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingError {
    /// No sign-in with this state (never started, already finished, or dropped).
    Unknown,
    /// Started more than [`PENDING_LIFETIME_SECS`] ago.
    Expired,
    /// Started in another browser (the binding cookie is missing or different): a link
    /// planted by someone else, so the sign-in is abandoned.
    OtherBrowser,
}

impl PendingError {
    pub fn reason(self) -> &'static str {
        match self {
            PendingError::Unknown => "the sign-in is unknown or was already completed; start again",
            PendingError::Expired => "the sign-in took too long at the identity provider; start again",
            PendingError::OtherBrowser => "the sign-in was started in another browser; start again",
        }
    }
}

/// Sign-ins in progress, keyed by the digest of their `state` (memory only: a restart of a
/// lone node asks users to start again), shared through a set when one is given.
#[derive(Default)]
pub struct PendingLogins {
    pending: Mutex<HashMap<String, Pending>>,
    shared: Option<Box<dyn EntrySet>>,
    last_forget: Mutex<Option<Instant>>,
}

impl PendingLogins {
    /// Sign-ins in progress shared with other nodes through `set`.
    pub fn shared(set: Box<dyn EntrySet>) -> PendingLogins {
        PendingLogins { pending: Mutex::default(), shared: Some(set), last_forget: Mutex::new(None) }
    }

    pub fn start(&self, provider: &str, now_us: i64) -> Started {
        let started = Started {
            state: secret::random_token(32),
            binding: Secret::new(secret::random_token(32)),
            nonce: secret::random_token(32),
            code_challenge: String::new(),
        };
        let verifier = Secret::new(secret::random_token(48));
        let started = Started { code_challenge: pkce_challenge(verifier.expose()), ..started };
        let entry = Pending {
            provider: provider.to_string(),
            nonce: started.nonce.clone(),
            verifier,
            binding_digest: secret::token_digest(started.binding.expose()),
            created_us: now_us,
        };
        let digest = secret::token_digest(&started.state);
        if let Some(set) = &self.shared {
            let shared = Shared {
                provider: entry.provider.clone(),
                nonce: entry.nonce.clone(),
                verifier: entry.verifier.expose().to_string(),
                binding_digest: entry.binding_digest.clone(),
                created_us: now_us,
            };
            let body = serde_json::to_string(&shared).expect("a pending sign-in serialises");
            let row = Entry { org: String::new(), key: digest.clone(), rank: 0, written: now_us, body };
            if let Err(err) = set.put(&[row]) {
                warn!(error = %err, "a sign-in in progress could not be shared: the provider must send it back to this node");
            }
        }
        let mut pending = self.pending.lock();
        let lifetime_us = PENDING_LIFETIME_SECS * 1_000_000;
        if pending.len() >= MAX_PENDING {
            pending.retain(|_, p| now_us - p.created_us < lifetime_us);
        }
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending.iter().min_by_key(|(_, p)| p.created_us).map(|(k, _)| k.clone()) {
                pending.remove(&oldest);
            }
        }
        pending.insert(digest, entry);
        started
    }

    /// Takes the sign-in of `state` (once: a second callback with the same state fails, on
    /// any node). `binding` is the browser's binding cookie.
    pub fn finish(&self, state: &str, binding: Option<&str>, now_us: i64) -> Result<Pending, PendingError> {
        let digest = secret::token_digest(state);
        let here = self.pending.lock().remove(&digest);
        let pending = match &self.shared {
            None => here.ok_or(PendingError::Unknown)?,
            // Another node's sign-in is looked for only for a browser with a binding cookie.
            Some(_) if here.is_none() && binding.is_none() => return Err(PendingError::Unknown),
            Some(set) => {
                let pending = Self::take_from_set(set.as_ref(), &digest, here, now_us)?;
                let done = Entry { org: String::new(), key: digest, rank: 1, written: now_us, body: "{}".into() };
                if let Err(err) = set.put(&[done]) {
                    warn!(error = %err, "a finished sign-in could not be marked so for the other nodes");
                }
                pending
            }
        };
        if now_us - pending.created_us >= PENDING_LIFETIME_SECS * 1_000_000 {
            return Err(PendingError::Expired);
        }
        let sent = binding.map(secret::token_digest).unwrap_or_default();
        if !secret::digests_equal(&sent, &pending.binding_digest) {
            return Err(PendingError::OtherBrowser);
        }
        Ok(pending)
    }

    /// The sign-in `digest` as the shared set has it (this node's own, `here`, or another
    /// node's), unless a node finished it already. When the set cannot be read, this node's
    /// own is taken (the provider's code is single-use anyway).
    fn take_from_set(
        set: &dyn EntrySet,
        digest: &str,
        here: Option<Pending>,
        now_us: i64,
    ) -> Result<Pending, PendingError> {
        let after = now_us - PENDING_LIFETIME_SECS * 1_000_000 - SHARED_SKEW_US;
        let entries = match set.since(after) {
            Ok(entries) => entries,
            Err(err) => {
                warn!(error = %err, "could not read the sign-ins in progress the nodes share");
                return here.ok_or(PendingError::Unknown);
            }
        };
        let mine: Vec<&Entry> = entries.iter().filter(|e| e.key == digest).collect();
        if mine.iter().any(|e| e.rank > 0) {
            return Err(PendingError::Unknown);
        }
        if let Some(pending) = here {
            return Ok(pending);
        }
        let shared: Shared =
            mine.first().and_then(|e| serde_json::from_str(&e.body).ok()).ok_or(PendingError::Unknown)?;
        Ok(Pending {
            provider: shared.provider,
            nonce: shared.nonce,
            verifier: Secret::new(shared.verifier),
            binding_digest: shared.binding_digest,
            created_us: shared.created_us,
        })
    }

    /// Deletes the shared set's entries of sign-ins that are over anyway, at most hourly
    /// (nothing without sharing).
    pub fn forget_old(&self, now_us: i64) -> std::io::Result<()> {
        let Some(set) = &self.shared else { return Ok(()) };
        let mut last = self.last_forget.lock();
        if last.is_some_and(|at| at.elapsed() < FORGET_EVERY) {
            return Ok(());
        }
        *last = Some(Instant::now());
        set.forget_before(now_us - PENDING_LIFETIME_SECS * 1_000_000 - 2 * SHARED_SKEW_US)
    }

    pub fn len(&self) -> usize {
        self.pending.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::memory::MemorySet;

    #[test]
    fn a_pending_sign_in_finishes_once_in_its_own_browser() {
        let logins = PendingLogins::default();
        let started = logins.start("okta", 0);
        assert_eq!(
            started.code_challenge,
            pkce_challenge(logins.pending.lock().values().next().unwrap().verifier.expose())
        );
        assert_eq!(logins.finish(&started.state, Some("another browser"), 1).unwrap_err(), PendingError::OtherBrowser);
        assert_eq!(
            logins.finish(&started.state, Some(started.binding.expose()), 1).unwrap_err(),
            PendingError::Unknown,
            "a failed attempt ends the sign-in"
        );

        let started = logins.start("okta", 0);
        let pending = logins.finish(&started.state, Some(started.binding.expose()), 1).unwrap();
        assert_eq!(pending.nonce, started.nonce);
        assert_eq!(
            logins.finish(&started.state, Some(started.binding.expose()), 2).unwrap_err(),
            PendingError::Unknown,
            "no second use"
        );

        let started = logins.start("okta", 0);
        let late = PENDING_LIFETIME_SECS * 1_000_000;
        assert_eq!(
            logins.finish(&started.state, Some(started.binding.expose()), late).unwrap_err(),
            PendingError::Expired
        );
        assert!(logins.is_empty());
    }

    #[test]
    fn pending_sign_ins_are_bounded() {
        let logins = PendingLogins::default();
        let first = logins.start("okta", 0);
        for i in 1..=MAX_PENDING as i64 {
            logins.start("okta", i);
        }
        assert_eq!(logins.len(), MAX_PENDING);
        assert_eq!(logins.finish(&first.state, Some(first.binding.expose()), 10).unwrap_err(), PendingError::Unknown);
    }

    #[test]
    fn a_sign_in_started_on_one_node_finishes_on_another_once() {
        let set = MemorySet::default();
        let (one, two, three) = (
            PendingLogins::shared(Box::new(set.clone())),
            PendingLogins::shared(Box::new(set.clone())),
            PendingLogins::shared(Box::new(set.clone())),
        );
        let started = one.start("entra", 1_000);
        let binding = started.binding.expose();
        assert!(set.entries.lock().iter().all(|e| !e.body.contains(&started.state)), "only the state's digest");
        assert_eq!(two.finish(&started.state, None, 2_000).unwrap_err(), PendingError::Unknown, "no binding cookie");
        let pending = two.finish(&started.state, Some(binding), 2_000).expect("read from the set");
        assert_eq!((pending.provider.as_str(), pending.nonce.as_str()), ("entra", started.nonce.as_str()));
        assert_eq!(started.code_challenge, pkce_challenge(pending.verifier.expose()));
        assert_eq!(three.finish(&started.state, Some(binding), 3_000).unwrap_err(), PendingError::Unknown);
        assert_eq!(
            one.finish(&started.state, Some(binding), 3_000).unwrap_err(),
            PendingError::Unknown,
            "not even on the node that started it"
        );
        let other = one.start("entra", 4_000);
        assert!(one.finish(&other.state, Some(other.binding.expose()), 5_000).is_ok());
        assert_eq!(two.finish(&other.state, Some(other.binding.expose()), 6_000).unwrap_err(), PendingError::Unknown);
    }

    #[test]
    fn a_shared_sign_in_still_checks_its_browser_and_its_age_and_ends_at_a_failed_attempt() {
        let set = MemorySet::default();
        let (one, two) = (PendingLogins::shared(Box::new(set.clone())), PendingLogins::shared(Box::new(set.clone())));
        let started = one.start("okta", 0);
        assert_eq!(two.finish(&started.state, Some("another browser"), 1).unwrap_err(), PendingError::OtherBrowser);
        assert_eq!(
            one.finish(&started.state, Some(started.binding.expose()), 2).unwrap_err(),
            PendingError::Unknown,
            "a failed attempt on any node ends the sign-in"
        );
        let late = one.start("okta", 0);
        let after = PENDING_LIFETIME_SECS * 1_000_000;
        assert_eq!(two.finish(&late.state, Some(late.binding.expose()), after).unwrap_err(), PendingError::Expired);
        // The set cannot be read: the node that started a sign-in still finishes it.
        let alone = one.start("okta", 10);
        set.down.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(one.finish(&alone.state, Some(alone.binding.expose()), 11).is_ok());
    }
}
