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

/// "The second head's tree extends the tree of `first_size` leaves." The first head is
/// included when the server has one at that size; otherwise the auditor supplies the head
/// they saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyBundle {
    pub first_size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<SignedHead>,
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
            body: record.body.into(),
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

/// Verifies a consistency bundle (JSON) against a trusted key and, when given, the head the
/// auditor saved earlier (which then must be the bundle's first head, by size and root).
/// Returns (first, second) sizes.
pub fn verify_consistency(json: &[u8], key: &PublicKey, saved: Option<&SignedHead>) -> Result<(u64, u64)> {
    let bundle: ConsistencyBundle =
        serde_json::from_slice(json).map_err(|e| TrustError::Invalid(format!("not a consistency proof: {e}")))?;
    let first = match (saved, &bundle.first) {
        (Some(saved), Some(included))
            if saved.root_hash != included.root_hash || saved.tree_size != included.tree_size =>
        {
            return Err(TrustError::Invalid(format!(
                "the saved head (size {}) is not the proof's first head (size {})",
                saved.tree_size, included.tree_size
            )))
        }
        (Some(saved), _) => saved,
        (None, Some(included)) => included,
        (None, None) => {
            return Err(TrustError::Invalid(
                "the proof carries no first head: give the head you saved (--head FILE)".into(),
            ))
        }
    };
    if first.tree_size != bundle.first_size {
        return Err(TrustError::Invalid(format!(
            "the first head has size {}, the proof starts at size {}",
            first.tree_size, bundle.first_size
        )));
    }
    first.verify(key)?;
    bundle.second.verify(key)?;
    if first.org != bundle.second.org {
        return Err(TrustError::Invalid("the two heads belong to different organisations".into()));
    }
    merkle::verify_consistency(
        first.tree_size,
        bundle.second.tree_size,
        &first.root_hash,
        &bundle.second.root_hash,
        &bundle.proof,
    )?;
    Ok((first.tree_size, bundle.second.tree_size))
}

/// One line of an export with proofs (after the first line, `{"head": ...}`).
#[derive(Clone, Debug, Deserialize)]
pub struct ExportLine {
    pub event: serde_json::Value,
    pub proof: Option<InclusionProof>,
}

/// What checking an export with proofs found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExportCheck {
    pub org: String,
    pub tree_size: u64,
    pub verified: u64,
    /// Lines without a proof (events newer than the export's head).
    pub unproven: u64,
}

/// Verifies an NDJSON export with proofs: the head's signature, then every line's proof and
/// that its event is the record the proof covers. Stops at the first bad line (1-based).
pub fn verify_export(ndjson: &[u8], key: &PublicKey) -> Result<ExportCheck> {
    let mut lines = ndjson.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    let first = lines.next().ok_or_else(|| TrustError::Invalid("the export is empty".into()))?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct HeadLine {
        head: SignedHead,
    }
    let head = serde_json::from_slice::<HeadLine>(first)
        .map_err(|e| TrustError::Invalid(format!("line 1 is not the export's signed head: {e}")))?
        .head;
    head.verify(key)?;
    let mut check = ExportCheck { org: head.org.clone(), tree_size: head.tree_size, ..ExportCheck::default() };
    for (n, line) in lines.enumerate() {
        let number = n + 2;
        let line: ExportLine = serde_json::from_slice(line)
            .map_err(|e| TrustError::Invalid(format!("line {number}: not an export line: {e}")))?;
        let Some(proof) = line.proof else {
            check.unproven += 1;
            continue;
        };
        let verified = proof.verify_against(&head).map_err(|e| TrustError::Invalid(format!("line {number}: {e}")))?;
        let recorded: serde_json::Value = serde_json::from_slice(&verified.body)
            .map_err(|_| TrustError::Invalid(format!("line {number}: the recorded body is not JSON")))?;
        if recorded != line.event {
            return Err(TrustError::Invalid(format!(
                "line {number}: the event differs from the record its proof covers ({})",
                verified.id
            )));
        }
        check.verified += 1;
    }
    Ok(check)
}
