//! The JSON-RPC server: [`VerinferApiServer`] on top of [`Sequencer`], HTTP and WebSocket on one
//! port, `GET /metrics` beside them.

use std::net::SocketAddr;
use std::sync::Arc;

use alloy_primitives::{Address, Bytes, B256};
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::server::{
    PendingSubscriptionSink, ServerBuilder, ServerConfig, ServerHandle, SubscriptionMessage,
};
use jsonrpsee::types::ErrorObjectOwned;
use verinfer_rpc::types::*;
use verinfer_rpc::VerinferApiServer;

use crate::limits::InflightLayer;
use crate::metrics::MetricsLayer;
use crate::node::Sequencer;

struct Api {
    seq: Arc<Sequencer>,
}

fn rpc<T>(r: Result<T, verinfer_rpc::ApiError>) -> RpcResult<T> {
    r.map_err(ErrorObjectOwned::from)
}

#[async_trait]
impl VerinferApiServer for Api {
    async fn domain(&self) -> RpcResult<DomainInfo> {
        let _t = self.seq.metrics().timer("domain");
        Ok(self.seq.domain_info())
    }

    async fn skus(&self) -> RpcResult<Vec<SkuInfo>> {
        let _t = self.seq.metrics().timer("skus");
        Ok(self.seq.sku_list())
    }

    async fn submit_job(&self, request: SubmitJobRequest) -> RpcResult<SubmitJobResponse> {
        let _t = self.seq.metrics().timer("submitJob");
        rpc(self.seq.submit_job(request).await)
    }

    async fn get_job(&self, job_id: B256) -> RpcResult<JobInfo> {
        let _t = self.seq.metrics().timer("getJob");
        rpc(self.seq.get_job(job_id).await)
    }

    async fn get_results(&self, job_id: B256, access: Option<Bytes>) -> RpcResult<JobResults> {
        let _t = self.seq.metrics().timer("getResults");
        rpc(self.seq.get_results(job_id, access).await)
    }

    async fn cancel_job(&self, request: CancelJobRequest) -> RpcResult<CancelJobResponse> {
        let _t = self.seq.metrics().timer("cancelJob");
        rpc(self.seq.cancel_job(request).await)
    }

    async fn list_jobs(
        &self,
        buyer: Address,
        cursor: Option<u64>,
        limit: Option<u32>,
    ) -> RpcResult<JobPage> {
        let _t = self.seq.metrics().timer("listJobs");
        rpc(self.seq.list_jobs(buyer, cursor, limit).await)
    }

    async fn get_batch(&self, index: u64) -> RpcResult<BatchInfo> {
        let _t = self.seq.metrics().timer("getBatch");
        rpc(self.seq.get_batch(index).await)
    }

    async fn register_worker(
        &self,
        request: RegisterWorkerRequest,
    ) -> RpcResult<RegisterWorkerResponse> {
        let _t = self.seq.metrics().timer("registerWorker");
        rpc(self.seq.register_worker(request).await)
    }

    async fn subscribe_shards(
        &self,
        pending: PendingSubscriptionSink,
        worker: Address,
        session: B256,
    ) -> SubscriptionResult {
        let mut rx = match self.seq.attach_worker(worker, session) {
            Ok(rx) => rx,
            Err(e) => {
                pending.reject(ErrorObjectOwned::from(e)).await;
                return Ok(());
            }
        };
        let sink = pending.accept().await?;
        tracing::info!(%worker, "worker subscribed to shard assignments");
        loop {
            tokio::select! {
                a = rx.recv() => {
                    let Some(a) = a else { break };
                    let msg: SubscriptionMessage = serde_json::value::to_raw_value(&a)?.into();
                    if sink.send(msg).await.is_err() {
                        break;
                    }
                }
                _ = sink.closed() => break,
            }
        }
        tracing::info!(%worker, "worker subscription closed");
        Ok(())
    }

    async fn submit_result(&self, request: SubmitResultRequest) -> RpcResult<SubmitResultResponse> {
        let _t = self.seq.metrics().timer("submitResult");
        rpc(self.seq.submit_result(request).await)
    }
}

/// Starts the server on `addr` (port 0 picks a free one). Returns the bound address and the
/// handle that stops it.
pub async fn serve(
    seq: Arc<Sequencer>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let lim = &seq.config().limits;
    let cfg = ServerConfig::builder()
        .max_request_body_size(lim.max_request_bytes)
        .max_response_body_size(64 * 1024 * 1024)
        .max_connections(lim.max_connections)
        .build();
    let http_mw = tower::ServiceBuilder::new()
        .layer(MetricsLayer::new(seq.metrics().clone()))
        .layer(InflightLayer::new(
            lim.max_inflight_bytes,
            lim.max_request_bytes,
        ));
    let server = ServerBuilder::with_config(cfg)
        .set_http_middleware(http_mw)
        .build(addr)
        .await?;
    let bound = server.local_addr()?;
    let handle = server.start(Api { seq }.into_rpc());
    tracing::info!(%bound, "JSON-RPC listening (HTTP + WebSocket, GET /metrics)");
    Ok((bound, handle))
}
