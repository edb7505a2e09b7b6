//! Griefing: an attacker disputes an honest receipt and plays the bisection to the end (it
//! loses at the one-step proof). What it loses against what the honest defender spends.
//!
//! Challenger: `open` + one `choose` per round + `nameEntry`, the opening bond (lost: `rewardBps`
//! of it to the worker, the rest burned) and one move bond per non-final move (all paid to the
//! winner). Defender: one `bisect` per round + the one-step proof; its own move bonds come back;
//! it replays the shard to answer (GPU time).

use crate::config::Config;

/// One side's cost and the defender's net, in USD, at one gas price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grief {
    pub gwei: f64,
    pub attacker_cost: f64,
    pub defender_cost: f64,
    /// With the most expensive one-step answer instead of `proveGemm`.
    pub defender_cost_worst: f64,
    /// Defender's reward (its share of the bond + the attacker's move bonds).
    pub defender_reward: f64,
}

impl Grief {
    pub fn defender_net(&self) -> f64 {
        self.defender_reward - self.defender_cost
    }
    pub fn defender_net_worst(&self) -> f64 {
        self.defender_reward - self.defender_cost_worst
    }
}

/// Gas of the challenger's moves.
pub fn attacker_gas(cfg: &Config) -> f64 {
    let g = &cfg.griefing;
    g.open_gas.value + g.bisection_rounds.value * g.choose_gas.value + g.name_entry_gas.value
}

/// Gas of the defender's moves with a one-step proof of `prove` gas.
pub fn defender_gas(cfg: &Config, prove: f64) -> f64 {
    let g = &cfg.griefing;
    g.bisection_rounds.value * g.bisect_gas.value + prove
}

/// ETH the attacker loses in bonds, and ETH the defender receives.
pub fn bonds(cfg: &Config) -> (f64, f64) {
    let g = &cfg.griefing;
    let moves = g.bisection_rounds.value + 1.0; // choose per round + nameEntry
    let lost = g.min_bond_eth.value + moves * g.move_bond_eth.value;
    let reward =
        g.min_bond_eth.value * g.reward_bps.value / 10_000.0 + moves * g.move_bond_eth.value;
    (lost, reward)
}

/// Defender's GPU cost of replaying the shard, USD (priced on the first hardware entry).
pub fn defender_compute(cfg: &Config) -> f64 {
    cfg.griefing.defender_gpu_hours.value * cfg.hardware[0].usd_per_hour.value
}

pub fn at(cfg: &Config, gwei: f64) -> Grief {
    let g = &cfg.griefing;
    let usd_gas = crate::price::usd_per_gas(cfg, gwei);
    let eth = cfg.l1.eth_usd.value;
    let (lost, reward) = bonds(cfg);
    let compute = defender_compute(cfg);
    Grief {
        gwei,
        attacker_cost: attacker_gas(cfg) * usd_gas + lost * eth,
        defender_cost: defender_gas(cfg, g.prove_gas.value) * usd_gas + compute,
        defender_cost_worst: defender_gas(cfg, g.worst_prove_gas.value) * usd_gas + compute,
        defender_reward: reward * eth,
    }
}

/// Gas price (gwei) above which the honest defender loses money on a griefing game.
pub fn defender_break_even_gwei(cfg: &Config, prove: f64) -> f64 {
    let (_, reward) = bonds(cfg);
    let left_usd = reward * cfg.l1.eth_usd.value - defender_compute(cfg);
    left_usd / (defender_gas(cfg, prove) * crate::price::usd_per_gas(cfg, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defender_breaks_even_exactly_at_the_computed_gas_price() {
        let cfg = Config::default_config().unwrap();
        let gwei = defender_break_even_gwei(&cfg, cfg.griefing.prove_gas.value);
        let g = at(&cfg, gwei);
        assert!(g.defender_net().abs() < 1e-6, "{g:?}");
        assert!(at(&cfg, gwei * 1.01).defender_net() < 0.0);
    }

    #[test]
    fn the_attacker_pays_every_move_bond_and_loses_the_opening_bond() {
        let cfg = Config::default_config().unwrap();
        let (lost, reward) = bonds(&cfg);
        let g = &cfg.griefing;
        let moves = g.bisection_rounds.value + 1.0;
        assert_eq!(lost, g.min_bond_eth.value + moves * g.move_bond_eth.value);
        assert!(reward < lost, "half the opening bond is burned");
    }
}
