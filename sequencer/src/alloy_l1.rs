//! The real [`L1`]: the `l1-bridge` contracts through alloy (HTTP provider, local signer).
//!
//! Posting discipline:
//! - the nonce is read from the node's *pending* count before every send (the sequencer is the
//!   only sender of its key and sends one transaction at a time, so this survives restarts and
//!   dropped transactions without a local nonce cache that could drift);
//! - the gas limit is the node's estimate plus `gas_headroom_percent`;
//! - transport errors and "nonce too low / replacement underpriced" are retried up to
//!   `max_retries` times with a growing pause; a revert is not retried unchanged.

use std::time::Duration;

use alloy::network::{EthereumWallet, ReceiptResponse};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::BlockNumberOrTag;
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, Bytes, B256, U256};
use verinfer_l1::bindings::{BatchInbox, SkuRegistry, StakeBridge};
use verinfer_primitives::Receipt;

use crate::config::L1Config;
use crate::l1::{BatchPost, Inclusion, L1BatchStatus, L1Error, OnChainBatch, L1};

/// How long to wait for a sent transaction's receipt.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// [`L1`] over alloy.
pub struct AlloyL1 {
    provider: DynProvider,
    sender: Address,
    inbox: BatchInbox::BatchInboxInstance<DynProvider>,
    bridge: StakeBridge::StakeBridgeInstance<DynProvider>,
    registry: SkuRegistry::SkuRegistryInstance<DynProvider>,
    headroom: u64,
    retries: u32,
}

fn node(e: impl std::fmt::Display) -> L1Error {
    L1Error::Node(e.to_string())
}

/// Sorts a contract error: a revert (with its decoded name when it is one of the inbox's
/// errors) or a node/transport failure.
fn contract_err(e: alloy::contract::Error) -> L1Error {
    if let Some(decoded) = e.as_decoded_interface_error::<BatchInbox::BatchInboxErrors>() {
        return L1Error::Reverted(format!("{decoded:?}"));
    }
    if e.as_revert_data().is_some() {
        return L1Error::Reverted(e.to_string());
    }
    let s = e.to_string();
    if s.contains("revert") {
        L1Error::Reverted(s)
    } else {
        L1Error::Node(s)
    }
}

impl AlloyL1 {
    /// Connects to `cfg.rpc_url` with the poster key `key` (hex).
    pub fn connect(cfg: &L1Config, key: &str) -> Result<Self, L1Error> {
        let signer: PrivateKeySigner = key.trim().parse().map_err(|e| {
            L1Error::Unexpected(format!(
                "poster key in ${} is not a hex private key: {e}",
                cfg.key_env
            ))
        })?;
        let sender = signer.address();
        let url = cfg
            .rpc_url
            .parse()
            .map_err(|e| L1Error::Unexpected(format!("l1.rpc_url {:?}: {e}", cfg.rpc_url)))?;
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer))
            .connect_http(url)
            .erased();
        Ok(Self {
            inbox: BatchInbox::new(cfg.batch_inbox, provider.clone()),
            bridge: StakeBridge::new(cfg.stake_bridge, provider.clone()),
            registry: SkuRegistry::new(cfg.sku_registry, provider.clone()),
            provider,
            sender,
            headroom: cfg.gas_headroom_percent,
            retries: cfg.max_retries.max(1),
        })
    }

    /// The poster's address.
    pub fn sender(&self) -> Address {
        self.sender
    }

    async fn wait(
        &self,
        pending: alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
    ) -> Result<Inclusion, L1Error> {
        let receipt = tokio::time::timeout(RECEIPT_TIMEOUT, pending.get_receipt())
            .await
            .map_err(|_| L1Error::Node("timed out waiting for the transaction receipt".into()))?
            .map_err(node)?;
        let inc = Inclusion {
            tx_hash: receipt.transaction_hash(),
            block_number: receipt.block_number().unwrap_or_default(),
            block_hash: receipt.block_hash().unwrap_or_default(),
            gas_used: receipt.gas_used(),
        };
        if !receipt.status() {
            return Err(L1Error::Reverted(format!(
                "transaction {} reverted",
                inc.tx_hash
            )));
        }
        Ok(inc)
    }

    async fn pause(attempt: u32) {
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
    }

    fn with_headroom(&self, estimate: u64) -> u64 {
        // Never above EIP-7825's per-transaction cap: a limit above it is refused by the node.
        (estimate.saturating_mul(100 + self.headroom) / 100).min(crate::gas::EIP7825_TX_GAS_CAP)
    }

    /// The inbox's ABI form of a batch's jobs, receipts and receipt signatures.
    fn post_args(
        batch: &BatchPost,
    ) -> (
        Vec<BatchInbox::SignedJob>,
        Vec<BatchInbox::Receipt>,
        Vec<Bytes>,
    ) {
        let jobs = batch
            .jobs
            .iter()
            .map(|j| BatchInbox::SignedJob {
                request: BatchInbox::JobRequest {
                    buyer: j.request.buyer,
                    skuId: j.request.skuId,
                    inputsHash: j.request.inputsHash,
                    maxNewTokens: j.request.maxNewTokens,
                    maxPrice: j.request.maxPrice,
                    nonce: j.request.nonce,
                },
                signature: j.signature.clone(),
                inputs: j.inputs.clone(),
            })
            .collect();
        let receipts = batch
            .receipts
            .iter()
            .map(|r| r.receipt.clone().into())
            .collect();
        let sigs = batch.receipts.iter().map(|r| r.signature.clone()).collect();
        (jobs, receipts, sigs)
    }

    /// `postBatch` as an `eth_call` from the poster.
    async fn simulate(&self, batch: &BatchPost) -> Result<(), L1Error> {
        let (jobs, receipts, sigs) = Self::post_args(batch);
        self.inbox
            .postBatch(jobs, receipts, sigs)
            .from(self.sender)
            .call()
            .await
            .map(|_| ())
            .map_err(contract_err)
    }
}

macro_rules! send_with_retries {
    ($self:ident, $what:expr, $build:expr) => {{
        let mut last = L1Error::Node(format!("{}: not attempted", $what));
        let mut result = None;
        for attempt in 0..$self.retries {
            let nonce = match $self.provider.get_transaction_count($self.sender).pending().await {
                Ok(n) => n,
                Err(e) => {
                    last = node(e);
                    AlloyL1::pause(attempt).await;
                    continue;
                }
            };
            let call = $build;
            let gas = match call.estimate_gas().await {
                Ok(g) => $self.with_headroom(g),
                Err(e) => {
                    last = contract_err(e);
                    if !last.is_transient() {
                        break;
                    }
                    AlloyL1::pause(attempt).await;
                    continue;
                }
            };
            match call.gas(gas).nonce(nonce).send().await {
                Ok(pending) => match $self.wait(pending).await {
                    Ok(inc) => {
                        result = Some(inc);
                        break;
                    }
                    Err(e) => {
                        last = e;
                        if !last.is_transient() {
                            break;
                        }
                    }
                },
                Err(e) => {
                    last = contract_err(e);
                    let s = last.to_string();
                    // A nonce race or an underpriced replacement is worth another round with a
                    // fresh nonce; a revert is not.
                    if !(last.is_transient() || s.contains("nonce") || s.contains("underpriced")) {
                        break;
                    }
                }
            }
            tracing::warn!(what = $what, attempt, error = %last, "L1 send failed; retrying");
            AlloyL1::pause(attempt).await;
        }
        match result {
            Some(inc) => Ok(inc),
            None => Err(last),
        }
    }};
}

#[async_trait::async_trait]
impl L1 for AlloyL1 {
    async fn chain_id(&self) -> Result<u64, L1Error> {
        self.provider.get_chain_id().await.map_err(node)
    }

    async fn stake_of(&self, worker: Address) -> Result<U256, L1Error> {
        let a = self
            .bridge
            .account(worker)
            .call()
            .await
            .map_err(contract_err)?;
        Ok(U256::from(a.stake))
    }

    async fn serves(&self, worker: Address, sku: B256) -> Result<bool, L1Error> {
        self.bridge
            .isWorkerFor(worker, sku)
            .call()
            .await
            .map_err(contract_err)
    }

    async fn sku_price(&self, sku: B256) -> Result<Option<U256>, L1Error> {
        if !self
            .registry
            .isActive(sku)
            .call()
            .await
            .map_err(contract_err)?
        {
            return Ok(None);
        }
        let p = self
            .registry
            .priceOf(sku)
            .call()
            .await
            .map_err(contract_err)?;
        Ok(Some(U256::from(p)))
    }

    async fn escrow_balance(&self, buyer: Address) -> Result<U256, L1Error> {
        let e = self
            .bridge
            .escrow(buyer)
            .call()
            .await
            .map_err(contract_err)?;
        Ok(U256::from(e.balance))
    }

    async fn post_batch(&self, batch: &BatchPost) -> Result<Inclusion, L1Error> {
        // The inbox numbers batches itself; only post when the next number is ours, so the
        // sequencer's index and the chain's never diverge.
        let count = self.inbox.batchCount().call().await.map_err(contract_err)?;
        if count != U256::from(batch.index) {
            return Err(L1Error::Unexpected(format!(
                "inbox holds {count} batches; batch {} cannot be posted now",
                batch.index
            )));
        }
        let jobs: Vec<BatchInbox::SignedJob> = batch
            .jobs
            .iter()
            .map(|j| BatchInbox::SignedJob {
                request: BatchInbox::JobRequest {
                    buyer: j.request.buyer,
                    skuId: j.request.skuId,
                    inputsHash: j.request.inputsHash,
                    maxNewTokens: j.request.maxNewTokens,
                    maxPrice: j.request.maxPrice,
                    nonce: j.request.nonce,
                },
                signature: j.signature.clone(),
                inputs: j.inputs.clone(),
            })
            .collect();
        let receipts: Vec<BatchInbox::Receipt> = batch
            .receipts
            .iter()
            .map(|r| r.receipt.clone().into())
            .collect();
        let sigs: Vec<Bytes> = batch.receipts.iter().map(|r| r.signature.clone()).collect();
        send_with_retries!(
            self,
            "postBatch",
            self.inbox
                .postBatch(jobs.clone(), receipts.clone(), sigs.clone())
        )
    }

    async fn simulate_post(&self, batch: &BatchPost) -> Result<(), L1Error> {
        self.simulate(batch).await
    }

    async fn find_batch(&self, index: u64) -> Result<Option<OnChainBatch>, L1Error> {
        let count = self.inbox.batchCount().call().await.map_err(contract_err)?;
        if U256::from(index) >= count {
            return Ok(None);
        }
        let b = self
            .inbox
            .getBatch(U256::from(index))
            .call()
            .await
            .map_err(contract_err)?;
        let logs = self
            .inbox
            .BatchPosted_filter()
            .topic1(U256::from(index))
            .from_block(b.postBlock)
            .to_block(b.postBlock)
            .query()
            .await
            .map_err(contract_err)?;
        let (_, log) = logs.into_iter().next().ok_or_else(|| {
            L1Error::Unexpected(format!(
                "batch {index} has no BatchPosted log in block {}",
                b.postBlock
            ))
        })?;
        Ok(Some(OnChainBatch {
            receipts_root: b.receiptsRoot,
            inclusion: Inclusion {
                tx_hash: log.transaction_hash.unwrap_or_default(),
                block_number: b.postBlock,
                block_hash: log.block_hash.unwrap_or_default(),
                gas_used: 0,
            },
        }))
    }

    async fn batch_status(&self, index: u64) -> Result<L1BatchStatus, L1Error> {
        let b = self
            .inbox
            .getBatch(U256::from(index))
            .call()
            .await
            .map_err(contract_err)?;
        if b.finalized {
            return Ok(L1BatchStatus::Finalized);
        }
        if b.openDisputes > 0 {
            return Ok(L1BatchStatus::Disputed);
        }
        let deadline = self
            .inbox
            .challengeDeadline(U256::from(index))
            .call()
            .await
            .map_err(contract_err)?;
        let latest = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(node)?
            .ok_or_else(|| L1Error::Unexpected("no latest block".into()))?;
        Ok(L1BatchStatus::Open {
            window_over: U256::from(latest.header.timestamp) >= deadline,
        })
    }

    async fn finalize_batch(&self, index: u64, receipts: &[Receipt]) -> Result<Inclusion, L1Error> {
        let rs: Vec<BatchInbox::Receipt> = receipts.iter().map(|r| r.clone().into()).collect();
        send_with_retries!(
            self,
            "finalizeBatch",
            self.inbox.finalizeBatch(U256::from(index), rs.clone())
        )
    }

    async fn head(&self) -> Result<u64, L1Error> {
        self.provider.get_block_number().await.map_err(node)
    }

    async fn block_hash(&self, number: u64) -> Result<Option<B256>, L1Error> {
        let b = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(node)?;
        Ok(b.map(|b| b.header.hash))
    }
}
