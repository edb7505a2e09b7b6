//! The audit protocol's draw, as `Audits.sol` computes it (differential-tested in
//! `tests/audits.rs`): the batch seed from RANDAO, whether a receipt is audited, its audit
//! seed, how deeply a worker is audited, and the stake-weighted verifier. Anyone can recompute
//! every draw from L1 data with these functions.

use alloy::primitives::{keccak256, Address, B256, U256};
use alloy_sol_types::SolValue;

use crate::bindings::Audits;

/// Basis points in one.
pub const BPS: u64 = 10_000;

/// Domain tag of the batch seed (`Audits.SEED_TAG`).
pub fn seed_tag() -> B256 {
    keccak256("verinfer.audit.seed")
}

/// Domain tag of the audited-or-not draw (`Audits.DRAW_TAG`).
pub fn draw_tag() -> B256 {
    keccak256("verinfer.audit.draw")
}

/// Domain tag of the verifier draw (`Audits.VERIFIER_TAG`).
pub fn verifier_tag() -> B256 {
    keccak256("verinfer.audit.verifier")
}

/// How much of a receipt an audit checks (`Audits.Depth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Depth {
    /// One MLP GEMM drawn from the audit seed, one Freivalds round.
    One,
    /// Every MLP GEMM, one round.
    Mlp,
    /// Every GEMM of the program, two rounds.
    All,
}

impl Depth {
    /// From the contract's enum value.
    pub fn from_u8(v: u8) -> Option<Depth> {
        match v {
            0 => Some(Depth::One),
            1 => Some(Depth::Mlp),
            2 => Some(Depth::All),
            _ => None,
        }
    }

    /// Freivalds rounds per GEMM at this depth.
    pub fn rounds(self) -> u32 {
        match self {
            Depth::All => 2,
            _ => 1,
        }
    }
}

/// `Audits.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    None,
    Skipped,
    Assigned,
    Passed,
    Failed,
    Void,
    Missed,
}

impl Status {
    /// From the contract's enum value.
    pub fn from_u8(v: u8) -> Option<Status> {
        Some(match v {
            0 => Status::None,
            1 => Status::Skipped,
            2 => Status::Assigned,
            3 => Status::Passed,
            4 => Status::Failed,
            5 => Status::Void,
            6 => Status::Missed,
            _ => return None,
        })
    }
}

/// `Audits.Params` (docs/AUDITS.md says what each one is for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditParams {
    pub seed_delay: u64,
    pub seed_grace: u64,
    pub verify_period: u64,
    pub max_draws: u8,
    pub base_bps: u16,
    pub new_bps: u16,
    pub veteran_bps: u16,
    pub new_passes: u32,
    pub veteran_passes: u32,
    pub verifier_fee_bps: u16,
    pub miss_slash_bps: u16,
    pub lazy_slash_bps: u16,
    pub false_slash_bps: u16,
    pub keeper_reward_bps: u16,
}

impl AuditParams {
    /// The protocol's rates and slashes with report periods that fit a challenge window of
    /// `window` seconds: each of the `max_draws` verifiers gets a quarter of it, leaving the
    /// last quarter for the seed and a failing verifier's dispute to open.
    pub fn for_window(window: u64) -> Self {
        AuditParams {
            seed_delay: 2,
            seed_grace: 256,
            verify_period: (window / 4).max(1),
            max_draws: 3,
            base_bps: 1_000,
            new_bps: 10_000,
            veteran_bps: 300,
            new_passes: 32,
            veteran_passes: 1024,
            verifier_fee_bps: 500,
            miss_slash_bps: 100,
            lazy_slash_bps: 5_000,
            false_slash_bps: 1_000,
            keeper_reward_bps: 5_000,
        }
    }

    /// The contract's constructor argument.
    pub fn to_abi(&self) -> Audits::Params {
        Audits::Params {
            seedDelay: self.seed_delay,
            seedGrace: self.seed_grace,
            verifyPeriod: self.verify_period,
            maxDraws: self.max_draws,
            baseBps: self.base_bps,
            newBps: self.new_bps,
            veteranBps: self.veteran_bps,
            newPasses: self.new_passes,
            veteranPasses: self.veteran_passes,
            verifierFeeBps: self.verifier_fee_bps,
            missSlashBps: self.miss_slash_bps,
            lazySlashBps: self.lazy_slash_bps,
            falseSlashBps: self.false_slash_bps,
            keeperRewardBps: self.keeper_reward_bps,
        }
    }

    /// A worker's audit probability and depth from its record (`Audits.rateOf`).
    pub fn rate_of(&self, passes: u32, fails: u32, strikes: u8) -> (u16, Depth) {
        if fails != 0 || strikes != 0 {
            return (BPS as u16, Depth::All);
        }
        if passes < self.new_passes {
            return (self.new_bps, Depth::All);
        }
        if passes >= self.veteran_passes {
            return (self.veteran_bps, Depth::One);
        }
        (self.base_bps, Depth::Mlp)
    }
}

/// The seed of batch `batch_id` fixed in a block whose RANDAO is `prevrandao`.
pub fn batch_seed(prevrandao: B256, batch_id: u64, receipts_root: B256) -> B256 {
    keccak256((seed_tag(), prevrandao, U256::from(batch_id), receipts_root).abi_encode())
}

/// Whether receipt `index` of a batch with seed `seed` is audited at `rate_bps`.
pub fn drawn(seed: B256, index: u64, rate_bps: u16) -> bool {
    let h = keccak256((draw_tag(), seed, U256::from(index)).abi_encode());
    U256::from_be_bytes(h.0) % U256::from(BPS) < U256::from(rate_bps)
}

/// The seed of receipt `index`'s audit (its GEMM choice and Freivalds vectors).
pub fn audit_seed(seed: B256, index: u64) -> B256 {
    keccak256((seed, U256::from(index)).abi_encode())
}

/// The verifier of draw `draw` among `(verifier, weight)` in the SKU's list order, leaving out
/// `worker` and `exclude` (`Audits.pickVerifier`).
pub fn pick_verifier(
    verifiers: &[(Address, U256)],
    worker: Address,
    exclude: Address,
    seed: B256,
    draw: u64,
) -> Option<Address> {
    let weight = |(v, w): &(Address, U256)| {
        if *v == worker || *v == exclude {
            U256::ZERO
        } else {
            *w
        }
    };
    let total: U256 = verifiers.iter().map(weight).sum();
    if total.is_zero() {
        return None;
    }
    let h = keccak256((verifier_tag(), seed, U256::from(draw)).abi_encode());
    let mut x = U256::from_be_bytes(h.0) % total;
    for v in verifiers {
        let w = weight(v);
        if x < w {
            return Some(v.0);
        }
        x -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draw_rate_is_close_to_its_probability() {
        let seed = keccak256("s");
        let hits = (0..10_000u64).filter(|&i| drawn(seed, i, 1_000)).count();
        // 1000 expected, sd ≈ 30.
        assert!((850..1150).contains(&hits), "{hits}");
        assert!((0..100u64).all(|i| drawn(seed, i, 10_000)));
    }

    #[test]
    fn verifier_draw_skips_the_worker_and_weighs_stake() {
        let a = Address::repeat_byte(1);
        let b = Address::repeat_byte(2);
        let vs = [(a, U256::from(1u8)), (b, U256::from(3u8))];
        let mut hits = [0u32; 2];
        for i in 0..4000u64 {
            let v = pick_verifier(
                &vs,
                Address::ZERO,
                Address::ZERO,
                keccak256(i.to_be_bytes()),
                0,
            );
            hits[usize::from(v == Some(b))] += 1;
        }
        assert!((850..1150).contains(&hits[0]), "{hits:?}");
        assert_eq!(pick_verifier(&vs, a, b, B256::ZERO, 0), None);
        assert_eq!(pick_verifier(&vs, a, Address::ZERO, B256::ZERO, 7), Some(b));
    }

    #[test]
    fn rate_follows_the_record() {
        let p = AuditParams::for_window(600);
        assert_eq!(p.rate_of(0, 0, 0), (10_000, Depth::All));
        assert_eq!(p.rate_of(40, 0, 0), (1_000, Depth::Mlp));
        assert_eq!(p.rate_of(5_000, 0, 0), (300, Depth::One));
        assert_eq!(p.rate_of(5_000, 1, 0), (10_000, Depth::All));
        assert_eq!(p.rate_of(5_000, 0, 1), (10_000, Depth::All));
    }
}
