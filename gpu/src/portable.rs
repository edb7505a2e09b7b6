//! Portable fallback: plain Rust that the compiler vectorizes for whatever target it builds for,
//! parallel over blocks of output entries. Exact because every partial sum stays in int32
//! (`K · 127² < 2³¹`, enforced by `MAX_K`).

use rayon::prelude::*;

/// Output entries per parallel task.
const CHUNK: usize = 256;

fn dot(a: &[i8], b: &[i8]) -> i32 {
    // Chunks of 16 with an i32 accumulator per lane keep the loop vectorizable.
    let mut acc = [0i32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (xa, xb) in (&mut ca).zip(&mut cb) {
        for l in 0..16 {
            acc[l] += xa[l] as i32 * xb[l] as i32;
        }
    }
    let mut s: i32 = acc.iter().sum();
    for (&p, &q) in ca.remainder().iter().zip(cb.remainder()) {
        s += p as i32 * q as i32;
    }
    s
}

pub(crate) fn gemm(x: &[i8], w: &[i8], n: usize, k: usize, out: &mut [i32]) {
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, block)| {
            for (o, y) in block.iter_mut().enumerate() {
                let idx = c * CHUNK + o;
                let (i, j) = (idx / n, idx % n);
                *y = dot(&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
            }
        });
}
