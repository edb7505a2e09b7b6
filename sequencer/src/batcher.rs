//! Batching, posting to the L1 batch inbox, and following L1.
//!
//! - The batcher cuts completed jobs into a batch in one store transaction (each job lands in
//!   exactly one batch and is charged there once), THEN posts it. A crash between the two
//!   leaves a `Pending` batch that the next round posts.
//! - Posting is idempotent by batch index: before sending, the poster asks L1 whether batch
//!   `index` is already there (a crash after sending but before recording); if its receipts
//!   root matches, the inclusion is recorded instead of sending again. The inbox itself takes
//!   only the next index, so a duplicate send reverts rather than charging twice.
//! - The follower re-reads the block hash of every posted batch's block each poll. A changed
//!   hash means a reorg: the batch is looked up again and, if the chain no longer has it, goes
//!   back to `Pending` (reservations are re-taken) and is posted again. A batch is `Confirmed`
//!   once `confirmations` blocks sit on top of it; then the inbox's settlement state decides
//!   `Finalized` or `Disputed`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Bytes;
use verinfer_primitives::job::encode_inputs;
use verinfer_primitives::Receipt;
use verinfer_rpc::types::BatchState;

use crate::l1::{BatchPost, L1BatchStatus, L1Error, PostedJob, PostedReceipt};
use crate::node::Sequencer;
use crate::store::{BatchRecord, ShardState, StoreError};
use crate::Error;

/// Cuts every batch that is ready now; returns how many.
pub async fn cut_batches(seq: &Sequencer) -> Result<usize, Error> {
    let mut n = 0;
    loop {
        let st = seq.store().clone();
        let max = seq.config().batching.max_jobs;
        let max_r = seq.config().batching.max_receipts;
        let b = tokio::task::spawn_blocking(move || st.create_batch(max, max_r))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let Some(b) = b else { break };
        seq.metrics()
            .batches_created
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            batch = b.index,
            receipts = b.receipt_hashes.len(),
            jobs = b.charges.len(),
            "batch cut"
        );
        n += 1;
    }
    Ok(n)
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
                let inc = l1.post_batch(&post).await?;
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
                        tracing::error!(error = %e, "cutting batches failed");
                    }
                    if let Err(e) = post_pending(&seq).await {
                        tracing::warn!(error = %e, "posting batches failed; will retry");
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
