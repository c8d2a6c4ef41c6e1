//! Errors of the tamper-evidence layer.

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    Proof(#[from] crate::merkle::ProofError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {reason}")]
    Corrupt { path: String, reason: String },
}

pub type Result<T, E = TrustError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl Fn(std::io::Error) -> TrustError + '_ {
    move |source| TrustError::Io { path: path.display().to_string(), source }
}
