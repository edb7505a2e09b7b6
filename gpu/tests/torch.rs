//! libtorch routes (feature `tch`) against the reference: `_int_mm` and the exact f32-chunked
//! route, on the CPU (and on CUDA when libtorch sees a GPU).
#![cfg(feature = "tch")]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Device;
use verinfer_gpu::torch::{TorchRoute, TorchWeights};
use verinfer_gpu::{gemm_i8, Backend, PackedWeights};

fn devices() -> Vec<Device> {
    let mut d = vec![Device::Cpu];
    if tch::Cuda::is_available() {
        d.push(Device::Cuda(0));
    }
    d
}

#[test]
fn routes_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    // K = 2500 spans three f32 chunks (1024, 1024, 452).
    for (t, n, k) in [(1, 1, 1), (3, 17, 2500), (20, 24, 64), (33, 9, 1030)] {
        let x: Vec<i8> = (0..t * k).map(|_| rng.random_range(-127i8..=127)).collect();
        let w: Vec<i8> = (0..n * k).map(|_| rng.random_range(-127i8..=127)).collect();
        let packed = PackedWeights::pack(&w, n, k).unwrap();
        let want = gemm_i8(Backend::Reference, &x, t, &packed).unwrap();
        for dev in devices() {
            let mut tw = TorchWeights::new(&packed, dev).unwrap();
            for route in [TorchRoute::IntMm, TorchRoute::F32Chunked] {
                let mut out = vec![0i32; t * n];
                tw.gemm(route, &x, t, &mut out).unwrap();
                assert_eq!(out, want, "{route:?} on {dev:?} at t={t} n={n} k={k}");
            }
        }
    }
}

#[test]
fn f32_chunks_are_exact_at_the_extremes() {
    // Each 1024-chunk sums to ±1024·127² = ±16 516 096, just under 2²⁴.
    let (t, n, k) = (2, 3, 4096);
    let x = vec![127i8; t * k];
    let w: Vec<i8> = (0..n * k).map(|i| if i < k { -127 } else { 127 }).collect();
    let packed = PackedWeights::pack(&w, n, k).unwrap();
    let want = gemm_i8(Backend::Reference, &x, t, &packed).unwrap();
    let mut tw = TorchWeights::new(&packed, Device::Cpu).unwrap();
    let mut out = vec![0i32; t * n];
    tw.gemm(TorchRoute::F32Chunked, &x, t, &mut out).unwrap();
    assert_eq!(out, want);
    assert_eq!(out[0], -127 * 127 * k as i32);
}
