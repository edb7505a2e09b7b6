//! A worker's daily income under the protocol, and how much it varies.
//!
//! Randomness modelled (what the protocol draws, docs/SEQUENCER.md and docs/AUDITS.md):
//! - shard assignment: every shard goes to one worker by a stake-weighted draw, so a worker
//!   with stake share σ gets `K ~ Binomial(S, σ)` of the `S` shards of a day;
//! - shard sizes: a shard's fee is proportional to its tokens, Gamma-distributed with CV κ;
//! - audit sampling: a receipt earns only if the chain draws it for audit (probability p), and
//!   then `fee / p`, less the verifier's cut v; so the worker is paid for
//!   `A ~ Binomial(S, σp)` receipts a day, `(1 − v)·fee/p` each;
//! - verifier draws: each audited receipt goes to a stake-weighted verifier, paid `v·fee/p`; a
//!   staker that also verifies gets `J ~ Binomial(S, σp)` of them (treated as independent of
//!   its own receipts' draws).
//!
//! Expected income is the fee its shards paid, as without audits; the variance grows by 1/p.
//! Fees are split per epoch by each worker's weight; with many workers the pot over the total
//! weight is ≈ 1, so a day's income is the sum of its weights. Inflation is left out (VINF has
//! no market price).

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
    /// Probability that a receipt is drawn for audit (credits are fee / p).
    pub audit_rate: f64,
    /// Verifier's cut of an audited receipt's weight.
    pub verifier_fee: f64,
}

impl Network {
    pub fn from_config(cfg: &Config) -> Self {
        let p = price::packing(cfg);
        let (reference, _) = price::reference(cfg);
        Network {
            shards_per_day: cfg.earnings.network_tokens_per_day.value / p.tokens_per_receipt,
            fee_per_shard: p.tokens_per_receipt * reference,
            kappa: cfg.earnings.tokens_per_shard_cv.value,
            audit_rate: cfg.audit.sample_rate.value,
            verifier_fee: cfg.audit.verifier_fee_share.value,
        }
    }

    /// The same network for a worker in another audit tier.
    pub fn at_rate(&self, audit_rate: f64) -> Self {
        Network {
            audit_rate,
            ..*self
        }
    }

    /// Expected USD per day of a staker with share σ (its receipts plus its audits).
    pub fn mean_income(&self, sigma: f64) -> f64 {
        self.shards_per_day * sigma * self.fee_per_shard
    }

    /// Closed-form CV of daily income (two independent compound binomial sums):
    /// CV² = [(1 − σp) + κ²]·[(1 − v)² + v²] / (Sσp).
    pub fn cv(&self, sigma: f64) -> f64 {
        let (p, v) = (self.audit_rate, self.verifier_fee);
        let marks = (1.0 - sigma * p) + self.kappa * self.kappa;
        let split = (1.0 - v) * (1.0 - v) + v * v;
        (marks * split / (self.shards_per_day * sigma * p)).sqrt()
    }

    /// Probability that an epoch passes with no credited receipt for this worker (it earns
    /// nothing that epoch and, below `min_credits`, is not active).
    pub fn p_idle_epoch(&self, sigma: f64, epoch_seconds: f64) -> f64 {
        let per_epoch = self.shards_per_day * epoch_seconds / 86_400.0;
        (1.0 - sigma * self.audit_rate).powf(per_epoch)
    }

    /// Seeded simulation of `days` days: (mean, CV) of daily income.
    pub fn simulate(&self, sigma: f64, days: usize, seed: u64) -> (f64, f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = self.shards_per_day.round() as u64;
        let shards = Binomial::new(n, sigma).expect("σ is a share");
        let p = self.audit_rate;
        let mut incomes = Vec::with_capacity(days);
        for _ in 0..days {
            // Own shards, then which of them the chain draws for audit.
            let k = shards.sample(&mut rng);
            let audited = Binomial::new(k, p).expect("p is a share").sample(&mut rng);
            // Audits of others' receipts that land on this staker.
            let all_audited = Binomial::new(n, p).expect("p is a share").sample(&mut rng);
            let j = Binomial::new(all_audited, sigma)
                .expect("σ is a share")
                .sample(&mut rng);
            let work = (1.0 - self.verifier_fee) / p * self.sum_of_fees(audited, &mut rng);
            let audit = self.verifier_fee / p * self.sum_of_fees(j, &mut rng);
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
            audit_rate: 0.1,
            verifier_fee: 0.05,
        }
    }

    #[test]
    fn simulation_agrees_with_the_closed_form() {
        let n = net();
        for sigma in [0.001, 0.01, 0.2] {
            let (mean, cv) = n.simulate(sigma, 6000, 42);
            let want_mean = n.mean_income(sigma);
            assert!(
                (mean - want_mean).abs() / want_mean < 4.0 * n.cv(sigma) / 6000f64.sqrt(),
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
            audit_rate: 1.0,
            verifier_fee: 0.0,
            kappa: 0.0,
            ..net()
        };
        let (a, b) = (n.cv(0.001), n.cv(0.004));
        // (1-σ) changes a little: compare with the exact ratio.
        let want = ((1.0 - 0.001) / (1.0 - 0.004) * 4.0_f64).sqrt();
        assert!((a / b - want).abs() < 1e-12);
    }

    #[test]
    fn sparser_audits_make_income_lumpier_by_one_over_sqrt_p() {
        let n = Network {
            kappa: 0.0,
            verifier_fee: 0.0,
            ..net()
        };
        let ratio = n.at_rate(0.01).cv(0.001) / n.at_rate(1.0).cv(0.001);
        let want = ((1.0 - 0.001 * 0.01) / (1.0 - 0.001) / 0.01_f64).sqrt();
        assert!((ratio - want).abs() < 1e-12);
    }

    #[test]
    fn idle_epochs_vanish_for_large_stakes() {
        let n = net();
        assert!(n.p_idle_epoch(0.5, 3600.0) < 1e-30);
        assert!(n.p_idle_epoch(1e-6, 3600.0) > 0.99);
    }
}
