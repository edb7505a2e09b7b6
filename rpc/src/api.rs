//! The method list. Every method name is prefixed `verinfer_`.

use alloy_primitives::{Address, Bytes, B256};
use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;

use crate::types::*;

/// The Verinfer sequencer API (buyers, workers, watchers).
#[rpc(server, client, namespace = "verinfer")]
pub trait VerinferApi {
    /// Chain id, batch inbox and limits a client needs to sign jobs.
    #[method(name = "domain")]
    async fn domain(&self) -> RpcResult<DomainInfo>;

    /// SKUs this sequencer accepts.
    #[method(name = "skus")]
    async fn skus(&self) -> RpcResult<Vec<SkuInfo>>;

    /// Validates and durably stores a signed job; answers after the store commits.
    #[method(name = "submitJob")]
    async fn submit_job(&self, request: SubmitJobRequest) -> RpcResult<SubmitJobResponse>;

    /// Status of one job.
    #[method(name = "getJob")]
    async fn get_job(&self, job_id: B256) -> RpcResult<JobInfo>;

    /// Completions, receipts and inclusion proofs of one job (partial while it runs).
    /// `access` is the buyer's EIP-712 signature over `ResultsAccess(bytes32 jobId)`
    /// (`sign::sign_results_access`); it may be omitted only where the sequencer runs with
    /// `limits.public_results = true`.
    #[method(name = "getResults")]
    async fn get_results(&self, job_id: B256, access: Option<Bytes>) -> RpcResult<JobResults>;

    /// Cancels a job that is not yet in a batch (buyer-signed); releases its reservation.
    #[method(name = "cancelJob")]
    async fn cancel_job(&self, request: CancelJobRequest) -> RpcResult<CancelJobResponse>;

    /// One page of a buyer's jobs, oldest first. `cursor` comes from the previous page.
    #[method(name = "listJobs")]
    async fn list_jobs(
        &self,
        buyer: Address,
        cursor: Option<u64>,
        limit: Option<u32>,
    ) -> RpcResult<JobPage>;

    /// One batch.
    #[method(name = "getBatch")]
    async fn get_batch(&self, index: u64) -> RpcResult<BatchInfo>;

    /// Registers a worker (signature + stake on L1 checked); returns a session token.
    #[method(name = "registerWorker")]
    async fn register_worker(
        &self,
        request: RegisterWorkerRequest,
    ) -> RpcResult<RegisterWorkerResponse>;

    /// WebSocket only: shards assigned to `worker`, pushed as they are assigned.
    #[subscription(name = "subscribeShards" => "shardAssigned", unsubscribe = "unsubscribeShards", item = ShardAssignment)]
    async fn subscribe_shards(&self, worker: Address, session: B256) -> SubscriptionResult;

    /// A worker's outputs and signed receipt for an assigned shard.
    #[method(name = "submitResult")]
    async fn submit_result(&self, request: SubmitResultRequest) -> RpcResult<SubmitResultResponse>;
}
