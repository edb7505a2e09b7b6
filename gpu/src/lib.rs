//! Exact int8 matrix products and their Freivalds audits.
//!
//! # GEMM
//!
//! `Y = X · Wᵀ` with `X` (T×K) and `W` (N×K, the row-major layout of an HF `nn.Linear` weight)
//! holding int8 values in the symmetric range [-127, 127], and `Y` (T×N) int32, **exact**: no
//! saturation, no overflow for `K ≤ MAX_K` (131072). An entry equal to -128 is refused with
//! [`GemmError::OutOfRange`] naming the matrix and position; it is never clamped.
//!
//! ```
//! use verinfer_gpu::{gemm_i8, Backend, PackedWeights};
//! let (t, n, k) = (2, 3, 5);
//! let x: Vec<i8> = (0..t * k).map(|i| i as i8 - 4).collect();
//! let w: Vec<i8> = (0..n * k).map(|i| 7 - i as i8).collect();
//! let packed = PackedWeights::pack(&w, n, k)?; // once per weight matrix
//! let y = gemm_i8(Backend::Cpu, &x, t, &packed)?;
//! assert_eq!(y, gemm_i8(Backend::Reference, &x, t, &packed)?);
//! # Ok::<(), verinfer_gpu::GemmError>(())
//! ```
//!
//! Entry points:
//! * [`PackedWeights::pack`]: validate and pack `W` once (per SKU matrix) and reuse it.
//! * [`gemm_i8`] / [`gemm_i8_into`]: `X · Wᵀ` against packed weights.
//! * [`gemm_i8_unpacked`]: the same for a right-hand side used once (activation × activation
//!   products such as `Q·Kᵀ`, where "W" is the key matrix, S×d).
//! * [`with_threads`]: run a closure on a dedicated pool of N threads. Results never depend on
//!   the thread count (integer sums are exact in any order); tests check 1 vs 2 threads.
//!
//! [`Backend`] picks the implementation; all are bit-identical to [`Backend::Reference`]:
//! `Cpu` (best SIMD path detected at run time: AVX-512 VNNI, else AVX2, else portable), the
//! forced `Avx2` / `Avx512Vnni` paths, `Portable` (plain Rust), and `Tch` (libtorch, feature
//! `tch`: CUDA `_int_mm` when a GPU is present, an exact f32 route on CPU).
//!
//! # Freivalds
//!
//! [`freivalds`] checks a claimed `Y` against `X` and `W` over F_p, p = 2⁶¹ − 1, with random
//! vectors derived from a 32-byte seed by keccak256 (reproducible on the EVM). The weight side
//! `Wᵀ·r` is a separate, reusable [`freivalds::WeightProjection`]; a failure names the wrong rows
//! ([`freivalds::Mismatch`]) and [`freivalds::wrong_columns`] names the wrong entries of a row.
//! See `docs/KERNELS.md` for the design.

mod error;
pub mod freivalds;
mod pack;
mod portable;
mod reference;
#[cfg(feature = "tch")]
pub mod torch;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use error::{GemmError, Operand};
pub use pack::{PackedWeights, MAX_K};
#[cfg(target_arch = "x86_64")]
pub use x86::{peak_macs_per_sec, Isa};

use error::{check_len, check_range};

/// Which implementation computes a product. All give bit-identical results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// The naive triple loop (i64 accumulation). Slow; the ground truth.
    Reference,
    /// Plain Rust, vectorized by the compiler for the build target, multithreaded.
    Portable,
    /// The fastest CPU path detected at run time (AVX-512 VNNI, then AVX2, then portable).
    Cpu,
    /// Force the AVX2 kernel (`vpmaddubsw` sign trick). [`GemmError::Unavailable`] without AVX2.
    Avx2,
    /// Force the AVX-512 VNNI kernel (`vpdpbusd`). [`GemmError::Unavailable`] without it.
    Avx512Vnni,
    /// libtorch: CUDA `_int_mm` when a GPU is present, else an exact CPU route (f32 matmul on
    /// K-chunks of at most 1024, where every partial sum is an exactly representable integer).
    #[cfg(feature = "tch")]
    Tch,
}

impl Backend {
    /// Short name (for benchmark tables and errors).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Reference => "reference",
            Backend::Portable => "portable",
            Backend::Cpu => "cpu",
            Backend::Avx2 => "avx2",
            Backend::Avx512Vnni => "avx512-vnni",
            #[cfg(feature = "tch")]
            Backend::Tch => "tch",
        }
    }

    /// Whether this backend can run on this machine and build.
    pub fn available(self) -> bool {
        match self {
            Backend::Reference | Backend::Portable | Backend::Cpu => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => Isa::Avx2.available(),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512Vnni => Isa::Avx512Vnni.available(),
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx2 | Backend::Avx512Vnni => false,
            #[cfg(feature = "tch")]
            Backend::Tch => true,
        }
    }

    /// What `Cpu` resolves to on this machine ("avx512-vnni", "avx2" or "portable").
    pub fn cpu_path() -> &'static str {
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = Isa::best() {
            return match isa {
                Isa::Avx2 => "avx2",
                Isa::Avx512Vnni => "avx512-vnni",
            };
        }
        "portable"
    }
}

/// `Y = X · Wᵀ` (T×N int32, row-major) for `x` (T×K int8, row-major) and packed `w`.
pub fn gemm_i8(
    backend: Backend,
    x: &[i8],
    t: usize,
    w: &PackedWeights,
) -> Result<Vec<i32>, GemmError> {
    let mut out = vec![0i32; t.saturating_mul(w.n())];
    gemm_i8_into(backend, x, t, w, &mut out)?;
    Ok(out)
}

/// [`gemm_i8`] into a caller-provided buffer of exactly T×N entries (overwritten).
pub fn gemm_i8_into(
    backend: Backend,
    x: &[i8],
    t: usize,
    w: &PackedWeights,
    out: &mut [i32],
) -> Result<(), GemmError> {
    let (n, k) = (w.n(), w.k());
    check_len(Operand::X, x.len(), t, k)?;
    check_len(Operand::Y, out.len(), t, n)?;
    check_range(Operand::X, x, k)?;
    match backend {
        Backend::Reference => reference::gemm(x, t, w.rows(), n, k, out),
        Backend::Portable => portable::gemm(x, w.rows(), n, k, out),
        Backend::Cpu => {
            #[cfg(target_arch = "x86_64")]
            if let Some(isa) = Isa::best() {
                x86::gemm(isa, x, t, w, out);
                return Ok(());
            }
            portable::gemm(x, w.rows(), n, k, out)
        }
        Backend::Avx2 | Backend::Avx512Vnni => {
            #[cfg(target_arch = "x86_64")]
            {
                let isa = if backend == Backend::Avx2 {
                    Isa::Avx2
                } else {
                    Isa::Avx512Vnni
                };
                if !isa.available() {
                    return Err(GemmError::Unavailable(backend.name()));
                }
                x86::gemm(isa, x, t, w, out);
            }
            #[cfg(not(target_arch = "x86_64"))]
            return Err(GemmError::Unavailable(backend.name()));
        }
        #[cfg(feature = "tch")]
        Backend::Tch => torch::gemm_cached(x, t, w, out)?,
    }
    Ok(())
}

/// `Y = X · Bᵀ` for a right-hand side `b` (N×K, row-major) used once, e.g. `Q · Kᵀ` with the
/// key matrix as `b`. Validates and packs `b`, then runs [`gemm_i8`].
pub fn gemm_i8_unpacked(
    backend: Backend,
    x: &[i8],
    t: usize,
    b: &[i8],
    n: usize,
    k: usize,
) -> Result<Vec<i32>, GemmError> {
    match backend {
        // The reference and portable paths never read the packed panels: skip packing.
        Backend::Reference | Backend::Portable => {
            check_len(Operand::W, b.len(), n, k)?;
            check_len(Operand::X, x.len(), t, k)?;
            if k > MAX_K {
                return Err(GemmError::KTooLarge { k, max: MAX_K });
            }
            check_range(Operand::W, b, k)?;
            check_range(Operand::X, x, k)?;
            let mut out = vec![0i32; t * n];
            if backend == Backend::Reference {
                reference::gemm(x, t, b, n, k, &mut out);
            } else {
                portable::gemm(x, b, n, k, &mut out);
            }
            Ok(out)
        }
        _ => gemm_i8(backend, x, t, &PackedWeights::pack(b, n, k)?),
    }
}

/// CPU seconds consumed so far by all threads of this process (`CLOCK_PROCESS_CPUTIME_ID`), or
/// `None` where the clock is unavailable. Benchmarks use it beside the wall clock: on a shared
/// machine the wall clock also counts time slices given to other processes.
pub fn process_cpu_secs() -> Option<f64> {
    #[cfg(unix)]
    return cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID);
    #[cfg(not(unix))]
    None
}

#[cfg(unix)]
fn cpu_clock(clock: libc::clockid_t) -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

/// Runs `f` on a dedicated pool of `threads` worker threads (every product inside uses that
/// pool). Products are bit-identical for every thread count.
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Result<R, GemmError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| GemmError::ThreadPool {
            threads,
            reason: e.to_string(),
        })?;
    Ok(pool.install(f))
}
