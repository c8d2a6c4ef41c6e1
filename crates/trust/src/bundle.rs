//! Proofs as they travel: JSON bundles that carry everything needed to check them with nothing
//! but a pinned public key. The server hands them out; [`verify_inclusion`] and
//! [`verify_consistency`] check them without trusting the server (the `signet proof verify`
//! command is a thin wrapper).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrustError};
use crate::head::{hex_hashes, PublicKey, SignedHead};
use crate::merkle::{self, Hash};
use crate::record::LogRecord;

/// "This event is leaf `leaf_index` of the tree the head signs."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub leaf_index: u64,
    /// The canonical record (see [`crate::record`]), base64.
    pub record: String,
    #[serde(with = "hex_hashes")]
    pub audit_path: Vec<Hash>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionBundle {
    pub head: SignedHead,
    #[serde(flatten)]
    pub proof: InclusionProof,
}

/// "The second head's tree extends the first head's tree."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyBundle {
    pub first: SignedHead,
    pub second: SignedHead,
    #[serde(with = "hex_hashes")]
    pub proof: Vec<Hash>,
}

/// What a verified inclusion proof vouches for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedEvent {
    pub org: String,
    pub kind: &'static str,
    pub id: String,
    pub revision: u32,
    pub leaf_index: u64,
    pub tree_size: u64,
    #[serde(with = "crate::head::hex_hash")]
    pub root_hash: Hash,
    pub head_timestamp_ms: i64,
    /// The event body (JSON bytes) the record holds.
    #[serde(skip)]
    pub body: Vec<u8>,
}

impl InclusionProof {
    /// Checks the proof against a head whose signature the caller has already checked.
    pub fn verify_against(&self, head: &SignedHead) -> Result<VerifiedEvent> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.record)
            .map_err(|_| TrustError::Invalid("record is not base64".into()))?;
        let (record, used) = LogRecord::decode(&bytes).map_err(TrustError::Invalid)?;
        if used != bytes.len() {
            return Err(TrustError::Invalid("record has trailing bytes".into()));
        }
        if record.org != head.org {
            return Err(TrustError::Invalid(format!(
                "record belongs to organisation {}, the head to {}",
                record.org, head.org
            )));
        }
        let leaf = merkle::leaf_hash(&bytes);
        merkle::verify_inclusion(self.leaf_index, head.tree_size, &leaf, &self.audit_path, &head.root_hash)?;
        Ok(VerifiedEvent {
            org: record.org,
            kind: record.kind.as_str(),
            id: record.id,
            revision: record.revision,
            leaf_index: self.leaf_index,
            tree_size: head.tree_size,
            root_hash: head.root_hash,
            head_timestamp_ms: head.timestamp_ms,
            body: record.body,
        })
    }
}

/// Verifies an inclusion bundle (JSON) against a trusted key.
pub fn verify_inclusion(json: &[u8], key: &PublicKey) -> Result<VerifiedEvent> {
    let bundle: InclusionBundle =
        serde_json::from_slice(json).map_err(|e| TrustError::Invalid(format!("not an inclusion proof: {e}")))?;
    bundle.head.verify(key)?;
    bundle.proof.verify_against(&bundle.head)
}

/// Verifies a consistency bundle (JSON) against a trusted key; returns (first, second) sizes.
pub fn verify_consistency(json: &[u8], key: &PublicKey) -> Result<(u64, u64)> {
    let bundle: ConsistencyBundle =
        serde_json::from_slice(json).map_err(|e| TrustError::Invalid(format!("not a consistency proof: {e}")))?;
    bundle.first.verify(key)?;
    bundle.second.verify(key)?;
    if bundle.first.org != bundle.second.org {
        return Err(TrustError::Invalid("the two heads belong to different organisations".into()));
    }
    merkle::verify_consistency(
        bundle.first.tree_size,
        bundle.second.tree_size,
        &bundle.first.root_hash,
        &bundle.second.root_hash,
        &bundle.proof,
    )?;
    Ok((bundle.first.tree_size, bundle.second.tree_size))
}
