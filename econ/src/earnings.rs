//! A worker's daily income under the protocol, and how much it varies.
//!
//! Randomness modelled (what the protocol draws):
//! - shard assignment: every shard goes to one worker by a stake-weighted draw
//!   (docs/SEQUENCER.md), so a worker with stake share σ gets `K ~ Binomial(S, σ)` of the `S`
//!   shards of a day;
//! - shard sizes: a shard's fee is proportional to its tokens, Gamma-distributed with CV κ;
//! - audit sampling: a share `s` of receipts is audited and each audit goes to a stake-weighted
//!   verifier that is paid `v` times the shard's fee (v = the audit's share of a shard's work),
//!   `J ~ Binomial(sS, σ)` audits a day.
//!
//! Fees are split per epoch by the fees of each worker's own receipts (`feeWeight`), so a day's
//! income is the sum of its shards' fees. Inflation is left out (VINF has no market price).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Gamma};

use crate::config::Config;
use crate::price;

/// The network a worker sits in, as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Network {
    /// Shards (receipts) per day.
    pub shards_per_day: f64,
    /// Mean fee per shard, USD.
    pub fee_per_shard: f64,
    /// CV of shard size.
    pub kappa: f64,
    /// Share of receipts audited.
    pub sample_rate: f64,
    /// Verifier fee per audit as a share of the shard's fee.
    pub audit_fee_share: f64,
}

impl Network {
    pub fn from_config(cfg: &Config) -> Self {
        let p = price::packing(cfg);
        let (reference, _) = price::reference(cfg);
        Network {
            shards_per_day: cfg.earnings.network_tokens_per_day.value / p.tokens_per_receipt,
            fee_per_shard: p.tokens_per_receipt * reference,
            kappa: cfg.earnings.tokens_per_shard_cv.value,
            sample_rate: cfg.audit.sample_rate.value,
            audit_fee_share: price::audit_shares(cfg).freivalds,
        }
    }

    /// Expected USD per day of a staker with share σ (work plus audits).
    pub fn mean_income(&self, sigma: f64) -> f64 {
        self.shards_per_day
            * sigma
            * self.fee_per_shard
            * (1.0 + self.sample_rate * self.audit_fee_share)
    }

    /// Closed-form CV of daily income (compound binomial sums, independent draws):
    /// Var = Sσ[(1−σ) + κ²]m²·(1 + s·v²), mean = Sσm·(1 + s·v).
    pub fn cv(&self, sigma: f64) -> f64 {
        let (s, v) = (self.sample_rate, self.audit_fee_share);
        let var_factor = ((1.0 - sigma) + self.kappa * self.kappa) * (1.0 + s * v * v);
        (var_factor / (self.shards_per_day * sigma)).sqrt() / (1.0 + s * v)
    }

    /// Probability that an epoch passes with no shard for this worker (it then earns nothing
    /// that epoch and, below `min_credits`, drops out of the active set).
    pub fn p_idle_epoch(&self, sigma: f64, epoch_seconds: f64) -> f64 {
        let per_epoch = self.shards_per_day * epoch_seconds / 86_400.0;
        (1.0 - sigma).powf(per_epoch)
    }

    /// Seeded simulation of `days` days: (mean, CV) of daily income.
    pub fn simulate(&self, sigma: f64, days: usize, seed: u64) -> (f64, f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shards =
            Binomial::new(self.shards_per_day.round() as u64, sigma).expect("σ is a share");
        let audits_n = (self.shards_per_day * self.sample_rate).round() as u64;
        let audits = Binomial::new(audits_n, sigma).expect("σ is a share");
        let mut incomes = Vec::with_capacity(days);
        for _ in 0..days {
            let k = shards.sample(&mut rng);
            let j = audits.sample(&mut rng);
            let work = self.sum_of_fees(k, &mut rng);
            let audit = self.audit_fee_share * self.sum_of_fees(j, &mut rng);
            incomes.push(work + audit);
        }
        mean_cv(&incomes)
    }

    /// Sum of `n` Gamma(mean m, CV κ) fees, drawn exactly as one Gamma(n/κ², mκ²).
    fn sum_of_fees(&self, n: u64, rng: &mut ChaCha8Rng) -> f64 {
        if n == 0 {
            return 0.0;
        }
        if self.kappa == 0.0 {
            return n as f64 * self.fee_per_shard;
        }
        let k2 = self.kappa * self.kappa;
        let g =
            Gamma::new(n as f64 / k2, self.fee_per_shard * k2).expect("positive shape and scale");
        g.sample(rng)
    }
}

/// Sample mean and coefficient of variation (population standard deviation over mean).
pub fn mean_cv(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (
        mean,
        if mean > 0.0 {
            var.sqrt() / mean
        } else {
            f64::NAN
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Network {
        Network {
            shards_per_day: 40_000.0,
            fee_per_shard: 1.5,
            kappa: 0.3,
            sample_rate: 0.5,
            audit_fee_share: 0.2,
        }
    }

    #[test]
    fn simulation_agrees_with_the_closed_form() {
        let n = net();
        for sigma in [0.001, 0.01, 0.2] {
            let (mean, cv) = n.simulate(sigma, 6000, 42);
            let want_mean = n.mean_income(sigma);
            assert!(
                (mean - want_mean).abs() / want_mean < 0.01,
                "σ={sigma}: mean {mean} vs {want_mean}"
            );
            assert!(
                (cv - n.cv(sigma)).abs() / n.cv(sigma) < 0.05,
                "σ={sigma}: cv {cv} vs {}",
                n.cv(sigma)
            );
        }
    }

    #[test]
    fn cv_falls_as_one_over_sqrt_of_the_shards_received() {
        let n = Network {
            sample_rate: 0.0,
            kappa: 0.0,
            ..net()
        };
        let (a, b) = (n.cv(0.001), n.cv(0.004));
        // (1-σ) changes a little: compare with the exact ratio.
        let want = ((1.0 - 0.001) / (1.0 - 0.004) * 4.0_f64).sqrt();
        assert!((a / b - want).abs() < 1e-12);
    }

    #[test]
    fn idle_epochs_vanish_for_large_stakes() {
        let n = net();
        assert!(n.p_idle_epoch(0.5, 3600.0) < 1e-100);
        assert!(n.p_idle_epoch(1e-6, 3600.0) > 0.99);
    }
}
