//! What the sequencer needs from L1, as a trait: the real implementation talks to the
//! contracts of `l1-bridge/` through alloy.

use alloy_primitives::{Address, Bytes, B256, U256};
use verinfer_primitives::job::JobRequest;
use verinfer_primitives::Receipt;

/// Failures talking to L1.
#[derive(Debug, Clone, thiserror::Error)]
pub enum L1Error {
    /// Transport or node error (worth retrying).
    #[error("L1 node: {0}")]
    Node(String),
    /// The contract reverted (not worth retrying unchanged).
    #[error("L1 contract reverted: {0}")]
    Reverted(String),
    /// The node answered something the sequencer cannot use.
    #[error("unexpected L1 answer: {0}")]
    Unexpected(String),
}

impl L1Error {
    /// True when retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, L1Error::Node(_))
    }
}

/// A job first posted with a batch: request, buyer signature and inputs (calldata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedJob {
    /// The signed request.
    pub request: JobRequest,
    /// The buyer's 65-byte signature.
    pub signature: Bytes,
    /// `encode_inputs(prompts)`; its keccak is `request.inputsHash`.
    pub inputs: Bytes,
}

/// A receipt with its worker's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// The worker's 65-byte EIP-712 signature.
    pub signature: Bytes,
}

/// What goes to the batch inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPost {
    /// The index this batch must get on L1 (the inbox numbers batches densely). A batch whose
    /// jobs are already on L1 reverts (`JobAlreadyPosted`), so re-sending cannot charge twice.
    pub index: u64,
    /// Merkle root over `hash_leaf(abi.encode(receipt))`, as the inbox computes it.
    pub receipts_root: B256,
    /// Jobs of this batch (each is posted with its first and only batch).
    pub jobs: Vec<PostedJob>,
    /// Receipts, in leaf order.
    pub receipts: Vec<PostedReceipt>,
}

/// Where a transaction landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inclusion {
    /// Transaction hash.
    pub tx_hash: B256,
    /// Block number.
    pub block_number: u64,
    /// Block hash (re-checked to detect reorgs).
    pub block_hash: B256,
    /// Gas used (0 when unknown, e.g. found by event lookup).
    pub gas_used: u64,
}

/// A batch as L1 records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnChainBatch {
    /// Its receipts root.
    pub receipts_root: B256,
    /// The posting transaction's inclusion.
    pub inclusion: Inclusion,
}

/// Settlement state of a posted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L1BatchStatus {
    /// Inside its challenge window (or past it, waiting for `finalizeBatch`), no dispute open.
    Open {
        /// True when the window is over and the batch can be finalized.
        window_over: bool,
    },
    /// A dispute is open.
    Disputed,
    /// Finalized.
    Finalized,
}

/// The L1 operations of the sequencer.
#[async_trait::async_trait]
pub trait L1: Send + Sync + 'static {
    /// Chain id of the node.
    async fn chain_id(&self) -> Result<u64, L1Error>;
    /// A worker's stake.
    async fn stake_of(&self, worker: Address) -> Result<U256, L1Error>;
    /// Whether `worker` is a staked worker that declared it serves `sku`.
    async fn serves(&self, worker: Address, sku: B256) -> Result<bool, L1Error>;
    /// The SKU's price per token if it is registered and active.
    async fn sku_price(&self, sku: B256) -> Result<Option<U256>, L1Error>;
    /// A buyer's escrow balance.
    async fn escrow_balance(&self, buyer: Address) -> Result<U256, L1Error>;
    /// Sends a batch (gas estimated with headroom, nonce managed, retried on transient
    /// errors) and waits for its receipt.
    async fn post_batch(&self, batch: &BatchPost) -> Result<Inclusion, L1Error>;
    /// Runs `postBatch` for `batch` as a call (no transaction) against the latest state: `Ok`
    /// when it would succeed, `Err(Reverted)` with the reason when it would revert. Used to
    /// find the item that makes a posting revert.
    async fn simulate_post(&self, batch: &BatchPost) -> Result<(), L1Error>;
    /// The batch with this index as the chain currently holds it.
    async fn find_batch(&self, index: u64) -> Result<Option<OnChainBatch>, L1Error>;
    /// Settlement state of a posted batch.
    async fn batch_status(&self, index: u64) -> Result<L1BatchStatus, L1Error>;
    /// Finalizes a batch whose window is over (anyone may; the sequencer does it for its own
    /// batches). `receipts` are all of its receipts in posting order.
    async fn finalize_batch(&self, index: u64, receipts: &[Receipt]) -> Result<Inclusion, L1Error>;
    /// Latest block number.
    async fn head(&self) -> Result<u64, L1Error>;
    /// Hash of block `number` on the current chain.
    async fn block_hash(&self, number: u64) -> Result<Option<B256>, L1Error>;
}
