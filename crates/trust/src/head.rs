//! Signed tree heads: an Ed25519 signature over an organisation's tree size and root at a
//! moment, made by the node's signing key.
//!
//! The signed bytes (all integers big-endian) are
//! ```text
//! "signet-tree-head-v1" 0x00 | u16 org length | org (UTF-8) | u64 tree size
//! | i64 timestamp (milliseconds since the Unix epoch, UTC) | 32-byte root hash
//! ```
//! A head is published as one JSON object per line:
//! `{"org":"default","tree_size":42,"root_hash":"<hex>","timestamp_ms":..,"timestamp":"<RFC 3339>",
//! "key_id":"<hex>","signature":"<base64>"}`. `timestamp` is informational; `timestamp_ms` is signed.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{io_err, Result, TrustError};
use crate::merkle::Hash;

const HEAD_DOMAIN: &[u8] = b"signet-tree-head-v1\0";
const KEY_FILE_PREFIX: &str = "signet-ed25519-secret:";
/// How a public key is written for people: `ed25519:<base64 of the 32 key bytes>`.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";

/// A signed statement of one organisation's tree at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    pub org: String,
    pub tree_size: u64,
    #[serde(with = "hex_hash")]
    pub root_hash: Hash,
    pub timestamp_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    pub key_id: String,
    pub signature: String,
}

impl SignedHead {
    /// The exact bytes the signature covers.
    pub fn signed_bytes(org: &str, tree_size: u64, timestamp_ms: i64, root_hash: &Hash) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD_DOMAIN.len() + 2 + org.len() + 8 + 8 + 32);
        out.extend_from_slice(HEAD_DOMAIN);
        out.extend_from_slice(&(org.len() as u16).to_be_bytes());
        out.extend_from_slice(org.as_bytes());
        out.extend_from_slice(&tree_size.to_be_bytes());
        out.extend_from_slice(&timestamp_ms.to_be_bytes());
        out.extend_from_slice(root_hash);
        out
    }

    /// Checks the signature against a public key the caller trusts.
    pub fn verify(&self, key: &PublicKey) -> Result<()> {
        if self.key_id != key.id() {
            return Err(TrustError::BadSignature(format!(
                "head of {} at size {} was signed by key {}, not by the trusted key {}",
                self.org,
                self.tree_size,
                self.key_id,
                key.id()
            )));
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|_| TrustError::BadSignature("signature is not base64".into()))?;
        let signature = Signature::from_slice(&raw)
            .map_err(|_| TrustError::BadSignature("signature has the wrong length".into()))?;
        if let Some(text) = &self.timestamp {
            let signed = chrono::DateTime::from_timestamp_millis(self.timestamp_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            if signed.as_deref() != Some(text.as_str()) {
                return Err(TrustError::BadSignature(format!(
                    "the head's timestamp {text:?} is not its signed time ({} ms)",
                    self.timestamp_ms
                )));
            }
        }
        let bytes = SignedHead::signed_bytes(&self.org, self.tree_size, self.timestamp_ms, &self.root_hash);
        key.0.verify(&bytes, &signature).map_err(|_| {
            TrustError::BadSignature(format!(
                "signature of the head of {} at size {} does not verify",
                self.org, self.tree_size
            ))
        })
    }

    /// One JSON line.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a head serialises")
    }
}

/// A public key an auditor can pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses `ed25519:<base64>` (the prefix is optional).
    pub fn parse(text: &str) -> Result<PublicKey> {
        let text = text.trim();
        let b64 = text.strip_prefix(PUBLIC_KEY_PREFIX).unwrap_or(text);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| TrustError::Invalid("public key is not base64 (expected ed25519:<base64>)".into()))?;
        let bytes: [u8; 32] =
            raw.try_into().map_err(|_| TrustError::Invalid("an Ed25519 public key has 32 bytes".into()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| TrustError::Invalid("not a valid Ed25519 public key".into()))
    }

    /// Reads a key given either literally or as a file holding it.
    pub fn from_arg(arg: &str) -> Result<PublicKey> {
        let path = Path::new(arg);
        if !arg.starts_with(PUBLIC_KEY_PREFIX) && path.is_file() {
            let text = fs::read_to_string(path).map_err(io_err(path))?;
            return PublicKey::parse(&text);
        }
        PublicKey::parse(arg)
    }

    /// First 8 bytes of SHA-256 of the key, in hex: names the key in heads.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }

    pub fn bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PUBLIC_KEY_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(self.0.as_bytes()))
    }
}

/// The node's signing key. `Debug` prints only the public half.
pub struct HeadSigner {
    key: SigningKey,
}

impl std::fmt::Debug for HeadSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeadSigner({})", self.public())
    }
}

impl HeadSigner {
    /// Loads the key from `path`, creating it (mode 0600, new random key) when absent.
    pub fn load_or_create(path: &Path) -> Result<HeadSigner> {
        match fs::read_to_string(path) {
            Ok(text) => HeadSigner::parse(&text)
                .map_err(|reason| TrustError::Corrupt { path: path.display().to_string(), reason }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let signer = HeadSigner::generate();
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                let mut file =
                    fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io_err(path))?;
                let seed = base64::engine::general_purpose::STANDARD.encode(signer.key.to_bytes());
                writeln!(file, "{KEY_FILE_PREFIX}{seed}").map_err(io_err(path))?;
                file.sync_all().map_err(io_err(path))?;
                Ok(signer)
            }
            Err(err) => Err(io_err(path)(err)),
        }
    }

    /// Loads an existing key; never creates one (for read-only commands).
    pub fn load(path: &Path) -> Result<HeadSigner> {
        let text = fs::read_to_string(path).map_err(io_err(path))?;
        HeadSigner::parse(&text).map_err(|reason| TrustError::Corrupt { path: path.display().to_string(), reason })
    }

    fn parse(text: &str) -> std::result::Result<HeadSigner, String> {
        let b64 = text.trim().strip_prefix(KEY_FILE_PREFIX).ok_or("not a Signet signing key file")?;
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| "key is not base64")?;
        let seed: [u8; 32] = raw.try_into().map_err(|_| "key has the wrong length")?;
        Ok(HeadSigner { key: SigningKey::from_bytes(&seed) })
    }

    pub fn generate() -> HeadSigner {
        HeadSigner::from_seed(rand::random())
    }

    /// A key from known bytes (tests and fuzzing; real keys come from [`HeadSigner::generate`]).
    pub fn from_seed(seed: [u8; 32]) -> HeadSigner {
        HeadSigner { key: SigningKey::from_bytes(&seed) }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    pub fn sign(&self, org: &str, tree_size: u64, root_hash: Hash, timestamp_ms: i64) -> SignedHead {
        let bytes = SignedHead::signed_bytes(org, tree_size, timestamp_ms, &root_hash);
        let signature = self.key.sign(&bytes);
        SignedHead {
            org: org.to_string(),
            tree_size,
            root_hash,
            timestamp_ms,
            timestamp: chrono::DateTime::from_timestamp_millis(timestamp_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            key_id: self.public().id(),
            signature: base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
        }
    }
}

pub(crate) mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(|_| serde::de::Error::custom("expected 64 hex digits"))?;
        Ok(out)
    }
}

pub(crate) mod hex_hashes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hashes: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(hashes.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|text| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(text, &mut out)
                    .map(|_| out)
                    .map_err(|_| serde::de::Error::custom("expected 64 hex digits"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject() {
        let signer = HeadSigner::generate();
        let head = signer.sign("default", 10, [7u8; 32], 1_700_000_000_000);
        head.verify(&signer.public()).unwrap();
        let parsed: SignedHead = serde_json::from_str(&head.to_line()).unwrap();
        assert_eq!(parsed, head);

        for tampered in [
            SignedHead { tree_size: 11, ..head.clone() },
            SignedHead { root_hash: [8u8; 32], ..head.clone() },
            SignedHead { org: "other".into(), ..head.clone() },
            SignedHead { timestamp_ms: head.timestamp_ms + 1, ..head.clone() },
            SignedHead { timestamp: Some("2020-01-01T00:00:00.000Z".into()), ..head.clone() },
        ] {
            assert!(tampered.verify(&signer.public()).is_err(), "{tampered:?}");
        }
        let stranger = HeadSigner::generate();
        assert!(head.verify(&stranger.public()).is_err());
    }

    #[test]
    fn key_file_round_trip_and_public_key_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/signing.key");
        let signer = HeadSigner::load_or_create(&path).unwrap();
        let again = HeadSigner::load_or_create(&path).unwrap();
        assert_eq!(signer.public(), again.public());
        let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let text = signer.public().to_string();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(PublicKey::parse(&text).unwrap(), signer.public());
        assert!(!format!("{signer:?}").contains(&fs::read_to_string(&path).unwrap()[22..]));
    }
}
