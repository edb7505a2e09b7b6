//! Typed errors of the GEMM and audit entry points.

use std::fmt;

/// Which operand of `Y = X · Wᵀ` an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// The left-hand side `X` (T×K, activations).
    X,
    /// The right-hand side `W` (N×K, weights in the HF linear layout).
    W,
    /// The claimed product `Y` (T×N, int32).
    Y,
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operand::X => "X",
            Operand::W => "W",
            Operand::Y => "Y",
        })
    }
}

/// Why a GEMM (or the preparation of its operands) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GemmError {
    /// An entry equals -128. The kernels are exact only on the symmetric range [-127, 127]
    /// (the `vpmaddubsw` sign trick needs `|x| ≤ 127`), so -128 is refused, never clamped.
    #[error("{matrix}[{row}][{col}] = -128 is outside the symmetric int8 range [-127, 127]")]
    OutOfRange {
        /// The operand holding the bad entry.
        matrix: Operand,
        /// Its row.
        row: usize,
        /// Its column.
        col: usize,
    },
    /// A buffer does not have `rows × cols` entries.
    #[error("{matrix} has {len} entries, expected {rows}×{cols} = {expected}")]
    Shape {
        /// The operand with the wrong length.
        matrix: Operand,
        /// Its length.
        len: usize,
        /// Expected rows.
        rows: usize,
        /// Expected columns.
        cols: usize,
        /// `rows * cols` (or `usize::MAX` when that overflows).
        expected: usize,
    },
    /// A dimension is zero.
    #[error("{matrix} has an empty dimension ({rows}×{cols})")]
    Empty {
        /// The operand with an empty dimension.
        matrix: Operand,
        /// Its rows.
        rows: usize,
        /// Its columns.
        cols: usize,
    },
    /// The reduction length is so large that `K · 127²` could leave the int32 range.
    #[error("reduction length K = {k} exceeds the exact int32 limit {max}")]
    KTooLarge {
        /// The requested K.
        k: usize,
        /// [`crate::MAX_K`].
        max: usize,
    },
    /// The worker thread pool could not be built.
    #[error("could not build a thread pool of {threads} threads: {reason}")]
    ThreadPool {
        /// Requested size.
        threads: usize,
        /// Rayon's message.
        reason: String,
    },
    /// The requested backend is not available on this machine or build.
    #[error("backend {0} is not available here")]
    Unavailable(&'static str),
    /// libtorch reported an error (feature `tch`).
    #[error("libtorch: {0}")]
    Torch(String),
}

/// `rows * cols`, checked against `len`.
pub(crate) fn check_len(
    matrix: Operand,
    len: usize,
    rows: usize,
    cols: usize,
) -> Result<(), GemmError> {
    let expected = rows.saturating_mul(cols);
    if rows == 0 || cols == 0 {
        return Err(GemmError::Empty { matrix, rows, cols });
    }
    if len != expected {
        return Err(GemmError::Shape {
            matrix,
            len,
            rows,
            cols,
            expected,
        });
    }
    Ok(())
}

/// Refuses -128 anywhere in a row-major `rows × cols` matrix, naming the first offender.
pub(crate) fn check_range(matrix: Operand, data: &[i8], cols: usize) -> Result<(), GemmError> {
    // Fast scan first (vectorizes); locate only on failure.
    if !data.contains(&i8::MIN) {
        return Ok(());
    }
    let idx = data.iter().position(|&v| v == i8::MIN).unwrap_or(0);
    Err(GemmError::OutOfRange {
        matrix,
        row: idx / cols.max(1),
        col: idx % cols.max(1),
    })
}
