//! Merkle tree hashing and proofs exactly as RFC 9162 (Certificate Transparency 2.0), §2.1,
//! defines them, with SHA-256:
//!
//! ```text
//! MTH({})      = SHA-256()
//! MTH({d0})    = SHA-256(0x00 || d0)                         leaf hash
//! MTH(D[n])    = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  k = largest power of two < n
//! ```
//!
//! Proof generation works over a [`Nodes`] source that knows the hashes of complete, aligned
//! subtrees (a tree kept on disk stores exactly those), so a proof costs O(log² n) lookups
//! rather than rehashing the log. Verification follows the RFC's iterative algorithms
//! (§2.1.3.2 and §2.1.4.2) literally; they are the part an auditor runs without trusting us.

use sha2::{Digest, Sha256};

/// A SHA-256 value.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    hasher.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two strictly smaller than `n` (n >= 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Hashes of complete subtrees: `node(level, index)` is MTH of leaves
/// `[index << level, (index + 1) << level)`, asked only for subtrees that are complete.
pub trait Nodes {
    fn node(&self, level: u32, index: u64) -> Hash;
}

/// MTH(D[start:end]) for a range the RFC's recursion produces (start aligned to the largest
/// power of two not above the range's size).
pub fn subtree(nodes: &impl Nodes, start: u64, end: u64) -> Hash {
    let n = end - start;
    match n {
        0 => empty_root(),
        _ if n.is_power_of_two() => {
            let level = n.trailing_zeros();
            debug_assert_eq!(start % n, 0, "subtree ranges are aligned");
            nodes.node(level, start >> level)
        }
        _ => {
            let k = split(n);
            node_hash(&subtree(nodes, start, start + k), &subtree(nodes, start + k, end))
        }
    }
}

/// The root of the first `size` leaves.
pub fn root(nodes: &impl Nodes, size: u64) -> Hash {
    subtree(nodes, 0, size)
}

/// The audit path of leaf `index` in the tree of the first `size` leaves (RFC 9162 §2.1.3.1),
/// leaf side first.
pub fn inclusion_path(nodes: &impl Nodes, index: u64, size: u64) -> Vec<Hash> {
    assert!(index < size, "leaf {index} is outside a tree of {size}");
    let mut path = Vec::new();
    path_into(nodes, index, 0, size, &mut path);
    path
}

fn path_into(nodes: &impl Nodes, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path_into(nodes, m, start, start + k, out);
        out.push(subtree(nodes, start + k, end));
    } else {
        path_into(nodes, m - k, start + k, end, out);
        out.push(subtree(nodes, start, start + k));
    }
}

/// The consistency proof between the trees of the first `first` and `second` leaves (RFC 9162
/// §2.1.4.1). Empty when `first` is 0 or equals `second`.
pub fn consistency_proof(nodes: &impl Nodes, first: u64, second: u64) -> Vec<Hash> {
    assert!(first <= second, "tree sizes out of order: {first} > {second}");
    let mut proof = Vec::new();
    if first > 0 && first < second {
        subproof_into(nodes, first, 0, second, true, &mut proof);
    }
    proof
}

fn subproof_into(nodes: &impl Nodes, m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Hash>) {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(subtree(nodes, start, end));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof_into(nodes, m, start, start + k, whole, out);
        out.push(subtree(nodes, start + k, end));
    } else {
        subproof_into(nodes, m - k, start + k, end, false, out);
        out.push(subtree(nodes, start, start + k));
    }
}

/// Why a proof does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree sizes out of order: {first} > {second}")]
    SizesOutOfOrder { first: u64, second: u64 },
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
}

/// RFC 9162 §2.1.3.2: whether `path` proves that `leaf` is leaf `index` of the tree of
/// `size` leaves whose root is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: whether `proof` shows that the tree of `second` leaves with root
/// `second_root` extends the tree of `first` leaves with root `first_root`. Equal sizes need an
/// empty proof and equal roots; an empty first tree is consistent with everything.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::SizesOutOfOrder { first, second });
    }
    if first == 0 {
        return if proof.is_empty() { Ok(()) } else { Err(ProofError::WrongLength) };
    }
    if first == second {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if first_root == second_root { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(first_root);
    }
    path.extend(proof.iter());
    let (mut f_n, mut s_n) = (first - 1, second - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut f_r, mut s_r) = (*path[0], *path[0]);
    for c in &path[1..] {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if &f_r != first_root || &s_r != second_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The complete-subtree hashes of a tree held in memory, level by level (level 0 = leaves).
/// Used by the verifier, by tests, and as the reference for the on-disk tree.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> MemoryTree {
        let mut tree = MemoryTree::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Appends a leaf hash, completing parents where it closes a pair.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
            let count = self.levels[level].len();
            if count % 2 == 1 {
                break;
            }
            hash = node_hash(&self.levels[level][count - 2], &self.levels[level][count - 1]);
            level += 1;
        }
    }

    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first().and_then(|l| l.get(index as usize)).copied()
    }

    pub fn root(&self) -> Hash {
        root(self, self.size())
    }
}

impl Nodes for MemoryTree {
    fn node(&self, level: u32, index: u64) -> Hash {
        self.levels[level as usize][index as usize]
    }
}

/// The roots of the complete subtrees covering a prefix of the log, smallest last: enough to
/// compute the root of every prefix while streaming leaves, in O(log n) memory.
#[derive(Clone, Debug, Default)]
pub struct Frontier {
    size: u64,
    /// (level, hash), levels strictly decreasing.
    peaks: Vec<(u32, Hash)>,
}

impl Frontier {
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut level = 0;
        while let Some(&(top_level, top)) = self.peaks.last() {
            if top_level != level {
                break;
            }
            self.peaks.pop();
            hash = node_hash(&top, &hash);
            level += 1;
        }
        self.peaks.push((level, hash));
        self.size += 1;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.peaks.iter().rev();
        let Some(&(_, mut hash)) = iter.next() else { return empty_root() };
        for (_, peak) in iter {
            hash = node_hash(peak, &hash);
        }
        hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The RFC's recursive definitions, written over a plain list of leaf hashes.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    fn reference_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = split(n as u64) as usize;
        if m < k {
            let mut p = reference_path(m, &leaves[..k]);
            p.push(reference_root(&leaves[k..]));
            p
        } else {
            let mut p = reference_path(m - k, &leaves[k..]);
            p.push(reference_root(&leaves[..k]));
            p
        }
    }

    fn reference_subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if whole { vec![] } else { vec![reference_root(leaves)] };
        }
        let k = split(n as u64) as usize;
        if m <= k {
            let mut p = reference_subproof(m, &leaves[..k], whole);
            p.push(reference_root(&leaves[k..]));
            p
        } else {
            let mut p = reference_subproof(m - k, &leaves[k..], false);
            p.push(reference_root(&leaves[..k]));
            p
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("leaf {i}").as_bytes())).collect()
    }

    #[test]
    fn known_answers() {
        // Empty tree and one-leaf tree, as in RFC 9162 / RFC 6962 test vectors.
        assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex::encode(leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
        // The 8-leaf tree of RFC 6962's reference test data (leaves are these byte strings).
        let data: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f],
        ];
        let tree = MemoryTree::from_leaves(data.iter().map(|d| leaf_hash(d)));
        assert_eq!(hex::encode(tree.root()), "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");
        assert_eq!(hex::encode(root(&tree, 3)), "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77");
    }

    #[test]
    fn edge_cases_of_verification() {
        let tree = MemoryTree::from_leaves(leaves(5));
        let root5 = tree.root();
        assert_eq!(verify_consistency(0, 5, &empty_root(), &root5, &[]), Ok(()));
        assert_eq!(verify_consistency(5, 5, &root5, &root5, &[]), Ok(()));
        assert_eq!(verify_consistency(5, 5, &root5, &empty_root(), &[]), Err(ProofError::RootMismatch));
        assert_eq!(verify_consistency(4, 5, &root(&tree, 4), &root5, &[]), Err(ProofError::WrongLength));
        assert!(verify_consistency(6, 5, &root5, &root5, &[]).is_err());
        assert!(verify_inclusion(5, 5, &tree.leaf(0).unwrap(), &[], &root5).is_err());
        let single = MemoryTree::from_leaves(leaves(1));
        assert_eq!(verify_inclusion(0, 1, &single.leaf(0).unwrap(), &[], &single.root()), Ok(()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn roots_paths_and_proofs_match_the_rfc(n in 1usize..140, m_seed in any::<u64>(), k_seed in any::<u64>()) {
            let leaves = leaves(n);
            let tree = MemoryTree::from_leaves(leaves.iter().copied());
            let mut frontier = Frontier::default();
            for (i, leaf) in leaves.iter().enumerate() {
                frontier.push(*leaf);
                prop_assert_eq!(frontier.root(), reference_root(&leaves[..=i]));
            }
            prop_assert_eq!(tree.root(), reference_root(&leaves));

            let size = 1 + (k_seed % n as u64);
            let index = m_seed % size;
            let path = inclusion_path(&tree, index, size);
            prop_assert_eq!(&path, &reference_path(index as usize, &leaves[..size as usize]));
            let size_root = root(&tree, size);
            prop_assert_eq!(verify_inclusion(index, size, &leaves[index as usize], &path, &size_root), Ok(()));

            let first = m_seed % (n as u64 + 1);
            let second = first + k_seed % (n as u64 - first + 1);
            let proof = consistency_proof(&tree, first, second);
            if first > 0 && first < second {
                prop_assert_eq!(&proof, &reference_subproof(first as usize, &leaves[..second as usize], true));
            }
            prop_assert_eq!(
                verify_consistency(first, second, &root(&tree, first), &root(&tree, second), &proof),
                Ok(())
            );
        }

        #[test]
        fn altered_proofs_are_rejected(n in 2usize..100, m_seed in any::<u64>(), flip in any::<(usize, u8)>()) {
            let leaves = leaves(n);
            let tree = MemoryTree::from_leaves(leaves.iter().copied());
            let size = n as u64;
            let index = m_seed % size;
            let root = tree.root();
            let mut path = inclusion_path(&tree, index, size);
            // Another leaf, another index, a changed hash: each must fail. (The size alone may change
            // without failing when the path has the same shape; the signed head binds size and root.)
            let other = (index + 1) % size;
            prop_assert!(verify_inclusion(index, size, &leaves[other as usize], &path, &root).is_err());
            prop_assert!(verify_inclusion(other, size, &leaves[index as usize], &path, &root).is_err() || leaves[other as usize] == leaves[index as usize]);
            if !path.is_empty() {
                let at = flip.0 % path.len();
                path[at][(flip.1 % 32) as usize] ^= 1;
                prop_assert!(verify_inclusion(index, size, &leaves[index as usize], &path, &root).is_err());
            }

            let first = 1 + m_seed % (size - 1);
            let mut proof = consistency_proof(&tree, first, size);
            let first_root = super::root(&tree, first);
            prop_assert!(verify_consistency(first, size, &first_root, &leaf_hash(b"x"), &proof).is_err());
            prop_assert!(verify_consistency(first, size, &leaf_hash(b"x"), &root, &proof).is_err());
            let at = flip.0 % proof.len();
            proof[at][(flip.1 % 32) as usize] ^= 1;
            prop_assert!(verify_consistency(first, size, &first_root, &root, &proof).is_err());
        }
    }
}
