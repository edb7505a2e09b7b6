//! The sequencer's configuration file (TOML). See `docs/SEQUENCER.md` for an annotated example.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256, U256};
use serde::Deserialize;

/// Failures reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("config file {path} is invalid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("config: {0}")]
    Invalid(String),
}

/// Everything `verinfer sequencer --config FILE` reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the JSON-RPC server (HTTP and WebSocket on the same port, `/metrics` too).
    pub listen: SocketAddr,
    /// Directory of the redb file.
    pub data_dir: PathBuf,
    /// The L1 node and contracts.
    pub l1: L1Config,
    /// SKUs accepted.
    pub skus: Vec<SkuConfig>,
    /// Request limits.
    #[serde(default)]
    pub limits: Limits,
    /// How jobs are cut into shards.
    #[serde(default)]
    pub sharding: Sharding,
    /// Worker policy.
    #[serde(default)]
    pub workers: WorkerPolicy,
    /// Batching and posting.
    #[serde(default)]
    pub batching: Batching,
}

/// L1 connection. The sequencer's posting key is read from the environment variable named by
/// `key_env` (never from the file, never logged).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L1Config {
    /// HTTP URL of the L1 node.
    pub rpc_url: String,
    /// Batch inbox contract (also the EIP-712 verifying contract).
    pub batch_inbox: Address,
    /// StakeBridge contract (worker stakes, served SKUs, buyer escrow).
    pub stake_bridge: Address,
    /// SkuRegistry contract (SKU activity and prices).
    pub sku_registry: Address,
    /// Name of the environment variable holding the poster's hex private key.
    #[serde(default = "default_key_env")]
    pub key_env: String,
    /// Blocks on top of a batch's block before it counts as confirmed.
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
    /// How often the follower polls the L1 head (ms).
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Gas limit = estimate × (100 + headroom) / 100.
    #[serde(default = "default_headroom")]
    pub gas_headroom_percent: u64,
    /// Attempts per posting before the poster backs off to the next round.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
}

fn default_key_env() -> String {
    "VERINFER_SEQUENCER_KEY".into()
}
fn default_confirmations() -> u64 {
    2
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_headroom() -> u64 {
    25
}
fn default_retries() -> u32 {
    5
}

/// One accepted SKU. Its price per token is read from the L1 SKU registry at startup.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuConfig {
    /// SKU id.
    pub id: B256,
    /// Display name.
    pub name: String,
    /// Most tokens per prompt (prompt + generated).
    pub max_context: u32,
}

/// Request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest HTTP body / WebSocket message (bytes).
    pub max_request_bytes: u32,
    /// Most prompts in one job.
    pub max_prompts_per_job: u32,
    /// Most prompt bytes (leaf encodings) in one job.
    pub max_job_bytes: u64,
    /// Jobs per group commit at most.
    pub max_group_commit: usize,
    /// Most open connections (HTTP and WebSocket together).
    pub max_connections: u32,
    /// Most request-body bytes being received or handled at once over HTTP, all connections
    /// together (a request that would exceed it gets HTTP 503 with error code 5031).
    pub max_inflight_bytes: u64,
    /// Serve `verinfer_getResults` without the buyer's access signature (a public-proofs
    /// deployment; off by default, completions are the buyer's).
    pub public_results: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 4 * 1024 * 1024,
            max_prompts_per_job: 4096,
            max_job_bytes: 1024 * 1024,
            max_group_commit: 512,
            max_connections: 128,
            max_inflight_bytes: 64 * 1024 * 1024,
            public_results: false,
        }
    }
}

/// Sharding policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sharding {
    /// Most prompts per shard.
    pub max_prompts: u32,
    /// Most tokens (prompt bound + max_new_tokens, summed) per shard.
    pub max_tokens: u64,
}

impl Default for Sharding {
    fn default() -> Self {
        Self {
            max_prompts: 32,
            max_tokens: 32 * 1024,
        }
    }
}

/// Worker policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerPolicy {
    /// Least L1 stake to be registered (wei).
    pub min_stake: U256,
    /// Time a worker has for a shard before it is re-assigned (ms).
    pub shard_timeout_ms: u64,
    /// How far a registration's `issuedAt` may be from now (s).
    pub registration_max_age_s: u64,
    /// Scheduler tick (ms).
    pub tick_ms: u64,
}

impl Default for WorkerPolicy {
    fn default() -> Self {
        Self {
            min_stake: U256::from(1u64),
            shard_timeout_ms: 60_000,
            registration_max_age_s: 300,
            tick_ms: 200,
        }
    }
}

/// Batching policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Batching {
    /// Most jobs per batch.
    pub max_jobs: usize,
    /// Most receipts per batch (the inbox takes at most 512).
    pub max_receipts: usize,
    /// How often a batch is cut (ms).
    pub interval_ms: u64,
    /// Most estimated gas of one batch's posting and of its finalization (see
    /// `crate::gas`); with `l1.gas_headroom_percent` on top it must stay under EIP-7825's
    /// 2^24 per transaction.
    pub gas_budget: u64,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            max_jobs: 256,
            max_receipts: 512,
            interval_ms: 2000,
            gas_budget: 12_000_000,
        }
    }
}

impl Config {
    /// Reads and checks a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let cfg: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Range checks the parser cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.skus.is_empty() {
            return Err(ConfigError::Invalid(
                "at least one [[skus]] entry is needed".into(),
            ));
        }
        if self.sharding.max_prompts == 0 || self.sharding.max_tokens == 0 {
            return Err(ConfigError::Invalid(
                "sharding limits must be positive".into(),
            ));
        }
        if self.limits.max_prompts_per_job == 0 || self.limits.max_group_commit == 0 {
            return Err(ConfigError::Invalid("limits must be positive".into()));
        }
        if self.batching.max_jobs == 0 || !(1..=512).contains(&self.batching.max_receipts) {
            return Err(ConfigError::Invalid(
                "batching.max_jobs must be positive and batching.max_receipts in 1..=512".into(),
            ));
        }
        let limit = self
            .batching
            .gas_budget
            .saturating_mul(100 + self.l1.gas_headroom_percent)
            / 100;
        if self.batching.gas_budget == 0 || limit > crate::gas::EIP7825_TX_GAS_CAP {
            return Err(ConfigError::Invalid(format!(
                "batching.gas_budget × (100 + l1.gas_headroom_percent)% = {limit} must be positive and at most 2^24 (EIP-7825)"
            )));
        }
        if self.limits.max_connections == 0
            || self.limits.max_inflight_bytes < u64::from(self.limits.max_request_bytes)
        {
            return Err(ConfigError::Invalid(
                "limits.max_connections must be positive and limits.max_inflight_bytes at least limits.max_request_bytes".into(),
            ));
        }
        // A job must fit one batch: its shard count is at most its prompt count.
        if self.limits.max_prompts_per_job as usize
            > self.batching.max_receipts * self.sharding.max_prompts as usize
        {
            return Err(ConfigError::Invalid(
                "limits.max_prompts_per_job must be <= batching.max_receipts × sharding.max_prompts".into(),
            ));
        }
        Ok(())
    }
}
