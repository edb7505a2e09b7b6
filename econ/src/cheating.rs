//! The expected value of cheating, and the stake and slash that make it negative.
//!
//! A cheater fakes a share `c` of the `H` shards it is assigned over a horizon (the time a
//! caught cheater keeps getting shards: until its game resolves). Each faked shard saves `G`
//! (the honest work it skipped) and is caught with probability `q` (audit sampled × the audit
//! sees the fake). A caught shard is refunded to the buyer (−F) and slashes `f` of the stake
//! that is left (StakeBridge takes bps of the current stake, once per receipt), so after
//! `K ~ Binomial(n, q)` catches the stake is `S(1−f)^K` and `E[(1−f)^K] = (1−qf)^n`:
//!
//! `EV(n) = n(G − qF) − S(1 − (1 − qf)^n)`, n = cH.
//!
//! EV is convex in n with EV(0) = 0, so it is negative for every cheating rate in (0, 1] iff it
//! is negative at c = 1 (the chord). Strikes (removal after `max_strikes` lost games) are left
//! out: they only stop a cheater that has already lost most of its stake.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{Config, Policy};
use crate::earnings::Network;

/// The cheater's economics, in USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cheater {
    /// Fee per shard (refunded when caught).
    pub fee: f64,
    /// Saving per fully faked shard.
    pub gain: f64,
    /// Stake at risk.
    pub stake: f64,
    /// Slash share per proven receipt.
    pub slash: f64,
    /// Shards assigned over the horizon.
    pub horizon_shards: f64,
}

impl Cheater {
    pub fn from_config(cfg: &Config) -> Self {
        let c = &cfg.cheating;
        let net = Network::from_config(cfg);
        Cheater {
            fee: net.fee_per_shard,
            gain: c.saved_share_of_fee.value * net.fee_per_shard,
            stake: c.stake_eth.value * cfg.l1.eth_usd.value,
            slash: c.slash_fraud_bps.value / 10_000.0,
            horizon_shards: c.stake_share.value * net.shards_per_day * c.horizon_days.value,
        }
    }

    /// EV of faking `n` shards, each caught with probability `q`.
    pub fn ev(&self, n: f64, q: f64) -> f64 {
        n * (self.gain - q * self.fee) - self.stake * (1.0 - (1.0 - q * self.slash).powf(n))
    }

    /// EV at cheating rate `c` over the horizon.
    pub fn ev_rate(&self, c: f64, q: f64) -> f64 {
        self.ev(c * self.horizon_shards, q)
    }

    /// Least stake that makes faking `n` shards lose (0 if the refunds alone do).
    pub fn min_stake(&self, n: f64, q: f64) -> f64 {
        let edge = self.gain - q * self.fee;
        if edge <= 0.0 {
            return 0.0;
        }
        let caught = 1.0 - (1.0 - q * self.slash).powf(n);
        if caught <= 0.0 {
            f64::INFINITY
        } else {
            n * edge / caught
        }
    }

    /// Least slash share that makes full cheating over the horizon lose at this stake; `None`
    /// if even a 100% slash does not.
    pub fn min_slash(&self, q: f64) -> Option<f64> {
        let at = |f: f64| Cheater { slash: f, ..*self }.ev(self.horizon_shards, q);
        if at(0.0) <= 0.0 {
            return Some(0.0);
        }
        if at(1.0) > 0.0 {
            return None;
        }
        let (mut lo, mut hi) = (0.0, 1.0);
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if at(mid) > 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(hi)
    }

    /// Audit rate above which cheating loses with no stake at all (the refund alone), for an
    /// audit that sees the fake with probability `d`; `None` if no rate ≤ 1 does.
    pub fn zero_stake_sample_rate(&self, d: f64) -> Option<f64> {
        let s = self.gain / (d * self.fee);
        (d > 0.0 && s < 1.0).then_some(s)
    }

    /// Monte Carlo of the same game (per-shard draws, compounding slashes), for the tests.
    pub fn simulate(&self, n: usize, q: f64, trials: usize, seed: u64) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut total = 0.0;
        for _ in 0..trials {
            let (mut gain, mut stake) = (0.0, self.stake);
            for _ in 0..n {
                gain += self.gain;
                if rng.random::<f64>() < q {
                    gain -= self.fee;
                    stake *= 1.0 - self.slash;
                }
            }
            total += gain - (self.stake - stake);
        }
        total / trials as f64
    }
}

/// Probability that an audit that samples the shard sees a full fake (every op wrong).
pub fn full_detection(cfg: &Config) -> f64 {
    1.0 - cfg
        .cheating
        .freivalds_miss
        .value
        .powf(cfg.audit.rounds.value)
}

/// What a selective cheater fakes inside a shard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fake {
    /// Everything (no inference at all).
    All,
    /// A share of the MLP GEMM steps.
    MlpSteps(f64),
    /// The attention GEMMs (q, k, v, o) only.
    Attention,
}

impl Fake {
    pub fn label(&self) -> String {
        match self {
            Fake::All => "the whole shard".into(),
            Fake::MlpSteps(g) => format!("{}% of MLP GEMM steps", crate::fmt::sig(100.0 * g, 2)),
            Fake::Attention => "attention GEMMs only".into(),
        }
    }

    /// Saving as a share of a full fake's saving.
    pub fn saving_share(&self, cfg: &Config) -> f64 {
        let a = &cfg.audit;
        match self {
            Fake::All => 1.0,
            Fake::MlpSteps(g) => g * a.gemm_share.value * a.mlp_gemm_share.value,
            Fake::Attention => a.gemm_share.value * (1.0 - a.mlp_gemm_share.value),
        }
    }

    /// Probability that a sampled audit under `policy` sees this fake.
    pub fn detection(&self, cfg: &Config, policy: &Policy) -> f64 {
        let full = full_detection(cfg);
        let k = policy.mlp_steps_checked.value;
        match self {
            Fake::All => full,
            Fake::MlpSteps(g) if k == 0.0 => full * if *g > 0.0 { 1.0 } else { 0.0 },
            Fake::MlpSteps(g) => full * (1.0 - (1.0 - g).powf(k)),
            Fake::Attention if policy.checks_attention => full,
            Fake::Attention => 0.0,
        }
    }
}

/// Detection probability of a worker colluding with verifiers: a sampled audit goes to a
/// colluding verifier with probability `v` (it passes), and an independent watcher audits
/// every receipt with probability `w`.
pub fn collusion_detection(s: f64, v: f64, w: f64, d: f64) -> f64 {
    1.0 - (1.0 - s * (1.0 - v) * d) * (1.0 - w * d)
}

/// Least worker stake (per receipt) that makes a colluding pair lose, with the colluding
/// verifier slashed `vslash` (USD) when the watcher catches a receipt it passed.
pub fn collusion_min_stake(ch: &Cheater, s: f64, v: f64, w: f64, d: f64, vslash: f64) -> f64 {
    let q = collusion_detection(s, v, w, d);
    let edge = ch.gain - q * ch.fee - s * v * w * d * vslash;
    if edge <= 0.0 {
        0.0
    } else if q <= 0.0 {
        f64::INFINITY
    } else {
        edge / (q * ch.slash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch() -> Cheater {
        Cheater {
            fee: 1.0,
            gain: 1.0,
            stake: 50.0,
            slash: 0.5,
            horizon_shards: 400.0,
        }
    }

    #[test]
    fn closed_form_ev_matches_the_monte_carlo() {
        let c = ch();
        for q in [0.01, 0.1] {
            let want = c.ev(200.0, q);
            let got = c.simulate(200, q, 20_000, 3);
            let scale = c.stake.max(want.abs());
            assert!((got - want).abs() / scale < 0.02, "q={q}: {got} vs {want}");
        }
    }

    #[test]
    fn ev_sign_flips_at_the_minimum_stake_and_slash() {
        let c = ch();
        let q = 0.02;
        let s_min = c.min_stake(c.horizon_shards, q);
        let at = |stake: f64| Cheater { stake, ..c }.ev(c.horizon_shards, q);
        assert!(at(s_min * 1.001) < 0.0 && at(s_min * 0.999) > 0.0);
        let rich = Cheater {
            stake: 2.0 * s_min,
            ..c
        };
        let f = rich.min_slash(q).expect("a slash suffices");
        let at = |slash: f64| Cheater { slash, ..rich }.ev(c.horizon_shards, q);
        assert!(at(f * 1.001) < 0.0 && at(f * 0.999) > 0.0, "f = {f}");
    }

    #[test]
    fn negative_at_full_rate_means_negative_at_every_rate() {
        let c = Cheater {
            stake: c_min(),
            ..ch()
        };
        for i in 1..=100 {
            assert!(c.ev_rate(i as f64 / 100.0, 0.02) <= 1e-9, "rate {i}%");
        }
        fn c_min() -> f64 {
            ch().min_stake(ch().horizon_shards, 0.02) * 1.0001
        }
    }

    #[test]
    fn refunds_alone_deter_when_audits_outweigh_the_saving() {
        let c = Cheater { gain: 0.3, ..ch() };
        assert_eq!(c.zero_stake_sample_rate(1.0), Some(0.3));
        assert_eq!(c.min_stake(100.0, 0.5), 0.0);
        assert!(c.ev(100.0, 0.5) < 0.0);
    }

    #[test]
    fn collusion_lowers_detection_and_the_watcher_restores_it() {
        assert_eq!(collusion_detection(1.0, 0.0, 0.0, 1.0), 1.0);
        assert_eq!(collusion_detection(1.0, 1.0, 0.0, 1.0), 0.0);
        assert!((collusion_detection(1.0, 1.0, 0.1, 1.0) - 0.1).abs() < 1e-15);
        let c = ch();
        assert_eq!(
            collusion_min_stake(&c, 1.0, 1.0, 0.0, 1.0, 0.0),
            f64::INFINITY
        );
        assert!(collusion_min_stake(&c, 1.0, 1.0, 0.1, 1.0, 0.0).is_finite());
    }
}
