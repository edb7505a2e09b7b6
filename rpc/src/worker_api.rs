//! The worker's own data-availability API (served by `verinfer worker --data-listen ADDR`,
//! JSON-RPC 2.0 over HTTP, see docs/WORKER.md).
//!
//! Watchers and challengers use it to fetch what a worker committed to in a receipt it signed:
//! rows of any step tensor with Merkle proofs against the receipt's trace root
//! ([`WorkerDataApiClient::tensor_rows`]) and whole step tensors, chunked, for Freivalds audits of
//! GEMMs ([`WorkerDataApiClient::tensor_chunk`]: ask the GEMM step and the steps in its
//! `inputSteps`). Every answer is checkable with [`verify_rows`] / [`verify_chunk`] against the
//! signed receipt alone: nothing the worker says has to be trusted.
//!
//! Method names are prefixed `worker_`.

use alloy_primitives::{Address, Bytes, B256};
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};
use verinfer_primitives::merkle::row_leaf;
use verinfer_primitives::{MerkleProof, Receipt};

use crate::types::{TensorRowsRequest, TensorRowsResponse};

/// Error codes of the worker API (beside the JSON-RPC standard ones: `-32602` malformed params,
/// `-32007` oversized request, `-32603` internal).
pub mod worker_codes {
    /// The worker signed no receipt for this (job, shard).
    pub const UNKNOWN_RECEIPT: i32 = 4200;
    /// The receipt is older than the worker's retention and its data is no longer served.
    pub const EXPIRED_RECEIPT: i32 = 4201;
    /// The step is beyond the receipt's program.
    pub const UNKNOWN_STEP: i32 = 4202;
    /// Too many requests: the worker's request budget (per second) is spent; retry later.
    pub const RATE_LIMITED: i32 = 4290;
}

/// `worker_info` result: who this worker is and the bounds it enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerInfo {
    /// The worker's staking address (the receipts' `worker`).
    pub worker: Address,
    /// SKU ids it runs.
    pub skus: Vec<B256>,
    /// Most row addresses one `worker_tensorRows` request may ask for.
    pub max_rows_per_request: u32,
    /// Most row bytes one answer carries (`worker_tensorChunk` stops before it).
    pub max_response_bytes: u64,
    /// How long (s) after signing a receipt its data is served.
    pub retention_secs: u64,
    /// Requests per second served (over all clients); above it `4290`.
    pub requests_per_sec: u32,
}

/// `worker_getReceipt` result: a receipt the worker signed, as it signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// The worker's 65-byte signature over its EIP-712 digest.
    pub signature: Bytes,
    /// Generated tokens, one list per prompt (their root is `receipt.outputRoot`).
    pub outputs: Vec<Vec<u32>>,
    /// The shard's prompts as token ids (their root is `receipt.inputRoot`).
    pub prompts: Vec<Vec<u32>>,
    /// True once the sequencer acknowledged it.
    pub submitted: bool,
    /// Unix time (ms) it was signed.
    pub signed_at_ms: u64,
    /// Unix time (ms) after which its data is no longer served.
    pub expires_at_ms: u64,
}

/// One entry of `worker_listReceipts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptRef {
    /// The job.
    pub job_id: B256,
    /// The shard.
    pub shard_index: u32,
    /// `receipt.hash()`.
    pub receipt_hash: B256,
}

/// `worker_listReceipts` result, in signing order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptPage {
    /// Receipts on this page.
    pub receipts: Vec<ReceiptRef>,
    /// Cursor of the next page, when there is one.
    pub next_cursor: Option<u64>,
}

/// `worker_tensorChunk` params: rows `startRow..` (dense row order, i.e. order of addresses) of
/// one step's output tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorChunkRequest {
    /// The job.
    pub job_id: B256,
    /// The shard.
    pub shard_index: u32,
    /// Trace step.
    pub step: u64,
    /// First row (dense index) wanted.
    pub start_row: u64,
    /// Most rows wanted (the worker may send fewer to stay under its byte bound).
    pub max_rows: u32,
}

/// How a tensor's rows are encoded (`prover::Tensor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RowEncoding {
    /// `cols` big-endian `i32` (embed, GEMM accumulators, rope_k, value, pv, residual).
    I32,
    /// `cols` int8 values then a big-endian `i64` Q31 scale (normalized, quantized rows).
    Q,
    /// Ragged big-endian `i64` rows (attention scores).
    Scores,
    /// Softmax rows (`arith::softmax_row_bytes`).
    Probs,
    /// One big-endian `u32` token id.
    Tokens,
}

/// `worker_tensorChunk` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorChunk {
    /// The step.
    pub step: u64,
    /// Human label of the step (e.g. `round 0 layer 1 q`).
    pub label: String,
    /// Steps whose outputs this step reads (for a GEMM: its activation input).
    pub input_steps: Vec<u64>,
    /// Row encoding.
    pub encoding: RowEncoding,
    /// Elements per row for uniform encodings (`i32`, `q`), else 0.
    pub cols: u64,
    /// Merkle root of the whole tensor (the trace's output root of `step`).
    pub output_root: B256,
    /// Rows in the whole tensor.
    pub row_count: u64,
    /// Dense index of the first row of this chunk.
    pub start_row: u64,
    /// Tree address of each row of this chunk.
    pub addresses: Vec<u64>,
    /// The rows.
    pub rows: Vec<Bytes>,
    /// Proof of `outputRoot` as leaf `step` under the receipt's `traceRoot`.
    pub trace_proof: MerkleProof,
    /// `startRow` of the next chunk, when rows remain.
    pub next_row: Option<u64>,
}

/// The worker's data-availability API.
#[rpc(server, client, namespace = "worker")]
pub trait WorkerDataApi {
    /// Address, SKUs and the request bounds of this worker.
    #[method(name = "info")]
    async fn info(&self) -> RpcResult<WorkerInfo>;

    /// Receipts signed by this worker, in signing order (`limit` 1..=1000, default 100).
    #[method(name = "listReceipts")]
    async fn list_receipts(
        &self,
        cursor: Option<u64>,
        limit: Option<u32>,
    ) -> RpcResult<ReceiptPage>;

    /// A signed receipt with its outputs and prompts.
    #[method(name = "getReceipt")]
    async fn get_receipt(&self, job_id: B256, shard_index: u32) -> RpcResult<SignedReceipt>;

    /// Rows (by tree address) of one step tensor, with proofs against the receipt's trace root.
    /// An address without a row is answered with empty bytes and a proof of the zero leaf.
    #[method(name = "tensorRows")]
    async fn tensor_rows(&self, request: TensorRowsRequest) -> RpcResult<TensorRowsResponse>;

    /// A bounded chunk of one step tensor in row order (whole GEMM inputs/outputs for Freivalds).
    #[method(name = "tensorChunk")]
    async fn tensor_chunk(&self, request: TensorChunkRequest) -> RpcResult<TensorChunk>;
}

/// Why an answer does not check out against the receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataCheckError {
    /// The step's output root does not lead to the receipt's trace root.
    #[error("output root of step {step} is not under the trace root")]
    TraceProof { step: u64 },
    /// A row's proof does not lead to the step's output root.
    #[error("row at address {address} is not under the output root")]
    RowProof { address: u64 },
    /// The chunk's shape is inconsistent.
    #[error("chunk has {addresses} addresses for {rows} rows")]
    Shape { addresses: usize, rows: usize },
}

/// The leaf a row commits to (zero for an absent row).
fn leaf_of(bytes: &[u8]) -> B256 {
    if bytes.is_empty() {
        B256::ZERO
    } else {
        row_leaf(bytes)
    }
}

fn check_trace(
    trace_root: B256,
    step: u64,
    output_root: B256,
    p: &MerkleProof,
) -> Result<(), DataCheckError> {
    if p.index != step || p.compute_root(output_root) != trace_root {
        return Err(DataCheckError::TraceProof { step });
    }
    Ok(())
}

/// Checks a `worker_tensorRows` answer against a receipt's trace root.
pub fn verify_rows(trace_root: B256, resp: &TensorRowsResponse) -> Result<(), DataCheckError> {
    check_trace(trace_root, resp.step, resp.output_root, &resp.trace_proof)?;
    for r in &resp.rows {
        if r.proof.index != r.index || r.proof.compute_root(leaf_of(&r.bytes)) != resp.output_root {
            return Err(DataCheckError::RowProof { address: r.index });
        }
    }
    Ok(())
}

/// Checks a chunk's trace proof. The rows are checked by the caller once all chunks are in:
/// they must rebuild `outputRoot` as a sparse tree at their addresses
/// (`primitives::sparse::sparse_root` over `(address, row_leaf(row))`).
pub fn verify_chunk(trace_root: B256, chunk: &TensorChunk) -> Result<(), DataCheckError> {
    if chunk.addresses.len() != chunk.rows.len() {
        return Err(DataCheckError::Shape {
            addresses: chunk.addresses.len(),
            rows: chunk.rows.len(),
        });
    }
    check_trace(
        trace_root,
        chunk.step,
        chunk.output_root,
        &chunk.trace_proof,
    )
}
