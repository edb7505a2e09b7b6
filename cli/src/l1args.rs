//! What every L1-facing command takes: the L1 URL, the deployment file and the key. Keys come
//! from an environment variable or a file, never from a flag, and are never printed.

use std::path::{Path, PathBuf};

use alloy::network::EthereumWallet;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{utils::parse_units, Address, U256};
use anyhow::{bail, Context};

/// `--l1`, `--deployment`, `--key-env` / `--key-file`.
#[derive(clap::Args, Debug, Clone)]
pub struct L1Args {
    /// L1 JSON-RPC URL.
    #[arg(long, env = "VERINFER_L1", default_value = "http://127.0.0.1:8545")]
    pub l1: String,
    /// Deployment JSON (`stakeBridge`, `batchInbox`, `rewards`, `skuRegistry`, `disputeGame`, `audits`,
    /// camelCase or snake_case), as `verinfer devnet` writes it.
    #[arg(long, env = "VERINFER_DEPLOYMENT")]
    pub deployment: PathBuf,
    /// Environment variable holding the hex private key.
    #[arg(long, default_value = "VERINFER_KEY", conflicts_with = "key_file")]
    pub key_env: String,
    /// File holding the hex private key.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

/// Contract addresses of a deployment.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub stake_bridge: Address,
    pub batch_inbox: Address,
    pub rewards: Address,
    pub sku_registry: Address,
    pub dispute_game: Address,
    /// The audit protocol (absent from deployments without one).
    pub audits: Option<Address>,
}

/// Reads a key from the variable `var` or from `file` (hex, optional 0x, whitespace trimmed).
pub fn read_key(var: &str, file: Option<&Path>) -> anyhow::Result<PrivateKeySigner> {
    let hex = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read key file {}", f.display()))?,
        None => std::env::var(var).with_context(|| format!("set {var} to the hex private key"))?,
    };
    hex.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "the key in {} is not a hex private key",
            file.map_or(var.to_string(), |f| f.display().to_string())
        )
    })
}

impl L1Args {
    pub fn key(&self) -> anyhow::Result<PrivateKeySigner> {
        read_key(&self.key_env, self.key_file.as_deref())
    }

    pub fn addresses(&self) -> anyhow::Result<Addresses> {
        read_deployment(&self.deployment)
    }

    /// A provider signing with the key.
    pub fn signer(&self) -> anyhow::Result<(DynProvider, Address)> {
        let key = self.key()?;
        let who = key.address();
        let p = ProviderBuilder::new()
            .wallet(EthereumWallet::from(key))
            .connect_http(
                self.l1
                    .parse()
                    .with_context(|| format!("bad L1 URL {}", self.l1))?,
            )
            .erased();
        Ok((p, who))
    }

    /// A read-only provider.
    pub fn reader(&self) -> anyhow::Result<DynProvider> {
        Ok(ProviderBuilder::new()
            .connect_http(
                self.l1
                    .parse()
                    .with_context(|| format!("bad L1 URL {}", self.l1))?,
            )
            .erased())
    }
}

/// Parses a deployment JSON file.
pub fn read_deployment(path: &Path) -> anyhow::Result<Addresses> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let get = |camel: &str, snake: &str| -> anyhow::Result<Address> {
        let s = v[camel].as_str().or_else(|| v[snake].as_str());
        let Some(s) = s else {
            bail!("{} has no {camel}", path.display())
        };
        s.parse()
            .with_context(|| format!("{camel} in {} is not an address", path.display()))
    };
    Ok(Addresses {
        stake_bridge: get("stakeBridge", "stake_bridge")?,
        batch_inbox: get("batchInbox", "batch_inbox")?,
        rewards: get("rewards", "rewards")?,
        sku_registry: get("skuRegistry", "sku_registry")?,
        dispute_game: get("disputeGame", "dispute_game")?,
        audits: v["audits"].as_str().and_then(|s| s.parse().ok()),
    })
}

/// An amount as Foundry writes it: `1ether`, `0.5ether`, `20gwei`, `1000wei` or plain wei.
pub fn parse_amount(s: &str) -> anyhow::Result<U256> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "wei"),
    };
    let v = parse_units(num, unit)
        .with_context(|| format!("bad amount {s:?} (try 1ether, 20gwei, 1000)"))?;
    Ok(v.get_absolute())
}

/// Sends a call, waits for its receipt, fails on a revert; returns the transaction hash.
#[macro_export]
macro_rules! send_tx {
    ($what:expr, $call:expr) => {{
        let r = $call
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", $what))?
            .get_receipt()
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", $what))?;
        anyhow::ensure!(r.status(), "{} reverted (tx {})", $what, r.transaction_hash);
        r.transaction_hash
    }};
}
