//! x86-64 SIMD kernels, selected at run time.
//!
//! * AVX2 (`vpmaddubsw` sign trick): `vpmaddubsw` multiplies unsigned by signed bytes and adds
//!   adjacent pairs into *saturating* int16. Feeding it `|x|` (unsigned) and `sign(x)·w`
//!   (`vpsignb`) gives `x·w` per byte pair; since `|x| ≤ 127` and `|w| ≤ 127` a pair sum is at
//!   most 2·127·127 = 32258 < 32767, so it never saturates. `vpmaddwd` with a vector of ones then
//!   widens pairs into int32, added to the accumulators. Exact for every input in [-127, 127].
//! * AVX-512 VNNI (`vpdpbusd`): unsigned × signed bytes, four products summed straight into an
//!   int32 lane without intermediate saturation. X is offset to `u = x + 128 ∈ [1, 255]`, and
//!   `128 · Σ_k W[n][k]` (kept by the packed weights) is subtracted at the end. The int32
//!   accumulator may wrap for K > 65536, but every step is arithmetic mod 2³² and the true result
//!   fits int32, so the final value is exact.
//!
//! Both kernels compute register tiles of MR rows × 16 columns over packed panels (see
//! [`crate::PackedWeights`]); the driver blocks K and T so the weight slice stays in L1 and the
//! X block in L2, and spreads panel groups over the rayon pool.

use std::arch::x86_64::*;

use rayon::prelude::*;

use crate::pack::{PackedWeights, NR};

/// Instruction set of the fast CPU path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX2 `vpsignb` + `vpmaddubsw` + `vpmaddwd`.
    Avx2,
    /// AVX-512 VNNI `vpdpbusd` on 512-bit registers.
    Avx512Vnni,
}

impl Isa {
    /// Whether this CPU runs `self`.
    pub fn available(self) -> bool {
        match self {
            Isa::Avx2 => is_x86_feature_detected!("avx2"),
            Isa::Avx512Vnni => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vnni")
            }
        }
    }

    /// The best instruction set of this CPU, if any.
    pub fn best() -> Option<Isa> {
        [Isa::Avx512Vnni, Isa::Avx2]
            .into_iter()
            .find(|i| i.available())
    }

    /// Rows per register tile.
    fn mr(self) -> usize {
        match self {
            Isa::Avx2 => 4,
            Isa::Avx512Vnni => 8,
        }
    }
}

/// K steps (of 4) per cache block: 256 steps = 1024 k, a 16 KiB weight slice per panel, so the
/// two panels of the VNNI tile (32 KiB) stay in the 48 KiB L1 while a row block streams by.
const KC_STEPS: usize = 256;
/// Rows per cache block of X (64 rows × 1024 k = 64 KiB, or 128 KiB for AVX2's two arrays).
const MC_ROWS: usize = 64;
// (MC_ROWS is a multiple of every tile height MR.)

/// How X bytes are stored for a kernel.
#[derive(Clone, Copy)]
enum XForm {
    /// `|x|` (AVX2, unsigned operand of `vpmaddubsw`).
    Abs,
    /// `x` unchanged (AVX2, the sign source of `vpsignb`).
    Same,
    /// `x + 128` (VNNI, unsigned operand of `vpdpbusd`).
    Offset,
}

impl XForm {
    /// Applies the transform to four bytes at once (SWAR). For `Abs`: with `m` = 0xFF in the
    /// negative bytes, `(b ^ m) + (m & 1)` is `-b` there and `b` elsewhere, and no byte carries
    /// into the next (the largest byte sum is 0x7F + 1, since -128 never reaches a kernel).
    #[inline(always)]
    fn word(self, w: u32) -> u32 {
        match self {
            XForm::Abs => {
                let neg = (w >> 7) & 0x0101_0101;
                let m = neg * 0xFF;
                (w ^ m).wrapping_add(neg)
            }
            XForm::Same => w,
            XForm::Offset => w ^ 0x8080_8080,
        }
    }
}

/// Packs X (T×K) into row groups of `mr`: `[group][k/4][row][4 bytes]`, zero-padded (in the
/// transformed domain), so the kernels read one contiguous stream per group.
fn pack_x(x: &[i8], t: usize, k: usize, k_pad: usize, mr: usize, form: XForm) -> Vec<u8> {
    let groups = t.div_ceil(mr);
    let steps = k_pad / 4;
    let pad = form.word(0).to_le_bytes()[0];
    let mut out = vec![pad; groups * steps * mr * 4];
    out.par_chunks_mut(steps * mr * 4)
        .enumerate()
        .for_each(|(g, dst)| {
            for r in 0..mr.min(t - g * mr) {
                let i = g * mr + r;
                let row = &x[i * k..(i + 1) * k];
                let mut quads = row.chunks_exact(4);
                let mut o = r * 4;
                for q in &mut quads {
                    let w = u32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8]);
                    dst[o..o + 4].copy_from_slice(&form.word(w).to_le_bytes());
                    o += mr * 4;
                }
                let tail = quads.remainder();
                if !tail.is_empty() {
                    let mut b = [0u8; 4];
                    for (d, &v) in b.iter_mut().zip(tail) {
                        *d = v as u8;
                    }
                    let tw = form.word(u32::from_le_bytes(b)).to_le_bytes();
                    dst[o..o + tail.len()].copy_from_slice(&tw[..tail.len()]);
                }
            }
        });
    out
}

/// `out = X · Wᵀ` (T×N) with the given instruction set. The caller checked shapes and ranges
/// and that `isa` is available.
pub(crate) fn gemm(isa: Isa, x: &[i8], t: usize, w: &PackedWeights, out: &mut [i32]) {
    let (n, k, k_pad) = (w.n(), w.k(), w.k_pad());
    let mr = isa.mr();
    let steps = k_pad / 4;
    let groups = t.div_ceil(mr);
    let t_pad = groups * mr;
    let n_panels = w.n_panels();
    let (xa, xs) = match isa {
        Isa::Avx2 => (
            pack_x(x, t, k, k_pad, mr, XForm::Abs),
            pack_x(x, t, k, k_pad, mr, XForm::Same),
        ),
        Isa::Avx512Vnni => (pack_x(x, t, k, k_pad, mr, XForm::Offset), Vec::new()),
    };
    // The accumulators are laid out per row block (MC_ROWS rows), then per panel, then row by
    // row (16 int32 each), so every task (one row block × a run of panels) owns one contiguous
    // slice. Enough tasks to balance the threads, few enough that each task reuses its X block
    // across several panels.
    let threads = rayon::current_num_threads().max(1);
    let rb_rows = MC_ROWS.min(t_pad);
    let row_blocks = t_pad.div_ceil(rb_rows);
    let per_task = (n_panels * row_blocks / (4 * threads)).clamp(1, 8);
    let per_task = if isa == Isa::Avx512Vnni && per_task > 1 {
        per_task & !1
    } else {
        per_task
    };
    let mut acc = vec![0i32; n_panels * t_pad * NR];
    let mut tasks = Vec::new();
    for (rb, block) in acc.chunks_mut(n_panels * rb_rows * NR).enumerate() {
        let rows = block.len() / (n_panels * NR);
        for (c, chunk) in block.chunks_mut(rows * NR * per_task).enumerate() {
            tasks.push((rb, c * per_task, rows, chunk));
        }
    }
    tasks.into_par_iter().for_each(|(rb, p0, rows, chunk)| {
        let pl = rows * NR;
        let np = chunk.len() / pl;
        let g_first = rb * rb_rows / mr;
        let g_end = g_first + rows / mr;
        for kb in (0..steps).step_by(KC_STEPS) {
            let ks = KC_STEPS.min(steps - kb);
            let mut pi = 0;
            while pi < np {
                let pair = isa == Isa::Avx512Vnni && pi + 1 < np;
                let wa = &w.panel(p0 + pi)[kb * NR * 4..];
                for g in g_first..g_end {
                    let xo = (g * steps + kb) * mr * 4;
                    let co = (g - g_first) * mr * NR;
                    // SAFETY: `isa` is available (checked by the caller); the kernels read `ks`
                    // steps from X (`mr*4` bytes each, inside the packed group) and W (64 bytes
                    // each, inside the panel since kb + ks ≤ steps), and write `mr*16` int32 at
                    // `co` inside each panel's slice of this task's chunk.
                    unsafe {
                        match isa {
                            Isa::Avx2 => kernel_avx2(
                                xa.as_ptr().add(xo),
                                xs.as_ptr().add(xo),
                                wa.as_ptr(),
                                ks,
                                chunk[pi * pl + co..].as_mut_ptr(),
                            ),
                            Isa::Avx512Vnni if pair => {
                                let wb = &w.panel(p0 + pi + 1)[kb * NR * 4..];
                                let (ca, cb) = chunk.split_at_mut((pi + 1) * pl);
                                kernel_vnni2(
                                    xa.as_ptr().add(xo),
                                    wa.as_ptr(),
                                    wb.as_ptr(),
                                    ks,
                                    ca[pi * pl + co..].as_mut_ptr(),
                                    cb[co..].as_mut_ptr(),
                                )
                            }
                            Isa::Avx512Vnni => kernel_vnni1(
                                xa.as_ptr().add(xo),
                                wa.as_ptr(),
                                ks,
                                chunk[pi * pl + co..].as_mut_ptr(),
                            ),
                        }
                    }
                }
                pi += if pair { 2 } else { 1 };
            }
        }
    });
    // Scatter the accumulators into row-major Y (and undo the VNNI offset).
    let sums = w.col_sums();
    out.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        let (rb, r) = (i / rb_rows, i % rb_rows);
        let rows = rb_rows.min(t_pad - rb * rb_rows);
        let base = rb * rb_rows * n_panels * NR;
        for p in 0..n_panels {
            let cols = NR.min(n - p * NR);
            let at = base + p * rows * NR + r * NR;
            let src = &acc[at..at + cols];
            let dst = &mut row[p * NR..p * NR + cols];
            match isa {
                Isa::Avx2 => dst.copy_from_slice(src),
                Isa::Avx512Vnni => {
                    for (j, (d, &s)) in dst.iter_mut().zip(src).enumerate() {
                        *d = s.wrapping_sub(sums[p * NR + j].wrapping_mul(128));
                    }
                }
            }
        }
    });
}

/// 4 rows × 16 columns, `steps` k-steps of 4, accumulating into `c` (row stride 16).
#[target_feature(enable = "avx2")]
unsafe fn kernel_avx2(xa: *const u8, xs: *const u8, w: *const i8, steps: usize, c: *mut i32) {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 2]; 4];
    for (r, a) in acc.iter_mut().enumerate() {
        a[0] = _mm256_loadu_si256(c.add(r * NR) as *const __m256i);
        a[1] = _mm256_loadu_si256(c.add(r * NR + 8) as *const __m256i);
    }
    for s in 0..steps {
        let w0 = _mm256_loadu_si256(w.add(s * 64) as *const __m256i);
        let w1 = _mm256_loadu_si256(w.add(s * 64 + 32) as *const __m256i);
        for (r, a) in acc.iter_mut().enumerate() {
            let off = s * 16 + r * 4;
            let ua = _mm256_set1_epi32((xa.add(off) as *const i32).read_unaligned());
            let sg = _mm256_set1_epi32((xs.add(off) as *const i32).read_unaligned());
            let p0 = _mm256_maddubs_epi16(ua, _mm256_sign_epi8(w0, sg));
            let p1 = _mm256_maddubs_epi16(ua, _mm256_sign_epi8(w1, sg));
            a[0] = _mm256_add_epi32(a[0], _mm256_madd_epi16(p0, ones));
            a[1] = _mm256_add_epi32(a[1], _mm256_madd_epi16(p1, ones));
        }
    }
    for (r, a) in acc.iter().enumerate() {
        _mm256_storeu_si256(c.add(r * NR) as *mut __m256i, a[0]);
        _mm256_storeu_si256(c.add(r * NR + 8) as *mut __m256i, a[1]);
    }
}

/// 8 rows × 16 columns of one panel with `vpdpbusd`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel_vnni1(xu: *const u8, w: *const i8, steps: usize, c: *mut i32) {
    let mut acc = [_mm512_setzero_si512(); 8];
    for (r, a) in acc.iter_mut().enumerate() {
        *a = _mm512_loadu_si512(c.add(r * NR) as *const __m512i);
    }
    for s in 0..steps {
        let w0 = _mm512_loadu_si512(w.add(s * 64) as *const __m512i);
        for (r, a) in acc.iter_mut().enumerate() {
            let u = _mm512_set1_epi32((xu.add(s * 32 + r * 4) as *const i32).read_unaligned());
            *a = _mm512_dpbusd_epi32(*a, u, w0);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        _mm512_storeu_si512(c.add(r * NR) as *mut __m512i, *a);
    }
}

/// 8 rows × 32 columns (two panels) with `vpdpbusd`: each X broadcast feeds two products.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel_vnni2(
    xu: *const u8,
    wa: *const i8,
    wb: *const i8,
    steps: usize,
    ca: *mut i32,
    cb: *mut i32,
) {
    let mut acc = [[_mm512_setzero_si512(); 2]; 8];
    for (r, a) in acc.iter_mut().enumerate() {
        a[0] = _mm512_loadu_si512(ca.add(r * NR) as *const __m512i);
        a[1] = _mm512_loadu_si512(cb.add(r * NR) as *const __m512i);
    }
    for s in 0..steps {
        let w0 = _mm512_loadu_si512(wa.add(s * 64) as *const __m512i);
        let w1 = _mm512_loadu_si512(wb.add(s * 64) as *const __m512i);
        for (r, a) in acc.iter_mut().enumerate() {
            let u = _mm512_set1_epi32((xu.add(s * 32 + r * 4) as *const i32).read_unaligned());
            a[0] = _mm512_dpbusd_epi32(a[0], u, w0);
            a[1] = _mm512_dpbusd_epi32(a[1], u, w1);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        _mm512_storeu_si512(ca.add(r * NR) as *mut __m512i, a[0]);
        _mm512_storeu_si512(cb.add(r * NR) as *mut __m512i, a[1]);
    }
}

/// In-register throughput of the exact inner instruction sequence of `isa`, in multiply-adds
/// per second on the calling thread: no loads or stores, independent accumulator chains as in
/// the kernel tile (best of three windows after a warm-up, timed by the thread's CPU time, else
/// by the wall clock). Returns `None` when `isa` is not available.
pub fn peak_macs_per_sec(isa: Isa, iters: u64) -> Option<f64> {
    if !isa.available() {
        return None;
    }
    let run = |n: u64| {
        let cpu0 = thread_cpu_secs();
        let start = std::time::Instant::now();
        // SAFETY: availability checked above.
        let macs = unsafe {
            match isa {
                Isa::Avx2 => peak_avx2(n),
                Isa::Avx512Vnni => peak_vnni(n),
            }
        };
        let wall = start.elapsed().as_secs_f64();
        // On a shared machine the wall clock also counts time slices given to other
        // processes; the thread's own CPU time does not.
        let secs = match (cpu0, thread_cpu_secs()) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => wall,
        };
        macs as f64 / secs
    };
    // A warm-up lets the core reach its clock; the best of three windows is reported.
    run(iters / 4);
    Some((0..3).map(|_| run(iters)).fold(0.0, f64::max))
}

/// CPU time of the calling thread in seconds.
fn thread_cpu_secs() -> Option<f64> {
    #[cfg(unix)]
    return crate::cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID);
    #[cfg(not(unix))]
    None
}

/// 8 chains of `vpsignb, vpmaddubsw, vpmaddwd, vpaddd` (the 4×16 tile of `kernel_avx2`),
/// written in assembly so the compiler cannot hoist the loop-invariant products.
#[target_feature(enable = "avx2")]
unsafe fn peak_avx2(iters: u64) -> u64 {
    std::arch::asm!(
        "vpcmpeqw ymm12, ymm12, ymm12",
        "vpsrlw ymm12, ymm12, 15",
        "vpabsb ymm8, ymm12",
        "vpsubb ymm9, ymm0, ymm8",
        "vmovdqa ymm10, ymm8",
        "vmovdqa ymm11, ymm9",
        "vpxor ymm0, ymm0, ymm0",
        "vpxor ymm1, ymm1, ymm1",
        "vpxor ymm2, ymm2, ymm2",
        "vpxor ymm3, ymm3, ymm3",
        "vpxor ymm4, ymm4, ymm4",
        "vpxor ymm5, ymm5, ymm5",
        "vpxor ymm6, ymm6, ymm6",
        "vpxor ymm7, ymm7, ymm7",
        "2:",
        "vpsignb ymm13, ymm10, ymm9",
        "vpmaddubsw ymm13, ymm8, ymm13",
        "vpmaddwd ymm13, ymm13, ymm12",
        "vpaddd ymm0, ymm0, ymm13",
        "vpsignb ymm14, ymm11, ymm9",
        "vpmaddubsw ymm14, ymm8, ymm14",
        "vpmaddwd ymm14, ymm14, ymm12",
        "vpaddd ymm1, ymm1, ymm14",
        "vpsignb ymm15, ymm10, ymm9",
        "vpmaddubsw ymm15, ymm8, ymm15",
        "vpmaddwd ymm15, ymm15, ymm12",
        "vpaddd ymm2, ymm2, ymm15",
        "vpsignb ymm13, ymm11, ymm9",
        "vpmaddubsw ymm13, ymm8, ymm13",
        "vpmaddwd ymm13, ymm13, ymm12",
        "vpaddd ymm3, ymm3, ymm13",
        "vpsignb ymm14, ymm10, ymm9",
        "vpmaddubsw ymm14, ymm8, ymm14",
        "vpmaddwd ymm14, ymm14, ymm12",
        "vpaddd ymm4, ymm4, ymm14",
        "vpsignb ymm15, ymm11, ymm9",
        "vpmaddubsw ymm15, ymm8, ymm15",
        "vpmaddwd ymm15, ymm15, ymm12",
        "vpaddd ymm5, ymm5, ymm15",
        "vpsignb ymm13, ymm10, ymm9",
        "vpmaddubsw ymm13, ymm8, ymm13",
        "vpmaddwd ymm13, ymm13, ymm12",
        "vpaddd ymm6, ymm6, ymm13",
        "vpsignb ymm14, ymm11, ymm9",
        "vpmaddubsw ymm14, ymm8, ymm14",
        "vpmaddwd ymm14, ymm14, ymm12",
        "vpaddd ymm7, ymm7, ymm14",
        "dec {n}",
        "jnz 2b",
        n = inout(reg) iters.max(1) => _,
        out("ymm0") _,
        out("ymm1") _,
        out("ymm2") _,
        out("ymm3") _,
        out("ymm4") _,
        out("ymm5") _,
        out("ymm6") _,
        out("ymm7") _,
        out("ymm8") _,
        out("ymm9") _,
        out("ymm10") _,
        out("ymm11") _,
        out("ymm12") _,
        out("ymm13") _,
        out("ymm14") _,
        out("ymm15") _,
        options(nostack),
    );
    iters.max(1) * 8 * 32
}

/// 16 chains of `vpdpbusd` (the 8×32 tile of `kernel_vnni2`), in assembly.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn peak_vnni(iters: u64) -> u64 {
    std::arch::asm!(
        "vpternlogd zmm16, zmm16, zmm16, 0xff",
        "vpabsb zmm16, zmm16",
        "vmovdqa64 zmm17, zmm16",
        "vmovdqa64 zmm18, zmm16",
        "vpxord zmm0, zmm0, zmm0",
        "vpxord zmm1, zmm1, zmm1",
        "vpxord zmm2, zmm2, zmm2",
        "vpxord zmm3, zmm3, zmm3",
        "vpxord zmm4, zmm4, zmm4",
        "vpxord zmm5, zmm5, zmm5",
        "vpxord zmm6, zmm6, zmm6",
        "vpxord zmm7, zmm7, zmm7",
        "vpxord zmm8, zmm8, zmm8",
        "vpxord zmm9, zmm9, zmm9",
        "vpxord zmm10, zmm10, zmm10",
        "vpxord zmm11, zmm11, zmm11",
        "vpxord zmm12, zmm12, zmm12",
        "vpxord zmm13, zmm13, zmm13",
        "vpxord zmm14, zmm14, zmm14",
        "vpxord zmm15, zmm15, zmm15",
        "2:",
        "vpdpbusd zmm0, zmm16, zmm17",
        "vpdpbusd zmm1, zmm16, zmm18",
        "vpdpbusd zmm2, zmm16, zmm17",
        "vpdpbusd zmm3, zmm16, zmm18",
        "vpdpbusd zmm4, zmm16, zmm17",
        "vpdpbusd zmm5, zmm16, zmm18",
        "vpdpbusd zmm6, zmm16, zmm17",
        "vpdpbusd zmm7, zmm16, zmm18",
        "vpdpbusd zmm8, zmm16, zmm17",
        "vpdpbusd zmm9, zmm16, zmm18",
        "vpdpbusd zmm10, zmm16, zmm17",
        "vpdpbusd zmm11, zmm16, zmm18",
        "vpdpbusd zmm12, zmm16, zmm17",
        "vpdpbusd zmm13, zmm16, zmm18",
        "vpdpbusd zmm14, zmm16, zmm17",
        "vpdpbusd zmm15, zmm16, zmm18",
        "dec {n}",
        "jnz 2b",
        n = inout(reg) iters.max(1) => _,
        out("zmm0") _,
        out("zmm1") _,
        out("zmm2") _,
        out("zmm3") _,
        out("zmm4") _,
        out("zmm5") _,
        out("zmm6") _,
        out("zmm7") _,
        out("zmm8") _,
        out("zmm9") _,
        out("zmm10") _,
        out("zmm11") _,
        out("zmm12") _,
        out("zmm13") _,
        out("zmm14") _,
        out("zmm15") _,
        out("zmm16") _,
        out("zmm17") _,
        out("zmm18") _,
        options(nostack),
    );
    iters.max(1) * 16 * 64
}

#[cfg(test)]
mod tests {
    use super::XForm;

    #[test]
    fn swar_transforms_match_bytewise() {
        for a in -127i8..=127 {
            for b in [-127i8, -64, -1, 0, 1, 64, 127] {
                let bytes = [a, b, a.wrapping_neg(), b.wrapping_neg()];
                let w = u32::from_le_bytes(bytes.map(|v| v as u8));
                let abs = XForm::Abs.word(w).to_le_bytes();
                let off = XForm::Offset.word(w).to_le_bytes();
                for l in 0..4 {
                    assert_eq!(abs[l], bytes[l].unsigned_abs());
                    assert_eq!(off[l], (bytes[l] as i16 + 128) as u8);
                }
                assert_eq!(XForm::Same.word(w), w);
            }
        }
    }
}
