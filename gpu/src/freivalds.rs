//! Freivalds audits of `Y = X · Wᵀ` over F_p, p = 2⁶¹ − 1.
//!
//! For a random `r ∈ F_p^N`, an honest `Y` satisfies `X · (Wᵀ·r) = Y · r` row by row; a `Y`
//! with any wrong entry in row t fails that row's check except with probability ≤ 1/p per round
//! (the difference row is a nonzero integer vector of magnitude < 2³² < p, so it is nonzero mod
//! p, and a nonzero linear form vanishes on at most a 1/p fraction of the uniform r).
//!
//! # Random vectors (reproducible on the EVM)
//!
//! For round `ρ` (u32) and a 32-byte seed, block `i` (u64) is
//! `h_i = keccak256(seed ‖ be32(ρ) ‖ be64(i))` (44 bytes, i.e.
//! `abi.encodePacked(bytes32 seed, uint32 round, uint64 i)`), and
//! `r[4i + l] = uint64(bytes8 word l of h_i, big-endian) mod p` for l = 0..3.
//! [`challenge`] computes it.
//!
//! # Cost split
//!
//! * [`WeightProjection`]: `v = Wᵀ·r` (length K) per round, computed once per weight matrix per
//!   batch (r is fixed for the batch after posting) and reused for every receipt. It runs
//!   through the int8 GEMM kernels: r is written in balanced base 255 (eight digits in
//!   [-127, 127], an int8 matrix of 8 rows), multiplied with the packed `Wᵀ` (exact int32 sums),
//!   and recombined mod p.
//! * Per receipt, [`WeightProjection::verify`]: `X·v` (v cut into base-255 digits, again through
//!   the int8 kernels) and `Y·r` (r cut into three 21-bit limbs, exact int64 sums over blocks
//!   of 2048 columns, vectorized), then one comparison per row.

use alloy_primitives::keccak256;
use rayon::prelude::*;

use crate::error::{check_len, GemmError, Operand};
use crate::{gemm_i8, Backend, PackedWeights};

/// The Mersenne prime 2⁶¹ − 1.
pub const P: u64 = (1 << 61) - 1;

/// Radix of the int8 route: field elements are written in balanced base 255, whose digits lie in
/// [-127, 127] (valid kernel inputs); 8 digits cover ±(255⁸ − 1)/2 ≈ ±8.9·10¹⁸ > p.
const RADIX: i64 = 255;
const LIMBS: usize = 8;
/// 255^l for l = 0..7 (255⁷ ≈ 7.0·10¹⁶ < p).
const RADIX_POW: [u64; LIMBS] = {
    let mut p = [1u64; LIMBS];
    let mut l = 1;
    while l < LIMBS {
        p[l] = p[l - 1] * RADIX as u64;
        l += 1;
    }
    p
};

/// The balanced base-255 digits of `e < p`, least significant first.
fn digits(e: u64) -> [i8; LIMBS] {
    let mut x = e as i64;
    let mut d = [0i8; LIMBS];
    for slot in d.iter_mut() {
        let m = x.rem_euclid(RADIX);
        let v = if m > 127 { m - RADIX } else { m };
        *slot = v as i8;
        x = (x - v) / RADIX;
    }
    d
}
/// Limb width of the `Y·r` route: |y| < 2³¹ times r_l < 2²¹ is < 2⁵², so 2048 terms fit i64.
const YR_BITS: u32 = 21;
const YR_BLOCK: usize = 2048;

/// `x mod p` for any u128 (two Mersenne folds and one conditional subtraction).
fn reduce128(x: u128) -> u64 {
    let s = (x as u64 & P) as u128 + (x >> 61);
    let s = (s as u64 & P) + (s >> 61) as u64;
    if s >= P {
        s - P
    } else {
        s
    }
}

/// `a + b mod p` for a, b < p.
pub fn add(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= P {
        s - P
    } else {
        s
    }
}

/// `a · b mod p` for a, b < 2⁶⁴.
pub fn mul(a: u64, b: u64) -> u64 {
    reduce128(a as u128 * b as u128)
}

/// The canonical residue of a signed integer.
pub fn from_i64(v: i64) -> u64 {
    v.rem_euclid(P as i64) as u64
}

/// The Freivalds vector of `round`: `len` elements of F_p derived from `seed` (see the module
/// docs for the exact keccak256 layout).
pub fn challenge(seed: &[u8; 32], round: u32, len: usize) -> Vec<u64> {
    let mut out = vec![0u64; len];
    out.par_chunks_mut(4 * 256)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut msg = [0u8; 44];
            msg[..32].copy_from_slice(seed);
            msg[32..36].copy_from_slice(&round.to_be_bytes());
            for (b, block) in chunk.chunks_mut(4).enumerate() {
                let i = (c * 256 + b) as u64;
                msg[36..44].copy_from_slice(&i.to_be_bytes());
                let h = keccak256(msg);
                for (l, r) in block.iter_mut().enumerate() {
                    let mut word = [0u8; 8];
                    word.copy_from_slice(&h[8 * l..8 * l + 8]);
                    *r = u64::from_be_bytes(word) % P;
                }
            }
        });
    out
}

/// Rows of a claimed product that failed at least one round, in increasing order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Freivalds check failed on {} row(s) of Y, first {:?}", rows.len(), rows.iter().take(8).collect::<Vec<_>>())]
pub struct Mismatch {
    /// Wrong rows of Y (0-based).
    pub rows: Vec<usize>,
}

/// Why an audit did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The claimed product is wrong on these rows.
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    /// The operands are malformed (shape, -128, ...).
    #[error(transparent)]
    Gemm(#[from] GemmError),
    /// `rounds` was zero: an audit must test at least one vector.
    #[error("an audit needs at least one round")]
    NoRounds,
    /// The projection was made for other dimensions than the operands.
    #[error("projection is for W of {n}×{k}, operands need {want_n}×{want_k}")]
    Dimensions {
        /// N of the projection.
        n: usize,
        /// K of the projection.
        k: usize,
        /// N implied by the operands.
        want_n: usize,
        /// K implied by the operands.
        want_k: usize,
    },
}

/// Cuts each vector of F_p into its `LIMBS` balanced base-255 digits: row `v * LIMBS + l` holds
/// digit l of vector v (an int8 matrix of (vectors·LIMBS) × len, entries in [-127, 127]).
fn limbs_i8(vectors: &[Vec<u64>], len: usize) -> Vec<i8> {
    let mut out = vec![0i8; vectors.len() * LIMBS * len];
    for (v, vec) in vectors.iter().enumerate() {
        let block = &mut out[v * LIMBS * len..(v + 1) * LIMBS * len];
        for (j, &e) in vec.iter().enumerate().take(len) {
            for (l, d) in digits(e).into_iter().enumerate() {
                block[l * len + j] = d;
            }
        }
    }
    out
}

/// Σ_l 255^l · z_l mod p for the digit sums of one vector.
fn recombine(z: impl Iterator<Item = i32>) -> u64 {
    let mut acc: u64 = 0;
    for (l, v) in z.enumerate() {
        acc = add(acc, mul(from_i64(v as i64), RADIX_POW[l]));
    }
    acc
}

/// `A · vecs` over F_p for an int8 matrix A (as a GEMM right-hand side, rows × len) and field
/// vectors of length len: returns, per vector, `rows` residues. The big product runs through
/// the int8 kernels with the limbs as the left-hand side.
fn matvec_packed(a: &PackedWeights, vecs: &[Vec<u64>]) -> Result<Vec<Vec<u64>>, GemmError> {
    let (rows, len) = (a.n(), a.k());
    let limbs = limbs_i8(vecs, len);
    let z = gemm_i8(Backend::Cpu, &limbs, vecs.len() * LIMBS, a)?;
    Ok((0..vecs.len())
        .map(|v| {
            (0..rows)
                .map(|j| recombine((0..LIMBS).map(|l| z[(v * LIMBS + l) * rows + j])))
                .collect()
        })
        .collect())
}

/// `X · vecs` over F_p for X (t×k int8, row-major): the limbs of the vectors are packed as the
/// right-hand side, so the product is X (t×k) times (vectors·9)×k.
fn matvec_x(x: &[i8], t: usize, k: usize, vecs: &[Vec<u64>]) -> Result<Vec<Vec<u64>>, GemmError> {
    let limbs = limbs_i8(vecs, k);
    let cols = vecs.len() * LIMBS;
    let packed = PackedWeights::pack(&limbs, cols, k)?;
    let z = gemm_i8(Backend::Cpu, x, t, &packed)?;
    Ok((0..vecs.len())
        .map(|v| {
            (0..t)
                .map(|i| recombine((0..LIMBS).map(|l| z[i * cols + v * LIMBS + l])))
                .collect()
        })
        .collect())
}

/// One round's `r` cut into three 21-bit limbs: as i32 rows (portable path, where
/// `y as i64 * r as i64` vectorizes to signed 32×32→64 multiplies) and, for AVX-512, as i64
/// lanes laid out per 16 columns as `[limb][even columns | odd columns]`, so that one load of 16
/// int32 of Y feeds `vpmuldq` directly (even columns sit in the low halves of the 64-bit lanes,
/// odd ones after a 32-bit shift).
struct YrLimbs {
    narrow: [Vec<i32>; 3],
    wide: Vec<i64>,
}

impl YrLimbs {
    fn new(r: &[u64]) -> Self {
        let mask = (1u64 << YR_BITS) - 1;
        let limb = |e: u64, l: u32| ((e >> (YR_BITS * l)) & mask) as i32;
        let narrow = [0, 1, 2].map(|l| r.iter().map(|&e| limb(e, l)).collect());
        let blocks = r.len().div_ceil(16);
        let mut wide = vec![0i64; blocks * 48];
        for (j, &e) in r.iter().enumerate() {
            let (b, c) = (j / 16, j % 16);
            for l in 0..3u32 {
                wide[b * 48 + l as usize * 16 + (c % 2) * 8 + c / 2] = limb(e, l) as i64;
            }
        }
        Self { narrow, wide }
    }
}

fn yr_block(y: &[i32], r0: &[i32], r1: &[i32], r2: &[i32]) -> [i64; 3] {
    let (mut a0, mut a1, mut a2) = (0i64, 0i64, 0i64);
    for j in 0..y.len().min(r0.len()).min(r1.len()).min(r2.len()) {
        let v = y[j] as i64;
        a0 += v * r0[j] as i64;
        a1 += v * r1[j] as i64;
        a2 += v * r2[j] as i64;
    }
    [a0, a1, a2]
}

/// Σ_l 2^(21l) · acc_l mod p.
fn combine_yr(acc: [u64; 3]) -> u64 {
    let mut s = 0;
    for (l, a) in acc.iter().enumerate() {
        s = add(s, mul(*a, 1u64 << (YR_BITS * l as u32)));
    }
    s
}

/// `y_row · r mod p`, portable.
fn row_dot_portable(y: &[i32], r: &YrLimbs) -> u64 {
    let mut acc = [0u64; 3];
    for b in (0..y.len()).step_by(YR_BLOCK) {
        let e = (b + YR_BLOCK).min(y.len());
        let part = yr_block(
            &y[b..e],
            &r.narrow[0][b..e],
            &r.narrow[1][b..e],
            &r.narrow[2][b..e],
        );
        for l in 0..3 {
            acc[l] = add(acc[l], from_i64(part[l]));
        }
    }
    combine_yr(acc)
}

/// `y_row · r mod p` with AVX-512 `vpmuldq`: 16 columns per step, 6 accumulators (3 limbs ×
/// even/odd). A lane gains < 2⁵² per step, so lanes are folded into F_p every 1024 steps.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn row_dot_avx512(y: &[i32], r: &YrLimbs) -> u64 {
    use std::arch::x86_64::*;
    let n = y.len();
    let blocks = n.div_ceil(16);
    let mut tot = [0u64; 3];
    let mut b = 0;
    while b < blocks {
        let end = (b + 1024).min(blocks);
        let mut acc = [_mm512_setzero_si512(); 6];
        for bb in b..end {
            let j = bb * 16;
            let yv = if j + 16 <= n {
                _mm512_loadu_si512(y.as_ptr().add(j) as *const __m512i)
            } else {
                _mm512_maskz_loadu_epi32(((1u32 << (n - j)) - 1) as u16, y.as_ptr().add(j))
            };
            let yo = _mm512_srli_epi64(yv, 32);
            let base = r.wide.as_ptr().add(bb * 48);
            for l in 0..3 {
                let re = _mm512_loadu_si512(base.add(l * 16) as *const __m512i);
                let ro = _mm512_loadu_si512(base.add(l * 16 + 8) as *const __m512i);
                acc[2 * l] = _mm512_add_epi64(acc[2 * l], _mm512_mul_epi32(yv, re));
                acc[2 * l + 1] = _mm512_add_epi64(acc[2 * l + 1], _mm512_mul_epi32(yo, ro));
            }
        }
        for (i, a) in acc.iter().enumerate() {
            let mut lanes = [0i64; 8];
            _mm512_storeu_si512(lanes.as_mut_ptr() as *mut __m512i, *a);
            for v in lanes {
                tot[i / 2] = add(tot[i / 2], from_i64(v));
            }
        }
        b = end;
    }
    combine_yr(tot)
}

/// `y_row · r mod p` on the best path of this CPU.
fn row_dot(y: &[i32], r: &YrLimbs) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F detected; `wide` covers ⌈len/16⌉ blocks and the last load is masked
        // to the row's length.
        return unsafe { row_dot_avx512(y, r) };
    }
    row_dot_portable(y, r)
}

/// `v = Wᵀ·r` for every round of a seed: the weight-side half of an audit, computed once per
/// weight matrix per batch and reused for each receipt.
#[derive(Debug, Clone)]
pub struct WeightProjection {
    n: usize,
    k: usize,
    r: Vec<Vec<u64>>,
    v: Vec<Vec<u64>>,
}

impl WeightProjection {
    /// Derives `rounds` vectors from `seed` and projects the weights. `w_t` is `W` packed
    /// transposed ([`PackedWeights::pack_transposed`]), prepared once per weight matrix.
    pub fn new(w_t: &PackedWeights, seed: &[u8; 32], rounds: u32) -> Result<Self, AuditError> {
        if rounds == 0 {
            return Err(AuditError::NoRounds);
        }
        // w_t is K×N: its reduction length is N.
        let (k, n) = (w_t.n(), w_t.k());
        let r: Vec<Vec<u64>> = (0..rounds).map(|ro| challenge(seed, ro, n)).collect();
        let v = matvec_packed(w_t, &r)?;
        Ok(Self { n, k, r, v })
    }

    /// N (rows of W).
    pub fn n(&self) -> usize {
        self.n
    }

    /// K (columns of W).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of rounds.
    pub fn rounds(&self) -> usize {
        self.r.len()
    }

    /// The random vector r of `round` (length N).
    pub fn r(&self, round: usize) -> Option<&[u64]> {
        self.r.get(round).map(Vec::as_slice)
    }

    /// `Wᵀ·r` of `round` (length K).
    pub fn v(&self, round: usize) -> Option<&[u64]> {
        self.v.get(round).map(Vec::as_slice)
    }

    /// The per-receipt half: checks `X·v = Y·r` for every row and round. `x` is T×K int8,
    /// `y` the claimed T×N int32.
    pub fn verify(&self, x: &[i8], t: usize, y: &[i32]) -> Result<(), AuditError> {
        check_len(Operand::X, x.len(), t, self.k)?;
        check_len(Operand::Y, y.len(), t, self.n)?;
        let lhs = matvec_x(x, t, self.k, &self.v)?;
        let mut bad = vec![false; t];
        for (round, r) in self.r.iter().enumerate() {
            let limbs = YrLimbs::new(r);
            let rhs: Vec<u64> = y
                .par_chunks(self.n)
                .map(|row| row_dot(row, &limbs))
                .collect();
            for (i, b) in bad.iter_mut().enumerate() {
                *b |= lhs[round][i] != rhs[i];
            }
        }
        let rows: Vec<usize> = (0..t).filter(|&i| bad[i]).collect();
        if rows.is_empty() {
            Ok(())
        } else {
            Err(Mismatch { rows }.into())
        }
    }
}

/// A whole audit in one call: projects `w` (N×K, packed for the GEMM) with `rounds` vectors from
/// `seed`, then checks the claimed `y` (T×N) for `x` (T×K). Transposes W on every call; an
/// auditor checking many receipts of one matrix keeps a [`WeightProjection`] instead.
pub fn verify(
    x: &[i8],
    t: usize,
    w: &PackedWeights,
    y: &[i32],
    seed: &[u8; 32],
    rounds: u32,
) -> Result<(), AuditError> {
    let w_t = PackedWeights::pack_transposed(w.rows(), w.n(), w.k())?;
    WeightProjection::new(&w_t, seed, rounds)?.verify(x, t, y)
}

/// Given a row of Y that failed, recomputes it exactly and returns the wrong columns.
pub fn wrong_columns(
    x_row: &[i8],
    w: &PackedWeights,
    y_row: &[i32],
) -> Result<Vec<usize>, AuditError> {
    if y_row.len() != w.n() {
        return Err(AuditError::Dimensions {
            n: w.n(),
            k: w.k(),
            want_n: y_row.len(),
            want_k: x_row.len(),
        });
    }
    let want = gemm_i8(Backend::Cpu, x_row, 1, w)?;
    Ok((0..w.n()).filter(|&j| want[j] != y_row[j]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(y: &[i32], r: &[u64]) -> u64 {
        let mut s: i128 = 0;
        for (&a, &b) in y.iter().zip(r) {
            s += a as i128 * b as i128;
        }
        s.rem_euclid(P as i128) as u64
    }

    #[test]
    fn balanced_digits_recombine() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut vals = vec![
            0,
            1,
            127,
            128,
            254,
            255,
            P - 1,
            P - 128,
            1 << 60,
            (1 << 61) - 2,
        ];
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            vals.push(x % P);
        }
        for e in vals {
            let d = digits(e);
            assert!(d.iter().all(|&v| v != i8::MIN), "{e}");
            let back = recombine(d.iter().map(|&v| v as i32));
            assert_eq!(back, e);
        }
    }

    #[test]
    fn row_dot_paths_agree_with_naive() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for len in [1usize, 2, 15, 16, 17, 31, 33, 100, 5000, 20000] {
            let r: Vec<u64> = (0..len).map(|_| next() % P).collect();
            let y: Vec<i32> = (0..len)
                .map(|j| match j % 5 {
                    0 => i32::MIN,
                    1 => i32::MAX,
                    _ => next() as i32,
                })
                .collect();
            let limbs = YrLimbs::new(&r);
            let want = naive(&y, &r);
            assert_eq!(row_dot_portable(&y, &limbs), want, "portable, len {len}");
            assert_eq!(row_dot(&y, &limbs), want, "best path, len {len}");
        }
    }
}
