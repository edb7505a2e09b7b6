//! EIP-712 digests the contracts check: a buyer signs its job request (the digest is the job's
//! id), a worker signs its receipt. Domain: name "Verinfer", version "1", the chain id and the
//! BatchInbox address (`verinfer_primitives::job::domain`). The structs are the shared ones of
//! `verinfer-primitives`, whose type hashes equal the contracts' `JOB_TYPEHASH` and
//! `RECEIPT_TYPEHASH` (checked against the deployed contract in `tests/anvil.rs`).

use alloy_primitives::{Address, B256};
use alloy_sol_types::SolStruct;
pub use verinfer_primitives::job::{domain, JobRequest};
use verinfer_primitives::Receipt;

/// The job id: the EIP-712 digest of the request, which the buyer signs (`sign_hash`).
pub fn job_digest(request: &JobRequest, chain_id: u64, inbox: Address) -> B256 {
    request.id(&domain(chain_id, inbox))
}

/// The digest a worker signs for its receipt.
pub fn receipt_digest(receipt: &Receipt, chain_id: u64, inbox: Address) -> B256 {
    receipt.eip712_signing_hash(&domain(chain_id, inbox))
}

impl From<JobRequest> for crate::bindings::BatchInbox::JobRequest {
    fn from(q: JobRequest) -> Self {
        Self {
            buyer: q.buyer,
            skuId: q.skuId,
            inputsHash: q.inputsHash,
            maxNewTokens: q.maxNewTokens,
            maxPrice: q.maxPrice,
            nonce: q.nonce,
        }
    }
}
