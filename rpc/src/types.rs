//! Request and response bodies of the API. JSON field names are camelCase; numbers that can
//! exceed 2^53 (prices, balances) are `U256` and travel as `0x` hex strings.

use alloy_primitives::{Address, Bytes, B256, U256};
use serde::{Deserialize, Serialize};
use verinfer_primitives::job::{JobRequest, Prompt};
use verinfer_primitives::{MerkleProof, Receipt};

/// A SKU this sequencer accepts jobs for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkuInfo {
    /// SKU id (the registry's identity of model + quantization + arithmetic).
    pub id: B256,
    /// Human name, e.g. `llama3-8b-int8`.
    pub name: String,
    /// Most tokens one prompt may use, prompt plus generated.
    pub max_context: u32,
    /// Price of one token (prompt or generated), wei.
    pub price_per_token: U256,
}

/// What a client needs to sign for this deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainInfo {
    /// L1 chain id in the EIP-712 domain.
    pub chain_id: u64,
    /// Batch inbox contract, the EIP-712 `verifyingContract`.
    pub batch_inbox: Address,
    /// Most prompts one job may carry.
    pub max_prompts_per_job: u32,
}

/// `verinfer_submitJob` params: the signed job and its prompts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitJobRequest {
    /// The EIP-712 struct the buyer signed.
    pub job: JobRequest,
    /// The prompts; `keccak256(encode_inputs(prompts))` must equal `job.inputsHash`.
    pub prompts: Vec<Prompt>,
    /// 65-byte `r ‖ s ‖ v` signature over the job's EIP-712 digest.
    pub signature: Bytes,
}

/// `verinfer_submitJob` result. Returned only after the job is durably stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitJobResponse {
    /// The job's id: its EIP-712 digest (as on L1).
    pub job_id: B256,
    /// Number of shards the job was cut into.
    pub shards: u32,
    /// Amount reserved against the buyer's escrow until the job is charged (its `maxPrice`).
    pub reserved: U256,
}

/// Life cycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobState {
    /// Stored, shards waiting for or running on workers.
    Accepted,
    /// Every shard has a verified receipt; waiting for a batch.
    Completed,
    /// In a batch that was sent to (or is being sent to) L1.
    Batched,
    /// The batch is on L1 with the configured number of confirmations.
    Confirmed,
    /// The batch's challenge window closed without a successful dispute.
    Finalized,
    /// A dispute was opened against one of the job's receipts.
    Disputed,
    /// The job can no longer be posted to L1 and never will be; `JobInfo.dropReason` says
    /// why. Its reservation is released; the buyer is not charged.
    Dropped,
    /// The buyer cancelled it before it was batched; its reservation is released.
    Cancelled,
}

/// Why a job was dropped (typed, shown in `JobInfo.dropReason`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum DropReason {
    /// The buyer's L1 escrow no longer covers the job's charge (e.g. a withdrawal after
    /// acceptance).
    #[serde(rename_all = "camelCase")]
    EscrowTooLow {
        /// Escrow left for this job after the older jobs of the same batch.
        balance: U256,
        /// The job's charge.
        needed: U256,
    },
    /// The SKU is no longer active in the L1 SKU registry.
    SkuInactive,
    /// At the SKU's current L1 price the charge exceeds the job's signed `maxPrice`.
    #[serde(rename_all = "camelCase")]
    PriceAboveMax {
        /// The L1 price per token now.
        price_per_token: U256,
        /// What the job would cost at that price.
        charge: U256,
        /// The buyer's cap.
        max_price: U256,
    },
    /// The job alone does not fit the gas budget of one posting transaction.
    #[serde(rename_all = "camelCase")]
    TooLargeForL1 {
        /// Estimated gas of posting it.
        gas: u64,
        /// The batch gas budget.
        budget: u64,
    },
    /// Simulating the posting identified this job as the one that makes `postBatch` revert.
    #[serde(rename_all = "camelCase")]
    RejectedByL1 {
        /// The revert as the node reported it.
        error: String,
    },
}

/// Why a finished shard was taken back and run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RequeueReason {
    /// Its worker is no longer bonded / serving the SKU on L1, so its receipt cannot post.
    WorkerNotServing,
}

/// Something that happened to a job besides its state moves (typed, in `JobInfo.events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum JobEvent {
    /// A shard's receipt was discarded and the shard given to another worker.
    #[serde(rename_all = "camelCase")]
    ShardRequeued {
        /// The shard.
        shard_index: u32,
        /// The worker whose receipt was discarded.
        worker: Address,
        /// Why.
        reason: RequeueReason,
    },
    /// The SKU's L1 price changed after acceptance; the job is charged the new price (still
    /// within its `maxPrice`), as the inbox fixes the price when the job is first posted.
    #[serde(rename_all = "camelCase")]
    Repriced {
        /// Price at acceptance.
        old: U256,
        /// Price it is posted at.
        new: U256,
    },
    /// The job's batch was taken apart after `postBatch` reverted because of another job; the
    /// job went back to the queue.
    #[serde(rename_all = "camelCase")]
    BatchDissolved {
        /// The batch index that was not used.
        batch: u64,
    },
}

/// The L1 block whose hash seeds a job's shard assignment draw (see docs/SEQUENCER.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentSeed {
    /// Block number: the first block after the L1 head read when the job was accepted.
    pub block: u64,
    /// Its hash.
    pub hash: B256,
}

/// How settled what `verinfer_getResults` returns is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Finality {
    /// Only the sequencer has it: not on L1, may still be re-run or dropped. Do not rely on it.
    Provisional,
    /// Every receipt is in a batch included on L1, but the challenge window is open (or a
    /// dispute is): a receipt may still be proven fraudulent.
    OnL1,
    /// The batch is finalized on L1.
    Final,
    /// The job was dropped or cancelled: nothing will reach L1.
    Void,
}

/// `verinfer_getJob` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// The job id.
    pub job_id: B256,
    /// The signed job.
    pub job: JobRequest,
    /// Where the job is.
    pub state: JobState,
    /// Number of shards.
    pub shards_total: u32,
    /// Shards with an accepted receipt.
    pub shards_done: u32,
    /// The batch holding its receipts, once batched.
    pub batch: Option<u64>,
    /// Amount charged (sum of tokens processed × token price), once batched.
    pub charged: Option<U256>,
    /// Unix time (ms) the sequencer stored it.
    pub accepted_at_ms: u64,
    /// L1 head the sequencer read when it accepted the job (after the buyer had signed).
    #[serde(default)]
    pub accept_head: Option<u64>,
    /// The block hash that seeds its shards' assignment draw, once that block exists.
    #[serde(default)]
    pub assignment_seed: Option<AssignmentSeed>,
    /// Why it was dropped (state `dropped`).
    #[serde(default)]
    pub drop_reason: Option<DropReason>,
    /// Re-queued shards, re-pricing, dissolved batches.
    #[serde(default)]
    pub events: Vec<JobEvent>,
}

/// `verinfer_listJobs` result: one page of a buyer's jobs, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPage {
    /// The jobs on this page.
    pub jobs: Vec<JobInfo>,
    /// Cursor for the next page, when there is one.
    pub next_cursor: Option<u64>,
}

/// One completion and the proofs that tie it to a signed receipt and a posted batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    /// Index of the prompt in the job.
    pub prompt_index: u32,
    /// Generated token ids.
    pub tokens: Vec<u32>,
    /// Shard that produced it.
    pub shard_index: u32,
    /// Proof of `completion_leaf_bytes(tokens)` under `receipt.outputRoot`
    /// (leaf index = position inside the shard).
    pub output_proof: MerkleProof,
}

/// A shard's receipt and, once batched, its place in the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardReceipt {
    /// Position of the shard in the job.
    pub shard_index: u32,
    /// The worker-signed receipt.
    pub receipt: Receipt,
    /// The worker's 65-byte signature over the receipt's EIP-712 digest.
    pub signature: Bytes,
    /// Batch number and proof of `receipt.hash()` under the batch's receipts root.
    pub batch: Option<BatchInclusion>,
}

/// Where a receipt sits in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInclusion {
    /// Batch number.
    pub batch: u64,
    /// Merkle root over the batch's receipt hashes (leaves are the hashes themselves).
    pub receipts_root: B256,
    /// Proof of the receipt hash under `receiptsRoot`.
    pub proof: MerkleProof,
}

/// `verinfer_getResults` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResults {
    /// The job.
    pub job_id: B256,
    /// Where it is.
    pub state: JobState,
    /// Whether what follows is only the sequencer's (`provisional`), on L1 (`onL1`) or final.
    pub finality: Finality,
    /// Receipts of finished shards.
    pub receipts: Vec<ShardReceipt>,
    /// Completions of finished shards, by prompt index.
    pub completions: Vec<Completion>,
}

/// State of a batch with respect to L1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BatchState {
    /// Built and stored, not yet seen on L1.
    Pending,
    /// Included in an L1 block, fewer confirmations than required.
    Posted,
    /// Included with the required confirmations.
    Confirmed,
    /// Challenge window over, no open dispute.
    Finalized,
    /// A dispute is open against it.
    Disputed,
}

/// `verinfer_getBatch` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    /// Batch number (dense, from 0).
    pub index: u64,
    /// Merkle root over `hash_leaf(abi.encode(receipt))` of its receipts (as the inbox stores it).
    pub receipts_root: B256,
    /// `keccak256(abi.encode(receipt))` of each receipt, in leaf order.
    pub receipt_hashes: Vec<B256>,
    /// Jobs whose last receipts are in this batch (they are charged with it).
    pub jobs: Vec<B256>,
    /// L1 state.
    pub state: BatchState,
    /// Posting transaction, once sent.
    pub l1_tx: Option<B256>,
    /// Block the posting landed in.
    pub l1_block: Option<u64>,
    /// Gas the posting used.
    pub gas_used: Option<u64>,
}

/// `verinfer_registerWorker` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterWorkerRequest {
    /// The signed registration (worker address, SKUs, time).
    pub registration: verinfer_primitives::job::WorkerRegistration,
    /// The worker's signature over its EIP-712 digest.
    pub signature: Bytes,
}

/// `verinfer_registerWorker` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterWorkerResponse {
    /// Stake the L1 stake bridge reports for the worker (its assignment weight).
    pub stake: U256,
    /// Secret session token for `verinfer_subscribeShards` (valid until the sequencer restarts
    /// or the worker registers again).
    pub session: B256,
}

/// One shard pushed to a worker over `verinfer_subscribeShards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardAssignment {
    /// `keccak256(abi.encode(jobId, shardIndex))`.
    pub shard_id: B256,
    /// The job.
    pub job_id: B256,
    /// Position in the job (the receipt's `shardIndex`).
    pub shard_index: u32,
    /// SKU to run.
    pub sku_id: B256,
    /// The shard's prompts.
    pub prompts: Vec<Prompt>,
    /// Merkle root of the shard's prompts (the receipt's `inputRoot`).
    pub input_root: B256,
    /// Greedy decode length per prompt.
    pub max_new_tokens: u64,
    /// The result must arrive before this unix time (ms), else the shard is re-assigned.
    pub deadline_ms: u64,
    /// How many times this shard was assigned before (0 for the first assignment).
    pub attempt: u32,
}

/// `verinfer_cancelJob` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelJobRequest {
    /// The job.
    pub job_id: B256,
    /// The buyer's EIP-712 signature over `CancelJob(bytes32 jobId)`.
    pub signature: Bytes,
}

/// `verinfer_cancelJob` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelJobResponse {
    /// The job.
    pub job_id: B256,
    /// The reservation released against the buyer's escrow.
    pub released: U256,
}

/// `verinfer_submitResult` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitResultRequest {
    /// Generated tokens, one list per prompt of the shard.
    pub outputs: Vec<Vec<u32>>,
    /// The receipt; its fields must match the assigned shard.
    pub receipt: Receipt,
    /// The worker's signature over the receipt's EIP-712 digest.
    pub signature: Bytes,
}

/// `verinfer_submitResult` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitResultResponse {
    /// `receipt.hash()`.
    pub receipt_hash: B256,
    /// True when this result completed its job.
    pub job_completed: bool,
}

/// A watcher's request to a worker for rows of one step's output tensor of a shard (served by
/// the worker daemon, see prover/).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorRowsRequest {
    /// The job.
    pub job_id: B256,
    /// The shard.
    pub shard_index: u32,
    /// Trace step whose output tensor is asked for.
    pub step: u64,
    /// Row indices wanted.
    pub rows: Vec<u64>,
}

/// One tensor row with its proof under the step's output root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorRow {
    /// Row index.
    pub index: u64,
    /// Row bytes (`primitives::rows` encoding of the tensor's element type).
    pub bytes: Bytes,
    /// Proof of the row under `outputRoot`.
    pub proof: MerkleProof,
}

/// The worker's answer to a [`TensorRowsRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorRowsResponse {
    /// The step.
    pub step: u64,
    /// Merkle root of the step's output tensor (its rows).
    pub output_root: B256,
    /// Rows in the tensor.
    pub row_count: u64,
    /// The asked rows.
    pub rows: Vec<TensorRow>,
    /// Proof of `outputRoot` as leaf `step` of the trace state tree under the receipt's
    /// `traceRoot` (see `primitives::trace`).
    pub trace_proof: MerkleProof,
}
