//! Password sign-in: per-address rate limiting, per-account lockout after repeated wrong
//! passwords, and the Entra error code of every outcome (so that Signet's own sign-ins read
//! like any other sign-in log).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::directory::{Directory, User};
use crate::secret::{self, Secret};

/// Entra error codes of the outcomes.
pub mod codes {
    pub const SUCCESS: i64 = 0;
    pub const USER_NOT_FOUND: i64 = 50034;
    pub const LOCKED: i64 = 50053;
    pub const NO_PASSWORD: i64 = 50056;
    pub const DISABLED: i64 = 50057;
    pub const WRONG_PASSWORD: i64 = 50126;
}

#[derive(Clone, Debug)]
pub struct LoginPolicy {
    /// Consecutive wrong passwords before the account is locked.
    pub max_failures: u32,
    /// How long a lockout lasts.
    pub lockout: Duration,
    /// Attempts one address may make per window before it gets 429.
    pub attempts_per_address: u32,
    pub address_window: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            max_failures: 5,
            lockout: Duration::from_secs(15 * 60),
            attempts_per_address: 20,
            address_window: Duration::from_secs(60),
        }
    }
}

/// The outcome of one attempt.
#[derive(Debug)]
pub enum LoginOutcome {
    Success(User),
    /// The attempt failed with an Entra error code; `user` is the account when it exists.
    Failure {
        code: i64,
        user: Option<User>,
        reason: &'static str,
    },
    /// Too many attempts from the address: retry after this many seconds.
    Throttled {
        retry_after_secs: u64,
    },
}

impl LoginOutcome {
    pub fn error_code(&self) -> Option<i64> {
        match self {
            LoginOutcome::Success(_) => Some(codes::SUCCESS),
            LoginOutcome::Failure { code, .. } => Some(*code),
            LoginOutcome::Throttled { .. } => None,
        }
    }
}

pub struct LoginGuard {
    directory: Arc<Directory>,
    policy: LoginPolicy,
    /// Consecutive failures per account id.
    failures: Mutex<HashMap<String, u32>>,
    /// Attempts per address: (window start, count).
    addresses: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl LoginGuard {
    pub fn new(directory: Arc<Directory>, policy: LoginPolicy) -> LoginGuard {
        LoginGuard { directory, policy, failures: Mutex::default(), addresses: Mutex::default() }
    }

    pub fn policy(&self) -> &LoginPolicy {
        &self.policy
    }

    /// Counts an attempt from `address`; `Some(seconds)` when it is over the limit and must wait.
    pub fn throttle(&self, address: IpAddr, now_us: i64) -> Option<u64> {
        let window_us = self.policy.address_window.as_micros() as i64;
        let mut addresses = self.addresses.lock();
        if addresses.len() > 100_000 {
            addresses.retain(|_, (start, _)| now_us - *start < window_us);
        }
        let entry = addresses.entry(address).or_insert((now_us, 0));
        if now_us - entry.0 >= window_us {
            *entry = (now_us, 0);
        }
        entry.1 += 1;
        if entry.1 > self.policy.attempts_per_address {
            let remaining_us = window_us - (now_us - entry.0);
            return Some((remaining_us as u64).div_ceil(1_000_000).max(1));
        }
        None
    }

    /// Checks one attempt. Blocking: Argon2id takes tens of milliseconds by design, so call it
    /// from a blocking thread. Unknown names cost as much as wrong passwords.
    pub fn attempt(&self, username: &str, password: &Secret, address: IpAddr, now_us: i64) -> LoginOutcome {
        if let Some(retry_after_secs) = self.throttle(address, now_us) {
            return LoginOutcome::Throttled { retry_after_secs };
        }
        let Some(user) = self.directory.user_by_name(username) else {
            secret::verify_password(password, secret::dummy_hash());
            return LoginOutcome::Failure { code: codes::USER_NOT_FOUND, user: None, reason: "no such account" };
        };
        if user.disabled {
            return LoginOutcome::Failure {
                code: codes::DISABLED,
                user: Some(user),
                reason: "the account is disabled",
            };
        }
        if user.locked_until_us.is_some_and(|until| until > now_us) {
            return LoginOutcome::Failure { code: codes::LOCKED, user: Some(user), reason: "the account is locked" };
        }
        let Some(hash) = user.password_hash() else {
            return LoginOutcome::Failure {
                code: codes::NO_PASSWORD,
                user: Some(user),
                reason: "the account has no password",
            };
        };
        if !secret::verify_password(password, hash) {
            self.record_failure(&user, now_us);
            return LoginOutcome::Failure { code: codes::WRONG_PASSWORD, user: Some(user), reason: "wrong password" };
        }
        self.failures.lock().remove(&user.id);
        if user.locked_until_us.is_some() {
            if let Err(err) = self.directory.set_locked_until(&user.id, None) {
                tracing::warn!(error = %err, "could not clear an expired lockout");
            }
        }
        LoginOutcome::Success(user)
    }

    fn record_failure(&self, user: &User, now_us: i64) {
        let lock = {
            let mut failures = self.failures.lock();
            let count = failures.entry(user.id.clone()).or_insert(0);
            *count += 1;
            let lock = *count >= self.policy.max_failures;
            if lock {
                failures.remove(&user.id);
            }
            lock
        };
        if lock {
            let until = now_us + self.policy.lockout.as_micros() as i64;
            tracing::warn!(user = %user.username, "account locked after repeated wrong passwords");
            if let Err(err) = self.directory.set_locked_until(&user.id, Some(until)) {
                tracing::error!(error = %err, "could not persist an account lockout");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{NewUser, UserPatch};
    use crate::role::Role;

    const SEC: i64 = 1_000_000;

    fn setup(policy: LoginPolicy) -> (tempfile::TempDir, Arc<Directory>, LoginGuard) {
        let dir = tempfile::tempdir().unwrap();
        let directory = Arc::new(Directory::open(dir.path(), "default").unwrap());
        directory
            .create_user(
                "default",
                NewUser {
                    username: "ann@example.com".into(),
                    display_name: None,
                    role: Some(Role::GlobalAdministrator),
                    password: Some(Secret::new("correct horse battery")),
                },
            )
            .unwrap();
        let guard = LoginGuard::new(directory.clone(), policy);
        (dir, directory, guard)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn outcomes_carry_entra_codes() {
        let (_dir, directory, guard) = setup(LoginPolicy::default());
        let good = Secret::new("correct horse battery");
        let bad = Secret::new("wrong horse battery");
        assert_eq!(guard.attempt("ANN@example.com", &good, ip(1), 0).error_code(), Some(0));
        assert_eq!(guard.attempt("ann@example.com", &bad, ip(1), 0).error_code(), Some(50126));
        assert_eq!(guard.attempt("bob@example.com", &good, ip(1), 0).error_code(), Some(50034));
        let user = directory.user_by_name("ann@example.com").unwrap();
        directory
            .create_user(
                "default",
                NewUser {
                    username: "b@x".into(),
                    display_name: None,
                    role: Some(Role::GlobalAdministrator),
                    password: Some(good.clone()),
                },
            )
            .unwrap();
        directory.update_user("default", &user.id, UserPatch { disabled: Some(true), ..UserPatch::default() }).unwrap();
        assert_eq!(guard.attempt("ann@example.com", &good, ip(1), 0).error_code(), Some(50057));
    }

    #[test]
    fn repeated_failures_lock_the_account_until_the_lockout_ends() {
        let policy = LoginPolicy { max_failures: 3, lockout: Duration::from_secs(60), ..LoginPolicy::default() };
        let (_dir, directory, guard) = setup(policy);
        let good = Secret::new("correct horse battery");
        let bad = Secret::new("wrong horse battery");
        for _ in 0..3 {
            assert_eq!(guard.attempt("ann@example.com", &bad, ip(2), 0).error_code(), Some(50126));
        }
        assert_eq!(guard.attempt("ann@example.com", &good, ip(2), SEC).error_code(), Some(50053));
        assert!(directory.user_by_name("ann@example.com").unwrap().locked_until_us.is_some(), "lockout persisted");
        assert_eq!(guard.attempt("ann@example.com", &good, ip(2), 61 * SEC).error_code(), Some(0));
        assert!(directory.user_by_name("ann@example.com").unwrap().locked_until_us.is_none());
    }

    #[test]
    fn one_address_is_throttled_others_are_not() {
        let policy = LoginPolicy { attempts_per_address: 3, ..LoginPolicy::default() };
        let (_dir, _directory, guard) = setup(policy);
        let bad = Secret::new("wrong horse battery");
        for _ in 0..3 {
            assert!(guard.attempt("nobody@example.com", &bad, ip(3), 0).error_code().is_some());
        }
        match guard.attempt("nobody@example.com", &bad, ip(3), 10 * SEC) {
            LoginOutcome::Throttled { retry_after_secs } => assert_eq!(retry_after_secs, 50),
            other => panic!("expected throttling, got {other:?}"),
        }
        assert!(guard.attempt("nobody@example.com", &bad, ip(4), 10 * SEC).error_code().is_some());
        assert!(guard.attempt("nobody@example.com", &bad, ip(3), 61 * SEC).error_code().is_some(), "new window");
    }
}
