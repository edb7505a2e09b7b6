//! Shared test helpers.
#![allow(dead_code)]

pub mod chain;
pub mod worker;

use std::collections::HashMap;
use std::sync::Mutex;

use alloy_primitives::{Address, B256, U256};
use verinfer_primitives::Receipt;
use verinfer_sequencer::config::{Batching, L1Config, Limits, Sharding, SkuConfig, WorkerPolicy};
use verinfer_sequencer::l1::{BatchPost, Inclusion, L1BatchStatus, L1Error, OnChainBatch, L1};
use verinfer_sequencer::Config;

pub const SKU: B256 = B256::repeat_byte(0x5c);
pub const INBOX: Address = Address::repeat_byte(0x1b);

/// TEST DOUBLE of L1, for tests of intake, assignment and batching logic where L1 is not what
/// is under test: balances and stakes from maps, postings appended to a list with fake
/// inclusions. The real L1 path is tested against anvil in `tests/anvil.rs`.
#[derive(Default)]
pub struct TestDoubleL1 {
    pub balances: Mutex<HashMap<Address, U256>>,
    pub stakes: Mutex<HashMap<Address, U256>>,
    pub posted: Mutex<Vec<BatchPost>>,
    pub head: Mutex<u64>,
}

#[async_trait::async_trait]
impl L1 for TestDoubleL1 {
    async fn chain_id(&self) -> Result<u64, L1Error> {
        Ok(31337)
    }
    async fn stake_of(&self, worker: Address) -> Result<U256, L1Error> {
        Ok(self
            .stakes
            .lock()
            .unwrap()
            .get(&worker)
            .copied()
            .unwrap_or_default())
    }
    async fn serves(&self, worker: Address, sku: B256) -> Result<bool, L1Error> {
        Ok(sku == SKU && self.stakes.lock().unwrap().contains_key(&worker))
    }
    async fn sku_price(&self, sku: B256) -> Result<Option<U256>, L1Error> {
        Ok((sku == SKU).then(|| U256::from(10u64)))
    }
    async fn escrow_balance(&self, buyer: Address) -> Result<U256, L1Error> {
        Ok(self
            .balances
            .lock()
            .unwrap()
            .get(&buyer)
            .copied()
            .unwrap_or_default())
    }
    async fn post_batch(&self, batch: &BatchPost) -> Result<Inclusion, L1Error> {
        let mut p = self.posted.lock().unwrap();
        if p.len() as u64 != batch.index {
            return Err(L1Error::Reverted(format!(
                "expected batch {}, got {}",
                p.len(),
                batch.index
            )));
        }
        p.push(batch.clone());
        let mut h = self.head.lock().unwrap();
        *h += 1;
        Ok(Inclusion {
            tx_hash: B256::with_last_byte(batch.index as u8),
            block_number: *h,
            block_hash: B256::from(U256::from(*h)),
            gas_used: 50_000,
        })
    }
    async fn simulate_post(&self, _batch: &BatchPost) -> Result<(), L1Error> {
        Ok(())
    }
    async fn find_batch(&self, index: u64) -> Result<Option<OnChainBatch>, L1Error> {
        Ok(self
            .posted
            .lock()
            .unwrap()
            .get(index as usize)
            .map(|b| OnChainBatch {
                receipts_root: b.receipts_root,
                inclusion: Inclusion {
                    tx_hash: B256::with_last_byte(index as u8),
                    block_number: index + 1,
                    block_hash: B256::from(U256::from(index + 1)),
                    gas_used: 0,
                },
            }))
    }
    async fn batch_status(&self, _index: u64) -> Result<L1BatchStatus, L1Error> {
        Ok(L1BatchStatus::Open { window_over: false })
    }
    async fn finalize_batch(
        &self,
        _index: u64,
        _receipts: &[Receipt],
    ) -> Result<Inclusion, L1Error> {
        Err(L1Error::Reverted("window open".into()))
    }
    async fn head(&self) -> Result<u64, L1Error> {
        Ok(*self.head.lock().unwrap())
    }
    async fn block_hash(&self, number: u64) -> Result<Option<B256>, L1Error> {
        Ok(Some(B256::from(U256::from(number))))
    }
}

pub fn config(dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_owned(),
        l1: L1Config {
            rpc_url: "http://127.0.0.1:1".into(),
            batch_inbox: INBOX,
            stake_bridge: Address::repeat_byte(0x2b),
            sku_registry: Address::repeat_byte(0x3b),
            key_env: "UNUSED".into(),
            confirmations: 1,
            poll_interval_ms: 50,
            gas_headroom_percent: 25,
            max_retries: 3,
        },
        skus: vec![SkuConfig {
            id: SKU,
            name: "test-sku".into(),
            max_context: 64,
        }],
        limits: Limits {
            max_prompts_per_job: 16,
            max_request_bytes: 64 * 1024,
            ..Limits::default()
        },
        sharding: Sharding {
            max_prompts: 2,
            max_tokens: 1000,
        },
        workers: WorkerPolicy {
            min_stake: U256::from(100u64),
            shard_timeout_ms: 1500,
            registration_max_age_s: 300,
            tick_ms: 20,
        },
        batching: Batching {
            max_jobs: 8,
            max_receipts: 512,
            interval_ms: 100,
            gas_budget: 12_000_000,
        },
    }
}
