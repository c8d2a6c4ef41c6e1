//! Signet's tamper evidence, free of storage engines and HTTP.
//!
//! # Layout
//! - [`record`]: the canonical form of a stored event (the bytes a Merkle leaf hashes).
//! - [`merkle`]: RFC 9162 hashing, inclusion and consistency proofs, and their verification.
//! - [`tree`]: the append-only Merkle tree kept on disk beside the event log.
//! - [`head`]: Ed25519 signing keys and signed tree heads.
//! - [`bundle`]: proofs as JSON bundles and their offline verification.
//! - [`fuzzing`]: the verifier's fuzz targets (libFuzzer and the CI mutation fuzzer).

pub mod bundle;
pub mod error;
pub mod fuzzing;
pub mod head;
pub mod merkle;
pub mod record;
pub mod tree;

pub use error::{Result, TrustError};
pub use head::{HeadSigner, PublicKey, SignedHead};
pub use merkle::{Hash, ProofError};
pub use record::LogRecord;
pub use tree::DiskTree;
