//! Building and signing what the API carries (EIP-712, see `primitives::job`).

use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use alloy_primitives::{Address, Bytes, Signature, B256, U256};
use alloy_sol_types::{Eip712Domain, SolStruct};
use verinfer_primitives::job::{inputs_hash, JobRequest, Prompt, WorkerRegistration};
use verinfer_primitives::Receipt;

use crate::types::{RegisterWorkerRequest, SubmitJobRequest, SubmitResultRequest};

/// Signing failed (the local signer reports it).
#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(#[from] alloy::signers::Error);

/// A job before signing: what the buyer chooses.
#[derive(Debug, Clone)]
pub struct JobDraft {
    /// SKU to run.
    pub sku_id: B256,
    /// Prompts.
    pub prompts: Vec<Prompt>,
    /// Decode length per prompt.
    pub max_new_tokens: u64,
    /// Price cap (wei).
    pub max_price: U256,
    /// Unused nonce of the buyer.
    pub nonce: u64,
}

fn sign_digest(signer: &PrivateKeySigner, digest: &B256) -> Result<Bytes, SignError> {
    let sig: Signature = signer.sign_hash_sync(digest)?;
    Ok(Bytes::from(sig.as_bytes().to_vec()))
}

/// Builds the EIP-712 job (buyer = signer, inputsHash computed) and signs it.
pub fn sign_job(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    draft: JobDraft,
) -> Result<SubmitJobRequest, SignError> {
    let job = JobRequest {
        buyer: signer.address(),
        skuId: draft.sku_id,
        inputsHash: inputs_hash(&draft.prompts),
        maxNewTokens: draft.max_new_tokens,
        maxPrice: draft.max_price,
        nonce: draft.nonce,
    };
    let signature = sign_digest(signer, &job.id(domain))?;
    Ok(SubmitJobRequest {
        job,
        prompts: draft.prompts,
        signature,
    })
}

/// Signs a worker registration for `skus`, issued at `issued_at` (unix seconds).
pub fn sign_registration(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    skus: Vec<B256>,
    issued_at: u64,
) -> Result<RegisterWorkerRequest, SignError> {
    let registration = WorkerRegistration {
        worker: signer.address(),
        skus,
        issuedAt: issued_at,
    };
    let signature = sign_digest(signer, &registration.signing_hash(domain))?;
    Ok(RegisterWorkerRequest {
        registration,
        signature,
    })
}

/// Signs a shard's receipt (EIP-712 over the `Receipt` struct) and packs the result.
pub fn sign_result(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    receipt: Receipt,
    outputs: Vec<Vec<u32>>,
) -> Result<SubmitResultRequest, SignError> {
    let signature = sign_digest(signer, &receipt.eip712_signing_hash(domain))?;
    Ok(SubmitResultRequest {
        outputs,
        receipt,
        signature,
    })
}

/// The address that signed `digest`, if `signature` is a well-formed 65-byte signature.
pub fn recover(digest: &B256, signature: &[u8]) -> Option<Address> {
    let sig = Signature::try_from(signature).ok()?;
    sig.recover_address_from_prehash(digest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use verinfer_primitives::job::domain;

    #[test]
    fn signed_job_recovers_to_buyer_and_tampering_breaks_it() {
        let signer = PrivateKeySigner::random();
        let d = domain(31337, Address::repeat_byte(7));
        let req = sign_job(
            &signer,
            &d,
            JobDraft {
                sku_id: B256::repeat_byte(1),
                prompts: vec![Prompt::Text("hi".into()), Prompt::Tokens(vec![1, 2])],
                max_new_tokens: 8,
                max_price: U256::from(100u64),
                nonce: 1,
            },
        )
        .unwrap();
        assert_eq!(req.job.buyer, signer.address());
        assert_eq!(
            recover(&req.job.id(&d), &req.signature),
            Some(signer.address())
        );
        let mut j = req.job.clone();
        j.maxPrice = U256::from(99u64);
        assert_ne!(recover(&j.id(&d), &req.signature), Some(signer.address()));
        assert_eq!(recover(&req.job.id(&d), &req.signature[..64]), None);
        // JSON round trip keeps everything.
        let s = serde_json::to_string(&req).unwrap();
        let back: SubmitJobRequest = serde_json::from_str(&s).unwrap();
        assert_eq!(back, req);
    }
}
