//! Signet's access control, free of HTTP and storage engines.
//!
//! # Layout
//! - [`role`]: roles, permissions and the one matrix that grants them.
//! - [`secret`]: the never-printing [`Secret`], random tokens, digests, Argon2id passwords.
//! - [`directory`]: organisations, accounts and API keys, persisted in the data directory,
//!   and the [`Principal`] a verified credential resolves to.
//! - [`document`]: the small JSON documents (accounts, settings) in a file or a shared store.
//! - [`session`]: console sessions with CSRF tokens and expiry.
//! - [`login`]: password sign-in with rate limiting, lockout and Entra error codes.
//! - [`oidc`]: OpenID Connect sign-in: provider settings, PKCE, ID token checks, role mapping.

pub mod directory;
pub mod document;
pub mod error;
pub mod login;
pub mod oidc;
pub mod pending;
pub mod role;
pub mod secret;
pub mod session;

pub use directory::{
    ApiKey, Directory, ExternalIdentity, ExternalLogin, ExternalSignIn, KeyKind, KeyView, NewUser, Organization,
    Principal, Subject, User, UserPatch, UserView,
};
pub use error::{AuthError, Result};
pub use login::{LoginGuard, LoginOutcome, LoginPolicy};
pub use role::{Grant, Permission, Role};
pub use secret::Secret;
pub use session::{Session, SessionStore};
