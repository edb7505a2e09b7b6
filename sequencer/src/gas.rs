//! Gas model of `BatchInbox.postBatch` and `finalizeBatch`, used to size batches by a gas
//! budget instead of fixed counts (EIP-7825 caps a transaction at 2^24 gas; a batch that can
//! never land would halt posting).
//!
//! The constants are upper bounds fitted to postings and finalizations measured on anvil with
//! the real contracts (`sequencer/tests/gas.rs::gas_model_bounds_measured_post_and_finalize_gas`
//! prints every shape and asserts measured ≤ estimate ≤ 2 × measured for postings and
//! measured ≤ estimate for finalizations), with about 10 % headroom, for the worst case: every
//! receipt from a different worker, every job from a different buyer. Last fit (same test):
//! posting 1 job/1 receipt 300,071 gas, each further receipt ≈ 28.4 k, each further job with
//! one receipt ≈ 137 k, 20 KB of inputs ≈ 27.7 gas a byte; finalizing ≈ 52 k a receipt of a
//! worker not yet seen in the batch, ≈ 190 k for the first finalization on a fresh chain.

/// EIP-7825: most gas one transaction may use.
pub const EIP7825_TX_GAS_CAP: u64 = 1 << 24;

/// Fixed part of a posting: the transaction, the batch header, the accumulator, the event.
pub const POST_BASE: u64 = 170_000;
/// Per new job: signature recovery, inputs hash, three storage slots, SKU reads, event,
/// and its fixed calldata (request, signature, offsets).
pub const POST_PER_JOB: u64 = 120_000;
/// Per byte of a job's inputs (calldata, EIP-7623's floor, copy and hashing).
pub const POST_PER_INPUT_BYTE: u64 = 30;
/// Per receipt: signature recovery, the worker check, the charge, the leaf, the event, and
/// its calldata.
pub const POST_PER_RECEIPT: u64 = 32_000;
/// Fixed part of a finalization.
pub const FINALIZE_BASE: u64 = 200_000;
/// Per receipt of a finalization (leaf re-hash, the audit protocol's settlement, credits to a
/// worker and its verifier seen the first time): 112 audited, passed receipts from 112 workers
/// finalize in 7.47 M gas (`AuditedBigBatchTest` in the forge suite), 66.7 k each.
pub const FINALIZE_PER_RECEIPT: u64 = 75_000;

/// The batch gas budget and the estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasModel {
    /// Most estimated gas a batch's posting (and its finalization) may need.
    pub budget: u64,
}

/// Memory expansion cost of `words` words of EVM memory (3 per word + words² / 512).
fn memory(words: u64) -> u64 {
    words
        .saturating_mul(3)
        .saturating_add(words.saturating_mul(words) / 512)
}

fn words(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(32)
}

impl GasModel {
    /// Estimated gas of posting jobs given as `(inputs length in bytes, receipts)`.
    pub fn post_gas(&self, jobs: &[(usize, u32)]) -> u64 {
        let mut gas = POST_BASE;
        // Solidity never frees memory inside a call: every job's inputs copy (for its hash) and
        // every receipt's encoding stay, so the expansion term is over the whole batch.
        let mut mem_words = 0u64;
        for (len, receipts) in jobs {
            let padded = words(*len) * 32;
            gas = gas
                .saturating_add(POST_PER_JOB)
                .saturating_add(POST_PER_INPUT_BYTE.saturating_mul(padded))
                .saturating_add(POST_PER_RECEIPT.saturating_mul(u64::from(*receipts)));
            mem_words = mem_words
                .saturating_add(words(*len) + 2)
                .saturating_add(12 * u64::from(*receipts));
        }
        gas.saturating_add(memory(mem_words))
    }

    /// Estimated gas of finalizing a batch of `receipts` receipts.
    pub fn finalize_gas(&self, receipts: u64) -> u64 {
        FINALIZE_BASE
            .saturating_add(FINALIZE_PER_RECEIPT.saturating_mul(receipts))
            .saturating_add(memory(receipts.saturating_mul(14)))
    }

    /// Whether a batch of these jobs stays within the budget, posting and finalizing.
    pub fn fits(&self, jobs: &[(usize, u32)]) -> bool {
        let receipts: u64 = jobs.iter().map(|(_, r)| u64::from(*r)).sum();
        self.post_gas(jobs) <= self.budget && self.finalize_gas(receipts) <= self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_grow_with_every_dimension_and_budget_binds() {
        let m = GasModel { budget: 12_000_000 };
        let one = m.post_gas(&[(64, 1)]);
        assert!(m.post_gas(&[(64, 2)]) > one);
        assert!(m.post_gas(&[(6400, 1)]) > one);
        assert!(m.post_gas(&[(64, 1), (64, 1)]) > m.post_gas(&[(128, 2)]));
        assert!(m.fits(&[(64, 1)]));
        // 512 receipts from 512 workers cannot be finalized within 12 M.
        assert!(!m.fits(&[(64, 512)]));
        // A megabyte of inputs cannot be posted in one transaction.
        assert!(!m.fits(&[(1 << 20, 1)]));
    }
}
