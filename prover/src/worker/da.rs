//! The data-availability server (`verinfer_rpc::worker_api`): rows and chunks of any step tensor
//! of a receipt this worker signed.
//!
//! What is kept: the signed receipt, outputs, prompts (in the shard record) and every step's
//! output root (32 bytes a step), so trace proofs cost no recomputation. What is recomputed:
//! the tensors, by replaying the shard from its prompts up to the asked step
//! (`Engine::reproduce_step`, deterministic); the last few openings are cached so that chunked
//! downloads of one tensor replay once. A replayed root that differs from the signed one is an
//! internal error (it would mean the engine is not deterministic), never a wrong answer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use alloy_primitives::{Address, Bytes, B256};
use jsonrpsee::core::{async_trait, RpcResult};
use jsonrpsee::server::{ServerBuilder, ServerConfig, ServerHandle};
use jsonrpsee::types::ErrorObjectOwned;
use verinfer_primitives::job::shard_id;
use verinfer_primitives::TraceState;
use verinfer_rpc::types::{TensorRow, TensorRowsRequest, TensorRowsResponse};
use verinfer_rpc::worker_api::{
    worker_codes, ReceiptPage, ReceiptRef, RowEncoding, SignedReceipt, TensorChunk,
    TensorChunkRequest, WorkerDataApiServer, WorkerInfo,
};
use verinfer_rpc::{codes, ApiError};

use super::exec::{to_shard, Engines};
use super::store::{ShardRecord, Store};
use crate::{Engine, Shard, Tensor, TensorOpening};

/// Bounds of the data API.
#[derive(Debug, Clone)]
pub struct DaLimits {
    /// Most addresses per `tensorRows` request.
    pub max_rows_per_request: u32,
    /// Most row bytes per answer.
    pub max_response_bytes: u64,
    /// Receipts older than this (s) are no longer served.
    pub retention_secs: u64,
    /// Requests per second over all clients.
    pub requests_per_sec: u32,
    /// Replayed tensors kept in memory.
    pub cache_entries: usize,
}

impl Default for DaLimits {
    fn default() -> Self {
        Self {
            max_rows_per_request: 256,
            max_response_bytes: 4 * 1024 * 1024,
            retention_secs: 7 * 24 * 3600,
            requests_per_sec: 50,
            cache_entries: 4,
        }
    }
}

/// A token bucket over all clients (a worker serves few auditors; per-client fairness would
/// need the peer address, which the HTTP layer does not hand to methods).
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What the server methods share.
pub struct DaState {
    pub store: Arc<Store>,
    pub engines: Engines,
    pub worker: Address,
    pub limits: DaLimits,
    bucket: Mutex<Bucket>,
    cache: Mutex<VecDeque<(B256, u64, Arc<TensorOpening>)>>,
    /// One replay at a time: a replay is a partial shard run and uses every engine thread.
    replay: tokio::sync::Semaphore,
}

impl DaState {
    pub fn new(store: Arc<Store>, engines: Engines, worker: Address, limits: DaLimits) -> Self {
        Self {
            store,
            engines,
            worker,
            bucket: Mutex::new(Bucket {
                tokens: limits.requests_per_sec as f64,
                at: Instant::now(),
            }),
            limits,
            cache: Mutex::new(VecDeque::new()),
            replay: tokio::sync::Semaphore::new(1),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(codes::INTERNAL, e.to_string())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A signed shard ready to be served: its record, engine, shard and trace.
struct Served {
    shard_id: B256,
    engine: Arc<Engine>,
    shard: Shard,
    trace: TraceState,
}

impl DaState {
    fn take_token(&self) -> ApiResult<()> {
        let mut b = self.bucket.lock().map_err(internal)?;
        let rate = self.limits.requests_per_sec.max(1) as f64;
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        if b.tokens < 1.0 {
            return Err(ApiError::new(
                worker_codes::RATE_LIMITED,
                format!("more than {rate} requests per second"),
            ));
        }
        b.tokens -= 1.0;
        Ok(())
    }

    fn signed(&self, job_id: B256, shard_index: u32) -> ApiResult<(B256, ShardRecord)> {
        let sid = shard_id(job_id, shard_index);
        let rec = self.store.get(sid).map_err(internal)?;
        let rec = rec.filter(|r| r.state.result().is_some()).ok_or_else(|| {
            ApiError::new(
                worker_codes::UNKNOWN_RECEIPT,
                format!("no receipt signed for shard {shard_index} of job {job_id}"),
            )
        })?;
        let signed_at = rec.state.result().map(|r| r.signed_at_ms).unwrap_or(0);
        if now_ms() > self.expires_at(signed_at) {
            return Err(ApiError::new(
                worker_codes::EXPIRED_RECEIPT,
                format!("receipt of shard {shard_index} of job {job_id} is past retention"),
            ));
        }
        Ok((sid, rec))
    }

    fn expires_at(&self, signed_at_ms: u64) -> u64 {
        signed_at_ms.saturating_add(self.limits.retention_secs.saturating_mul(1000))
    }

    fn served(&self, job_id: B256, shard_index: u32, step: u64) -> ApiResult<Served> {
        let (sid, record) = self.signed(job_id, shard_index)?;
        let step_count = record
            .state
            .result()
            .map(|r| r.receipt.stepCount)
            .unwrap_or(0);
        if step >= step_count {
            return Err(ApiError::new(
                worker_codes::UNKNOWN_STEP,
                format!("step {step} is beyond the program's {step_count} steps"),
            ));
        }
        let engine = self
            .engines
            .get(&record.assignment.sku_id)
            .cloned()
            .ok_or_else(|| internal("the receipt's SKU is no longer loaded"))?;
        let shard = to_shard(&record.assignment).map_err(internal)?;
        let roots = self
            .store
            .output_roots(sid)
            .map_err(internal)?
            .ok_or_else(|| internal("signed shard without stored trace"))?;
        let mut trace = TraceState::new(step_count);
        for r in roots {
            trace.push(r).map_err(internal)?;
        }
        Ok(Served {
            shard_id: sid,
            engine,
            shard,
            trace,
        })
    }

    /// The output tensor of `step`, from the cache or replayed.
    async fn opening(&self, s: &Served, step: u64) -> ApiResult<Arc<TensorOpening>> {
        if let Some(hit) = self.cached(s.shard_id, step)? {
            return Ok(hit);
        }
        let _permit = self.replay.acquire().await.map_err(internal)?;
        if let Some(hit) = self.cached(s.shard_id, step)? {
            return Ok(hit);
        }
        let (engine, shard) = (s.engine.clone(), s.shard.clone());
        let opened = tokio::task::spawn_blocking(move || engine.reproduce_step(&shard, step))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let want = s.trace.output_roots()[step as usize];
        if opened.output.root() != want {
            return Err(internal(format!(
                "replayed step {step} has root {} but the signed trace has {want}",
                opened.output.root()
            )));
        }
        let out = Arc::new(opened.output);
        let mut c = self.cache.lock().map_err(internal)?;
        c.push_back((s.shard_id, step, out.clone()));
        while c.len() > self.limits.cache_entries.max(1) {
            c.pop_front();
        }
        Ok(out)
    }

    fn cached(&self, sid: B256, step: u64) -> ApiResult<Option<Arc<TensorOpening>>> {
        let c = self.cache.lock().map_err(internal)?;
        Ok(c.iter()
            .find(|(s, t, _)| *s == sid && *t == step)
            .map(|(_, _, o)| o.clone()))
    }

    fn trace_proof(&self, s: &Served, step: u64) -> ApiResult<verinfer_primitives::MerkleProof> {
        let last = s.trace.step_count().checked_sub(1);
        s.trace.proof(step, last).map_err(internal)
    }

    async fn tensor_rows(&self, req: TensorRowsRequest) -> ApiResult<TensorRowsResponse> {
        self.take_token()?;
        let max = self.limits.max_rows_per_request as usize;
        if req.rows.len() > max {
            return Err(ApiError::oversized(
                "rows asked",
                req.rows.len() as u64,
                max as u64,
            ));
        }
        let s = self.served(req.job_id, req.shard_index, req.step)?;
        let out = self.opening(&s, req.step).await?;
        let mut bytes = 0u64;
        let mut rows = Vec::with_capacity(req.rows.len());
        for &a in &req.rows {
            let b = out.row_bytes(a);
            bytes += b.len() as u64;
            if bytes > self.limits.max_response_bytes {
                return Err(ApiError::oversized(
                    "row bytes",
                    bytes,
                    self.limits.max_response_bytes,
                ));
            }
            let proof = out
                .proof(a)
                .map_err(|e| ApiError::malformed(format!("row address {a}: {e}")))?;
            rows.push(TensorRow {
                index: a,
                bytes: Bytes::from(b),
                proof,
            });
        }
        Ok(TensorRowsResponse {
            step: req.step,
            output_root: out.root(),
            row_count: out.addresses.len() as u64,
            rows,
            trace_proof: self.trace_proof(&s, req.step)?,
        })
    }

    async fn tensor_chunk(&self, req: TensorChunkRequest) -> ApiResult<TensorChunk> {
        self.take_token()?;
        let s = self.served(req.job_id, req.shard_index, req.step)?;
        let program = s.engine.program(&s.shard);
        let info = program.step(req.step).map_err(internal)?;
        let input_steps = program.inputs(req.step).map_err(internal)?;
        let out = self.opening(&s, req.step).await?;
        let total = out.addresses.len() as u64;
        let (mut addresses, mut rows, mut bytes) = (Vec::new(), Vec::new(), 0u64);
        let mut i = req.start_row;
        while i < total && rows.len() < req.max_rows.max(1) as usize {
            let b = out.tensor.row_bytes(i as usize);
            // Always at least one row, so that a row larger than the bound can still be fetched.
            if !rows.is_empty() && bytes + b.len() as u64 > self.limits.max_response_bytes {
                break;
            }
            bytes += b.len() as u64;
            addresses.push(out.addresses[i as usize]);
            rows.push(Bytes::from(b));
            i += 1;
        }
        let (encoding, cols) = encoding(&out.tensor);
        Ok(TensorChunk {
            step: req.step,
            label: info.label(),
            input_steps,
            encoding,
            cols,
            output_root: out.root(),
            row_count: total,
            start_row: req.start_row,
            addresses,
            rows,
            trace_proof: self.trace_proof(&s, req.step)?,
            next_row: (i < total).then_some(i),
        })
    }

    fn get_receipt(&self, job_id: B256, shard_index: u32) -> ApiResult<SignedReceipt> {
        self.take_token()?;
        let (_, rec) = self.signed(job_id, shard_index)?;
        let submitted = matches!(rec.state, super::store::ShardState::Submitted { .. });
        let r = rec
            .state
            .result()
            .cloned()
            .ok_or_else(|| internal("signed record without result"))?;
        let prompts = to_shard(&rec.assignment).map_err(internal)?.prompts;
        Ok(SignedReceipt {
            expires_at_ms: self.expires_at(r.signed_at_ms),
            receipt: r.receipt,
            signature: r.signature,
            outputs: r.outputs,
            prompts,
            submitted,
            signed_at_ms: r.signed_at_ms,
        })
    }

    fn list_receipts(&self, cursor: Option<u64>, limit: Option<u32>) -> ApiResult<ReceiptPage> {
        self.take_token()?;
        let limit = limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::malformed("limit must be 1..=1000"));
        }
        let (ids, next) = self
            .store
            .signed_page(cursor.unwrap_or(0), limit as usize)
            .map_err(internal)?;
        let mut receipts = Vec::with_capacity(ids.len());
        for sid in ids {
            let rec = self.store.get(sid).map_err(internal)?;
            if let Some(r) = rec.as_ref().and_then(|r| r.state.result()) {
                receipts.push(ReceiptRef {
                    job_id: r.receipt.jobId,
                    shard_index: r.receipt.shardIndex,
                    receipt_hash: r.receipt.hash(),
                });
            }
        }
        Ok(ReceiptPage {
            receipts,
            next_cursor: next,
        })
    }
}

fn encoding(t: &Tensor) -> (RowEncoding, u64) {
    match t {
        Tensor::I32 { cols, .. } => (RowEncoding::I32, *cols as u64),
        Tensor::Q { cols, .. } => (RowEncoding::Q, *cols as u64),
        Tensor::Scores(_) => (RowEncoding::Scores, 0),
        Tensor::Probs(_) => (RowEncoding::Probs, 0),
        Tensor::Tokens(_) => (RowEncoding::Tokens, 0),
    }
}

struct Api(Arc<DaState>);

fn rpc<T>(r: ApiResult<T>) -> RpcResult<T> {
    r.map_err(ErrorObjectOwned::from)
}

#[async_trait]
impl WorkerDataApiServer for Api {
    async fn info(&self) -> RpcResult<WorkerInfo> {
        let l = &self.0.limits;
        let mut skus: Vec<B256> = self.0.engines.keys().copied().collect();
        skus.sort();
        Ok(WorkerInfo {
            worker: self.0.worker,
            skus,
            max_rows_per_request: l.max_rows_per_request,
            max_response_bytes: l.max_response_bytes,
            retention_secs: l.retention_secs,
            requests_per_sec: l.requests_per_sec,
        })
    }

    async fn list_receipts(
        &self,
        cursor: Option<u64>,
        limit: Option<u32>,
    ) -> RpcResult<ReceiptPage> {
        rpc(self.0.list_receipts(cursor, limit))
    }

    async fn get_receipt(&self, job_id: B256, shard_index: u32) -> RpcResult<SignedReceipt> {
        rpc(self.0.get_receipt(job_id, shard_index))
    }

    async fn tensor_rows(&self, request: TensorRowsRequest) -> RpcResult<TensorRowsResponse> {
        rpc(self.0.tensor_rows(request).await)
    }

    async fn tensor_chunk(&self, request: TensorChunkRequest) -> RpcResult<TensorChunk> {
        rpc(self.0.tensor_chunk(request).await)
    }
}

/// Starts the data API on `addr` (HTTP only). Requests are bounded to 64 KiB; answers to twice
/// the row-byte bound (hex) plus room for proofs.
pub async fn serve(
    state: Arc<DaState>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let max_resp = state
        .limits
        .max_response_bytes
        .saturating_mul(2)
        .saturating_add(8 * 1024 * 1024)
        .min(u32::MAX as u64) as u32;
    let cfg = ServerConfig::builder()
        .max_request_body_size(64 * 1024)
        .max_response_body_size(max_resp)
        .max_connections(64)
        .http_only()
        .build();
    let server = ServerBuilder::with_config(cfg).build(addr).await?;
    let bound = server.local_addr()?;
    let handle = server.start(Api(state).into_rpc());
    Ok((bound, handle))
}
