//! The sequencer's core: job intake (validation + group commit), worker registry, shard
//! assignment with deadlines, and result acceptance. The RPC layer (`server`) is a thin
//! translation onto these methods.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_sol_types::{Eip712Domain, SolStruct};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, Notify};
use verinfer_primitives::job::{domain, outputs_root, prompts_root, shard_id, Prompt, ShardSpec};
use verinfer_rpc::error::codes;
use verinfer_rpc::sign::{cancel_digest, recover, results_access_digest};
use verinfer_rpc::types::*;
use verinfer_rpc::ApiError;

use crate::config::{Config, SkuConfig};
use crate::l1::{L1Error, L1};
use crate::metrics::Metrics;
use crate::store::{
    InsertRefusal, NewJob, ShardRecord, ShardState, Store, StoreError, WorkerRecord,
};

/// Unix time in ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        ApiError::internal(format!("store: {e}"))
    }
}

impl From<L1Error> for ApiError {
    fn from(e: L1Error) -> Self {
        tracing::warn!(error = %e, "L1 call failed");
        ApiError::new(codes::L1_UNAVAILABLE, format!("L1: {e}"))
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("store task: {e}")))?
        .map_err(ApiError::from)
}

struct IntakeItem {
    job: NewJob,
    reply: oneshot::Sender<Result<Result<u64, InsertRefusal>, String>>,
}

/// A worker connected in this process (sessions do not survive a restart: workers register
/// again and re-subscribe).
struct LiveWorker {
    skus: Vec<B256>,
    stake: U256,
    session: B256,
    sender: Option<mpsc::UnboundedSender<ShardAssignment>>,
}

/// In-memory view of an unfinished shard (the store is the truth; this avoids re-reading
/// every open shard each scheduler tick).
#[derive(Clone)]
struct OpenShard {
    sku: B256,
    assigned: Option<(Address, u64)>,
}

/// The sequencer.
pub struct Sequencer {
    cfg: Config,
    store: Arc<Store>,
    l1: Arc<dyn L1>,
    domain: Eip712Domain,
    chain_id: u64,
    skus: HashMap<B256, (SkuConfig, U256)>,
    metrics: Arc<Metrics>,
    intake: mpsc::Sender<IntakeItem>,
    workers: Mutex<HashMap<Address, LiveWorker>>,
    open: Mutex<HashMap<B256, OpenShard>>,
    /// Assignment seeds of jobs seen by the scheduler (job id → block hash).
    seeds: Mutex<HashMap<B256, B256>>,
    wake_scheduler: Notify,
}

impl Sequencer {
    /// Opens the store, reads the chain id and starts the intake writer. The scheduler is
    /// started by [`Sequencer::spawn_scheduler`].
    /// Also returns the intake writer's task, which ends once the sequencer is dropped.
    pub async fn new(
        cfg: Config,
        l1: Arc<dyn L1>,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Self>, tokio::task::JoinHandle<()>), crate::Error> {
        let store = Arc::new(Store::open(&cfg.data_dir)?);
        let chain_id = l1.chain_id().await?;
        let domain = domain(chain_id, cfg.l1.batch_inbox);
        let mut skus = HashMap::new();
        for s in &cfg.skus {
            let price = l1.sku_price(s.id).await?.ok_or_else(|| {
                crate::Error::Config(crate::config::ConfigError::Invalid(format!(
                    "SKU {} ({}) is not registered and active on L1",
                    s.id, s.name
                )))
            })?;
            skus.insert(s.id, (s.clone(), price));
        }
        let open = {
            let st = store.clone();
            tokio::task::spawn_blocking(move || st.open_shards())
                .await
                .map_err(|e| crate::Error::Task(e.to_string()))??
        };
        let open: HashMap<B256, OpenShard> = open
            .into_iter()
            .map(|s| {
                let assigned = match s.state {
                    ShardState::Assigned {
                        worker,
                        deadline_ms,
                    } => Some((worker, deadline_ms)),
                    _ => None,
                };
                (
                    s.shard_id,
                    OpenShard {
                        sku: s.sku_id,
                        assigned,
                    },
                )
            })
            .collect();
        tracing::info!(chain_id, open_shards = open.len(), "sequencer state loaded");
        let (tx, rx) = mpsc::channel(cfg.limits.max_group_commit * 4);
        let seq = Arc::new(Self {
            cfg,
            store,
            l1,
            domain,
            chain_id,
            skus,
            metrics,
            intake: tx,
            workers: Mutex::new(HashMap::new()),
            open: Mutex::new(open),
            seeds: Mutex::new(HashMap::new()),
            wake_scheduler: Notify::new(),
        });
        let writer = tokio::spawn(intake_writer(
            seq.store.clone(),
            rx,
            seq.cfg.limits.max_group_commit,
        ));
        Ok((seq, writer))
    }

    /// The store (shared with the batcher).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The L1 client.
    pub fn l1(&self) -> &Arc<dyn L1> {
        &self.l1
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The EIP-712 domain of this deployment.
    pub fn eip712_domain(&self) -> &Eip712Domain {
        &self.domain
    }

    /// `verinfer_domain`.
    pub fn domain_info(&self) -> DomainInfo {
        DomainInfo {
            chain_id: self.chain_id,
            batch_inbox: self.cfg.l1.batch_inbox,
            max_prompts_per_job: self.cfg.limits.max_prompts_per_job,
        }
    }

    /// `verinfer_skus`.
    pub fn sku_list(&self) -> Vec<SkuInfo> {
        self.cfg
            .skus
            .iter()
            .filter_map(|s| self.skus.get(&s.id))
            .map(|(s, price)| SkuInfo {
                id: s.id,
                name: s.name.clone(),
                max_context: s.max_context,
                price_per_token: *price,
            })
            .collect()
    }

    /// Checks everything about a job that needs no shared state (cheapest checks first, so
    /// junk is refused before the signature recovery), then stores it through the group
    /// commit writer. Answers after the commit.
    pub async fn submit_job(&self, req: SubmitJobRequest) -> Result<SubmitJobResponse, ApiError> {
        let res = self.submit_job_inner(req).await;
        match &res {
            Ok(_) => {
                self.metrics.jobs_accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.metrics.rejected(e.code),
        }
        res
    }

    async fn submit_job_inner(&self, req: SubmitJobRequest) -> Result<SubmitJobResponse, ApiError> {
        let rules = crate::intake::IntakeRules {
            domain: &self.domain,
            limits: &self.cfg.limits,
            sharding: &self.cfg.sharding,
            skus: &self.skus,
            gas: self.gas_model(),
        };
        let valid = crate::intake::validate_job(&req, &rules)?;
        let job = &req.job;
        let sku_price = &valid.price_per_token;
        let balance = self.l1.escrow_balance(job.buyer).await?;
        // Read after the request arrived, so after the buyer signed: the block after this head
        // did not exist when the job (and its id) was fixed, and its hash seeds the draw.
        let accept_head = self.l1.head().await?;
        let id = valid.id;
        let shards: Vec<ShardRecord> = valid
            .shards
            .into_iter()
            .map(|s: ShardSpec| {
                let ps = &req.prompts
                    [s.first_prompt as usize..(s.first_prompt + s.prompt_count) as usize];
                ShardRecord {
                    shard_id: shard_id(id, s.index),
                    job_id: id,
                    index: s.index,
                    first_prompt: s.first_prompt,
                    prompt_count: s.prompt_count,
                    input_root: prompts_root(ps),
                    sku_id: job.skuId,
                    max_new_tokens: job.maxNewTokens,
                    state: ShardState::Open,
                    attempts: 0,
                    missed_by: Vec::new(),
                    requeued_from: Vec::new(),
                }
            })
            .collect();
        let shard_keys: Vec<B256> = shards.iter().map(|s| s.shard_id).collect();
        let shard_count = shards.len() as u32;
        let reserved = job.maxPrice;
        let sku_id = job.skuId;
        let (reply, rx) = oneshot::channel();
        let item = IntakeItem {
            job: NewJob {
                id,
                job: req.job,
                signature: req.signature,
                prompts: req.prompts,
                shards,
                price_per_token: *sku_price,
                balance,
                accepted_at_ms: now_ms(),
                accept_head,
            },
            reply,
        };
        self.intake
            .send(item)
            .await
            .map_err(|_| ApiError::internal("intake writer stopped"))?;
        match rx.await.map_err(|_| ApiError::internal("intake writer dropped the job"))? {
            Err(e) => Err(ApiError::internal(format!("store: {e}"))),
            Ok(Err(InsertRefusal::Replayed)) => Err(ApiError::new(
                codes::REPLAYED_NONCE,
                "nonce already used by this buyer",
            )
            .with_data(json!({ "jobId": id }))),
            Ok(Err(InsertRefusal::BalanceTooLow { balance, reserved: held })) => Err(ApiError::new(
                codes::BALANCE_TOO_LOW,
                format!("escrow balance {balance} less {held} reserved by open jobs is below maxPrice {reserved}"),
            )
            .with_data(json!({ "balance": balance, "reserved": held }))),
            Ok(Ok(_seq)) => {
                {
                    let mut open = self.open.lock().map_err(|_| ApiError::internal("poisoned lock"))?;
                    for k in shard_keys {
                        open.insert(k, OpenShard { sku: sku_id, assigned: None });
                    }
                }
                self.wake_scheduler.notify_one();
                tracing::debug!(job = %id, shards = shard_count, "job accepted");
                Ok(SubmitJobResponse { job_id: id, shards: shard_count, reserved })
            }
        }
    }

    /// `verinfer_getJob`.
    pub async fn get_job(&self, id: B256) -> Result<JobInfo, ApiError> {
        let st = self.store.clone();
        let rec = blocking(move || st.job(id))
            .await?
            .ok_or_else(|| ApiError::new(codes::UNKNOWN_JOB, format!("unknown job {id}")))?;
        Ok(job_info(rec))
    }

    /// `verinfer_listJobs`.
    pub async fn list_jobs(
        &self,
        buyer: Address,
        cursor: Option<u64>,
        limit: Option<u32>,
    ) -> Result<JobPage, ApiError> {
        let limit = limit.unwrap_or(100).clamp(1, 1000) as usize;
        let st = self.store.clone();
        let (jobs, next) = blocking(move || st.jobs_of(buyer, cursor.unwrap_or(0), limit)).await?;
        Ok(JobPage {
            jobs: jobs.into_iter().map(job_info).collect(),
            next_cursor: next,
        })
    }

    /// `verinfer_getResults`: completions with proofs to their receipts, receipts with proofs
    /// to their batch.
    pub async fn get_results(
        &self,
        id: B256,
        access: Option<alloy_primitives::Bytes>,
    ) -> Result<JobResults, ApiError> {
        let st = self.store.clone();
        let (job, shards, batch) = blocking(move || {
            let Some(job) = st.job(id)? else {
                return Ok(None);
            };
            let shards = st.shards_of(&job)?;
            let batch = match job.batch {
                Some(b) => st.batch(b)?,
                None => None,
            };
            Ok(Some((job, shards, batch)))
        })
        .await?
        .ok_or_else(|| ApiError::new(codes::UNKNOWN_JOB, format!("unknown job {id}")))?;
        self.check_access(&job.job, id, access.as_deref().map(|v| &**v))?;
        let finality = finality(job.state, batch.as_ref());
        let batch_tree = batch.as_ref().map(|b| {
            (
                b,
                verinfer_primitives::MerkleTree::from_leaf_hashes(b.receipt_leaves.clone()),
            )
        });
        let mut receipts = Vec::new();
        let mut completions = Vec::new();
        for s in shards {
            let ShardState::Done {
                receipt,
                signature,
                outputs,
            } = s.state
            else {
                continue;
            };
            let leaves: Vec<Vec<u8>> = outputs
                .iter()
                .map(|o| verinfer_primitives::job::completion_leaf_bytes(o))
                .collect();
            let tree = verinfer_primitives::MerkleTree::from_rows(leaves.iter().map(Vec::as_slice));
            for (k, tokens) in outputs.into_iter().enumerate() {
                let output_proof = tree
                    .proof(k as u64)
                    .map_err(|e| ApiError::internal(format!("output proof: {e}")))?;
                completions.push(Completion {
                    prompt_index: s.first_prompt + k as u32,
                    tokens,
                    shard_index: s.index,
                    output_proof,
                });
            }
            let h = receipt.hash();
            let inclusion = match &batch_tree {
                Some((b, t)) => {
                    let pos = b
                        .receipt_hashes
                        .iter()
                        .position(|x| *x == h)
                        .ok_or_else(|| ApiError::internal("receipt missing from its batch"))?;
                    Some(BatchInclusion {
                        batch: b.index,
                        receipts_root: b.receipts_root,
                        proof: t
                            .proof(pos as u64)
                            .map_err(|e| ApiError::internal(format!("batch proof: {e}")))?,
                    })
                }
                None => None,
            };
            receipts.push(ShardReceipt {
                shard_index: s.index,
                receipt,
                signature,
                batch: inclusion,
            });
        }
        Ok(JobResults {
            job_id: id,
            state: job.state,
            finality,
            receipts,
            completions,
        })
    }

    /// `verinfer_getBatch`.
    pub async fn get_batch(&self, index: u64) -> Result<BatchInfo, ApiError> {
        let st = self.store.clone();
        let b = blocking(move || st.batch(index))
            .await?
            .ok_or_else(|| ApiError::new(codes::UNKNOWN_BATCH, format!("unknown batch {index}")))?;
        Ok(BatchInfo {
            index: b.index,
            receipts_root: b.receipts_root,
            receipt_hashes: b.receipt_hashes,
            jobs: b.charges.iter().map(|c| c.job_id).collect(),
            state: b.state,
            l1_tx: b.l1_tx,
            l1_block: b.l1_block,
            gas_used: b.gas_used,
        })
    }

    /// `verinfer_registerWorker`: signature, freshness, SKUs, and the stake on L1.
    pub async fn register_worker(
        &self,
        req: RegisterWorkerRequest,
    ) -> Result<RegisterWorkerResponse, ApiError> {
        let r = &req.registration;
        match recover(&r.signing_hash(&self.domain), &req.signature) {
            Some(a) if a == r.worker => {}
            _ => {
                return Err(ApiError::new(
                    codes::BAD_SIGNATURE,
                    format!("registration is not signed by {}", r.worker),
                ))
            }
        }
        let now_s = now_ms() / 1000;
        if now_s.abs_diff(r.issuedAt) > self.cfg.workers.registration_max_age_s {
            return Err(ApiError::new(
                codes::EXPIRED,
                format!(
                    "registration issued at {} is too far from now ({now_s})",
                    r.issuedAt
                ),
            ));
        }
        if r.skus.is_empty() {
            return Err(ApiError::malformed("registration names no SKU"));
        }
        if let Some(s) = r.skus.iter().find(|s| !self.skus.contains_key(*s)) {
            return Err(ApiError::new(
                codes::UNKNOWN_SKU,
                format!("unknown SKU {s}"),
            ));
        }
        let stake = self.l1.stake_of(r.worker).await?;
        for s in &r.skus {
            if !self.l1.serves(r.worker, *s).await? {
                return Err(ApiError::new(
                    codes::STAKE_TOO_LOW,
                    format!("{} is not a staked worker serving SKU {s} on L1", r.worker),
                ));
            }
        }
        if stake < self.cfg.workers.min_stake {
            return Err(ApiError::new(
                codes::STAKE_TOO_LOW,
                format!(
                    "stake {stake} of {} is below the minimum {}",
                    r.worker, self.cfg.workers.min_stake
                ),
            ));
        }
        let rec = WorkerRecord {
            worker: r.worker,
            skus: r.skus.clone(),
            stake,
            missed: 0,
            completed: 0,
            issued_at: r.issuedAt,
        };
        let st = self.store.clone();
        if let Err(last) = blocking(move || st.put_worker(rec)).await? {
            return Err(ApiError::new(
                codes::REGISTRATION_REPLAYED,
                format!(
                    "registration issued at {} is not newer than the last one accepted for {} ({last}); sign a new one",
                    r.issuedAt, r.worker
                ),
            ));
        }
        // The session token is unguessable: keccak of the signature, time and fresh randomness.
        let session = keccak256(
            [
                req.signature.as_ref(),
                &now_ms().to_be_bytes(),
                &rand_bytes(),
            ]
            .concat(),
        );
        let mut ws = self
            .workers
            .lock()
            .map_err(|_| ApiError::internal("poisoned lock"))?;
        ws.insert(
            r.worker,
            LiveWorker {
                skus: r.skus.clone(),
                stake,
                session,
                sender: None,
            },
        );
        tracing::info!(worker = %r.worker, %stake, skus = r.skus.len(), "worker registered");
        Ok(RegisterWorkerResponse { stake, session })
    }

    /// Attaches a subscription channel to a registered worker; assignments flow into it.
    pub fn attach_worker(
        &self,
        worker: Address,
        session: B256,
    ) -> Result<mpsc::UnboundedReceiver<ShardAssignment>, ApiError> {
        let mut ws = self
            .workers
            .lock()
            .map_err(|_| ApiError::internal("poisoned lock"))?;
        let w = ws
            .get_mut(&worker)
            .filter(|w| w.session == session)
            .ok_or_else(|| {
                ApiError::new(
                    codes::NOT_REGISTERED,
                    format!("{worker} has no session here; register first"),
                )
            })?;
        let (tx, rx) = mpsc::unbounded_channel();
        w.sender = Some(tx);
        drop(ws);
        self.wake_scheduler.notify_one();
        Ok(rx)
    }

    /// `verinfer_submitResult`: the receipt must be signed by the assigned worker and match the
    /// shard in every field the sequencer can check.
    pub async fn submit_result(
        &self,
        req: SubmitResultRequest,
    ) -> Result<SubmitResultResponse, ApiError> {
        let r = &req.receipt;
        let sid = shard_id(r.jobId, r.shardIndex);
        let st = self.store.clone();
        let shard = blocking(move || st.shard(sid)).await?.ok_or_else(|| {
            ApiError::new(
                codes::UNKNOWN_SHARD,
                format!("no shard {} of job {}", r.shardIndex, r.jobId),
            )
        })?;
        let h = r.hash();
        match &shard.state {
            ShardState::Done { receipt, .. } if receipt.hash() == h => {
                // A retry of an accepted result: same answer, nothing changes.
                return Ok(SubmitResultResponse {
                    receipt_hash: h,
                    job_completed: false,
                });
            }
            ShardState::Done { .. } => {
                return Err(ApiError::new(
                    codes::UNKNOWN_SHARD,
                    format!("shard {sid} already has a result"),
                ))
            }
            ShardState::Open => {
                return Err(ApiError::new(
                    codes::UNKNOWN_SHARD,
                    format!("shard {sid} is not assigned"),
                ))
            }
            ShardState::Assigned { worker, .. } if *worker != r.worker => {
                return Err(ApiError::new(
                    codes::UNKNOWN_SHARD,
                    format!("shard {sid} is not assigned to {}", r.worker),
                ))
            }
            ShardState::Assigned { .. } => {}
        }
        match recover(&r.eip712_signing_hash(&self.domain), &req.signature) {
            Some(a) if a == r.worker => {}
            _ => {
                return Err(ApiError::new(
                    codes::BAD_SIGNATURE,
                    format!("receipt is not signed by {}", r.worker),
                ))
            }
        }
        let mismatch = |what: String| Err(ApiError::new(codes::RECEIPT_MISMATCH, what));
        if r.skuId != shard.sku_id {
            return mismatch(format!(
                "receipt skuId {} is not the shard's {}",
                r.skuId, shard.sku_id
            ));
        }
        if r.inputRoot != shard.input_root {
            return mismatch(format!(
                "receipt inputRoot {} is not the shard's {}",
                r.inputRoot, shard.input_root
            ));
        }
        if req.outputs.len() != shard.prompt_count as usize {
            return mismatch(format!(
                "{} outputs for {} prompts",
                req.outputs.len(),
                shard.prompt_count
            ));
        }
        if let Some(i) = req
            .outputs
            .iter()
            .position(|o| o.len() as u64 > shard.max_new_tokens)
        {
            return mismatch(format!(
                "output {i} is longer than maxNewTokens {}",
                shard.max_new_tokens
            ));
        }
        let out_root = outputs_root(&req.outputs);
        if r.outputRoot != out_root {
            return mismatch(format!(
                "receipt outputRoot {} is not the outputs' root {out_root}",
                r.outputRoot
            ));
        }
        let generated: u64 = req.outputs.iter().map(|o| o.len() as u64).sum();
        let st = self.store.clone();
        let jid = r.jobId;
        let prompts = blocking(move || st.prompts(jid)).await?.unwrap_or_default();
        let bound: u64 = prompts
            .iter()
            .skip(shard.first_prompt as usize)
            .take(shard.prompt_count as usize)
            .map(Prompt::token_bound)
            .sum();
        if r.tokensProcessed < generated || r.tokensProcessed > bound + generated {
            return mismatch(format!(
                "tokensProcessed {} is outside [{generated}, {}]",
                r.tokensProcessed,
                bound + generated
            ));
        }
        let st = self.store.clone();
        let (receipt, signature, outputs) =
            (req.receipt.clone(), req.signature.clone(), req.outputs);
        let job = blocking(move || st.complete_shard(sid, receipt, signature, outputs))
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    codes::UNKNOWN_SHARD,
                    format!("shard {sid} was re-assigned meanwhile"),
                )
            })?;
        if let Ok(mut open) = self.open.lock() {
            open.remove(&sid);
        }
        self.metrics
            .shards_completed
            .fetch_add(1, Ordering::Relaxed);
        let done = job.shards_done == job.shards_total;
        if done {
            self.metrics.jobs_completed.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(shard = %sid, worker = %req.receipt.worker, "shard result accepted");
        Ok(SubmitResultResponse {
            receipt_hash: h,
            job_completed: done,
        })
    }

    /// Starts the assignment loop: on every tick or wake-up, gives each unassigned shard (and
    /// each shard whose worker missed its deadline) to a connected worker serving its SKU.
    pub fn spawn_scheduler(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let tick = Duration::from_millis(me.cfg.workers.tick_ms.max(10));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(tick) => {}
                    _ = me.wake_scheduler.notified() => {}
                }
                if let Err(e) = me.schedule_once().await {
                    tracing::error!(error = %e.message, "scheduler round failed");
                }
            }
        })
    }

    /// One scheduling round (public for tests).
    pub async fn schedule_once(&self) -> Result<usize, ApiError> {
        let now = now_ms();
        // Candidates: connected workers by SKU.
        let live: Vec<(Address, Vec<B256>, U256)> = {
            let ws = self
                .workers
                .lock()
                .map_err(|_| ApiError::internal("poisoned lock"))?;
            ws.iter()
                .filter(|(_, w)| w.sender.as_ref().is_some_and(|s| !s.is_closed()))
                .map(|(a, w)| (*a, w.skus.clone(), w.stake))
                .collect()
        };
        if live.is_empty() {
            return Ok(0);
        }
        let due: Vec<(B256, OpenShard)> = {
            let open = self
                .open
                .lock()
                .map_err(|_| ApiError::internal("poisoned lock"))?;
            open.iter()
                .filter(|(_, s)| s.assigned.is_none_or(|(_, d)| d < now))
                .map(|(k, s)| (*k, s.clone()))
                .collect()
        };
        let mut sent = 0;
        for (sid, os) in due {
            let st = self.store.clone();
            let Some(rec) = blocking(move || st.shard(sid)).await? else {
                continue;
            };
            let Some(seed) = self.seed_of(rec.job_id).await? else {
                // The seed block does not exist yet: assign on a later round.
                continue;
            };
            let previous = os.assigned.map(|(w, _)| w);
            let mut excluded = rec.missed_by.clone();
            excluded.extend(rec.requeued_from.iter().copied());
            excluded.extend(previous);
            let Some(worker) = pick_worker(&live, os.sku, seed, sid, rec.attempts, &excluded)
            else {
                continue;
            };
            let deadline = now + self.cfg.workers.shard_timeout_ms;
            let st = self.store.clone();
            let rec = blocking(move || st.assign(sid, worker, deadline, previous)).await?;
            if let Some(p) = previous {
                self.metrics
                    .shards_reassigned
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(shard = %sid, worker = %p, "worker missed its deadline; shard re-assigned");
            }
            if let Ok(mut open) = self.open.lock() {
                open.insert(
                    sid,
                    OpenShard {
                        sku: os.sku,
                        assigned: Some((worker, deadline)),
                    },
                );
            }
            let st = self.store.clone();
            let jid = rec.job_id;
            let prompts = blocking(move || st.prompts(jid)).await?.unwrap_or_default();
            let ps: Vec<Prompt> = prompts
                .into_iter()
                .skip(rec.first_prompt as usize)
                .take(rec.prompt_count as usize)
                .collect();
            let a = ShardAssignment {
                shard_id: sid,
                job_id: rec.job_id,
                shard_index: rec.index,
                sku_id: rec.sku_id,
                prompts: ps,
                input_root: rec.input_root,
                max_new_tokens: rec.max_new_tokens,
                deadline_ms: deadline,
                attempt: rec.attempts - 1,
            };
            let ws = self
                .workers
                .lock()
                .map_err(|_| ApiError::internal("poisoned lock"))?;
            if let Some(tx) = ws.get(&worker).and_then(|w| w.sender.as_ref()) {
                // A closed channel is caught by the deadline like any silent worker.
                let _ = tx.send(a);
            }
            self.metrics.shards_assigned.fetch_add(1, Ordering::Relaxed);
            sent += 1;
        }
        Ok(sent)
    }
}

impl Sequencer {
    /// The gas model with this deployment's budget.
    pub fn gas_model(&self) -> crate::gas::GasModel {
        crate::gas::GasModel {
            budget: self.cfg.batching.gas_budget,
        }
    }

    /// Puts a re-opened shard back in the scheduler's view.
    pub(crate) fn reopen_shard(&self, shard: B256, sku: B256) {
        if let Ok(mut open) = self.open.lock() {
            open.insert(
                shard,
                OpenShard {
                    sku,
                    assigned: None,
                },
            );
        }
        self.wake_scheduler.notify_one();
    }

    /// Removes closed shards from the scheduler's view.
    pub(crate) fn forget_shards(&self, shards: &[B256]) {
        if let Ok(mut open) = self.open.lock() {
            for s in shards {
                open.remove(s);
            }
        }
    }

    /// The assignment seed of a job: the hash of the first L1 block after the head read at
    /// acceptance (recorded in the job once known). `None` while that block does not exist.
    async fn seed_of(&self, job: B256) -> Result<Option<B256>, ApiError> {
        if let Some(s) = self.seeds.lock().ok().and_then(|m| m.get(&job).copied()) {
            return Ok(Some(s));
        }
        let st = self.store.clone();
        let Some(rec) = blocking(move || st.job(job)).await? else {
            return Ok(None);
        };
        let seed = match (rec.seed, rec.accept_head) {
            (Some(s), _) => s.hash,
            (None, Some(h)) => {
                let Some(hash) = self.l1.block_hash(h + 1).await? else {
                    return Ok(None);
                };
                let st = self.store.clone();
                let s = AssignmentSeed { block: h + 1, hash };
                blocking(move || st.set_seed(job, s)).await?;
                hash
            }
            // Jobs stored before seeds existed keep the old draw.
            (None, None) => B256::ZERO,
        };
        if let Ok(mut m) = self.seeds.lock() {
            // Bounded: the cache only saves L1 and store reads.
            if m.len() > 100_000 {
                m.clear();
            }
            m.insert(job, seed);
        }
        Ok(Some(seed))
    }

    /// `getResults` needs the buyer's `ResultsAccess` signature unless results are public.
    fn check_access(
        &self,
        job: &verinfer_primitives::job::JobRequest,
        id: B256,
        access: Option<&[u8]>,
    ) -> Result<(), ApiError> {
        if self.cfg.limits.public_results {
            return Ok(());
        }
        let ok = access
            .and_then(|sig| recover(&results_access_digest(&self.domain, id), sig))
            .is_some_and(|a| a == job.buyer);
        if ok {
            Ok(())
        } else {
            Err(ApiError::new(
                codes::UNAUTHORIZED,
                format!(
                    "results of {id} need the buyer's ResultsAccess signature (sign::sign_results_access)"
                ),
            ))
        }
    }

    /// `verinfer_cancelJob`: a buyer-signed cancel of a job not yet in a batch.
    pub async fn cancel_job(&self, req: CancelJobRequest) -> Result<CancelJobResponse, ApiError> {
        let id = req.job_id;
        let st = self.store.clone();
        let job = blocking(move || st.job(id))
            .await?
            .ok_or_else(|| ApiError::new(codes::UNKNOWN_JOB, format!("unknown job {id}")))?;
        match recover(&cancel_digest(&self.domain, id), &req.signature) {
            Some(a) if a == job.job.buyer => {}
            _ => {
                return Err(ApiError::new(
                    codes::BAD_SIGNATURE,
                    format!(
                        "cancel of {id} is not signed by its buyer {}",
                        job.job.buyer
                    ),
                ))
            }
        }
        let st = self.store.clone();
        let Some((job, closed)) =
            blocking(move || st.end_job(id, JobState::Cancelled, None)).await?
        else {
            return Err(ApiError::new(
                codes::NOT_CANCELLABLE,
                format!(
                    "job {id} is {:?}: only jobs not yet batched can be cancelled",
                    job.state
                ),
            ));
        };
        self.forget_shards(&closed);
        tracing::info!(job = %id, "job cancelled by its buyer");
        Ok(CancelJobResponse {
            job_id: id,
            released: job.job.maxPrice,
        })
    }
}

/// How settled a job's results are, from its state and its batch.
fn finality(state: JobState, batch: Option<&crate::store::BatchRecord>) -> Finality {
    match state {
        JobState::Dropped | JobState::Cancelled => Finality::Void,
        JobState::Finalized => Finality::Final,
        _ => match batch {
            Some(b) if b.l1_block.is_some() => match b.state {
                BatchState::Finalized => Finality::Final,
                BatchState::Pending => Finality::Provisional,
                _ => Finality::OnL1,
            },
            _ => Finality::Provisional,
        },
    }
}

fn rand_bytes() -> [u8; 32] {
    rand::random()
}

/// Stake-weighted deterministic pick: the draw is
/// `keccak256(seed ‖ shardId ‖ attempt) mod totalStake` over the candidates sorted by address,
/// where `seed` is the hash of an L1 block produced after the job was accepted (so the buyer,
/// who fixed the job id by signing, cannot grind nonces to steer the draw), and any observer
/// can recompute who should have got a shard. Workers in `excluded` are skipped unless nobody
/// else serves the SKU.
pub fn pick_worker(
    live: &[(Address, Vec<B256>, U256)],
    sku: B256,
    seed: B256,
    shard: B256,
    attempt: u32,
    excluded: &[Address],
) -> Option<Address> {
    let mut serving: Vec<(Address, U256)> = live
        .iter()
        .filter(|(_, skus, stake)| skus.contains(&sku) && *stake > U256::ZERO)
        .map(|(a, _, s)| (*a, *s))
        .collect();
    if serving.is_empty() {
        return None;
    }
    let preferred: Vec<(Address, U256)> = serving
        .iter()
        .filter(|(a, _)| !excluded.contains(a))
        .cloned()
        .collect();
    if !preferred.is_empty() {
        serving = preferred;
    }
    serving.sort_by_key(|(a, _)| *a);
    let total = serving
        .iter()
        .fold(U256::ZERO, |acc, (_, s)| acc.saturating_add(*s));
    let draw_seed = U256::from_be_bytes(
        keccak256([seed.as_slice(), shard.as_slice(), &attempt.to_be_bytes()].concat()).0,
    );
    let mut draw = draw_seed % total;
    for (a, s) in &serving {
        if draw < *s {
            return Some(*a);
        }
        draw -= *s;
    }
    serving.last().map(|(a, _)| *a)
}

fn job_info(rec: crate::store::JobRecord) -> JobInfo {
    JobInfo {
        job_id: rec.id,
        job: rec.job,
        state: rec.state,
        shards_total: rec.shards_total,
        shards_done: rec.shards_done,
        batch: rec.batch,
        charged: rec.charged,
        accepted_at_ms: rec.accepted_at_ms,
        accept_head: rec.accept_head,
        assignment_seed: rec.seed,
        drop_reason: rec.drop_reason,
        events: rec.events,
    }
}

/// The group-commit writer: takes every job waiting in the queue (up to `max`), stores them
/// in one transaction, then answers each.
async fn intake_writer(store: Arc<Store>, mut rx: mpsc::Receiver<IntakeItem>, max: usize) {
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        while items.len() < max {
            match rx.try_recv() {
                Ok(i) => items.push(i),
                Err(_) => break,
            }
        }
        let (jobs, replies): (Vec<NewJob>, Vec<_>) =
            items.into_iter().map(|i| (i.job, i.reply)).unzip();
        let st = store.clone();
        let res = tokio::task::spawn_blocking(move || st.insert_jobs(&jobs)).await;
        match res {
            Ok(Ok(results)) => {
                for (r, reply) in results.into_iter().zip(replies) {
                    let _ = reply.send(Ok(r));
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "group commit failed; jobs not acknowledged");
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_is_deterministic_stake_weighted_and_avoids_missers() {
        let sku = B256::repeat_byte(1);
        let a = Address::repeat_byte(1);
        let b = Address::repeat_byte(2);
        let c = Address::repeat_byte(3);
        let live = vec![
            (a, vec![sku], U256::from(1u64)),
            (b, vec![sku], U256::from(9u64)),
            (c, vec![B256::repeat_byte(2)], U256::from(100u64)),
        ];
        let mut counts = HashMap::new();
        for i in 0..2000u32 {
            let s = keccak256(i.to_be_bytes());
            let w = pick_worker(&live, sku, B256::ZERO, s, 0, &[]).unwrap();
            assert_eq!(pick_worker(&live, sku, B256::ZERO, s, 0, &[]), Some(w));
            *counts.entry(w).or_insert(0u32) += 1;
        }
        assert!(!counts.contains_key(&c), "c does not serve the SKU");
        let (na, nb) = (counts[&a], counts[&b]);
        assert!(nb > 6 * na, "stake 9:1 should dominate, got {nb}:{na}");
        // Excluding b leaves a; excluding everyone falls back to the serving set.
        assert_eq!(
            pick_worker(&live, sku, B256::ZERO, B256::ZERO, 0, &[b]),
            Some(a)
        );
        assert!(pick_worker(&live, sku, B256::ZERO, B256::ZERO, 0, &[a, b]).is_some());
        assert_eq!(
            pick_worker(&live, B256::repeat_byte(9), B256::ZERO, B256::ZERO, 0, &[]),
            None
        );
    }
}
