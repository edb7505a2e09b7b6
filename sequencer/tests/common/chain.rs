//! A real L1 for tests: anvil spawned on a free loopback port, the `l1-bridge` contracts
//! deployed on it, a SKU registered, a worker staked, a buyer's escrow funded.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{keccak256, Address, B256, U256};
use verinfer_l1::bindings::{SkuRegistry, StakeBridge};
use verinfer_l1::{deploy, DeployConfig, Deployment};

/// Price per token registered for the test SKU (wei).
pub const PRICE: u128 = 1_000;

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An anvil child process, killed on drop.
pub struct AnvilProc {
    child: Child,
    pub url: String,
}

impl Drop for AnvilProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts anvil (from PATH, as `source ops/env.sh` sets it up) and waits until it answers.
pub async fn spawn_anvil() -> AnvilProc {
    let port = free_port();
    let child: Child = Command::new("anvil")
        .args([
            "--port",
            &port.to_string(),
            "--host",
            "127.0.0.1",
            "--silent",
            // Interval mining: the assignment seed of a job is the hash of the first block
            // after its acceptance, so blocks must come without transactions too.
            "--block-time",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("anvil not found on PATH: run `bash ops/setup.sh` and `source ops/env.sh`");
    let url = format!("http://127.0.0.1:{port}");
    let p = ProviderBuilder::new().connect_http(url.parse().unwrap());
    // From here the child is owned by the guard, which kills and reaps it on every path.
    let guard = AnvilProc { child, url };
    for _ in 0..200 {
        if p.get_block_number().await.is_ok() {
            return guard;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("anvil did not start on port {port}");
}

/// A provider signing with `key`.
pub fn connect(url: &str, key: &PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(url.parse().unwrap())
        .erased()
}

/// Gives `who` 1000 ether through anvil's cheat RPC.
pub async fn fund(p: &DynProvider, who: Address) {
    let amount = U256::from(1000u64) * U256::from(10u64).pow(U256::from(18u64));
    let _: serde_json::Value = p
        .raw_request("anvil_setBalance".into(), (who, amount))
        .await
        .unwrap();
}

/// Everything a test needs on L1.
pub struct Chain {
    pub anvil: AnvilProc,
    pub owner: PrivateKeySigner,
    pub poster: PrivateKeySigner,
    pub buyer: PrivateKeySigner,
    pub worker: PrivateKeySigner,
    pub d: Deployment,
    pub sku: B256,
    pub chain_id: u64,
    pub owner_p: DynProvider,
}

/// Escrow funded for the buyer (wei).
pub const ESCROW: u64 = 1_000_000_000_000_000_000;

/// Anvil + contracts + SKU + staked worker + funded buyer, with a `challenge_window` (s).
pub async fn setup(challenge_window: u64) -> Chain {
    let anvil = spawn_anvil().await;
    let (owner, poster, buyer, worker) = (
        PrivateKeySigner::random(),
        PrivateKeySigner::random(),
        PrivateKeySigner::random(),
        PrivateKeySigner::random(),
    );
    let owner_p = connect(&anvil.url, &owner);
    for a in [&owner, &poster, &buyer, &worker] {
        fund(&owner_p, a.address()).await;
    }
    let chain_id = owner_p.get_chain_id().await.unwrap();
    let cfg = DeployConfig {
        sequencer: poster.address(),
        challenge_window,
        ..DeployConfig::default()
    };
    let deployer = ProviderBuilder::new()
        .wallet(EthereumWallet::from(owner.clone()))
        .connect_http(anvil.url.parse().unwrap());
    let d = deploy(deployer, &cfg).await.unwrap();
    let sku = keccak256(b"sequencer-test-sku");
    let reg = SkuRegistry::new(d.sku_registry, owner_p.clone());
    let s = SkuRegistry::Sku {
        weightRoot: keccak256(b"w"),
        tokenizerHash: keccak256(b"t"),
        configHash: keccak256(b"c"),
        pricePerToken: PRICE,
        epsQ32: 42950,
        softmaxC: 1 << 37,
        vocab: 1000,
        layers: 1,
        arithVersion: verinfer_primitives::arith::SPEC_VERSION as u16,
        hasBias: false,
        active: true,
    };
    assert!(reg
        .registerSku(sku, s)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap()
        .status());
    let wb = StakeBridge::new(d.stake_bridge, connect(&anvil.url, &worker));
    let two_eth = U256::from(2u64) * U256::from(10u64).pow(U256::from(18u64));
    assert!(wb
        .depositStake(1)
        .value(two_eth)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap()
        .status());
    assert!(wb
        .setSku(sku, true)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap()
        .status());
    let bb = StakeBridge::new(d.stake_bridge, connect(&anvil.url, &buyer));
    assert!(bb
        .depositEscrow()
        .value(U256::from(ESCROW))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap()
        .status());
    Chain {
        anvil,
        owner,
        poster,
        buyer,
        worker,
        d,
        sku,
        chain_id,
        owner_p,
    }
}

impl Chain {
    /// Sequencer config for this chain (listen address and data dir given).
    pub fn config(
        &self,
        listen: std::net::SocketAddr,
        dir: &std::path::Path,
        key_env: &str,
    ) -> verinfer_sequencer::Config {
        use verinfer_sequencer::config::*;
        Config {
            listen,
            data_dir: dir.to_owned(),
            l1: L1Config {
                rpc_url: self.anvil.url.clone(),
                batch_inbox: self.d.batch_inbox,
                stake_bridge: self.d.stake_bridge,
                sku_registry: self.d.sku_registry,
                key_env: key_env.into(),
                confirmations: 1,
                poll_interval_ms: 100,
                gas_headroom_percent: 25,
                max_retries: 3,
            },
            skus: vec![SkuConfig {
                id: self.sku,
                name: "anvil-sku".into(),
                max_context: 256,
            }],
            limits: Limits::default(),
            sharding: Sharding {
                max_prompts: 2,
                max_tokens: 10_000,
            },
            workers: WorkerPolicy {
                min_stake: U256::from(1u64),
                shard_timeout_ms: 1500,
                registration_max_age_s: 300,
                tick_ms: 20,
            },
            batching: Batching {
                max_jobs: 4,
                max_receipts: 512,
                interval_ms: 150,
                gas_budget: 12_000_000,
            },
        }
    }

    /// The buyer's escrow balance on L1.
    pub async fn escrow(&self) -> U256 {
        let b = StakeBridge::new(self.d.stake_bridge, self.owner_p.clone());
        U256::from(b.escrow(self.buyer.address()).call().await.unwrap().balance)
    }
}

impl Chain {
    /// Stakes `n` fresh workers (2 ether each) serving the test SKU; transactions are sent
    /// together and awaited at the end (interval mining makes one-by-one slow).
    pub async fn add_workers(&self, n: usize) -> Vec<PrivateKeySigner> {
        let keys: Vec<PrivateKeySigner> = (0..n).map(|_| PrivateKeySigner::random()).collect();
        for k in &keys {
            fund(&self.owner_p, k.address()).await;
        }
        let two_eth = U256::from(2u64) * U256::from(10u64).pow(U256::from(18u64));
        let mut pending = Vec::new();
        for k in &keys {
            let p = connect(&self.anvil.url, k);
            let b = StakeBridge::new(self.d.stake_bridge, p);
            pending.push(
                b.depositStake(1)
                    .value(two_eth)
                    .nonce(0)
                    .send()
                    .await
                    .unwrap(),
            );
            pending.push(
                b.setSku(self.sku, true)
                    .nonce(1)
                    .gas(200_000)
                    .send()
                    .await
                    .unwrap(),
            );
        }
        for p in pending {
            assert!(p.get_receipt().await.unwrap().status());
        }
        keys
    }

    /// `n` fresh buyers with `escrow` wei each in the StakeBridge.
    pub async fn add_buyers(&self, n: usize, escrow: U256) -> Vec<PrivateKeySigner> {
        let keys: Vec<PrivateKeySigner> = (0..n).map(|_| PrivateKeySigner::random()).collect();
        for k in &keys {
            fund(&self.owner_p, k.address()).await;
        }
        let mut pending = Vec::new();
        for k in &keys {
            let b = StakeBridge::new(self.d.stake_bridge, connect(&self.anvil.url, k));
            pending.push(b.depositEscrow().value(escrow).send().await.unwrap());
        }
        for p in pending {
            assert!(p.get_receipt().await.unwrap().status());
        }
        keys
    }

    /// A buyer's escrow balance on L1.
    pub async fn escrow_of(&self, who: Address) -> U256 {
        let b = StakeBridge::new(self.d.stake_bridge, self.owner_p.clone());
        U256::from(b.escrow(who).call().await.unwrap().balance)
    }
}
