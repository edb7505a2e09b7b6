//! Following the L1 batch inbox: `BatchPosted` logs up to `head − confirmations`, each batch's
//! jobs and receipts decoded from its `postBatch` calldata, reorgs noticed by re-reading the
//! hash of the newest scanned block.
//!
//! Reorgs: a block's hash commits to its parent's, so if the last scanned block still has the
//! hash recorded at scan time, nothing below it changed. If it changed, the follower walks down
//! the recorded tips to the newest one that still matches, drops every batch above it and scans
//! again from there: a batch that moved to another block is found again (its unchanged receipts
//! keep their audits), one that left the chain stays dropped.

use alloy::consensus::Transaction as _;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{BlockNumberOrTag, Filter};
use alloy::sol_types::{SolCall, SolEvent};
use alloy_primitives::{Address, B256};
use alloy_sol_types::SolValue;
use verinfer_l1::bindings::BatchInbox;
use verinfer_primitives::job::{decode_inputs, JobRequest};
use verinfer_primitives::merkle::{hash_leaf, MerkleTree};
use verinfer_primitives::Receipt;

use super::store::{BatchRecord, BatchState, JobEntry, ReceiptEntry, Store, StoreError};

/// Blocks per `eth_getLogs` query.
const SCAN_SPAN: u64 = 2000;

/// Failures of following L1.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("L1 node: {0}")]
    Node(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the chain moved while scanning; retrying")]
    Moved,
}

fn node(e: impl std::fmt::Display) -> ChainError {
    ChainError::Node(e.to_string())
}

/// Reads the inbox through an alloy provider.
#[derive(Clone)]
pub struct L1Reader {
    pub provider: DynProvider,
    pub inbox: Address,
    pub chain_id: u64,
}

/// What one follow step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowReport {
    /// Batches recorded (new or seen again).
    pub found: Vec<u64>,
    /// Batches dropped by a reorg.
    pub dropped: Vec<u64>,
    /// The next block to scan.
    pub cursor: u64,
}

impl L1Reader {
    /// Connects over HTTP and reads the chain id.
    pub async fn connect(url: &str, inbox: Address) -> Result<Self, ChainError> {
        let provider = ProviderBuilder::new()
            .connect_http(url.parse().map_err(node)?)
            .erased();
        let chain_id = provider.get_chain_id().await.map_err(node)?;
        Ok(L1Reader {
            provider,
            inbox,
            chain_id,
        })
    }

    pub async fn head(&self) -> Result<u64, ChainError> {
        self.provider.get_block_number().await.map_err(node)
    }

    pub async fn block_hash(&self, n: u64) -> Result<Option<B256>, ChainError> {
        let b = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await
            .map_err(node)?;
        Ok(b.map(|b| b.header.hash))
    }

    /// Batches posted in blocks `from..=to`, decoded.
    pub async fn scan(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<(BatchRecord, Vec<JobEntry>)>, ChainError> {
        let filter = Filter::new()
            .address(self.inbox)
            .event_signature(BatchInbox::BatchPosted::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to);
        let logs = self.provider.get_logs(&filter).await.map_err(node)?;
        let mut out = Vec::new();
        for log in logs {
            let (Some(n), Some(bh), Some(txh)) =
                (log.block_number, log.block_hash, log.transaction_hash)
            else {
                continue; // a pending log: not part of a block yet
            };
            let Ok(ev) = BatchInbox::BatchPosted::decode_log_data(&log.inner.data) else {
                tracing::warn!(block = n, "undecodable BatchPosted log");
                continue;
            };
            // The block must still be canonical (a reorg between the query and now).
            if self.block_hash(n).await? != Some(bh) {
                return Err(ChainError::Moved);
            }
            let batch_id: u64 = ev.batchId.try_into().unwrap_or(u64::MAX);
            let (receipts, jobs) = self.decode_tx(txh, ev.receiptsRoot).await?;
            out.push((
                BatchRecord {
                    batch_id,
                    block_number: n,
                    block_hash: bh,
                    tx_hash: txh,
                    receipts_root: ev.receiptsRoot,
                    state: BatchState::Live,
                    receipts,
                },
                jobs,
            ));
        }
        Ok(out)
    }

    /// The receipts and new jobs of a `postBatch` transaction. A transaction that is not a
    /// direct `postBatch` call, or whose receipts do not rebuild the logged root, yields none
    /// (recorded, never audited: see docs/WATCHER.md).
    async fn decode_tx(
        &self,
        tx: B256,
        root: B256,
    ) -> Result<(Vec<ReceiptEntry>, Vec<JobEntry>), ChainError> {
        let Some(t) = self
            .provider
            .get_transaction_by_hash(tx)
            .await
            .map_err(node)?
        else {
            return Err(ChainError::Moved);
        };
        match decode_post_batch(t.input(), self.chain_id, self.inbox) {
            Some((receipts, jobs)) if receipts_root(&receipts) == root => Ok((
                receipts
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| ReceiptEntry {
                        index: i as u64,
                        hash: r.hash(),
                        receipt: r,
                    })
                    .collect(),
                jobs,
            )),
            _ => {
                tracing::warn!(%tx, "batch calldata is not a postBatch with the logged root");
                Ok((Vec::new(), Vec::new()))
            }
        }
    }
}

/// The batch root the inbox computes over receipts.
pub fn receipts_root(receipts: &[Receipt]) -> B256 {
    MerkleTree::from_leaf_hashes(
        receipts
            .iter()
            .map(|r| hash_leaf(&r.abi_encode()))
            .collect(),
    )
    .root()
}

/// Decodes `postBatch(newJobs, receipts, sigs)` calldata into receipts and jobs (job ids are
/// the EIP-712 digests under this chain's inbox). Jobs whose inputs do not decode are left out
/// (their receipts cannot be audited and are recorded as skipped).
pub fn decode_post_batch(
    input: &[u8],
    chain_id: u64,
    inbox: Address,
) -> Option<(Vec<Receipt>, Vec<JobEntry>)> {
    let call = BatchInbox::postBatchCall::abi_decode(input).ok()?;
    let receipts: Vec<Receipt> = call
        .receipts
        .iter()
        .filter_map(|r| Receipt::abi_decode(&r.abi_encode()).ok())
        .collect();
    if receipts.len() != call.receipts.len() {
        return None;
    }
    let jobs = call
        .newJobs
        .iter()
        .filter_map(|sj| {
            let q = &sj.request;
            let req = JobRequest {
                buyer: q.buyer,
                skuId: q.skuId,
                inputsHash: q.inputsHash,
                maxNewTokens: q.maxNewTokens,
                maxPrice: q.maxPrice,
                nonce: q.nonce,
            };
            let prompts = decode_inputs(&sj.inputs).ok()?;
            Some(JobEntry {
                job_id: verinfer_l1::job_digest(&req, chain_id, inbox),
                sku_id: q.skuId,
                max_new_tokens: q.maxNewTokens,
                prompts,
            })
        })
        .collect();
    Some((receipts, jobs))
}

/// One follow step: notices a reorg of the scanned range (rewinding the store), then scans
/// up to `head − confirmations` and records what it found.
pub async fn follow_once(
    l1: &L1Reader,
    store: &Store,
    confirmations: u64,
    start_block: u64,
) -> Result<FollowReport, ChainError> {
    let mut report = FollowReport::default();
    let tips = store.tips()?;
    if let Some(&(n, h)) = tips.first() {
        if l1.block_hash(n).await? != Some(h) {
            // Walk down to the newest tip still on the chain; everything above is replaced.
            let mut from = start_block;
            for &(tn, th) in &tips[1..] {
                if l1.block_hash(tn).await? == Some(th) {
                    from = tn + 1;
                    break;
                }
            }
            report.dropped = store.rewind(from)?;
            tracing::warn!(from, dropped = ?report.dropped, "L1 reorg: rescanning");
        }
    }
    let head = l1.head().await?;
    let safe = head.saturating_sub(confirmations);
    let mut cursor = store.cursor()?.unwrap_or(start_block).max(start_block);
    while cursor <= safe {
        let to = safe.min(cursor + SCAN_SPAN - 1);
        let tip = l1.block_hash(to).await?.ok_or(ChainError::Moved)?;
        let found = l1.scan(cursor, to).await?;
        if l1.block_hash(to).await? != Some(tip) {
            return Err(ChainError::Moved);
        }
        report.found.extend(found.iter().map(|(b, _)| b.batch_id));
        store.apply_scan(&found, to + 1, tip)?;
        cursor = to + 1;
    }
    report.cursor = cursor;
    Ok(report)
}
