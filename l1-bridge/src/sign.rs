//! EIP-712 digests the contracts check: a buyer signs its job request (the digest is the job's
//! id), a worker signs its receipt. Domain: name "Verinfer", version "1", the chain id and the
//! BatchInbox address.

use alloy_primitives::{Address, B256};
use alloy_sol_types::{eip712_domain, sol, Eip712Domain, SolStruct};
use verinfer_primitives::Receipt;

sol! {
    /// A buyer's job as signed; the same struct as `JobRequest` in `contracts/src/Types.sol`.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct JobRequest {
        address buyer;
        bytes32 skuId;
        bytes32 inputsHash;
        uint64 maxNewTokens;
        uint256 maxPrice;
        uint64 nonce;
    }
}

/// The EIP-712 domain of the BatchInbox at `inbox` on chain `chain_id`.
pub fn domain(chain_id: u64, inbox: Address) -> Eip712Domain {
    eip712_domain! {
        name: "Verinfer",
        version: "1",
        chain_id: chain_id,
        verifying_contract: inbox,
    }
}

/// The job id: the EIP-712 digest of the request, which the buyer signs (`sign_hash`).
pub fn job_digest(request: &JobRequest, chain_id: u64, inbox: Address) -> B256 {
    request.eip712_signing_hash(&domain(chain_id, inbox))
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
