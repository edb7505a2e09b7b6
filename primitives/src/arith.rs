//! The integer arithmetic of the Verinfer engine, one pure function per op row.
//!
//! This module IS the arithmetic spec (docs/ARITHMETIC.md explains it in prose): the prover
//! engine calls these functions for every committed value, and the Solidity one-step verifier
//! re-implements them bit for bit. Everything is integer-only; every intermediate fits an `i128`
//! (so a fortiori an EVM `int256`), and the bounds are stated next to each function.
//!
//! Conventions (see the spec for the derivations):
//! - **Q16 activations**: the residual stream, dequantized GEMM outputs, RoPE'd keys, values and
//!   attention outputs are `i32` holding `real · 2^16`, saturated to the `i32` range.
//! - **Quantized activation rows** (`QRow`): int8 values in [-127, 127] plus one scale `S` per
//!   group (`i64`, Q31): the real value of `q` is `q · S / 2^31`.
//! - **Weights**: int8 in [-127, 127] per output channel `j`, with scale `Sw[j]` (`u32`, Q32):
//!   real `W[j][k] = Wq[j][k] · Sw[j] / 2^32`.
//! - **Rounding**: every right shift that rounds uses round-half-away-from-zero
//!   ([`rshift_round`]); divisions used for row constants are floor divisions of non-negative
//!   numbers unless stated.

/// Version of this arithmetic and of how its tensors are committed; part of every SKU id. Bump
/// on any change of a formula, a table or a commitment layout (2: rows at (prompt, position)
/// addresses, docs/ARITHMETIC.md §5).
pub const SPEC_VERSION: u32 = 3;

/// Fractional bits of Q16 activations.
pub const ACT_FRAC: u32 = 16;
/// Fractional bits of activation scales (`QRow` scales).
pub const SCALE_FRAC: u32 = 31;
/// Fractional bits of weight scales `Sw`.
pub const WSCALE_FRAC: u32 = 32;
/// Fractional bits of the RoPE cos/sin table.
pub const ROPE_FRAC: u32 = 30;
/// Largest int8 magnitude used by every quantizer.
pub const QMAX: i64 = 127;

/// Number of entries of the exp2 table (`2^(-f/256)`, `f` in 0..256).
pub const EXP2_LEN: usize = 256;
/// `EXP2[0]`: the table's value of 1.0.
pub const EXP2_ONE: u64 = 1 << 31;
/// Number of entries of the sigmoid table; entry `i` is `σ((i - 1024) / 128)` in Q16.
pub const SIGMOID_LEN: usize = 2049;
/// Index of `σ(0)` in the sigmoid table.
pub const SIGMOID_MID: i64 = 1024;
/// Shift from a Q16 gate value to a sigmoid table index (steps of 1/128).
pub const SIGMOID_SHIFT: u32 = 9;
/// Fractional bits of the sigmoid table entries.
pub const SIGMOID_FRAC: u32 = 16;
/// Right shift of `δ · S_q · C` in the softmax (Q31 scale, Q16 keys, Q32 constant).
pub const SOFTMAX_SHIFT: u32 = 79;
/// Fractional bits of the softmax's log2 argument (`y`, table step 1/256).
pub const SOFTMAX_Y_FRAC: u32 = 8;
/// `A_p = floor(2^SOFTMAX_AP_NUM_BITS / Σ)`.
pub const SOFTMAX_AP_NUM_BITS: u32 = 61;
/// Right shift of `acc · A_p` in the P·V row.
pub const PV_SHIFT: u32 = 45;
/// Elements per leaf when a vector (weight scales, biases, tables) is committed.
pub const VEC_CHUNK: usize = 256;

/// Op codes of the program's steps (also used by the Solidity one-step verifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum OpCode {
    /// Token id → Q16 residual row ([`embed_row`]).
    Embed = 0,
    /// Q16 row → int8 `QRow` of the RMS-normalized row ([`rmsnorm_quant_row`]).
    RmsNormQuant = 1,
    /// int8 activations × int8 weightsᵀ → raw i32 accumulators ([`gemm_element`]).
    Gemm = 2,
    /// q_proj accumulators of one head → RoPE'd int8 `QRow` ([`rope_q_row`]).
    RopeQ = 3,
    /// k_proj accumulators of one kv head → RoPE'd Q16 keys ([`rope_k_row`]).
    RopeK = 4,
    /// v_proj accumulators of one kv head → Q16 values ([`v_row`]).
    Value = 5,
    /// Attention scores, one element = int8 q · Q16 k ([`score_element`]).
    Scores = 6,
    /// Causal softmax of one score row ([`softmax_row`]).
    Softmax = 7,
    /// Probabilities × values for one (token, head) ([`pv_row`]).
    Pv = 8,
    /// Concatenated heads → int8 `QRow` ([`quantize_row`]).
    AttnOut = 9,
    /// Residual add of a dequantized projection ([`residual_row`]).
    Residual = 10,
    /// SiLU(gate) · up → int8 `QRow` ([`silu_mul_row`]).
    SiluMul = 11,
    /// Greedy token choice ([`argmax_row`]).
    Argmax = 12,
}

impl OpCode {
    /// Short lowercase name (used in docs, logs and CLI output).
    pub fn name(self) -> &'static str {
        match self {
            OpCode::Embed => "embed",
            OpCode::RmsNormQuant => "rmsnorm_quant",
            OpCode::Gemm => "gemm",
            OpCode::RopeQ => "rope_q",
            OpCode::RopeK => "rope_k",
            OpCode::Value => "value",
            OpCode::Scores => "scores",
            OpCode::Softmax => "softmax",
            OpCode::Pv => "pv",
            OpCode::AttnOut => "attn_out",
            OpCode::Residual => "residual",
            OpCode::SiluMul => "silu_mul",
            OpCode::Argmax => "argmax",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Integer helpers
// ---------------------------------------------------------------------------------------------

/// `round(v / 2^s)` with ties away from zero (`s` in 1..=126).
#[inline]
pub fn rshift_round(v: i128, s: u32) -> i128 {
    let half = 1i128 << (s - 1);
    if v >= 0 {
        (v + half) >> s
    } else {
        -((-v + half) >> s)
    }
}

/// Saturates to the `i32` range.
#[inline]
pub fn sat_i32(v: i128) -> i32 {
    v.clamp(i32::MIN as i128, i32::MAX as i128) as i32
}

/// `floor(sqrt(n))`, exact for every `u128`.
pub fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    // Newton's iteration from an over-estimate decreases monotonically to floor(sqrt(n)).
    let bits = 128 - n.leading_zeros();
    let mut x: u128 = 1u128 << bits.div_ceil(2);
    loop {
        let y = (x + n / x) >> 1;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// Dequantizes one GEMM accumulator to Q16: `sat_i32(round(y · Sw · S / 2^47))`.
///
/// Bounds: `|y| < 2^29` (K ≤ 2^15), `Sw < 2^32`, `0 ≤ S < 2^40` ⇒ `|product| < 2^101`.
#[inline]
pub fn dequant(y: i32, sw: u32, s: i64) -> i32 {
    let v = (y as i64 * sw as i64) as i128 * s as i128;
    sat_i32(rshift_round(v, SCALE_FRAC + WSCALE_FRAC - ACT_FRAC))
}

/// Per-group int8 quantization of a Q16 row (the `QRow` rule).
///
/// `amax = max|z|`; if `amax = 0` every `q = 0` and `S = 0`. Otherwise
/// `m = floor(127 · 2^32 / amax)`, `q_i = sign(z_i) · ((|z_i| · m + 2^31) >> 32)` (so
/// `|q_i| ≤ 127`), and `S = floor((amax · 2^15 + 63) / 127)` (Q31, `S < 2^39`).
pub fn quantize_row(z: &[i32]) -> (Vec<i8>, i64) {
    let amax = z
        .iter()
        .map(|&v| (v as i64).unsigned_abs())
        .max()
        .unwrap_or(0);
    if amax == 0 {
        return (vec![0; z.len()], 0);
    }
    let m = ((QMAX as u64) << 32) / amax;
    let q = z
        .iter()
        .map(|&v| {
            let mag = (((v as i64).unsigned_abs() * m + (1 << 31)) >> 32) as i8;
            if v < 0 {
                -mag
            } else {
                mag
            }
        })
        .collect();
    (q, quant_scale(amax))
}

/// Q31 scale of a row whose largest magnitude (Q16) is `amax`: `round(amax · 2^15 / 127)`.
#[inline]
fn quant_scale(amax: u64) -> i64 {
    (((amax as u128) << (SCALE_FRAC - ACT_FRAC)) + 63) as i64 / QMAX
}

// ---------------------------------------------------------------------------------------------
// Op rows
// ---------------------------------------------------------------------------------------------

/// Embedding lookup of one token: `h_i = round(E_q[id][i] · Sw[id] / 2^16)` (Q16; `|·| < 2^39`
/// before the shift).
pub fn embed_row(e_row: &[i8], sw: u32) -> Vec<i32> {
    e_row
        .iter()
        .map(|&e| rshift_round(e as i128 * sw as i128, WSCALE_FRAC - ACT_FRAC) as i32)
        .collect()
}

/// RMSNorm of a Q16 row followed by int8 quantization (the norm's gain is folded into the
/// following weight matrices when the SKU is built).
///
/// - `ss = Σ x_i²` (`< 2^76` for n ≤ 2^14), `mean = floor(ss / n)` (Q32),
///   `r = isqrt((mean + eps_q32) · 2^32)` (rms in Q32, `r > 0` when `eps_q32 ≥ 1`).
/// - the int8 values are exactly [`quantize_row`] of `x` (the division by the rms cancels);
/// - the scale is `S = round(amax · 2^47 / (127 · r))` (Q31) with `amax = max|x_i|`;
///   `S = 0` when `amax = 0`.
pub fn rmsnorm_quant_row(x: &[i32], eps_q32: u64) -> (Vec<i8>, i64) {
    let (q, _) = quantize_row(x);
    let amax = x
        .iter()
        .map(|&v| (v as i64).unsigned_abs())
        .max()
        .unwrap_or(0);
    if amax == 0 || x.is_empty() {
        return (q, 0);
    }
    let ss: u128 = x.iter().map(|&v| (v as i128 * v as i128) as u128).sum();
    let mean = ss / x.len() as u128;
    let r = isqrt((mean + eps_q32 as u128) << 32);
    let den = QMAX as u128 * r;
    let s = (((amax as u128) << 47) + den / 2) / den;
    (q, s as i64)
}

/// One GEMM element: `Σ_k x_k · w_k` over int8 rows (`|·| ≤ 127² · K < 2^29` for K ≤ 2^15).
pub fn gemm_element(x: &[i8], w: &[i8]) -> i32 {
    x.iter().zip(w).map(|(&a, &b)| a as i32 * b as i32).sum()
}

/// Dequantizes one head's projection accumulators (plus the optional Q16 bias) and rotates them
/// (rotate-half layout: element `i` pairs with `i + D/2`).
///
/// With `a = z_i`, `b = z_{i+D/2}` (Q16) and `c = cos_i`, `s = sin_i` (Q30):
/// `r_i = round((a·c − b·s) / 2^30)`, `r_{i+D/2} = round((b·c + a·s) / 2^30)`, each saturated
/// to `i32` (`|a·c| < 2^61`, sums `< 2^62`).
pub fn rope_rotate(
    y: &[i32],
    sw: &[u32],
    bias: Option<&[i32]>,
    s_x: i64,
    cos: &[i32],
    sin: &[i32],
) -> Vec<i32> {
    let d = y.len();
    let half = d / 2;
    let z: Vec<i64> = (0..d)
        .map(|i| {
            let v = dequant(y[i], sw[i], s_x) as i64;
            let b = bias.map_or(0, |b| b[i] as i64);
            sat_i32((v + b) as i128) as i64
        })
        .collect();
    let mut out = vec![0i32; d];
    for i in 0..half {
        let (a, b) = (z[i], z[i + half]);
        let (c, s) = (cos[i] as i64, sin[i] as i64);
        out[i] = sat_i32(rshift_round((a * c - b * s) as i128, ROPE_FRAC));
        out[i + half] = sat_i32(rshift_round((b * c + a * s) as i128, ROPE_FRAC));
    }
    out
}

/// One query head: [`rope_rotate`] then [`quantize_row`] → `(q int8 [D], S_q)`.
pub fn rope_q_row(
    y: &[i32],
    sw: &[u32],
    bias: Option<&[i32]>,
    s_x: i64,
    cos: &[i32],
    sin: &[i32],
) -> (Vec<i8>, i64) {
    quantize_row(&rope_rotate(y, sw, bias, s_x, cos, sin))
}

/// One key head: [`rope_rotate`] (Q16 keys, kept unquantized).
pub fn rope_k_row(
    y: &[i32],
    sw: &[u32],
    bias: Option<&[i32]>,
    s_x: i64,
    cos: &[i32],
    sin: &[i32],
) -> Vec<i32> {
    rope_rotate(y, sw, bias, s_x, cos, sin)
}

/// One value head: `v_i = sat_i32(dequant(y_i, Sw_i, S_x) + bias_i)` (Q16).
pub fn v_row(y: &[i32], sw: &[u32], bias: Option<&[i32]>, s_x: i64) -> Vec<i32> {
    (0..y.len())
        .map(|i| {
            let v = dequant(y[i], sw[i], s_x) as i64 + bias.map_or(0, |b| b[i] as i64);
            sat_i32(v as i128)
        })
        .collect()
}

/// One attention score: `Σ_d q_d · k_d` (int8 × Q16, `|·| < 2^46` for D ≤ 256).
pub fn score_element(q: &[i8], k: &[i32]) -> i64 {
    q.iter().zip(k).map(|(&a, &b)| a as i64 * b as i64).sum()
}

/// The softmax's constant: `C = round(log2(e) · 2^8 · 2^32 / sqrt(head_dim))`.
///
/// Computed in floating point when the SKU is built (outside the committed path); the integer
/// is stored in the SKU header and enters the SKU id.
pub fn softmax_constant(head_dim: usize) -> u64 {
    (std::f64::consts::LOG2_E * 2f64.powi(40) / (head_dim as f64).sqrt()).round() as u64
}

/// Causal softmax of one score row (the row holds exactly the visible positions `0..=pos`).
///
/// `M = max S`, `δ_u = M − S_u ≥ 0`, `y_u = floor(δ_u · S_q · C / 2^79)` (log2 units, Q8;
/// `δ < 2^47`, `S_q < 2^40`, `C < 2^40` ⇒ product `< 2^127`, unsigned),
/// `e_u = EXP2[y_u mod 256] >> floor(y_u / 256)` (0 when the shift is ≥ 32),
/// `Σ = Σ e_u` (`2^31 ≤ Σ < 2^48`), `p_u = (e_u + 2^15) >> 16` (in [0, 2^15]),
/// `A_p = floor(2^61 / Σ)` (in [2^13, 2^30]). Real probability ≈ `p_u · A_p / 2^45`.
pub fn softmax_row(scores: &[i64], s_q: i64, c: u64, exp2: &[u32]) -> (Vec<i32>, i64) {
    let Some(&m) = scores.iter().max() else {
        return (Vec::new(), 0);
    };
    let k = s_q as u128 * c as u128;
    let e: Vec<u64> = scores
        .iter()
        .map(|&s| {
            let delta = (m - s) as u128;
            // delta·k < 2^127 by the stated bounds; saturate defensively.
            let y = delta
                .checked_mul(k)
                .map_or(u128::MAX, |v| v >> SOFTMAX_SHIFT);
            let n = y >> SOFTMAX_Y_FRAC;
            if n >= 32 {
                0
            } else {
                (exp2[(y & 0xff) as usize] as u64) >> n
            }
        })
        .collect();
    let sum: u64 = e.iter().sum();
    let p = e.iter().map(|&v| ((v + (1 << 15)) >> 16) as i32).collect();
    let ap = if sum == 0 {
        0
    } else {
        ((1u128 << SOFTMAX_AP_NUM_BITS) / sum as u128) as i64
    };
    (p, ap)
}

/// One (token, head) attention output: `acc_d = Σ_u p_u · v_u[d]` (`|·| < 2^62` for ≤ 2^16
/// positions), `o_d = sat_i32(round(acc_d · A_p / 2^45))` (Q16).
pub fn pv_row(p: &[i32], ap: i64, v_rows: &[&[i32]]) -> Vec<i32> {
    let d = v_rows.first().map_or(0, |r| r.len());
    let mut acc = vec![0i64; d];
    for (&pu, row) in p.iter().zip(v_rows) {
        if pu == 0 {
            continue;
        }
        for (a, &v) in acc.iter_mut().zip(row.iter()) {
            *a += pu as i64 * v as i64;
        }
    }
    acc.iter()
        .map(|&a| sat_i32(rshift_round(a as i128 * ap as i128, PV_SHIFT)))
        .collect()
}

/// Residual add: `h_i = sat_i32(h_i + dequant(y_i, Sw_i, S_x))`.
pub fn residual_row(h: &[i32], y: &[i32], sw: &[u32], s_x: i64) -> Vec<i32> {
    h.iter()
        .zip(y)
        .zip(sw)
        .map(|((&h, &y), &w)| sat_i32(h as i128 + dequant(y, w, s_x) as i128))
        .collect()
}

/// Sigmoid in Q16 of a Q16 input: `i = round(g / 2^9)` (half away from zero);
/// `i < −1024` → 0, `i > 1024` → 2^16, else `SIGMOID[i + 1024]`.
#[inline]
pub fn sigmoid_q16(g: i32, table: &[u32]) -> u32 {
    let i = rshift_round(g as i128, SIGMOID_SHIFT) as i64;
    if i < -SIGMOID_MID {
        0
    } else if i > SIGMOID_MID {
        1 << SIGMOID_FRAC
    } else {
        table[(i + SIGMOID_MID) as usize]
    }
}

/// SiLU(gate) · up, then [`quantize_row`].
///
/// `g_i = dequant(yg_i, Swg_i, S_x)`, `u_i = dequant(yu_i, Swu_i, S_x)` (Q16),
/// `s_i = round(g_i · σ(g_i) / 2^16)`, `m_i = sat_i32(round(s_i · u_i / 2^16))`
/// (`|g·σ| < 2^48`, `|s·u| < 2^62`).
pub fn silu_mul_row(
    y_gate: &[i32],
    y_up: &[i32],
    sw_gate: &[u32],
    sw_up: &[u32],
    s_x: i64,
    sigmoid: &[u32],
) -> (Vec<i8>, i64) {
    quantize_row(&silu_mul_values(y_gate, y_up, sw_gate, sw_up, s_x, sigmoid))
}

/// The Q16 values `m_i` of a silu_mul row before its quantization (what a chunked dispute of
/// the row folds: the running max |m_i| and each chunk's int8 values).
pub fn silu_mul_values(
    y_gate: &[i32],
    y_up: &[i32],
    sw_gate: &[u32],
    sw_up: &[u32],
    s_x: i64,
    sigmoid: &[u32],
) -> Vec<i32> {
    (0..y_gate.len())
        .map(|i| {
            let g = dequant(y_gate[i], sw_gate[i], s_x);
            let u = dequant(y_up[i], sw_up[i], s_x);
            let s = rshift_round(g as i128 * sigmoid_q16(g, sigmoid) as i128, SIGMOID_FRAC);
            sat_i32(rshift_round(s * u as i128, ACT_FRAC))
        })
        .collect()
}

/// Greedy choice over the first `valid` logits: the `j` maximizing `y_j · Sw_j` (`|·| < 2^61`;
/// the row's activation scale is a common positive factor and is left out), ties → lowest `j`.
/// Ids at or above `valid` (vocabulary padding) are never chosen. `None` when `valid = 0`.
pub fn argmax_row(y: &[i32], sw: &[u32], valid: usize) -> Option<u32> {
    let mut best: Option<(i64, usize)> = None;
    for (j, (&v, &w)) in y.iter().zip(sw).take(valid).enumerate() {
        let key = v as i64 * w as i64;
        if best.is_none_or(|(b, _)| key > b) {
            best = Some((key, j));
        }
    }
    best.map(|(_, j)| j as u32)
}

// ---------------------------------------------------------------------------------------------
// Tables (generated once when a SKU is built; committed in its weight root)
// ---------------------------------------------------------------------------------------------

/// `EXP2[f] = round(2^31 · 2^(−f/256))`, 256 entries (f64 generation, outside the committed
/// path; every entry is far from a rounding tie, so any IEEE-754 libm yields the same table).
pub fn exp2_table() -> Vec<u32> {
    (0..EXP2_LEN)
        .map(|f| (2f64.powf(31.0 - f as f64 / 256.0)).round() as u32)
        .collect()
}

/// `SIGMOID[i] = round(2^16 · σ((i − 1024) / 128))`, 2049 entries.
pub fn sigmoid_table() -> Vec<u32> {
    (0..SIGMOID_LEN)
        .map(|i| {
            let x = (i as f64 - SIGMOID_MID as f64) / 128.0;
            (65536.0 / (1.0 + (-x).exp())).round() as u32
        })
        .collect()
}

/// RoPE table row for position `pos`: `[cos_0..cos_{D/2−1}, sin_0..sin_{D/2−1}]` in Q30, with
/// `angle_i = pos · inv_freq[i]` (float generation when the SKU is built).
pub fn rope_table_row(pos: usize, inv_freq: &[f64]) -> Vec<i32> {
    let scale = (1u64 << ROPE_FRAC) as f64;
    let mut row: Vec<i32> = inv_freq
        .iter()
        .map(|f| ((pos as f64 * f).cos() * scale).round() as i32)
        .collect();
    row.extend(
        inv_freq
            .iter()
            .map(|f| ((pos as f64 * f).sin() * scale).round() as i32),
    );
    row
}

// ---------------------------------------------------------------------------------------------
// Row encodings
// ---------------------------------------------------------------------------------------------

/// Bytes of a `QRow`: the int8 values, then each group's scale as 8 big-endian bytes.
pub fn qrow_bytes(values: &[i8], scales: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() + 8 * scales.len());
    out.extend(values.iter().map(|&v| v as u8));
    for s in scales {
        out.extend_from_slice(&s.to_be_bytes());
    }
    out
}

/// Bytes of a softmax row: the `p` values as 4-byte big-endian, then `A_p` as 8 bytes.
pub fn softmax_row_bytes(p: &[i32], ap: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 * p.len() + 8);
    for v in p {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&ap.to_be_bytes());
    out
}

/// Leaves of a committed vector (weight scales, biases, tables): chunks of [`VEC_CHUNK`]
/// elements, each element 4 big-endian bytes (`u32` and `i32` alike).
pub fn vec_chunks_u32(v: &[u32]) -> Vec<Vec<u8>> {
    v.chunks(VEC_CHUNK)
        .map(|c| c.iter().flat_map(|x| x.to_be_bytes()).collect())
        .collect()
}

/// [`vec_chunks_u32`] for signed vectors.
pub fn vec_chunks_i32(v: &[i32]) -> Vec<Vec<u8>> {
    v.chunks(VEC_CHUNK)
        .map(|c| c.iter().flat_map(|x| x.to_be_bytes()).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    #[test]
    fn rounding_and_saturation_edges() {
        assert_eq!(rshift_round(3, 1), 2); // 1.5 → 2
        assert_eq!(rshift_round(-3, 1), -2); // −1.5 → −2
        assert_eq!(rshift_round(5, 2), 1); // 1.25 → 1
        assert_eq!(rshift_round(-6, 2), -2); // −1.5 → −2
        assert_eq!(rshift_round(0, 5), 0);
        assert_eq!(sat_i32(1i128 << 40), i32::MAX);
        assert_eq!(sat_i32(-(1i128 << 40)), i32::MIN);
    }

    #[test]
    fn isqrt_is_exact_floor() {
        for n in 0u128..2000 {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "n={n}");
        }
        let mut g = rng();
        for _ in 0..2000 {
            let n: u128 = g.random::<u128>() >> g.random_range(0..127);
            let r = isqrt(n);
            assert!(r * r <= n);
            assert!((r + 1).checked_mul(r + 1).is_none_or(|sq| sq > n));
        }
        assert_eq!(isqrt(u128::MAX), u64::MAX as u128);
    }

    #[test]
    fn quantize_row_edges() {
        assert_eq!(quantize_row(&[0, 0, 0]), (vec![0, 0, 0], 0));
        let (q, s) = quantize_row(&[i32::MIN, i32::MAX, 1, -1]);
        assert_eq!(q[0], -127);
        assert_eq!(q[1], 127);
        assert_eq!(q[2], 0);
        assert!(s > 0);
        // The largest magnitude always maps to ±127; the scale reproduces it.
        let mut g = rng();
        for _ in 0..200 {
            let z: Vec<i32> = (0..64)
                .map(|_| g.random_range(-1_000_000..1_000_000))
                .collect();
            let (q, s) = quantize_row(&z);
            let amax = z.iter().map(|v| v.unsigned_abs()).max().unwrap() as f64;
            assert!(q.iter().any(|&v| v.abs() == 127));
            let real_scale = s as f64 / 2f64.powi(31);
            assert!((real_scale * 127.0 - amax / 65536.0).abs() < 1e-6 * amax);
            for (&zi, &qi) in z.iter().zip(&q) {
                let err = (qi as f64 * real_scale - zi as f64 / 65536.0).abs();
                assert!(err <= 0.5 * real_scale + 1e-9, "{zi} {qi}");
            }
        }
    }

    #[test]
    fn rmsnorm_matches_float() {
        let mut g = rng();
        for n in [1usize, 7, 64, 4096] {
            let x: Vec<i32> = (0..n).map(|_| g.random_range(-300_000..300_000)).collect();
            let (q, s) = rmsnorm_quant_row(&x, 42950);
            let xf: Vec<f64> = x.iter().map(|&v| v as f64 / 65536.0).collect();
            let rms = (xf.iter().map(|v| v * v).sum::<f64>() / n as f64 + 1e-5).sqrt();
            let scale = s as f64 / 2f64.powi(31);
            for (xi, qi) in xf.iter().zip(&q) {
                let y = xi / rms;
                assert!((qi.to_owned() as f64 * scale - y).abs() <= 0.51 * scale + 1e-6);
            }
        }
        assert_eq!(rmsnorm_quant_row(&[0; 8], 42950), (vec![0; 8], 0));
        // Saturated inputs stay within the stated bounds.
        let (q, s) = rmsnorm_quant_row(&[i32::MAX; 16384], 0);
        assert_eq!(q[0], 127);
        assert!(s > 0);
    }

    #[test]
    fn dequant_and_gemm_edges() {
        assert_eq!(gemm_element(&[127; 4], &[-127; 4]), -4 * 127 * 127);
        assert_eq!(
            gemm_element(&[-127; 14336], &[-127; 14336]),
            14336 * 127 * 127
        );
        // 1.0 (q=127 with scale 1/127) times a weight of 1.0 (Sw = 2^32/127, Wq = 127).
        let s = quant_scale(65536);
        let sw = ((1u64 << 32) / 127) as u32;
        let v = dequant(127 * 127, sw, s);
        assert!((v - 65536).abs() <= 2, "{v}");
        assert_eq!(dequant(-(1 << 28), u32::MAX, (1 << 40) - 1), i32::MIN);
        assert_eq!(dequant(0, u32::MAX, 1 << 39), 0);
    }

    #[test]
    fn rope_rotates_like_float() {
        let d = 8;
        let inv: Vec<f64> = (0..d / 2)
            .map(|i| 10000f64.powf(-2.0 * i as f64 / d as f64))
            .collect();
        let row = rope_table_row(5, &inv);
        let (cos, sin) = row.split_at(d / 2);
        // Identity dequant: y·Sw·S = y·2^47 needs Sw·S = 2^47: Sw = 2^16, S = 2^31.
        let y: Vec<i32> = vec![65536, -32768, 1000, 0, 0, 65536, -5, 7];
        let r = rope_k_row(&y, &[1 << 16; 8], None, 1 << 31, cos, sin);
        for i in 0..d / 2 {
            let (a, b) = (y[i] as f64, y[i + d / 2] as f64);
            let ang = 5.0 * inv[i];
            assert!((r[i] as f64 - (a * ang.cos() - b * ang.sin())).abs() <= 1.0);
            assert!((r[i + d / 2] as f64 - (b * ang.cos() + a * ang.sin())).abs() <= 1.0);
        }
        let bias = vec![10i32; 8];
        let rb = rope_k_row(
            &[0; 8],
            &[1 << 16; 8],
            Some(&bias),
            1 << 31,
            &[1 << 30; 4],
            &[0; 4],
        );
        assert_eq!(rb, vec![10; 8]);
        assert_eq!(
            v_row(&[3, -3], &[1 << 16; 2], Some(&[1, 1]), 1 << 31),
            vec![4, -2]
        );
    }

    #[test]
    fn softmax_matches_float() {
        let exp2 = exp2_table();
        assert_eq!(exp2[0] as u64, EXP2_ONE);
        let c = softmax_constant(64);
        let mut g = rng();
        for len in [1usize, 2, 17, 300] {
            let s_q = g.random_range(1i64 << 20..1i64 << 30);
            let scores: Vec<i64> = (0..len)
                .map(|_| g.random_range(-(1i64 << 30)..1 << 30))
                .collect();
            let (p, ap) = softmax_row(&scores, s_q, c, &exp2);
            let real: Vec<f64> = scores
                .iter()
                .map(|&s| s as f64 * s_q as f64 / 2f64.powi(31 + 16) / 8.0)
                .collect();
            let m = real.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = real.iter().map(|r| (r - m).exp()).sum();
            for (r, &pi) in real.iter().zip(&p) {
                let want = (r - m).exp() / z;
                let got = pi as f64 * ap as f64 / 2f64.powi(45);
                assert!((want - got).abs() < 2e-3, "len {len}: {want} vs {got}");
            }
        }
        // A single position gets probability 1 exactly: p = 2^15, A_p = 2^30.
        assert_eq!(
            softmax_row(&[12345], 1 << 30, c, &exp2),
            (vec![1 << 15], 1 << 30)
        );
        // Equal scores: uniform.
        let (p, _) = softmax_row(&[7; 4], 1 << 30, c, &exp2);
        assert_eq!(p, vec![1 << 15; 4]);
        // Extreme spread: far positions vanish, no overflow.
        let (p, _) = softmax_row(&[1 << 46, -(1 << 46)], (1 << 40) - 1, c, &exp2);
        assert_eq!(p, vec![1 << 15, 0]);
    }

    #[test]
    fn pv_and_residual() {
        let v0 = [65536, -65536];
        let v1 = [0, 131072];
        // Probabilities 1/2, 1/2: p = 2^15 each, Σ = 2^32 → A_p = 2^29.
        let o = pv_row(&[1 << 15, 1 << 15], 1 << 29, &[&v0, &v1]);
        assert_eq!(o, vec![32768, 32768]);
        let h = residual_row(&[i32::MAX, 5], &[1 << 28, 0], &[u32::MAX; 2], 1 << 39);
        assert_eq!(h, vec![i32::MAX, 5]);
    }

    #[test]
    fn silu_and_sigmoid() {
        let t = sigmoid_table();
        assert_eq!(t.len(), SIGMOID_LEN);
        assert_eq!(sigmoid_q16(0, &t), 32768);
        assert_eq!(sigmoid_q16(i32::MAX, &t), 65536);
        assert_eq!(sigmoid_q16(i32::MIN, &t), 0);
        // Identity dequant (Sw·S = 2^47): silu(1.0)·2.0 ≈ 1.4621.
        let (q, s) = silu_mul_row(&[65536], &[131072], &[1 << 16], &[1 << 16], 1 << 31, &t);
        let real = q[0] as f64 * s as f64 / 2f64.powi(31);
        assert!((real - 2.0 / (1.0 + (-1f64).exp())).abs() < 2e-3, "{real}");
    }

    #[test]
    fn argmax_ties_and_padding() {
        assert_eq!(argmax_row(&[1, 5, 5, 9], &[1, 1, 1, 1], 3), Some(1));
        assert_eq!(argmax_row(&[1, 5, 5, 9], &[1, 1, 1, 1], 4), Some(3));
        assert_eq!(argmax_row(&[2, 1], &[1, 3], 2), Some(1));
        assert_eq!(argmax_row(&[-4, -4], &[1, 1], 2), Some(0));
        assert_eq!(argmax_row(&[], &[], 0), None);
    }

    #[test]
    fn embed_and_encodings() {
        assert_eq!(embed_row(&[127, -127, 1], 1 << 16), vec![127, -127, 1]);
        assert_eq!(embed_row(&[1], 1 << 15), vec![1]); // 0.5 → 1 (away from zero)
        assert_eq!(embed_row(&[-1], 1 << 15), vec![-1]);
        assert_eq!(
            qrow_bytes(&[-1, 2], &[1]),
            vec![0xff, 2, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            softmax_row_bytes(&[1], -1),
            vec![0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(vec_chunks_u32(&vec![1; 300]).len(), 2);
        assert_eq!(vec_chunks_i32(&[-1]), vec![vec![0xff; 4]]);
    }
}
