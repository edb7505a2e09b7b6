//! Batching, posting to the L1 batch inbox, and following L1.
//!
//! - Before cutting, the jobs the batch would take are re-checked against L1 ([`precheck`]):
//!   what can no longer post is dropped (typed reason) or its shard re-queued, so one bad item
//!   cannot make every posting revert.
//! - The batcher cuts completed jobs into a batch in one store transaction (each job lands in
//!   exactly one batch and is charged there once), THEN posts it; one batch at a time, sized
//!   by the gas model (`crate::gas`). A crash between the two leaves a `Pending` batch that the
//!   next round posts. A posting that reverts is bisected by simulation, the batch taken
//!   apart and the offending job dropped (`handle_revert`).
//! - Posting is idempotent by batch index: before sending, the poster asks L1 whether batch
//!   `index` is already there (a crash after sending but before recording); if its receipts
//!   root matches, the inclusion is recorded instead of sending again. The inbox itself takes
//!   only the next index, so a duplicate send reverts rather than charging twice.
//! - The follower re-reads the block hash of every posted batch's block each poll. A changed
//!   hash means a reorg: the batch is looked up again and, if the chain no longer has it, goes
//!   back to `Pending` (reservations are re-taken) and is posted again. A batch is `Confirmed`
//!   once `confirmations` blocks sit on top of it; then the inbox's settlement state decides
//!   `Finalized` or `Disputed`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, Bytes, B256, U256};
use verinfer_primitives::job::encode_inputs;
use verinfer_primitives::Receipt;
use verinfer_rpc::types::{BatchState, DropReason, JobState, RequeueReason};

use crate::l1::{BatchPost, L1BatchStatus, L1Error, PostedJob, PostedReceipt};
use crate::node::Sequencer;
use crate::store::{BatchRecord, ShardState, StoreError};
use crate::Error;

/// Re-checks the jobs that the next batch would take against L1 state *now*, because L1 may
/// have changed since they were accepted and one item that can no longer post would make the
/// whole `postBatch` revert:
/// - SKU no longer active → job dropped (`skuInactive`);
/// - SKU price changed so that the charge exceeds `maxPrice` → dropped (`priceAboveMax`);
///   otherwise the job is posted at the new price (the inbox fixes the price at first post);
/// - a receipt's worker no longer bonded or serving the SKU (`isWorkerFor`) → that shard is
///   re-queued to another worker (`shardRequeued` event), the job waits for it;
/// - the job alone over the gas budget → dropped (`tooLargeForL1`);
/// - the buyer's escrow (after withdrawals) no longer covering its charges, oldest jobs
///   first → the jobs that do not fit are dropped (`escrowTooLow`).
///
/// Returns the current prices of the SKUs seen (for the charges of the batch) and the jobs
/// that passed.
pub async fn precheck(seq: &Sequencer) -> Result<(HashMap<B256, U256>, HashSet<B256>), Error> {
    let st = seq.store().clone();
    let limit = seq.config().batching.max_jobs;
    let jobs = tokio::task::spawn_blocking(move || st.ready_jobs(limit))
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    let l1 = seq.l1();
    let gas = seq.gas_model();
    let mut prices: HashMap<B256, Option<U256>> = HashMap::new();
    let mut escrow: HashMap<Address, U256> = HashMap::new();
    let mut serves: HashMap<(Address, B256), bool> = HashMap::new();
    let mut passed = HashSet::new();
    for job in jobs {
        let sku = job.job.skuId;
        let price = match prices.get(&sku) {
            Some(p) => *p,
            None => {
                let p = l1.sku_price(sku).await?;
                prices.insert(sku, p);
                p
            }
        };
        let Some(price) = price else {
            drop_job(seq, job.id, DropReason::SkuInactive).await?;
            continue;
        };
        let st = seq.store().clone();
        let j2 = job.clone();
        let shards = tokio::task::spawn_blocking(move || st.shards_of(&j2))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let mut tokens = 0u64;
        let mut requeued = false;
        for s in &shards {
            let ShardState::Done { receipt, .. } = &s.state else {
                continue;
            };
            tokens = tokens.saturating_add(receipt.tokensProcessed);
            let key = (receipt.worker, sku);
            let ok = match serves.get(&key) {
                Some(v) => *v,
                None => {
                    let v = l1.serves(receipt.worker, sku).await?;
                    serves.insert(key, v);
                    v
                }
            };
            if !ok {
                let st = seq.store().clone();
                let sid = s.shard_id;
                let r = tokio::task::spawn_blocking(move || {
                    st.requeue_shard(sid, RequeueReason::WorkerNotServing)
                })
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
                if r.is_some() {
                    tracing::warn!(job = %job.id, shard = s.index, worker = %receipt.worker, "worker no longer serves the SKU on L1; shard re-queued");
                    seq.reopen_shard(sid, sku);
                    requeued = true;
                }
            }
        }
        if requeued {
            continue;
        }
        let charge = price.saturating_mul(U256::from(tokens));
        if charge > job.job.maxPrice {
            drop_job(
                seq,
                job.id,
                DropReason::PriceAboveMax {
                    price_per_token: price,
                    charge,
                    max_price: job.job.maxPrice,
                },
            )
            .await?;
            continue;
        }
        let st = seq.store().clone();
        let id = job.id;
        let inputs_len = tokio::task::spawn_blocking(move || st.prompts(id))
            .await
            .map_err(|e| Error::Task(e.to_string()))??
            .map(|p| encode_inputs(&p).len())
            .unwrap_or(0);
        let sizes = [(inputs_len, job.shards_total)];
        if !gas.fits(&sizes) {
            let g = gas.post_gas(&sizes);
            drop_job(
                seq,
                job.id,
                DropReason::TooLargeForL1 {
                    gas: g,
                    budget: gas.budget,
                },
            )
            .await?;
            continue;
        }
        let buyer = job.job.buyer;
        let left = match escrow.get(&buyer) {
            Some(b) => *b,
            None => l1.escrow_balance(buyer).await?,
        };
        if charge > left {
            drop_job(
                seq,
                job.id,
                DropReason::EscrowTooLow {
                    balance: left,
                    needed: charge,
                },
            )
            .await?;
            escrow.insert(buyer, left);
            continue;
        }
        escrow.insert(buyer, left - charge);
        passed.insert(job.id);
    }
    let prices = prices
        .into_iter()
        .filter_map(|(k, v)| v.map(|p| (k, p)))
        .collect();
    Ok((prices, passed))
}

/// Drops a job that cannot post (typed reason in its record; reservation released).
async fn drop_job(seq: &Sequencer, id: B256, reason: DropReason) -> Result<(), Error> {
    tracing::warn!(job = %id, ?reason, "job dropped: it can no longer be posted to L1");
    let st = seq.store().clone();
    let ended =
        tokio::task::spawn_blocking(move || st.end_job(id, JobState::Dropped, Some(reason)))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
    if let Some((_, closed)) = ended {
        seq.forget_shards(&closed);
    }
    Ok(())
}

/// Re-checks the ready jobs against L1 and cuts the next batch, if no batch is waiting to be
/// posted (batches are cut one at a time, right before posting, so a batch that must be taken
/// apart is always the last one). Returns whether a batch was cut.
pub async fn cut_batch(seq: &Sequencer) -> Result<bool, Error> {
    let st = seq.store().clone();
    let waiting = tokio::task::spawn_blocking(move || st.unsettled_batches())
        .await
        .map_err(|e| Error::Task(e.to_string()))??
        .iter()
        .any(|b| b.state == BatchState::Pending);
    if waiting {
        return Ok(false);
    }
    let (prices, checked) = precheck(seq).await?;
    let st = seq.store().clone();
    let max = seq.config().batching.max_jobs;
    let max_r = seq.config().batching.max_receipts;
    let gas = seq.gas_model();
    let b =
        tokio::task::spawn_blocking(move || st.create_batch(max, max_r, &gas, &prices, &checked))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
    let Some(b) = b else { return Ok(false) };
    seq.metrics()
        .batches_created
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        batch = b.index,
        receipts = b.receipt_hashes.len(),
        jobs = b.charges.len(),
        "batch cut"
    );
    Ok(true)
}

/// Cuts and posts batches until nothing is ready or a posting fails; returns how many were
/// cut.
pub async fn cut_batches(seq: &Sequencer) -> Result<usize, Error> {
    let mut n = 0;
    post_pending(seq).await?;
    while cut_batch(seq).await? {
        n += 1;
        if post_pending(seq).await? == 0 {
            break;
        }
    }
    Ok(n)
}

/// The posting restricted to its first `k` jobs and their receipts (the root is not needed
/// for a simulation: the inbox computes it).
fn prefix(seq: &Sequencer, post: &BatchPost, k: usize) -> BatchPost {
    let ids: Vec<B256> = post.jobs[..k]
        .iter()
        .map(|j| j.request.id(seq.eip712_domain()))
        .collect();
    BatchPost {
        index: post.index,
        receipts_root: B256::ZERO,
        jobs: post.jobs[..k].to_vec(),
        receipts: post
            .receipts
            .iter()
            .filter(|r| ids.contains(&r.receipt.jobId))
            .cloned()
            .collect(),
    }
}

/// After `postBatch` reverted: finds the first job whose addition makes the posting revert
/// (binary search over prefixes of the batch, each an `eth_call`: O(log n) calls), takes the
/// batch apart (its jobs go back to the queue, its index is reused), re-checks the queue
/// against L1 (which drops or re-queues what a known cause explains), and drops the
/// offender with the revert reason if it is still queued. The rest is posted by the next
/// round: one bad item no longer halts posting.
async fn handle_revert(
    seq: &Sequencer,
    b: &BatchRecord,
    post: &BatchPost,
    error: &L1Error,
) -> Result<(), Error> {
    let l1 = seq.l1();
    if l1.find_batch(b.index).await?.is_some() {
        // Someone's posting (ours, before a restart) is there: the normal path records it.
        return Ok(());
    }
    let n = post.jobs.len();
    let full = l1.simulate_post(&prefix(seq, post, n)).await;
    let reason = match full {
        Ok(()) => {
            tracing::warn!(batch = b.index, %error, "postBatch reverted but now simulates fine; retrying");
            return Ok(());
        }
        Err(e @ L1Error::Reverted(_)) => e,
        Err(e) => return Err(e.into()),
    };
    // Invariant: prefix(lo) posts (lo = 0 is empty, vacuously), prefix(hi) reverts.
    let (mut lo, mut hi, mut why) = (0usize, n, reason);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        match l1.simulate_post(&prefix(seq, post, mid)).await {
            Ok(()) => lo = mid,
            Err(e @ L1Error::Reverted(_)) => {
                hi = mid;
                why = e;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let offender = post.jobs[hi - 1].request.id(seq.eip712_domain());
    tracing::warn!(batch = b.index, job = %offender, error = %why, "postBatch reverts because of this job; batch taken apart");
    let st = seq.store().clone();
    let index = b.index;
    tokio::task::spawn_blocking(move || st.dissolve_batches_from(index))
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    precheck(seq).await?;
    let st = seq.store().clone();
    let still = tokio::task::spawn_blocking(move || st.job(offender))
        .await
        .map_err(|e| Error::Task(e.to_string()))??
        .is_some_and(|j| j.state == JobState::Completed);
    if still {
        drop_job(
            seq,
            offender,
            DropReason::RejectedByL1 {
                error: why.to_string(),
            },
        )
        .await?;
    }
    Ok(())
}

/// The batch as the inbox takes it: every job (request, signature, inputs) and every receipt
/// with its signature, in the leaf order the store fixed when it cut the batch.
fn build_post(seq: &Sequencer, b: &BatchRecord) -> Result<BatchPost, StoreError> {
    let mut jobs = Vec::with_capacity(b.charges.len());
    let mut receipts = Vec::with_capacity(b.receipt_hashes.len());
    for c in &b.charges {
        let Some(job) = seq.store().job(c.job_id)? else {
            return Err(StoreError::Inconsistent(format!(
                "batched job {} missing",
                c.job_id
            )));
        };
        let prompts = seq.store().prompts(c.job_id)?.unwrap_or_default();
        for s in seq.store().shards_of(&job)? {
            if let ShardState::Done {
                receipt, signature, ..
            } = s.state
            {
                receipts.push(PostedReceipt { receipt, signature });
            }
        }
        jobs.push(PostedJob {
            request: job.job,
            signature: job.signature,
            inputs: Bytes::from(encode_inputs(&prompts)),
        });
    }
    Ok(BatchPost {
        index: b.index,
        receipts_root: b.receipts_root,
        jobs,
        receipts,
    })
}

/// All receipts of a batch in leaf order (for `finalizeBatch`).
fn batch_receipts(seq: &Sequencer, b: &BatchRecord) -> Result<Vec<Receipt>, StoreError> {
    Ok(build_post(seq, b)?
        .receipts
        .into_iter()
        .map(|r| r.receipt)
        .collect())
}

async fn save(seq: &Sequencer, b: BatchRecord) -> Result<(), Error> {
    let st = seq.store().clone();
    tokio::task::spawn_blocking(move || st.update_batch(b))
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    Ok(())
}

/// Posts every `Pending` batch in index order; stops at the first failure (later batches need
/// the earlier ones on L1). Returns how many were recorded as posted.
pub async fn post_pending(seq: &Sequencer) -> Result<usize, Error> {
    let st = seq.store().clone();
    let batches = tokio::task::spawn_blocking(move || st.unsettled_batches())
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    let mut n = 0;
    for mut b in batches
        .into_iter()
        .filter(|b| b.state == BatchState::Pending)
    {
        let l1 = seq.l1();
        let inclusion = match l1.find_batch(b.index).await? {
            Some(on) if on.receipts_root == b.receipts_root => {
                tracing::info!(
                    batch = b.index,
                    "batch already on L1 (posted before a restart); recording it"
                );
                on.inclusion
            }
            Some(on) => {
                return Err(Error::L1(L1Error::Unexpected(format!(
                    "L1 holds batch {} with root {}, ours is {}",
                    b.index, on.receipts_root, b.receipts_root
                ))))
            }
            None => {
                // Small synchronous reads; the batch is at most `batching.max_jobs` jobs.
                let post = build_post(seq, &b)?;
                let inc = match l1.post_batch(&post).await {
                    Ok(inc) => inc,
                    Err(e @ L1Error::Reverted(_)) => {
                        handle_revert(seq, &b, &post, &e).await?;
                        return Ok(n);
                    }
                    Err(e) => return Err(e.into()),
                };
                seq.metrics()
                    .l1_gas_spent
                    .fetch_add(inc.gas_used, Ordering::Relaxed);
                tracing::info!(batch = b.index, tx = %inc.tx_hash, block = inc.block_number, gas = inc.gas_used, "batch posted");
                inc
            }
        };
        b.state = BatchState::Posted;
        b.l1_tx = Some(inclusion.tx_hash);
        b.l1_block = Some(inclusion.block_number);
        b.l1_block_hash = Some(inclusion.block_hash);
        if inclusion.gas_used > 0 {
            b.gas_used = Some(inclusion.gas_used);
        }
        save(seq, b).await?;
        seq.metrics().batches_posted.fetch_add(1, Ordering::Relaxed);
        n += 1;
    }
    Ok(n)
}

/// One follower round: reorg checks, confirmations, settlement.
pub async fn follow_once(seq: &Sequencer) -> Result<(), Error> {
    let l1 = seq.l1();
    let head = l1.head().await?;
    seq.metrics().l1_head.store(head, Ordering::Relaxed);
    let st = seq.store().clone();
    let batches = tokio::task::spawn_blocking(move || st.unsettled_batches())
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    let depth = seq.config().l1.confirmations.max(1);
    for mut b in batches {
        let (Some(block), Some(hash)) = (b.l1_block, b.l1_block_hash) else {
            continue;
        };
        let before = b.clone();
        if l1.block_hash(block).await? != Some(hash) {
            match l1.find_batch(b.index).await? {
                Some(on) if on.receipts_root == b.receipts_root => {
                    tracing::warn!(
                        batch = b.index,
                        old_block = block,
                        new_block = on.inclusion.block_number,
                        "reorg moved batch"
                    );
                    b.l1_block = Some(on.inclusion.block_number);
                    b.l1_block_hash = Some(on.inclusion.block_hash);
                    b.l1_tx = Some(on.inclusion.tx_hash);
                    b.state = BatchState::Posted;
                }
                _ => {
                    tracing::warn!(
                        batch = b.index,
                        block,
                        "reorg dropped batch; it will be posted again"
                    );
                    seq.metrics().l1_reorgs.fetch_add(1, Ordering::Relaxed);
                    b.l1_block = None;
                    b.l1_block_hash = None;
                    b.l1_tx = None;
                    b.state = BatchState::Pending;
                }
            }
        }
        if let Some(block) = b.l1_block {
            if b.state == BatchState::Posted && head + 1 >= block + depth {
                b.state = BatchState::Confirmed;
            }
            if matches!(b.state, BatchState::Confirmed | BatchState::Disputed) {
                match l1.batch_status(b.index).await? {
                    L1BatchStatus::Open { window_over } => {
                        // A dispute that closed leaves the batch open again.
                        if b.state == BatchState::Disputed {
                            b.state = BatchState::Confirmed;
                        }
                        if window_over {
                            let receipts = batch_receipts(seq, &b)?;
                            let inc = l1.finalize_batch(b.index, &receipts).await?;
                            seq.metrics()
                                .l1_gas_spent
                                .fetch_add(inc.gas_used, Ordering::Relaxed);
                            tracing::info!(batch = b.index, tx = %inc.tx_hash, "batch finalized");
                            b.state = BatchState::Finalized;
                            seq.metrics()
                                .batches_finalized
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    L1BatchStatus::Disputed => b.state = BatchState::Disputed,
                    L1BatchStatus::Finalized => {
                        b.state = BatchState::Finalized;
                        seq.metrics()
                            .batches_finalized
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        if b != before {
            tracing::info!(batch = b.index, state = ?b.state, "batch state changed");
            save(seq, b).await?;
        }
    }
    Ok(())
}

/// Runs cut + post every `batching.interval_ms` and the follower every
/// `l1.poll_interval_ms`, logging (not dying on) L1 failures.
pub fn spawn(seq: Arc<Sequencer>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_millis(seq.config().batching.interval_ms.max(10));
        let poll = Duration::from_millis(seq.config().l1.poll_interval_ms.max(10));
        let mut cut_t = tokio::time::interval(every);
        let mut follow_t = tokio::time::interval(poll);
        loop {
            tokio::select! {
                _ = cut_t.tick() => {
                    if let Err(e) = cut_batches(&seq).await {
                        tracing::warn!(error = %e, "cutting or posting batches failed; will retry");
                    }
                }
                _ = follow_t.tick() => {
                    if let Err(e) = follow_once(&seq).await {
                        tracing::warn!(error = %e, "following L1 failed; will retry");
                    }
                }
            }
        }
    })
}
