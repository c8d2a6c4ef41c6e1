//! Errors of the access-control layer.

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request is malformed or breaks a rule (password policy, unknown role, ...).
    #[error("{0}")]
    Invalid(String),
    /// The named thing does not exist in the caller's organisation.
    #[error("{0}")]
    NotFound(String),
    /// The name is already taken, or the change would leave the organisation without a
    /// Global administrator.
    #[error("{0}")]
    Conflict(String),
    /// The caller lacks the permission for this change.
    #[error("{0}")]
    Forbidden(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a valid account store: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;
