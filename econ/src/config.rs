//! The assumptions: every number with its source. The default is `ops/econ/default.toml`,
//! compiled into the binary so that `verinfer econ` runs anywhere.

use serde::Deserialize;

use crate::EconError;

/// The built-in default config (the same bytes as `ops/econ/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../ops/econ/default.toml");

/// One assumption: a number and where it comes from.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sourced {
    pub value: f64,
    pub source: String,
}

/// Everything the model reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub as_of: String,
    pub workload: Workload,
    pub hardware: Vec<Hardware>,
    pub measured_cpu: MeasuredCpu,
    pub grids: Grids,
    pub audit: Audit,
    pub l1: L1,
    pub retail: Vec<Retail>,
    pub earnings: Earnings,
    pub cheating: Cheating,
    pub griefing: Griefing,
    /// Every sourced number, as (path, value, source), in file order (for the report).
    #[serde(skip)]
    pub sources: Vec<(String, f64, String)>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub prompt_tokens: Sourced,
    pub output_tokens: Sourced,
    pub shard_max_prompts: Sourced,
    pub shard_max_tokens: Sourced,
    pub input_bytes_per_token: Sourced,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hardware {
    pub name: String,
    pub usd_per_hour: Sourced,
    /// Only where the project measured it on this hardware.
    pub tokens_per_s: Option<Sourced>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuredCpu {
    pub one_layer_tokens_per_s: Sourced,
    pub layers: Sourced,
}

/// Axes of the price tables and plots.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grids {
    pub tokens_per_s: Vec<f64>,
    pub tokens_per_receipt: Vec<f64>,
    pub gas_price_gwei: Vec<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    pub sample_rate: Sourced,
    pub new_rate: Sourced,
    pub veteran_rate: Sourced,
    pub verifier_fee_share: Sourced,
    pub seed_controlled_slots: Sourced,
    pub rounds: Sourced,
    pub gemm_share: Sourced,
    pub hashing_share: Sourced,
    pub mlp_gemm_share: Sourced,
    pub freivalds_share_of_gemm: Sourced,
    pub mlp_hash_bytes_share: Sourced,
    pub reexecution_share: Sourced,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L1 {
    pub post_gas_per_receipt: Sourced,
    pub finalize_gas_per_receipt: Sourced,
    pub draw_gas_per_receipt: Sourced,
    pub report_gas_per_audit: Sourced,
    pub input_gas_per_byte: Sourced,
    pub gas_price_gwei: Sourced,
    pub eth_usd: Sourced,
    pub blob_gas_per_byte: Sourced,
    pub blob_gas_price_gwei: Sourced,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retail {
    pub provider: String,
    pub model: String,
    pub input_usd_per_m: Sourced,
    pub output_usd_per_m: Sourced,
    pub batch_discount: Sourced,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Earnings {
    pub network_tokens_per_day: Sourced,
    pub tokens_per_shard_cv: Sourced,
    pub epoch_seconds: Sourced,
    pub min_credits_per_epoch: Sourced,
    pub sim_days: Sourced,
    pub seed: Sourced,
    pub stake_share_grid: Vec<f64>,
    pub pow: Vec<Pow>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pow {
    pub name: String,
    pub block_value_usd: Sourced,
    pub blocks_per_day: Sourced,
    pub pool_share: Sourced,
    pub miner_shares_per_day: Sourced,
    pub pplns_window_blocks: Sourced,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cheating {
    pub stake_eth: Sourced,
    pub slash_fraud_bps: Sourced,
    pub max_strikes: Sourced,
    pub saved_share_of_fee: Sourced,
    pub freivalds_miss: Sourced,
    pub horizon_days: Sourced,
    pub stake_share: Sourced,
    pub sample_rate_grid: Vec<f64>,
    pub cheat_rate_grid: Vec<f64>,
    pub collusion: Collusion,
    pub policy: Vec<Policy>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collusion {
    pub verifier_stake_eth: Sourced,
    pub verifier_slash_bps: Sourced,
    pub colluding_share_grid: Vec<f64>,
    pub watcher_rate_grid: Vec<f64>,
}

/// A watcher GEMM policy (`--gemms`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    /// MLP GEMM steps checked per shard; 0 means all of them.
    pub mlp_steps_checked: Sourced,
    pub checks_attention: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Griefing {
    pub min_bond_eth: Sourced,
    pub move_bond_eth: Sourced,
    pub reward_bps: Sourced,
    pub bisection_rounds: Sourced,
    pub open_gas: Sourced,
    pub choose_gas: Sourced,
    pub name_entry_gas: Sourced,
    pub bisect_gas: Sourced,
    pub prove_gas: Sourced,
    pub worst_prove_gas: Sourced,
    pub defender_gpu_hours: Sourced,
    pub gas_price_grid: Vec<f64>,
}

impl Config {
    /// Parses and checks a config.
    pub fn from_toml(text: &str) -> Result<Self, EconError> {
        let mut cfg: Config = toml::from_str(text)?;
        cfg.check()?;
        let raw: toml::Table = toml::from_str(text)?;
        collect_sources(&raw, "", &mut cfg.sources);
        Ok(cfg)
    }

    /// The built-in default.
    pub fn default_config() -> Result<Self, EconError> {
        Self::from_toml(DEFAULT_TOML)
    }

    /// Reads a config file.
    pub fn load(path: &std::path::Path) -> Result<Self, EconError> {
        let text = std::fs::read_to_string(path).map_err(|source| EconError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text)
    }

    fn check(&self) -> Result<(), EconError> {
        self.check_workload()?;
        self.check_price_inputs()?;
        self.check_earnings()?;
        self.check_cheating()?;
        self.check_griefing()
    }

    fn check_workload(&self) -> Result<(), EconError> {
        let w = &self.workload;
        positive("workload.prompt_tokens", &w.prompt_tokens)?;
        nonneg("workload.output_tokens", &w.output_tokens)?;
        positive("workload.shard_max_prompts", &w.shard_max_prompts)?;
        positive("workload.shard_max_tokens", &w.shard_max_tokens)?;
        if w.prompt_tokens.value + w.output_tokens.value > w.shard_max_tokens.value {
            return Err(EconError::invalid(
                "workload",
                "one request is larger than a shard",
            ));
        }
        nonneg("workload.input_bytes_per_token", &w.input_bytes_per_token)
    }

    fn check_price_inputs(&self) -> Result<(), EconError> {
        if self.hardware.is_empty() {
            return Err(EconError::invalid("hardware", "at least one entry needed"));
        }
        for h in &self.hardware {
            positive(
                &format!("hardware[{}].usd_per_hour", h.name),
                &h.usd_per_hour,
            )?;
            if let Some(t) = &h.tokens_per_s {
                positive(&format!("hardware[{}].tokens_per_s", h.name), t)?;
            }
        }
        let g = &self.grids;
        grid("grids.tokens_per_s", &g.tokens_per_s, false)?;
        grid("grids.tokens_per_receipt", &g.tokens_per_receipt, false)?;
        grid("grids.gas_price_gwei", &g.gas_price_gwei, false)?;
        if g.tokens_per_s.contains(&0.0) || g.tokens_per_receipt.contains(&0.0) {
            return Err(EconError::invalid(
                "grids",
                "throughput and receipt size must be > 0",
            ));
        }
        let m = &self.measured_cpu;
        positive(
            "measured_cpu.one_layer_tokens_per_s",
            &m.one_layer_tokens_per_s,
        )?;
        positive("measured_cpu.layers", &m.layers)?;
        let a = &self.audit;
        share("audit.sample_rate", &a.sample_rate)?;
        share("audit.new_rate", &a.new_rate)?;
        share("audit.veteran_rate", &a.veteran_rate)?;
        share("audit.verifier_fee_share", &a.verifier_fee_share)?;
        nonneg("audit.seed_controlled_slots", &a.seed_controlled_slots)?;
        for (n, s) in [
            ("audit.sample_rate", &a.sample_rate),
            ("audit.new_rate", &a.new_rate),
            ("audit.veteran_rate", &a.veteran_rate),
        ] {
            if s.value <= 0.0 {
                return Err(EconError::invalid(
                    n,
                    "an audit rate must be > 0 (credits are fee / rate)",
                ));
            }
        }
        positive("audit.rounds", &a.rounds)?;
        for (n, s) in [
            ("audit.gemm_share", &a.gemm_share),
            ("audit.hashing_share", &a.hashing_share),
            ("audit.mlp_gemm_share", &a.mlp_gemm_share),
            ("audit.freivalds_share_of_gemm", &a.freivalds_share_of_gemm),
            ("audit.mlp_hash_bytes_share", &a.mlp_hash_bytes_share),
        ] {
            share(n, s)?;
        }
        nonneg("audit.reexecution_share", &a.reexecution_share)?;
        let l = &self.l1;
        for (n, s) in [
            ("l1.post_gas_per_receipt", &l.post_gas_per_receipt),
            ("l1.finalize_gas_per_receipt", &l.finalize_gas_per_receipt),
            ("l1.draw_gas_per_receipt", &l.draw_gas_per_receipt),
            ("l1.report_gas_per_audit", &l.report_gas_per_audit),
            ("l1.input_gas_per_byte", &l.input_gas_per_byte),
            ("l1.gas_price_gwei", &l.gas_price_gwei),
            ("l1.blob_gas_per_byte", &l.blob_gas_per_byte),
            ("l1.blob_gas_price_gwei", &l.blob_gas_price_gwei),
        ] {
            nonneg(n, s)?;
        }
        positive("l1.eth_usd", &l.eth_usd)?;
        if self.retail.is_empty() {
            return Err(EconError::invalid("retail", "at least one price needed"));
        }
        for r in &self.retail {
            let f = format!("retail[{} {}]", r.provider, r.model);
            positive(&format!("{f}.input_usd_per_m"), &r.input_usd_per_m)?;
            positive(&format!("{f}.output_usd_per_m"), &r.output_usd_per_m)?;
            share(&format!("{f}.batch_discount"), &r.batch_discount)?;
        }
        Ok(())
    }

    fn check_earnings(&self) -> Result<(), EconError> {
        let e = &self.earnings;
        positive("earnings.network_tokens_per_day", &e.network_tokens_per_day)?;
        nonneg("earnings.tokens_per_shard_cv", &e.tokens_per_shard_cv)?;
        positive("earnings.epoch_seconds", &e.epoch_seconds)?;
        nonneg("earnings.min_credits_per_epoch", &e.min_credits_per_epoch)?;
        positive("earnings.sim_days", &e.sim_days)?;
        nonneg("earnings.seed", &e.seed)?;
        grid("earnings.stake_share_grid", &e.stake_share_grid, true)?;
        for p in &e.pow {
            let f = format!("earnings.pow[{}]", p.name);
            positive(&format!("{f}.block_value_usd"), &p.block_value_usd)?;
            positive(&format!("{f}.blocks_per_day"), &p.blocks_per_day)?;
            share(&format!("{f}.pool_share"), &p.pool_share)?;
            positive(
                &format!("{f}.miner_shares_per_day"),
                &p.miner_shares_per_day,
            )?;
            positive(&format!("{f}.pplns_window_blocks"), &p.pplns_window_blocks)?;
        }
        Ok(())
    }

    fn check_cheating(&self) -> Result<(), EconError> {
        let c = &self.cheating;
        nonneg("cheating.stake_eth", &c.stake_eth)?;
        bps("cheating.slash_fraud_bps", &c.slash_fraud_bps)?;
        positive("cheating.max_strikes", &c.max_strikes)?;
        nonneg("cheating.saved_share_of_fee", &c.saved_share_of_fee)?;
        share("cheating.freivalds_miss", &c.freivalds_miss)?;
        positive("cheating.horizon_days", &c.horizon_days)?;
        share("cheating.stake_share", &c.stake_share)?;
        grid("cheating.sample_rate_grid", &c.sample_rate_grid, true)?;
        grid("cheating.cheat_rate_grid", &c.cheat_rate_grid, true)?;
        nonneg(
            "cheating.collusion.verifier_stake_eth",
            &c.collusion.verifier_stake_eth,
        )?;
        bps(
            "cheating.collusion.verifier_slash_bps",
            &c.collusion.verifier_slash_bps,
        )?;
        grid(
            "cheating.collusion.colluding_share_grid",
            &c.collusion.colluding_share_grid,
            true,
        )?;
        grid(
            "cheating.collusion.watcher_rate_grid",
            &c.collusion.watcher_rate_grid,
            true,
        )?;
        for p in &c.policy {
            nonneg(
                &format!("cheating.policy[{}].mlp_steps_checked", p.name),
                &p.mlp_steps_checked,
            )?;
        }
        Ok(())
    }

    fn check_griefing(&self) -> Result<(), EconError> {
        let g = &self.griefing;
        for (n, s) in [
            ("griefing.min_bond_eth", &g.min_bond_eth),
            ("griefing.move_bond_eth", &g.move_bond_eth),
            ("griefing.bisection_rounds", &g.bisection_rounds),
            ("griefing.open_gas", &g.open_gas),
            ("griefing.choose_gas", &g.choose_gas),
            ("griefing.name_entry_gas", &g.name_entry_gas),
            ("griefing.bisect_gas", &g.bisect_gas),
            ("griefing.prove_gas", &g.prove_gas),
            ("griefing.worst_prove_gas", &g.worst_prove_gas),
            ("griefing.defender_gpu_hours", &g.defender_gpu_hours),
        ] {
            nonneg(n, s)?;
        }
        bps("griefing.reward_bps", &g.reward_bps)?;
        grid("griefing.gas_price_grid", &g.gas_price_grid, false)
    }
}

/// Walks the raw TOML for `{ value, source }` tables. Array entries are named by their `name`
/// (or `provider` + `model`) so that the list reads well.
fn collect_sources(t: &toml::Table, path: &str, out: &mut Vec<(String, f64, String)>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    for (k, v) in t {
        match v {
            toml::Value::Table(inner) => match (inner.get("value"), inner.get("source")) {
                (Some(val), Some(toml::Value::String(src))) => {
                    let x = val
                        .as_float()
                        .or_else(|| val.as_integer().map(|i| i as f64));
                    out.push((join(k), x.unwrap_or(f64::NAN), src.clone()));
                }
                _ => collect_sources(inner, &join(k), out),
            },
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::Value::Table(inner) = item {
                        collect_sources(
                            inner,
                            &format!("{}[{}]", join(k), entry_name(inner, i)),
                            out,
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

fn entry_name(t: &toml::Table, i: usize) -> String {
    let s = |k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_string);
    match (s("name"), s("provider"), s("model")) {
        (Some(n), _, _) => n,
        (None, Some(p), Some(m)) => format!("{p} {m}"),
        _ => i.to_string(),
    }
}

/// A number must be finite and carry a source.
fn sourced(field: &str, s: &Sourced) -> Result<f64, EconError> {
    if s.source.trim().is_empty() {
        return Err(EconError::NoSource {
            field: field.to_string(),
        });
    }
    if !s.value.is_finite() {
        return Err(EconError::invalid(field, "not a finite number"));
    }
    Ok(s.value)
}

fn nonneg(field: &str, s: &Sourced) -> Result<(), EconError> {
    if sourced(field, s)? < 0.0 {
        return Err(EconError::invalid(field, "must be >= 0"));
    }
    Ok(())
}

fn positive(field: &str, s: &Sourced) -> Result<(), EconError> {
    if sourced(field, s)? <= 0.0 {
        return Err(EconError::invalid(field, "must be > 0"));
    }
    Ok(())
}

fn share(field: &str, s: &Sourced) -> Result<(), EconError> {
    let v = sourced(field, s)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(EconError::invalid(field, "must be a share in [0, 1]"));
    }
    Ok(())
}

fn bps(field: &str, s: &Sourced) -> Result<(), EconError> {
    let v = sourced(field, s)?;
    if !(0.0..=10_000.0).contains(&v) {
        return Err(EconError::invalid(
            field,
            "basis points must be in [0, 10000]",
        ));
    }
    Ok(())
}

/// Axes: non-empty, finite, non-negative, and shares where `shares`.
fn grid(field: &str, g: &[f64], shares: bool) -> Result<(), EconError> {
    if g.is_empty() {
        return Err(EconError::invalid(field, "empty grid"));
    }
    let bad = |v: &f64| !v.is_finite() || *v < 0.0 || (shares && *v > 1.0);
    if g.iter().any(bad) {
        let want = if shares { "shares in [0, 1]" } else { ">= 0" };
        return Err(EconError::invalid(
            field,
            format!("grid values must be {want}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses_and_every_number_has_a_source() {
        let cfg = Config::default_config().expect("default config");
        assert!(!cfg.hardware.is_empty());
        assert!(cfg.retail.len() >= 4);
    }

    #[test]
    fn a_number_without_source_is_refused() {
        let bad = DEFAULT_TOML.replacen(
            "source = \"assumption: a typical batch request",
            "source = \" \", x = \"",
            1,
        );
        // The replacement leaves an unknown key: either error is a refusal.
        assert!(Config::from_toml(&bad).is_err());
        let no_source = DEFAULT_TOML.replacen(
            "prompt_tokens = { value = 512, source = \"assumption: a typical batch request (classification / summarisation / extraction prompt)\" }",
            "prompt_tokens = { value = 512, source = \"\" }",
            1,
        );
        assert!(matches!(
            Config::from_toml(&no_source),
            Err(EconError::NoSource { .. })
        ));
    }

    #[test]
    fn out_of_range_values_are_typed_errors() {
        let bad = DEFAULT_TOML.replacen(
            "sample_rate = { value = 0.10,",
            "sample_rate = { value = 1.5,",
            1,
        );
        assert!(matches!(
            Config::from_toml(&bad),
            Err(EconError::Invalid { .. })
        ));
    }
}
