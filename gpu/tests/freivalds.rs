//! Freivalds audits: honest products pass, any single wrong entry is caught and located, the
//! random vectors follow the documented keccak layout, and the field arithmetic is right at the
//! edges.

use alloy_primitives::keccak256;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use verinfer_gpu::freivalds::{
    add, challenge, from_i64, mul, verify, wrong_columns, AuditError, Mismatch, WeightProjection, P,
};
use verinfer_gpu::{gemm_i8, Backend, PackedWeights};

fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<i8> {
    (0..len).map(|_| rng.random_range(-127i8..=127)).collect()
}

fn seed(b: u8) -> [u8; 32] {
    [b; 32]
}

#[test]
fn field_edges() {
    assert_eq!(add(P - 1, 1), 0);
    assert_eq!(add(P - 1, P - 1), P - 2);
    assert_eq!(mul(P - 1, P - 1), 1); // (-1)² = 1
    assert_eq!(mul(P - 1, 2), P - 2);
    assert_eq!(mul(1 << 60, 2), 1); // 2⁶¹ ≡ 1
    assert_eq!(
        mul(u64::MAX, u64::MAX),
        ((u64::MAX as u128 * u64::MAX as u128) % P as u128) as u64
    );
    assert_eq!(from_i64(-1), P - 1);
    assert_eq!(from_i64(P as i64), 0);
    assert_eq!(
        from_i64(i64::MIN),
        ((i64::MIN as i128).rem_euclid(P as i128)) as u64
    );
    assert_eq!(from_i64(i64::MAX), (i64::MAX as u64) % P);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..1000 {
        let (a, b) = (rng.random_range(0..P), rng.random_range(0..P));
        assert_eq!(mul(a, b), ((a as u128 * b as u128) % P as u128) as u64);
        assert_eq!(add(a, b), ((a as u128 + b as u128) % P as u128) as u64);
    }
}

#[test]
fn challenge_follows_the_documented_keccak_layout() {
    let s = seed(9);
    let r = challenge(&s, 3, 4 * 300 + 2);
    assert_eq!(r.len(), 1202);
    for i in [0usize, 1, 255, 256, 257, 300] {
        let mut msg = s.to_vec();
        msg.extend_from_slice(&3u32.to_be_bytes());
        msg.extend_from_slice(&(i as u64).to_be_bytes());
        let h = keccak256(&msg);
        for l in 0..4 {
            if 4 * i + l >= r.len() {
                break;
            }
            let word = u64::from_be_bytes(h[8 * l..8 * l + 8].try_into().unwrap());
            assert_eq!(r[4 * i + l], word % P, "element {}", 4 * i + l);
        }
    }
    assert!(r.iter().all(|&v| v < P));
    assert_ne!(challenge(&s, 4, 8), challenge(&s, 3, 8));
    assert_ne!(challenge(&seed(8), 3, 8), challenge(&s, 3, 8));
}

#[test]
fn projection_equals_naive_field_product() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (n, k) = (37, 53);
    let w = random(&mut rng, n * k);
    let wt = PackedWeights::pack_transposed(&w, n, k).unwrap();
    let proj = WeightProjection::new(&wt, &seed(1), 2).unwrap();
    assert_eq!((proj.n(), proj.k(), proj.rounds()), (n, k, 2));
    for round in 0..2 {
        let r = proj.r(round).unwrap();
        let v = proj.v(round).unwrap();
        for c in 0..k {
            let mut s: i128 = 0;
            for j in 0..n {
                s += w[j * k + c] as i128 * r[j] as i128;
            }
            assert_eq!(v[c], s.rem_euclid(P as i128) as u64);
        }
    }
}

#[test]
fn correct_products_pass() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (t, n, k) in [
        (1, 1, 1),
        (1, 9, 70),
        (5, 3, 4097),
        (17, 33, 129),
        (64, 20, 300),
    ] {
        let x = random(&mut rng, t * k);
        let w = random(&mut rng, n * k);
        let packed = PackedWeights::pack(&w, n, k).unwrap();
        let y = gemm_i8(Backend::Cpu, &x, t, &packed).unwrap();
        verify(&x, t, &packed, &y, &seed(t as u8), 2).unwrap();
    }
    // Extremes: every y entry is ±127²·K, the largest magnitudes the limbs must carry.
    let (t, n, k) = (3, 4, 8192);
    let x = vec![127i8; t * k];
    let w: Vec<i8> = (0..n * k).map(|i| if i < k { -127 } else { 127 }).collect();
    let packed = PackedWeights::pack(&w, n, k).unwrap();
    let y = gemm_i8(Backend::Cpu, &x, t, &packed).unwrap();
    verify(&x, t, &packed, &y, &seed(5), 1).unwrap();
}

#[test]
fn a_single_flipped_entry_is_found_and_located() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (t, n, k) = (24, 40, 96);
    let x = random(&mut rng, t * k);
    let w = random(&mut rng, n * k);
    let packed = PackedWeights::pack(&w, n, k).unwrap();
    let wt = PackedWeights::pack_transposed(&w, n, k).unwrap();
    let proj = WeightProjection::new(&wt, &seed(7), 1).unwrap();
    let y = gemm_i8(Backend::Cpu, &x, t, &packed).unwrap();
    proj.verify(&x, t, &y).unwrap();
    for trial in 0..300 {
        let (i, j) = (rng.random_range(0..t), rng.random_range(0..n));
        let delta: i32 = match trial % 4 {
            0 => 1,
            1 => -1,
            2 => rng.random_range(1..1 << 20),
            _ => i32::MIN,
        };
        let mut bad = y.clone();
        bad[i * n + j] = bad[i * n + j].wrapping_add(delta);
        assert_eq!(
            proj.verify(&x, t, &bad),
            Err(AuditError::Mismatch(Mismatch { rows: vec![i] })),
            "trial {trial}: flip at ({i}, {j}) by {delta}"
        );
        let cols =
            wrong_columns(&x[i * k..(i + 1) * k], &packed, &bad[i * n..(i + 1) * n]).unwrap();
        assert_eq!(cols, vec![j]);
    }
}

#[test]
fn several_wrong_rows_are_all_named() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (t, n, k) = (10, 7, 33);
    let x = random(&mut rng, t * k);
    let w = random(&mut rng, n * k);
    let packed = PackedWeights::pack(&w, n, k).unwrap();
    let mut y = gemm_i8(Backend::Cpu, &x, t, &packed).unwrap();
    y[2 * n + 1] += 5;
    y[7 * n + 6] -= 1;
    y[7 * n] += 2;
    assert_eq!(
        verify(&x, t, &packed, &y, &seed(2), 3),
        Err(AuditError::Mismatch(Mismatch { rows: vec![2, 7] }))
    );
}

#[test]
fn malformed_audits_are_refused() {
    let w = vec![1i8; 12];
    let packed = PackedWeights::pack(&w, 3, 4).unwrap();
    assert_eq!(
        verify(&[1i8; 8], 2, &packed, &[4i32; 6], &seed(0), 0),
        Err(AuditError::NoRounds)
    );
    assert!(matches!(
        verify(&[1i8; 8], 2, &packed, &[4i32; 5], &seed(0), 1),
        Err(AuditError::Gemm(_))
    ));
    assert!(matches!(
        wrong_columns(&[1i8; 4], &packed, &[4i32; 2]),
        Err(AuditError::Dimensions { .. })
    ));
    verify(&[1i8; 8], 2, &packed, &[4i32; 6], &seed(0), 1).unwrap();
}
