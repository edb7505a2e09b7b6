//! Step output tensors and their row encodings (the preimages of the Merkle leaves).

use crate::error::{ProverError, Result};
use alloy_primitives::{keccak256, B256};
use rayon::prelude::*;
use verinfer_primitives::arith;
use verinfer_primitives::merkle::{row_leaf, LEAF_DOMAIN, ROW_CHUNK};
use verinfer_primitives::sparse::sparse_root;
use verinfer_primitives::SparseMerkleTree;

/// The output of one step. Rows are the Merkle leaves; where each row sits in the tree (its
/// address) is given next to the tensor, see [`Tensor::tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tensor {
    /// Uniform `i32` rows of `cols` elements (embed, GEMM, rope_k, value, pv, residual).
    I32 { cols: usize, data: Vec<i32> },
    /// `QRow`s: `cols` int8 values and one Q31 scale per row.
    Q {
        cols: usize,
        values: Vec<i8>,
        scales: Vec<i64>,
    },
    /// Ragged `i64` rows (attention scores; row length = visible positions).
    Scores(Vec<Vec<i64>>),
    /// Softmax rows: probabilities and `A_p`.
    Probs(Vec<(Vec<i32>, i64)>),
    /// One token id per row.
    Tokens(Vec<u32>),
}

/// A borrowed view of a step output: what is hashed into the trace. The engine commits its
/// working buffers through a view, so committing a tensor copies nothing; an owned [`Tensor`]
/// is made only for the steps an opening keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorView<'a> {
    /// See [`Tensor::I32`].
    I32 { cols: usize, data: &'a [i32] },
    /// See [`Tensor::Q`].
    Q {
        cols: usize,
        values: &'a [i8],
        scales: &'a [i64],
    },
    /// See [`Tensor::Scores`].
    Scores(&'a [Vec<i64>]),
    /// See [`Tensor::Probs`].
    Probs(&'a [(Vec<i32>, i64)]),
    /// See [`Tensor::Tokens`].
    Tokens(&'a [u32]),
}

impl TensorView<'_> {
    /// Number of rows (leaves).
    pub fn rows(&self) -> usize {
        match self {
            TensorView::I32 { cols, data } => data.len().checked_div(*cols).unwrap_or(0),
            TensorView::Q { scales, .. } => scales.len(),
            TensorView::Scores(r) => r.len(),
            TensorView::Probs(r) => r.len(),
            TensorView::Tokens(t) => t.len(),
        }
    }

    /// An owned copy.
    pub fn to_tensor(&self) -> Tensor {
        match *self {
            TensorView::I32 { cols, data } => Tensor::I32 {
                cols,
                data: data.to_vec(),
            },
            TensorView::Q {
                cols,
                values,
                scales,
            } => Tensor::Q {
                cols,
                values: values.to_vec(),
                scales: scales.to_vec(),
            },
            TensorView::Scores(r) => Tensor::Scores(r.to_vec()),
            TensorView::Probs(r) => Tensor::Probs(r.to_vec()),
            TensorView::Tokens(t) => Tensor::Tokens(t.to_vec()),
        }
    }

    /// Appends the byte encoding of row `i` to `out`.
    fn encode_row(&self, i: usize, out: &mut Vec<u8>) {
        match *self {
            TensorView::I32 { cols, data } => {
                for v in &data[i * cols..(i + 1) * cols] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            TensorView::Q {
                cols,
                values,
                scales,
            } => {
                out.extend(values[i * cols..(i + 1) * cols].iter().map(|&v| v as u8));
                out.extend_from_slice(&scales[i].to_be_bytes());
            }
            TensorView::Scores(r) => {
                for v in &r[i] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            TensorView::Probs(r) => {
                out.extend_from_slice(&arith::softmax_row_bytes(&r[i].0, r[i].1))
            }
            TensorView::Tokens(t) => out.extend_from_slice(&t[i].to_be_bytes()),
        }
    }

    /// The byte encoding of row `i`.
    pub fn row_bytes(&self, i: usize) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_row(i, &mut out);
        out
    }

    /// The row's leaf (`merkle::row_leaf`: plain for rows up to 1 KB, through its chunks above).
    fn hash_row(&self, i: usize, buf: &mut Vec<u8>) -> B256 {
        buf.clear();
        buf.push(LEAF_DOMAIN);
        self.encode_row(i, buf);
        if buf.len() - 1 <= ROW_CHUNK {
            keccak256(&buf[..])
        } else {
            row_leaf(&buf[1..])
        }
    }

    /// Leaf hashes of every row, computed in parallel.
    pub fn leaf_hashes(&self) -> Vec<B256> {
        (0..self.rows())
            .into_par_iter()
            .map_init(Vec::new, |buf, i| self.hash_row(i, buf))
            .collect()
    }

    /// `(address, leaf hash)` of every row, rows hashed in parallel; row `i` sits at
    /// `addresses[i]` (docs/ARITHMETIC.md §5).
    pub fn addressed_leaves(&self, addresses: &[u64]) -> Result<Vec<(u64, B256)>> {
        if addresses.len() != self.rows() {
            return Err(ProverError::RowAddresses {
                rows: self.rows(),
                addresses: addresses.len(),
            });
        }
        Ok(addresses
            .par_iter()
            .enumerate()
            .map_init(Vec::new, |buf, (i, &a)| (a, self.hash_row(i, buf)))
            .collect())
    }

    /// The tensor root with rows at `addresses` (zero for a tensor without rows).
    pub fn root(&self, addresses: &[u64]) -> Result<B256> {
        Ok(sparse_root(self.addressed_leaves(addresses)?)?)
    }
}

impl Tensor {
    /// A borrowed view (what [`TensorView`] hashes is exactly what this tensor hashes).
    pub fn view(&self) -> TensorView<'_> {
        match self {
            Tensor::I32 { cols, data } => TensorView::I32 { cols: *cols, data },
            Tensor::Q {
                cols,
                values,
                scales,
            } => TensorView::Q {
                cols: *cols,
                values,
                scales,
            },
            Tensor::Scores(r) => TensorView::Scores(r),
            Tensor::Probs(r) => TensorView::Probs(r),
            Tensor::Tokens(t) => TensorView::Tokens(t),
        }
    }

    /// Number of rows (leaves).
    pub fn rows(&self) -> usize {
        self.view().rows()
    }

    /// The byte encoding of row `i`.
    pub fn row_bytes(&self, i: usize) -> Vec<u8> {
        self.view().row_bytes(i)
    }

    /// Leaf hashes of every row, computed in parallel.
    pub fn leaf_hashes(&self) -> Vec<B256> {
        self.view().leaf_hashes()
    }

    /// `(address, leaf hash)` of every row, rows hashed in parallel; row `i` sits at
    /// `addresses[i]` (docs/ARITHMETIC.md §5).
    pub fn addressed_leaves(&self, addresses: &[u64]) -> Result<Vec<(u64, B256)>> {
        self.view().addressed_leaves(addresses)
    }

    /// The sparse Merkle tree of the rows placed at `addresses` (strictly increasing).
    pub fn tree(&self, addresses: &[u64]) -> Result<SparseMerkleTree> {
        Ok(SparseMerkleTree::from_indexed_leaves(
            self.addressed_leaves(addresses)?,
        )?)
    }

    /// The tensor root with rows at `addresses` (zero for a tensor without rows).
    pub fn root(&self, addresses: &[u64]) -> Result<B256> {
        self.view().root(addresses)
    }

    /// An empty tensor (a step of a round with no active prompt).
    pub fn empty() -> Self {
        Tensor::Tokens(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verinfer_primitives::merkle::hash_leaf;
    use verinfer_primitives::rows;

    #[test]
    fn encodings_match_primitives() {
        let t = Tensor::I32 {
            cols: 2,
            data: vec![1, -2, 3, 4],
        };
        assert_eq!(t.row_bytes(1), rows::i32_row_bytes(&[3, 4]));
        let q = Tensor::Q {
            cols: 2,
            values: vec![-1, 2],
            scales: vec![5],
        };
        assert_eq!(q.row_bytes(0), arith::qrow_bytes(&[-1, 2], &[5]));
        let s = Tensor::Scores(vec![vec![-1, 7]]);
        assert_eq!(s.row_bytes(0), rows::i64_row_bytes(&[-1, 7]));
        let tok = Tensor::Tokens(vec![9, 10]);
        assert_eq!(tok.leaf_hashes()[1], hash_leaf(&rows::u32_row_bytes(&[10])));
        assert_eq!(Tensor::empty().root(&[]).unwrap(), B256::ZERO);
        // Rows sit at their addresses; absent addresses are zero leaves.
        let root = tok.root(&[1, 4]).unwrap();
        let tree = tok.tree(&[1, 4]).unwrap();
        assert_eq!(tree.root(), root);
        let dense = verinfer_primitives::MerkleTree::from_leaf_hashes(vec![
            B256::ZERO,
            hash_leaf(&rows::u32_row_bytes(&[9])),
            B256::ZERO,
            B256::ZERO,
            hash_leaf(&rows::u32_row_bytes(&[10])),
        ]);
        assert_eq!(root, dense.root());
        assert!(tok.root(&[1]).is_err());
        assert!(tok.root(&[4, 1]).is_err());
    }
}
