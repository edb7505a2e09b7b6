//! Sparse Merkle trees: the same tree as [`MerkleTree`](crate::MerkleTree) over a dense leaf
//! vector in which most leaves are absent (zero), built and queried from the present leaves only.
//!
//! A tensor of the trace places each row at an address that encodes (prompt, position[, head])
//! (docs/ARITHMETIC.md §5), so the address space is far larger than the row count. Hashing is
//! exactly that of the dense tree over the expansion `leaves[i] = present(i) or B256::ZERO` with
//! `highest index + 1` leaves: an absent leaf is the zero word used as it is and an absent
//! subtree of height `h` is `zero_hash(h)`. Roots and proofs are therefore interchangeable with
//! the dense ones, and the L1 checks them with the same code.
//!
//! Cost: each level keeps only the nodes that have a present leaf below them, so a run of `n`
//! consecutive leaves costs about `n` node hashes (like the dense tree) and an isolated leaf
//! costs one hash per level; nothing is proportional to the virtual size.

use crate::merkle::{hash_node, MerkleError, MerkleProof};
use alloy_primitives::B256;
use std::sync::OnceLock;

/// `zero_hash(h)` for every `h` in `0..=64`, computed once.
fn zero_hashes() -> &'static [B256; 65] {
    static TABLE: OnceLock<[B256; 65]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [B256::ZERO; 65];
        for h in 1..65 {
            t[h] = hash_node(&t[h - 1], &t[h - 1]);
        }
        t
    })
}

/// Levels above the leaves when the highest present index is `max_index` (the dense tree's
/// `depth_for(max_index + 1)`, without overflowing at `u64::MAX`).
fn depth_for_max_index(max_index: u64) -> usize {
    64 - max_index.leading_zeros() as usize
}

/// One level of present nodes: strictly increasing indices and their hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Level {
    index: Vec<u64>,
    hash: Vec<B256>,
}

impl Level {
    fn get(&self, i: u64) -> Option<B256> {
        self.index.binary_search(&i).ok().map(|k| self.hash[k])
    }
}

/// Hashes the present nodes of level `height` into their parents (written to `out`, in
/// increasing order); a missing sibling is the empty subtree of that height.
fn parent_level(src: &Level, height: usize, out: &mut Level) {
    let zero = zero_hashes()[height];
    out.index.clear();
    out.hash.clear();
    let n = src.index.len();
    let mut k = 0;
    while k < n {
        let i = src.index[k];
        let (left, right, used) = if i & 1 == 0 {
            if k + 1 < n && src.index[k + 1] == i + 1 {
                (src.hash[k], src.hash[k + 1], 2)
            } else {
                (src.hash[k], zero, 1)
            }
        } else {
            (zero, src.hash[k], 1)
        };
        out.index.push(i >> 1);
        out.hash.push(hash_node(&left, &right));
        k += used;
    }
}

/// Checks that `leaves` are strictly increasing; returns the highest index.
fn check_indices(leaves: &[(u64, B256)]) -> Result<Option<u64>, MerkleError> {
    for w in leaves.windows(2) {
        if w[1].0 <= w[0].0 {
            return Err(MerkleError::NotIncreasing {
                previous: w[0].0,
                index: w[1].0,
            });
        }
    }
    Ok(leaves.last().map(|l| l.0))
}

/// A sparse Merkle tree; every level's present nodes are kept so a proof is a few lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseMerkleTree {
    /// `levels[0]` are the present leaves; the last level holds the root (if any leaf).
    levels: Vec<Level>,
    depth: usize,
    /// Highest present index + 1 (0 for an empty tree).
    leaves: u64,
}

impl SparseMerkleTree {
    /// Builds the tree over `(index, leaf hash)` pairs with strictly increasing indices.
    pub fn from_indexed_leaves(leaves: Vec<(u64, B256)>) -> Result<Self, MerkleError> {
        let Some(max) = check_indices(&leaves)? else {
            return Ok(Self {
                levels: vec![Level::default()],
                depth: 0,
                leaves: 0,
            });
        };
        let depth = depth_for_max_index(max);
        let mut levels = Vec::with_capacity(depth + 1);
        let (index, hash) = leaves.into_iter().unzip();
        levels.push(Level { index, hash });
        for h in 0..depth {
            let mut next = Level {
                index: Vec::with_capacity(levels[h].index.len() / 2 + 1),
                hash: Vec::with_capacity(levels[h].index.len() / 2 + 1),
            };
            parent_level(&levels[h], h, &mut next);
            levels.push(next);
        }
        Ok(Self {
            levels,
            depth,
            leaves: max.saturating_add(1),
        })
    }

    /// The root (zero for an empty tree, the leaf itself for a single leaf at index 0).
    pub fn root(&self) -> B256 {
        self.levels
            .last()
            .and_then(|l| l.hash.first().copied())
            .unwrap_or(B256::ZERO)
    }

    /// Virtual leaf count: highest present index + 1 (0 when empty). A leaf at `u64::MAX`
    /// saturates this to `u64::MAX`; [`Self::depth`] stays exact.
    pub fn len(&self) -> u64 {
        self.leaves
    }

    /// True when no leaf is present.
    pub fn is_empty(&self) -> bool {
        self.leaves == 0
    }

    /// Levels above the leaves (`depth_for(len())`); proofs have this many siblings.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Number of present leaves.
    pub fn present(&self) -> usize {
        self.levels[0].index.len()
    }

    /// The leaf hash at `index` (`B256::ZERO` when absent).
    pub fn leaf(&self, index: u64) -> B256 {
        self.levels[0].get(index).unwrap_or(B256::ZERO)
    }

    /// True when a leaf is present at `index`.
    pub fn contains(&self, index: u64) -> bool {
        self.levels[0].get(index).is_some()
    }

    /// The proof of leaf `index`, present or not, for any `index < 2^depth`; for an absent
    /// index it proves the zero leaf.
    pub fn proof(&self, index: u64) -> Result<MerkleProof, MerkleError> {
        if self.depth < 64 && index >> self.depth != 0 {
            return Err(MerkleError::IndexOutOfRange {
                index,
                leaves: 1u64 << self.depth,
            });
        }
        let zeros = zero_hashes();
        let siblings = (0..self.depth)
            .map(|h| self.levels[h].get((index >> h) ^ 1).unwrap_or(zeros[h]))
            .collect();
        Ok(MerkleProof { index, siblings })
    }
}

/// The root of the sparse tree over `leaves` without keeping the tree (for commitments that are
/// never opened); reuses two buffers level by level.
pub fn sparse_root(leaves: Vec<(u64, B256)>) -> Result<B256, MerkleError> {
    let Some(max) = check_indices(&leaves)? else {
        return Ok(B256::ZERO);
    };
    let (index, hash) = leaves.into_iter().unzip();
    let mut cur = Level { index, hash };
    let mut next = Level::default();
    for h in 0..depth_for_max_index(max) {
        parent_level(&cur, h, &mut next);
        std::mem::swap(&mut cur, &mut next);
    }
    Ok(cur.hash.first().copied().unwrap_or(B256::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{hash_leaf, zero_hash, MerkleTree};
    use rand::{Rng, SeedableRng};

    /// The dense tree over the expansion of `leaves` (zero words where absent).
    fn dense(leaves: &[(u64, B256)]) -> MerkleTree {
        let n = leaves.last().map_or(0, |l| l.0 + 1) as usize;
        let mut v = vec![B256::ZERO; n];
        for (i, h) in leaves {
            v[*i as usize] = *h;
        }
        MerkleTree::from_leaf_hashes(v)
    }

    fn check_against_dense(leaves: Vec<(u64, B256)>) {
        let d = dense(&leaves);
        let s = SparseMerkleTree::from_indexed_leaves(leaves.clone()).unwrap();
        assert_eq!(s.root(), d.root(), "root of {leaves:?}");
        assert_eq!(sparse_root(leaves.clone()).unwrap(), d.root());
        assert_eq!(s.len(), d.len());
        let span = 1u64 << s.depth();
        for i in 0..span {
            let p = s.proof(i).unwrap();
            if i < d.len() {
                assert_eq!(p, d.proof(i).unwrap(), "proof of {i}");
            }
            assert_eq!(p.compute_root(s.leaf(i)), s.root());
            if i < s.len() {
                p.verify(s.root(), s.leaf(i), s.len()).unwrap();
            }
        }
        assert!(s.proof(span).is_err() || s.depth() == 64);
        for (i, h) in &leaves {
            assert_eq!(s.leaf(*i), *h);
            assert!(s.contains(*i));
        }
    }

    #[test]
    fn small_shapes() {
        let a = hash_leaf(b"a");
        let empty = SparseMerkleTree::from_indexed_leaves(vec![]).unwrap();
        assert_eq!(empty.root(), B256::ZERO);
        assert_eq!(empty.proof(0).unwrap().siblings.len(), 0);
        assert!(empty.proof(1).is_err());
        let one = SparseMerkleTree::from_indexed_leaves(vec![(0, a)]).unwrap();
        assert_eq!(one.root(), a);
        let five = SparseMerkleTree::from_indexed_leaves(vec![(5, a)]).unwrap();
        let expect = hash_node(
            &zero_hash(2),
            &hash_node(&hash_node(&B256::ZERO, &a), &zero_hash(1)),
        );
        assert_eq!(five.root(), expect);
        assert_eq!((five.len(), five.depth()), (6, 3));
        check_against_dense(vec![(5, a)]);
        check_against_dense(vec![(0, a)]);
        check_against_dense(vec![]);
    }

    #[test]
    fn random_sparse_sets_match_the_dense_tree() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for case in 0..200 {
            let span: u64 = rng.random_range(1..300);
            let density: f64 = [0.02, 0.2, 0.7, 1.0][case % 4];
            let leaves: Vec<(u64, B256)> = (0..span)
                .filter(|_| rng.random_bool(density))
                .map(|i| (i, hash_leaf(&i.to_be_bytes())))
                .collect();
            check_against_dense(leaves);
        }
    }

    #[test]
    fn far_addresses_stay_cheap_and_exact() {
        // Two runs far apart: the dense expansion would have 2^40 leaves.
        let far = 1u64 << 40;
        let leaves: Vec<(u64, B256)> = (0..4u64)
            .chain(far..far + 3)
            .map(|i| (i, hash_leaf(&i.to_be_bytes())))
            .collect();
        let s = SparseMerkleTree::from_indexed_leaves(leaves.clone()).unwrap();
        assert_eq!(s.depth(), 41);
        for i in [0, 3, 4, far - 1, far, far + 2, far + 3, (far << 1) - 1] {
            let p = s.proof(i).unwrap();
            p.verify(s.root(), s.leaf(i), 1u64 << s.depth()).unwrap();
        }
        assert!(s.proof(far << 1).is_err());
        assert_eq!(sparse_root(leaves).unwrap(), s.root());
        let top =
            SparseMerkleTree::from_indexed_leaves(vec![(u64::MAX, B256::repeat_byte(1))]).unwrap();
        assert_eq!(top.depth(), 64);
        assert_eq!(
            top.proof(u64::MAX)
                .unwrap()
                .compute_root(top.leaf(u64::MAX)),
            top.root()
        );
    }

    #[test]
    fn unordered_indices_are_rejected() {
        let a = B256::repeat_byte(3);
        for bad in [vec![(2, a), (2, a)], vec![(3, a), (1, a)]] {
            assert!(matches!(
                SparseMerkleTree::from_indexed_leaves(bad.clone()),
                Err(MerkleError::NotIncreasing { .. })
            ));
            assert!(sparse_root(bad).is_err());
        }
    }
}
