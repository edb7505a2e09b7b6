//! libtorch backend (feature `tch`). Not part of the committed path's definition: it must agree
//! with the reference bit for bit, and the tests check that it does.
//!
//! Routes:
//! * [`TorchRoute::IntMm`]: `torch._int_mm` (int8 × int8 → int32). On CUDA (cuBLASLt) this is
//!   the fast path; libtorch's CPU implementation exists too but is slow.
//! * [`TorchRoute::F32Chunked`]: f32 matmul over K-chunks of at most 1024 columns. Every product
//!   is an integer of magnitude ≤ 127² and every partial sum of a chunk is an integer of
//!   magnitude ≤ 1024 · 127² = 16 516 096 < 2²⁴, so it is exactly representable in f32 whatever
//!   order or fused operations the BLAS uses; the chunk results are converted to int32 and summed
//!   in int32 (exact: the total fits by `MAX_K`). Floats are used only as an exact integer
//!   carrier here.

pub use tch::Device;
use tch::{Kind, Tensor};

use crate::error::GemmError;
use crate::pack::PackedWeights;

/// Widest K-chunk of the f32 route: `1024 · 127² < 2²⁴`.
pub const F32_CHUNK: usize = 1024;

/// How libtorch computes the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchRoute {
    /// `torch._int_mm` on the weights' device.
    IntMm,
    /// Exact f32 matmul on K-chunks of ≤ 1024 (CPU or GPU).
    F32Chunked,
}

fn terr(e: tch::TchError) -> GemmError {
    GemmError::Torch(e.to_string())
}

/// `W` prepared once as libtorch tensors on one device.
pub struct TorchWeights {
    n: usize,
    k: usize,
    device: Device,
    /// int8, N×K.
    w_i8: Tensor,
    /// f32 copies of the K-chunks of W (N × ≤1024 each), built on first use of that route.
    w_f32: Vec<Tensor>,
}

/// The device the default route uses: CUDA when libtorch sees a GPU, else the CPU.
pub fn default_device() -> Device {
    Device::cuda_if_available()
}

/// Whether libtorch sees a CUDA device.
pub fn cuda_available() -> bool {
    tch::Cuda::is_available()
}

/// `IntMm` on CUDA, `F32Chunked` on the CPU (where `_int_mm` is slow).
pub fn default_route(device: Device) -> TorchRoute {
    if device.is_cuda() {
        TorchRoute::IntMm
    } else {
        TorchRoute::F32Chunked
    }
}

impl TorchWeights {
    /// Copies the packed weights' rows into libtorch tensors on `device`.
    pub fn new(w: &PackedWeights, device: Device) -> Result<Self, GemmError> {
        let (n, k) = (w.n(), w.k());
        let w_i8 = Tensor::f_from_slice(w.rows())
            .and_then(|t| t.f_view([n as i64, k as i64]))
            .and_then(|t| t.f_to_device(device))
            .map_err(terr)?;
        Ok(Self {
            n,
            k,
            device,
            w_i8,
            w_f32: Vec::new(),
        })
    }

    /// The device the tensors live on.
    pub fn device(&self) -> Device {
        self.device
    }

    fn ensure_f32(&mut self) -> Result<(), GemmError> {
        if !self.w_f32.is_empty() {
            return Ok(());
        }
        let wf = self.w_i8.f_to_kind(Kind::Float).map_err(terr)?;
        for c0 in (0..self.k).step_by(F32_CHUNK) {
            let len = F32_CHUNK.min(self.k - c0);
            let chunk = wf
                .f_narrow(1, c0 as i64, len as i64)
                .and_then(|c| c.f_contiguous())
                .map_err(terr)?;
            self.w_f32.push(chunk);
        }
        Ok(())
    }

    /// `out = X · Wᵀ` through `route`. X is T×K int8 (already validated by the caller).
    pub fn gemm(
        &mut self,
        route: TorchRoute,
        x: &[i8],
        t: usize,
        out: &mut [i32],
    ) -> Result<(), GemmError> {
        let (n, k) = (self.n, self.k);
        let xt = Tensor::f_from_slice(x)
            .and_then(|v| v.f_view([t as i64, k as i64]))
            .and_then(|v| v.f_to_device(self.device))
            .map_err(terr)?;
        let y = match route {
            TorchRoute::IntMm => self.int_mm(&xt, t)?,
            TorchRoute::F32Chunked => {
                self.ensure_f32()?;
                let xf = xt.f_to_kind(Kind::Float).map_err(terr)?;
                let mut acc: Option<Tensor> = None;
                for (i, wc) in self.w_f32.iter().enumerate() {
                    let c0 = (i * F32_CHUNK) as i64;
                    let len = wc.size()[1];
                    let part = xf
                        .f_narrow(1, c0, len)
                        .and_then(|xc| xc.f_matmul(&wc.tr()))
                        .and_then(|p| p.f_to_kind(Kind::Int))
                        .map_err(terr)?;
                    acc = Some(match acc {
                        None => part,
                        Some(a) => a.f_add(&part).map_err(terr)?,
                    });
                }
                acc.ok_or(GemmError::Torch("empty K".into()))?
            }
        };
        let y = y
            .f_to_device(Device::Cpu)
            .and_then(|v| v.f_contiguous())
            .map_err(terr)?;
        y.f_copy_data(out, t * n).map_err(terr)
    }

    /// `_int_mm(X, Wᵀ)`, padding to the CUDA kernel's shape rules (more than 16 rows, K and N
    /// multiples of 8) with zeros, which add nothing to the sums.
    fn int_mm(&self, xt: &Tensor, t: usize) -> Result<Tensor, GemmError> {
        let (n, k) = (self.n as i64, self.k as i64);
        let (t_pad, k_pad, n_pad) = if self.device.is_cuda() {
            ((t as i64).max(17), (k + 7) / 8 * 8, (n + 7) / 8 * 8)
        } else {
            (t as i64, k, n)
        };
        let xp = xt
            .f_constant_pad_nd([0, k_pad - k, 0, t_pad - t as i64])
            .map_err(terr)?;
        let wp = self
            .w_i8
            .f_constant_pad_nd([0, k_pad - k, 0, n_pad - n])
            .map_err(terr)?;
        xp.f_internal_int_mm(&wp.tr())
            .and_then(|y| y.f_narrow(0, 0, t as i64))
            .and_then(|y| y.f_narrow(1, 0, n))
            .map_err(terr)
    }
}

/// The `Backend::Tch` entry: tensors cached inside the packed weights on first use, default
/// device and route.
pub(crate) fn gemm_cached(
    x: &[i8],
    t: usize,
    w: &PackedWeights,
    out: &mut [i32],
) -> Result<(), GemmError> {
    let mut slot = w
        .torch
        .lock()
        .map_err(|_| GemmError::Torch("torch weight cache poisoned".into()))?;
    if slot.is_none() {
        *slot = Some(TorchWeights::new(w, default_device())?);
    }
    match slot.as_mut() {
        Some(tw) => {
            let route = default_route(tw.device());
            tw.gemm(route, x, t, out)
        }
        None => Err(GemmError::Torch("torch weights missing".into())),
    }
}
