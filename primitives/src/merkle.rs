//! Binary keccak256 Merkle trees, EVM-compatible.
//!
//! - leaf hash   = keccak256(0x00 ‖ row bytes)
//! - node hash   = keccak256(0x01 ‖ left ‖ right)
//! - the leaf count is padded up to a power of two with zero leaves (`B256::ZERO`, used as they
//!   are, not hashed), so an empty subtree of height h hashes to `zero_hash(h)` with
//!   `zero_hash(0) = 0` and `zero_hash(h+1) = node(zero_hash(h), zero_hash(h))`; an empty tree has
//!   root `B256::ZERO`, a one-leaf tree has the leaf hash as root.
//!
//! Because padding is ordinary zero leaves, a tree can be embedded in a deeper one (the trace's
//! fixed-depth state tree) and a zero leaf can be proven and then replaced (append-only updates).
//!
//! The domain bytes keep a leaf from ever being read as an inner node (second-preimage safety).
//! A proof lists the siblings from the leaf level up; the leaf index picks left/right.

use alloy_primitives::{keccak256, B256};
use serde::{Deserialize, Serialize};

/// Domain byte prefixed to a leaf preimage.
pub const LEAF_DOMAIN: u8 = 0x00;
/// Domain byte prefixed to an inner node preimage.
pub const NODE_DOMAIN: u8 = 0x01;

/// Errors of Merkle proof checking and tree queries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("leaf index {index} out of range for a tree of {leaves} leaves")]
    IndexOutOfRange { index: u64, leaves: u64 },
    #[error("proof has {got} siblings, a tree of this size needs {want}")]
    WrongProofLength { got: usize, want: usize },
    #[error("proof does not lead to the expected root")]
    RootMismatch,
    #[error("leaf index {index} does not follow {previous} (indices must strictly increase)")]
    NotIncreasing { previous: u64, index: u64 },
}

/// Domain byte of the leaf of a long row (committed through its chunks).
pub const CHUNKED_ROW_DOMAIN: u8 = 0x02;
/// Bytes per chunk of a long row; rows up to this length are one plain leaf.
pub const ROW_CHUNK: usize = 1024;

/// The leaf of a committed row (a tensor row, a prompt, a completion): rows of up to
/// [`ROW_CHUNK`] bytes are [`hash_leaf`]; a longer row is `keccak256(0x02 ‖ root)` where `root`
/// is the Merkle root over its [`ROW_CHUNK`]-byte chunks, so that one chunk of it (a few logits
/// of a 128k vocabulary) can be opened alone. The domain byte keeps it apart from plain leaves
/// and inner nodes.
pub fn row_leaf(row: &[u8]) -> B256 {
    if row.len() <= ROW_CHUNK {
        return hash_leaf(row);
    }
    // The chunk tree's root without keeping the tree (this runs for most rows of a trace).
    let mut chunk = [0u8; 1 + ROW_CHUNK];
    let mut level: Vec<B256> = row
        .chunks(ROW_CHUNK)
        .map(|c| {
            chunk[1..1 + c.len()].copy_from_slice(c);
            keccak256(&chunk[..1 + c.len()])
        })
        .collect();
    let mut zero = B256::ZERO;
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| hash_node(&p[0], p.get(1).unwrap_or(&zero)))
            .collect();
        zero = hash_node(&zero, &zero);
    }
    let mut buf = [0u8; 33];
    buf[0] = CHUNKED_ROW_DOMAIN;
    buf[1..].copy_from_slice(level[0].as_slice());
    keccak256(buf)
}

/// The Merkle tree over a row's [`ROW_CHUNK`]-byte chunks (the last one shorter).
pub fn row_chunks(row: &[u8]) -> MerkleTree {
    MerkleTree::from_rows(row.chunks(ROW_CHUNK))
}

/// Hash of a leaf given its row bytes.
pub fn hash_leaf(row_bytes: &[u8]) -> B256 {
    let mut buf = Vec::with_capacity(1 + row_bytes.len());
    buf.push(LEAF_DOMAIN);
    buf.extend_from_slice(row_bytes);
    keccak256(&buf)
}

/// Hash of an inner node.
pub fn hash_node(left: &B256, right: &B256) -> B256 {
    let mut buf = [0u8; 65];
    buf[0] = NODE_DOMAIN;
    buf[1..33].copy_from_slice(left.as_slice());
    buf[33..].copy_from_slice(right.as_slice());
    keccak256(buf)
}

/// Root of an all-zero subtree of height `h` (`h <= 64`).
pub fn zero_hash(h: usize) -> B256 {
    let mut z = B256::ZERO;
    for _ in 0..h {
        z = hash_node(&z, &z);
    }
    z
}

/// Number of levels above the leaves for `leaves` leaves (0 for 0 or 1 leaf).
pub fn depth_for(leaves: u64) -> usize {
    if leaves <= 1 {
        0
    } else {
        (64 - (leaves - 1).leading_zeros()) as usize
    }
}

/// A full tree, every level kept, so that any leaf's proof is a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    /// `levels[0]` are the leaf hashes (unpadded); the last level holds the root.
    levels: Vec<Vec<B256>>,
    leaves: u64,
}

impl MerkleTree {
    /// Builds the tree over already-hashed leaves.
    pub fn from_leaf_hashes(leaf_hashes: Vec<B256>) -> Self {
        let leaves = leaf_hashes.len() as u64;
        let depth = depth_for(leaves);
        let mut levels = Vec::with_capacity(depth + 1);
        levels.push(leaf_hashes);
        let mut zero = B256::ZERO;
        for _ in 0..depth {
            let prev = levels.last().expect("at least the leaf level");
            let next: Vec<B256> = prev
                .chunks(2)
                .map(|pair| hash_node(&pair[0], pair.get(1).unwrap_or(&zero)))
                .collect();
            levels.push(next);
            zero = hash_node(&zero, &zero);
        }
        Self { levels, leaves }
    }

    /// Builds the tree over rows given as their byte encodings.
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = &'a [u8]>) -> Self {
        Self::from_leaf_hashes(rows.into_iter().map(hash_leaf).collect())
    }

    /// The root (zero for an empty tree).
    pub fn root(&self) -> B256 {
        self.levels
            .last()
            .and_then(|l| l.first().copied())
            .unwrap_or(B256::ZERO)
    }

    /// Number of (unpadded) leaves.
    pub fn len(&self) -> u64 {
        self.leaves
    }

    /// True when the tree has no leaf.
    pub fn is_empty(&self) -> bool {
        self.leaves == 0
    }

    /// The proof of leaf `index`.
    pub fn proof(&self, index: u64) -> Result<MerkleProof, MerkleError> {
        if index >= self.leaves {
            return Err(MerkleError::IndexOutOfRange {
                index,
                leaves: self.leaves,
            });
        }
        let mut siblings = Vec::with_capacity(self.levels.len().saturating_sub(1));
        let mut i = index as usize;
        let mut zero = B256::ZERO;
        for level in &self.levels[..self.levels.len() - 1] {
            siblings.push(level.get(i ^ 1).copied().unwrap_or(zero));
            zero = hash_node(&zero, &zero);
            i >>= 1;
        }
        Ok(MerkleProof { index, siblings })
    }
}

/// Inclusion proof of one leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleProof {
    pub index: u64,
    pub siblings: Vec<B256>,
}

impl MerkleProof {
    /// The root this proof leads to from `leaf`.
    pub fn compute_root(&self, leaf: B256) -> B256 {
        let mut node = leaf;
        let mut i = self.index;
        for sib in &self.siblings {
            node = if i & 1 == 0 {
                hash_node(&node, sib)
            } else {
                hash_node(sib, &node)
            };
            i >>= 1;
        }
        node
    }

    /// Checks the proof of `leaf` against `root` for a tree of `leaves` leaves.
    pub fn verify(&self, root: B256, leaf: B256, leaves: u64) -> Result<(), MerkleError> {
        if self.index >= leaves {
            return Err(MerkleError::IndexOutOfRange {
                index: self.index,
                leaves,
            });
        }
        let want = depth_for(leaves);
        if self.siblings.len() != want {
            return Err(MerkleError::WrongProofLength {
                got: self.siblings.len(),
                want,
            });
        }
        if self.compute_root(leaf) == root {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn rows(n: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| (0..7).map(|_| rng.random()).collect())
            .collect()
    }

    #[test]
    fn long_rows_are_committed_through_their_chunks() {
        let short = vec![7u8; ROW_CHUNK];
        assert_eq!(row_leaf(&short), hash_leaf(&short));
        for len in [ROW_CHUNK + 1, 3 * ROW_CHUNK, 5 * ROW_CHUNK + 17] {
            let row: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut pre = vec![CHUNKED_ROW_DOMAIN];
            pre.extend_from_slice(row_chunks(&row).root().as_slice());
            assert_eq!(row_leaf(&row), keccak256(&pre), "len {len}");
            assert_ne!(row_leaf(&row), hash_leaf(&row));
        }
    }

    #[test]
    fn every_leaf_proves_and_tampering_fails() {
        for n in [1usize, 2, 3, 5, 8, 13, 64, 100] {
            let rs = rows(n, n as u64);
            let tree = MerkleTree::from_rows(rs.iter().map(|r| r.as_slice()));
            for (i, r) in rs.iter().enumerate() {
                let p = tree.proof(i as u64).unwrap();
                p.verify(tree.root(), hash_leaf(r), n as u64).unwrap();
                let mut bad = r.clone();
                bad[0] ^= 1;
                assert_eq!(
                    p.verify(tree.root(), hash_leaf(&bad), n as u64),
                    Err(MerkleError::RootMismatch)
                );
            }
            assert!(tree.proof(n as u64).is_err());
        }
    }

    #[test]
    fn shapes_of_small_trees() {
        assert_eq!(MerkleTree::from_leaf_hashes(vec![]).root(), B256::ZERO);
        let a = hash_leaf(b"a");
        assert_eq!(MerkleTree::from_leaf_hashes(vec![a]).root(), a);
        let b = hash_leaf(b"b");
        let c = hash_leaf(b"c");
        let root = MerkleTree::from_leaf_hashes(vec![a, b, c]).root();
        assert_eq!(
            root,
            hash_node(&hash_node(&a, &b), &hash_node(&c, &B256::ZERO))
        );
        let d = hash_leaf(b"d");
        let e = hash_leaf(b"e");
        let root5 = MerkleTree::from_leaf_hashes(vec![a, b, c, d, e]).root();
        let right = hash_node(&hash_node(&e, &B256::ZERO), &zero_hash(1));
        assert_eq!(
            root5,
            hash_node(&hash_node(&hash_node(&a, &b), &hash_node(&c, &d)), &right)
        );
        assert_eq!(depth_for(3), 2);
        assert_eq!(depth_for(4), 2);
        assert_eq!(depth_for(5), 3);
    }

    #[test]
    fn wrong_proof_length_is_rejected() {
        let rs = rows(4, 1);
        let tree = MerkleTree::from_rows(rs.iter().map(|r| r.as_slice()));
        let mut p = tree.proof(1).unwrap();
        p.siblings.push(B256::ZERO);
        assert!(matches!(
            p.verify(tree.root(), hash_leaf(&rs[1]), 4),
            Err(MerkleError::WrongProofLength { .. })
        ));
    }
}
