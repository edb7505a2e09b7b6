//! Differential tests: the Solidity OneStepVerifier, executed in revm, against
//! `verinfer_primitives::arith` on random inputs with edge values mixed in. Every op runs
//! CASES cases and must agree byte for byte on the committed row encoding.

use alloy::primitives::{Address, Bytes, I256, U256};
use alloy::sol_types::SolCall;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use verinfer_l1::bindings::OneStepVerifier as V;
use verinfer_primitives::arith;
use verinfer_primitives::rows::{i32_row_bytes, i64_row_bytes, i8_row_bytes, u32_row_bytes};

use verinfer_l1::evm::Evm;

/// Cases per op (the acceptance bar is 10^4).
const CASES: usize = 10_000;

struct Harness {
    evm: Evm,
    at: Address,
}

impl Harness {
    fn new() -> Self {
        let mut evm = Evm::new();
        let at = evm.deploy(V::BYTECODE.clone()).expect("verifier deploys");
        Self { evm, at }
    }

    fn call<C: SolCall>(&mut self, call: C) -> C::Return {
        let out = self
            .evm
            .call(self.at, Bytes::from(call.abi_encode()))
            .unwrap_or_else(|revert| panic!("{} reverted: {revert}", C::SIGNATURE));
        C::abi_decode_returns(&out.output).expect("return data decodes")
    }
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// i32 with the edges (0, ±1, extremes) over-represented.
fn i32_edge(r: &mut ChaCha8Rng) -> i32 {
    match r.random_range(0..10) {
        0 => *[0, 1, -1, i32::MIN, i32::MAX, i32::MIN + 1, i32::MAX - 1]
            .get(r.random_range(0..7))
            .unwrap(),
        1..=3 => r.random_range(-1000..=1000),
        4..=5 => r.random_range(-(1 << 20)..=(1 << 20)),
        _ => r.random(),
    }
}

/// i32 within the GEMM accumulator bound |y| < 2^29 (K ≤ 2^15), edges included.
fn acc_edge(r: &mut ChaCha8Rng) -> i32 {
    let b = (1 << 29) - 1;
    match r.random_range(0..8) {
        0 => *[0, 1, -1, b, -b].get(r.random_range(0..5)).unwrap(),
        1..=3 => r.random_range(-5000..=5000),
        _ => r.random_range(-b..=b),
    }
}

fn u32_edge(r: &mut ChaCha8Rng) -> u32 {
    match r.random_range(0..8) {
        0 => *[0, 1, u32::MAX, 1 << 31].get(r.random_range(0..4)).unwrap(),
        1..=2 => r.random_range(0..1 << 16),
        _ => r.random(),
    }
}

fn i8_edge(r: &mut ChaCha8Rng) -> i8 {
    match r.random_range(0..6) {
        0 => *[0, 1, -1, 127, -127, -128]
            .get(r.random_range(0..6))
            .unwrap(),
        _ => r.random(),
    }
}

/// A Q31 activation scale in [0, 2^40).
fn scale(r: &mut ChaCha8Rng) -> i64 {
    match r.random_range(0..6) {
        0 => *[0, 1, (1 << 40) - 1].get(r.random_range(0..3)).unwrap(),
        1..=2 => r.random_range(0..1 << 31),
        _ => r.random_range(0..1 << 40),
    }
}

fn len(r: &mut ChaCha8Rng, max: usize) -> usize {
    if r.random_range(0..10) == 0 {
        *[0usize, 1, max].get(r.random_range(0..3)).unwrap()
    } else {
        r.random_range(1..=max)
    }
}

fn vec_of<T>(r: &mut ChaCha8Rng, n: usize, f: fn(&mut ChaCha8Rng) -> T) -> Vec<T> {
    (0..n).map(|_| f(r)).collect()
}

fn qrow(values: &[i8], s: i64) -> Vec<u8> {
    arith::qrow_bytes(values, &[s])
}

fn int(v: I256) -> i128 {
    i128::try_from(v).expect("result fits an i128")
}

#[test]
fn gemm_element_agrees() {
    let mut h = Harness::new();
    let mut r = rng(1);
    for case in 0..CASES {
        let k = if case % 1000 == 0 {
            14336
        } else {
            len(&mut r, 80)
        };
        let x = vec_of(&mut r, k, i8_edge);
        let w = vec_of(&mut r, k, i8_edge);
        let s = scale(&mut r);
        let want = arith::gemm_element(&x, &w);
        let got = h.call(V::gemmElementCall {
            x: qrow(&x, s).into(),
            w: i8_row_bytes(&w).into(),
        });
        assert_eq!(int(got), want as i128, "case {case}: k={k}");
    }
    // Extremes: all ±127 / −128 at the largest K.
    for (a, b) in [(127i8, 127i8), (127, -127), (-128, -128), (-128, 127)] {
        let x = vec![a; 14336];
        let w = vec![b; 14336];
        let got = h.call(V::gemmElementCall {
            x: i8_row_bytes(&x).into(),
            w: i8_row_bytes(&w).into(),
        });
        assert_eq!(int(got), arith::gemm_element(&x, &w) as i128);
    }
}

#[test]
fn score_element_agrees() {
    let mut h = Harness::new();
    let mut r = rng(2);
    for case in 0..CASES {
        let d = len(&mut r, 256);
        let q = vec_of(&mut r, d, i8_edge);
        let k = vec_of(&mut r, d, i32_edge);
        let want = arith::score_element(&q, &k);
        let got = h.call(V::scoreElementCall {
            q: qrow(&q, 5).into(),
            k: i32_row_bytes(&k).into(),
        });
        assert_eq!(int(got), want as i128, "case {case}");
    }
}

#[test]
fn embed_row_agrees() {
    let mut h = Harness::new();
    let mut r = rng(3);
    for case in 0..CASES {
        let n = len(&mut r, 64);
        let e = vec_of(&mut r, n, i8_edge);
        let sw = u32_edge(&mut r);
        let want = i32_row_bytes(&arith::embed_row(&e, sw));
        let got = h.call(V::embedRowCall {
            eRow: i8_row_bytes(&e).into(),
            sw: U256::from(sw),
        });
        assert_eq!(got.to_vec(), want, "case {case}");
    }
}

#[test]
fn rmsnorm_quant_row_agrees() {
    let mut h = Harness::new();
    let mut r = rng(4);
    for case in 0..CASES {
        let n = len(&mut r, 48);
        let x = vec_of(&mut r, n, i32_edge);
        let eps: u64 = match r.random_range(0..4) {
            0 => 1,
            1 => 42950, // 1e-5 in Q32
            2 => u32::MAX as u64,
            _ => r.random_range(1..1 << 40),
        };
        let (q, s) = arith::rmsnorm_quant_row(&x, eps);
        let got = h.call(V::rmsnormQuantRowCall {
            x: i32_row_bytes(&x).into(),
            epsQ32: U256::from(eps),
        });
        assert_eq!(got.to_vec(), qrow(&q, s), "case {case}: {x:?}");
    }
}

/// One head's projection accumulators, weight scales, optional bias, input scale and cos‖sin row.
struct HeadCase {
    y: Vec<i32>,
    sw: Vec<u32>,
    bias: Option<Vec<i32>>,
    s: i64,
    cs: Vec<i32>,
}

fn rope_case(r: &mut ChaCha8Rng) -> HeadCase {
    let d = 2 * len(r, 32).max(1);
    let y = vec_of(r, d, acc_edge);
    let sw = vec_of(r, d, u32_edge);
    let bias = if r.random() {
        Some(vec_of(r, d, i32_edge))
    } else {
        None
    };
    let s = scale(r);
    let cs: Vec<i32> = (0..d)
        .map(|_| match r.random_range(0..6) {
            0 => *[0, 1 << 30, -(1 << 30)].get(r.random_range(0..3)).unwrap(),
            _ => r.random_range(-(1 << 30)..=(1 << 30)),
        })
        .collect();
    HeadCase { y, sw, bias, s, cs }
}

#[test]
fn rope_rows_agree() {
    let mut h = Harness::new();
    let mut r = rng(5);
    for case in 0..CASES {
        let HeadCase { y, sw, bias, s, cs } = rope_case(&mut r);
        let half = y.len() / 2;
        let (cos, sin) = cs.split_at(half);
        let quantize = case % 2 == 0;
        let want = if quantize {
            let (q, sq) = arith::rope_q_row(&y, &sw, bias.as_deref(), s, cos, sin);
            qrow(&q, sq)
        } else {
            i32_row_bytes(&arith::rope_k_row(&y, &sw, bias.as_deref(), s, cos, sin))
        };
        let got = h.call(V::ropeRowCall {
            y: i32_row_bytes(&y).into(),
            sw: u32_row_bytes(&sw).into(),
            bias: bias
                .as_deref()
                .map(i32_row_bytes)
                .unwrap_or_default()
                .into(),
            sx: I256::try_from(s).expect("fits"),
            cs: i32_row_bytes(&cs).into(),
            quantize,
        });
        assert_eq!(got.to_vec(), want, "case {case}");
    }
}

#[test]
fn value_row_agrees() {
    let mut h = Harness::new();
    let mut r = rng(6);
    for case in 0..CASES {
        let HeadCase { y, sw, bias, s, .. } = rope_case(&mut r);
        let want = i32_row_bytes(&arith::v_row(&y, &sw, bias.as_deref(), s));
        let got = h.call(V::valueRowCall {
            y: i32_row_bytes(&y).into(),
            sw: u32_row_bytes(&sw).into(),
            bias: bias
                .as_deref()
                .map(i32_row_bytes)
                .unwrap_or_default()
                .into(),
            sx: I256::try_from(s).expect("fits"),
        });
        assert_eq!(got.to_vec(), want, "case {case}");
    }
}

#[test]
fn softmax_row_agrees() {
    let mut h = Harness::new();
    let mut r = rng(7);
    let exp2 = arith::exp2_table();
    let exp2_bytes = u32_row_bytes(&exp2);
    let b = (1i64 << 46) - 1;
    for case in 0..CASES {
        let n = len(&mut r, 40);
        let spread: i64 = *[1i64, 1 << 10, 1 << 20, 1 << 30, b]
            .get(r.random_range(0..5))
            .unwrap();
        let scores: Vec<i64> = (0..n)
            .map(|_| match r.random_range(0..8) {
                0 => *[0, b, -b].get(r.random_range(0..3)).unwrap(),
                _ => r.random_range(-spread..=spread),
            })
            .collect();
        let sq = scale(&mut r);
        let c: u64 = match r.random_range(0..4) {
            0 => arith::softmax_constant(128),
            1 => (1 << 40) - 1,
            _ => r.random_range(0..1 << 40),
        };
        let (p, ap) = arith::softmax_row(&scores, sq, c, &exp2);
        let got = h.call(V::softmaxRowCall {
            scores: i64_row_bytes(&scores).into(),
            sq: I256::try_from(sq).expect("fits"),
            c: U256::from(c),
            exp2: exp2_bytes.clone().into(),
        });
        assert_eq!(
            got.to_vec(),
            arith::softmax_row_bytes(&p, ap),
            "case {case}"
        );
    }
}

#[test]
fn pv_row_agrees() {
    let mut h = Harness::new();
    let mut r = rng(8);
    for case in 0..CASES {
        let n = len(&mut r, 24).max(1);
        let d = len(&mut r, 16).max(1);
        let p: Vec<i32> = (0..n)
            .map(|_| match r.random_range(0..5) {
                0 => *[0, 1 << 15].get(r.random_range(0..2)).unwrap(),
                _ => r.random_range(0..=1 << 15),
            })
            .collect();
        let ap: i64 = match r.random_range(0..4) {
            0 => *[1 << 13, 1 << 30].get(r.random_range(0..2)).unwrap(),
            _ => r.random_range(1 << 13..=1 << 30),
        };
        let v: Vec<Vec<i32>> = (0..n).map(|_| vec_of(&mut r, d, i32_edge)).collect();
        let refs: Vec<&[i32]> = v.iter().map(|x| x.as_slice()).collect();
        let want = i32_row_bytes(&arith::pv_row(&p, ap, &refs));
        let flat: Vec<i32> = v.concat();
        let got = h.call(V::pvRowCall {
            p: i32_row_bytes(&p).into(),
            ap: I256::try_from(ap).expect("fits"),
            v: i32_row_bytes(&flat).into(),
        });
        assert_eq!(got.to_vec(), want, "case {case}");
    }
}

/// The chunked form of pv that folds use: accumulating any split of the positions, then
/// finishing, gives `arith::pv_row`'s bytes.
#[test]
fn pv_fold_agrees() {
    let mut h = Harness::new();
    let mut r = rng(18);
    for case in 0..CASES {
        let n = len(&mut r, 24).max(1);
        let d = len(&mut r, 16).max(1);
        let p: Vec<i32> = (0..n).map(|_| r.random_range(0..=1 << 15)).collect();
        let ap: i64 = r.random_range(1 << 13..=1 << 30);
        let v: Vec<Vec<i32>> = (0..n).map(|_| vec_of(&mut r, d, i32_edge)).collect();
        let refs: Vec<&[i32]> = v.iter().map(|x| x.as_slice()).collect();
        let want = i32_row_bytes(&arith::pv_row(&p, ap, &refs));
        let split = r.random_range(0..=n);
        let mut acc = Bytes::from(vec![0u8; d * 8]);
        for (lo, hi) in [(0, split), (split, n)] {
            acc = h.call(V::pvAccumulateCall {
                acc: acc.clone(),
                p: i32_row_bytes(&p[lo..hi]).into(),
                v: i32_row_bytes(&v[lo..hi].concat()).into(),
            });
        }
        let got = h.call(V::pvFinishCall {
            acc,
            ap: I256::try_from(ap).expect("fits"),
        });
        assert_eq!(got.to_vec(), want, "case {case}");
    }
}

#[test]
fn quantize_row_agrees() {
    let mut h = Harness::new();
    let mut r = rng(9);
    for case in 0..CASES {
        let n = len(&mut r, 64);
        let z = vec_of(&mut r, n, i32_edge);
        let (q, s) = arith::quantize_row(&z);
        let got = h.call(V::quantizeRowCall {
            z: i32_row_bytes(&z).into(),
        });
        assert_eq!(got.to_vec(), qrow(&q, s), "case {case}");
    }
}

#[test]
fn residual_row_agrees() {
    let mut h = Harness::new();
    let mut r = rng(10);
    for case in 0..CASES {
        let n = len(&mut r, 48);
        let hh = vec_of(&mut r, n, i32_edge);
        let y = vec_of(&mut r, n, acc_edge);
        let sw = vec_of(&mut r, n, u32_edge);
        let s = scale(&mut r);
        let want = i32_row_bytes(&arith::residual_row(&hh, &y, &sw, s));
        let got = h.call(V::residualRowCall {
            h: i32_row_bytes(&hh).into(),
            y: i32_row_bytes(&y).into(),
            sw: u32_row_bytes(&sw).into(),
            sx: I256::try_from(s).expect("fits"),
        });
        assert_eq!(got.to_vec(), want, "case {case}");
    }
}

#[test]
fn silu_mul_row_agrees() {
    let mut h = Harness::new();
    let mut r = rng(11);
    let sig = arith::sigmoid_table();
    let sig_bytes = u32_row_bytes(&sig);
    for case in 0..CASES {
        let n = len(&mut r, 40);
        let yg = vec_of(&mut r, n, acc_edge);
        let yu = vec_of(&mut r, n, acc_edge);
        let swg = vec_of(&mut r, n, u32_edge);
        let swu = vec_of(&mut r, n, u32_edge);
        let s = scale(&mut r);
        let (q, sq) = arith::silu_mul_row(&yg, &yu, &swg, &swu, s, &sig);
        let got = h.call(V::siluMulRowCall {
            yg: i32_row_bytes(&yg).into(),
            yu: i32_row_bytes(&yu).into(),
            swg: u32_row_bytes(&swg).into(),
            swu: u32_row_bytes(&swu).into(),
            sx: I256::try_from(s).expect("fits"),
            sigmoid: sig_bytes.clone().into(),
        });
        assert_eq!(got.to_vec(), qrow(&q, sq), "case {case}");
    }
}

/// The chunked form of silu_mul that folds use: the running max over any split of the
/// elements and each chunk's int8 values (quantized with the final max) give
/// `arith::silu_mul_row`, and the scale of the final max is the row's scale.
#[test]
fn silu_fold_agrees() {
    let mut h = Harness::new();
    let mut r = rng(20);
    let sig = arith::sigmoid_table();
    let sig_bytes = u32_row_bytes(&sig);
    for case in 0..CASES {
        let n = len(&mut r, 40).max(1);
        let yg = vec_of(&mut r, n, acc_edge);
        let yu = vec_of(&mut r, n, acc_edge);
        let swg = vec_of(&mut r, n, u32_edge);
        let swu = vec_of(&mut r, n, u32_edge);
        let s = scale(&mut r);
        let (q, sq) = arith::silu_mul_row(&yg, &yu, &swg, &swu, s, &sig);
        let m = arith::silu_mul_values(&yg, &yu, &swg, &swu, s, &sig);
        let fin = m.iter().map(|v| v.unsigned_abs() as u64).max().unwrap_or(0);
        let split = r.random_range(0..=n);
        let mut amax = 0u64;
        let mut got_q: Vec<u8> = Vec::new();
        for (lo, hi) in [(0, split), (split, n)] {
            let y = [i32_row_bytes(&yg[lo..hi]), i32_row_bytes(&yu[lo..hi])].concat();
            let sw = [u32_row_bytes(&swg[lo..hi]), u32_row_bytes(&swu[lo..hi])].concat();
            let out = h.call(V::siluChunkCall {
                y: y.into(),
                sw: sw.into(),
                sx: I256::try_from(s).expect("fits"),
                sigmoid: sig_bytes.clone().into(),
                amaxes: (U256::from(amax) << 128) | U256::from(fin),
            });
            amax = out.amaxAfter.to::<u64>();
            got_q.extend_from_slice(&out.q);
        }
        assert_eq!(amax, fin, "case {case}: running max");
        let want: Vec<u8> = q.iter().map(|&v| v as u8).collect();
        assert_eq!(got_q, want, "case {case}: int8 values");
        let scale_got = h.call(V::quantizeScaleCall {
            amax: U256::from(fin),
        });
        assert_eq!(
            scale_got,
            I256::try_from(sq).expect("fits"),
            "case {case}: scale"
        );
    }
}

/// The chunked form of argmax that folds use: the running best over any split of the ids
/// ends on `arith::argmax_row`'s token.
#[test]
fn argmax_fold_agrees() {
    use alloy::sol_types::SolValue;
    let mut h = Harness::new();
    let mut r = rng(19);
    for case in 0..CASES {
        let n = len(&mut r, 64).max(1);
        let y: Vec<i32> = if case % 3 == 0 {
            (0..n).map(|_| r.random_range(-2..=2)).collect()
        } else {
            vec_of(&mut r, n, i32_edge)
        };
        let sw: Vec<u32> = if case % 3 == 0 {
            vec![7; n]
        } else {
            vec_of(&mut r, n, u32_edge)
        };
        let want = arith::argmax_row(&y, &sw, n);
        let split = r.random_range(0..=n);
        let mut state = Bytes::from((false, I256::ZERO, U256::ZERO).abi_encode());
        for (lo, hi) in [(0, split), (split, n)] {
            state = h.call(V::argmaxAccumulateCall {
                state: state.clone(),
                y: i32_row_bytes(&y[lo..hi]).into(),
                sw: u32_row_bytes(&sw[lo..hi]).into(),
                first: U256::from(lo),
            });
        }
        let (found, _, id) = <(bool, I256, U256)>::abi_decode(&state).expect("state decodes");
        assert_eq!(found.then(|| id.to::<u32>()), want, "case {case}");
    }
}

#[test]
fn argmax_row_agrees() {
    let mut h = Harness::new();
    let mut r = rng(12);
    for case in 0..CASES {
        let n = len(&mut r, 64);
        // Few distinct values make ties common (ties go to the lowest id).
        let y: Vec<i32> = if case % 3 == 0 {
            (0..n).map(|_| r.random_range(-2..=2)).collect()
        } else {
            vec_of(&mut r, n, i32_edge)
        };
        let sw: Vec<u32> = if case % 3 == 0 {
            vec![7; n]
        } else {
            vec_of(&mut r, n, u32_edge)
        };
        let valid = r.random_range(0..=n + 2);
        let want = arith::argmax_row(&y, &sw, valid);
        let got = h.call(V::argmaxRowCall {
            y: i32_row_bytes(&y).into(),
            sw: u32_row_bytes(&sw).into(),
            valid: U256::from(valid),
        });
        let got = got.found.then(|| got.id.to::<u32>());
        assert_eq!(got, want, "case {case}");
    }
}
