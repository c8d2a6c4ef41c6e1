//! Fuzz targets for the offline verifier, shared by the libFuzzer harness (`fuzz/`, run with
//! `cargo +nightly fuzz run verify_inclusion`) and the mutation fuzzer that runs in CI
//! (`tests/it/fuzz.rs`). The property is the one that matters: whatever bytes come in, the
//! verifier either refuses them or vouches for exactly what the genuine proof vouches for. A
//! verifier that accepts a forged proof is the worst bug this product can have.

use crate::bundle::{self, VerifiedEvent};
use crate::head::{HeadSigner, PublicKey};
use crate::merkle::MemoryTree;
use crate::record::LogRecord;

/// A small signed log and genuine proofs over it, built from a fixed seed.
pub struct Corpus {
    pub key: PublicKey,
    pub inclusion: Vec<(Vec<u8>, VerifiedEvent)>,
    pub consistency: Vec<(Vec<u8>, (u64, u64))>,
}

/// Builds the corpus: 37 records of one organisation, heads at several sizes.
pub fn corpus() -> Corpus {
    let seed = [7u8; 32];
    let signer = HeadSigner::from_seed(seed);
    let mut tree = MemoryTree::new();
    let mut records = Vec::new();
    for i in 0..37u32 {
        let record = LogRecord {
            kind: signet_model::LogKind::SignIn,
            revision: 1 + i % 2,
            content_hash: u64::from(i) * 7919,
            time_us: 1_700_000_000_000_000 + i64::from(i),
            received_us: 1_700_000_000_000_000 + i64::from(i) * 3,
            org: "default".into(),
            id: format!("event-{i}"),
            body: format!("{{\"id\":\"event-{i}\",\"userPrincipalName\":\"u{i}@contoso.com\"}}").into_bytes().into(),
            original: None,
        };
        let mut bytes = Vec::new();
        record.encode(&mut bytes);
        tree.push(crate::merkle::leaf_hash(&bytes));
        records.push(bytes);
    }
    let mut inclusion = Vec::new();
    let mut consistency = Vec::new();
    let sizes = [1u64, 2, 5, 8, 16, 17, 31, 37];
    let heads: Vec<_> = sizes
        .iter()
        .map(|&size| signer.sign("default", size, crate::merkle::root(&tree, size), 1_700_000_000_000 + size as i64))
        .collect();
    for head in &heads {
        for index in [0, head.tree_size / 2, head.tree_size - 1] {
            let bundle = bundle::InclusionBundle {
                head: head.clone(),
                proof: bundle::InclusionProof {
                    leaf_index: index,
                    record: base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        &records[index as usize],
                    ),
                    audit_path: crate::merkle::inclusion_path(&tree, index, head.tree_size),
                },
            };
            let json = serde_json::to_vec(&bundle).expect("serialises");
            let verified = bundle::verify_inclusion(&json, &signer.public()).expect("genuine proofs verify");
            inclusion.push((json, verified));
        }
    }
    for (i, first) in heads.iter().enumerate() {
        for second in &heads[i..] {
            let bundle = bundle::ConsistencyBundle {
                first_size: first.tree_size,
                first: Some(first.clone()),
                second: second.clone(),
                proof: crate::merkle::consistency_proof(&tree, first.tree_size, second.tree_size),
            };
            let json = serde_json::to_vec(&bundle).expect("serialises");
            consistency.push((json, (first.tree_size, second.tree_size)));
        }
    }
    Corpus { key: signer.public(), inclusion, consistency }
}

/// Feeds arbitrary bytes to both verifiers. Panics (the fuzzer's finding) when one accepts
/// something that does not match a genuine proof of the corpus.
pub fn check(corpus: &Corpus, data: &[u8]) {
    if let Ok(verified) = bundle::verify_inclusion(data, &corpus.key) {
        let genuine = corpus.inclusion.iter().any(|(_, g)| {
            g.org == verified.org
                && g.id == verified.id
                && g.revision == verified.revision
                && g.leaf_index == verified.leaf_index
                && g.tree_size == verified.tree_size
                && g.root_hash == verified.root_hash
                && g.body == verified.body
                && g.kind == verified.kind
        });
        assert!(genuine, "the verifier accepted a forged inclusion proof: {verified:?}");
    }
    if let Ok(sizes) = bundle::verify_consistency(data, &corpus.key, None) {
        assert!(
            corpus.consistency.iter().any(|(_, g)| *g == sizes),
            "the verifier accepted a forged consistency proof for sizes {sizes:?}"
        );
    }
}

/// splitmix64: a tiny reproducible generator for fuzzers and randomised tests (no dependency,
/// the same sequence everywhere).
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}
