//! A PoW miner with the same expected income as a worker: solo and in a PPLNS pool.
//!
//! Solo: blocks found per day `K ~ Poisson(λ)`, λ = income / block value, so CV = 1/√λ.
//! Pooled (PPLNS): the pool finds `Poisson(λ_p)` blocks a day and each block pays the miner in
//! proportion to its shares among the last N pool shares. With the window taken as a time
//! window `T_w = window_blocks / λ_p` and the miner's shares a Poisson process of rate r,
//! treating windows as independent gives CV² = (1 + 1/(r·T_w)) / λ_p. Real windows overlap;
//! the simulation below uses overlapping windows, so it checks the approximation too.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Poisson};

use crate::config::Pow;
use crate::earnings::mean_cv;

/// Expected blocks a day of a solo miner earning `income` USD a day.
pub fn solo_lambda(p: &Pow, income: f64) -> f64 {
    income / p.block_value_usd.value
}

pub fn solo_cv(p: &Pow, income: f64) -> f64 {
    1.0 / solo_lambda(p, income).sqrt()
}

/// Probability of a day without income, solo.
pub fn solo_p_zero_day(p: &Pow, income: f64) -> f64 {
    (-solo_lambda(p, income)).exp()
}

/// Pool blocks per day.
pub fn pool_lambda(p: &Pow) -> f64 {
    p.pool_share.value * p.blocks_per_day.value
}

/// PPLNS window in days.
fn window_days(p: &Pow) -> f64 {
    p.pplns_window_blocks.value / pool_lambda(p)
}

/// Closed-form CV of a PPLNS miner's daily income (independent-window approximation). It does
/// not depend on the miner's size as long as it is a small part of the pool.
pub fn pooled_cv(p: &Pow) -> f64 {
    let shares_in_window = p.miner_shares_per_day.value * window_days(p);
    ((1.0 + 1.0 / shares_in_window) / pool_lambda(p)).sqrt()
}

/// Seeded simulation of solo mining: (mean, CV) of daily income over `days`.
pub fn simulate_solo(p: &Pow, income: f64, days: usize, seed: u64) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let blocks = Poisson::new(solo_lambda(p, income)).expect("λ > 0");
    let xs: Vec<f64> = (0..days)
        .map(|_| blocks.sample(&mut rng) * p.block_value_usd.value)
        .collect();
    mean_cv(&xs)
}

/// Seeded simulation of a PPLNS miner earning `income` a day, with overlapping windows: block
/// times are a Poisson process; the miner's share counts are drawn on the elementary
/// intervals between window edges, so overlapping windows share their shares exactly.
pub fn simulate_pooled(p: &Pow, income: f64, days: usize, seed: u64) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let blocks = block_times(pool_lambda(p), days as f64, &mut rng);
    let w = window_days(p);
    let counts = window_counts(&blocks, w, p.miner_shares_per_day.value, &mut rng);
    // Each block pays income/λ_p on average: B·m·C/(r·T_w) with B·m = income/λ_p.
    let per_share = income / pool_lambda(p) / (p.miner_shares_per_day.value * w);
    let mut daily = vec![0.0; days];
    for (t, c) in blocks.iter().zip(counts) {
        daily[*t as usize] += c as f64 * per_share;
    }
    mean_cv(&daily)
}

/// Arrival times of a Poisson process of `rate` per day on [0, days).
fn block_times(rate: f64, days: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let gap = Exp::new(rate).expect("rate > 0");
    let mut t = gap.sample(rng);
    let mut out = Vec::new();
    while t < days {
        out.push(t);
        t += gap.sample(rng);
    }
    out
}

/// Miner shares in each block's window (t − w, t], for sorted block times.
fn window_counts(blocks: &[f64], w: f64, rate: f64, rng: &mut ChaCha8Rng) -> Vec<u64> {
    let mut edges: Vec<f64> = blocks.iter().flat_map(|&t| [t - w, t]).collect();
    edges.sort_by(f64::total_cmp);
    // prefix[i] = shares in (edges[0], edges[i]].
    let mut prefix = vec![0u64; edges.len()];
    for i in 1..edges.len() {
        let mean = rate * (edges[i] - edges[i - 1]);
        let n = if mean > 0.0 {
            Poisson::new(mean).expect("mean > 0").sample(rng) as u64
        } else {
            0
        };
        prefix[i] = prefix[i - 1] + n;
    }
    let at = |x: f64| edges.partition_point(|e| *e < x);
    blocks
        .iter()
        .map(|&t| prefix[at(t)] - prefix[at(t - w)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sourced;

    fn s(v: f64) -> Sourced {
        Sourced {
            value: v,
            source: "test".into(),
        }
    }

    fn pow(blocks_per_day: f64) -> Pow {
        Pow {
            name: "test".into(),
            block_value_usd: s(100.0),
            blocks_per_day: s(blocks_per_day),
            pool_share: s(0.3),
            miner_shares_per_day: s(8640.0),
            pplns_window_blocks: s(2.0),
        }
    }

    #[test]
    fn solo_cv_is_one_over_sqrt_lambda_and_the_simulation_agrees() {
        let p = pow(144.0);
        let income = 250.0; // λ = 2.5 blocks a day
        assert!((solo_cv(&p, income) - 1.0 / 2.5f64.sqrt()).abs() < 1e-15);
        let (mean, cv) = simulate_solo(&p, income, 20_000, 7);
        assert!((mean - income).abs() / income < 0.02);
        assert!((cv - solo_cv(&p, income)).abs() / solo_cv(&p, income) < 0.03);
    }

    #[test]
    fn pooled_simulation_with_overlapping_windows_is_near_the_closed_form() {
        let p = pow(144.0); // λ_p = 43.2 blocks a day
        let (mean, cv) = simulate_pooled(&p, 10.0, 3000, 11);
        assert!((mean - 10.0).abs() / 10.0 < 0.02, "mean {mean}");
        let want = pooled_cv(&p);
        assert!((cv - want).abs() / want < 0.1, "cv {cv} vs {want}");
    }

    #[test]
    fn window_counts_count_what_falls_inside() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // Zero rate: every count is zero; the edges machinery must not panic.
        let c = window_counts(&[0.5, 0.6, 2.0], 0.3, 0.0, &mut rng);
        assert_eq!(c, vec![0, 0, 0]);
    }
}
