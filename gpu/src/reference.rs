//! The naive reference: one exact dot product per output entry, no tricks. Every other backend
//! must agree with it bit for bit.

/// `Y[t][n] = Σ_k X[t][k] · W[n][k]`, accumulated in i64 and narrowed (the callers guarantee
/// the int32 range through `MAX_K`).
pub(crate) fn gemm(x: &[i8], t: usize, w: &[i8], n: usize, k: usize, out: &mut [i32]) {
    for i in 0..t {
        let xr = &x[i * k..(i + 1) * k];
        for j in 0..n {
            let wr = &w[j * k..(j + 1) * k];
            let mut s: i64 = 0;
            for (&a, &b) in xr.iter().zip(wr) {
                s += a as i64 * b as i64;
            }
            out[i * n + j] = s as i32;
        }
    }
}
