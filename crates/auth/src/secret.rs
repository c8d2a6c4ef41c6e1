//! Secrets: a string type that never prints, random tokens, digests and Argon2id passwords.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{AuthError, Result};

/// A secret (password, key, session token). `Debug` and `Display` print `[redacted]`, so a
/// secret that reaches a log line or an error message by accident leaks nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself: call only where it is hashed, compared or shown once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `bytes` random bytes from the operating system's generator, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

/// `bytes` random bytes, hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    hex::encode(buffer)
}

/// A random UUID (version 4), for ids.
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// SHA-256 of a high-entropy token, hex. Keys and session ids are 256-bit random values, so a
/// fast digest is enough; passwords use Argon2id instead.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two digests in constant time.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Checks the password policy: length, not only whitespace, not the account name.
pub fn check_password_policy(password: &Secret, username: &str) -> Result<()> {
    let text = password.expose();
    if text.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::Invalid(format!("the password must have at least {MIN_PASSWORD_CHARS} characters")));
    }
    if text.trim().is_empty() || text.eq_ignore_ascii_case(username) {
        return Err(AuthError::Invalid("the password must not be blank or the account name".into()));
    }
    Ok(())
}

/// Argon2id hash in PHC string format (OWASP parameters: 19 MiB, 2 passes, 1 lane).
pub fn hash_password(password: &Secret) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Internal(format!("password hashing failed: {e}")))
}

/// Verifies a password against a PHC string. A malformed hash verifies nothing.
pub fn verify_password(password: &Secret, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.expose().as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash of no real password, verified against when the account does not exist so that a
/// wrong user name takes as long as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&Secret::new(random_token(24))).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
        assert_eq!(format!("{:?}", Some(secret)), "Some([redacted])");
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let password = Secret::new("correct horse battery");
        let phc = hash_password(&password).unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify_password(&password, &phc));
        assert!(!verify_password(&Secret::new("correct horse batterY"), &phc));
        assert!(!verify_password(&password, "not a hash"));
        assert!(!verify_password(&password, dummy_hash()));
    }

    #[test]
    fn policy_rejects_short_and_name_passwords() {
        assert!(check_password_policy(&Secret::new("short"), "a@b").is_err());
        assert!(check_password_policy(&Secret::new("admin@example.com"), "admin@example.com").is_err());
        assert!(check_password_policy(&Secret::new("            "), "a@b").is_err());
        check_password_policy(&Secret::new("a long enough passphrase"), "a@b").unwrap();
    }

    #[test]
    fn tokens_and_uuids_are_random_and_well_formed() {
        let (a, b) = (random_token(32), random_token(32));
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        let id = random_uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(digests_equal(&token_digest(&a), &token_digest(&a)));
        assert!(!digests_equal(&token_digest(&a), &token_digest(&b)));
    }
}
