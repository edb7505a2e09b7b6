//! The devnet's L1: anvil as a child process on a free loopback port, the contracts deployed from `l1-bridge`, and anvil's cheat RPCs for funding
//! accounts and moving time forward instead of waiting for windows.

use std::path::Path;
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, U256};
use verinfer_l1::{deploy, DeployConfig, Deployment};

use crate::proc::{free_port, Daemon, Spec};
use crate::DevnetError;

/// One ether in wei.
pub fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// Anvil, running.
pub struct L1 {
    pub daemon: Daemon,
    pub url: String,
    pub chain_id: u64,
    reader: DynProvider,
}

impl L1 {
    /// Starts anvil (from PATH: `source ops/env.sh`) and waits until it answers.
    pub async fn start(log_dir: &Path) -> Result<Self, DevnetError> {
        let port = free_port()?;
        let spec = Spec {
            name: "anvil".into(),
            program: "anvil".into(),
            args: [
                "--port",
                &port.to_string(),
                "--host",
                "127.0.0.1",
                "--block-time",
                "1",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            env: vec![],
            log_dir: log_dir.to_path_buf(),
        };
        let daemon = Daemon::start(spec).map_err(|e| match e {
            DevnetError::Spawn(..) => DevnetError::Spawn(
                "anvil".into(),
                "not on PATH: run `bash ops/setup.sh` and `source ops/env.sh`".into(),
            ),
            e => e,
        })?;
        let url = format!("http://127.0.0.1:{port}");
        let reader = ProviderBuilder::new()
            .connect_http(
                url.parse()
                    .map_err(|_| DevnetError::Chain(format!("bad url {url}")))?,
            )
            .erased();
        let start = Instant::now();
        let chain_id = loop {
            if let Ok(id) = reader.get_chain_id().await {
                break id;
            }
            if start.elapsed() > Duration::from_secs(20) {
                return Err(DevnetError::Timeout(format!(
                    "anvil did not answer on {url}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        Ok(L1 {
            daemon,
            url,
            chain_id,
            reader,
        })
    }

    /// A provider that signs with `key`.
    pub fn connect(&self, key: &PrivateKeySigner) -> DynProvider {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(key.clone()))
            .connect_http(self.url.parse().expect("checked in start"))
            .erased()
    }

    /// A read-only provider.
    pub fn reader(&self) -> &DynProvider {
        &self.reader
    }

    /// From now on a block every `secs` seconds, with or without transactions (a job's
    /// assignment seed is the first block after its acceptance).
    pub async fn interval_mining(&self, secs: u64) -> Result<(), DevnetError> {
        let _: serde_json::Value = self
            .reader
            .raw_request("evm_setIntervalMining".into(), (secs,))
            .await
            .map_err(chain_err("evm_setIntervalMining"))?;
        Ok(())
    }

    /// Sets `who`'s balance (anvil cheat RPC).
    pub async fn fund(&self, who: Address, wei: U256) -> Result<(), DevnetError> {
        let _: serde_json::Value = self
            .reader
            .raw_request("anvil_setBalance".into(), (who, wei))
            .await
            .map_err(chain_err("anvil_setBalance"))?;
        Ok(())
    }

    /// Moves L1 time forward by `secs` and mines a block at the new time.
    pub async fn warp(&self, secs: u64) -> Result<(), DevnetError> {
        let _: serde_json::Value = self
            .reader
            .raw_request("evm_increaseTime".into(), (secs,))
            .await
            .map_err(chain_err("evm_increaseTime"))?;
        let _: serde_json::Value = self
            .reader
            .raw_request("evm_mine".into(), ())
            .await
            .map_err(chain_err("evm_mine"))?;
        Ok(())
    }

    /// The latest block's timestamp.
    pub async fn now(&self) -> Result<u64, DevnetError> {
        let b = self
            .reader
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(chain_err("eth_getBlockByNumber"))?
            .ok_or_else(|| DevnetError::Chain("no latest block".into()))?;
        Ok(b.header.timestamp)
    }

    /// Deploys and wires the contracts from `owner`.
    pub async fn deploy(
        &self,
        owner: &PrivateKeySigner,
        cfg: &DeployConfig,
    ) -> Result<Deployment, DevnetError> {
        let p = ProviderBuilder::new()
            .wallet(EthereumWallet::from(owner.clone()))
            .connect_http(self.url.parse().expect("checked in start"));
        deploy(p, cfg)
            .await
            .map_err(|e| DevnetError::Chain(format!("deploy: {e}")))
    }
}

/// Maps a transport error of `what` to a chain error.
pub fn chain_err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> DevnetError {
    move |e| DevnetError::Chain(format!("{what}: {e}"))
}

/// Sends a contract call and waits for a successful receipt; returns its gas.
#[macro_export]
macro_rules! send {
    ($what:expr, $call:expr) => {{
        let r = $call
            .send()
            .await
            .map_err($crate::chain::chain_err($what))?
            .get_receipt()
            .await
            .map_err($crate::chain::chain_err($what))?;
        if !r.status() {
            return Err($crate::DevnetError::Chain(format!("{} reverted", $what)));
        }
        r.gas_used
    }};
}

/// The deployment as the CLI reads it (`--deployment FILE`): camelCase addresses.
pub fn deployment_json(d: &Deployment, l1: &str, chain_id: u64) -> serde_json::Value {
    serde_json::json!({
        "l1": l1,
        "chainId": chain_id,
        "skuRegistry": d.sku_registry,
        "stakeBridge": d.stake_bridge,
        "batchInbox": d.batch_inbox,
        "rewards": d.rewards,
        "token": d.token,
        "oneStepVerifier": d.one_step_verifier,
        "stepProver": d.step_prover,
        "foldProver": d.fold_prover,
        "disputeGame": d.dispute_game,
        "audits": d.audits,
    })
}
