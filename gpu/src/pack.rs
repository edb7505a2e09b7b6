//! Weights packed once for the SIMD kernels.

use rayon::prelude::*;

use crate::error::{check_len, check_range, GemmError, Operand};

/// Output columns per packed panel (one 512-bit or two 256-bit registers of int32).
pub(crate) const NR: usize = 16;

/// Largest reduction length K accepted: `K · 127² < 2³¹` must hold so that every int32
/// accumulator is exact (131072 · 16129 = 2 114 060 288 < 2 147 483 647).
pub const MAX_K: usize = 131_072;

/// The right-hand side `W` (N×K, int8 in [-127, 127], row-major = the HF `nn.Linear` layout),
/// validated and packed once so that every later product reuses it.
///
/// Holds the row-major copy (used by the reference, portable and libtorch backends and by the
/// Freivalds auditor) and the panel layout of the SIMD kernels: panels of [`NR`] = 16 output
/// columns, each stored as `K/4` steps of 16 columns × 4 consecutive k (64 bytes), zero-padded
/// in N and K. It also keeps `Σ_k W[n][k]` per column for the offset form of the VNNI kernel.
pub struct PackedWeights {
    n: usize,
    k: usize,
    k_pad: usize,
    rows: Vec<i8>,
    panels: Vec<i8>,
    col_sums: Vec<i32>,
    #[cfg(feature = "tch")]
    pub(crate) torch: std::sync::Mutex<Option<crate::torch::TorchWeights>>,
}

impl std::fmt::Debug for PackedWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedWeights")
            .field("n", &self.n)
            .field("k", &self.k)
            .finish_non_exhaustive()
    }
}

impl PackedWeights {
    /// Validates and packs `w` (`n` rows × `k` columns, row-major). Refuses -128 anywhere, a
    /// wrong length, an empty dimension and `k > MAX_K`.
    pub fn pack(w: &[i8], n: usize, k: usize) -> Result<Self, GemmError> {
        check_len(Operand::W, w.len(), n, k)?;
        if k > MAX_K {
            return Err(GemmError::KTooLarge { k, max: MAX_K });
        }
        check_range(Operand::W, w, k)?;
        Ok(Self::pack_unchecked(w.to_vec(), n, k))
    }

    /// Packs `Wᵀ` (K×N) from `w` (N×K): the layout the auditor needs to compute `Wᵀ·r`
    /// (a reduction over N) with the same int8 kernels. Same checks as [`PackedWeights::pack`],
    /// with N as the reduction length.
    pub fn pack_transposed(w: &[i8], n: usize, k: usize) -> Result<Self, GemmError> {
        check_len(Operand::W, w.len(), n, k)?;
        if n > MAX_K {
            return Err(GemmError::KTooLarge { k: n, max: MAX_K });
        }
        check_range(Operand::W, w, k)?;
        let mut t = vec![0i8; n * k];
        // Blocked transpose: 64×64 tiles keep both sides in cache.
        const B: usize = 64;
        for r0 in (0..n).step_by(B) {
            for c0 in (0..k).step_by(B) {
                for r in r0..(r0 + B).min(n) {
                    for c in c0..(c0 + B).min(k) {
                        t[c * n + r] = w[r * k + c];
                    }
                }
            }
        }
        Ok(Self::pack_unchecked(t, k, n))
    }

    fn pack_unchecked(rows: Vec<i8>, n: usize, k: usize) -> Self {
        let k_pad = k.div_ceil(4) * 4;
        let n_panels = n.div_ceil(NR);
        let steps = k_pad / 4;
        let mut panels = vec![0i8; n_panels * steps * NR * 4];
        panels
            .par_chunks_mut(steps * NR * 4)
            .enumerate()
            .for_each(|(p, panel)| {
                for j in 0..NR {
                    let col = p * NR + j;
                    if col >= n {
                        break;
                    }
                    let src = &rows[col * k..(col + 1) * k];
                    for (kk, &v) in src.iter().enumerate() {
                        panel[((kk / 4) * NR + j) * 4 + kk % 4] = v;
                    }
                }
            });
        let mut col_sums = vec![0i32; n_panels * NR];
        for (col, s) in col_sums.iter_mut().enumerate().take(n) {
            *s = rows[col * k..(col + 1) * k].iter().map(|&v| v as i32).sum();
        }
        Self {
            n,
            k,
            k_pad,
            rows,
            panels,
            col_sums,
            #[cfg(feature = "tch")]
            torch: std::sync::Mutex::new(None),
        }
    }

    /// Output columns N (rows of W).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Reduction length K (columns of W).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The validated row-major `W` (N×K).
    pub fn rows(&self) -> &[i8] {
        &self.rows
    }

    /// Row `n` of W (K entries).
    pub fn row(&self, n: usize) -> Option<&[i8]> {
        (n < self.n).then(|| &self.rows[n * self.k..(n + 1) * self.k])
    }

    pub(crate) fn k_pad(&self) -> usize {
        self.k_pad
    }

    pub(crate) fn n_panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// Panel `p`: `k_pad/4` steps of 64 bytes.
    pub(crate) fn panel(&self, p: usize) -> &[i8] {
        let len = self.k_pad / 4 * NR * 4;
        &self.panels[p * len..(p + 1) * len]
    }

    /// `Σ_k W[n][k]` per (padded) column.
    pub(crate) fn col_sums(&self) -> &[i32] {
        &self.col_sums
    }
}
