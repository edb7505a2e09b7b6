//! The SKU side of an opening: the weight root's leaves (docs/ARITHMETIC.md §5) and proofs of
//! the matrix rows, vectors, vector chunks and RoPE rows a one-step reads. Each call rebuilds the
//! tree it proves against (a defender opens one step per dispute; at Llama-3-8B dims the largest,
//! the embedding matrix, is ~0.5 GB of hashing): cache them before opening many steps at once.

use alloy_primitives::B256;
use verinfer_primitives::arith::{vec_chunks_i32, vec_chunks_u32};
use verinfer_primitives::rows::{i32_row_bytes, u32_row_bytes};
use verinfer_primitives::MerkleTree;
use verinfer_prover::sku::LAYER_MATRICES;
use verinfer_prover::Sku;

use crate::DisputeError;

/// The weight root of a SKU, rebuilt from its section roots and checked against the header.
#[derive(Debug, Clone)]
pub struct WeightRoot {
    tree: MerkleTree,
    layers: usize,
    stride: usize,
}

/// What of a matrix the L1 sees: its rows root and its scales root (the leaf is their node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatrixRoots {
    pub rows: B256,
    pub scales: B256,
}

impl WeightRoot {
    /// Rebuilds the weight root of `sku`; fails when it does not match the header's.
    pub fn new(sku: &Sku) -> Result<Self, DisputeError> {
        let cfg = sku.config();
        let tree = MerkleTree::from_leaf_hashes(sku.weight_leaves()?);
        if tree.root() != sku.header().weight_root {
            return Err(DisputeError::WeightRoot);
        }
        Ok(WeightRoot {
            tree,
            layers: cfg.layers,
            stride: if cfg.qkv_bias { 10 } else { 7 },
        })
    }

    /// Leaf index of a section (a matrix by its name without `.w`/`.s`, a bias, a table).
    pub fn index_of(&self, name: &str) -> Result<u64, DisputeError> {
        let base = self.layers * self.stride;
        let idx = match name {
            "embed" => base,
            "lm_head" => base + 1,
            "exp2" => base + 2,
            "sigmoid" => base + 3,
            "rope" => base + 4,
            _ => {
                let unknown = || DisputeError::UnknownSection(name.to_string());
                let rest = name.strip_prefix("layers.").ok_or_else(unknown)?;
                let (l, m) = rest.split_once('.').ok_or_else(unknown)?;
                let l: usize = l.parse().map_err(|_| unknown())?;
                let j = match m {
                    "q.b" => 7,
                    "k.b" => 8,
                    "v.b" => 9,
                    _ => LAYER_MATRICES
                        .iter()
                        .position(|&x| x == m)
                        .ok_or_else(unknown)?,
                };
                if l >= self.layers || j >= self.stride {
                    return Err(unknown());
                }
                l * self.stride + j
            }
        };
        Ok(idx as u64)
    }

    /// Siblings of a section's leaf in the weight root.
    pub fn proof(&self, name: &str) -> Result<Vec<B256>, DisputeError> {
        Ok(self.tree.proof(self.index_of(name)?)?.siblings)
    }

    /// Siblings of one half of a matrix leaf (rows root: `half = 0`, scales root: 1), one level
    /// below the weight root's leaves: the other half first, then the leaf's siblings.
    pub fn half_proof(
        &self,
        sku: &Sku,
        matrix: &str,
        half: usize,
    ) -> Result<Vec<B256>, DisputeError> {
        let r = matrix_roots(sku, matrix)?;
        let mut v = vec![if half == 0 { r.scales } else { r.rows }];
        v.extend(self.proof(matrix)?);
        Ok(v)
    }
}

/// The rows and scales roots of matrix `name` (`layers.0.q`, `embed`, `lm_head`, ...).
pub fn matrix_roots(sku: &Sku, name: &str) -> Result<MatrixRoots, DisputeError> {
    Ok(MatrixRoots {
        rows: sku.section(&format!("{name}.w"))?.root,
        scales: sku.section(&format!("{name}.s"))?.root,
    })
}

/// Row `row` of matrix `name` (its int8 bytes) and its proof under the rows root.
pub fn matrix_row(sku: &Sku, name: &str, row: usize) -> Result<(Vec<u8>, Vec<B256>), DisputeError> {
    let sec = sku.section(&format!("{name}.w"))?;
    let cols = sec.cols.max(1);
    let data = sku.section_bytes(&format!("{name}.w"))?;
    let tree = MerkleTree::from_rows(data.chunks(cols));
    let bytes = data
        .chunks(cols)
        .nth(row)
        .ok_or(DisputeError::RowOutOfRange {
            what: "matrix row",
            row: row as u64,
        })?
        .to_vec();
    Ok((bytes, tree.proof(row as u64)?.siblings))
}

/// A whole committed vector as the L1 reads it (big-endian elements): `u32` scales and tables,
/// `i32` biases.
pub fn vector_bytes(sku: &Sku, name: &str) -> Result<Vec<u8>, DisputeError> {
    Ok(match sku.section(name)?.dtype.as_str() {
        "i32" => i32_row_bytes(&sku.vec_i32(name)?),
        _ => u32_row_bytes(&sku.vec_u32(name)?),
    })
}

/// Chunk `index` of the `u32` vector `name` and its proof under the vector's root.
pub fn vector_chunk(
    sku: &Sku,
    name: &str,
    index: usize,
) -> Result<(Vec<u8>, Vec<B256>), DisputeError> {
    let chunks = match sku.section(name)?.dtype.as_str() {
        "i32" => vec_chunks_i32(&sku.vec_i32(name)?),
        _ => vec_chunks_u32(&sku.vec_u32(name)?),
    };
    let tree = MerkleTree::from_rows(chunks.iter().map(Vec::as_slice));
    let bytes = chunks
        .get(index)
        .ok_or(DisputeError::RowOutOfRange {
            what: "vector chunk",
            row: index as u64,
        })?
        .clone();
    Ok((bytes, tree.proof(index as u64)?.siblings))
}

/// Row `pos` of the RoPE table (D big-endian `i32`) and its proof under the table's root.
pub fn rope_row(sku: &Sku, pos: usize) -> Result<(Vec<u8>, Vec<B256>), DisputeError> {
    let d = sku.config().head_dim;
    let table = sku.vec_i32("rope")?;
    let rows: Vec<Vec<u8>> = table.chunks(d).map(i32_row_bytes).collect();
    let tree = MerkleTree::from_rows(rows.iter().map(Vec::as_slice));
    let bytes = rows
        .get(pos)
        .ok_or(DisputeError::RowOutOfRange {
            what: "rope row",
            row: pos as u64,
        })?
        .clone();
    Ok((bytes, tree.proof(pos as u64)?.siblings))
}
