//! The buyer's price per token: compute + audit + L1 gas, against retail and batch APIs.
//!
//! All figures are USD per *processed* token (prompt + generated), the unit the inbox charges
//! (`tokensProcessed × price`); retail prices, quoted per input and output token, are blended
//! with the same request shape.

use crate::config::{Config, Retail};

/// Per-token USD in, per-1M-tokens USD out.
pub const PER_M: f64 = 1e6;

/// How the sequencer packs requests into receipts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Packing {
    pub requests_per_receipt: f64,
    pub tokens_per_receipt: f64,
    /// Share of processed tokens that are prompt tokens (these go to L1 as calldata).
    pub input_share: f64,
}

/// The shard a default request shape fills: as many whole requests as both limits allow.
pub fn packing(cfg: &Config) -> Packing {
    let w = &cfg.workload;
    let per_request = w.prompt_tokens.value + w.output_tokens.value;
    let by_tokens = (w.shard_max_tokens.value / per_request).floor();
    let requests = by_tokens.min(w.shard_max_prompts.value).max(1.0);
    Packing {
        requests_per_receipt: requests,
        tokens_per_receipt: requests * per_request,
        input_share: w.prompt_tokens.value / per_request,
    }
}

/// Audit time per audited shard as a share of the shard's inference time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuditShares {
    /// The Freivalds design (`--gemms mlp`): MLP GEMM checks plus re-hashing fetched tensors.
    pub freivalds: f64,
    /// What the daemon does today: re-run the shard.
    pub reexecution: f64,
}

pub fn audit_shares(cfg: &Config) -> AuditShares {
    let a = &cfg.audit;
    let gemm = a.gemm_share.value * a.mlp_gemm_share.value * a.freivalds_share_of_gemm.value;
    let hashing = a.hashing_share.value * a.mlp_hash_bytes_share.value;
    AuditShares {
        freivalds: gemm * a.rounds.value + hashing,
        reexecution: a.reexecution_share.value,
    }
}

/// L1 gas of one receipt's life: post, audit draw, the verifier's report (when audited), and
/// finalization.
pub fn receipt_gas(cfg: &Config) -> f64 {
    let l = &cfg.l1;
    l.post_gas_per_receipt.value
        + l.draw_gas_per_receipt.value
        + cfg.audit.sample_rate.value * l.report_gas_per_audit.value
        + l.finalize_gas_per_receipt.value
}

/// Probability that a cheater's receipt is audited at nominal rate `s`, when it controls `k`
/// proposer slots (it picks among k + 1 seeds and is audited only if all of them audit it).
pub fn effective_rate(cfg: &Config, s: f64) -> f64 {
    s.powf(cfg.audit.seed_controlled_slots.value + 1.0)
}

/// USD per gas unit at `gwei`.
pub fn usd_per_gas(cfg: &Config, gwei: f64) -> f64 {
    gwei * 1e-9 * cfg.l1.eth_usd.value
}

/// L1 gas per processed token: the receipt's post + finalize spread over its tokens, plus the
/// prompt bytes posted as calldata (data availability).
pub fn gas_per_token(cfg: &Config, tokens_per_receipt: f64, input_share: f64) -> f64 {
    let l = &cfg.l1;
    let per_receipt = receipt_gas(cfg);
    let calldata =
        input_share * cfg.workload.input_bytes_per_token.value * l.input_gas_per_byte.value;
    per_receipt / tokens_per_receipt + calldata
}

/// The same with the prompts in EIP-4844 blobs instead of calldata, in USD per token (a
/// what-if: not implemented).
pub fn blob_usd_per_token(cfg: &Config, tokens_per_receipt: f64, input_share: f64) -> f64 {
    let l = &cfg.l1;
    let per_receipt = receipt_gas(cfg);
    let exec = per_receipt / tokens_per_receipt * usd_per_gas(cfg, l.gas_price_gwei.value);
    let blob = input_share * cfg.workload.input_bytes_per_token.value * l.blob_gas_per_byte.value;
    exec + blob * usd_per_gas(cfg, l.blob_gas_price_gwei.value)
}

/// Compute USD per token on hardware at `usd_per_hour` doing `tokens_per_s`.
pub fn compute_usd_per_token(usd_per_hour: f64, tokens_per_s: f64) -> f64 {
    usd_per_hour / 3600.0 / tokens_per_s
}

/// One line of the price breakdown (USD per token).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breakdown {
    pub compute: f64,
    pub audit: f64,
    pub gas: f64,
}

impl Breakdown {
    pub fn total(&self) -> f64 {
        self.compute + self.audit + self.gas
    }
}

/// The buyer's cost floor at a throughput, with an audit share per audited shard.
pub fn breakdown(
    cfg: &Config,
    usd_per_hour: f64,
    tokens_per_s: f64,
    audit_share: f64,
) -> Breakdown {
    let p = packing(cfg);
    let compute = compute_usd_per_token(usd_per_hour, tokens_per_s);
    let gas = gas_per_token(cfg, p.tokens_per_receipt, p.input_share);
    Breakdown {
        compute,
        audit: compute * cfg.audit.sample_rate.value * audit_share,
        gas: gas * usd_per_gas(cfg, cfg.l1.gas_price_gwei.value),
    }
}

/// A retail price blended over the request shape, with and without the batch discount.
pub fn blended(cfg: &Config, r: &Retail) -> (f64, f64) {
    let w = &cfg.workload;
    let (i, o) = (w.prompt_tokens.value, w.output_tokens.value);
    let list = (i * r.input_usd_per_m.value + o * r.output_usd_per_m.value) / (i + o) / PER_M;
    (list, list * (1.0 - r.batch_discount.value))
}

/// The price the protocol must beat: the cheapest cited price (batch where offered).
pub fn reference(cfg: &Config) -> (f64, &Retail) {
    cfg.retail
        .iter()
        .map(|r| (blended(cfg, r).1, r))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .expect("config check: retail is not empty")
}

/// Tokens/s at which the cost floor equals `target` (USD per token); `None` where gas alone
/// already costs more.
pub fn break_even_tokens_per_s(
    cfg: &Config,
    usd_per_hour: f64,
    audit_share: f64,
    target: f64,
) -> Option<f64> {
    let p = packing(cfg);
    let gas = gas_per_token(cfg, p.tokens_per_receipt, p.input_share)
        * usd_per_gas(cfg, cfg.l1.gas_price_gwei.value);
    let left = target - gas;
    if left <= 0.0 {
        return None;
    }
    let per_tps = usd_per_hour / 3600.0 * (1.0 + cfg.audit.sample_rate.value * audit_share);
    Some(per_tps / left)
}

/// Gas price (gwei) at which L1 gas alone costs `target` per token at a receipt size.
pub fn break_even_gwei(
    cfg: &Config,
    tokens_per_receipt: f64,
    input_share: f64,
    target: f64,
) -> f64 {
    target / (gas_per_token(cfg, tokens_per_receipt, input_share) * usd_per_gas(cfg, 1.0))
}

/// Receipt size at which the per-receipt gas alone costs `target` per token; `None` where the
/// prompt calldata alone already does.
pub fn break_even_tokens_per_receipt(cfg: &Config, input_share: f64, target: f64) -> Option<f64> {
    let l = &cfg.l1;
    let usd_gas = usd_per_gas(cfg, l.gas_price_gwei.value);
    let calldata =
        input_share * cfg.workload.input_bytes_per_token.value * l.input_gas_per_byte.value;
    let left = target / usd_gas - calldata;
    (left > 0.0).then(|| receipt_gas(cfg) / left)
}

/// The project's own CPU figure scaled to the whole model (one layer measured).
pub fn measured_cpu_tokens_per_s(cfg: &Config) -> f64 {
    cfg.measured_cpu.one_layer_tokens_per_s.value / cfg.measured_cpu.layers.value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::default_config().unwrap()
    }

    #[test]
    fn packing_fills_the_shard_by_its_tighter_limit() {
        let p = packing(&cfg());
        // 768 tokens per request: 42 fit by tokens, 32 by prompts.
        assert_eq!(p.requests_per_receipt, 32.0);
        assert_eq!(p.tokens_per_receipt, 32.0 * 768.0);
        assert!((p.input_share - 512.0 / 768.0).abs() < 1e-12);
    }

    #[test]
    fn break_even_throughput_prices_exactly_at_target() {
        let c = cfg();
        let a = audit_shares(&c).freivalds;
        let target = 1e-3; // $1,000 per 1M tokens: above the default gas floor
        let tps = break_even_tokens_per_s(&c, 2.0, a, target).unwrap();
        let b = breakdown(&c, 2.0, tps, a);
        assert!((b.total() - target).abs() < 1e-15, "{b:?}");
    }

    #[test]
    fn gas_break_evens_are_consistent() {
        let c = cfg();
        let p = packing(&c);
        let target = 1e-4;
        let g = break_even_gwei(&c, p.tokens_per_receipt, p.input_share, target);
        let usd = gas_per_token(&c, p.tokens_per_receipt, p.input_share) * usd_per_gas(&c, g);
        assert!((usd - target).abs() / target < 1e-12);
        if let Some(n) = break_even_tokens_per_receipt(&c, p.input_share, target) {
            let usd =
                gas_per_token(&c, n, p.input_share) * usd_per_gas(&c, c.l1.gas_price_gwei.value);
            assert!((usd - target).abs() / target < 1e-9);
        }
    }

    #[test]
    fn blended_retail_weights_input_and_output() {
        let c = cfg();
        let r = &c.retail[2]; // 0.20 in / 0.60 out
        let (list, batch) = blended(&c, r);
        let want = (512.0 * 0.20 + 256.0 * 0.60) / 768.0 / 1e6;
        assert!((list - want).abs() < 1e-18);
        assert_eq!(batch, list * (1.0 - r.batch_discount.value));
    }
}
