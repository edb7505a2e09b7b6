//! Every backend against the naive reference: random shapes (odd sizes, K not a multiple of 32,
//! T = 1, N = 1), extreme values up to K = 65536, -128 refusal, shape errors, thread counts.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use verinfer_gpu::{
    gemm_i8, gemm_i8_unpacked, with_threads, Backend, GemmError, Operand, PackedWeights,
};

fn backends() -> Vec<Backend> {
    #[allow(unused_mut)]
    let mut b = vec![
        Backend::Portable,
        Backend::Cpu,
        Backend::Avx2,
        Backend::Avx512Vnni,
    ];
    #[cfg(feature = "tch")]
    b.push(Backend::Tch);
    b.into_iter().filter(|b| b.available()).collect()
}

fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<i8> {
    (0..len).map(|_| rng.random_range(-127i8..=127)).collect()
}

fn check_all(x: &[i8], t: usize, w: &[i8], n: usize, k: usize) {
    let packed = PackedWeights::pack(w, n, k).unwrap();
    let want = gemm_i8(Backend::Reference, x, t, &packed).unwrap();
    for b in backends() {
        let got = gemm_i8(b, x, t, &packed).unwrap();
        assert_eq!(
            got,
            want,
            "backend {} differs at t={t} n={n} k={k}",
            b.name()
        );
    }
}

#[test]
fn random_shapes_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut shapes = vec![
        (1, 1, 1),
        (1, 1, 33),
        (1, 17, 31),
        (3, 1, 64),
        (5, 16, 4),
        (7, 33, 100),
        (9, 48, 257),
        (16, 32, 512),
        (17, 15, 1000),
        (64, 40, 96),
        (13, 100, 2051),
        (130, 35, 77),
        (203, 17, 1030),
    ];
    for _ in 0..12 {
        shapes.push((
            rng.random_range(1..40),
            rng.random_range(1..70),
            rng.random_range(1..600),
        ));
    }
    for (t, n, k) in shapes {
        let x = random(&mut rng, t * k);
        let w = random(&mut rng, n * k);
        check_all(&x, t, &w, n, k);
    }
}

#[test]
fn extreme_values_do_not_overflow() {
    // K = 65536 with every product at ±127² is the worst case the spec promises.
    let k = 65536;
    let (t, n) = (3, 5);
    let pos = vec![127i8; n * k];
    let neg = vec![-127i8; n * k];
    let alt: Vec<i8> = (0..t * k)
        .map(|i| if i % 2 == 0 { 127 } else { -127 })
        .collect();
    let alt_w: Vec<i8> = (0..n * k)
        .map(|i| if (i / 3) % 2 == 0 { -127 } else { 127 })
        .collect();
    let packed_pos = PackedWeights::pack(&pos, n, k).unwrap();
    for b in backends() {
        let y = gemm_i8(b, &pos[..t * k], t, &packed_pos).unwrap();
        assert!(y.iter().all(|&v| v == 127 * 127 * k as i32), "{}", b.name());
    }
    check_all(&pos[..t * k], t, &neg, n, k);
    check_all(&neg[..t * k], t, &neg, n, k);
    check_all(&alt, t, &alt_w, n, k);
    check_all(&alt, t, &pos, n, k);
}

#[test]
fn minus_128_is_refused_and_named() {
    let (t, n, k) = (2, 3, 7);
    let mut w = vec![1i8; n * k];
    w[2 * k + 5] = -128;
    assert_eq!(
        PackedWeights::pack(&w, n, k).unwrap_err(),
        GemmError::OutOfRange {
            matrix: Operand::W,
            row: 2,
            col: 5
        }
    );
    let packed = PackedWeights::pack(&vec![1i8; n * k], n, k).unwrap();
    let mut x = vec![1i8; t * k];
    x[k + 3] = -128;
    for b in backends().into_iter().chain([Backend::Reference]) {
        assert_eq!(
            gemm_i8(b, &x, t, &packed).unwrap_err(),
            GemmError::OutOfRange {
                matrix: Operand::X,
                row: 1,
                col: 3
            }
        );
    }
    let err = gemm_i8_unpacked(Backend::Reference, &x, t, &w, n, k).unwrap_err();
    assert!(matches!(err, GemmError::OutOfRange { .. }));
}

#[test]
fn shape_errors_are_typed() {
    let packed = PackedWeights::pack(&[1i8; 12], 3, 4).unwrap();
    assert!(matches!(
        gemm_i8(Backend::Cpu, &[1i8; 7], 2, &packed),
        Err(GemmError::Shape {
            matrix: Operand::X,
            ..
        })
    ));
    assert!(matches!(
        PackedWeights::pack(&[1i8; 11], 3, 4),
        Err(GemmError::Shape {
            matrix: Operand::W,
            ..
        })
    ));
    assert!(matches!(
        PackedWeights::pack(&[], 0, 4),
        Err(GemmError::Empty { .. })
    ));
    assert!(matches!(
        gemm_i8(Backend::Cpu, &[], 0, &packed),
        Err(GemmError::Empty { .. })
    ));
}

#[test]
fn thread_counts_agree() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (t, n, k) = (37, 150, 300);
    let x = random(&mut rng, t * k);
    let w = random(&mut rng, n * k);
    let packed = PackedWeights::pack(&w, n, k).unwrap();
    for b in backends() {
        let one = with_threads(1, || gemm_i8(b, &x, t, &packed))
            .unwrap()
            .unwrap();
        let two = with_threads(2, || gemm_i8(b, &x, t, &packed))
            .unwrap()
            .unwrap();
        assert_eq!(one, two, "{}", b.name());
    }
}

#[test]
fn unpacked_matches_packed() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (t, n, k) = (9, 21, 130);
    let x = random(&mut rng, t * k);
    let b = random(&mut rng, n * k);
    let want = gemm_i8_unpacked(Backend::Reference, &x, t, &b, n, k).unwrap();
    for be in backends() {
        assert_eq!(gemm_i8_unpacked(be, &x, t, &b, n, k).unwrap(), want);
    }
}

#[test]
fn transposed_packing_computes_the_other_reduction() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (n, k) = (19, 45);
    let w = random(&mut rng, n * k);
    let wt = PackedWeights::pack_transposed(&w, n, k).unwrap();
    assert_eq!((wt.n(), wt.k()), (k, n));
    for c in 0..k {
        for r in 0..n {
            assert_eq!(wt.row(c).unwrap()[r], w[r * k + c]);
        }
    }
}
