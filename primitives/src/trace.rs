//! The trace's cumulative state: a fixed-depth append-only Merkle tree of step output roots.
//!
//! A shard's program has `step_count` steps; step `s` produces one tensor whose Merkle root is
//! `output_root[s]`. The state root after step `s` is the root of the depth-`D` tree
//! (`D = depth_for(step_count)`) whose leaves are `output_root[0..=s]` followed by zero leaves.
//! The state root before step 0 is `zero_hash(D)`. Going from state `s-1` to `s` only turns leaf
//! `s` from zero into `output_root[s]`, so the L1 can check one transition with one proof, and any
//! earlier output can be opened against any later state root. The trace root of a receipt is the
//! state root after the last step.

use crate::merkle::{depth_for, hash_node, zero_hash, MerkleError, MerkleProof, MerkleTree};
use alloy_primitives::B256;

/// Per-step output roots of one run, with state roots and proofs on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceState {
    step_count: u64,
    output_roots: Vec<B256>,
}

impl TraceState {
    /// An empty trace for a program of `step_count` steps.
    pub fn new(step_count: u64) -> Self {
        Self {
            step_count,
            output_roots: Vec::with_capacity(step_count as usize),
        }
    }

    /// Depth of the state tree.
    pub fn depth(&self) -> usize {
        depth_for(self.step_count)
    }

    /// Number of steps of the program.
    pub fn step_count(&self) -> u64 {
        self.step_count
    }

    /// Records the output root of the next step. Fails once all steps are recorded.
    pub fn push(&mut self, output_root: B256) -> Result<(), MerkleError> {
        let index = self.output_roots.len() as u64;
        if index >= self.step_count {
            return Err(MerkleError::IndexOutOfRange {
                index,
                leaves: self.step_count,
            });
        }
        self.output_roots.push(output_root);
        Ok(())
    }

    /// Output roots recorded so far, in step order.
    pub fn output_roots(&self) -> &[B256] {
        &self.output_roots
    }

    /// State root after step `step` (`None` = before the first step).
    pub fn state_root(&self, step: Option<u64>) -> Result<B256, MerkleError> {
        let depth = self.depth();
        let Some(step) = step else {
            return Ok(zero_hash(depth));
        };
        let n = self.checked_len(step)?;
        let tree = MerkleTree::from_leaf_hashes(self.output_roots[..n].to_vec());
        let mut root = tree.root();
        for h in depth_for(n as u64)..depth {
            root = hash_node(&root, &zero_hash(h));
        }
        Ok(root)
    }

    /// The trace root: the state root after the last recorded step.
    pub fn trace_root(&self) -> B256 {
        let last = (self.output_roots.len() as u64).checked_sub(1);
        self.state_root(last).unwrap_or(B256::ZERO)
    }

    /// Proof of leaf `leaf` (an output root, or the zero leaf of a step not yet done) against
    /// the state root after step `state` (`None` = the empty state).
    pub fn proof(&self, leaf: u64, state: Option<u64>) -> Result<MerkleProof, MerkleError> {
        if leaf >= self.step_count {
            return Err(MerkleError::IndexOutOfRange {
                index: leaf,
                leaves: self.step_count,
            });
        }
        let depth = self.depth();
        let n = match state {
            Some(s) => self.checked_len(s)?,
            None => 0,
        };
        let mut leaves = self.output_roots[..n].to_vec();
        // Pad so the leaf exists in the small tree, then lift it to full depth.
        if (leaves.len() as u64) <= leaf {
            leaves.resize(leaf as usize + 1, B256::ZERO);
        }
        let tree = MerkleTree::from_leaf_hashes(leaves);
        let mut proof = tree.proof(leaf)?;
        for h in depth_for(tree.len())..depth {
            proof.siblings.push(zero_hash(h));
        }
        Ok(proof)
    }

    fn checked_len(&self, step: u64) -> Result<usize, MerkleError> {
        if step >= self.output_roots.len() as u64 {
            return Err(MerkleError::IndexOutOfRange {
                index: step,
                leaves: self.output_roots.len() as u64,
            });
        }
        Ok(step as usize + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::hash_leaf;

    fn trace(steps: u64) -> TraceState {
        let mut t = TraceState::new(steps);
        for s in 0..steps {
            t.push(hash_leaf(&s.to_be_bytes())).unwrap();
        }
        t
    }

    #[test]
    fn one_transition_is_one_leaf_update() {
        for steps in [1u64, 2, 3, 7, 8, 9, 33] {
            let t = trace(steps);
            let d = t.depth() as u64;
            for s in 0..steps {
                let pre = if s == 0 { None } else { Some(s - 1) };
                let pre_root = t.state_root(pre).unwrap();
                let post_root = t.state_root(Some(s)).unwrap();
                let p = t.proof(s, pre).unwrap();
                assert_eq!(p.siblings.len() as u64, d);
                p.verify(pre_root, B256::ZERO, steps).unwrap();
                p.verify(post_root, t.output_roots()[s as usize], steps)
                    .unwrap();
            }
            assert_eq!(t.trace_root(), t.state_root(Some(steps - 1)).unwrap());
        }
    }

    #[test]
    fn earlier_outputs_open_against_later_states() {
        let mut t = trace(13);
        let root = t.state_root(Some(9)).unwrap();
        for j in 0..=9u64 {
            t.proof(j, Some(9))
                .unwrap()
                .verify(root, t.output_roots()[j as usize], 13)
                .unwrap();
        }
        assert!(t.push(B256::ZERO).is_err());
    }
}
